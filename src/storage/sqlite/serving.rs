//! One server per embedded database. The embedded default keeps what
//! instances would otherwise agree on through Redis (lockout windows, live
//! sessions, revocations) in the memory of its one process: a second server
//! on the same file would share the rows but not that state, so a session
//! ended on one would live on at the other. [`claim`] refuses it.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Held while a server serves the database; released when dropped or when
/// the process ends, however it ends (the kernel drops the lock).
#[derive(Debug)]
pub struct ServingClaim {
    _file: File,
}

/// Claims `database` for this process's server, or says which file another
/// server holds. Operator commands (`suma-auth admin`) take no claim: they
/// run beside the server.
pub fn claim(database: &Path) -> Result<ServingClaim, String> {
    let path = lock_path(database);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !try_lock(&file) {
        return Err(format!(
            "another suma-auth server is serving {} (it holds {}): the embedded \
             database serves one server process; run several instances on \
             PostgreSQL + Redis (DATABASE_URL, REDIS_ENDPOINT)",
            database.display(),
            path.display()
        ));
    }
    Ok(ServingClaim { _file: file })
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".serving");
    PathBuf::from(name)
}

#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; it changes no
    // memory, only the lock the open file description holds.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("serving-{}", uuid::Uuid::new_v4().simple()));
        let db = dir.join("suma-auth.db");
        let first = claim(&db).unwrap();
        let refused = claim(&db).unwrap_err();
        assert!(refused.contains("another suma-auth server"), "{refused}");
        drop(first);
        let again = claim(&db).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
