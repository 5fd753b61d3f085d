//! Embedded SQLite backend: one file under the data directory, one connection
//! in WAL mode used from the blocking pool. The single connection serialises
//! writers, which is what SQLite does anyway; it is the single-node default.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use uuid::Uuid;

use super::*;

const SCHEMA: &str = include_str!("schema.sql");
/// Steps after the initial schema, applied in order: (version reached, SQL).
const UPGRADES: &[(i64, &str)] = &[
    (2, include_str!("002_mail_outbox.sql")),
    (3, include_str!("003_two_factor.sql")),
];
const SCHEMA_VERSION: i64 = 3;

#[derive(Clone)]
pub struct SqliteStore {
    /// The one writer (SQLite has one anyway).
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections: in WAL mode readers never wait for the writer.
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// Users by id, for the hot `GET /me` path. This store is the only writer
    /// of its file (one instance), so clearing the cache on every write keeps
    /// it exact.
    users: Arc<Mutex<HashMap<Uuid, UserRecord>>>,
    /// Bumped before and after every write; a read fills the cache only when
    /// no write began or ended while it ran.
    generation: Arc<AtomicU64>,
}

/// Users kept in the cache at most (it is cleared when full).
const USER_CACHE: usize = 10_000;

/// Read connections per store.
const READERS: usize = 4;

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
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))
                .map_err(|e| StorageError::Migration(e.to_string()))?;
        }
        for (to, sql) in UPGRADES.iter().filter(|(to, _)| *to > version.max(1)) {
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version = {to}; COMMIT;"))
                .map_err(|e| StorageError::Migration(e.to_string()))?;
        }
        if version > SCHEMA_VERSION {
            return Err(StorageError::Migration(format!(
                "the database file is at schema version {version}, newer than this binary ({SCHEMA_VERSION})"
            )));
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
            reader
                .execute_batch("PRAGMA busy_timeout = 5000;")
                .map_err(q)?;
            readers.push(Mutex::new(reader));
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            users: Arc::default(),
            generation: Arc::default(),
        })
    }

    /// Runs a read on a free read connection (or waits for one).
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let readers = self.readers.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            for i in 0..n {
                if let Ok(mut guard) = readers[(start + i) % n].try_lock() {
                    return f(&mut guard).map_err(q);
                }
            }
            let mut guard = readers[start % n].lock().map_err(|_| {
                StorageError::Unavailable("a read connection lock is poisoned".into())
            })?;
            f(&mut guard).map_err(q)
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))?
    }

    /// Runs a write that does not change the `users` table.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write(f, false).await
    }

    /// Runs a write that may change users: the user cache is dropped around it.
    async fn run_users<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write(f, true).await
    }

    async fn write<T, F>(&self, f: F, touches_users: bool) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.conn.clone();
        let (users, generation) = (self.users.clone(), self.generation.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StorageError::Unavailable("the database lock is poisoned".into()))?;
            if !touches_users {
                return f(&mut guard).map_err(q);
            }
            generation.fetch_add(1, Ordering::SeqCst);
            let result = f(&mut guard).map_err(q);
            if let Ok(mut users) = users.lock() {
                users.clear();
            }
            generation.fetch_add(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| StorageError::Unavailable(e.to_string()))?
    }
}

const USER_COLUMNS: &str = "id, email, email_verified, password_hash, first_name, last_name, \
     two_factor_enabled, two_factor_method, is_active, failed_login_attempts, locked_until, \
     created_at, last_login_at, email_otp_enabled, totp_enabled, totp_secret_sealed, totp_pending_sealed";

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
        email_otp_enabled: r.get(13)?,
        totp_enabled: r.get(14)?,
        totp_secret_sealed: r.get(15)?,
        totp_pending_sealed: r.get(16)?,
    })
}

/// Writes an outbox row inside the caller's transaction.
fn insert_outbox(
    c: &Connection,
    mail: Option<&OutboxMail>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    if let Some(m) = mail {
        c.execute(
            "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![m.id.to_string(), m.template, m.payload, ms(now)],
        )?;
    }
    Ok(())
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
    session_at(r, 0)
}

