//! Measures the per-user actors: touches distinct user keys through the handle (a
//! login round trip each: reserve, then success), then reports live actors, memory
//! per actor, message throughput at concurrency 16 and memory after the idle reap,
//! against two targets: at most 1 KiB per live actor, and a resident size back within
//! 10 % of the baseline once the idle actors are reaped.
//!
//! The baseline is the idle process after a warm-up: the same rounds with 1,000 users,
//! reaped. What only the first use of a code path costs (the threads' allocator arenas
//! and caches, runtime structures) is then in the baseline, and what is measured
//! against it is what a million users leave behind. The cold baseline (at start) is
//! printed too, with the growth over it.
//!
//! `cargo run -p suma-auth-actors --release --example actor_bench -- [--keys 1000000]
//!  [--idle-secs 3] [--no-steady] [--no-warmup]`
//!
//! `--keys` distinct users (default 100,000); `--idle-secs` the idle timeout after
//! which actors are reaped; `--no-steady` skips the steady-state throughput runs;
//! `--no-warmup` takes the baseline at start.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::error::Error;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use suma_auth_actors::clock::wall_clock_now;
use suma_auth_actors::{Backing, SecurityActors, SecurityConfig, SecurityHandle};

const CONCURRENCY: usize = 16;
const STEADY_OPS: usize = 400_000;
/// Bytes per live actor the design allows.
const TARGET_BYTES_PER_ACTOR: i64 = 1024;
/// Resident size after the reap, over the baseline, at most (percent).
const TARGET_RSS_GROWTH_PERCENT: f64 = 10.0;

/// Users of the warm-up round.
const WARMUP_KEYS: usize = 1_000;

