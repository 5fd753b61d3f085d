//! The SQLite connections: one writer (SQLite has one anyway) and a few
//! read-only connections (in WAL mode readers never wait for the writer).
//! Work runs on the blocking pool, never on the async workers, with one
//! exception a server with a single HTTP worker asks for
//! ([`Pool::commit_on_caller`]).

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

/// Writes committed together at most (see [`Pool::write_grouped`]).
const GROUP_MAX: usize = 64;

/// How long a connection waits for another's lock (every connection is
/// opened with it; the writer sets it to zero for a moment to commit on an
/// async worker's thread).
pub(super) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One write waiting for the next group commit: runs inside the group's
/// transaction (in a savepoint of its own) and returns how to tell its caller
/// once the group's commit is known (`Err` holds why the commit failed).
type GroupJob = Box<dyn FnOnce(&Connection) -> GroupReply + Send>;
type GroupReply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Writes waiting for a group commit, and whether a writer is draining them.
#[derive(Default)]
struct Group {
    jobs: Vec<GroupJob>,
    draining: bool,
}

/// Statements each connection keeps parsed and planned ([`Cached`]).
const STATEMENT_CACHE: usize = 256;

/// Statements run through the connection's statement cache: SQLite parses
/// and plans each statement once per connection instead of at every call (as
/// `Connection::execute`, `query_row` and `prepare` would). Every statement
/// of the embedded store goes through these.
pub(super) trait Cached {
    /// `Connection::execute`, cached.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `Connection::query_row`, cached.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
    /// `Connection::prepare`, cached.
    fn stmt(&self, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'_>>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn stmt(&self, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        self.prepare_cached(sql)
    }
}

/// When the checkpointer copies committed pages from the write-ahead log into
/// the database file, and when it makes the log start again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Checkpoints {
    /// How often a passive checkpoint runs.
    pub every: std::time::Duration,
    /// The log's length, in pages, past which the checkpointer restarts it.
    pub restart_at_pages: i64,
}

impl Default for Checkpoints {
    /// Twice a second; the log restarts past 4096 pages (16 MiB of 4 KiB
    /// pages).
    fn default() -> Self {
        Self {
            every: std::time::Duration::from_millis(500),
            restart_at_pages: 4096,
        }
    }
}

#[derive(Clone)]
pub(super) struct Pool {
    writer: Arc<Mutex<Connection>>,
    group: Arc<Mutex<Group>>,
    /// Dropped with the last clone of the pool: the checkpointer then stops.
    _checkpointer: Arc<std::sync::mpsc::Sender<()>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    external: ExternalWrites,
    /// See [`Pool::commit_on_caller`].
    commit_on_caller: bool,
    /// The runtime the pool was opened on (the server's main one), whose
    /// blocking pool runs the drain of grouped writes: it outlives every
    /// HTTP worker, so a worker that stops leaves no drain half done.
    drains_on: Option<tokio::runtime::Handle>,
}

impl Pool {
    /// Wraps the (already migrated) writer and opens the read connections.
    pub(super) fn new(
        writer: Connection,
        path: &Path,
        external: ExternalWrites,
    ) -> StoreResult<Self> {
        Self::with_checkpoints(writer, path, external, Checkpoints::default())
    }

