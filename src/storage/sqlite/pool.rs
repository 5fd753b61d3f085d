//! The SQLite connections: one writer (SQLite has one anyway) and a few
//! read-only connections (in WAL mode readers never wait for the writer).
//! Work runs on the blocking pool, never on the async workers.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::external::ExternalWrites;
use super::{q, StorageError, StoreResult};
use crate::storage::UserCache;

/// Read connections per store.
const READERS: usize = 4;

#[derive(Clone)]
pub(super) struct Pool {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    external: ExternalWrites,
}

impl Pool {
    /// Wraps the (already migrated) writer and opens the read connections.
    pub(super) fn new(
        writer: Connection,
        path: &Path,
        external: ExternalWrites,
    ) -> StoreResult<Self> {
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(StorageError::unavailable)?;
            reader
                .execute_batch("PRAGMA busy_timeout = 5000;")
                .map_err(q)?;
            readers.push(Mutex::new(reader));
        }
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            external,
        })
    }

    /// Runs a read on a free read connection (or waits for one).
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
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
            let mut guard = readers[start % n]
                .lock()
                .map_err(|_| StorageError::Poisoned("a read connection"))?;
            f(&mut guard).map_err(q)
        })
        .await?
    }

    /// Runs `f` on the writer; a given user cache is invalidated before and
    /// after it, so that it stays exact, and a tool beside the server
    /// announces the write ([`ExternalWrites`]).
    pub(super) async fn write<T, F>(&self, f: F, users: Option<UserCache>) -> StoreResult<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let writer = self.writer.clone();
        let external = self.external.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|_| StorageError::Poisoned("the database"))?;
            if let Some(users) = &users {
                users.invalidate();
            }
            let result = f(&mut guard).map_err(q);
            if let Some(users) = &users {
                users.invalidate();
            }
            external.wrote().map_err(StorageError::unavailable)?;
            result
        })
        .await?
    }
}

/// The SQLite spelling of a statement written with `$1`-style parameters:
/// `?1`. (SQLite reads `$1` as a *named* parameter and numbers names in order
/// of first appearance, which would bind `$2 … $1` the wrong way round.)
pub(super) fn dialect(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::dialect;

    #[test]
    fn dollar_parameters_become_numbered_question_marks() {
        assert_eq!(
            dialect("UPDATE t SET a = $2 WHERE id = $1 AND b = '$x'"),
            "UPDATE t SET a = ?2 WHERE id = ?1 AND b = '$x'"
        );
        assert_eq!(dialect("SELECT 1"), "SELECT 1");
    }
}
