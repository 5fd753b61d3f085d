//! PostgreSQL backend: a bb8 pool of tokio-postgres connections. All SQL for
//! this backend lives in this module, next to the code that runs it.

pub mod migrate;
pub mod tls;

use std::time::Duration;

use async_trait::async_trait;
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::*;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;
type Pool = bb8::Pool<Manager>;

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn q(e: tokio_postgres::Error) -> StorageError {
    // SQLSTATE classes of an outage, not of a bad query: connection exception
    // (08), insufficient resources (53), operator intervention such as a
    // shutdown terminating the session (57P), system error (58).
    let outage = |code: &str| {
        ["08", "53", "57P", "58"]
            .iter()
            .any(|c| code.starts_with(c))
    };
    if e.is_closed() || e.as_db_error().is_none_or(|db| outage(db.code().code())) {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Query(e.to_string())
    }
}

/// The first host of a connection config, as certificates name it.
fn config_host(config: &tokio_postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    }
}

/// The longest a request waits for a pooled connection. While the database
/// is down every checkout fails after this (a 503 with `Retry-After`), so no
/// request waits on it longer; start-up retries past it until its own
/// deadline.
pub const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

fn pool_err(e: bb8::RunError<tokio_postgres::Error>) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

impl PgStore {
    /// Connects (retrying for up to `wait`, as the database may still be
    /// starting) with a pool of `max_size` connections, over TLS as `tls` says.
    /// A certificate the mode refuses fails at once: retrying cannot fix it.
    pub async fn connect(
        url: &SecretString,
        tls: &tls::PgTls,
        max_size: u32,
        wait: Duration,
    ) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .expose_secret()
            .parse()
            .map_err(|e| StorageError::Unavailable(format!("invalid database settings: {e}")))?;
        config.ssl_mode(tls.negotiation());
        let connector = tls
            .connector()
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let host = config_host(&config);
        let manager = PostgresConnectionManager::new(config.clone(), connector.clone());
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(POOL_CHECKOUT_TIMEOUT)
            .test_on_check_out(false)
            .build_unchecked(manager);
        let store = Self { pool };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match store.ping().await {
                Ok(()) => return Ok(store),
                Err(e) => {
                    // The pool only says it timed out; one direct attempt names the cause.
                    let cause = match config.connect(connector.clone()).await {
                        Ok(_) => None,
                        Err(e) => {
                            if let Some(tls_error) = tls.explain(&e, &host) {
                                return Err(StorageError::Unavailable(format!(
                                    "database TLS: {tls_error}"
                                )));
                            }
                            if let Some(db) = e.as_db_error() {
                                // Refused credentials or pg_hba rules (SQLSTATE class 28)
                                // will not change by waiting.
                                if db.code().code().starts_with("28") {
                                    return Err(StorageError::Unavailable(format!(
                                        "{}: {}",
                                        tls.host_var,
                                        db.message()
                                    )));
                                }
                            }
                            Some(
                                e.as_db_error()
                                    .map_or_else(|| e.to_string(), |db| db.message().to_string()),
                            )
                        }
                    };
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StorageError::Unavailable(cause.unwrap_or_else(|| {
                            "the pool could not connect in time".to_string()
                        })));
                    }
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Open and idle connections of the pool, for the gauges.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Applies pending migrations under the advisory lock.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let conn = self.pool.get().await.map_err(pool_err)?;
        migrate::apply(&conn).await
    }

    pub async fn migration_status(&self) -> StoreResult<migrate::MigrationStatus> {
        let conn = self.pool.get().await.map_err(pool_err)?;
        migrate::status(&conn).await
    }

    /// Runs one statement on a pooled connection; returns the rows it changed.
    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<u64> {
        let conn = self.conn().await?;
        conn.execute(sql, params).await.map_err(q)
    }

    async fn conn(&self) -> StoreResult<bb8::PooledConnection<'_, Manager>> {
        self.pool.get().await.map_err(pool_err)
    }
}

