//! Measures the per-user actors: touches 100,000 distinct user keys through the handle,
//! then reports live actors, memory per actor, message throughput at concurrency 16 and
//! memory after the idle reap.
//!
//! `cargo run -p suma-auth-actors --release --example actor_bench`
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use suma_auth_actors::clock::wall_clock_now;
use suma_auth_actors::{Backing, SecurityActors, SecurityConfig, SecurityHandle};

const KEYS: usize = 100_000;
const CONCURRENCY: usize = 16;
const STEADY_OPS: usize = 400_000;
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Counts live heap bytes (requested sizes), to price an actor without allocator noise.
struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HEAP.fetch_add(size(layout.size()), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HEAP.fetch_add(size(layout.size()), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HEAP.fetch_sub(size(layout.size()), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HEAP.fetch_add(size(new_size) - size(layout.size()), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident set size in bytes, from /proc/self/statm (4 KiB pages).
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn heap() -> i64 {
    i64::try_from(HEAP.load(Ordering::Relaxed)).unwrap_or(0)
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
    format!("user{n:06}@example.com")
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
async fn from_another_thread(handle: &SecurityHandle) -> Result<f64, Box<dyn Error>> {
    let arbiter = actix::Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = handle.clone();
    arbiter.spawn(async move {
        let rate = load(&handle, STEADY_OPS, KEYS)
            .await
            .map_err(|e| e.to_string());
        let _ = tx.send(rate);
    });
    let rate = rx.await?;
    arbiter.stop();
    Ok(rate?)
}

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let config = SecurityConfig {
        idle_timeout: IDLE_TIMEOUT,
        ..SecurityConfig::default()
    };
    println!(
        "shards {}, user mailbox {}, idle timeout {:?}, concurrency {CONCURRENCY}",
        config.shards, config.user_mailbox, config.idle_timeout
    );
    let handle = SecurityActors::start(config, Backing::Local)?;
    actix::clock::sleep(Duration::from_millis(50)).await;
    let (rss0, heap0) = (rss(), heap());
    println!("baseline: RSS {}, heap {}", mib(rss0), mib(heap0));

    let created = load(&handle, KEYS, KEYS).await?;
    let live = handle.stats().live_actors;
    let (rss1, heap1) = (rss(), heap());
    let per = |delta: i64| delta / i64::try_from(live.max(1)).unwrap_or(1);
    println!("touched {KEYS} keys: {live} live actors, {created:.0} messages/s (creating actors)");
    println!(
        "  RSS {} (+{}), {} bytes per live actor",
        mib(rss1),
        mib(rss1 - rss0),
        per(rss1 - rss0)
    );
    println!(
        "  heap {} (+{}), {} heap bytes per live actor",
        mib(heap1),
        mib(heap1 - heap0),
        per(heap1 - heap0)
    );

    let steady = load(&handle, STEADY_OPS, KEYS).await?;
    println!("steady state over {KEYS} live actors: {steady:.0} messages/s");
    let hot = load(&handle, STEADY_OPS, 1_000).await?;
    println!("steady state over 1,000 hot keys: {hot:.0} messages/s");
    let remote = from_another_thread(&handle).await?;
    println!("steady state, callers on another thread (like HTTP workers): {remote:.0} messages/s");

    let reap_started = Instant::now();
    while handle.stats().live_actors > 0 && reap_started.elapsed() < Duration::from_secs(60) {
        actix::clock::sleep(Duration::from_millis(100)).await;
    }
    actix::clock::sleep(Duration::from_millis(200)).await;
    let (rss2, heap2) = (rss(), heap());
    println!(
        "after idle reap ({:.1} s): {} live actors, RSS {}, heap {} (+{} over baseline)",
        reap_started.elapsed().as_secs_f64(),
        handle.stats().live_actors,
        mib(rss2),
        mib(heap2),
        mib(heap2 - heap0)
    );
    malloc_trim();
    println!("after malloc_trim(0): RSS {}", mib(rss()));
    println!("mailbox rejections: {}", handle.stats().mailbox_rejections);
    Ok(())
}
