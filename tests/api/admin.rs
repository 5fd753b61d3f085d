//! `suma-auth admin`: the real binary run beside running servers, on the
//! embedded database (the same data directory) and on PostgreSQL + Redis
//! (the same database and Redis key prefix, two instances).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{redis_url, Backend, TestApp, TestFleet, TestSetup, PASSWORD};

/// Servers sharing one deployment: two instances on PostgreSQL + Redis, or
/// the one server of an embedded database.
enum Fleet {
    Embedded(Box<TestApp>),
    Shared(TestFleet),
}

impl Fleet {
    async fn start(backend: Backend, env: &[(&str, &str)]) -> Self {
        match backend {
            Backend::Sqlite => Self::Embedded(Box::new(
                TestSetup::new(Backend::Sqlite).envs(env).spawn().await,
            )),
            Backend::Postgres => Self::Shared(
                TestFleet::spawn_with(2, |setup| {
                    setup.env("REDIS_ENDPOINT", &redis_url()).envs(env)
                })
                .await,
            ),
        }
    }

    fn apps(&self) -> &[TestApp] {
        match self {
            Self::Embedded(app) => std::slice::from_ref(app),
            Self::Shared(fleet) => fleet,
        }
    }

    /// Where the command runs against.
    fn first(&self) -> &TestApp {
        &self.apps()[0]
    }

    /// Another instance (the same one on the embedded database).
    fn other(&self) -> &TestApp {
        self.apps().last().unwrap()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// The server's environment, with its Redis key prefix.
fn cli_env(app: &TestApp) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = app.env.clone();
    if let Some(redis) = &app.services.redis {
        env.insert("REDIS_KEY_PREFIX".into(), redis.prefix().to_string());
    }
    env
}

/// Runs `suma-auth <args>` with the server's environment (and its Redis key prefix).
async fn cli(app: &TestApp, args: &[&str]) -> Run {
    run_with(cli_env(app), args).await
}

/// Runs `suma-auth <args>` with `env` only.
async fn run_with(env: HashMap<String, String>, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_suma-auth"))
            .env_clear()
            .envs(env)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // A panic (even one caught at shutdown) would abort a release build.
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    let run = cli(app, &all).await;
    assert_eq!(
        run.code, 0,
        "suma-auth admin {args:?}: {}\n{}",
        run.stdout, run.stderr
    );
    run
}

fn reset_links(app: &TestApp, email: &str) -> usize {
    app.smtp()
        .all()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == email))
        .filter(|m| m.decoded().contains("/reset-password?token="))
        .count()
}

on_both_backends!(
    disabling_ends_every_session_at_once_and_refuses_sign_in,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let (a, b) = (fleet.first(), fleet.other());
        let (email, pair) = a.signed_in().await;
        // Live where requests are judged (Redis's copy, or the embedded
        // server's map), so only a revocation that reaches it can end it.
        assert_eq!(b.me(&pair.access_token).await.status, 200);
        // A reset link mailed before the account is disabled.
        let res = a
            .post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        assert_eq!(res.status, 202);
        let link = a
            .smtp()
            .wait_for_nth(&email, 2)
            .await
            .token_after("/reset-password?token=")
            .unwrap();

        let run = admin(a, &["--json", "user", "disable", &email]).await;
        assert_eq!(run.json()["sessions_ended"], 1);
        assert_eq!(run.json()["was_active"], true);

        let res = b.me(&pair.access_token).await;
        assert_eq!(res.status, 401, "{}", res.text());
        assert_eq!(b.refresh(&pair.refresh_token).await.status, 401);
        // The right password says why; a wrong one says nothing more.
        let res = b.login(&email, PASSWORD).await;
        assert_eq!(res.status, 403);
        assert_eq!(res.code(), "account_disabled");
        assert_eq!(
            res.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let res = a.login(&email, "not the password at all").await;
        assert_eq!(res.status, 401);
        assert_eq!(res.code(), "invalid_credentials");
        // A reset request answers as for an unknown address, and mails nothing.
        let known = a
            .post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        let unknown = a
            .post(
                "/api/v1/auth/password-reset",
                json!({"email": "nobody-here@example.com"}),
            )
            .await;
        assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
        // The link mailed before sets no password now.
        let res = b
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({"token": link, "new_password": "a brand new passphrase 42"}),
            )
            .await;
        assert_eq!(res.status, 400, "{}", res.text());

        let run = admin(a, &["user", "enable", &email]).await;
        assert!(run.stdout.contains("enabled"), "{}", run.stdout);
        let res = b.login(&email, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.text());
        // Enabled, a reset mails its link: the one asked for while disabled never came.
        let res = a
            .post("/api/v1/auth/password-reset", json!({"email": email}))
            .await;
        assert_eq!(res.status, 202);
        for _ in 0..200 {
            if reset_links(a, &email) > 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(reset_links(a, &email), 2);

        let probe = a.probe();
        assert_eq!(
            probe
                .count_audit("admin_user_disabled", "success")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            probe
                .count_audit("admin_user_enabled", "success")
                .await
                .unwrap(),
            1
        );
    }
);

