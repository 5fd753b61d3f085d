//! Brute-force lockout: at most MAX_LOGIN_ATTEMPTS verifications per account
//! per window, on one instance or three sharing PostgreSQL and Redis; 423
//! only once they have all failed, never for a correct password.

use serde_json::json;
use suma_auth::security::LockoutStore;
use suma_auth_actors::{LockoutBacking, LockoutPolicy, LockoutState, Timestamp, UserKey};

use crate::support::redis_server::RedisServer;
use crate::support::{redis_url, Backend, TestApp, TestFleet, TestSetup, PASSWORD};

/// Verifications that happened: audit rows of failed password checks.
async fn verifications(app: &TestApp) -> u64 {
    let rows = app.probe().count_audit("login", "failure").await.unwrap();
    let locked = count_reason(app, "account_locked").await;
    rows - locked
}

async fn count_reason(app: &TestApp, reason: &str) -> u64 {
    // Failure rows carry their reason; count the ones with this reason.
    let users = app.probe().count_audit("login", "failure").await.unwrap();
    let _ = users;
    let (client, conn) = match &app.env.get("DATABASE_URL") {
        Some(url) if url.starts_with("postgres") => {
            tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap()
        }
        _ => return sqlite_count_reason(app, reason),
    };
    actix_web::rt::spawn(conn);
    let row = client
        .query_one(
            "SELECT COUNT(*) FROM audit_logs WHERE event_type = 'login' AND event_status = 'failure' AND metadata->>'reason' = $1",
            &[&reason],
        )
        .await
        .unwrap();
    row.get::<_, i64>(0) as u64
}

fn sqlite_count_reason(app: &TestApp, reason: &str) -> u64 {
    let path = std::path::Path::new(app.env.get("DATA_DIR").unwrap()).join("suma-auth.db");
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM audit_logs WHERE event_type = 'login' AND event_status = 'failure' AND json_extract(metadata, '$.reason') = ?1",
        [reason],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

async fn three_instances(redis: &str) -> TestFleet {
    three_instances_with(redis, false).await
}

async fn three_instances_with(redis: &str, statsd: bool) -> TestFleet {
    TestFleet::spawn_with(3, |setup| {
        let setup = setup.env("REDIS_ENDPOINT", redis);
        if statsd {
            setup.with_statsd()
        } else {
            setup
        }
    })
    .await
}

async fn hammer(apps: &[TestApp], email: &str, n: usize) -> Vec<u16> {
    let attempts = (0..n).map(|i| apps[i % apps.len()].login(email, "wrong password, again"));
    futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status)
        .collect()
}

#[actix_web::test]
async fn fifty_concurrent_failures_over_three_instances_verify_at_most_five_times() {
    let apps = three_instances(&redis_url()).await;
    let email = apps[0].verified_user().await;
    let statuses = hammer(&apps, &email, 50).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 423),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(verifications(&apps[0]).await, 5);
    for app in &apps {
        let res = app.login(&email, PASSWORD).await;
        assert_eq!(
            res.status, 423,
            "the right password is refused while locked"
        );
        assert_eq!(res.code(), "account_locked");
        let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 15 * 60);
    }
    // The owner is told once; the row is kept true.
    let smtp = apps[0].smtp();
    let locked_mail = smtp.wait_for_nth(&email, 2).await;
    assert!(locked_mail.subject().contains("locked"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.count_to(&email), 2);
    let user = apps[0].user_record(&email).await;
    assert_eq!(user.failed_login_attempts, 5);
    assert!(user.locked_until.is_some());
}

#[actix_web::test]
async fn unknown_emails_lock_exactly_like_real_ones() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let real = app.verified_user().await;
        let ghost = format!("ghost-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut real_statuses = Vec::new();
        let mut ghost_statuses = Vec::new();
        for _ in 0..7 {
            real_statuses.push(app.login(&real, "wrong password, again").await.status);
            ghost_statuses.push(app.login(&ghost, "wrong password, again").await.status);
        }
        assert_eq!(real_statuses, vec![401, 401, 401, 401, 401, 423, 423]);
        assert_eq!(ghost_statuses, real_statuses, "{backend:?}");
    }
}