    /// [`Pool::new`] with its own checkpoint schedule.
    pub(super) fn with_checkpoints(
        writer: Connection,
        path: &Path,
        external: ExternalWrites,
        checkpoints: Checkpoints,
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
            reader.busy_timeout(BUSY_TIMEOUT).map_err(q)?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            readers.push(Mutex::new(reader));
        }
        // The writer never checkpoints: see [`checkpointer`].
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(q)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = checkpointer(path, writer.clone(), checkpoints)?;
        Ok(Self {
            writer,
            group: Arc::default(),
            _checkpointer: Arc::new(checkpointer),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            external,
            commit_on_caller: false,
            drains_on: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// With `on`, a grouped write that finds the queue idle and the writer
    /// free commits on the calling thread instead of handing the group to
    /// the blocking pool (see [`Pool::write_grouped`]). For a server with one
    /// HTTP worker, as on a task of half a core: the hand-offs cost CPU there
    /// and there is no other core to overlap with. With several workers the
    /// hand-off lets the request sign its token while its group commits.
    pub(super) fn commit_on_caller(mut self, on: bool) -> Self {
        self.commit_on_caller = on;
        self
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

impl Pool {
    /// Runs `f` on the writer in a transaction shared with the other
    /// grouped writes waiting at the time (group commit), and answers once
    /// that transaction has committed. For the hottest writes (refresh
    /// rotation): under load one commit, one blocking-pool hand-off and one
    /// lock of the writer serve many requests instead of one each. Each
    /// write runs in its own savepoint, so a write that fails is undone
    /// alone and the others commit. `f` must not change the `users` table.
    pub(super) async fn write_grouped<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let job: GroupJob = Box::new(move |c: &Connection| {
            let result = in_savepoint(c, f);
            Box::new(move |committed: Result<(), String>| {
                let answer = match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(e), _) => Err(q(e)),
                    (Ok(_), Err(e)) => Err(StorageError::query(e)),
                };
                // The caller may have gone (its request was dropped).
                let _ = reply.send(answer);
            }) as GroupReply
        });
        let lead = {
            let mut group = self
                .group
                .lock()
                .map_err(|_| StorageError::Poisoned("the write queue"))?;
            group.jobs.push(job);
            !std::mem::replace(&mut group.draining, true)
        };
        if lead && !(self.commit_on_caller && self.commit_here()) {
            // The first write of an idle queue starts the drain; it runs on
            // the blocking pool whether or not this request is still awaited.
            self.clone().drain_group();
        }
        answer
            .await
            .map_err(|_| StorageError::query("a grouped write was lost"))?
    }

    /// Commits the queued group on the calling thread, when the writer is
    /// free and SQLite's write lock is had at once (another process, an
    /// operator command, may hold it: the caller is an async worker and must
    /// not wait for it). Returns whether the queue is left idle; otherwise
    /// (writer busy, lock held, or more writes queued meanwhile) the caller
    /// starts a drain on the blocking pool, which finds the queue as it is.
    fn commit_here(&self) -> bool {
        let Ok(mut writer) = self.writer.try_lock() else {
            return false;
        };
        if writer.busy_timeout(std::time::Duration::ZERO).is_err() {
            return false;
        }
        let began = match writer.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(tx) => {
                let _ = tx.busy_timeout(BUSY_TIMEOUT);
                if let Some(jobs) = take_group(&self.group) {
                    run_group(Ok(tx), jobs);
                }
                true
            }
            Err(_) => false,
        };
        if !began {
            let _ = writer.busy_timeout(BUSY_TIMEOUT);
            return false;
        }
        drop(writer);
        if let Err(e) = self.external.wrote() {
            tracing::error!(error = %e, "a write was not announced");
        }
        !more_queued(&self.group)
    }

    /// Drains the queue on the blocking pool of the runtime the pool was
    /// opened on, a group per turn, until it is empty; each turn runs as a
    /// blocking-pool job of its own and queues the next one there.
    ///
    /// Why not an async loop that awaits each turn: such a loop resumes
    /// between turns on the async worker that started it, which may be busy
    /// signing a token for each of its own requests, while the requests of
    /// every worker wait on this drain (measured: under refresh load with two
    /// workers, about a quarter of the machine idle). Each turn takes
    /// the writer and gives it back, so other writes and the checkpointer get
    /// it between two turns.
    fn drain_group(self) {
        match self.drains_on.clone() {
            Some(runtime) => runtime.spawn_blocking(move || self.drain_turn()),
            None => tokio::task::spawn_blocking(move || self.drain_turn()),
        };
    }

