//! One lockout rule, three implementations: the pure policy of the actors
//! crate (`LockoutState`), the Redis script (`redis/lockout.lua`) and the
//! database backing (`update_lockout` with the policy as its transition, on
//! both storage backends). The same event script must yield the same
//! decisions from each; a drift in any one of them fails here.

use std::sync::Arc;
use std::time::Duration;

use suma_auth::config::RedisConfig;
use suma_auth::redis::RedisStore;
use suma_auth::security::LockoutStore;
use suma_auth::storage::postgres::PgStore;
use suma_auth::storage::sqlite::SqliteStore;
use suma_auth::storage::DynStore;
use suma_auth_actors::{
    FailureOutcome, LockoutBacking, LockoutPolicy, LockoutState, Reservation, Timestamp, UserKey,
};

use crate::support::{redis_url, TempDir, TestDatabase};

#[derive(Clone, Copy, Debug)]
enum Event {
    Reserve(i64),
    Failure(i64),
    Success,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decided {
    Reserved(Reservation),
    Failed(FailureOutcome),
    Reset,
}

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn policy() -> LockoutPolicy {
    LockoutPolicy::new(3, Duration::from_secs(15 * 60))
}

/// Times are minutes after `T0`; every `Failure` follows its `Reserve`, as in a login.
fn script() -> Vec<Event> {
    use Event::*;
    let m = |minutes: i64| T0 + minutes * MINUTE;
    vec![
        // Two failures, then a success forgets them.
        Reserve(m(0)),
        Failure(m(0)),
        Reserve(m(1)),
        Failure(m(1)),
        Success,
        // Three failures lock the account for 15 minutes...
        Reserve(m(2)),
        Failure(m(2)),
        Reserve(m(3)),
        Failure(m(3)),
        Reserve(m(4)),
        Failure(m(4)),
        // ...every reservation meanwhile is refused, with the time left...
        Reserve(m(5)),
        Reserve(m(18)),
        // ...and the lock ends on time.
        Reserve(m(19)),
        Failure(m(19)),
        // A window with attempts left closes after the lockout period.
        Reserve(m(35)),
        Reserve(m(36)),
        Reserve(m(37)),
        // The window is used up: the next reservation locks without a failure.
        Reserve(m(38)),
        Reserve(m(60)),
    ]
}

fn pure(events: &[Event]) -> Vec<Decided> {
    let policy = policy();
    let mut state = LockoutState::default();
    events
        .iter()
        .map(|e| match *e {
            Event::Reserve(at) => Decided::Reserved(state.reserve(&policy, Timestamp(at))),
            Event::Failure(at) => Decided::Failed(state.record_failure(&policy, Timestamp(at))),
            Event::Success => {
                state.record_success();
                Decided::Reset
            }
        })
        .collect()
}

async fn backed(backing: &LockoutStore, account: &str, events: &[Event]) -> Vec<Decided> {
    let key = UserKey::new(account);
    let mut out = Vec::new();
    for e in events {
        out.push(match *e {
            Event::Reserve(at) => Decided::Reserved(
                backing
                    .reserve(&key, policy(), Timestamp(at))
                    .await
                    .unwrap(),
            ),
            Event::Failure(at) => Decided::Failed(
                backing
                    .record_failure(&key, policy(), Timestamp(at))
                    .await
                    .unwrap(),
            ),
            Event::Success => {
                backing.record_success(&key).await.unwrap();
                Decided::Reset
            }
        });
    }
    out
}

fn sqlite(dir: &TempDir) -> DynStore {
    Arc::new(SqliteStore::open(&dir.0.join("conformance.db")).unwrap())
}

async fn postgres(db: &TestDatabase) -> DynStore {
    let store = PgStore::connect(
        &secrecy::SecretString::from(db.url.clone()),
        &Default::default(),
        2,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

#[test]
fn the_script_exercises_every_decision() {
    let decided = pure(&script());
    let locked = |d: &Decided| matches!(d, Decided::Reserved(Reservation::Locked { .. }));
    assert!(decided.iter().any(locked));
    assert!(decided
        .iter()
        .any(|d| matches!(d, Decided::Failed(FailureOutcome::Locked { .. }))));
    assert!(decided.contains(&Decided::Reserved(Reservation::Allowed { attempt: 3 })));
    assert!(decided.contains(&Decided::Reset));
}

#[actix_web::test]
async fn the_database_backing_decides_as_the_policy_on_both_backends() {
    let expected = pure(&script());
    let dir = TempDir::new();
    let embedded = LockoutStore::new(None, sqlite(&dir));
    assert_eq!(
        backed(&embedded, "conformance@example.com", &script()).await,
        expected
    );
    let db = TestDatabase::create().await;
    let shared = LockoutStore::new(None, postgres(&db).await);
    assert_eq!(
        backed(&shared, "conformance@example.com", &script()).await,
        expected
    );
}

#[actix_web::test]
async fn the_redis_script_decides_as_the_policy() {
    let expected = pure(&script());
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let config = RedisConfig {
        endpoint: redis_url(),
        auth_token: None,
    };
    let redis = RedisStore::new(&config, &prefix).unwrap();
    let dir = TempDir::new();
    let backing = LockoutStore::new(Some(redis.clone()), sqlite(&dir));
    let account = "conformance@example.com";
    let decided = backed(&backing, account, &script()).await;
    let mut conn = redis.connection().await.unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(suma_auth::redis::keys::lockout(&prefix, account))
        .query_async(&mut *conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the window lived in Redis, not in the fallback");
    assert_eq!(decided, expected);
}