#[actix_web::test]
async fn a_success_resets_the_window() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app.verified_user().await;
    for _ in 0..4 {
        assert_eq!(app.login(&email, "wrong password, again").await.status, 401);
    }
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    for _ in 0..4 {
        assert_eq!(app.login(&email, "wrong password, again").await.status, 401);
    }
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
}

#[actix_web::test]
async fn the_lock_ends_after_the_lockout_duration() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let email = app.verified_user().await;
    let statuses = hammer(std::slice::from_ref(&app), &email, 20).await;
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5);
    assert_eq!(verifications(&app).await, 5);
    assert_eq!(app.login(&email, PASSWORD).await.status, 423);
    app.services
        .clock
        .advance(std::time::Duration::from_secs(15 * 60 + 1));
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
}

#[actix_web::test]
async fn an_embedded_restart_keeps_the_lockout() {
    let dir = crate::support::TempDir::new();
    let first = TestSetup::new(Backend::Sqlite).in_dir(&dir.0).spawn().await;
    let email = first.verified_user().await;
    hammer(std::slice::from_ref(&first), &email, 6).await;
    assert_eq!(first.login(&email, PASSWORD).await.status, 423);
    first.stop().await;
    drop(first);
    let second = TestSetup::new(Backend::Sqlite).in_dir(&dir.0).spawn().await;
    assert_eq!(second.login(&email, PASSWORD).await.status, 423);
}

#[actix_web::test]
async fn an_instance_restarted_keeps_the_lockout_with_postgres_and_redis() {
    let mut apps = three_instances(&redis_url()).await;
    let email = apps[0].verified_user().await;
    hammer(&apps, &email, 10).await;
    apps.stop_all().await;
    // Dropping the apps deleted their Redis keys too (Redis losing its data):
    // the lock the database mirrors still holds.
    let again = apps
        .instance(|setup| setup.env("REDIS_ENDPOINT", &redis_url()))
        .await;
    assert_eq!(again.login(&email, PASSWORD).await.status, 423);
    // Without Redis too: the database holds the lock.
    let no_redis = apps.instance(|setup| setup).await;
    let res = no_redis.login(&email, PASSWORD).await;
    assert_eq!(res.status, 423, "{}", res.text());
}

#[actix_web::test]
async fn a_redis_outage_falls_back_to_the_database_and_recovers() {
    let mut redis = RedisServer::start().await;
    let apps = three_instances(&redis.url()).await;
    let email = apps[0].verified_user().await;
    for app in &apps {
        assert_eq!(app.get("/ready").await.status, 200);
    }
    assert_eq!(apps[0].login(&email, PASSWORD).await.status, 200);

    redis.kill();
    // Requests keep being answered, and the bound still holds (now in the database).
    let statuses = hammer(&apps, &email, 30).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 423),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(verifications(&apps[0]).await, 5);
    let ready = apps[1].get("/ready").await;
    assert_eq!(ready.status, 503);
    assert!(ready.json()["detail"].as_str().unwrap().contains("redis"));
    let other = apps[2].verified_user().await;
    assert_eq!(apps[2].login(&other, PASSWORD).await.status, 200);

    redis.resume().await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for app in &apps {
        assert_eq!(app.get("/ready").await.status, 200);
    }
    let another = apps[1].verified_user().await;
    assert_eq!(apps[0].login(&another, PASSWORD).await.status, 200);
    assert_eq!(
        apps[0]
            .post(
                "/api/v1/auth/login",
                json!({"email": another, "password": "nope nope nope"})
            )
            .await
            .status,
        401
    );
}

/// Sum of the counter `name` over the lines of every instance's agent whose
/// tags include all of `tags`.
fn counted(apps: &[TestApp], name: &str, tags: &[&str]) -> u64 {
    let prefix = format!("{name}:");
    apps.iter()
        .flat_map(|app| app.statsd.as_ref().unwrap().lines())
        .filter(|line| line.starts_with(&prefix) && tags.iter().all(|t| line.contains(t)))
        .map(|line| {
            let value = line[prefix.len()..].split('|').next().unwrap();
            value.parse::<u64>().unwrap()
        })
        .sum()
}