on_both_backends!(
    unlock_clears_the_lockout_everywhere_it_is_kept,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[("MAX_LOGIN_ATTEMPTS", "3")]).await;
        let (a, b) = (fleet.first(), fleet.other());
        let email = a.verified_user().await;
        for _ in 0..3 {
            assert_eq!(a.login(&email, "wrong password here").await.status, 401);
        }
        assert_eq!(b.login(&email, PASSWORD).await.status, 423);

        let shown = admin(a, &["--json", "user", "show", &email]).await.json();
        assert!(shown["password_locked_until"].is_string(), "{shown}");

        admin(a, &["user", "unlock", &email]).await;
        let res = b.login(&email, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let res = a.login(&email, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(
            a.probe()
                .count_audit("admin_user_unlocked", "success")
                .await
                .unwrap(),
            1
        );
    }
);

on_both_backends!(
    revoking_every_session_refuses_every_token_without_a_reuse_alarm,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let (a, b) = (fleet.first(), fleet.other());
        let (first_email, first) = a.signed_in().await;
        let (_, second) = b.signed_in().await;
        // The first user's token is rotated once: a spent token exists.
        let res = a.refresh(&first.refresh_token).await;
        assert_eq!(res.status, 200);
        let rotated = res.token_pair();
        for pair in [&rotated, &second] {
            assert_eq!(b.me(&pair.access_token).await.status, 200);
            assert_eq!(a.me(&pair.access_token).await.status, 200);
        }

        let run = admin(a, &["--json", "sessions", "revoke", "--all"]).await;
        assert_eq!(run.json()["sessions_ended"], 2);

        for app in fleet.apps() {
            for pair in [&rotated, &second] {
                assert_eq!(app.me(&pair.access_token).await.status, 401);
            }
        }
        for token in [
            &first.refresh_token,
            &rotated.refresh_token,
            &second.refresh_token,
        ] {
            assert_eq!(b.refresh(token).await.status, 401);
        }
        // No token was taken for a stolen one: no alarm row, no alarm mail
        // (the first user got the verification mail only).
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.probe()
                .count_audit("refresh_token_reuse", "failure")
                .await
                .unwrap(),
            0
        );
        assert_eq!(a.smtp().count_to(&first_email), 1);
        // Everyone signs in again.
        assert_eq!(a.login(&first_email, PASSWORD).await.status, 200);
    }
);

on_both_backends!(
    erasing_from_the_command_line_refuses_the_old_tokens_everywhere,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let (a, b) = (fleet.first(), fleet.other());
        let (email, pair) = a.signed_in().await;
        assert_eq!(b.me(&pair.access_token).await.status, 200);

        // An erasure is not undone: it asks for --yes (bad usage without).
        let run = cli(a, &["admin", "user", "erase", &email]).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!(b.me(&pair.access_token).await.status, 200);

        admin(a, &["user", "erase", &email, "--yes"]).await;
        assert_eq!(b.me(&pair.access_token).await.status, 401);
        assert_eq!(b.refresh(&pair.refresh_token).await.status, 401);
        assert_eq!(b.login(&email, PASSWORD).await.status, 401);
        assert_eq!(cli(a, &["admin", "user", "show", &email]).await.code, 1);
        assert_eq!(
            a.probe()
                .count_audit("admin_user_erased", "success")
                .await
                .unwrap(),
            1
        );
    }
);

