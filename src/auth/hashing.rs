//! Argon2id password hashing on a bounded pool of dedicated threads.
//!
//! Hashing is deliberately slow (~15–30 ms and 19 MiB per hash), so it never
//! runs on an HTTP worker. `workers` threads (one per core by default) share
//! at most one Argon2 memory buffer each, allocated on first use and reused
//! for every hash, so memory stays at `workers × m_cost` whatever the load and
//! no time goes to allocating and faulting in 19 MiB per hash; a buffer
//! unused for [`IDLE_FREE`] is freed, so an idle server returns to its
//! baseline memory. At most `queue` more requests may wait; beyond that the
//! pool answers [`HashError::Busy`] (HTTP 503 + `Retry-After`)
//! instead of queueing without bound, which would only turn overload into
//! timeouts for everyone.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use zeroize::Zeroize;

use crate::config::HashingConfig;
use crate::domain::password::normalize;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing pool is full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub matches: bool,
    /// The stored hash uses weaker parameters than configured: rehash now.
    pub needs_rehash: bool,
}

enum Job {
    Hash {
        password: SecretString,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: SecretString,
        phc: String,
        reply: oneshot::Sender<Result<Verified, HashError>>,
    },
}

/// The hashing pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: SyncSender<Job>,
    /// A hash of a random password with the configured parameters, verified
    /// against when the email is unknown so that both paths cost the same.
    dummy_hash: String,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests refused as busy since the gauges last took the count.
    rejected: std::sync::atomic::AtomicU64,
    /// Jobs running or waiting at most: workers + queue.
    capacity: usize,
    /// Worker threads holding an Argon2 buffer now.
    buffers_held: Arc<std::sync::atomic::AtomicUsize>,
}

/// A worker thread frees its Argon2 buffer after this long without work.
pub const IDLE_FREE: Duration = Duration::from_secs(15);

/// How often the worker waiting on an idle job queue looks at the spare
/// buffers' ages.
const IDLE_POLL: Duration = Duration::from_millis(500);

impl PasswordHasher {
    pub fn new(config: &HashingConfig) -> Result<Self, HashError> {
        Self::with_idle_free(config, IDLE_FREE)
    }