    /// One turn of [`Pool::drain_group`].
    fn drain_turn(self) {
        let more = match self.writer.lock() {
            Ok(mut writer) => match take_group(&self.group) {
                Some(jobs) => {
                    commit_group(&mut writer, jobs);
                    if let Err(e) = self.external.wrote() {
                        tracing::error!(error = %e, "grouped writes not announced");
                    }
                    true
                }
                None => false,
            },
            Err(_) => {
                // The writer cannot be had: the waiting writes fail (their
                // callers see them lost), the queue is idle.
                tracing::error!("grouped writes not run: the writer is poisoned");
                if let Ok(mut group) = self.group.lock() {
                    group.draining = false;
                    group.jobs.clear();
                }
                false
            }
        };
        if more {
            self.drain_group();
        }
    }
}

/// Starts the thread that checkpoints the database (copies the pages
/// committed to the write-ahead log into the database file and syncs it) on
/// a connection of its own, as `schedule` says; it stops when the returned
/// sender is dropped. Left to SQLite, a checkpoint runs inside the commit
/// that crosses 1000 log pages, on the single writer, and every write waits
/// for its `fsync`; here, a passive checkpoint runs beside the writer and
/// never waits for it.
///
/// A passive checkpoint alone does not keep the log small: the log starts
/// again from its beginning only when a write begins while every page of it
/// is copied, which under a steady write load never happens. So once the log
/// is longer than `restart_at_pages`, a restarting checkpoint follows the
/// passive one: it waits for the writer's current transaction, holds the
/// next one back while it copies the few pages written since, and the next
/// write starts the log from its beginning, over the same file pages. It runs
/// while holding this process's writer, so that it does not poll for a gap
/// between two writes while the log keeps growing, and waits at most
/// [`RESTART_WAIT`] for readers of older pages (the next turn tries again).
fn checkpointer(
    path: &Path,
    writer: Arc<Mutex<Connection>>,
    schedule: Checkpoints,
) -> StoreResult<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path).map_err(StorageError::unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(q)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || loop {
            let last = !matches!(
                stopped.recv_timeout(schedule.every),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if let Err(e) = checkpoint(&conn, &writer, schedule.restart_at_pages) {
                tracing::warn!(error = %e, "database checkpoint failed; retrying");
            }
            if last {
                return;
            }
        })
        .map_err(StorageError::unavailable)?;
    Ok(stop)
}

/// One turn of the checkpointer: a passive checkpoint, then a restarting one
/// when the log is longer than `restart_at_pages`.
fn checkpoint(
    conn: &Connection,
    writer: &Mutex<Connection>,
    restart_at_pages: i64,
) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let copied_holding_writer = checkpoint_turn(conn, writer, restart_at_pages, &mut || {})?;
    if let Some(pages) = copied_holding_writer {
        tracing::debug!(
            pages_copied_holding_writer = pages,
            turn_ms = started.elapsed().as_millis() as u64,
            "write-ahead log restarted"
        );
    }
    Ok(())
}

/// At most this many passive checkpoints catch up before a restart.
const CATCH_UP_PASSES: usize = 4;
/// A log longer than this many times the restart length is restarted
/// without catching up first (see [`checkpoint_turn`]).
const LONG_LOG_FACTOR: i64 = 4;
/// A catch-up pass that copies no more pages than this ends the catching up.
const CAUGHT_UP_PAGES: i64 = 256;