const USER_COLUMNS: &str = "id, email, email_verified, password_hash, first_name, last_name, \
     two_factor_enabled, two_factor_method, is_active, failed_login_attempts, locked_until, \
     created_at, last_login_at, email_otp_enabled, totp_enabled, totp_secret_sealed, totp_pending_sealed";

fn user(row: &Row) -> UserRecord {
    UserRecord {
        id: row.get(0),
        email: Email::from_stored(row.get(1)),
        email_verified: row.get::<_, Option<bool>>(2).unwrap_or(false),
        password_hash: row.get(3),
        first_name: row.get(4),
        last_name: row.get(5),
        two_factor_enabled: row.get::<_, Option<bool>>(6).unwrap_or(false),
        two_factor_method: row.get(7),
        is_active: row.get::<_, Option<bool>>(8).unwrap_or(true),
        failed_login_attempts: row.get::<_, Option<i32>>(9).unwrap_or(0),
        locked_until: row.get(10),
        created_at: row.get::<_, Option<DateTime<Utc>>>(11).unwrap_or_default(),
        last_login_at: row.get(12),
        email_otp_enabled: row.get(13),
        totp_enabled: row.get(14),
        totp_secret_sealed: row.get(15),
        totp_pending_sealed: row.get(16),
    }
}

/// Writes an outbox row inside the caller's transaction.
async fn insert_outbox(
    tx: &tokio_postgres::Transaction<'_>,
    mail: Option<&OutboxMail>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if let Some(m) = mail {
        tx.execute(
            "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)",
            &[&m.id, &m.template, &m.payload, &now],
        )
        .await
        .map_err(q)?;
    }
    Ok(())
}

fn lockout(r: &Row) -> LockoutRecord {
    LockoutRecord {
        attempts: r.get::<_, i32>(0).max(0) as u32,
        failures: r.get::<_, i32>(1).max(0) as u32,
        window_started_at: r.get(2),
        locked_until: r.get(3),
    }
}

const SESSION_COLUMNS: &str = "id, user_id, device_id, user_agent, ip_address, amr, created_at, \
     last_activity_at, expires_at, invalidated_at";

fn session(row: &Row) -> SessionRecord {
    session_at(row, 0)
}

