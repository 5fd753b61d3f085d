//! The one-line progress display: requests, throughput and p95 of the last
//! second, errors, and the server's CPU, memory, hash-pool queue and live actors.
//! Workers count into lock-free counters; a printer thread redraws the line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::monitor::{Latest, Monitor};

/// Latency buckets of the live p95: four per doubling from 10 µs (as the report's
/// histogram), up to about a minute.
const BUCKETS: usize = 96;

#[derive(Debug)]
pub struct Progress {
    ok: AtomicU64,
    errors: AtomicU64,
    buckets: Vec<AtomicU64>,
    label: Mutex<String>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            label: Mutex::new(String::new()),
        }
    }
}

fn bucket_of(us: u32) -> usize {
    if us < 10 {
        return 0;
    }
    let i = ((f64::from(us) / 10.0).log2() * 4.0).floor() as usize + 1;
    i.min(BUCKETS - 1)
}

fn bucket_upper_ms(i: usize) -> f64 {
    0.01 * 2f64.powf(i as f64 / 4.0)
}

/// The p95 (upper bucket edge, ms) of a bucket snapshot, or None when empty.
pub fn p95_of(counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (total as f64 * 0.95).ceil() as u64;
    let mut seen = 0;
    for (i, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bucket_upper_ms(i));
        }
    }
    None
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn record(&self, ok: bool, latency_us: u32) {
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
            self.buckets[bucket_of(latency_us)].fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What is running now (e.g. "login c=8"), shown at the start of the line.
    pub fn set_label(&self, label: &str) {
        if let Ok(mut l) = self.label.lock() {
            *l = label.to_owned();
        }
    }

    fn take_buckets(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect()
    }
}

/// Formats the line (pure, for tests).
#[allow(clippy::too_many_arguments)]
pub fn format_line(
    label: &str,
    elapsed_s: f64,
    ok_total: u64,
    rps: f64,
    p95_ms: Option<f64>,
    errors: u64,
    server: Option<Latest>,
) -> String {
    let mut line = format!(
        "{label} {elapsed_s:>6.1} s  {ok_total:>9} ok  {rps:>8.0}/s  p95 {}  err {errors}",
        p95_ms.map_or_else(|| "   -   ".to_owned(), |p| format!("{p:>6.2}ms")),
    );
    if let Some(s) = server {
        line.push_str(&format!(
            "  | server cpu {:>3.0} %  rss {:>5.1} MB",
            s.cpu_cores * 100.0,
            s.rss_bytes as f64 / 1e6
        ));
        if let Some(h) = s.hash_in_flight {
            line.push_str(&format!("  hash {h:.0}"));
        }
        if let Some(a) = s.actors {
            line.push_str(&format!("  actors {a:.0}"));
        }
    }
    line
}

/// Redraws the progress line on stderr until dropped: in place on a terminal
/// (every 0.5 s), one line every 5 s otherwise.
pub struct Printer {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Printer {
    pub fn start(progress: Arc<Progress>, monitor: Option<Arc<Monitor>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let tty = std::io::stderr().is_terminal();
                let every = if tty {
                    Duration::from_millis(500)
                } else {
                    Duration::from_secs(5)
                };
                let started = Instant::now();
                let mut last = Instant::now();
                let mut last_ok = 0u64;
                let mut drawn = false;
                while !stop2.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                    if last.elapsed() < every {
                        continue;
                    }
                    let dt = last.elapsed().as_secs_f64();
                    last = Instant::now();
                    let ok = progress.ok.load(Ordering::Relaxed);
                    let errors = progress.errors.load(Ordering::Relaxed);
                    let p95 = p95_of(&progress.take_buckets());
                    let label = progress.label.lock().map(|l| l.clone()).unwrap_or_default();
                    let line = format_line(
                        &label,
                        started.elapsed().as_secs_f64(),
                        ok,
                        ok.saturating_sub(last_ok) as f64 / dt,
                        p95,
                        errors,
                        monitor.as_ref().map(|m| m.latest()),
                    );
                    last_ok = ok;
                    let mut err = std::io::stderr().lock();
                    if tty {
                        let _ = write!(err, "\r\x1b[2K{line}");
                        drawn = true;
                    } else {
                        let _ = writeln!(err, "{line}");
                    }
                    let _ = err.flush();
                }
                if drawn {
                    let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
                }
            })
            .ok();
        Self { stop, handle }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn live_p95_from_buckets() {
        let p = Progress::default();
        for _ in 0..95 {
            p.record(true, 1000);
        }
        for _ in 0..5 {
            p.record(true, 50_000);
        }
        p.record(false, 0);
        let counts = p.take_buckets();
        let p95 = p95_of(&counts).unwrap();
        assert!((1.0..1.2).contains(&p95), "{p95}");
        assert_eq!(p95_of(&p.take_buckets()), None);
        assert_eq!(p.errors.load(Ordering::Relaxed), 1);
        assert_eq!(bucket_of(u32::MAX), BUCKETS - 1);
    }

    #[test]
    fn the_line_shows_load_and_server_state() {
        let line = format_line(
            "me c=16",
            12.3,
            45_000,
            3_650.4,
            Some(1.93),
            2,
            Some(Latest {
                cpu_cores: 0.98,
                rss_bytes: 34_000_000,
                hash_in_flight: Some(3.0),
                actors: None,
            }),
        );
        assert!(line.starts_with("me c=16   12.3 s"), "{line}");
        assert!(line.contains("3650/s"));
        assert!(line.contains("p95   1.93ms"));
        assert!(line.contains("cpu  98 %"));
        assert!(line.contains("rss  34.0 MB"));
        assert!(line.contains("hash 3"));
        assert!(!line.contains("actors"));
        assert!(!line.contains('\n'));
    }
}