#[actix_web::test]
async fn user_show_prints_no_hash_and_json_parses() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (email, _) = app.signed_in().await;
    let human = admin(&app, &["user", "show", &email]).await;
    assert!(human.stdout.contains(&email), "{}", human.stdout);
    let json = admin(&app, &["user", "show", &email, "--json"]).await;
    let shown = json.json();
    assert_eq!(shown["email"], email.as_str());
    assert_eq!(shown["active"], true);
    assert_eq!(shown["live_sessions"], 1);
    let user = app.user_record(&email).await;
    assert_eq!(shown["id"], user.id.to_string());
    for out in [&human.stdout, &json.stdout] {
        assert!(!out.contains(&user.password_hash));
        assert!(!out.contains("$argon2"), "{out}");
    }
    assert!(shown.get("password_hash").is_none());
}

#[actix_web::test]
async fn unknown_users_exit_1_and_bad_usage_exits_2() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for args in [
        &["admin", "user", "show", "nobody@example.com"][..],
        &[
            "admin",
            "user",
            "disable",
            "00000000-0000-4000-8000-000000000000",
        ],
        &[
            "admin",
            "sessions",
            "revoke",
            "--user",
            "nobody@example.com",
        ],
    ] {
        let run = cli(&app, args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("no account"), "{}", run.stderr);
    }
    let run = cli(
        &app,
        &["admin", "--json", "user", "show", "nobody@example.com"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["error"], "not_found");
    for args in [
        &["admin", "user"][..],
        &["admin", "sessions", "revoke"],
        &[
            "admin",
            "sessions",
            "revoke",
            "--all",
            "--user",
            "x@example.com",
        ],
        &["admin", "nothing"],
    ] {
        assert_eq!(cli(&app, args).await.code, 2, "{args:?}");
    }
}

#[actix_web::test]
async fn keys_list_names_the_kid_the_jwks_serves() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let human = admin(&app, &["keys", "list"]).await;
    assert!(human.stdout.contains(&kid), "{}", human.stdout);
    assert!(!human.stdout.contains("PRIVATE"));
    let listed = admin(&app, &["keys", "list", "--json"]).await.json();
    assert_eq!(listed[0]["kid"], kid.as_str());
    assert_eq!(listed[0]["algorithm"], "RS256");
    assert_eq!(listed[0]["active"], true);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

on_both_backends!(
    retry_dead_queues_dead_mail_again,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[("MAIL_RETRY_BASE_MS", "100")]).await;
        let app = fleet.first();
        let bounce = "bounce-me@example.com";
        // The sink refuses this address for good: its verification mail dies.
        assert_eq!(app.register(bounce, PASSWORD).await.status, 202);
        let mut status = Value::Null;
        for _ in 0..100 {
            status = admin(app, &["--json", "outbox", "status"]).await.json();
            if status["dead"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status["dead"], 1, "{status}");
        assert_eq!(status["pending"], 0, "{status}");
        assert_eq!(app.smtp().refused_to(bounce), 1);

        let moved = admin(app, &["--json", "outbox", "retry-dead"]).await.json();
        assert_eq!(moved["moved"], 1);
        // Delivered again from its sealed payload (and refused again for good).
        for _ in 0..100 {
            if app.smtp().refused_to(bounce) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(app.smtp().refused_to(bounce), 2);
        assert_eq!(
            app.probe()
                .count_audit("admin_outbox_retry_dead", "success")
                .await
                .unwrap(),
            1
        );
    }
);

