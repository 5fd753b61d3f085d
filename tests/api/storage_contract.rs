//! The storage contract: the same assertions against both backends.

use std::sync::Arc;

use chrono::{Duration, Utc};
use suma_auth::domain::Email;
use suma_auth::storage::postgres::PgStore;
use suma_auth::storage::sqlite::SqliteStore;
use suma_auth::storage::*;
use uuid::Uuid;

use crate::support::probe::Probe;
use crate::support::{TempDir, TestDatabase};

fn new_user(email: &str, token_hash: &str) -> NewUser {
    NewUser {
        id: Uuid::new_v4(),
        email: Email::parse(email, "email").unwrap(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        first_name: Some("Ana".into()),
        last_name: None,
        consents: vec![NewConsent {
            consent_type: "terms",
            version: "1".into(),
            consented: true,
        }],
        verification_token_hash: token_hash.into(),
        verification_expires_at: Utc::now() + Duration::hours(24),
        client: ClientContext {
            ip: Some("192.0.2.1".parse().unwrap()),
            user_agent: Some("ua".into()),
        },
        now: Utc::now(),
        mail: Some(OutboxMail {
            id: Uuid::new_v4(),
            template: "verification".into(),
            payload: "sealed".into(),
            attempts: 0,
            created_at: Utc::now(),
            recipient_tag: None,
        }),
    }
}

/// A session of eight hours opened at `now` with its first refresh token.
fn new_session(
    id: Uuid,
    user_id: Uuid,
    token_hash: &str,
    device_id: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> NewSession {
    NewSession {
        id,
        user_id,
        refresh_token_id: Uuid::new_v4(),
        refresh_token_hash: token_hash.into(),
        device_id: device_id.map(Into::into),
        client: ClientContext::default(),
        amr: "pwd".into(),
        created_at: now,
        expires_at: now + Duration::hours(8),
        rehash: None,
        device_fingerprint: None,
        commit_by: None,
        completes_challenge: None,
    }
}

async fn contract(store: Arc<dyn Store>, probe: Probe) {
    store.ping().await.unwrap();
    let u = new_user("contract@example.com", &"a".repeat(64));
    let id = u.id;
    assert_eq!(
        store.create_user(u).await.unwrap(),
        CreateUserOutcome::Created
    );
    assert_eq!(
        store
            .create_user(new_user("contract@example.com", &"b".repeat(64)))
            .await
            .unwrap(),
        CreateUserOutcome::EmailTaken
    );
    // The mail is written with the account, and not for the refused duplicate.
    assert_eq!(store.outbox_stats(Utc::now()).await.unwrap().pending, 1);
    let found = store
        .find_user_by_email(&Email::parse("contract@example.com", "e").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);
    assert!(!found.email_verified);
    assert_eq!(found.first_name.as_deref(), Some("Ana"));
    assert!(store
        .find_user_by_id(Uuid::new_v4())
        .await
        .unwrap()
        .is_none());

    // Tokens: wrong, expired, then right once.
    let now = Utc::now();
    assert_eq!(
        store
            .consume_verification_token(&"c".repeat(64), now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume_verification_token(&"a".repeat(64), now + Duration::hours(25))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume_verification_token(&"a".repeat(64), now)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        store
            .consume_verification_token(&"a".repeat(64), now)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .find_user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    store
        .add_verification_token(NewVerificationToken {
            user_id: id,
            token_hash: "d".repeat(64),
            expires_at: now + Duration::hours(1),
            now,
            mail: None,
        })
        .await
        .unwrap();

    // Sessions.
    let sid = Uuid::new_v4();
    assert_eq!(
        store
            .open_session(new_session(sid, id, &"e".repeat(64), Some("phone"), now))
            .await
            .unwrap(),
        SessionOpening::Opened {
            device_known: false
        }
    );
    let s = store.find_session(sid).await.unwrap().unwrap();
    assert_eq!(
        (s.user_id, s.device_id.as_deref(), s.invalidated_at),
        (id, Some("phone"), None)
    );
    // Opening a session records the sign-in on the account.
    let signed_in = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        signed_in.last_login_at.map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );
    // A disabled account, or none, gets no session and no mark.
    assert!(store.set_user_active(id, false, now).await.unwrap());
    let refused = Uuid::new_v4();
    let mut later = new_session(refused, id, &"f".repeat(64), None, now);
    later.created_at = now + Duration::seconds(5);
    later.rehash = Some("$argon2id$refused".into());
    assert_eq!(
        store.open_session(later).await.unwrap(),
        SessionOpening::AccountDisabled
    );
    assert!(store.find_session(refused).await.unwrap().is_none());
    let unchanged = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (unchanged.last_login_at, unchanged.password_hash),
        (signed_in.last_login_at, signed_in.password_hash)
    );
    assert!(store.set_user_active(id, true, now).await.unwrap());
    let nobody = new_session(refused, Uuid::new_v4(), &"f".repeat(64), None, now);
    assert_eq!(
        store.open_session(nobody).await.unwrap(),
        SessionOpening::NoAccount
    );
    assert!(store.find_session(refused).await.unwrap().is_none());
    // A device the account knows is touched by the opening itself; one it
    // does not know is left alone (and nothing is created for it).
    store
        .record_device(DeviceSighting {
            id: Uuid::new_v4(),
            user_id: id,
            fingerprint: "known-device".into(),
            client: ClientContext::default(),
            signed_in_before: false,
            now,
            mail: None,
        })
        .await
        .unwrap();
    let later = now + Duration::minutes(5);
    let from = ClientContext {
        user_agent: Some("phone-app/2.0".into()),
        ip: Some("192.0.2.7".parse().unwrap()),
    };
    for (fingerprint, known) in [("known-device", true), ("other-device", false)] {
        let mut opening = new_session(Uuid::new_v4(), id, &fingerprint.repeat(4), None, later);
        opening.client = from.clone();
        opening.device_fingerprint = Some(fingerprint.into());
        assert_eq!(
            store.open_session(opening).await.unwrap(),
            SessionOpening::Opened {
                device_known: known
            },
            "{fingerprint}"
        );
    }
    let devices = store.list_devices(id, None).await.unwrap();
    assert_eq!(
        devices.len(),
        1,
        "an unknown device is not recorded by the opening"
    );
    let seen = &devices[0].device;
    let at_ms = seen.last_seen_at.map(|t| t.timestamp_millis());
    assert_eq!(
        (at_ms, seen.user_agent.as_deref(), seen.ip_address),
        (
            Some(later.timestamp_millis()),
            Some("phone-app/2.0"),
            from.ip
        )
    );

    // An opening that completes a second-factor challenge spends it; one
    // whose challenge is spent already opens nothing.
    let challenge = NewMfaChallenge {
        id: Uuid::new_v4(),
        user_id: id,
        token_hash: "p".repeat(64),
        device_id: None,
        methods: "email_otp".into(),
        expires_at: now + Duration::minutes(5),
        now,
        admit: Box::new(|_| true),
    };
    let challenge_id = challenge.id;
    assert!(store.create_mfa_challenge(challenge).await.unwrap());
    let live = || LiveChallenge {
        now,
        max_attempts: 5,
    };
    let unspent = store.find_mfa_challenge(&"p".repeat(64), live()).await;
    assert!(unspent.unwrap().is_some());
    let (completing, replayed) = (Uuid::new_v4(), Uuid::new_v4());
    for (session, token, opened) in [
        (
            completing,
            "q",
            SessionOpening::Opened {
                device_known: false,
            },
        ),
        (replayed, "r", SessionOpening::ChallengeSpent),
    ] {
        let mut opening = new_session(session, id, &token.repeat(64), None, now);
        opening.completes_challenge = Some(challenge_id);
        assert_eq!(store.open_session(opening).await.unwrap(), opened);
    }
    let spent = store.find_mfa_challenge(&"p".repeat(64), live()).await;
    assert!(spent.unwrap().is_none());
    assert!(store.find_session(completing).await.unwrap().is_some());
    assert!(store.find_session(replayed).await.unwrap().is_none());

    // Lockouts persist.
    assert_eq!(store.load_lockout("k@example.com").await.unwrap(), None);
    let rec = LockoutRecord {
        attempts: 3,
        failures: 2,
        window_started_at: Some(Utc::now()),
        locked_until: Some(Utc::now() + Duration::minutes(15)),
    };
    store
        .update_lockout(
            "k@example.com",
            LockoutUpdate::new(Utc::now(), Box::new(move |_| rec)),
        )
        .await
        .unwrap();
    let back = store.load_lockout("k@example.com").await.unwrap().unwrap();
    assert_eq!((back.attempts, back.failures), (3, 2));
    // Transitions are applied atomically under concurrency.
    let bumps = (0..20).map(|_| {
        let store = store.clone();
        async move {
            store
                .update_lockout(
                    "race@example.com",
                    LockoutUpdate::new(
                        Utc::now(),
                        Box::new(|r| LockoutRecord {
                            attempts: r.attempts + 1,
                            ..r
                        }),
                    ),
                )
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(bumps).await;
    assert_eq!(
        store
            .load_lockout("race@example.com")
            .await
            .unwrap()
            .unwrap()
            .attempts,
        20
    );
    assert_eq!(
        back.locked_until.unwrap().timestamp_millis(),
        rec.locked_until.unwrap().timestamp_millis()
    );

    // Login bookkeeping and audit.
    store
        .record_login_failure(id, reported(2, None), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        store
            .find_user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .failed_login_attempts,
        2
    );
    store
        .record_login_success(id, Utc::now(), Some("$argon2id$new".into()))
        .await
        .unwrap();
    let after = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (after.failed_login_attempts, after.password_hash.as_str()),
        (0, "$argon2id$new")
    );
    // So does opening a session, with a new hash.
    store
        .record_login_failure(id, reported(1, None), Utc::now())
        .await
        .unwrap();
    let mut rehashed = new_session(Uuid::new_v4(), id, &"g".repeat(64), None, Utc::now());
    rehashed.rehash = Some("$argon2id$newer".into());
    assert_eq!(
        store.open_session(rehashed).await.unwrap(),
        SessionOpening::Opened {
            device_known: false
        }
    );
    let after = store.find_user_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (after.failed_login_attempts, after.password_hash.as_str()),
        (0, "$argon2id$newer")
    );
    store
        .insert_audit(AuditEvent {
            user_id: Some(id),
            event_type: "login",
            success: false,
            client: ClientContext::default(),
            metadata: serde_json::json!({"reason": "x"}),
            at: Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(probe.count_audit("login", "failure").await.unwrap(), 1);
    let rows = probe.audit_for_user(id, 10).await.unwrap();
    assert_eq!(rows[0].event_type, "login");
    assert_eq!(rows[0].metadata["reason"], "x");
    assert_eq!(probe.consents_for_user(id).await.unwrap().len(), 1);

    // Two reset links of one user, the later-created one committed first:
    // the later-created one is the one that works.
    let reset = |hash: &str, at: chrono::DateTime<Utc>| NewResetToken {
        user_id: id,
        token_hash: hash.to_string(),
        expires_at: at + Duration::hours(1),
        now: at,
        admit: Box::new(|_| true),
        mail: None,
    };
    let t0 = Utc::now();
    let (newer, older) = ("n".repeat(64), "o".repeat(64));
    assert!(store
        .add_reset_token(reset(&newer, t0 + Duration::seconds(1)))
        .await
        .unwrap());
    assert!(store.add_reset_token(reset(&older, t0)).await.unwrap());
    let later = t0 + Duration::seconds(2);
    assert_eq!(store.peek_reset_token(&older, later).await.unwrap(), None);
    assert_eq!(
        store.peek_reset_token(&newer, later).await.unwrap(),
        Some(id)
    );

    // The first key recorded is the one every later start is told; only a
    // replacement changes it.
    assert_eq!(store.key_fingerprint("k", "first").await.unwrap(), "first");
    assert_eq!(store.key_fingerprint("k", "second").await.unwrap(), "first");
    store.replace_key_fingerprint("k", "second").await.unwrap();
    assert_eq!(store.key_fingerprint("k", "third").await.unwrap(), "second");
}

/// A migrated PostgreSQL store on `db` with a pool of `size` connections.
async fn pg_store(db: &TestDatabase, size: u32) -> PgStore {
    let store = PgStore::connect(
        &secrecy::SecretString::from(db.url.clone()),
        &Default::default(),
        size,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
}

#[actix_web::test]
async fn postgres_passes_the_contract() {
    let db = TestDatabase::create().await;
    let store = pg_store(&db, 4).await;
    contract(Arc::new(store), Probe::Postgres(db.url.clone())).await;
}

#[actix_web::test]
async fn sqlite_passes_the_contract() {
    let dir = TempDir::new();
    let path = dir.0.join("c.db");
    let store = SqliteStore::open(&path).unwrap();
    contract(Arc::new(store), Probe::Sqlite(path)).await;
}

/// A rotation given the idle cutoff (which PostgreSQL writes with one
/// statement, without a decision, when every condition holds) answers what
/// the rule answers in each case the rule tells apart: a live session
/// rotates, once; a spent token revokes its family; a session ended on its
/// row alone, past its end, or idle, is not rotated.
async fn rotations_without_a_decision_agree_with_the_rule(store: Arc<dyn Store>, probe: Probe) {
    use suma_auth::domain::refresh::RefreshPolicy;

    let u = new_user("rotate@example.com", &"a".repeat(64));
    let user_id = u.id;
    store.create_user(u).await.unwrap();
    let opened = Utc::now() - Duration::minutes(1);
    let idle = Duration::minutes(15);
    let policy = RefreshPolicy {
        idle_timeout: idle,
        reuse_grace: Duration::zero(),
    };
    let open = async |token: &str| {
        let sid = Uuid::new_v4();
        store
            .open_session(new_session(sid, user_id, token, None, opened))
            .await
            .unwrap();
        sid
    };
    let rotate_idle = async |presented: &str, successor: &str, now, idle| {
        let policy = RefreshPolicy {
            idle_timeout: idle,
            ..policy
        };
        let rotation = Rotation {
            presented_hash: presented.into(),
            new_id: Uuid::new_v4(),
            new_hash: successor.into(),
            now,
            active_since: Some(now - idle),
            commit_by: None,
        };
        store
            .rotate_refresh_token(
                rotation,
                Box::new(move |s| policy.decide(s, None, now)),
                None,
            )
            .await
            .unwrap()
    };
    let rotate = async |presented: &str, successor: &str, now| {
        rotate_idle(presented, successor, now, idle).await
    };
    let now = Utc::now();

    // Live: rotated, with the session's columns and the activity of now.
    let live = open(&"1".repeat(64)).await;
    match rotate(&"1".repeat(64), &"2".repeat(64), now).await {
        RotateOutcome::Rotated(s) => {
            assert_eq!((s.id, s.user_id, s.amr.as_str()), (live, user_id, "pwd"));
            assert_eq!(
                s.last_activity_at.timestamp_millis(),
                now.timestamp_millis()
            );
            let end = opened + Duration::hours(8);
            assert_eq!(s.expires_at.timestamp_millis(), end.timestamp_millis());
            assert!(s.invalidated_at.is_none());
        }
        other => panic!("a live session was not rotated: {other:?}"),
    }
    // The successor rotates; the spent token presented again revokes the family.
    let later = now + Duration::seconds(1);
    assert!(matches!(
        rotate(&"2".repeat(64), &"3".repeat(64), later).await,
        RotateOutcome::Rotated(_)
    ));
    let outcome = rotate(&"1".repeat(64), &"4".repeat(64), later).await;
    assert!(
        matches!(outcome, RotateOutcome::Reused { session_id, was_live: true, .. } if session_id == live),
        "{outcome:?}"
    );
    // The family's live token is revoked with it (the session was no longer live).
    let outcome = rotate(&"3".repeat(64), &"5".repeat(64), later).await;
    assert!(
        matches!(
            outcome,
            RotateOutcome::Reused {
                was_live: false,
                ..
            }
        ),
        "{outcome:?}"
    );

    // Ended on its row alone: its unspent token is refused.
    let ended = open(&"6".repeat(64)).await;
    probe.end_session_row(ended).await;
    let outcome = rotate(&"6".repeat(64), &"7".repeat(64), now).await;
    assert!(
        matches!(outcome, RotateOutcome::Invalid),
        "ended: {outcome:?}"
    );

    // Past its end (eight hours after it opened), with an idle timeout
    // longer than that: only the end refuses it.
    open(&"8".repeat(64)).await;
    let at = opened + Duration::hours(9);
    let outcome = rotate_idle(&"8".repeat(64), &"9".repeat(64), at, Duration::hours(10)).await;
    assert!(
        matches!(outcome, RotateOutcome::Expired),
        "past its end: {outcome:?}"
    );

    // Idle: no activity for longer than the idle timeout, though before its end.
    open(&"a".repeat(64)).await;
    let outcome = rotate(
        &"a".repeat(64),
        &"b".repeat(64),
        opened + idle + Duration::minutes(1),
    )
    .await;
    assert!(
        matches!(outcome, RotateOutcome::Expired),
        "idle: {outcome:?}"
    );

    // Unknown.
    let outcome = rotate(&"c".repeat(64), &"d".repeat(64), now).await;
    assert!(
        matches!(outcome, RotateOutcome::Invalid),
        "unknown: {outcome:?}"
    );
    // None of the refused rotations issued its successor.
    for hash in ["4", "5", "7", "9", "b", "d"] {
        assert_eq!(
            store
                .find_session_by_refresh(&hash.repeat(64))
                .await
                .unwrap(),
            None,
            "{hash}"
        );
    }
}

#[actix_web::test]
async fn postgres_rotations_without_a_decision_agree_with_the_rule() {
    let db = TestDatabase::create().await;
    let store = pg_store(&db, 2).await;
    rotations_without_a_decision_agree_with_the_rule(
        Arc::new(store),
        Probe::Postgres(db.url.clone()),
    )
    .await;
}

#[actix_web::test]
async fn sqlite_rotations_without_a_decision_agree_with_the_rule() {
    let dir = TempDir::new();
    let path = dir.0.join("r.db");
    let store = SqliteStore::open(&path).unwrap();
    rotations_without_a_decision_agree_with_the_rule(Arc::new(store), Probe::Sqlite(path)).await;
}

/// PostgreSQL decides a rotation on a read taken without a lock and writes
/// it with one conditional statement. A session that ends between the two
/// (here as an idle end does: the session row alone) makes that statement
/// write nothing: the rotation is decided again under lock and refused, and
/// no token of the ended session becomes usable.
#[actix_web::test]
async fn a_session_ended_between_the_read_and_the_write_is_not_rotated() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use suma_auth::domain::refresh::{RefreshPolicy, RefreshState};

    let db = TestDatabase::create().await;
    let store = pg_store(&db, 4).await;
    let store: Arc<dyn Store> = Arc::new(store);
    let u = new_user("race@example.com", &"a".repeat(64));
    let user_id = u.id;
    store.create_user(u).await.unwrap();
    let (sid, now) = (Uuid::new_v4(), Utc::now());
    store
        .open_session(new_session(sid, user_id, &"e".repeat(64), None, now))
        .await
        .unwrap();

    let policy = RefreshPolicy {
        idle_timeout: Duration::minutes(15),
        reuse_grace: Duration::seconds(10),
    };
    let ended = Arc::new(AtomicBool::new(false));
    let rule = {
        let (ended, url) = (ended.clone(), db.url.clone());
        Box::new(move |state: &RefreshState| {
            if !ended.swap(true, Ordering::SeqCst) {
                // After the read, before the write: another connection ends
                // the session.
                let url = url.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                            .await
                            .unwrap();
                        tokio::spawn(conn);
                        client
                            .execute(
                                "UPDATE sessions SET invalidated_at = now(), revoked_reason = 'idle_timeout' WHERE id = $1",
                                &[&sid],
                            )
                            .await
                            .unwrap();
                    });
                })
                .join()
                .unwrap();
            }
            policy.decide(state, None, now)
        })
    };
    let rotation = Rotation {
        presented_hash: "e".repeat(64),
        new_id: Uuid::new_v4(),
        new_hash: "f".repeat(64),
        now,
        active_since: None,
        commit_by: None,
    };
    let outcome = store
        .rotate_refresh_token(rotation.clone(), rule, None)
        .await
        .unwrap();
    assert!(ended.load(Ordering::SeqCst));
    assert!(
        matches!(outcome, RotateOutcome::Invalid),
        "a session ended after the read was rotated: {outcome:?}"
    );
    // Nothing was written: no successor, and the presented token is unspent
    // (its session's end refuses it).
    assert_eq!(
        store
            .find_session_by_refresh(&"f".repeat(64))
            .await
            .unwrap(),
        None
    );
    let again = Rotation {
        new_id: Uuid::new_v4(),
        new_hash: "g".repeat(64),
        ..rotation
    };
    let outcome = store
        .rotate_refresh_token(again, Box::new(move |s| policy.decide(s, None, now)), None)
        .await
        .unwrap();
    assert!(matches!(outcome, RotateOutcome::Invalid), "{outcome:?}");
}

/// On PostgreSQL a rotation's writes are heap-only (HOT) updates: the spent
/// token and the session's activity change no indexed column (no index
/// predicate reads them either) and the pages keep room for the new row
/// versions, so a refresh writes no index entry for them.
#[actix_web::test]
async fn rotations_update_tokens_and_sessions_without_index_writes() {
    use suma_auth::domain::refresh::RefreshPolicy;

    let db = TestDatabase::create().await;
    let store = pg_store(&db, 2).await;
    let u = new_user("hot@example.com", &"a".repeat(64));
    let user_id = u.id;
    store.create_user(u).await.unwrap();
    let now = Utc::now();
    store
        .open_session(new_session(
            Uuid::new_v4(),
            user_id,
            &format!("{:064}", 0),
            None,
            now,
        ))
        .await
        .unwrap();
    let policy = RefreshPolicy {
        idle_timeout: Duration::minutes(15),
        reuse_grace: Duration::seconds(10),
    };
    const ROTATIONS: i64 = 40;
    for i in 0..ROTATIONS {
        let rotation = Rotation {
            presented_hash: format!("{i:064}"),
            new_id: Uuid::new_v4(),
            new_hash: format!("{:064}", i + 1),
            now: now + Duration::seconds(i),
            active_since: Some(now - Duration::minutes(15)),
            commit_by: None,
        };
        let outcome = store
            .rotate_refresh_token(
                rotation,
                Box::new(move |s| policy.decide(s, None, now)),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(outcome, RotateOutcome::Rotated(_)), "{outcome:?}");
    }
    // A backend's statistics reach the shared counters when it ends.
    drop(store);
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let start = std::time::Instant::now();
    loop {
        let rows = client
            .query(
                "SELECT relname::text, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
                 WHERE relname IN ('refresh_tokens', 'sessions') ORDER BY relname",
                &[],
            )
            .await
            .unwrap();
        let counts: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if counts.iter().all(|(_, upd, _)| *upd >= ROTATIONS) {
            for (table, upd, hot) in counts {
                assert!(
                    hot * 10 >= upd * 9,
                    "{table}: {hot} of {upd} updates were heap-only"
                );
            }
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the statistics did not arrive: {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every sign-in and every refresh inserts a `refresh_tokens` row, which
/// takes an entry in each index of the table: only the indexes a statement
/// reads are kept.
#[actix_web::test]
async fn refresh_tokens_keep_only_the_indexes_statements_read() {
    let db = TestDatabase::create().await;
    let store = pg_store(&db, 1).await;
    drop(store);
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let names: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'refresh_tokens' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "idx_refresh_tokens_expires_at", // the expiry sweep
            "idx_refresh_tokens_session_id", // a session's tokens (revocation)
            "idx_refresh_tokens_user_id",    // a user's tokens (erasure, the cascade)
            "refresh_tokens_pkey",           // the rotation, by id
            "refresh_tokens_token_hash_key", // the presented token
        ]
    );
}
