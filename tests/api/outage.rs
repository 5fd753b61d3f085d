//! Outages. PostgreSQL down: while the database is down every request answers
//! quickly — 503 with `Retry-After` where it needs the database, never a 500,
//! never a hang — and the service recovers by itself when it returns. A
//! frozen database or Redis (their processes stopped, connections open):
//! no request waits past the deadline.
//!
//! The tests run a PostgreSQL cluster (plain TCP, trust) with the server
//! binaries under `/usr/lib/postgresql/*/bin`, or a Redis server, of their
//! own, so that they can stop them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::header;
use serde_json::json;

use crate::support::redis_server::RedisServer;
use crate::support::{Backend, Resp, TestApp, TestSetup, PASSWORD};

/// A bound on a hang, not a performance figure: the service promises an
/// answer within 2 s; the margin absorbs a loaded test machine.
const ANSWER_BOUND: Duration = Duration::from_millis(2500);

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL binary, as the `postgres` user when the tests run as
/// root (initdb refuses root).
fn as_postgres(bin: &Path, args: &[String]) {
    if is_root() {
        let line = std::iter::once(bin.display().to_string())
            .chain(args.iter().map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        run(Command::new("su")
            .current_dir("/")
            .args(["postgres", "-s", "/bin/sh", "-c", &line])
            .stdout(Stdio::null()));
    } else {
        run(Command::new(bin).args(args).stdout(Stdio::null()));
    }
}

fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

/// A throwaway PostgreSQL cluster on a free port, which a test may stop and
/// start again.
struct PlainPostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PlainPostgres {
    fn start() -> Self {
        let bin = postgres_bin();
        let dir =
            std::env::temp_dir().join(format!("suma-outage-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir));
        }
        let data = dir.join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-U".into(),
                "postgres".into(),
                "-A".into(),
                "trust".into(),
            ],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\nfsync = off\n",
            d = dir.display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir));
        }
        let pg = Self { port, dir, bin };
        pg.pg_ctl(&["-w", "start"]);
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, action: &[&str]) {
        let mut args = vec![
            "-D".to_string(),
            self.dir.join("data").display().to_string(),
            "-l".into(),
            self.dir.join("log").display().to_string(),
        ];
        args.extend(action.iter().map(|a| a.to_string()));
        as_postgres(&self.bin.join("pg_ctl"), &args);
    }

    /// A fast shutdown: sessions are terminated, new connections refused.
    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    fn resume(&self) {
        self.pg_ctl(&["-w", "start"]);
    }

    /// The postmaster and its backends, by the postmaster's pid file (none
    /// when it is gone).
    fn processes(&self) -> Vec<String> {
        let Ok(pid_file) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else {
            return Vec::new();
        };
        let Some(postmaster) = pid_file.lines().next().map(|l| l.trim().to_string()) else {
            return Vec::new();
        };
        let mut pids: Vec<String> = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        pids.push(postmaster);
        pids
    }

    /// Every process of the cluster stops running (SIGSTOP) or runs again
    /// (SIGCONT): connections stay open and accepted, nothing answers — a
    /// frozen host or a black-holed network.
    fn signal_all(&self, signal: &str) {
        for pid in self.processes() {
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }
}