struct Opts {
    keys: usize,
    idle: Duration,
    steady: bool,
    warmup: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        keys: 100_000,
        idle: Duration::from_secs(3),
        steady: true,
        warmup: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => {
                opts.keys = args
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .filter(|&k: &usize| (1..=10_000_000).contains(&k))
                    .ok_or("--keys takes a number from 1 to 10,000,000")?;
            }
            "--idle-secs" => {
                let secs: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&s| (1..=600).contains(&s))
                    .ok_or("--idle-secs takes a number from 1 to 600")?;
                opts.idle = Duration::from_secs(secs);
            }
            "--no-steady" => opts.steady = false,
            "--no-warmup" => opts.warmup = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Resident set size in bytes, from /proc/self/statm (4 KiB pages).
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn heap() -> i64 {
    i64::try_from(counting::live_bytes()).unwrap_or(0)
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only returns free memory to the OS.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() {}

fn key(n: usize) -> String {
    format!("user{n:07}@example.com")
}

/// The largest resident size seen while a load runs (sampled by the workers).
static PEAK_RSS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn note_rss() {
    PEAK_RSS.fetch_max(rss(), Ordering::Relaxed);
}

/// Runs `ops` login round trips (reserve + success: 2 messages each) spread over
/// `CONCURRENCY` tasks, key `n` for op `n % key_space`; returns messages per second.
async fn load(
    handle: &SecurityHandle,
    ops: usize,
    key_space: usize,
) -> Result<f64, Box<dyn Error>> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let handle = handle.clone();
            actix::spawn(async move {
                let mut failures = 0usize;
                for op in (worker..ops).step_by(CONCURRENCY) {
                    if op % 50_000 == worker {
                        note_rss();
                    }
                    let key = key(op % key_space);
                    let now = wall_clock_now();
                    if handle.reserve_login(&key, now).await.is_err()
                        || handle.record_login_success(&key).await.is_err()
                    {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        failures += task.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    if failures > 0 {
        println!("  ({failures} round trips refused)");
    }
    Ok((ops * 2) as f64 / secs)
}

/// The same steady-state load, issued from a second arbiter (thread), as actix-web
/// workers do: every message crosses threads twice.
async fn from_another_thread(handle: &SecurityHandle, keys: usize) -> Result<f64, Box<dyn Error>> {
    let arbiter = actix::Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = handle.clone();
    arbiter.spawn(async move {
        let rate = load(&handle, STEADY_OPS, keys)
            .await
            .map_err(|e| e.to_string());
        let _ = tx.send(rate);
    });
    let rate = rx.await?;
    arbiter.stop();
    Ok(rate?)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT MET"
    }
}

/// The figures of one round: touch `keys` users, the steady-state loads, the reap.
struct Round {
    live: u64,
    touch_peak: i64,
    peak: i64,
    heap_touched: i64,
    heap_after_reap: i64,
    rss_after_trim: i64,
}

/// Touches `keys` distinct users, runs the steady-state loads (when `steady`), waits
/// for the idle reap and trims the allocator; prints as it goes when `verbose`.
async fn round(
    handle: &SecurityHandle,
    keys: usize,
    steady: bool,
    idle: Duration,
    verbose: bool,
) -> Result<Round, Box<dyn Error>> {
    let rss0 = rss();
    PEAK_RSS.store(rss0, Ordering::Relaxed);
    let created = load(handle, keys, keys).await?;
    note_rss();
    let live = handle.stats().live_actors;
    let (rss1, heap1) = (rss(), heap());
    let touch_peak = PEAK_RSS.load(Ordering::Relaxed).max(rss1);
    if verbose {
        println!(
            "touched {keys} users: {live} live actors, {created:.0} messages/s (creating actors)"
        );
        println!(
            "  RSS {} (+{}; peak {}), heap {}",
            mib(rss1),
            mib(rss1 - rss0),
            mib(touch_peak),
            mib(heap1)
        );
    }
    if steady {
        let steady = load(handle, STEADY_OPS.min(keys * 4), keys).await?;
        let hot = load(handle, STEADY_OPS.min(keys * 4), 1_000.min(keys)).await?;
        let remote = from_another_thread(handle, keys).await?;
        if verbose {
            println!("steady state over {keys} live actors: {steady:.0} messages/s");
            println!("steady state over 1,000 hot keys: {hot:.0} messages/s");
            println!(
                "steady state, callers on another thread (like HTTP workers): {remote:.0} messages/s"
            );
        }
    }
    let peak = PEAK_RSS.load(Ordering::Relaxed).max(rss1);

    // Wait until every actor is reaped, or the count stops falling (actors that
    // hold state existing nowhere else are kept by design).
    let reap_started = Instant::now();
    let reap_limit = Duration::from_secs(300) + idle * 4;
    let settle = (idle * 3).max(Duration::from_secs(10));
    let mut last_live = handle.stats().live_actors;
    let mut last_change = Instant::now();
    while handle.stats().live_actors > 0 && reap_started.elapsed() < reap_limit {
        actix::clock::sleep(Duration::from_millis(100)).await;
        let now_live = handle.stats().live_actors;
        if now_live != last_live {
            last_live = now_live;
            last_change = Instant::now();
        } else if last_change.elapsed() > settle && now_live < live / 100 {
            break;
        }
    }
    actix::clock::sleep(Duration::from_millis(200)).await;
    let (rss2, heap2) = (rss(), heap());
    if verbose {
        println!(
            "after idle reap ({:.1} s): {} live actors, RSS {}, heap {}",
            reap_started.elapsed().as_secs_f64(),
            handle.stats().live_actors,
            mib(rss2),
            mib(heap2),
        );
    }
    // The server hands freed memory back the same way, on a timer.
    malloc_trim();
    Ok(Round {
        live,
        touch_peak,
        peak,
        heap_touched: heap1,
        heap_after_reap: heap2,
        rss_after_trim: rss(),
    })
}

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let opts = parse_args()?;
    let keys = opts.keys;
    let config = SecurityConfig {
        idle_timeout: opts.idle,
        ..SecurityConfig::default()
    };
    println!(
        "{keys} distinct users; shards {}, user mailbox {}, idle timeout {:?}, concurrency {CONCURRENCY}",
        config.shards, config.user_mailbox, config.idle_timeout
    );
    let handle = SecurityActors::start(config, Backing::Local)?;
    actix::clock::sleep(Duration::from_millis(50)).await;
    let cold = rss();
    println!(
        "cold baseline (at start): RSS {}, heap {}",
        mib(cold),
        mib(heap())
    );
    if opts.warmup {
        let warm = round(&handle, WARMUP_KEYS, opts.steady, opts.idle, false).await?;
        println!(
            "warm-up: {WARMUP_KEYS} users touched and reaped, RSS {} after malloc_trim(0)",
            mib(warm.rss_after_trim)
        );
    }
    let (rss0, heap0) = (rss(), heap());
    println!("baseline: RSS {}, heap {}", mib(rss0), mib(heap0));

    let r = round(&handle, keys, opts.steady, opts.idle, true).await?;
    let live = r.live;
    let per = |delta: i64| delta / i64::try_from(live.max(1)).unwrap_or(1);
    let rss3 = r.rss_after_trim;
    let growth = (rss3 - rss0) as f64 / rss0.max(1) as f64 * 100.0;
    let cold_growth = (rss3 - cold) as f64 / cold.max(1) as f64 * 100.0;
    println!(
        "after malloc_trim(0): RSS {} ({growth:+.1} % over the baseline, {cold_growth:+.1} % over the cold baseline)",
        mib(rss3)
    );
    println!("mailbox rejections: {}", handle.stats().mailbox_rejections);
    println!();
    let bytes_per_actor = per(r.touch_peak - rss0);
    let reaped_early = (keys as u64).saturating_sub(live);
    if reaped_early > 0 {
        println!(
            "note: {} of the {keys} users were reaped before the last was touched, so the \
             peak holds memory their actors freed and the per-actor figures are overstated; \
             give --idle-secs more than the touching takes",
            reaped_early
        );
    }
    println!(
        "summary: {keys} users, {live} live actors at peak; RSS cold {} / baseline {} / peak {} / after reap {}",
        mib(cold),
        mib(rss0),
        mib(r.peak),
        mib(rss3)
    );
    println!(
        "  bytes per live actor (RSS)   {bytes_per_actor:>8}   target <= {TARGET_BYTES_PER_ACTOR}: {}",
        verdict(bytes_per_actor <= TARGET_BYTES_PER_ACTOR)
    );
    println!(
        "  heap bytes per live actor    {:>8}",
        per(r.heap_touched - heap0)
    );
    println!(
        "  RSS after reap over baseline {growth:>7.1} %  target <= {TARGET_RSS_GROWTH_PERCENT:.0} %: {}",
        verdict(growth <= TARGET_RSS_GROWTH_PERCENT)
    );
    println!(
        "  kept after the reap: RSS +{} (+{} over the cold baseline), live heap +{} ({} actors still live)",
        mib(rss3 - rss0),
        mib(rss3 - cold),
        mib(r.heap_after_reap - heap0),
        handle.stats().live_actors
    );
    Ok(())
}
