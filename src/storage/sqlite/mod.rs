//! Embedded SQLite backend: one file under the data directory, one connection
//! in WAL mode used from the blocking pool. The single connection serialises
//! writers, which is what SQLite does anyway; it is the single-node default.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::*;

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 1;

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn q(e: rusqlite::Error) -> StorageError {
    StorageError::Query(e.to_string())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn ms_opt(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn time_opt(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.map(time)
}

fn uuid(v: String) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn ip(v: Option<String>) -> Option<IpAddr> {
    v.and_then(|s| s.parse().ok())
}

impl SqliteStore {
    /// Opens (creating when absent) the database file and applies the schema.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StorageError::Unavailable(format!("{}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| StorageError::Unavailable(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(q)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(q)?;
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| StorageError::Migration(e.to_string()))?;
        } else if version > SCHEMA_VERSION {
            return Err(StorageError::Migration(format!(
                "the database file is at schema version {version}, newer than this binary ({SCHEMA_VERSION})"
            )));
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StorageError::Unavailable("the database lock is poisoned".into()))?;
            f(&mut guard).map_err(q)
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))?
    }
}

const USER_COLUMNS: &str = "id, email, email_verified, password_hash, first_name, last_name, \
     two_factor_enabled, two_factor_method, is_active, failed_login_attempts, locked_until, \
     created_at, last_login_at";

fn user(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: uuid(r.get(0)?)?,
        email: Email::from_stored(r.get(1)?),
        email_verified: r.get(2)?,
        password_hash: r.get(3)?,
        first_name: r.get(4)?,
        last_name: r.get(5)?,
        two_factor_enabled: r.get(6)?,
        two_factor_method: r.get(7)?,
        is_active: r.get(8)?,
        failed_login_attempts: r.get(9)?,
        locked_until: time_opt(r.get(10)?),
        created_at: time(r.get(11)?),
        last_login_at: time_opt(r.get(12)?),
    })
}

fn lockout(r: &Row<'_>) -> rusqlite::Result<LockoutRecord> {
    Ok(LockoutRecord {
        attempts: r.get::<_, i64>(0)?.max(0) as u32,
        failures: r.get::<_, i64>(1)?.max(0) as u32,
        window_started_at: time_opt(r.get(2)?),
        locked_until: time_opt(r.get(3)?),
    })
}