/// [`checkpoint`], with `between` run after each passive checkpoint (where
/// commits go on meanwhile). Returns how many pages the restart copied while
/// holding the writer, or `None` when the log was not restarted.
///
/// Why catch up first: a passive checkpoint of a long log takes a while
/// (each copied page is a write, then an `fsync`), and the commits made
/// meanwhile are what the restart copies with every write held back. Passes
/// without the writer each copy what was written during the last one, a
/// shrinking amount, so the restart copies only the last pass's worth
/// (under refresh load at about 4,300/s on one machine: 417–655 pages with
/// one pass, 48–218 with the catch-up passes; the server's throughput did
/// not change beyond the noise).
fn checkpoint_turn(
    conn: &Connection,
    writer: &Mutex<Connection>,
    restart_at_pages: i64,
    between: &mut dyn FnMut(),
) -> rusqlite::Result<Option<i64>> {
    // (busy, pages in the log, pages copied); -1s when not in WAL mode.
    let passive = || {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
    };
    let (mut log, mut copied) = passive()?;
    between();
    if log <= restart_at_pages {
        return Ok(None);
    }
    // A log already far past the restart length means the passes are not
    // keeping up (a disk slow to flush: every pass ends with an `fsync`),
    // and passes without the writer would let it grow while they run: the
    // restart comes at once instead, with writes held back while it copies.
    let passes = if log > restart_at_pages * LONG_LOG_FACTOR {
        0
    } else {
        CATCH_UP_PASSES
    };
    for _ in 0..passes {
        let (now_log, now_copied) = passive()?;
        between();
        // Negative when the log started again by itself meanwhile.
        let this_pass = now_copied - copied;
        (log, copied) = (now_log, now_copied);
        if log <= restart_at_pages || this_pass <= CAUGHT_UP_PAGES {
            break;
        }
    }
    if log <= restart_at_pages {
        return Ok(None);
    }
    // Holding the writer: no write of this process is under way, so
    // the checkpoint does not wait for a gap between them.
    // A panic elsewhere while writing leaves the connection usable.
    let _writing = writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    conn.busy_timeout(RESTART_WAIT)?;
    let restarted = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(2));
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(Some(restarted? - copied))
}

/// How long a restarting checkpoint waits for readers while it holds the
/// writer: writes wait that long at most.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The next group of queued writes, or `None` (and the queue marked idle,
/// under the same lock, so a write queued later starts a drain of its own).
fn take_group(group: &Mutex<Group>) -> Option<Vec<GroupJob>> {
    let mut group = group.lock().ok()?;
    if group.jobs.is_empty() {
        group.draining = false;
        return None;
    }
    let n = group.jobs.len().min(GROUP_MAX);
    Some(group.jobs.drain(..n).collect())
}

/// Whether writes are queued; when none are, the queue is marked idle
/// under the same lock, as [`take_group`] does.
fn more_queued(group: &Mutex<Group>) -> bool {
    let Ok(mut group) = group.lock() else {
        return false;
    };
    if group.jobs.is_empty() {
        group.draining = false;
        return false;
    }
    true
}

/// Runs `jobs` in one transaction and tells each caller how the commit went
/// (when BEGIN fails, the jobs are dropped unrun and their callers see them lost).
fn commit_group(c: &mut Connection, jobs: Vec<GroupJob>) {
    run_group(
        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate),
        jobs,
    );
}

/// Runs `jobs` in `tx` (just begun), commits, and tells each caller how the
/// commit went.
fn run_group(tx: rusqlite::Result<rusqlite::Transaction<'_>>, jobs: Vec<GroupJob>) {
    let mut replies = Vec::with_capacity(jobs.len());
    let committed = (|| {
        let tx = tx?;
        for job in jobs {
            replies.push(job(&tx));
        }
        tx.commit()
    })()
    .map_err(|e| e.to_string());
    if let Err(e) = &committed {
        tracing::error!(error = %e, writes = replies.len(), "a group of writes did not commit");
    }
    for reply in replies {
        reply(committed.clone());
    }
}

