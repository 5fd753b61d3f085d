//! Writes to the embedded database by another process: the operator commands
//! (`suma-auth admin`) run beside the server on the same file. The server
//! keeps exact in-memory copies of what it alone writes (the user cache, the
//! session map), so a write it did not make must reach them.
//!
//! The signal is a file next to the database (`<file>-external`): the tool
//! appends one byte after each of its writes, and the server reads the file's
//! length (one `stat`) before it trusts a copy. A length it has not seen yet
//! means "something changed elsewhere": the copies are dropped and rebuilt
//! from the rows, which the tool had committed before it appended.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub(super) struct ExternalWrites {
    path: PathBuf,
    /// This process is the tool: it announces its writes.
    announce: bool,
    /// The length last seen by the user cache.
    seen: Arc<AtomicU64>,
}

impl ExternalWrites {
    pub(super) fn new(database: &Path, announce: bool) -> Self {
        let mut name = database.as_os_str().to_os_string();
        name.push("-external");
        let this = Self {
            path: PathBuf::from(name),
            announce,
            seen: Arc::default(),
        };
        this.seen.store(this.generation(), Ordering::SeqCst);
        this
    }

    /// Grows each time another process announced a write.
    pub(super) fn generation(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// True once per new generation (for the user cache).
    pub(super) fn changed_since_seen(&self) -> bool {
        let now = self.generation();
        self.seen.swap(now, Ordering::SeqCst) != now
    }

    /// Called after every write: a tool tells the server (an error: the
    /// server may not see the write at once).
    pub(super) fn wrote(&self) -> std::io::Result<()> {
        if !self.announce {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(b"."))
    }
}