fn session(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: uuid(r.get(0)?)?,
        user_id: uuid(r.get(1)?)?,
        device_id: r.get(2)?,
        user_agent: r.get(3)?,
        ip_address: ip(r.get(4)?),
        amr: r.get(5)?,
        created_at: time(r.get(6)?),
        last_activity_at: time(r.get(7)?),
        expires_at: time(r.get(8)?),
        invalidated_at: time_opt(r.get(9)?),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let now = ms(new.now);
            let id = new.id.to_string();
            let ip = new.client.ip.map(|i| i.to_string());
            let inserted = tx.execute(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, created_at, updated_at, password_changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6) ON CONFLICT (email) DO NOTHING",
                params![id, new.email.as_str(), new.password_hash, new.first_name, new.last_name, now],
            )?;
            if inserted == 0 {
                return Ok(CreateUserOutcome::EmailTaken);
            }
            for consent in &new.consents {
                tx.execute(
                    "INSERT INTO consent_records (id, user_id, consent_type, consent_version, consented, ip_address, user_agent, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    params![Uuid::new_v4().to_string(), id, consent.consent_type, consent.version, consent.consented,
                            ip, new.client.user_agent, now],
                )?;
            }
            tx.execute(
                "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![Uuid::new_v4().to_string(), id, new.password_hash, now],
            )?;
            tx.execute(
                "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Uuid::new_v4().to_string(), id, new.verification_token_hash, ms(new.verification_expires_at), now],
            )?;
            tx.execute(
                "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
                 VALUES (?1, ?2, 'registration', 'success', ?3, ?4, '{}', ?5)",
                params![Uuid::new_v4().to_string(), id, ip, new.client.user_agent, now],
            )?;
            tx.commit()?;
            Ok(CreateUserOutcome::Created)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let email = email.as_str().to_string();
        self.run(move |c| {
            c.query_row(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = ?1 AND deleted_at IS NULL"
                ),
                params![email],
                user,
            )
            .optional()
        })
        .await
    }

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"),
                params![id.to_string()],
                user,
            )
            .optional()
        })
        .await
    }

    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Uuid::new_v4().to_string(), user_id.to_string(), token_hash, ms(expires_at), ms(Utc::now())],
            )
            .map(|_| ())
        })
        .await
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            let user_id: Option<String> = tx
                .query_row(
                    "UPDATE email_verification_tokens SET verified_at = ?2
                     WHERE token_hash = ?1 AND verified_at IS NULL AND expires_at > ?2
                     RETURNING user_id",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(user_id) = user_id else {
                return Ok(None);
            };
            let updated = tx.execute(
                "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                params![user_id, ms(now)],
            )?;
            if updated == 0 {
                return Ok(None);
            }
            tx.commit()?;
            uuid(user_id).map(Some)
        })
        .await
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "UPDATE users SET last_login_at = ?2, failed_login_attempts = 0, locked_until = NULL, is_locked = 0,
                     password_hash = COALESCE(?3, password_hash), updated_at = ?2
                 WHERE id = ?1",
                params![user_id.to_string(), ms(now), rehash],
            )
            .map(|_| ())
        })
        .await
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        attempts: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "UPDATE users SET failed_login_attempts = ?2, locked_until = COALESCE(?3, locked_until),
                     is_locked = (?3 IS NOT NULL), updated_at = ?4
                 WHERE id = ?1",
                params![user_id.to_string(), attempts, ms_opt(locked_until), ms(Utc::now())],
            )
            .map(|_| ())
        })
        .await
    }

    async fn create_session(&self, s: NewSession) -> StoreResult<()> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let ip = s.client.ip.map(|i| i.to_string());
            tx.execute(
                "INSERT INTO sessions (id, user_id, device_id, user_agent, ip_address, amr, expires_at, created_at, last_activity_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![s.id.to_string(), s.user_id.to_string(), s.device_id, s.client.user_agent, ip, s.amr,
                        ms(s.expires_at), ms(s.created_at)],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent, ip_address, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![s.refresh_token_id.to_string(), s.user_id.to_string(), s.id.to_string(), s.refresh_token_hash,
                        s.device_id, s.client.user_agent, ip, ms(s.expires_at), ms(s.created_at)],
            )?;
            tx.commit()
        })
        .await
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        self.run(move |c| {
            c.query_row(
                "SELECT id, user_id, device_id, user_agent, ip_address, amr, created_at, last_activity_at, expires_at, invalidated_at
                 FROM sessions WHERE id = ?1",
                params![id.to_string()],
                session,
            )
            .optional()
        })
        .await
    }

    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    Uuid::new_v4().to_string(),
                    e.user_id.map(|u| u.to_string()),
                    e.event_type,
                    if e.success { "success" } else { "failure" },
                    e.client.ip.map(|i| i.to_string()),
                    e.client.user_agent,
                    e.metadata.to_string(),
                    ms(e.at)
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let key = key.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                params![key],
                lockout,
            )
            .optional()
        })
        .await
    }

    async fn save_lockout(&self, key: &str, r: &LockoutRecord) -> StoreResult<()> {
        let key = key.to_string();
        let r = *r;
        self.run(move |c| {
            c.execute(
                "INSERT INTO login_lockouts (account_key, attempts, failures, window_started_at, locked_until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_key) DO UPDATE SET attempts = ?2, failures = ?3, window_started_at = ?4, locked_until = ?5, updated_at = ?6",
                params![key, r.attempts, r.failures, ms_opt(r.window_started_at), ms_opt(r.locked_until), ms(Utc::now())],
            )
            .map(|_| ())
        })
        .await
    }

    async fn update_lockout(&self, key: &str, transition: LockoutTransition) -> StoreResult<()> {
        let key = key.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .query_row(
                    "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                    params![key],
                    lockout,
                )
                .optional()?
                .unwrap_or_default();
            let next = transition(current);
            tx.execute(
                "INSERT INTO login_lockouts (account_key, attempts, failures, window_started_at, locked_until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_key) DO UPDATE SET attempts = ?2, failures = ?3, window_started_at = ?4, locked_until = ?5, updated_at = ?6",
                params![key, next.attempts, next.failures, ms_opt(next.window_started_at), ms_opt(next.locked_until), ms(Utc::now())],
            )?;
            tx.commit()
        })
        .await
    }

    async fn audit_for_user(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at
                 FROM audit_logs WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user_id.to_string(), limit], |r| {
                let metadata: Option<String> = r.get(6)?;
                Ok(AuditRecord {
                    id: uuid(r.get(0)?)?,
                    user_id: r.get::<_, Option<String>>(1)?.map(uuid).transpose()?,
                    event_type: r.get(2)?,
                    event_status: r.get(3)?,
                    ip_address: ip(r.get(4)?),
                    user_agent: r.get(5)?,
                    metadata: metadata
                        .and_then(|m| serde_json::from_str(&m).ok())
                        .unwrap_or(serde_json::Value::Null),
                    created_at: time(r.get(7)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn count_audit(&self, event_type: &str, status: &str) -> StoreResult<u64> {
        let (event_type, status) = (event_type.to_string(), status.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_logs WHERE event_type = ?1 AND event_status = ?2",
                params![event_type, status],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
        .await
    }

    async fn consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT consent_type, consent_version, consented, ip_address, user_agent, created_at
                 FROM consent_records WHERE user_id = ?1 ORDER BY created_at DESC, consent_type",
            )?;
            let rows = stmt.query_map(params![user_id.to_string()], |r| {
                Ok(ConsentRecord {
                    consent_type: r.get(0)?,
                    consent_version: r.get(1)?,
                    consented: r.get(2)?,
                    ip_address: ip(r.get(3)?),
                    user_agent: r.get(4)?,
                    created_at: time(r.get(5)?),
                })
            })?;
            rows.collect()
        })
        .await
    }
}