    /// [`new`](Self::new) with another idle time before a buffer is freed.
    pub fn with_idle_free(config: &HashingConfig, idle_free: Duration) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let mut scratch = Vec::new();
        let dummy_secret = crate::auth::tokens::random_token();
        let dummy_hash = hash_with(&params, dummy_secret.as_bytes(), &mut scratch)?;
        drop(scratch);
        let capacity = config.workers + config.queue;
        let (jobs, receiver) = mpsc::sync_channel::<Job>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let buffers_held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let spare: Arc<Spare> = Arc::default();
        for n in 0..config.workers {
            let worker_state = Worker {
                receiver: receiver.clone(),
                spare: spare.clone(),
                params: params.clone(),
                in_flight: in_flight.clone(),
                buffers_held: buffers_held.clone(),
                idle_free,
            };
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    yield_to_requests();
                    worker_state.run()
                })
                .map_err(|e| HashError::Internal(e.to_string()))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                dummy_hash,
                in_flight,
                rejected: std::sync::atomic::AtomicU64::new(0),
                capacity,
                buffers_held,
            }),
        })
    }

    /// Hashes a new password (NFKC-normalized) into a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash {
            password: normalize(password),
            reply,
        })?;
        answer
            .await
            .map_err(|_| HashError::Internal("hashing worker gone".into()))?
    }

    /// Verifies a password against a stored PHC string, or against the dummy
    /// hash when there is none (unknown email), which never matches.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        let known = stored.is_some();
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify {
            password: normalize(password),
            phc: stored.unwrap_or_else(|| self.inner.dummy_hash.clone()),
            reply,
        })?;
        let verified = answer
            .await
            .map_err(|_| HashError::Internal("hashing worker gone".into()))??;
        Ok(Verified {
            matches: known && verified.matches,
            needs_rehash: known && verified.needs_rehash,
        })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        use std::sync::atomic::Ordering;
        // Admission by count: running + waiting never exceeds the capacity,
        // so the channel (of that capacity) never fills.
        if self.inner.in_flight.fetch_add(1, Ordering::Relaxed) >= self.inner.capacity {
            self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(HashError::Busy);
        }
        match self.inner.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                Err(HashError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
                Err(HashError::Internal("hashing pool stopped".into()))
            }
        }
    }

    /// Requests refused as busy since the last call (for the counter).
    pub fn take_rejected(&self) -> u64 {
        self.inner
            .rejected
            .swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    /// Worker threads holding an Argon2 buffer now (each `m_cost` KiB).
    pub fn buffers_held(&self) -> usize {
        self.inner
            .buffers_held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jobs waiting or running now (for the pool gauge).
    pub fn in_flight(&self) -> usize {
        self.inner
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Argon2 buffers not in use, with when each was last used. Shared by the
/// workers rather than owned by each: the worker waiting on the job queue
/// holds the queue's lock, so only it is sure to wake when idle, and it frees
/// every buffer idle for long enough, whichever thread used it last.
type Spare = Mutex<Vec<(Vec<Block>, Instant)>>;

/// How much lower than the request threads the hashing threads run (a
/// nice value; 19 is the lowest priority).
const HASH_NICENESS: libc::c_int = 10;

/// Lowers the calling hashing thread's scheduling priority. A sign-in is
/// one hash (milliseconds of CPU) and a few short database and network
/// steps: when every core is hashing, a step woken at normal priority waits
/// for a time slice, the requests pile up between their steps and the
/// hashing threads then run out of work. At a lower priority the steps run
/// as soon as they are woken, the hashing queue stays fed and cheap
/// requests (`/me`, refresh) keep their latency under a flood of sign-ins;
/// the hashing threads still have every cycle nothing else wants. On Linux
/// the nice value is per thread; elsewhere, or if refused, nothing changes.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; setpriority on
        // the calling thread's own id only changes that thread's nice value.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, HASH_NICENESS)
        };
        if rc != 0 {
            tracing::debug!("the hashing thread's priority could not be lowered");
        }
    }
}

/// One hashing thread: what it shares with the pool.
struct Worker {
    receiver: Arc<Mutex<Receiver<Job>>>,
    spare: Arc<Spare>,
    params: Params,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    buffers_held: Arc<std::sync::atomic::AtomicUsize>,
    idle_free: Duration,
}

impl Worker {
    fn run(self) {
        use std::sync::atomic::Ordering::Relaxed;
        loop {
            let next = match self.receiver.lock() {
                Ok(rx) => rx.recv_timeout(IDLE_POLL.min(self.idle_free)),
                Err(_) => return,
            };
            let job = match next {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.free_idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut scratch = self
                .spare
                .lock()
                .ok()
                .and_then(|mut spare| spare.pop())
                .map(|(buffer, _)| buffer)
                .unwrap_or_default();
            let held_before = !scratch.is_empty();
            let started = Instant::now();
            // The slot is freed (and a new buffer counted) before the answer
            // goes out, so a caller that submits again at once is not refused
            // for its own finished job.
            let done = |scratch: &Vec<Block>| {
                if !held_before && !scratch.is_empty() {
                    self.buffers_held.fetch_add(1, Relaxed);
                }
                self.in_flight.fetch_sub(1, Relaxed);
            };
            let params = &self.params;
            match job {
                Job::Hash { password, reply } => {
                    let result =
                        hash_with(params, password.expose_secret().as_bytes(), &mut scratch);
                    done(&scratch);
                    let _ = reply.send(result);
                }
                Job::Verify {
                    password,
                    phc,
                    reply,
                } => {
                    let result = verify_with(
                        params,
                        password.expose_secret().as_bytes(),
                        &phc,
                        &mut scratch,
                    );
                    done(&scratch);
                    let _ = reply.send(result);
                }
            }
            if !scratch.is_empty() {
                match self.spare.lock() {
                    Ok(mut spare) => spare.push((scratch, Instant::now())),
                    Err(_) => {
                        self.buffers_held.fetch_sub(1, Relaxed);
                    }
                }
            }
            tracing::trace!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "argon2 job"
            );
        }
    }

