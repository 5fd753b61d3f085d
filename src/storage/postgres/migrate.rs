//! Schema migrations for PostgreSQL, embedded in the binary from `migrations/`
//! and kept in golang-migrate's format and bookkeeping (`schema_migrations`
//! holds one row: the current version and a dirty flag), so operators can
//! still inspect or repair a database with that tool.
//!
//! The server applies pending migrations at start under a Postgres advisory
//! lock: when several instances start together, one migrates and the others
//! wait for it, then find nothing left to do.

use tokio_postgres::Client;

use crate::storage::{BoxError, StorageError};

use crate::storage::migrations::MIGRATIONS;

/// The advisory lock key taken while migrating ("suma-auth" in ASCII).
const LOCK_KEY: i64 = 0x73_75_6d_61_2d_61_75_74;

/// What `migrate status` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub current: Option<i64>,
    pub dirty: bool,
    pub pending: Vec<(i64, &'static str)>,
}

fn err(e: impl Into<BoxError>) -> StorageError {
    StorageError::migration(e)
}

const CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)";

async fn current(client: &Client) -> Result<(Option<i64>, bool), StorageError> {
    let row = client
        .query_opt("SELECT version, dirty FROM schema_migrations LIMIT 1", &[])
        .await
        .map_err(err)?;
    Ok(match row {
        Some(row) => (
            Some(row.try_get(0).map_err(err)?),
            row.try_get(1).map_err(err)?,
        ),
        None => (None, false),
    })
}

/// Applies every pending migration; returns the versions applied.
pub async fn apply(client: &Client) -> Result<Vec<i64>, StorageError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(err)?;
    let result = apply_locked(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let applied = result?;
    unlock.map_err(err)?;
    Ok(applied)
}

async fn apply_locked(client: &Client) -> Result<Vec<i64>, StorageError> {
    client.batch_execute(CREATE_TABLE).await.map_err(err)?;
    let (version, dirty) = current(client).await?;
    if dirty {
        return Err(StorageError::migration(format!(
            "the database is dirty at version {}: a migration failed half-way; repair it, then run `migrate -path migrations -database ... force {}`",
            version.unwrap_or(0),
            version.unwrap_or(0).saturating_sub(1)
        )));
    }
    let from = version.unwrap_or(0);
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        tracing::info!(version = m.version, name = m.name, "applying migration");
        client
            .batch_execute(&format!(
                "TRUNCATE schema_migrations; INSERT INTO schema_migrations (version, dirty) VALUES ({}, true);",
                m.version
            ))
            .await
            .map_err(err)?;
        client
            .batch_execute(m.up)
            .await
            .map_err(|e| StorageError::migration(format!("{} failed: {e}", m.name)))?;
        client
            .execute("UPDATE schema_migrations SET dirty = false", &[])
            .await
            .map_err(err)?;
        applied.push(m.version);
    }
    Ok(applied)
}

pub async fn status(client: &Client) -> Result<MigrationStatus, StorageError> {
    client.batch_execute(CREATE_TABLE).await.map_err(err)?;
    let (current, dirty) = current(client).await?;
    let from = current.unwrap_or(0);
    Ok(MigrationStatus {
        current,
        dirty,
        pending: MIGRATIONS
            .iter()
            .filter(|m| m.version > from)
            .map(|m| (m.version, m.name))
            .collect(),
    })
}

/// The newest version this binary knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_with_both_directions() {
        let mut previous = 0;
        for m in MIGRATIONS {
            // Numbers are assigned ahead to changes made side by side, so a
            // number may be missing until its change lands; never out of order.
            assert!(m.version > previous, "{} after {previous}", m.version);
            previous = m.version;
            assert!(m.name.starts_with(&format!("{:06}_", m.version)));
            assert!(m.up.contains("BEGIN;") && m.up.contains("COMMIT;"));
            assert!(!m.down.is_empty());
        }
    }
}