/// `n` sign-ins with the right password at once, spread over `apps`: each
/// is answered 200, or 503 `service_busy` when the in-flight checks it
/// waited for did not settle in time; never 423. None is counted or
/// audited as a lockout.
async fn correct_passwords_at_once(apps: &[TestApp], n: usize) {
    let email = apps[0].verified_user().await;
    let email = email.as_str();
    let attempts = (0..n).map(|i| async move {
        let started = std::time::Instant::now();
        let res = apps[i % apps.len()].login(email, PASSWORD).await;
        (res, started.elapsed())
    });
    let (answers, times): (Vec<_>, Vec<_>) = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .unzip();
    let slowest = times.iter().max().unwrap();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let busy = answers.iter().filter(|r| r.status == 503).count();
    let locked = answers.iter().filter(|r| r.status == 423).count();
    println!(
        "{n} correct passwords at once on {} instance(s): {ok} × 200, {busy} × 503, \
         {locked} × 423; slowest answer {slowest:?}",
        apps.len()
    );
    for res in &answers {
        assert!(
            res.status == 200 || res.status == 503,
            "{} {}",
            res.status,
            res.text()
        );
        if res.status == 503 {
            assert_eq!(res.code(), "service_busy");
            assert_eq!(res.header("retry-after").as_deref(), Some("1"));
        }
    }
    assert!(ok > 0);
    // Every success has reached the agents: the absence of lockout lines is not
    // a matter of waiting.
    for _ in 0..100 {
        if counted(apps, "auth.login.success", &[]) >= ok as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted(apps, "auth.login.success", &[]), ok as u64);
    assert_eq!(
        counted(apps, "auth.login.failure", &["reason:account_locked"]),
        0
    );
    assert_eq!(counted(apps, "auth.account_lockout", &[]), 0);
    // Audit rows, read straight from the database.
    let store = apps[0].probe();
    assert_eq!(count_reason(&apps[0], "account_locked").await, 0);
    assert_eq!(store.count_audit("login", "failure").await.unwrap(), 0);
    assert_eq!(
        store
            .count_audit("account_locked", "success")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_audit("account_locked", "failure")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.count_audit("login", "success").await.unwrap(),
        ok as u64
    );
    // The window is not left exhausted: the next sign-in goes straight through.
    assert_eq!(apps[0].login(email, PASSWORD).await.status, 200);
}

#[actix_web::test]
async fn forty_concurrent_correct_passwords_are_never_locked_embedded() {
    let app = TestSetup::new(Backend::Sqlite).with_statsd().spawn().await;
    correct_passwords_at_once(std::slice::from_ref(&app), 40).await;
}

#[actix_web::test]
async fn forty_concurrent_correct_passwords_are_never_locked_over_three_instances() {
    let apps = three_instances_with(&redis_url(), true).await;
    correct_passwords_at_once(&apps, 40).await;
}