/// Runs `f` in a savepoint: released when it succeeds, rolled back when it fails.
fn in_savepoint<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.exec("SAVEPOINT grouped", [])?;
    match f(c) {
        Ok(value) => {
            c.exec("RELEASE grouped", [])?;
            Ok(value)
        }
        Err(e) => {
            c.execute_batch("ROLLBACK TO grouped; RELEASE grouped")?;
            Err(e)
        }
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
    use super::*;

    /// A fresh database file with one table, and its pool.
    fn pool(name: &str) -> (Pool, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "suma-auth-pool-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .unwrap();
        let external = ExternalWrites::new(&path, false);
        (Pool::new(conn, &path, external).unwrap(), dir)
    }

    /// A grouped write of row `id`.
    fn insert(id: i64) -> impl FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static {
        move |c| c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [id])
    }

    /// Runs `work` on a thread of its own with a single-threaded runtime, as
    /// an HTTP worker runs, and stops that runtime after it without waiting
    /// for what it left on its blocking pool.
    fn on_a_worker<F>(
        pool: Pool,
        work: impl FnOnce(Pool) -> F + Send + 'static,
    ) -> std::thread::JoinHandle<()>
    where
        F: std::future::Future<Output = ()>,
    {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(work(pool));
            rt.shutdown_background();
        })
    }

    /// The drain of grouped writes does not depend on the async worker whose
    /// write started it: here that worker's thread stops polling (as one
    /// busy signing tokens does) right after its write committed, and a write
    /// from another worker still commits. A drain that went back to the
    /// starting worker between turns would hold it queued until that worker
    /// polled again.
    #[tokio::test]
    async fn a_busy_worker_does_not_hold_back_the_drain_it_started() {
        let (pool, dir) = pool("busy-worker");
        let (blocked, is_blocked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let worker = on_a_worker(pool.clone(), |pool| async move {
            pool.write_grouped(insert(1)).await.unwrap();
            // Busy: nothing else on this thread is polled meanwhile.
            blocked.send(()).unwrap();
            let _ = released.recv_timeout(std::time::Duration::from_secs(10));
        });
        is_blocked.recv().unwrap();
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            pool.write_grouped(insert(2)),
        )
        .await;
        release.send(()).unwrap();
        worker.join().unwrap();
        assert!(
            matches!(other, Ok(Ok(1))),
            "the other worker's write waited for the busy one"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A worker that stops while a drain it started is under way leaves no
    /// write behind: here the worker's runtime shuts down while the drain
    /// waits for the writer, and writes queued after it still commit. A drain
    /// on that worker's own blocking pool could not queue its next turn there
    /// once the runtime was gone, and the queue would stay marked as draining.
    #[tokio::test]
    async fn a_stopped_worker_leaves_no_write_behind() {
        let (pool, dir) = pool("stopped-worker");
        let held = pool.writer.lock().unwrap();
        let (started, has_started) = std::sync::mpsc::channel();
        let worker = on_a_worker(pool.clone(), |pool| async move {
            let first = tokio::spawn({
                let pool = pool.clone();
                async move { pool.write_grouped(insert(1)).await }
            });
            // The first write is queued and its drain started.
            while !pool.group.lock().unwrap().draining {
                tokio::task::yield_now().await;
            }
            started.send(()).unwrap();
            drop(first);
        });
        has_started.recv().unwrap();
        worker.join().unwrap();
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { pool.write_grouped(insert(2)).await }
        });
        drop(held);
        assert!(matches!(second.await.unwrap(), Ok(1)));
        let third = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            pool.write_grouped(insert(3)),
        )
        .await;
        assert!(
            matches!(third, Ok(Ok(1))),
            "a write after the stopped worker's drain was left behind"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Asked to (one HTTP worker), a grouped write on an idle, free writer
    /// commits on the caller's thread, and the queue is idle again after it;
    /// by default it runs on the blocking pool.
    #[tokio::test]
    async fn a_grouped_write_commits_on_the_callers_thread_when_asked() {
        let insert = |id: i64| {
            move |c: &Connection| {
                c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [id])?;
                Ok(std::thread::current().id())
            }
        };
        let here = std::thread::current().id();
        let (by_default, _dir) = pool("elsewhere");
        assert_ne!(by_default.write_grouped(insert(1)).await.unwrap(), here);

        let (pool, _dir) = pool("caller");
        let pool = pool.commit_on_caller(true);
        assert_eq!(pool.write_grouped(insert(1)).await.unwrap(), here);
        assert_eq!(pool.write_grouped(insert(2)).await.unwrap(), here);
        let rows: i64 = pool
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(rows, 2);
    }

    /// A grouped write asked to commit on the caller's thread does not wait
    /// there for SQLite's write lock held by another process (an operator
    /// command): the caller's thread is an async worker. The write goes to
    /// the blocking pool and commits once the lock is released.
    #[tokio::test]
    async fn a_write_lock_held_elsewhere_is_not_waited_for_on_the_callers_thread() {
        let (pool, dir) = pool("locked");
        let pool = pool.commit_on_caller(true);
        let other = Connection::open(dir.join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let here = std::thread::current().id();
        let mut write = Box::pin(pool.write_grouped(|c| {
            c.execute("INSERT INTO t (id, v) VALUES (1, 'x')", [])?;
            Ok(std::thread::current().id())
        }));
        let started = std::time::Instant::now();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), &mut write).await;
        assert!(
            waited.is_err(),
            "the write finished while the lock was held"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the caller's thread waited {:?} for the lock",
            started.elapsed()
        );
        other.execute_batch("COMMIT").unwrap();
        assert_ne!(write.await.unwrap(), here);
    }

    /// Writes queued while the writer is busy commit as one transaction (the
    /// write-ahead log grows by a few pages, not by a commit per write), each
    /// caller gets its own answer, and a write that fails is undone alone.
    #[tokio::test]
    async fn queued_writes_commit_together_and_a_failed_one_is_undone_alone() {
        let (pool, dir) = pool("group");
        let wal = dir.join("t.db-wal");
        let wal_before = std::fs::metadata(&wal).map_or(0, |m| m.len());
        // Another thread holds the writer while the writes queue up.
        let (writer, (locked, is_locked)) = (pool.writer.clone(), std::sync::mpsc::channel());
        let busy = std::thread::spawn(move || {
            let _held = writer.lock().unwrap();
            locked.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        });
        is_locked.recv().unwrap();
        let writes: Vec<_> = (0..50i64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.write_grouped(move |c| {
                        c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [i])?;
                        if i % 7 == 0 {
                            // Fails after a write of its own, which must not stay.
                            c.execute("INSERT INTO t (id, v) VALUES (?1, NULL)", [1000 + i])?;
                        }
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        for (i, write) in writes.into_iter().enumerate() {
            let answer = write.await.unwrap();
            if i % 7 == 0 {
                assert!(answer.is_err(), "write {i} should fail");
            } else {
                assert_eq!(answer.unwrap(), i as i64);
            }
        }
        busy.join().unwrap();
        let ids: Vec<i64> = pool
            .read(|c| {
                let mut st = c.prepare("SELECT id FROM t ORDER BY id")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await
            .unwrap();
        let expected: Vec<i64> = (0..50).filter(|i| i % 7 != 0).collect();
        assert_eq!(ids, expected);
        // One commit of 43 rows: a handful of 4 KiB pages; a commit per
        // write would append at least one page each.
        let grown = std::fs::metadata(&wal).unwrap().len() - wal_before;
        assert!(grown < 10 * 4096, "the log grew by {grown} bytes");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Commits reach the database file through the checkpointer thread: the
    /// writer itself never checkpoints, and a small write (far below
    /// SQLite's own 1000-page threshold) is in the file within one interval.
    #[tokio::test]
    async fn the_checkpointer_moves_commits_into_the_database_file() {
        let (pool, dir) = pool("checkpoint");
        let auto: i64 = {
            let writer = pool.writer.lock().unwrap();
            writer
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(auto, 0, "the writer checkpoints by itself");
        pool.write_grouped(|c| c.execute("INSERT INTO t (id, v) VALUES (7, 'x')", []))
            .await
            .unwrap();
        // `immutable=1` reads the database file alone, not the log.
        let file_only = format!("file:{}?immutable=1", dir.join("t.db").display());
        let start = std::time::Instant::now();
        loop {
            let conn = Connection::open_with_flags(
                &file_only,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap();
            // Until the first checkpoint the file does not even hold the table.
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t WHERE id = 7", [], |r| r.get(0))
                .unwrap_or(0);
            if n == 1 {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "the commit never reached the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Under writes that never pause, the log stays near the restart length
    /// instead of growing by a page or more per commit.
    #[tokio::test]
    async fn a_steady_write_load_keeps_the_log_short() {
        let (pool, dir) = pool("steady");
        let schedule = Checkpoints {
            every: std::time::Duration::from_millis(20),
            restart_at_pages: 64,
        };
        let path = dir.join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .unwrap();
        let pool = {
            drop(pool);
            Pool::with_checkpoints(writer, &path, ExternalWrites::new(&path, false), schedule)
                .unwrap()
        };
        let wal = dir.join("t.db-wal");
        // Commits that never pause, each of at least one new 4 KiB page:
        // about 96 MB of rows, 600 MB of pages written through the log.
        const COMMITS: i64 = 32_000;
        let writers: Vec<_> = (0..4i64)
            .map(|w| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..COMMITS / 4 {
                        let id = w * COMMITS + i;
                        pool.write_grouped(move |c| {
                            c.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))", [id])
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        let mut longest = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            longest = longest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for w in writers {
            w.await.unwrap();
        }
        let n: i64 = pool
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, COMMITS);
        assert!(longest > 0, "the log was never seen");
        println!("the log peaked at {longest} bytes");
        // Without the restarts the log holds every commit's pages (603 MB
        // here); with them, what is written while one passive and one
        // restarting checkpoint run (9-13 MB here, 25 MB once beside the
        // other tests of the suite, 61 MB once with two builds running on
        // the same two cores). On a disk slow to flush (in CI right after a
        // build; here with 4 GB written beside it by `dd conv=fsync`) every
        // pass's `fsync` takes long, and commits go on meanwhile: 539 MB in
        // CI and 175-608 MB here before a long log skipped the catch-up
        // passes; 11-254 MB here after. The bound sits well below the first
        // figure and above the others: the checkpointer's turns are on a
        // clock, which a loaded machine delays.
        assert!(
            longest < 384 * 1024 * 1024,
            "the log reached {longest} bytes with a restart at {} pages",
            schedule.restart_at_pages
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Another process writing the file (`suma-auth admin`) holds SQLite's
    /// write lock: a turn of the checkpointer that would restart the log
    /// gives up after its short wait, without an error (so nothing is
    /// logged), and a later turn tries again.
    #[test]
    fn a_restart_blocked_by_another_writer_is_no_error() {
        let (pool, dir) = pool("blocked");
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        for i in 0..20i64 {
            conn.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))", [i])
                .unwrap();
        }
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        checkpoint(&conn, &pool.writer, 4).unwrap();
        let waited = started.elapsed();
        assert!(waited >= RESTART_WAIT, "no wait: {waited:?}");
        assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");
        other.execute_batch("COMMIT").unwrap();
        checkpoint(&conn, &pool.writer, 4).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A restart copies, with every write held back, only what was written
    /// after the last catch-up pass: here 200 pages are committed during the
    /// first passive checkpoint and none later, and the restart finds all of
    /// them copied already. Restarting right after the first passive
    /// checkpoint, as a single pass would, copies those 200 under the writer.
    #[test]
    fn a_restart_copies_only_what_the_catch_up_passes_left() {
        let (pool, dir) = pool("catch-up");
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        for i in 0..100i64 {
            conn.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))", [i])
                .unwrap();
        }
        let mut passes = 0;
        let mut write_meanwhile = || {
            passes += 1;
            if passes == 1 {
                for i in 0..200i64 {
                    conn.execute(
                        "INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))",
                        [1000 + i],
                    )
                    .unwrap();
                }
            }
        };
        let copied_holding_writer =
            checkpoint_turn(&conn, &pool.writer, 100, &mut write_meanwhile).unwrap();
        assert_eq!(copied_holding_writer, Some(0));
        assert!(passes >= 2, "{passes} passes");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A log already far past the restart length (more than
    /// `LONG_LOG_FACTOR` times it) is restarted right after the first
    /// passive checkpoint: passes without the writer are what let it grow.
    #[test]
    fn a_log_far_past_the_restart_length_is_restarted_without_catching_up() {
        let (pool, dir) = pool("far-past");
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        for i in 0..300i64 {
            conn.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))", [i])
                .unwrap();
        }
        let mut passes = 0;
        let mut count = || passes += 1;
        let restarted = checkpoint_turn(&conn, &pool.writer, 50, &mut count).unwrap();
        assert!(restarted.is_some(), "not restarted");
        assert_eq!(passes, 1, "{passes} passive checkpoints");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Statements of `c` prepared and not finalised.
    fn live_statements(c: &Connection) -> usize {
        let mut n = 0;
        // SAFETY: the handle is this open connection's, only read here, and
        // `sqlite3_next_stmt` walks its statement list without changing it.
        unsafe {
            let db = c.handle();
            let mut stmt = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !stmt.is_null() {
                n += 1;
                stmt = rusqlite::ffi::sqlite3_next_stmt(db, stmt);
            }
        }
        n
    }

    /// A statement run through [`Cached`] is parsed once per connection and
    /// kept: run again, it adds no statement.
    #[test]
    fn cached_statements_are_prepared_once_per_connection() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        assert_eq!(live_statements(&c), 0);
        for i in 0..3i64 {
            c.exec("INSERT INTO t (id, v) VALUES (?1, 'x')", [i])
                .unwrap();
            let n: i64 = c.row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(n, i + 1);
            let ids: Vec<i64> = c
                .stmt("SELECT id FROM t ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(ids.len() as i64, i + 1);
            assert_eq!(live_statements(&c), 3, "one statement per text");
        }
    }

    /// Every statement of the embedded store goes through [`Cached`]: none
    /// of its files calls the uncached `Connection` methods.
    #[test]
    fn the_store_runs_no_statement_outside_the_cache() {
        let files = [
            ("audit.rs", include_str!("audit.rs")),
            ("consents.rs", include_str!("consents.rs")),
            ("devices.rs", include_str!("devices.rs")),
            ("lockout.rs", include_str!("lockout.rs")),
            ("outbox.rs", include_str!("outbox.rs")),
            ("privacy.rs", include_str!("privacy.rs")),
            ("rate.rs", include_str!("rate.rs")),
            ("second_factor.rs", include_str!("second_factor.rs")),
            ("sessions.rs", include_str!("sessions.rs")),
            ("tokens.rs", include_str!("tokens.rs")),
            ("users.rs", include_str!("users.rs")),
        ];
        for (name, text) in files {
            for call in [".execute(", ".query_row(", ".prepare(", ".execute_batch("] {
                assert!(!text.contains(call), "{name} calls {call}…) uncached");
            }
        }
    }

    #[tokio::test]
    async fn a_lone_write_commits_and_the_queue_serves_the_next_one() {
        let (pool, dir) = pool("lone");
        for i in 0..3i64 {
            let got = pool
                .write_grouped(move |c| c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [i]))
                .await
                .unwrap();
            assert_eq!(got, 1);
        }
        let n: i64 = pool
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dollar_parameters_become_numbered_question_marks() {
        assert_eq!(
            dialect("UPDATE t SET a = $2 WHERE id = $1 AND b = '$x'"),
            "UPDATE t SET a = ?2 WHERE id = ?1 AND b = '$x'"
        );
        assert_eq!(dialect("SELECT 1"), "SELECT 1");
    }
}