/// A session whose columns start at index `at`.
fn session_at(r: &Row<'_>, at: usize) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: uuid(r.get(at)?)?,
        user_id: uuid(r.get(at + 1)?)?,
        device_id: r.get(at + 2)?,
        user_agent: r.get(at + 3)?,
        ip_address: ip(r.get(at + 4)?),
        amr: r.get(at + 5)?,
        created_at: time(r.get(at + 6)?),
        last_activity_at: time(r.get(at + 7)?),
        expires_at: time(r.get(at + 8)?),
        invalidated_at: time_opt(r.get(at + 9)?),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome> {
        self.run_users(move |c| {
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
            insert_outbox(&tx, new.mail.as_ref(), new.now)?;
            tx.commit()?;
            Ok(CreateUserOutcome::Created)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let email = email.as_str().to_string();
        self.read(move |c| {
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
        if let Some(hit) = self.users.lock().ok().and_then(|u| u.get(&id).cloned()) {
            return Ok(Some(hit));
        }
        let before = self.generation.load(Ordering::SeqCst);
        let found = self
            .read(move |c| {
                c.query_row(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"
                    ),
                    params![id.to_string()],
                    user,
                )
                .optional()
            })
            .await?;
        if let (Some(record), Ok(mut users)) = (&found, self.users.lock()) {
            if self.generation.load(Ordering::SeqCst) == before {
                if users.len() >= USER_CACHE {
                    users.clear();
                }
                users.insert(id, record.clone());
            }
        }
        Ok(found)
    }

    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Uuid::new_v4().to_string(), user_id.to_string(), token_hash, ms(expires_at), ms(Utc::now())],
            )?;
            insert_outbox(&tx, mail.as_ref(), Utc::now())?;
            tx.commit()
        })
        .await
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run_users(move |c| {
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
        self.run_users(move |c| {
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
        self.run_users(move |c| {
            c.execute(
                "UPDATE users SET
                     failed_login_attempts = CASE WHEN locked_until > ?4 THEN MAX(failed_login_attempts, ?2) ELSE ?2 END,
                     locked_until = COALESCE(?3, locked_until),
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
        self.read(move |c| {
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

    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            let id: Option<Option<String>> = c
                .query_row(
                    "SELECT session_id FROM refresh_tokens WHERE token_hash = ?1",
                    params![token_hash],
                    |r| r.get(0),
                )
                .optional()?;
            id.flatten().map(uuid).transpose()
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

    async fn rotate_refresh_token(&self, r: Rotation) -> StoreResult<RotateOutcome> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    "SELECT rt.id, rt.revoked_at, s.id, s.user_id, s.device_id, s.user_agent, s.ip_address, s.amr,
                            s.created_at, s.last_activity_at, s.expires_at, s.invalidated_at
                     FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = ?1",
                    params![r.presented_hash],
                    |row| {
                        let token_id: String = row.get(0)?;
                        let spent: Option<i64> = row.get(1)?;
                        Ok((token_id, spent, session_at(row, 2)?))
                    },
                )
                .optional()?;
            let Some((token_id, spent, s)) = found else {
                return Ok(RotateOutcome::Invalid);
            };
            let now = ms(r.now);
            if let Some(spent) = spent {
                if now - spent < r.reuse_grace.num_milliseconds() {
                    return Ok(RotateOutcome::Invalid);
                }
                let was_live = tx.execute(
                    "UPDATE sessions SET invalidated_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND invalidated_at IS NULL",
                    params![s.id.to_string(), now, end_reason::REFRESH_TOKEN_REUSE],
                )? > 0;
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE session_id = ?1 AND revoked_at IS NULL",
                    params![s.id.to_string(), now],
                )?;
                tx.commit()?;
                return Ok(RotateOutcome::Reused { session_id: s.id, user_id: s.user_id, was_live });
            }
            let last_activity = r.activity_hint.map_or(s.last_activity_at, |h| h.max(s.last_activity_at));
            if s.invalidated_at.is_some() || s.expires_at <= r.now {
                return Ok(RotateOutcome::Invalid);
            }
            if last_activity + r.idle_timeout <= r.now {
                tx.execute(
                    "UPDATE sessions SET invalidated_at = ?2, revoked_reason = ?3 WHERE id = ?1",
                    params![s.id.to_string(), now, end_reason::IDLE_TIMEOUT],
                )?;
                tx.commit()?;
                return Ok(RotateOutcome::Invalid);
            }
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2, last_used_at = ?2, replaced_by = ?3 WHERE id = ?1",
                params![token_id, now, r.new_id.to_string()],
            )?;
            tx.execute(
                "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent, ip_address, expires_at, created_at, rotation_count)
                 SELECT ?1, user_id, session_id, ?2, device_id, user_agent, ip_address, expires_at, ?3, rotation_count + 1
                 FROM refresh_tokens WHERE id = ?4",
                params![r.new_id.to_string(), r.new_hash, now, token_id],
            )?;
            tx.execute(
                "UPDATE sessions SET last_activity_at = ?2 WHERE id = ?1",
                params![s.id.to_string(), now],
            )?;
            tx.commit()?;
            Ok(RotateOutcome::Rotated(SessionRecord { last_activity_at: r.now, ..s }))
        })
        .await
    }

    async fn revoke_session(
        &self,
        session_id: Uuid,
        user_id: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE sessions SET invalidated_at = ?3, revoked_reason = ?4
                 WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) AND invalidated_at IS NULL",
                params![session_id.to_string(), user_id.map(|u| u.to_string()), ms(now), reason],
            )?;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = ?2 WHERE session_id = ?1 AND revoked_at IS NULL",
                params![session_id.to_string(), ms(now)],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "UPDATE sessions SET invalidated_at = ?3, revoked_reason = ?4
                     WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2) AND invalidated_at IS NULL RETURNING id",
                )?;
                let rows = stmt.query_map(
                    params![user_id.to_string(), except.map(|e| e.to_string()), ms(now), reason],
                    |r| r.get(0),
                )?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for id in &ids {
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = ?2 WHERE session_id = ?1 AND revoked_at IS NULL",
                    params![id, ms(now)],
                )?;
            }
            tx.commit()?;
            ids.into_iter().map(uuid).collect()
        })
        .await
    }

    async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, user_id, device_id, user_agent, ip_address, amr, created_at, last_activity_at, expires_at, invalidated_at
                 FROM sessions WHERE user_id = ?1 AND invalidated_at IS NULL AND expires_at > ?2
                 ORDER BY created_at DESC, rowid DESC",
            )?;
            let rows = stmt.query_map(params![user_id.to_string(), ms(now)], session)?;
            rows.collect()
        })
        .await
    }

    async fn touch_sessions(&self, touches: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        let touches: Vec<(String, i64)> = touches
            .iter()
            .map(|(id, at)| (id.to_string(), ms(*at)))
            .collect();
        self.run(move |c| {
            let tx = c.transaction()?;
            for (id, at) in &touches {
                tx.execute(
                    "UPDATE sessions SET last_activity_at = MAX(last_activity_at, ?2) WHERE id = ?1",
                    params![id, at],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let password_hash = password_hash.to_string();
        self.run_users(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE users SET password_hash = ?2, password_changed_at = ?3, failed_login_attempts = 0,
                     locked_until = NULL, is_locked = 0, updated_at = ?3 WHERE id = ?1",
                params![user_id.to_string(), password_hash, ms(now)],
            )?;
            tx.execute(
                "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![Uuid::new_v4().to_string(), user_id.to_string(), password_hash, ms(now)],
            )?;
            insert_outbox(&tx, mail.as_ref(), now)?;
            tx.commit()
        })
        .await
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT password_hash FROM password_history WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user_id.to_string(), limit], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn add_reset_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        max_per_hour: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let recent: i64 = tx.query_row(
                "SELECT COUNT(*) FROM password_reset_tokens WHERE user_id = ?1 AND created_at > ?2",
                params![user_id.to_string(), ms(now - chrono::Duration::hours(1))],
                |r| r.get(0),
            )?;
            if recent >= i64::from(max_per_hour) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Uuid::new_v4().to_string(), user_id.to_string(), token_hash, ms(expires_at), ms(now)],
            )?;
            insert_outbox(&tx, mail.as_ref(), Utc::now())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT user_id FROM password_reset_tokens WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(uuid).transpose()
        })
        .await
    }

    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id: Option<String> = tx
                .query_row(
                    "UPDATE password_reset_tokens SET used_at = ?2
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE password_reset_tokens SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
                params![id, ms(now)],
            )?;
            tx.commit()?;
            uuid(id).map(Some)
        })
        .await
    }

    async fn enqueue_mail(&self, m: OutboxMail, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![m.id.to_string(), m.template, m.payload, ms(now)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed: Vec<OutboxMail> = {
                let mut stmt = tx.prepare(
                    "UPDATE mail_outbox SET leased_until = ?2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM mail_outbox
                                  WHERE status = 'pending' AND next_attempt_at <= ?1 AND (leased_until IS NULL OR leased_until < ?1)
                                  ORDER BY next_attempt_at LIMIT ?3)
                     RETURNING id, template, payload, attempts, created_at",
                )?;
                let rows = stmt.query_map(params![ms(now), ms(now + lease), limit], |r| {
                    Ok(OutboxMail {
                        id: uuid(r.get(0)?)?,
                        template: r.get(1)?,
                        payload: r.get(2)?,
                        attempts: r.get::<_, i64>(3)?.max(0) as u32,
                        created_at: time(r.get(4)?),
                    })
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "UPDATE mail_outbox SET status = 'sent', sent_at = ?2, payload = '', leased_until = NULL, last_error = NULL WHERE id = ?1",
                params![id.to_string(), ms(now)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()> {
        let error = error.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE mail_outbox SET next_attempt_at = ?2, leased_until = NULL, last_error = ?3 WHERE id = ?1",
                params![id.to_string(), ms(next_attempt_at), error],
            )
            .map(|_| ())
        })
        .await
    }

    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()> {
        let error = error.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE mail_outbox SET status = 'dead', payload = '', leased_until = NULL, last_error = ?2 WHERE id = ?1",
                params![id.to_string(), error],
            )
            .map(|_| ())
        })
        .await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats> {
        self.read(move |c| {
            c.query_row(
                "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'dead'), 0),
                        MIN(CASE WHEN status = 'pending' THEN created_at END)
                 FROM mail_outbox",
                [],
                |r| {
                    let oldest: Option<i64> = r.get(2)?;
                    Ok(OutboxStats {
                        pending: r.get::<_, i64>(0)?.max(0) as u64,
                        dead: r.get::<_, i64>(1)?.max(0) as u64,
                        oldest_pending_secs: oldest
                            .map_or(0.0, |t| (ms(now) - t).max(0) as f64 / 1000.0),
                    })
                },
            )
        })
        .await
    }

    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<()> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO mfa_challenges (id, user_id, token_hash, device_id, methods, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![c.id.to_string(), c.user_id.to_string(), c.token_hash, c.device_id, c.methods, ms(c.expires_at), ms(c.now)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT id, user_id, device_id, methods, otp_code_hash, otp_expires_at FROM mfa_challenges
                 WHERE token_hash = ?1 AND consumed_at IS NULL AND expires_at > ?2 AND attempts < ?3",
                params![token_hash, ms(now), max_attempts],
                |r| {
                    Ok(MfaChallengeRecord {
                        id: uuid(r.get(0)?)?,
                        user_id: uuid(r.get(1)?)?,
                        device_id: r.get(2)?,
                        methods: r.get(3)?,
                        otp_code_hash: r.get(4)?,
                        otp_expires_at: time_opt(r.get(5)?),
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn set_challenge_code(
        &self,
        id: Uuid,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        max_sends: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool> {
        let code_hash = code_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE mfa_challenges SET otp_code_hash = ?2, otp_expires_at = ?3, otp_sends = otp_sends + 1
                 WHERE id = ?1 AND otp_sends < ?4 AND consumed_at IS NULL",
                params![id.to_string(), code_hash, ms(expires_at), max_sends],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_outbox(&tx, mail.as_ref(), Utc::now())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool> {
        self.run(move |c| {
            c.execute(
                "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = ?1 AND attempts < ?2 AND consumed_at IS NULL",
                params![id.to_string(), max_attempts],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        self.run(move |c| {
            c.execute(
                "UPDATE mfa_challenges SET consumed_at = ?2 WHERE id = ?1 AND consumed_at IS NULL",
                params![id.to_string(), ms(now)],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn set_email_otp(
        &self,
        user_id: Uuid,
        enabled: bool,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        self.run_users(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE users SET email_otp_enabled = ?2, two_factor_enabled = (?2 OR totp_enabled),
                     two_factor_method = CASE WHEN totp_enabled AND ?2 THEN 'totp,email' WHEN totp_enabled THEN 'totp' WHEN ?2 THEN 'email' ELSE NULL END
                 WHERE id = ?1",
                params![user_id.to_string(), enabled],
            )?;
            insert_outbox(&tx, mail.as_ref(), Utc::now())?;
            tx.commit()
        })
        .await
    }

    async fn set_totp_pending(&self, user_id: Uuid, sealed: Option<&str>) -> StoreResult<()> {
        let sealed = sealed.map(str::to_string);
        self.run_users(move |c| {
            c.execute(
                "UPDATE users SET totp_pending_sealed = ?2 WHERE id = ?1",
                params![user_id.to_string(), sealed],
            )
            .map(|_| ())
        })
        .await
    }

    async fn enable_totp(
        &self,
        user_id: Uuid,
        pending: &str,
        step: i64,
        recovery_hashes: &[String],
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool> {
        let (pending, hashes) = (pending.to_string(), recovery_hashes.to_vec());
        self.run_users(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE users SET totp_secret_sealed = totp_pending_sealed, totp_pending_sealed = NULL, totp_enabled = 1,
                     totp_last_step = ?3, two_factor_enabled = 1,
                     two_factor_method = CASE WHEN email_otp_enabled THEN 'totp,email' ELSE 'totp' END
                 WHERE id = ?1 AND totp_pending_sealed = ?2",
                params![user_id.to_string(), pending, step],
            )?;
            if n == 0 {
                return Ok(false);
            }
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![user_id.to_string()])?;
            for h in &hashes {
                tx.execute(
                    "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![Uuid::new_v4().to_string(), user_id.to_string(), h, ms(now)],
                )?;
            }
            insert_outbox(&tx, mail.as_ref(), now)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn advance_totp_step(&self, user_id: Uuid, step: i64) -> StoreResult<bool> {
        self.run_users(move |c| {
            c.execute(
                "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![user_id.to_string(), step],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let code_hash = code_hash.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE recovery_codes SET used_at = ?3 WHERE id = (
                     SELECT id FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL LIMIT 1)",
                params![user_id.to_string(), code_hash, ms(now)],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn disable_two_factor(&self, user_id: Uuid) -> StoreResult<()> {
        self.run_users(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE users SET email_otp_enabled = 0, totp_enabled = 0, totp_secret_sealed = NULL,
                     totp_pending_sealed = NULL, totp_last_step = NULL, two_factor_enabled = 0, two_factor_method = NULL
                 WHERE id = ?1",
                params![user_id.to_string()],
            )?;
            tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", params![user_id.to_string()])?;
            tx.commit()
        })
        .await
    }

    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        keep_ended: chrono::Duration,
    ) -> StoreResult<u64> {
        let (now, before) = (ms(now), ms(now - keep_ended));
        self.run(move |c| {
            let mut total = 0;
            for sql in [
                "DELETE FROM refresh_tokens WHERE expires_at < ?1 OR session_id IN (SELECT id FROM sessions WHERE invalidated_at < ?2)",
                "DELETE FROM sessions WHERE expires_at < ?1 OR (invalidated_at IS NOT NULL AND invalidated_at < ?2)",
                "DELETE FROM email_verification_tokens WHERE expires_at < ?1 OR (verified_at IS NOT NULL AND verified_at < ?2)",
                "DELETE FROM password_reset_tokens WHERE expires_at < ?1 OR (used_at IS NOT NULL AND used_at < ?2)",
                "DELETE FROM mail_outbox WHERE status <> 'pending' AND created_at < ?2 AND ?1 IS NOT NULL",
                "DELETE FROM mfa_challenges WHERE expires_at < ?1 AND ?2 IS NOT NULL",
                "DELETE FROM login_lockouts WHERE updated_at < ?2 AND (locked_until IS NULL OR locked_until < ?1)",
            ] {
                total += c.execute(sql, params![now, before])? as u64;
            }
            Ok(total)
        })
        .await
    }

    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let key = key.to_string();
        self.read(move |c| {
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
        self.read(move |c| {
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
        self.read(move |c| {
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
        self.read(move |c| {
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