on_both_backends!(
    a_sign_in_under_way_when_the_account_is_disabled_opens_no_session,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let app = fleet.first();
        let email = app.verified_user().await;
        // The sign-in read the account (active) and checked its password…
        let read = app.user_record(&email).await;
        // …while the operator disabled it (ending the sessions there were).
        admin(app, &["user", "disable", &email]).await;
        let opener = suma_auth::services::tokens::SessionOpener::new(&app.services);
        let opened = suma_auth::services::tokens::open_session(
            &opener,
            &read,
            &suma_auth::domain::ClientContext::default(),
            crate::support::password_opening(),
        )
        .await;
        assert!(
            matches!(opened, Err(suma_auth::services::AuthError::AccountDisabled)),
            "{opened:?}"
        );
        let now = app.services.clock.now();
        assert!(app
            .services
            .store
            .list_sessions(read.id, now)
            .await
            .unwrap()
            .is_empty());
    }
);

on_both_backends!(
    revoking_one_users_sessions_leaves_the_others,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let (a, b) = (fleet.first(), fleet.other());
        let (email, mine) = a.signed_in().await;
        let (_, theirs) = a.signed_in().await;
        for pair in [&mine, &theirs] {
            assert_eq!(b.me(&pair.access_token).await.status, 200);
        }
        let run = admin(a, &["--json", "sessions", "revoke", "--user", &email]).await;
        assert_eq!(run.json()["sessions_ended"], 1);
        assert_eq!(b.me(&mine.access_token).await.status, 401);
        assert_eq!(b.refresh(&mine.refresh_token).await.status, 401);
        assert_eq!(b.me(&theirs.access_token).await.status, 200);
        assert_eq!(b.refresh(&theirs.refresh_token).await.status, 200);
        // Not disabled: the user signs in again.
        assert_eq!(a.login(&email, PASSWORD).await.status, 200);
        assert_eq!(
            a.probe()
                .count_audit("admin_sessions_revoked", "success")
                .await
                .unwrap(),
            1
        );
    }
);

on_both_backends!(
    unlock_clears_the_second_factor_lockout,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[("SECOND_FACTOR_MAX_ATTEMPTS", "2")]).await;
        let app = fleet.first();
        let (email, secret, _) = crate::second_factor_limits::totp_user(app).await;
        let right = crate::second_factor_limits::code_now(app, &secret);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        let verify = |token: String, code: String| async move {
            app.post(
                "/api/v1/auth/otp/verify",
                json!({"mfa_token": token, "code": code}),
            )
            .await
        };
        let challenge = || async {
            let res = app.login(&email, PASSWORD).await;
            assert_eq!(res.status, 200, "{}", res.text());
            res.mfa_token()
        };
        let token = challenge().await;
        for _ in 0..2 {
            let res = verify(token.clone(), wrong.to_string()).await;
            assert_eq!(res.code(), "invalid_code");
        }
        let res = verify(challenge().await, right.clone()).await;
        assert_eq!(res.status, 423, "{}", res.text());
        let shown = admin(app, &["--json", "user", "show", &email]).await.json();
        assert!(shown["second_factor_locked_until"].is_string(), "{shown}");

        admin(app, &["user", "unlock", &email]).await;
        let res = verify(challenge().await, right).await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
);

