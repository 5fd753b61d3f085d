//! Counting outcomes and latencies, and turning them into figures.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The requests the harness sends, one label per route it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Register,
    VerifyEmail,
    Login,
    /// A login answered with a second-factor challenge (the first step of login_otp).
    LoginOtp,
    OtpVerify,
    Refresh,
    Me,
    Health,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Register,
        Op::VerifyEmail,
        Op::Login,
        Op::LoginOtp,
        Op::OtpVerify,
        Op::Refresh,
        Op::Me,
        Op::Health,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::VerifyEmail => "verify_email",
            Op::Login => "login",
            Op::LoginOtp => "login_otp",
            Op::OtpVerify => "otp_verify",
            Op::Refresh => "refresh",
            Op::Me => "me",
            Op::Health => "health",
        }
    }
}

/// One completed request inside the measurement window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the answer was complete, milliseconds after the window opened.
    pub t_ms: u32,
    /// Latency in microseconds (saturating at u32::MAX).
    pub lat_us: u32,
    pub op: Op,
    pub ok: bool,
}

/// What one worker (or a whole run, once merged) saw inside the measurement window.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Error label (`status_503`, `timeout`, `connect`, `bad_body`, …) → count.
    pub errors: BTreeMap<String, u64>,
    /// Latency of every successful request, in microseconds (saturating at u32::MAX).
    pub latencies_us: Vec<u32>,
    /// Every request of the window, for the per-route figures and the timeline.
    pub samples: Vec<Sample>,
    /// How long the harness waited for a mail (verification link, sign-in code)
    /// once the server had answered, microseconds.
    pub mail_waits_us: Vec<u32>,
    /// Open model: how late each request was sent after it was due, microseconds.
    pub send_lags_us: Vec<u32>,
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Tally {
    pub fn record_ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latencies_us.push(micros(latency));
    }

    pub fn record_error(&mut self, label: &str) {
        if let Some(n) = self.errors.get_mut(label) {
            *n += 1;
        } else {
            self.errors.insert(label.to_owned(), 1);
        }
    }

    /// Records one request with its route and completion time (`at`: since the
    /// window opened).
    pub fn record(&mut self, op: Op, at: Duration, latency: Duration, outcome: Result<(), &str>) {
        let ok = outcome.is_ok();
        match outcome {
            Ok(()) => self.record_ok(latency),
            Err(label) => self.record_error(label),
        }
        self.samples.push(Sample {
            t_ms: u32::try_from(at.as_millis()).unwrap_or(u32::MAX),
            lat_us: micros(latency),
            op,
            ok,
        });
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        self.latencies_us.extend(other.latencies_us);
        self.samples.extend(other.samples);
        self.mail_waits_us.extend(other.mail_waits_us);
        self.send_lags_us.extend(other.send_lags_us);
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

/// Percentiles of a set of durations, milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// Sorts `values_us` and reads the percentiles off it.
    pub fn of(values_us: &mut [u32]) -> Self {
        values_us.sort_unstable();
        let v = &*values_us;
        let ms = |us: u32| round3(f64::from(us) / 1000.0);
        let mean_ms = if v.is_empty() {
            0.0
        } else {
            v.iter().map(|&x| u64::from(x)).sum::<u64>() as f64 / v.len() as f64 / 1000.0
        };
        Self {
            count: v.len() as u64,
            p50_ms: ms(percentile(v, 50.0)),
            p95_ms: ms(percentile(v, 95.0)),
            p99_ms: ms(percentile(v, 99.0)),
            max_ms: ms(v.last().copied().unwrap_or(0)),
            mean_ms: round3(mean_ms),
        }
    }
}

/// The figures of one route within a run.
#[derive(Debug, Clone, Serialize)]
pub struct OpFigures {
    pub op: Op,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub ok_rps: f64,
    /// Successful requests only.
    pub latency: Percentiles,
}

/// One interval of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimePoint {
    /// End of the interval, seconds after the window opened.
    pub t_s: f64,
    pub ok_rps: f64,
    pub error_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One bar of the latency distribution: successful requests whose latency is in
/// `[lo_ms, hi_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistBucket {
    pub lo_ms: f64,
    pub hi_ms: f64,
    pub count: u64,
}

/// Everything beyond the summary: per route, over time, and the distribution.
#[derive(Debug, Clone, Serialize)]
pub struct Details {
    pub ops: Vec<OpFigures>,
    /// Successful iterations per second: a `register` or `login_otp` flow is one
    /// iteration of two requests (its second request is not counted here). The
    /// open model's rate is in iterations.
    pub iteration_ok_rps: f64,
    /// Width of a timeline interval, seconds.
    pub bucket_s: f64,
    pub timeline: Vec<TimePoint>,
    pub histogram: Vec<HistBucket>,
    pub mail_wait: Option<Percentiles>,
    pub send_lag: Option<Percentiles>,
}

/// A timeline interval that gives about 60–120 points over the window.
pub fn bucket_width(window: Duration) -> f64 {
    let target = window.as_secs_f64() / 100.0;
    for w in [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0] {
        if w >= target {
            return w;
        }
    }
    60.0
}

/// Histogram edges: four per doubling from 10 µs.
fn hist_index(us: u32) -> usize {
    if us < 10 {
        return 0;
    }
    let x = f64::from(us) / 10.0;
    (x.log2() * 4.0).floor() as usize + 1
}

fn hist_edge_ms(index: usize) -> f64 {
    if index == 0 {
        0.0
    } else {
        round3(0.01 * 2f64.powf((index - 1) as f64 / 4.0))
    }
}