/// The Redis script, the database transaction (PostgreSQL and SQLite) and the
/// pure policy take the same decision at every step of random sequences of
/// reservations, failures and successes, with time jumping across windows
/// and locks.
#[actix_web::test]
async fn the_redis_script_and_the_database_decide_like_the_policy() {
    let pg = TestSetup::new(Backend::Postgres)
        .env("REDIS_ENDPOINT", &redis_url())
        .spawn()
        .await;
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    // Redis answers, so the script decides (not the database fallback)
    assert!(pg.services.redis.as_ref().unwrap().ping().await);
    let store = |app: &TestApp| app.services.store.clone();
    let backings = [
        (
            "redis",
            LockoutStore::new(pg.services.redis.clone(), store(&pg)),
        ),
        ("postgres", LockoutStore::new(None, store(&pg))),
        ("sqlite", LockoutStore::new(None, store(&sqlite))),
    ];
    let policy = LockoutPolicy::new(3, std::time::Duration::from_secs(15 * 60));
    let window = policy.lockout_ms;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut seen = std::collections::HashSet::new();
    for round in 0..12 {
        let mut model = LockoutState::default();
        // From the real time on: the servers' expiry sweep deletes lockout rows
        // whose last change is in the past, which a fixed old date would race.
        let mut now = Timestamp(pg.services.clock.now_ms());
        for step in 0..40 {
            let r = next();
            now = now.plus_ms(match r % 16 {
                0 => window,
                1 => window / 2,
                _ => (r >> 8) as i64 % 2_000,
            });
            let op = (r >> 24) % 8;
            let expected = match op {
                0..=3 => format!("{:?}", model.reserve(&policy, now)),
                4..=6 => format!("{:?}", model.record_failure(&policy, now)),
                _ => {
                    model.record_success();
                    "()".to_string()
                }
            };
            let kind = [
                "reserve", "reserve", "reserve", "reserve", "failure", "failure", "failure",
                "success",
            ][op as usize];
            seen.insert(format!(
                "{kind} {}",
                expected.split([' ', '{']).next().unwrap()
            ));
            for (name, backing) in &backings {
                let key = UserKey::new(&format!("{name}-{run}-{round}@example.com"));
                let got = match op {
                    0..=3 => format!("{:?}", backing.reserve(&key, policy, now).await.unwrap()),
                    4..=6 => format!(
                        "{:?}",
                        backing.record_failure(&key, policy, now).await.unwrap()
                    ),
                    _ => {
                        backing.record_success(&key).await.unwrap();
                        "()".to_string()
                    }
                };
                assert_eq!(got, expected, "{name}, round {round}, step {step}");
            }
        }
    }
    // the sequences went through every kind of decision
    for kind in [
        "reserve Allowed",
        "reserve Locked",
        "reserve Pending",
        "failure Counted",
        "failure Locked",
        "success ()",
    ] {
        assert!(seen.contains(kind), "{kind} never decided: {seen:?}");
    }
}

/// The lockout rows the fleet's database holds: (attempts, failures, locked).
async fn lockout_rows(apps: &TestFleet) -> Vec<(i32, i32, bool)> {
    let (client, conn) = tokio_postgres::connect(apps.db_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    client
        .query(
            "SELECT attempts, failures, locked_until IS NOT NULL FROM login_lockouts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// With Redis, the database holds a lockout window only where a lock was
/// mirrored into it: a sign-in of an account with nothing to reset writes no
/// row, and a sign-in after a lock ended resets the mirrored one.
#[actix_web::test]
async fn a_sign_in_writes_a_lockout_row_only_to_reset_a_mirrored_lock() {
    let apps = TestFleet::spawn_with(1, |setup| setup.env("REDIS_ENDPOINT", &redis_url())).await;
    let email = apps[0].verified_user().await;
    assert_eq!(apps[0].login(&email, PASSWORD).await.status, 200);
    assert_eq!(lockout_rows(&apps).await, vec![]);

    hammer(&apps, &email, 6).await;
    assert_eq!(apps[0].login(&email, PASSWORD).await.status, 423);
    let locked = lockout_rows(&apps).await;
    assert_eq!(locked.len(), 1);
    assert!(locked[0].2, "the lock is mirrored: {locked:?}");

    apps.advance(15 * 60 + 1);
    assert_eq!(apps[0].login(&email, PASSWORD).await.status, 200);
    assert_eq!(lockout_rows(&apps).await, vec![(0, 0, false)]);
}

/// Both databases reset a lockout window alike: nothing is written for a key
/// they hold no window of, and a window they hold goes back to its default.
#[actix_web::test]
async fn both_databases_reset_only_a_window_they_hold() {
    use suma_auth::storage::{LockoutRecord, LockoutUpdate};
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let app = TestApp::spawn(backend).await;
        let store = app.services.store.clone();
        let now = app.services.clock.now();
        store.reset_lockout("nobody", now).await.unwrap();
        assert_eq!(
            store.load_lockout("nobody").await.unwrap(),
            None,
            "{backend:?}"
        );
        let locked = LockoutRecord {
            attempts: 3,
            failures: 3,
            window_started_at: Some(now),
            locked_until: Some(now + chrono::Duration::minutes(15)),
        };
        let lock = LockoutUpdate::new(now, Box::new(move |_| locked));
        store.update_lockout("somebody", lock).await.unwrap();
        store.reset_lockout("somebody", now).await.unwrap();
        assert_eq!(
            store.load_lockout("somebody").await.unwrap(),
            Some(LockoutRecord::default()),
            "{backend:?}"
        );
    }
}
