//! Counting outcomes and latencies, and turning them into figures.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// What one worker (or a whole run, once merged) saw inside the measurement window.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Error label (`status_503`, `timeout`, `connect`, `bad_body`, …) → count.
    pub errors: BTreeMap<String, u64>,
    /// Latency of every successful request, in microseconds (saturating at u32::MAX).
    pub latencies_us: Vec<u32>,
}

impl Tally {
    pub fn record_ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn record_error(&mut self, label: &str) {
        if let Some(n) = self.errors.get_mut(label) {
            *n += 1;
        } else {
            self.errors.insert(label.to_owned(), 1);
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Nearest-rank percentile of an ascending slice, in microseconds (0 when empty).
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The figures of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub concurrency: usize,
    pub client_threads: usize,
    /// Length of the measurement window actually observed (warm-up excluded).
    pub duration_s: f64,
    /// Completed requests in the window (successes + errors).
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_counts: BTreeMap<String, u64>,
    /// All completed requests per second.
    pub throughput_rps: f64,
    /// Successful requests per second: the figure the targets and ratios use.
    pub ok_rps: f64,
    /// Latency percentiles of successful requests, milliseconds.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Report {
    pub fn from_tally(
        scenario: &str,
        concurrency: usize,
        client_threads: usize,
        window: Duration,
        mut tally: Tally,
    ) -> Self {
        tally.latencies_us.sort_unstable();
        let lat = &tally.latencies_us;
        let secs = window.as_secs_f64().max(1e-9);
        let errors = tally.error_total();
        let requests = tally.ok + errors;
        let ms = |us: u32| f64::from(us) / 1000.0;
        let mean_ms = if lat.is_empty() {
            0.0
        } else {
            lat.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / lat.len() as f64 / 1000.0
        };
        Self {
            scenario: scenario.to_owned(),
            concurrency,
            client_threads,
            duration_s: round3(secs),
            requests,
            ok: tally.ok,
            errors,
            error_counts: tally.errors,
            throughput_rps: round1(requests as f64 / secs),
            ok_rps: round1(tally.ok as f64 / secs),
            p50_ms: round3(ms(percentile(lat, 50.0))),
            p95_ms: round3(ms(percentile(lat, 95.0))),
            p99_ms: round3(ms(percentile(lat, 99.0))),
            max_ms: round3(ms(lat.last().copied().unwrap_or(0))),
            mean_ms: round3(mean_ms),
        }
    }

    pub fn error_summary(&self) -> String {
        if self.error_counts.is_empty() {
            return "none".to_owned();
        }
        self.error_counts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn print_human(&self) {
        println!(
            "scenario {}  concurrency {}  client threads {}  window {:.2} s",
            self.scenario, self.concurrency, self.client_threads, self.duration_s
        );
        println!(
            "  requests {}  ok {}  errors {} ({})",
            self.requests,
            self.ok,
            self.errors,
            self.error_summary()
        );
        println!(
            "  throughput {:.1} req/s  (successful {:.1} req/s)",
            self.throughput_rps, self.ok_rps
        );
        println!(
            "  latency ms (successful requests)  p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms, self.mean_ms
        );
    }
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn report_from_merged_tallies() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for ms in 1..=50u64 {
            a.record_ok(Duration::from_millis(ms));
        }
        for ms in 51..=100u64 {
            b.record_ok(Duration::from_millis(ms));
        }
        b.record_error("status_503");
        b.record_error("status_503");
        a.record_error("timeout");
        a.merge(b);
        let r = Report::from_tally("login", 8, 1, Duration::from_secs(2), a);
        assert_eq!(r.ok, 100);
        assert_eq!(r.errors, 3);
        assert_eq!(r.requests, 103);
        assert_eq!(r.ok_rps, 50.0);
        assert_eq!(r.throughput_rps, 51.5);
        assert_eq!(r.p50_ms, 50.0);
        assert_eq!(r.p95_ms, 95.0);
        assert_eq!(r.max_ms, 100.0);
        assert_eq!(r.mean_ms, 50.5);
        assert_eq!(r.error_summary(), "status_503: 2, timeout: 1");
    }
}
