//! This machine's raw Argon2id limit: how many password hashes per second all cores
//! together can compute at the server's parameters, with no HTTP or database around it.
//! A login costs one such hash, so this is the ceiling of login throughput.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Serialize;

use crate::monitor::{cpu_of, thread_cpu_ns, typical_cpu_ns};
use crate::stats::{round1, round3};

#[derive(Debug, Clone)]
pub struct Argon2Opts {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// How long all threads hash in parallel.
    pub duration: Duration,
    /// Hashing threads; `None` = one per core (`available_parallelism`).
    pub threads: Option<usize>,
    /// Upper bound on parallel hashes, whatever the duration.
    pub max_hashes: u64,
    /// Hash into one preallocated memory area per thread instead of allocating the
    /// m_cost KiB for every hash (as `hash_password_into` and the PHC API do). Shows how
    /// much of a hash is allocation and page faults.
    pub reuse_memory: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Argon2Report {
    pub cores: usize,
    pub threads: usize,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub reuse_memory: bool,
    /// Median wall time of one hash with no other hashing thread.
    pub single_hash_ms: f64,
    /// Median wall time of one hash while every thread hashes (memory bandwidth
    /// shared).
    pub parallel_hash_ms: f64,
    pub parallel_hash_p95_ms: f64,
    /// CPU time of one hash, alone (the median of each one's own) and with every
    /// thread hashing (the threads' CPU time ÷ the hashes): what a hash costs,
    /// whatever else runs on the machine. The limit is computed from
    /// the parallel one (the wall times where CPU time cannot be read).
    pub single_cpu_hash_ms: f64,
    pub parallel_cpu_hash_ms: f64,
    pub hashes: u64,
    pub elapsed_s: f64,
    /// Hashes actually completed per second by all threads together.
    pub measured_hps: f64,
    /// threads ÷ parallel CPU time of a hash (hashes per second).
    pub limit_hps: f64,
}

impl Argon2Report {
    pub fn print_human(&self) {
        println!(
            "Argon2id m={} KiB t={} p={}  ({} cores, {} hashing threads{})",
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            self.cores,
            self.threads,
            if self.reuse_memory {
                ", memory reused, huge pages advised"
            } else {
                ", memory allocated per hash"
            }
        );
        println!(
            "  one hash alone                   {:.2} ms CPU ({:.2} ms wall)",
            self.single_cpu_hash_ms, self.single_hash_ms
        );
        println!(
            "  one hash, all threads busy       {:.2} ms CPU ({:.2} ms wall, p95 {:.2} ms)",
            self.parallel_cpu_hash_ms, self.parallel_hash_ms, self.parallel_hash_p95_ms
        );
        println!(
            "  measured  {} hashes in {:.2} s = {:.1} hashes/s",
            self.hashes, self.elapsed_s, self.measured_hps
        );
        println!(
            "  limit = {} threads / {:.2} ms = {:.1} hashes/s",
            self.threads, self.parallel_cpu_hash_ms, self.limit_hps
        );
    }
}

fn hasher(opts: &Argon2Opts) -> Result<Argon2<'static>, String> {
    let params = Params::new(opts.m_cost_kib, opts.t_cost, opts.p_cost, Some(32))
        .map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// One hasher and, with `reuse_memory`, its memory.
struct Hasher {
    argon: Argon2<'static>,
    memory: Option<Vec<Block>>,
}

impl Hasher {
    fn new(opts: &Argon2Opts) -> Result<Self, String> {
        let argon = hasher(opts)?;
        let memory = opts
            .reuse_memory
            .then(|| huge_page_area(argon.params().block_count()));
        Ok(Self { argon, memory })
    }
}

/// An Argon2 memory area backed, where the kernel allows it, by transparent
/// huge pages, as the server's hashing threads allocate theirs (the area is
/// advised before it is first touched): the limit is measured with the
/// memory the server hashes in.
fn huge_page_area(blocks: usize) -> Vec<Block> {
    let mut area: Vec<Block> = Vec::with_capacity(blocks);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let from = area.as_mut_ptr() as usize;
        let to = from + blocks * std::mem::size_of::<Block>();
        let (first, last) = ((from + HUGE - 1) & !(HUGE - 1), to & !(HUGE - 1));
        if last > first {
            // SAFETY: the advised range lies inside the allocation just made;
            // the advice changes how pages are backed, not what they hold.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    area.resize(blocks, Block::default());
    area
}

fn hash_once(h: &mut Hasher, password: &[u8]) -> Result<Duration, String> {
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    let t0 = Instant::now();
    match &mut h.memory {
        Some(memory) => {
            h.argon
                .hash_password_into_with_memory(password, &salt, &mut out, memory.as_mut_slice())
        }
        None => h.argon.hash_password_into(password, &salt, &mut out),
    }
    .map_err(|e| format!("argon2 hashing failed: {e}"))?;
    let elapsed = t0.elapsed();
    std::hint::black_box(&out);
    Ok(elapsed)
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort_unstable();
    if times.is_empty() {
        return 0.0;
    }
    times[(times.len() - 1) / 2].as_secs_f64() * 1000.0
}

fn p95_ms(times: &[Duration]) -> f64 {
    // `times` is sorted by `median_ms` first.
    if times.is_empty() {
        return 0.0;
    }
    let rank = ((0.95 * times.len() as f64).ceil() as usize).clamp(1, times.len());
    times[rank - 1].as_secs_f64() * 1000.0
}

pub fn measure(opts: &Argon2Opts) -> Result<Argon2Report, String> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = opts.threads.unwrap_or(cores).max(1);
    let mut alone_hasher = Hasher::new(opts)?;
    let password = b"correct horse battery staple 0";

    // Alone: one warm-up hash (page faults of the first allocation), then a few timed.
    hash_once(&mut alone_hasher, password)?;
    let mut alone = Vec::new();
    let mut alone_cpu = Vec::new();
    let alone_deadline = Instant::now() + Duration::from_millis(600);
    while alone.len() < 20 && (alone.len() < 5 || Instant::now() < alone_deadline) {
        let (wall, cpu) = cpu_of(|| hash_once(&mut alone_hasher, password));
        alone.push(wall?);
        alone_cpu.extend(cpu);
    }
    let single_cpu_ns = typical_cpu_ns(&mut alone_cpu);
    let single_hash_ms = median_ms(&mut alone);
    drop(alone_hasher);

    // Every thread in parallel, started together, until the deadline or the budget.
    let budget = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let opts = opts.clone();
        let budget = Arc::clone(&budget);
        let barrier = Arc::clone(&barrier);
        handles.push(thread::spawn(
            move || -> Result<(Vec<Duration>, Option<u64>), String> {
                // Warm-up hash, not timed. Wait at the barrier whatever happened, so that
                // an error here cannot leave the other threads waiting forever.
                let prepared =
                    Hasher::new(&opts).and_then(|mut h| hash_once(&mut h, password).map(|_| h));
                barrier.wait();
                let mut h = prepared?;
                let deadline = Instant::now() + opts.duration;
                let mut times = Vec::new();
                let cpu0 = thread_cpu_ns();
                while Instant::now() < deadline
                    && budget.fetch_add(1, Ordering::Relaxed) < opts.max_hashes
                {
                    times.push(hash_once(&mut h, password)?);
                }
                let cpu = match (cpu0, thread_cpu_ns()) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                    _ => None,
                };
                Ok((times, cpu))
            },
        ));
    }
    barrier.wait();
    let start = Instant::now();
    let mut all = Vec::new();
    let mut cpu_total: Option<u64> = Some(0);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((times, cpu))) => {
                all.extend(times);
                cpu_total = cpu_total.zip(cpu).map(|(a, b)| a + b);
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some("a hashing thread panicked".to_owned())),
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }
    if all.is_empty() {
        return Err("no hash completed; raise --duration or --max-hashes".to_owned());
    }
    let hashes = all.len() as u64;
    let parallel_hash_ms = median_ms(&mut all);
    let parallel_hash_p95_ms = p95_ms(&all);
    let parallel_cpu_hash_ms =
        cpu_total.map_or(parallel_hash_ms, |ns| ns as f64 / hashes as f64 / 1e6);
    let single_cpu_hash_ms = single_cpu_ns.map_or(single_hash_ms, |ns| ns / 1e6);
    let limit_hps = threads as f64 / (parallel_cpu_hash_ms.max(1e-6) / 1000.0);
    Ok(Argon2Report {
        cores,
        threads,
        m_cost_kib: opts.m_cost_kib,
        t_cost: opts.t_cost,
        p_cost: opts.p_cost,
        reuse_memory: opts.reuse_memory,
        single_hash_ms: round3(single_hash_ms),
        single_cpu_hash_ms: round3(single_cpu_hash_ms),
        parallel_cpu_hash_ms: round3(parallel_cpu_hash_ms),
        parallel_hash_ms: round3(parallel_hash_ms),
        parallel_hash_p95_ms: round3(parallel_hash_p95_ms),
        hashes,
        elapsed_s: round3(elapsed.as_secs_f64()),
        measured_hps: round1(hashes as f64 / elapsed.as_secs_f64().max(1e-9)),
        limit_hps: round1(limit_hps),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn tiny_parameters_run_and_are_bounded() {
        let opts = Argon2Opts {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
            duration: Duration::from_millis(200),
            threads: Some(2),
            max_hashes: 50,
            reuse_memory: false,
        };
        let r = measure(&opts).unwrap();
        assert!(r.hashes >= 1 && r.hashes <= 50, "{}", r.hashes);
        let opts = Argon2Opts {
            reuse_memory: true,
            ..opts
        };
        let r = measure(&opts).unwrap();
        assert_eq!(r.threads, 2);
        assert!(r.hashes >= 1 && r.hashes <= 50, "{}", r.hashes);
        assert!(r.limit_hps > 0.0);
    }

    #[test]
    fn bad_parameters_are_an_error() {
        let opts = Argon2Opts {
            m_cost_kib: 1,
            t_cost: 0,
            p_cost: 1,
            duration: Duration::from_millis(10),
            threads: Some(1),
            max_hashes: 1,
            reuse_memory: false,
        };
        assert!(measure(&opts).is_err());
    }
}
