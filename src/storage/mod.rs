//! Durable records behind one interface, [`Store`], with two backends that
//! pass the same contract tests: PostgreSQL (production, shared by every
//! instance) and embedded SQLite (the single-node default).
//!
//! Every multi-row change (an account with its consents, token and audit row)
//! is one transaction, so a crash never leaves half an account behind.

mod audit_records;
mod device_records;
pub mod migrations;
pub mod models;
pub mod postgres;
mod privacy_records;
pub mod sql;
pub mod sqlite;
mod traits;
mod user_cache;

use std::sync::Arc;

pub use audit_records::*;
pub use device_records::*;
pub use models::*;
pub use privacy_records::*;
pub use traits::*;
pub(crate) use user_cache::UserCache;

/// Any error a driver returns, kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("database error: {0}")]
    Query(#[source] BoxError),
    #[error("migration error: {0}")]
    Migration(#[source] BoxError),
    #[error("{0} lock is poisoned")]
    Poisoned(&'static str),
    #[error("a database task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl StorageError {
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        Self::Unavailable(e.into())
    }

    pub fn query(e: impl Into<BoxError>) -> Self {
        Self::Query(e.into())
    }

    pub fn migration(e: impl Into<BoxError>) -> Self {
        Self::Migration(e.into())
    }
}

pub type StoreResult<T> = Result<T, StorageError>;

pub type DynStore = Arc<dyn Store>;

/// A change to a lockout window, applied inside the store's transaction.
pub type LockoutTransition = Box<dyn FnOnce(LockoutRecord) -> LockoutRecord + Send>;

/// A lockout window's change at `at` (the time the row records).
pub struct LockoutUpdate {
    pub at: chrono::DateTime<chrono::Utc>,
    pub transition: LockoutTransition,
}

impl LockoutUpdate {
    pub fn new(at: chrono::DateTime<chrono::Utc>, transition: LockoutTransition) -> Self {
        Self { at, transition }
    }
}
