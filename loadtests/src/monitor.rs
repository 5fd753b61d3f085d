//! What the server does while it is measured: CPU and resident memory of the
//! processes the harness started (read from `/proc/<pid>`), the DogStatsD gauges
//! the server sends (`auth.hash_pool.in_flight`, `auth.actors.live`, …) to a UDP
//! listener of the harness, and the machine's load. Sampled on background threads
//! from a common start instant.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ: 100 on Linux).
const CLK_TCK: f64 = 100.0;
/// Page size of `/proc/<pid>/statm`.
const PAGE: u64 = 4096;

/// CPU time (user + system, in ticks) of a process from `/proc/<pid>/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which is in parentheses and may hold spaces):
    // state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident bytes from `/proc/<pid>/statm`.
pub fn parse_statm_rss(statm: &str) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE)
}

/// Busy and total jiffies of all CPUs from the first line of `/proc/stat`.
pub fn parse_proc_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?;
    let mut it = line.split_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

pub fn read_rss(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| parse_statm_rss(&s))
}

fn read_ticks(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat_ticks(&s))
}

/// CPU time the calling thread has run, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`), or None where it cannot be read. Unlike the
/// wall clock, it does not grow while the thread waits for a CPU, so costs
/// measured with it do not depend on what else the machine runs. One reading
/// is a single system call, cheap enough to bracket each operation measured.
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs * 1_000_000_000 + nanos)
}

/// CPU time of `op`, run once, in nanoseconds (None where it cannot be read),
/// with what `op` returns.
pub fn cpu_of<T>(op: impl FnOnce() -> T) -> (T, Option<u64>) {
    let before = thread_cpu_ns();
    let out = op();
    let cpu = before
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a));
    (out, cpu)
}

/// The typical CPU time of one operation: the median of each one's own, in
/// nanoseconds, or None with no sample. Why the median and not total ÷ count:
/// on a virtual machine an operation now and then takes several times longer
/// (the host runs another guest on the core, or a neighbour floods the
/// memory), and a mean over a few hundred milliseconds carries those into a
/// cost, and the limit computed from it, that the next minute does not show.
pub fn typical_cpu_ns(samples: &mut [u64]) -> Option<f64> {
    samples.sort_unstable();
    let n = samples.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(samples[n / 2] as f64),
        _ => Some((samples[n / 2 - 1] as f64 + samples[n / 2] as f64) / 2.0),
    }
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One sample of one process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcPoint {
    /// Seconds since the monitor started.
    pub t_s: f64,
    /// Cores used since the previous sample (1.0 = one core busy).
    pub cpu_cores: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcSeries {
    pub name: String,
    pub pid: u32,
    pub points: Vec<ProcPoint>,
}

/// A DogStatsD gauge value as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GaugePoint {
    pub t_s: f64,
    /// Which instance sent it (its source port, numbered in order of appearance).
    pub instance: usize,
    pub value: f64,
}

/// One parsed DogStatsD line: `name:value|type|@rate|#tags`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdLine<'a> {
    pub name: &'a str,
    pub value: f64,
    pub kind: &'a str,
}

pub fn parse_statsd_line(line: &str) -> Option<StatsdLine<'_>> {
    let (name, rest) = line.trim().split_once(':')?;
    let mut parts = rest.split('|');
    let value = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    Some(StatsdLine { name, value, kind })
}

/// Everything the monitor collected.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorData {
    /// CPU and RSS of every process the harness started.
    pub processes: Vec<ProcSeries>,
    /// Share of all CPUs busy (0..1), machine-wide, per sample.
    pub machine_busy: Vec<(f64, f64)>,
    /// Gauges by name.
    pub gauges: BTreeMap<String, Vec<GaugePoint>>,
    /// Statsd packets received (all metrics).
    pub statsd_packets: u64,
}

#[derive(Debug, Default)]
struct Shared {
    data: MonitorData,
    /// Source port → instance number.
    instances: Vec<u16>,
}

/// The gauges the report plots; others are kept only if their name starts with
/// `auth.` and they are gauges.
pub const HASH_POOL_GAUGE: &str = "auth.hash_pool.in_flight";
pub const ACTORS_GAUGE: &str = "auth.actors.live";

/// Samples processes and listens for gauges until dropped or [`Monitor::finish`]ed.
#[derive(Debug)]
pub struct Monitor {
    pub start: Instant,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    pub statsd_port: Option<u16>,
    pids: Arc<Mutex<Vec<(String, u32)>>>,
}