impl Drop for PlainPostgres {
    fn drop(&mut self) {
        // A test that failed while the cluster was frozen must not leave it
        // stopped (a stopped process ignores the shutdown below).
        self.signal_all("-CONT");
        let data = self.dir.join("data").display().to_string();
        let line = format!(
            "{} -D {data} -m immediate stop",
            self.bin.join("pg_ctl").display()
        );
        if is_root() {
            let _ = Command::new("su")
                .current_dir("/")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .output();
        } else {
            let _ = Command::new(self.bin.join("pg_ctl"))
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One kind of request, sent as a client would.
async fn send(app: &TestApp, kind: &str, access: &str, refresh: &str, email: &str) -> Resp {
    let bearer = format!("Bearer {access}");
    match kind {
        "login" => app.login(email, PASSWORD).await,
        "register" => {
            let new = format!("outage-{}@example.com", uuid::Uuid::new_v4().simple());
            app.register(&new, PASSWORD).await
        }
        "refresh" => {
            app.post("/api/v1/auth/refresh", json!({"refresh_token": refresh}))
                .await
        }
        "me" => app.me(access).await,
        "sessions" => app.get_with_token("/api/v1/auth/me/sessions", access).await,
        "logout" => {
            let req = app
                .client
                .post(app.url("/api/v1/auth/logout"))
                .insert_header((header::AUTHORIZATION, bearer));
            app.send(req, Some(json!({"refresh_token": refresh}))).await
        }
        "password-reset" => {
            app.post("/api/v1/auth/password-reset", json!({"email": email}))
                .await
        }
        "verify-email" => {
            app.post(
                "/api/v1/auth/verify-email",
                json!({"token": "A".repeat(43)}),
            )
            .await
        }
        "ready" => app.get("/ready").await,
        other => panic!("unknown request kind {other}"),
    }
}

/// Sends every kind of request at once; their answers, and how long the
/// slowest took.
async fn send_together(
    app: &TestApp,
    kinds: &[&str],
    access: &str,
    refresh: &str,
    email: &str,
) -> (Vec<Resp>, Duration) {
    let started = Instant::now();
    let answers = futures_util::future::join_all(
        kinds
            .iter()
            .map(|kind| send(app, kind, access, refresh, email)),
    )
    .await;
    (answers, started.elapsed())
}

/// An app whose database is the throwaway cluster `pg`.
async fn app_on(pg: &PlainPostgres) -> TestApp {
    TestSetup::new(Backend::Postgres)
        .on_database(&pg.url())
        .spawn()
        .await
}

/// Waits (up to `within`) until `email` signs in again: the service
/// recovered by itself.
async fn signs_in_again(app: &TestApp, email: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let res = app.login(email, PASSWORD).await;
        if res.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", res.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The route of each kind of request [`send`] makes: (method, path in the
/// OpenAPI document).
fn route_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "login" => ("post", "/api/v1/auth/login"),
        "register" => ("post", "/api/v1/auth/register"),
        "refresh" => ("post", "/api/v1/auth/refresh"),
        "me" => ("get", "/api/v1/auth/me"),
        "sessions" => ("get", "/api/v1/auth/me/sessions"),
        "logout" => ("post", "/api/v1/auth/logout"),
        "verify-email" => ("post", "/api/v1/auth/verify-email"),
        "ready" => ("get", "/ready"),
        other => panic!("unknown request kind {other}"),
    }
}

/// Requests that need the database, and must say so with a 503.
const NEED_THE_DATABASE: &[&str] = &[
    "login",
    "register",
    "refresh",
    "me",
    "sessions",
    "logout",
    "verify-email",
    "ready",
];

#[actix_web::test]
async fn while_postgres_is_down_every_request_answers_503_quickly() {
    let pg = PlainPostgres::start();
    let app = app_on(&pg).await;
    let (email, pair) = app.signed_in().await;
    let access = pair.access_token.clone();
    let refresh = pair.refresh_token.clone();
    assert_eq!(app.get("/ready").await.status, 200);

    pg.stop();
    let mut report = Vec::new();
    // Twice: the first round meets the pool's broken connections, the second
    // a pool that cannot open new ones.
    for round in 0..2 {
        for kind in NEED_THE_DATABASE {
            let started = Instant::now();
            let res = send(&app, kind, &access, &refresh, &email).await;
            let elapsed = started.elapsed();
            report.push(format!(
                "round {round} {kind}: {} in {elapsed:?}",
                res.status
            ));
            assert!(
                elapsed < ANSWER_BOUND,
                "{kind} took {elapsed:?} with the database down\n{}",
                report.join("\n")
            );
            assert_eq!(
                res.status,
                503,
                "{kind}: {}\n{}",
                res.text(),
                report.join("\n")
            );
            assert!(
                res.header("retry-after").is_some(),
                "{kind}: no Retry-After"
            );
            assert_eq!(
                res.header("content-type").as_deref(),
                Some("application/problem+json"),
                "{kind}"
            );
        }
        // The reset request answers the same 202 for every address, so it
        // must not wait for the database either.
        let started = Instant::now();
        let res = send(&app, "password-reset", &access, &refresh, &email).await;
        let elapsed = started.elapsed();
        report.push(format!(
            "round {round} password-reset: {} in {elapsed:?}",
            res.status
        ));
        assert!(elapsed < ANSWER_BOUND, "{}", report.join("\n"));
        assert!(
            res.status == 202 || res.status == 503,
            "{}",
            report.join("\n")
        );
        // What needs no database still answers.
        for path in ["/health", "/.well-known/jwks.json", "/openapi.json"] {
            let started = Instant::now();
            let res = app.get(path).await;
            assert_eq!(res.status, 200, "{path}");
            assert!(started.elapsed() < ANSWER_BOUND, "{path}");
        }
    }
    // Each of those 503s is in the document, as a problem, on its route:
    // listed by its status or under `default`.
    let doc = app.get("/openapi.json").await.json();
    for kind in NEED_THE_DATABASE {
        let (method, path) = route_of(kind);
        let answers = &doc["paths"][path][method]["responses"];
        let listed = [&answers["503"], &answers["default"]]
            .into_iter()
            .any(|a| a["content"]["application/problem+json"].is_object());
        assert!(listed, "{method} {path}: no 503 listed: {answers}");
    }
    println!("{}", report.join("\n"));

    // Back up: the pool reconnects by itself.
    pg.resume();
    signs_in_again(&app, &email, Duration::from_secs(20)).await;
    assert_eq!(app.get("/ready").await.status, 200);
}

/// A database that stops answering without closing anything (every process
/// of the cluster stopped): requests that wait on it give up at the request
/// deadline with a 503, never hang, and the service answers again once the
/// database does.
#[actix_web::test]
async fn a_frozen_database_holds_no_request_past_the_deadline() {
    let pg = PlainPostgres::start();
    let app = app_on(&pg).await;
    let (email, pair) = app.signed_in().await;
    let (access, refresh) = (pair.access_token.clone(), pair.refresh_token.clone());

    pg.signal_all("-STOP");
    let kinds = ["login", "register", "refresh", "sessions", "logout"];
    let (answers, elapsed) = send_together(&app, &kinds, &access, &refresh, &email).await;
    pg.signal_all("-CONT");

    let bound = suma_auth::http::middleware::REQUEST_DEADLINE + Duration::from_secs(5);
    assert!(elapsed < bound, "answered in {elapsed:?}");
    for (kind, res) in kinds.iter().zip(&answers) {
        assert_eq!(res.status, 503, "{kind}: {}", res.text());
        assert!(
            res.header("retry-after").is_some(),
            "{kind}: no Retry-After"
        );
        assert_eq!(
            res.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{kind}"
        );
    }

    signs_in_again(&app, &email, Duration::from_secs(30)).await;
}

/// Redis that stops answering without closing anything: every request is
/// answered within the deadline, and sign-in, token checks and refresh go on
/// without it (the database and each instance's own memory stand in).
#[actix_web::test]
async fn a_frozen_redis_holds_no_request_past_the_deadline() {
    let redis = RedisServer::start().await;
    let app = TestSetup::new(Backend::Postgres)
        .env("REDIS_ENDPOINT", &redis.url())
        .spawn()
        .await;
    let (email, pair) = app.signed_in().await;
    let (access, refresh) = (pair.access_token.clone(), pair.refresh_token.clone());

    redis.freeze();
    let kinds = ["login", "me", "refresh", "sessions"];
    let (answers, elapsed) = send_together(&app, &kinds, &access, &refresh, &email).await;
    println!("answered without Redis in {elapsed:?}");
    let logout = send(&app, "logout", &access, "", &email).await;
    let after_logout = app.me(&access).await;
    redis.thaw();

    let report: Vec<String> = kinds
        .iter()
        .zip(&answers)
        .map(|(kind, res)| format!("{kind}: {} {}", res.status, res.text()))
        .collect();
    let bound = suma_auth::http::middleware::REQUEST_DEADLINE + Duration::from_secs(5);
    assert!(elapsed < bound, "answered in {elapsed:?}\n{report:?}");
    for (kind, res) in kinds.iter().zip(&answers) {
        assert_eq!(res.status, 200, "{kind} without Redis\n{report:?}");
    }
    assert_eq!(logout.status, 204, "{}", logout.text());
    assert_eq!(after_logout.status, 401, "{}", after_logout.text());
}

/// A connection of its own holding the one row `lock` (a `SELECT … FOR
/// UPDATE` with $1 = `key`) selects, in a transaction left open: `ROLLBACK`
/// on it lets the row go.
async fn holding_a_row(
    app: &TestApp,
    lock: &str,
    key: &(dyn tokio_postgres::types::ToSql + Sync),
) -> tokio_postgres::Client {
    let (db, conn) = tokio_postgres::connect(&app.env["DATABASE_URL"], tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.batch_execute("BEGIN").await.unwrap();
    let held = db.query(lock, &[key]).await.unwrap();
    assert_eq!(held.len(), 1, "nothing held: {lock}");
    db
}

/// A refresh that waits past the request deadline for a row another
/// transaction holds answers 503; its client still holds the token it sent,
/// so what the database does once the row is free must not spend that token
/// (else retrying would count as reuse and end the session).
#[actix_web::test]
async fn a_refresh_answered_503_at_the_deadline_leaves_its_token_usable() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (_, pair) = app.signed_in().await;
    let db = holding_a_row(
        &app,
        "SELECT id FROM sessions WHERE id = (SELECT session_id FROM refresh_tokens \
         WHERE token_hash = $1) FOR UPDATE",
        &suma_auth::auth::tokens::token_hash(&pair.refresh_token),
    )
    .await;

    let timed_out = app.refresh(&pair.refresh_token).await;
    assert_eq!(timed_out.status, 503, "{}", timed_out.text());
    // The row comes free after the answer; whatever was waiting runs now.
    db.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let retried = app.refresh(&pair.refresh_token).await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    let me = app.me(&retried.token_pair().access_token).await;
    assert_eq!(me.status, 200, "{}", me.text());
    // The same session goes on: its first access token still works.
    let first = app.me(&pair.access_token).await;
    assert_eq!(first.status, 200, "{}", first.text());
}

/// A sign-in that waits past the request deadline for the account's row
/// answers 503 and opens nothing once the row is free: its client never got
/// the tokens, so a session would only be left behind.
#[actix_web::test]
async fn a_sign_in_answered_503_at_the_deadline_opens_no_session() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let email = app.verified_user().await;
    let user = app.user_id(&email).await;
    let db = holding_a_row(&app, "SELECT id FROM users WHERE id = $1 FOR UPDATE", &user).await;

    let timed_out = app.login(&email, PASSWORD).await;
    assert_eq!(timed_out.status, 503, "{}", timed_out.text());
    db.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(app.probe().count_of("sessions", "user_id", user).await, 0);
    let again = app.login(&email, PASSWORD).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(app.probe().count_of("sessions", "user_id", user).await, 1);
}

/// The code step of a sign-in that waits past the request deadline for the
/// account's row answers 503 and spends nothing: its client sends the same
/// code with the same challenge again and is signed in, with one session.
#[actix_web::test]
async fn a_code_step_answered_503_at_the_deadline_leaves_its_challenge_usable() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (email, pair) = app.signed_in().await;
    app.turn_on_email_codes(&pair.access_token).await;
    let user = app.user_id(&email).await;
    let mfa_token = app.mfa_token(&email).await;
    let code = app.smtp().wait_for_code(&email, 1).await;
    let step = json!({"mfa_token": mfa_token, "code": code});
    let sessions = app.probe().count_of("sessions", "user_id", user).await;
    let db = holding_a_row(&app, "SELECT id FROM users WHERE id = $1 FOR UPDATE", &user).await;

    let timed_out = app.post("/api/v1/auth/otp/verify", step.clone()).await;
    assert_eq!(timed_out.status, 503, "{}", timed_out.text());
    db.batch_execute("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.probe().count_of("sessions", "user_id", user).await,
        sessions
    );

    let again = app.post("/api/v1/auth/otp/verify", step).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        app.probe().count_of("sessions", "user_id", user).await,
        sessions + 1
    );
}
