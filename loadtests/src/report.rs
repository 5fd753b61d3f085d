//! The report of a harness session: one JSON document (everything measured) and a
//! self-contained HTML page drawn from it (see `html.rs`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::argon2_limit::Argon2Report;
use crate::knee::Knee;
use crate::launch::Confinement;
use crate::limits::Rs256Report;
use crate::monitor::MonitorData;
use crate::run::Model;
use crate::stats::{Details, Report};

pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_bytes: u64,
    /// 1-minute load average when the session started and ended (other work on
    /// the machine skews every figure).
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_total_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .unwrap_or(0);
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            mem_total_bytes,
            load_before: crate::monitor::load_average(),
            load_after: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Setup {
    /// "embedded", "postgres+redis", or "external" (a server the harness did not start).
    pub backend: String,
    pub instances: usize,
    pub targets: Vec<String>,
    pub cpu: Option<Confinement>,
    /// Multiply measured throughput by this for one task of the requested size.
    pub task_scale: f64,
    /// Where mail was read: "files", "smtp" or "none".
    pub mail: String,
    pub server_bin: String,
    pub ready_ms: Vec<f64>,
    pub client_threads: usize,
    pub users: usize,
    pub otp_users: usize,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSection {
    pub label: String,
    pub scenario: String,
    #[serde(flatten)]
    pub model: Model,
    pub concurrency: usize,
    pub mix: Option<String>,
    /// When the measurement window opened, seconds on the monitor's clock.
    pub t0_s: f64,
    pub summary: Report,
    pub details: Details,
    /// With a CPU quota: the share of CFS periods in which the servers were
    /// throttled during the run, and the time they spent throttled.
    pub throttled_share: Option<f64>,
    pub throttled_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RampStep {
    pub load: f64,
    pub ok_rps: f64,
    /// Iterations (flows of `register` and `login_otp`) per second.
    pub iteration_ok_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_share: f64,
    /// Index into `runs`.
    pub run: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RampSection {
    pub scenario: String,
    /// "closed" (load = workers) or "open" (load = requests per second).
    pub model: String,
    pub steps: Vec<RampStep>,
    pub knee: Option<Knee>,
    pub knee_load: Option<f64>,
    pub knee_ok_rps: Option<f64>,
    pub knee_p95_ms: Option<f64>,
    pub knee_reason: Option<String>,
    /// The open-model run at a share of the knee's throughput (index into `runs`).
    pub confirm_run: Option<usize>,
    pub confirm_share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapacityRow {
    pub scenario: String,
    /// Workers at the knee (closed ramp).
    pub knee_load: Option<f64>,
    /// Successful requests per second at the knee, as measured.
    pub measured_ok_rps: f64,
    pub p95_ms: f64,
    /// `measured_ok_rps` x task scale: one task's figure.
    pub per_task_rps: f64,
    /// One task's completed flows per second (`register` and `login_otp` iterations
    /// of two requests; equal to `per_task_rps` for the others).
    pub per_task_flows: f64,
    /// The open-model confirmation at 80 % of the knee (iterations per second).
    pub confirm_rate: Option<f64>,
    pub confirm_ok_rps: Option<f64>,
    pub confirm_p95_ms: Option<f64>,
    pub confirm_p99_ms: Option<f64>,
    /// Share of CFS periods throttled during the confirmation.
    pub confirm_throttled_share: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapacitySection {
    pub task_cores: f64,
    pub method: String,
    pub task_scale: f64,
    pub scenarios: Vec<CapacityRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthLimit {
    pub concurrency: usize,
    pub ok_rps: f64,
    pub p95_ms: f64,
}

/// The machine's own limits, measured in the same session.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub argon2: Option<Argon2Report>,
    pub rs256: Option<Rs256Report>,
    pub health: Option<HealthLimit>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisSizes {
    pub db: u32,
    pub keys_total: u64,
    pub session_keys_sampled: usize,
    pub bytes_per_session: Option<f64>,
    pub lockout_keys_sampled: usize,
    pub bytes_per_lockout_key: Option<f64>,
    /// Key prefixes (up to the second `:`) and how many keys each had.
    pub key_kinds: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    pub max_connections: Option<u32>,
    pub pool_size: Option<u32>,
    pub instances: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FullReport {
    pub version: u32,
    /// "run", "ramp", "capacity" or "bench".
    pub kind: String,
    pub title: String,
    pub command: String,
    pub started_unix: u64,
    pub machine: Machine,
    pub setup: Setup,
    pub runs: Vec<RunSection>,
    pub ramp: Option<RampSection>,
    pub capacity: Option<CapacitySection>,
    pub limits: Option<Limits>,
    pub server: Option<MonitorData>,
    pub redis: Option<RedisSizes>,
    pub database: Option<DatabaseInfo>,
    pub notes: Vec<String>,
}

impl FullReport {
    pub fn new(kind: &str, title: String) -> Self {
        Self {
            version: REPORT_VERSION,
            kind: kind.to_owned(),
            title,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: Machine::describe(),
            setup: Setup {
                task_scale: 1.0,
                ..Setup::default()
            },
            runs: Vec::new(),
            ramp: None,
            capacity: None,
            limits: None,
            server: None,
            redis: None,
            database: None,
            notes: Vec::new(),
        }
    }

    /// Writes `<stem>.json` and `<stem>.html` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let json_path = dir.join(format!("{stem}.json"));
        let html_path = dir.join(format!("{stem}.html"));
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&json_path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
        std::fs::write(&html_path, crate::html::render(self))
            .map_err(|e| format!("cannot write {}: {e}", html_path.display()))?;
        Ok((json_path, html_path))
    }
}

/// A file-name stem for a report: `<kind>-<scenario>-<unix time>`.
pub fn stem(kind: &str, scenario: &str, unix: u64) -> String {
    format!("{kind}-{scenario}-{unix}")
}