    /// Drops the spare buffers unused for `idle_free`.
    fn free_idle(&self) {
        let Ok(mut spare) = self.spare.lock() else {
            return;
        };
        let before = spare.len();
        spare.retain(|(_, used)| used.elapsed() < self.idle_free);
        let freed = before - spare.len();
        if freed > 0 {
            self.buffers_held
                .fetch_sub(freed, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The buffer, grown to at least `blocks` (never shrunk while in use).
fn memory(scratch: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if scratch.len() < blocks {
        let mut area: Vec<Block> = Vec::with_capacity(blocks);
        huge_pages(
            area.as_mut_ptr().cast(),
            blocks * std::mem::size_of::<Block>(),
        );
        area.resize(blocks, Block::default());
        *scratch = area;
    }
    &mut scratch[..blocks]
}

/// Asks the kernel to back an Argon2 memory area, not yet touched, with
/// transparent huge pages where it allows them (`madvise` mode): Argon2
/// reads its area at random, so with 4 KiB pages a good share of a hash is
/// spent on address-translation misses. Only whole 2 MiB pages inside the
/// area are advised; if the kernel refuses, the area keeps small pages.
fn huge_pages(start: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (from, to) = (start as usize, start as usize + len);
        let (first, last) = ((from + HUGE - 1) & !(HUGE - 1), to & !(HUGE - 1));
        if last > first {
            // SAFETY: [first, last) lies inside the allocation that starts at
            // `start` and spans `len` bytes; MADV_HUGEPAGE changes only how
            // the kernel backs those pages, never their contents.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

fn hash_with(
    params: &Params,
    password: &[u8],
    scratch: &mut Vec<Block>,
) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut out,
            memory(scratch, params.block_count()),
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
    let phc = format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    );
    out.zeroize();
    Ok(phc)
}

fn verify_with(
    params: &Params,
    password: &[u8],
    phc: &str,
    scratch: &mut Vec<Block>,
) -> Result<Verified, HashError> {
    let invalid = |why: &str| HashError::Internal(format!("stored hash: {why}"));
    let parsed = PasswordHash::new(phc).map_err(|e| invalid(&e.to_string()))?;
    let algorithm =
        Algorithm::new(parsed.algorithm.as_str()).map_err(|e| invalid(&e.to_string()))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| invalid(&e.to_string()))?,
        None => Version::V0x13,
    };
    let stored = Params::try_from(&parsed).map_err(|e| invalid(&e.to_string()))?;
    let salt = parsed.salt.ok_or_else(|| invalid("no salt"))?;
    let expected = parsed.hash.ok_or_else(|| invalid("no hash"))?;
    let mut out = vec![0u8; expected.as_bytes().len()];
    let stored_with_len = Params::new(
        stored.m_cost(),
        stored.t_cost(),
        stored.p_cost(),
        Some(out.len()),
    )
    .map_err(|e| invalid(&e.to_string()))?;
    Argon2::new(algorithm, version, stored_with_len.clone())
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            memory(scratch, stored_with_len.block_count()),
        )
        .map_err(|e| invalid(&e.to_string()))?;
    let matches = out.len() == expected.as_bytes().len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    out.zeroize();
    let needs_rehash = algorithm != Algorithm::Argon2id
        || stored.m_cost() < params.m_cost()
        || stored.t_cost() < params.t_cost()
        || stored.p_cost() < params.p_cost();
    Ok(Verified {
        matches,
        needs_rehash,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn small() -> HashingConfig {
        HashingConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            workers: 1,
            queue: 0,
        }
    }

    /// The nice value of this process's threads named `name`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(name: &str) -> Vec<i64> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // After "(comm)": state is field 3, nice is field 19.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            found.push(rest.split(' ').nth(16).unwrap().parse().unwrap());
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_below_the_request_threads() {
        let hasher = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        hasher.hash(&pw).await.unwrap();
        // Other tests start hashing threads of the same name at any time; a
        // thread lowers its priority first thing, so all of them soon show it.
        let start = std::time::Instant::now();
        loop {
            let nice = nice_of_threads("argon2-0");
            if !nice.is_empty() && nice.iter().all(|n| *n == i64::from(HASH_NICENESS)) {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(2),
                "hashing threads at nice {nice:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// An Argon2 area is advised for huge pages before it is touched: its
    /// mapping is eligible for them (where the kernel offers them at all).
    #[cfg(target_os = "linux")]
    #[test]
    fn argon2_areas_are_advised_for_huge_pages() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !mode.contains("[madvise]") {
            // "always" makes every area eligible and "never" none: the advice
            // shows only in madvise mode.
            return;
        }
        let blocks = 8 * 1024; // 8 MiB: whole 2 MiB pages inside
        let mut scratch = Vec::new();
        let area = memory(&mut scratch, blocks);
        area[blocks / 2] = Block::default();
        let addr = area.as_ptr() as usize + blocks / 2 * std::mem::size_of::<Block>();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut eligible = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((from, to)) = range.split_once('-') {
                    if let (Ok(from), Ok(to)) = (
                        usize::from_str_radix(from, 16),
                        usize::from_str_radix(to, 16),
                    ) {
                        inside = (from..to).contains(&addr);
                        continue;
                    }
                }
            }
            if inside && line.starts_with("THPeligible:") {
                eligible = Some(line.split_whitespace().nth(1) == Some("1"));
            }
        }
        assert_eq!(eligible, Some(true), "the area's mapping is not eligible");
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_never_matches() {
        let hasher = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let phc = hasher.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify(&pw, Some(phc.clone())).await.unwrap().matches);
        let wrong = SecretString::from("wrong horse battery".to_string());
        assert!(!hasher.verify(&wrong, Some(phc)).await.unwrap().matches);
        assert!(!hasher.verify(&pw, None).await.unwrap().matches);
    }

    #[tokio::test]
    async fn phc_strings_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let ours = hasher.hash(&pw).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(hasher.verify(&pw, Some(theirs)).await.unwrap().matches);
    }

    /// Every worker keeps its buffer while busy and frees it once idle, so an
    /// idle server goes back to its baseline memory.
    #[tokio::test]
    async fn idle_workers_free_their_buffers() {
        let hasher = PasswordHasher::with_idle_free(
            &HashingConfig {
                workers: 2,
                queue: 2,
                ..small()
            },
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(hasher.buffers_held(), 0);
        let pw = SecretString::from("correct horse battery".to_string());
        let busy = futures_util::future::join_all((0..4).map(|_| hasher.hash(&pw))).await;
        assert!(busy.iter().all(Result::is_ok));
        assert!(hasher.buffers_held() >= 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while hasher.buffers_held() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(hasher.buffers_held(), 0, "an idle worker kept its buffer");
        // A job after that allocates again and still hashes.
        assert!(hasher.hash(&pw).await.is_ok());
        assert_eq!(hasher.buffers_held(), 1);
    }

    #[tokio::test]
    async fn a_full_pool_is_busy_not_a_queue() {
        let hasher = PasswordHasher::new(&HashingConfig {
            memory_kib: 8192,
            iterations: 4,
            ..small()
        })
        .unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let results = futures_util::future::join_all((0..8).map(|_| hasher.hash(&pw))).await;
        assert!(results.iter().any(|r| matches!(r, Err(HashError::Busy))));
        assert!(results.iter().any(|r| r.is_ok()));
    }

    #[tokio::test]
    async fn weaker_stored_parameters_ask_for_a_rehash() {
        let weak = PasswordHasher::new(&small()).unwrap();
        let pw = SecretString::from("correct horse battery".to_string());
        let phc = weak.hash(&pw).await.unwrap();
        let strong = PasswordHasher::new(&HashingConfig {
            memory_kib: 128,
            ..small()
        })
        .unwrap();
        let v = strong.verify(&pw, Some(phc)).await.unwrap();
        assert!(v.matches && v.needs_rehash);
    }
}