/// Latency distribution of successful requests on log-spaced buckets, from the
/// first non-empty bucket to the last.
pub fn histogram(latencies_us: &[u32]) -> Vec<HistBucket> {
    let mut counts: Vec<u64> = Vec::new();
    for &us in latencies_us {
        let i = hist_index(us);
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    let Some(first) = counts.iter().position(|&c| c > 0) else {
        return Vec::new();
    };
    counts
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, &count)| HistBucket {
            lo_ms: hist_edge_ms(i),
            hi_ms: hist_edge_ms(i + 1),
            count,
        })
        .collect()
}

/// Per route, over time and the distribution, from the samples of a run.
pub fn details(tally: &Tally, window: Duration) -> Details {
    let secs = window.as_secs_f64().max(1e-9);
    let mut ops = Vec::new();
    for op in Op::ALL {
        let mut lat: Vec<u32> = Vec::new();
        let mut requests = 0u64;
        for s in tally.samples.iter().filter(|s| s.op == op) {
            requests += 1;
            if s.ok {
                lat.push(s.lat_us);
            }
        }
        if requests == 0 {
            continue;
        }
        let ok = lat.len() as u64;
        ops.push(OpFigures {
            op,
            requests,
            ok,
            errors: requests - ok,
            ok_rps: round1(ok as f64 / secs),
            latency: Percentiles::of(&mut lat),
        });
    }

    let width = bucket_width(window);
    let n = ((secs / width).ceil() as usize).max(1);
    let mut ok_lat: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut errs = vec![0u64; n];
    for s in &tally.samples {
        let i = ((f64::from(s.t_ms) / 1000.0 / width) as usize).min(n - 1);
        if s.ok {
            ok_lat[i].push(s.lat_us);
        } else {
            errs[i] += 1;
        }
    }
    let timeline = ok_lat
        .iter_mut()
        .zip(&errs)
        .enumerate()
        // The last interval may be cut short by the end of the window: a sliver
        // of it would plot as a spike or a dip.
        .filter(|(i, _)| secs - *i as f64 * width >= width / 2.0 || *i == 0)
        .map(|(i, (lat, &e))| {
            let start = i as f64 * width;
            let span = (secs - start).min(width).max(1e-3);
            let p = Percentiles::of(lat);
            TimePoint {
                t_s: round3((start + span).min(secs)),
                ok_rps: round1(lat.len() as f64 / span),
                error_rps: round1(e as f64 / span),
                p50_ms: p.p50_ms,
                p95_ms: p.p95_ms,
                p99_ms: p.p99_ms,
            }
        })
        .collect();

    let mut mail = tally.mail_waits_us.clone();
    let mut lag = tally.send_lags_us.clone();
    let second_steps: f64 = ops
        .iter()
        .filter(|o| matches!(o.op, Op::VerifyEmail | Op::OtpVerify))
        .map(|o| o.ok_rps)
        .sum();
    let all_ok: f64 = ops.iter().map(|o| o.ok_rps).sum();
    Details {
        iteration_ok_rps: round1((all_ok - second_steps).max(0.0)),
        ops,
        bucket_s: width,
        timeline,
        histogram: histogram(&tally.latencies_us),
        mail_wait: (!mail.is_empty()).then(|| Percentiles::of(&mut mail)),
        send_lag: (!lag.is_empty()).then(|| Percentiles::of(&mut lag)),
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

    #[test]
    fn details_per_route_over_time_and_distribution() {
        let mut t = Tally::default();
        // 4 s window: me answers in 1 ms for 2 s, then in 10 ms; one refresh fails.
        for i in 0..400u64 {
            let lat = if i < 200 { 1 } else { 10 };
            t.record(
                Op::Me,
                Duration::from_millis(i * 10),
                Duration::from_millis(lat),
                Ok(()),
            );
        }
        t.record(
            Op::Refresh,
            Duration::from_millis(3500),
            Duration::from_millis(2),
            Err("status_500"),
        );
        t.mail_waits_us.push(1500);
        let d = details(&t, Duration::from_secs(4));
        assert_eq!(d.ops.len(), 2);
        let me = &d.ops[1];
        assert_eq!(
            (me.op, me.requests, me.ok, me.ok_rps),
            (Op::Me, 400, 400, 100.0)
        );
        assert_eq!(d.ops[0].op, Op::Refresh);
        assert_eq!((d.ops[0].ok, d.ops[0].errors), (0, 1));
        assert_eq!(d.bucket_s, 0.25);
        assert_eq!(d.timeline.len(), 16);
        assert_eq!(d.timeline[0].p95_ms, 1.0);
        assert_eq!(d.timeline[0].ok_rps, 100.0);
        assert_eq!(d.timeline[15].p95_ms, 10.0);
        assert_eq!(d.timeline[14].error_rps, 4.0);
        assert_eq!(d.timeline[15].t_s, 4.0);
        let total: u64 = d.histogram.iter().map(|b| b.count).sum();
        assert_eq!(total, 400);
        assert!(d.histogram.iter().all(|b| b.lo_ms < b.hi_ms));
        let one = d.histogram.iter().find(|b| b.count == 200).unwrap();
        assert!(one.lo_ms <= 1.0 && 1.0 < one.hi_ms, "{one:?}");
        assert_eq!(d.mail_wait.unwrap().p50_ms, 1.5);
        assert_eq!(d.iteration_ok_rps, 100.0);
        assert!(d.send_lag.is_none());
    }

    #[test]
    fn bucket_widths_scale_with_the_window() {
        assert_eq!(bucket_width(Duration::from_secs(5)), 0.25);
        assert_eq!(bucket_width(Duration::from_secs(60)), 1.0);
        assert_eq!(bucket_width(Duration::from_secs(3600)), 60.0);
        assert!(histogram(&[]).is_empty());
        assert_eq!(histogram(&[0, 5])[0].lo_ms, 0.0);
    }
}
