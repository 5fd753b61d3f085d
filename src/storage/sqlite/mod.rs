//! Embedded SQLite backend: one file under the data directory in WAL mode,
//! one writer and a few readers ([`pool`]), with an exact user cache for the
//! hot `GET /me` path ([`crate::storage::UserCache`]). It is the single-node default.

use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::*;

mod audit;
mod consents;
mod devices;
mod external;
mod lockout;
mod outbox;
mod pool;
mod privacy;
mod rate;
mod second_factor;
pub mod serving;
mod sessions;
mod tokens;
mod users;

use crate::storage::UserCache;
use external::ExternalWrites;
use outbox::insert_outbox;
use pool::{dialect, Cached, Pool};

use crate::storage::migrations::{
    SQLITE_SCHEMA as SCHEMA, SQLITE_UPGRADES as UPGRADES, SQLITE_VERSION as SCHEMA_VERSION,
};

#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool,
    users: UserCache,
    external: ExternalWrites,
}

fn q(e: rusqlite::Error) -> StorageError {
    StorageError::query(e)
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

impl Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn uuid(&self, i: usize) -> rusqlite::Result<Uuid> {
        uuid(self.get(i)?)
    }

    fn text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }

    fn flag(&self, i: usize) -> rusqlite::Result<Option<bool>> {
        self.get(i)
    }

    fn time(&self, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(time_opt(self.get(i)?))
    }

    fn int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }

    fn ip(&self, i: usize) -> rusqlite::Result<Option<IpAddr>> {
        Ok(ip(self.get(i)?))
    }

    fn json(&self, i: usize) -> rusqlite::Result<Option<serde_json::Value>> {
        Ok(self
            .get::<_, Option<String>>(i)?
            .and_then(|s| serde_json::from_str(&s).ok()))
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the database file and applies the schema.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, false)
    }

    /// Opens the file of a server that may be running, as a tool (the
    /// operator commands): every write is announced to the server, which
    /// then rebuilds what it keeps in memory from the rows (see [`external`]).
    pub fn open_beside_server(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, true)
    }

    /// With `on`, the rotation of a refresh commits on the request's own
    /// thread when the writer is free; for a server with one HTTP worker
    /// (see `pool::Pool::commit_on_caller`).
    pub fn commit_on_caller(mut self, on: bool) -> Self {
        self.pool = self.pool.commit_on_caller(on);
        self
    }

    fn open_with(path: &Path, beside_server: bool) -> StoreResult<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StorageError::unavailable(format!("{}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path).map_err(StorageError::unavailable)?;
        conn.busy_timeout(pool::BUSY_TIMEOUT).map_err(q)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(q)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(q)?;
        if version == 0 {
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))
                .map_err(StorageError::migration)?;
        }
        for (to, sql) in UPGRADES.iter().filter(|(to, _)| *to > version.max(1)) {
            conn.execute_batch(&format!("BEGIN; {sql} PRAGMA user_version = {to}; COMMIT;"))
                .map_err(StorageError::migration)?;
        }
        if version > SCHEMA_VERSION {
            return Err(StorageError::migration(format!(
                "the database file is at schema version {version}, newer than this binary ({SCHEMA_VERSION})"
            )));
        }
        let external = ExternalWrites::new(path, beside_server);
        Ok(Self {
            pool: Pool::new(conn, path, external.clone())?,
            users: UserCache::default(),
            external,
        })
    }

    /// Runs a read on a read connection.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.read(f).await
    }

    /// Runs a write that does not change the `users` table.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.write(f, None).await
    }

    /// Runs a write that may change users: the user cache is dropped around it.
    async fn run_users<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.pool.write(f, Some(self.users.clone())).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<String> {
        let (purpose, fingerprint) = (purpose.to_string(), fingerprint.to_string());
        let now = ms(Utc::now());
        self.run(move |c| {
            c.exec(
                "INSERT OR IGNORE INTO key_checks (purpose, fingerprint, recorded_at) VALUES (?1, ?2, ?3)",
                params![purpose, fingerprint, now],
            )?;
            c.row(
                "SELECT fingerprint FROM key_checks WHERE purpose = ?1",
                params![purpose],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn replace_key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<()> {
        let (purpose, fingerprint) = (purpose.to_string(), fingerprint.to_string());
        let now = ms(Utc::now());
        self.run(move |c| {
            c.exec(
                "INSERT INTO key_checks (purpose, fingerprint, recorded_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (purpose) DO UPDATE SET fingerprint = excluded.fingerprint, recorded_at = excluded.recorded_at",
                params![purpose, fingerprint, now],
            )
        })
        .await?;
        Ok(())
    }

    fn external_writes(&self) -> u64 {
        self.external.generation()
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
                // Challenges stay a day after they start: the hourly cap counts them.
                "DELETE FROM mfa_challenges WHERE expires_at < ?1 AND created_at < ?2",
                "DELETE FROM login_lockouts WHERE updated_at < ?2 AND (locked_until IS NULL OR locked_until < ?1)",
            ] {
                total += c.exec(sql, params![now, before])? as u64;
            }
            Ok(total)
        })
        .await
    }
}