impl Monitor {
    /// Starts sampling every `interval` and, with `statsd`, a UDP listener on
    /// 127.0.0.1 for the server's DogStatsD traffic.
    pub fn start(interval: Duration, statsd: bool) -> Result<Self, String> {
        let start = Instant::now();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let pids: Arc<Mutex<Vec<(String, u32)>>> = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();

        {
            let (shared, stop, pids) = (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&pids));
            threads.push(
                thread::Builder::new()
                    .name("proc-sampler".into())
                    .spawn(move || sample_loop(start, interval, &shared, &stop, &pids))
                    .map_err(|e| format!("cannot start the process sampler: {e}"))?,
            );
        }

        let mut statsd_port = None;
        if statsd {
            let socket = UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| format!("cannot bind the DogStatsD listener: {e}"))?;
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .map_err(|e| e.to_string())?;
            statsd_port = Some(socket.local_addr().map_err(|e| e.to_string())?.port());
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            threads.push(
                thread::Builder::new()
                    .name("statsd".into())
                    .spawn(move || statsd_loop(start, &socket, &shared, &stop))
                    .map_err(|e| format!("cannot start the DogStatsD listener: {e}"))?,
            );
        }
        Ok(Self {
            start,
            shared,
            stop,
            threads: Mutex::new(threads),
            statsd_port,
            pids,
        })
    }

    /// Adds a process to sample.
    pub fn watch(&self, name: &str, pid: u32) {
        if let Ok(mut p) = self.pids.lock() {
            p.push((name.to_owned(), pid));
        }
    }

    /// The latest sample: (cores used, RSS bytes) summed over the processes, and
    /// the latest value of each plotted gauge summed over instances.
    pub fn latest(&self) -> Latest {
        let Ok(s) = self.shared.lock() else {
            return Latest::default();
        };
        let mut l = Latest::default();
        for p in &s.data.processes {
            if let Some(pt) = p.points.last() {
                l.cpu_cores += pt.cpu_cores;
                l.rss_bytes += pt.rss_bytes;
            }
        }
        for (name, target) in [
            (HASH_POOL_GAUGE, &mut l.hash_in_flight),
            (ACTORS_GAUGE, &mut l.actors),
        ] {
            if let Some(points) = s.data.gauges.get(name) {
                let mut per: BTreeMap<usize, f64> = BTreeMap::new();
                for p in points {
                    per.insert(p.instance, p.value);
                }
                if !per.is_empty() {
                    *target = Some(per.values().sum());
                }
            }
        }
        l
    }

    /// Seconds since the monitor started.
    pub fn now_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn stop_threads(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads: Vec<_> = self
            .threads
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Stops the threads and returns what they collected.
    pub fn finish(&self) -> MonitorData {
        self.stop_threads();
        self.shared
            .lock()
            .map(|s| s.data.clone())
            .unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// The monitor's latest view, for the progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latest {
    pub cpu_cores: f64,
    pub rss_bytes: u64,
    pub hash_in_flight: Option<f64>,
    pub actors: Option<f64>,
}

fn sample_loop(
    start: Instant,
    interval: Duration,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    pids: &Mutex<Vec<(String, u32)>>,
) {
    // pid → (ticks, at) of the previous sample.
    let mut prev: BTreeMap<u32, (u64, Instant)> = BTreeMap::new();
    let mut prev_machine: Option<(u64, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let t_s = now.duration_since(start).as_secs_f64();
        let watched: Vec<(String, u32)> = pids.lock().map(|p| p.clone()).unwrap_or_default();
        let mut points = Vec::new();
        for (name, pid) in watched {
            let (Some(ticks), Some(rss)) = (read_ticks(pid), read_rss(pid)) else {
                continue;
            };
            let cpu = match prev.get(&pid) {
                Some(&(t0, at)) => {
                    let dt = now.duration_since(at).as_secs_f64().max(1e-3);
                    ticks.saturating_sub(t0) as f64 / CLK_TCK / dt
                }
                None => 0.0,
            };
            let first = !prev.contains_key(&pid);
            prev.insert(pid, (ticks, now));
            if !first {
                points.push((name, pid, cpu, rss));
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_proc_stat_cpu(&s));
        let busy = match (prev_machine, machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        prev_machine = machine;
        if let Ok(mut s) = shared.lock() {
            for (name, pid, cpu, rss) in points {
                let point = ProcPoint {
                    t_s,
                    cpu_cores: (cpu * 1000.0).round() / 1000.0,
                    rss_bytes: rss,
                };
                match s.data.processes.iter_mut().find(|p| p.pid == pid) {
                    Some(series) => series.points.push(point),
                    None => s.data.processes.push(ProcSeries {
                        name,
                        pid,
                        points: vec![point],
                    }),
                }
            }
            if let Some(b) = busy {
                s.data
                    .machine_busy
                    .push((t_s, (b * 1000.0).round() / 1000.0));
            }
        }
        // Sleep in short steps so a stop is noticed quickly.
        let until = now + interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn statsd_loop(start: Instant, socket: &UdpSocket, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let t_s = start.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&buf[..n]);
        let Ok(mut s) = shared.lock() else {
            continue;
        };
        s.data.statsd_packets += 1;
        let instance = match s.instances.iter().position(|&p| p == from.port()) {
            Some(i) => i,
            None => {
                s.instances.push(from.port());
                s.instances.len() - 1
            }
        };
        for line in text.lines() {
            if let Some(l) = parse_statsd_line(line) {
                if l.kind == "g" && l.name.starts_with("auth.") {
                    s.data
                        .gauges
                        .entry(l.name.to_owned())
                        .or_default()
                        .push(GaugePoint {
                            t_s,
                            instance,
                            value: l.value,
                        });
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_typical_cost_is_not_moved_by_a_rare_slow_operation() {
        // Nine signatures of 400 µs and one the host held for 5 ms.
        let mut samples = vec![400_000u64; 9];
        samples.push(5_000_000);
        assert_eq!(typical_cpu_ns(&mut samples), Some(400_000.0));
        assert_eq!(typical_cpu_ns(&mut [300, 100, 200]), Some(200.0));
        assert_eq!(typical_cpu_ns(&mut []), None);
    }

    #[test]
    fn cpu_time_of_an_operation_counts_its_work_not_its_waiting() {
        let (sum, busy) = cpu_of(|| (0..20_000_000u64).fold(0u64, |a, b| a ^ b.wrapping_mul(31)));
        std::hint::black_box(sum);
        let ((), asleep) = cpu_of(|| std::thread::sleep(Duration::from_millis(30)));
        let (busy, asleep) = (busy.unwrap(), asleep.unwrap());
        assert!(busy > 0, "{busy}");
        assert!(
            asleep < 10_000_000,
            "sleeping 30 ms counted {asleep} ns of CPU"
        );
    }

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (suma auth) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 9 0 \
                    12345 1000000 2500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert_eq!(
            parse_statm_rss("5000 2500 300 10 0 800 0"),
            Some(2500 * 4096)
        );
        assert_eq!(
            parse_proc_stat_cpu("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n"),
            Some((150, 1000))
        );
        assert_eq!(parse_stat_ticks("garbage"), None);
        // This process can be read.
        assert!(read_rss(std::process::id()).unwrap() > 0);
        let a = thread_cpu_ns().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns().unwrap() > a);
        assert!(read_ticks(std::process::id()).is_some());
    }

    #[test]
    fn statsd_lines_are_parsed() {
        let l =
            parse_statsd_line("auth.actors.live:812|g|#env:development,service:suma-auth").unwrap();
        assert_eq!((l.name, l.value, l.kind), ("auth.actors.live", 812.0, "g"));
        let c = parse_statsd_line("auth.endpoint.requests:1|c|@0.5|#endpoint:/health").unwrap();
        assert_eq!(c.kind, "c");
        assert!(parse_statsd_line("nonsense").is_none());
        assert!(parse_statsd_line("a:b|g").is_none());
    }

    #[test]
    fn the_monitor_samples_a_process_and_receives_gauges() {
        let m = Monitor::start(Duration::from_millis(50), true).unwrap();
        m.watch("self", std::process::id());
        let port = m.statsd_port.unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(
            b"auth.hash_pool.in_flight:3|g|#env:t\nauth.endpoint.requests:1|c\nauth.actors.live:7|g",
            ("127.0.0.1", port),
        )
        .unwrap();
        // Wait for the data rather than for a fixed time.
        for _ in 0..200 {
            let l = m.latest();
            if l.actors.is_some() && l.rss_bytes > 0 {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let latest = m.latest();
        assert_eq!(latest.hash_in_flight, Some(3.0));
        assert_eq!(latest.actors, Some(7.0));
        let data = m.finish();
        assert_eq!(data.statsd_packets, 1);
        assert_eq!(data.gauges.len(), 2);
        assert!(!data.processes.is_empty());
        assert!(data.processes[0].points[0].rss_bytes > 0);
    }
}
