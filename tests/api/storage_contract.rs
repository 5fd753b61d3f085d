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
    store
        .create_session(NewSession {
            id: sid,
            user_id: id,
            refresh_token_id: Uuid::new_v4(),
            refresh_token_hash: "e".repeat(64),
            device_id: Some("phone".into()),
            client: ClientContext::default(),
            amr: "pwd".into(),
            created_at: now,
            expires_at: now + Duration::hours(8),
        })
        .await
        .unwrap();
    let s = store.find_session(sid).await.unwrap().unwrap();
    assert_eq!(
        (s.user_id, s.device_id.as_deref(), s.invalidated_at),
        (id, Some("phone"), None)
    );

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
}

#[actix_web::test]
async fn postgres_passes_the_contract() {
    let db = TestDatabase::create().await;
    let store = PgStore::connect(
        &secrecy::SecretString::from(db.url.clone()),
        &Default::default(),
        4,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    contract(Arc::new(store), Probe::Postgres(db.url.clone())).await;
}

#[actix_web::test]
async fn sqlite_passes_the_contract() {
    let dir = TempDir::new();
    let path = dir.0.join("c.db");
    let store = SqliteStore::open(&path).unwrap();
    contract(Arc::new(store), Probe::Sqlite(path)).await;
}