/// A session whose columns start at index `at`.
fn session_at(row: &Row, at: usize) -> SessionRecord {
    SessionRecord {
        id: row.get(at),
        user_id: row.get(at + 1),
        device_id: row.get(at + 2),
        user_agent: row.get(at + 3),
        ip_address: row.get(at + 4),
        amr: row.get(at + 5),
        created_at: row
            .get::<_, Option<DateTime<Utc>>>(at + 6)
            .unwrap_or_default(),
        last_activity_at: row
            .get::<_, Option<DateTime<Utc>>>(at + 7)
            .unwrap_or_default(),
        expires_at: row.get(at + 8),
        invalidated_at: row.get(at + 9),
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn pool_state(&self) -> Option<(u32, u32)> {
        Some(PgStore::pool_state(self))
    }

    async fn ping(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1").await.map_err(q)?;
        Ok(())
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let inserted = tx
            .execute(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, created_at, updated_at, password_changed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
                 ON CONFLICT (email) DO NOTHING",
                &[&new.id, &new.email.as_str(), &new.password_hash, &new.first_name, &new.last_name, &new.now],
            )
            .await
            .map_err(q)?;
        if inserted == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(CreateUserOutcome::EmailTaken);
        }
        for consent in &new.consents {
            tx.execute(
                "INSERT INTO consent_records (id, user_id, consent_type, consent_version, consented, ip_address, user_agent, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &[&Uuid::new_v4(), &new.id, &consent.consent_type, &consent.version, &consent.consented,
                  &new.client.ip, &new.client.user_agent, &new.now],
            )
            .await
            .map_err(q)?;
        }
        tx.execute(
            "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[&Uuid::new_v4(), &new.id, &new.password_hash, &new.now],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&Uuid::new_v4(), &new.id, &new.verification_token_hash, &new.verification_expires_at, &new.now],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
             VALUES ($1, $2, 'registration', 'success', $3, $4, '{}'::jsonb, $5)",
            &[&Uuid::new_v4(), &new.id, &new.client.ip, &new.client.user_agent, &new.now],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, new.mail.as_ref(), Utc::now()).await?;
        tx.commit().await.map_err(q)?;
        Ok(CreateUserOutcome::Created)
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL"
                ),
                &[&email.as_str()],
            )
            .await
            .map_err(q)?;
        Ok(row.as_ref().map(user))
    }

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"),
                &[&id],
            )
            .await
            .map_err(q)?;
        Ok(row.as_ref().map(user))
    }

    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, NOW())",
            &[&Uuid::new_v4(), &user_id, &token_hash, &expires_at],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, mail.as_ref(), Utc::now()).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                "UPDATE email_verification_tokens SET verified_at = $2
                 WHERE token_hash = $1 AND verified_at IS NULL AND expires_at > $2
                 RETURNING user_id",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let user_id: Uuid = row.get(0);
        let updated = tx
            .execute(
                "UPDATE users SET email_verified = true WHERE id = $1 AND deleted_at IS NULL",
                &[&user_id],
            )
            .await
            .map_err(q)?;
        if updated == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        }
        tx.commit().await.map_err(q)?;
        Ok(Some(user_id))
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()> {
        self.exec(
            "UPDATE users SET last_login_at = $2, failed_login_attempts = 0, locked_until = NULL, is_locked = false,
                 password_hash = COALESCE($3, password_hash)
             WHERE id = $1",
            &[&user_id, &now, &rehash],
        )
        .await?;
        Ok(())
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        attempts: u32,
        locked_until: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.exec(
            // Failures of one window finish in any order across instances: while
            // a lock holds, the count never goes down.
            "UPDATE users SET
                 failed_login_attempts = CASE WHEN locked_until > NOW() THEN GREATEST(failed_login_attempts, $2) ELSE $2 END,
                 locked_until = COALESCE($3, locked_until),
                 is_locked = ($3 IS NOT NULL OR COALESCE(locked_until > NOW(), false))
             WHERE id = $1",
            &[&user_id, &(attempts as i32), &locked_until],
        )
        .await?;
        Ok(())
    }

    async fn create_session(&self, s: NewSession) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "INSERT INTO sessions (id, user_id, device_id, user_agent, ip_address, amr, expires_at, created_at, last_activity_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            &[&s.id, &s.user_id, &s.device_id, &s.client.user_agent, &s.client.ip, &s.amr, &s.expires_at, &s.created_at],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent, ip_address, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&s.refresh_token_id, &s.user_id, &s.id, &s.refresh_token_hash, &s.device_id, &s.client.user_agent,
              &s.client.ip, &s.expires_at, &s.created_at],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(q)?;
        Ok(row.as_ref().map(session))
    }

    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT session_id FROM refresh_tokens WHERE token_hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(q)?;
        Ok(row.and_then(|r| r.get(0)))
    }

    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        let conn = self.conn().await?;
        let status = if e.success { "success" } else { "failure" };
        conn.execute(
            "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&Uuid::new_v4(), &e.user_id, &e.event_type, &status, &e.client.ip, &e.client.user_agent, &e.metadata, &e.at],
        )
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn rotate_refresh_token(&self, r: Rotation) -> StoreResult<RotateOutcome> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT rt.id, rt.revoked_at, {} FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
                     WHERE rt.token_hash = $1 FOR UPDATE OF rt, s",
                    SESSION_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&r.presented_hash],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(RotateOutcome::Invalid);
        };
        let token_id: Uuid = row.get(0);
        let spent_at: Option<DateTime<Utc>> = row.get(1);
        let s = session_at(&row, 2);
        if let Some(spent_at) = spent_at {
            if r.now - spent_at < r.reuse_grace {
                tx.rollback().await.map_err(q)?;
                return Ok(RotateOutcome::Invalid);
            }
            let was_live = tx
                .execute(
                    "UPDATE sessions SET invalidated_at = $2, revoked_reason = $3 WHERE id = $1 AND invalidated_at IS NULL",
                    &[&s.id, &r.now, &end_reason::REFRESH_TOKEN_REUSE],
                )
                .await
                .map_err(q)?
                > 0;
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL",
                &[&s.id, &r.now],
            )
            .await
            .map_err(q)?;
            tx.commit().await.map_err(q)?;
            return Ok(RotateOutcome::Reused {
                session_id: s.id,
                user_id: s.user_id,
                was_live,
            });
        }
        let last_activity = r
            .activity_hint
            .map_or(s.last_activity_at, |h| h.max(s.last_activity_at));
        if s.invalidated_at.is_some() || s.expires_at <= r.now {
            tx.rollback().await.map_err(q)?;
            return Ok(RotateOutcome::Invalid);
        }
        if last_activity + r.idle_timeout <= r.now {
            tx.execute(
                "UPDATE sessions SET invalidated_at = $2, revoked_reason = $3 WHERE id = $1",
                &[&s.id, &r.now, &end_reason::IDLE_TIMEOUT],
            )
            .await
            .map_err(q)?;
            tx.commit().await.map_err(q)?;
            return Ok(RotateOutcome::Invalid);
        }
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = $2, last_used_at = $2, replaced_by = $3 WHERE id = $1",
            &[&token_id, &r.now, &r.new_id],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent, ip_address, expires_at, created_at, rotation_count)
             SELECT $1, user_id, session_id, $2, device_id, user_agent, ip_address, expires_at, $3, COALESCE(rotation_count, 0) + 1
             FROM refresh_tokens WHERE id = $4",
            &[&r.new_id, &r.new_hash, &r.now, &token_id],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "UPDATE sessions SET last_activity_at = $2 WHERE id = $1",
            &[&s.id, &r.now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(RotateOutcome::Rotated(SessionRecord {
            last_activity_at: r.now,
            ..s
        }))
    }

    async fn revoke_session(
        &self,
        session_id: Uuid,
        user_id: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let n = tx
            .execute(
                "UPDATE sessions SET invalidated_at = $3, revoked_reason = $4
                 WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND invalidated_at IS NULL",
                &[&session_id, &user_id, &now, &reason],
            )
            .await
            .map_err(q)?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL",
            &[&session_id, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(n > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let rows = tx
            .query(
                "UPDATE sessions SET invalidated_at = $3, revoked_reason = $4
                 WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2) AND invalidated_at IS NULL
                 RETURNING id",
                &[&user_id, &except, &now, &reason],
            )
            .await
            .map_err(q)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = ANY($1) AND revoked_at IS NULL",
            &[&ids, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(ids)
    }

    async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE user_id = $1 AND invalidated_at IS NULL AND expires_at > $2
                     ORDER BY created_at DESC"
                ),
                &[&user_id, &now],
            )
            .await
            .map_err(q)?;
        Ok(rows.iter().map(session).collect())
    }

    async fn touch_sessions(&self, touches: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = touches.iter().map(|t| t.0).collect();
        let times: Vec<DateTime<Utc>> = touches.iter().map(|t| t.1).collect();
        self.exec(
            "UPDATE sessions s SET last_activity_at = GREATEST(s.last_activity_at, t.at)
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at) WHERE s.id = t.id",
            &[&ids, &times],
        )
        .await?;
        Ok(())
    }

    async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = $3, failed_login_attempts = 0,
                 locked_until = NULL, is_locked = false WHERE id = $1",
            &[&user_id, &password_hash, &now],
        )
        .await
        .map_err(q)?;
        tx.execute(
            "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[&Uuid::new_v4(), &user_id, &password_hash, &now],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, mail.as_ref(), now).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
                &[&user_id, &(limit as i64)],
            )
            .await
            .map_err(q)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises concurrent requests for one user so the hourly cap holds.
        tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user_id])
            .await
            .map_err(q)?;
        let recent: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM password_reset_tokens WHERE user_id = $1 AND created_at > $2",
                &[&user_id, &(now - chrono::Duration::hours(1))],
            )
            .await
            .map_err(q)?
            .get(0);
        if recent >= i64::from(max_per_hour) {
            tx.rollback().await.map_err(q)?;
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&Uuid::new_v4(), &user_id, &token_hash, &expires_at, &now],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, mail.as_ref(), Utc::now()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                "UPDATE password_reset_tokens SET used_at = $2
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let user_id: Uuid = row.get(0);
        tx.execute(
            "UPDATE password_reset_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
            &[&user_id, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(Some(user_id))
    }

    async fn enqueue_mail(&self, m: OutboxMail, now: DateTime<Utc>) -> StoreResult<()> {
        self.exec(
            "INSERT INTO mail_outbox (id, template, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)",
            &[&m.id, &m.template, &m.payload, &now],
        )
        .await?;
        Ok(())
    }

    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: u32,
    ) -> StoreResult<Vec<OutboxMail>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "UPDATE mail_outbox SET leased_until = $2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT id FROM mail_outbox
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1)
                     ORDER BY next_attempt_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, template, payload, attempts, created_at",
                &[&now, &(now + lease), &(limit as i64)],
            )
            .await
            .map_err(q)?;
        Ok(rows
            .iter()
            .map(|r| OutboxMail {
                id: r.get(0),
                template: r.get(1),
                payload: r.get(2),
                attempts: r.get::<_, i32>(3).max(0) as u32,
                created_at: r.get(4),
            })
            .collect())
    }

    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET status = 'sent', sent_at = $2, payload = '', leased_until = NULL, last_error = NULL WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    async fn mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET next_attempt_at = $2, leased_until = NULL, last_error = $3 WHERE id = $1",
            &[&id, &next_attempt_at, &error],
        )
        .await?;
        Ok(())
    }

    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET status = 'dead', payload = '', leased_until = NULL, last_error = $2 WHERE id = $1",
            &[&id, &error],
        )
        .await?;
        Ok(())
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE status = 'pending'), COUNT(*) FILTER (WHERE status = 'dead'),
                        MIN(created_at) FILTER (WHERE status = 'pending')
                 FROM mail_outbox",
                &[],
            )
            .await
            .map_err(q)?;
        let oldest: Option<DateTime<Utc>> = row.get(2);
        Ok(OutboxStats {
            pending: row.get::<_, i64>(0).max(0) as u64,
            dead: row.get::<_, i64>(1).max(0) as u64,
            oldest_pending_secs: oldest
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        })
    }

    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<()> {
        self.exec(
            "INSERT INTO mfa_challenges (id, user_id, token_hash, device_id, methods, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&c.id, &c.user_id, &c.token_hash, &c.device_id, &c.methods, &c.expires_at, &c.now],
        )
        .await?;
        Ok(())
    }

    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT id, user_id, device_id, methods, otp_code_hash, otp_expires_at FROM mfa_challenges
                 WHERE token_hash = $1 AND consumed_at IS NULL AND expires_at > $2 AND attempts < $3",
                &[&token_hash, &now, &(max_attempts as i32)],
            )
            .await
            .map_err(q)?;
        Ok(row.map(|r| MfaChallengeRecord {
            id: r.get(0),
            user_id: r.get(1),
            device_id: r.get(2),
            methods: r.get(3),
            otp_code_hash: r.get(4),
            otp_expires_at: r.get(5),
        }))
    }

    async fn set_challenge_code(
        &self,
        id: Uuid,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        max_sends: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let n = tx
            .execute(
                "UPDATE mfa_challenges SET otp_code_hash = $2, otp_expires_at = $3, otp_sends = otp_sends + 1
                 WHERE id = $1 AND otp_sends < $4 AND consumed_at IS NULL",
                &[&id, &code_hash, &expires_at, &(max_sends as i32)],
            )
            .await
            .map_err(q)?;
        if n == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(false);
        }
        insert_outbox(&tx, mail.as_ref(), Utc::now()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL",
                &[&id, &(max_attempts as i32)],
            )
            .await?;
        Ok(n > 0)
    }

    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE mfa_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(n > 0)
    }

    async fn set_email_otp(
        &self,
        user_id: Uuid,
        enabled: bool,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "UPDATE users SET email_otp_enabled = $2, two_factor_enabled = ($2 OR totp_enabled),
                 two_factor_method = CASE WHEN totp_enabled AND $2 THEN 'totp,email' WHEN totp_enabled THEN 'totp' WHEN $2 THEN 'email' ELSE NULL END
             WHERE id = $1",
            &[&user_id, &enabled],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, mail.as_ref(), Utc::now()).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn set_totp_pending(&self, user_id: Uuid, sealed: Option<&str>) -> StoreResult<()> {
        self.exec(
            "UPDATE users SET totp_pending_sealed = $2 WHERE id = $1",
            &[&user_id, &sealed],
        )
        .await?;
        Ok(())
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
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let n = tx
            .execute(
                "UPDATE users SET totp_secret_sealed = totp_pending_sealed, totp_pending_sealed = NULL, totp_enabled = true,
                     totp_last_step = $3, two_factor_enabled = true,
                     two_factor_method = CASE WHEN email_otp_enabled THEN 'totp,email' ELSE 'totp' END
                 WHERE id = $1 AND totp_pending_sealed = $2",
                &[&user_id, &pending, &step],
            )
            .await
            .map_err(q)?;
        if n == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(false);
        }
        tx.execute("DELETE FROM recovery_codes WHERE user_id = $1", &[&user_id])
            .await
            .map_err(q)?;
        for h in recovery_hashes {
            tx.execute(
                "INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)",
                &[&Uuid::new_v4(), &user_id, h, &now],
            )
            .await
            .map_err(q)?;
        }
        insert_outbox(&tx, mail.as_ref(), now).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn advance_totp_step(&self, user_id: Uuid, step: i64) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                &[&user_id, &step],
            )
            .await?;
        Ok(n > 0)
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE recovery_codes SET used_at = $3 WHERE id = (
                     SELECT id FROM recovery_codes WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL LIMIT 1 FOR UPDATE)",
                &[&user_id, &code_hash, &now],
            )
            .await?;
        Ok(n > 0)
    }

    async fn disable_two_factor(&self, user_id: Uuid) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "UPDATE users SET email_otp_enabled = false, totp_enabled = false, totp_secret_sealed = NULL,
                 totp_pending_sealed = NULL, totp_last_step = NULL, two_factor_enabled = false, two_factor_method = NULL
             WHERE id = $1",
            &[&user_id],
        )
        .await
        .map_err(q)?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = $1", &[&user_id])
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        keep_ended: chrono::Duration,
    ) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let ended_before = now - keep_ended;
        let mut total = 0;
        for sql in [
            // Spent tokens of live sessions stay: presenting one again must still
            // revoke the session. They go with their session.
            "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT 5000) AND $2::timestamptz IS NOT NULL",
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 OR (invalidated_at IS NOT NULL AND invalidated_at < $2) LIMIT 5000)",
            "DELETE FROM email_verification_tokens WHERE id IN (SELECT id FROM email_verification_tokens WHERE expires_at < $1 OR (verified_at IS NOT NULL AND verified_at < $2) LIMIT 5000)",
            "DELETE FROM password_reset_tokens WHERE id IN (SELECT id FROM password_reset_tokens WHERE expires_at < $1 OR (used_at IS NOT NULL AND used_at < $2) LIMIT 5000)",
            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE status <> 'pending' AND created_at < $2 LIMIT 5000) AND $1::timestamptz IS NOT NULL",
            "DELETE FROM mfa_challenges WHERE id IN (SELECT id FROM mfa_challenges WHERE expires_at < $1 LIMIT 5000) AND $2::timestamptz IS NOT NULL",
            "DELETE FROM login_lockouts WHERE account_key IN (SELECT account_key FROM login_lockouts WHERE updated_at < $2 AND (locked_until IS NULL OR locked_until < $1) LIMIT 5000)",
        ] {
            total += conn.execute(sql, &[&now, &ended_before]).await.map_err(q)?;
        }
        Ok(total)
    }

    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = $1",
                &[&key],
            )
            .await
            .map_err(q)?;
        Ok(row.as_ref().map(lockout))
    }

    async fn save_lockout(&self, key: &str, r: &LockoutRecord) -> StoreResult<()> {
        self.exec(
            "INSERT INTO login_lockouts (account_key, attempts, failures, window_started_at, locked_until, updated_at)
             VALUES ($1, $2, $3, $4, $5, NOW())
             ON CONFLICT (account_key) DO UPDATE SET attempts = $2, failures = $3, window_started_at = $4, locked_until = $5, updated_at = NOW()",
            &[&key, &(r.attempts as i32), &(r.failures as i32), &r.window_started_at, &r.locked_until],
        )
        .await?;
        Ok(())
    }

    async fn update_lockout(&self, key: &str, transition: LockoutTransition) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "INSERT INTO login_lockouts (account_key, updated_at) VALUES ($1, NOW()) ON CONFLICT (account_key) DO NOTHING",
            &[&key],
        )
        .await
        .map_err(q)?;
        let row = tx
            .query_one(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = $1 FOR UPDATE",
                &[&key],
            )
            .await
            .map_err(q)?;
        let next = transition(lockout(&row));
        tx.execute(
            "UPDATE login_lockouts SET attempts = $2, failures = $3, window_started_at = $4, locked_until = $5, updated_at = NOW()
             WHERE account_key = $1",
            &[&key, &(next.attempts as i32), &(next.failures as i32), &next.window_started_at, &next.locked_until],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn audit_for_user(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at
                 FROM audit_logs WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
                &[&user_id, &(limit as i64)],
            )
            .await
            .map_err(q)?;
        Ok(rows
            .iter()
            .map(|r| AuditRecord {
                id: r.get(0),
                user_id: r.get(1),
                event_type: r.get(2),
                event_status: r.get(3),
                ip_address: r.get(4),
                user_agent: r.get(5),
                metadata: r
                    .get::<_, Option<serde_json::Value>>(6)
                    .unwrap_or(serde_json::Value::Null),
                created_at: r.get::<_, Option<DateTime<Utc>>>(7).unwrap_or_default(),
            })
            .collect())
    }

    async fn count_audit(&self, event_type: &str, status: &str) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT COUNT(*) FROM audit_logs WHERE event_type = $1 AND event_status = $2",
                &[&event_type, &status],
            )
            .await
            .map_err(q)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT consent_type, consent_version, consented, ip_address, user_agent, created_at
                 FROM consent_records WHERE user_id = $1 ORDER BY created_at DESC, consent_type",
                &[&user_id],
            )
            .await
            .map_err(q)?;
        Ok(rows
            .iter()
            .map(|r| ConsentRecord {
                consent_type: r.get(0),
                consent_version: r.get(1),
                consented: r.get(2),
                ip_address: r.get(3),
                user_agent: r.get(4),
                created_at: r.get::<_, Option<DateTime<Utc>>>(5).unwrap_or_default(),
            })
            .collect())
    }
}