on_both_backends!(
    audit_verify_names_the_first_broken_row_and_export_lists_a_range,
    |backend: Backend| async move {
        let fleet = Fleet::start(backend, &[]).await;
        let app = fleet.first();
        crate::audit::busy_user(app).await;
        crate::audit::busy_user(app).await;

        let intact = cli(app, &["admin", "--json", "audit", "verify"]).await;
        assert_eq!(intact.code, 0, "{}", intact.stderr);
        let report = intact.json();
        assert_eq!(report["ok"], true, "{report}");
        assert!(report["rows_checked"].as_u64().unwrap() >= 8, "{report}");
        assert!(cli(app, &["admin", "audit", "verify"])
            .await
            .stdout
            .contains("intact"));

        // The export of everything so far holds every chained row, in order,
        // with its hashes; a range that ends before it starts is bad usage.
        let rows = crate::audit::chain(app).await;
        let export = cli(
            app,
            &["admin", "--json", "audit", "export", "--from", "2000-01-01"],
        )
        .await;
        assert_eq!(export.code, 0, "{}", export.stderr);
        let exported = export.json();
        let seqs: Vec<i64> = exported["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
        let chained: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs[..chained.len()], chained[..], "{exported}");
        assert!(exported["rows"][0]["row_hash"].is_string());
        let backwards = cli(
            app,
            &[
                "admin",
                "audit",
                "export",
                "--from",
                "2030-01-02",
                "--to",
                "2030-01-01",
            ],
        )
        .await;
        assert_eq!(backwards.code, 2, "{}", backwards.stderr);
        assert_eq!(
            cli(app, &["admin", "audit", "export", "--from", "soon"])
                .await
                .code,
            2
        );

        // One row edited behind the triggers' back: exit 1, that row named.
        let middle = &rows[rows.len() / 2];
        crate::audit::raw(
            app,
            &format!(
                "UPDATE audit_logs SET event_type = event_type || '_edited' WHERE seq = {}",
                middle.seq
            ),
            true,
        )
        .await
        .unwrap();
        let broken = cli(app, &["admin", "--json", "audit", "verify"]).await;
        assert_eq!(broken.code, 1, "{}", broken.stdout);
        // --json prints the report, then the error document.
        let report: Value = serde_json::Deserializer::from_str(&broken.stdout)
            .into_iter::<Value>()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["broken"]["seq"], middle.seq, "{report}");
        assert_eq!(report["broken"]["id"], middle.id.to_string(), "{report}");
        let human = cli(app, &["admin", "audit", "verify"]).await;
        assert_eq!(human.code, 1);
        assert!(human.stdout.contains("BROKEN"), "{}", human.stdout);
        assert!(
            human.stdout.contains(&format!("seq {}", middle.seq)),
            "{}",
            human.stdout
        );

        // The operator's verifications and exports are themselves audited.
        let events: Vec<String> = crate::audit::chain(app)
            .await
            .iter()
            .map(|r| r.event_type.clone())
            .collect();
        assert!(
            events.iter().any(|e| e == "admin_audit_verified"),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| e == "admin_audit_exported"),
            "{events:?}"
        );
    }
);

/// An instance configured with another `DATA_ENCRYPTION_KEY` than the one
/// the database recorded refuses to start, naming the variable; once an
/// operator adopts the new key, it starts, and the old key is refused.
#[actix_web::test]
async fn another_data_key_is_refused_until_an_operator_adopts_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let first = app.env.clone();
    let mut second = first.clone();
    second.insert(
        "DATA_ENCRYPTION_KEY".into(),
        "c2Vjb25kIGRhdGEga2V5IG9mIDMyIGJ5dGVzIGxvbmc=".into(),
    );
    let start = |env: &HashMap<String, String>| {
        let config = suma_auth::config::Config::from_map(env).unwrap();
        async move {
            suma_auth::Application::build_with(
                config,
                suma_auth::app::Options {
                    redis_prefix: Some(format!("test:{}", uuid::Uuid::new_v4().simple())),
                    ..Default::default()
                },
            )
            .await
        }
    };
    let refused = start(&second).await.err().expect("another key started");
    assert!(
        refused
            .to_string()
            .starts_with("DATA_ENCRYPTION_KEY is not the key"),
        "{refused}"
    );

    let mut with_second = cli_env(&app);
    with_second.insert(
        "DATA_ENCRYPTION_KEY".into(),
        second["DATA_ENCRYPTION_KEY"].clone(),
    );
    let adopted = run_with(with_second, &["admin", "keys", "adopt-data-key"]).await;
    assert_eq!(adopted.code, 0, "{}\n{}", adopted.stdout, adopted.stderr);
    assert!(start(&second).await.is_ok());
    let old = start(&first).await.err().expect("the old key started");
    assert!(old.to_string().starts_with("DATA_ENCRYPTION_KEY"), "{old}");

    // A development key (none configured, derived from another signing key)
    // is reported, not refused.
    let mut development = first.clone();
    development.remove("DATA_ENCRYPTION_KEY");
    development.remove("JWT_PRIVATE_KEY");
    let dir = crate::support::TempDir::new();
    development.insert("DATA_DIR".into(), dir.0.display().to_string());
    assert!(start(&development).await.is_ok());
}
