//! `plan`: turns measured per-task capacity into a fleet size. Pure arithmetic over
//! the figures a report holds; every assumption is an input with a stated default.

use serde::Serialize;
use serde_json::Value;

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// Connections each task holds beside its pool: the one that listens for
/// changes to accounts (`LISTEN suma_auth_user_changed`).
pub const CONNECTIONS_BESIDE_POOL: u32 = 1;

/// What the plan is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInput {
    /// Users (accounts that use the service on a given day).
    pub users: u64,
    pub requests_per_user_per_day: f64,
    /// Peak hour over the daily average.
    pub peak_factor: f64,
    /// Requests per second one task sustains on the traffic mix, at its knee.
    pub per_task_rps: f64,
    /// Where that figure comes from (shown with the plan).
    pub capacity_source: String,
    /// Share of a task's capacity the fleet is sized and scaled for.
    pub target_utilization: f64,
    /// Fewest tasks whatever the load (one per availability zone).
    pub min_tasks: u32,
    /// Most tasks as a multiple of the peak's need (room for bursts and a lost zone).
    pub max_headroom: f64,
    /// PostgreSQL connections per task (DB_POOL_SIZE).
    pub db_pool_size: u32,
    /// max_connections of the database instance.
    pub db_max_connections: u32,
    /// Tasks a deployment may run, in percent of the count (new ones start first).
    pub deployment_maximum_percent: u32,
    /// Share of max_connections the fleet may hold (the rest for admin and migrations).
    pub db_connection_budget: f64,
    /// Measured Redis bytes per cached session, and per lockout key.
    pub redis_bytes_per_session: Option<f64>,
    pub redis_bytes_per_lockout_key: Option<f64>,
    /// Share of users with a live session cached in Redis at the busiest moment.
    pub concurrent_session_share: f64,
    /// Live sessions per such user (devices).
    pub sessions_per_user: f64,
    /// Share of users with a lockout window open (recent failed logins).
    pub lockout_share: f64,
    /// p95 latency above which tasks are added, milliseconds.
    pub latency_p95_threshold_ms: f64,
}

impl PlanInput {
    /// The defaults of the seed's capacity script and the deployment's variables,
    /// for a given user count and measured capacity.
    pub fn with_defaults(users: u64, per_task_rps: f64, capacity_source: String) -> Self {
        Self {
            users,
            requests_per_user_per_day: 10.0,
            peak_factor: 3.0,
            per_task_rps,
            capacity_source,
            target_utilization: 0.7,
            min_tasks: 3,
            max_headroom: 1.5,
            db_pool_size: 8,
            db_max_connections: 400,
            deployment_maximum_percent: 200,
            db_connection_budget: 0.9,
            redis_bytes_per_session: None,
            redis_bytes_per_lockout_key: None,
            concurrent_session_share: 0.1,
            sessions_per_user: 1.0,
            lockout_share: 0.01,
            latency_p95_threshold_ms: 200.0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            (
                "--requests-per-user-per-day",
                self.requests_per_user_per_day,
            ),
            ("--peak-factor", self.peak_factor),
            ("per-task capacity", self.per_task_rps),
            ("--target-utilization", self.target_utilization),
            ("--max-headroom", self.max_headroom),
        ];
        for (name, v) in positive {
            if !v.is_finite() || v <= 0.0 {
                return Err(format!("{name} must be a positive number, not {v}"));
            }
        }
        if self.peak_factor < 1.0 {
            return Err("--peak-factor must be at least 1 (the peak is above the average)".into());
        }
        if self.target_utilization > 1.0 {
            return Err("--target-utilization must be at most 1".into());
        }
        if self.max_headroom < 1.0 {
            return Err("--max-headroom must be at least 1".into());
        }
        if self.min_tasks == 0 || self.db_pool_size == 0 || self.db_max_connections == 0 {
            return Err("--min-tasks, the pool size and max_connections must be positive".into());
        }
        for (name, v) in [
            ("--concurrent-session-share", self.concurrent_session_share),
            ("--lockout-share", self.lockout_share),
            ("--db-connection-budget", self.db_connection_budget),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, not {v}"));
            }
        }
        if self.sessions_per_user < 0.0 || !self.sessions_per_user.is_finite() {
            return Err("--sessions-per-user must be zero or more".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tasks {
    pub min: u32,
    pub desired: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Database {
    pub pool_size: u32,
    /// Connections the fleet can open at most: max tasks x deployment surge x
    /// (pool + the connection each task keeps beside it).
    pub connections_at_max: u64,
    pub max_connections: u32,
    /// Connections the fleet may use: budget share of max_connections.
    pub connection_budget: u64,
    pub fits: bool,
    /// The largest pool that keeps the fleet within budget at max tasks (0: none does).
    pub largest_fitting_pool: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redis {
    pub sessions: f64,
    pub lockout_keys: f64,
    pub bytes_per_session: Option<f64>,
    pub bytes_per_lockout_key: Option<f64>,
    /// Data bytes (None without measured sizes).
    pub data_bytes: Option<f64>,
    /// Data bytes x 1.5 (allocator fragmentation, replication buffers, headroom).
    pub provisioned_mib: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alb {
    /// Target of ALBRequestCountPerTarget (requests per task per minute).
    pub request_count_per_target: u64,
    /// The p95 target response time that adds tasks, milliseconds.
    pub p95_threshold_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub input: PlanInput,
    pub avg_rps: f64,
    pub peak_rps: f64,
    /// Requests per second a task is planned to carry (capacity x target utilization).
    pub planned_rps_per_task: f64,
    pub tasks: Tasks,
    pub database: Database,
    pub redis: Redis,
    pub alb: Alb,
    pub notes: Vec<String>,
}

fn ceil_u32(v: f64) -> u32 {
    if !v.is_finite() || v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        v.ceil() as u32
    }
}

/// The plan. Whatever the input, `min <= desired <= max`.
pub fn plan(input: &PlanInput) -> Result<Plan, String> {
    input.validate()?;
    let avg_rps = input.users as f64 * input.requests_per_user_per_day / DAY;
    let peak_rps = avg_rps * input.peak_factor;
    let planned = input.per_task_rps * input.target_utilization;

    let for_average = ceil_u32(avg_rps / planned);
    let for_peak = ceil_u32(peak_rps / planned).max(1);
    let min = input.min_tasks.max(for_average);
    let desired = for_peak.max(min);
    let max = ceil_u32(f64::from(desired) * input.max_headroom)
        .max(desired)
        .max(min.saturating_add(1));
    let tasks = Tasks { min, desired, max };

    let surge = f64::from(input.deployment_maximum_percent.max(100)) / 100.0;
    let tasks_at_surge = (f64::from(max) * surge).ceil();
    let per_task = input.db_pool_size.saturating_add(CONNECTIONS_BESIDE_POOL);
    let connections_at_max = (tasks_at_surge * f64::from(per_task)) as u64;
    let connection_budget =
        (f64::from(input.db_max_connections) * input.db_connection_budget).floor() as u64;
    let largest_fitting_pool = if tasks_at_surge > 0.0 {
        u32::try_from((connection_budget as f64 / tasks_at_surge).floor() as u64)
            .unwrap_or(u32::MAX)
            .saturating_sub(CONNECTIONS_BESIDE_POOL)
    } else {
        0
    };
    let database = Database {
        pool_size: input.db_pool_size,
        connections_at_max,
        max_connections: input.db_max_connections,
        connection_budget,
        fits: connections_at_max <= connection_budget,
        largest_fitting_pool,
    };

    let sessions = input.users as f64 * input.concurrent_session_share * input.sessions_per_user;
    let lockout_keys = input.users as f64 * input.lockout_share;
    let data_bytes = match (
        input.redis_bytes_per_session,
        input.redis_bytes_per_lockout_key,
    ) {
        (Some(s), Some(l)) => Some(sessions * s + lockout_keys * l),
        (Some(s), None) => Some(sessions * s),
        _ => None,
    };
    let redis = Redis {
        sessions,
        lockout_keys,
        bytes_per_session: input.redis_bytes_per_session,
        bytes_per_lockout_key: input.redis_bytes_per_lockout_key,
        data_bytes,
        provisioned_mib: data_bytes.map(|b| b * 1.5 / (1024.0 * 1024.0)),
    };

    let alb = Alb {
        request_count_per_target: (planned * 60.0).floor().max(1.0) as u64,
        p95_threshold_ms: input.latency_p95_threshold_ms,
    };

    let mut notes = Vec::new();
    if !database.fits {
        if largest_fitting_pool >= 2 {
            notes.push(format!(
                "{} tasks x {:.0} % deployment surge x pool {} = {} connections exceed {:.0} % of \
                 max_connections {}: lower DB_POOL_SIZE to {} or use a larger instance",
                max,
                surge * 100.0,
                input.db_pool_size,
                connections_at_max,
                input.db_connection_budget * 100.0,
                input.db_max_connections,
                largest_fitting_pool
            ));
        } else {
            notes.push(format!(
                "{max} tasks cannot share max_connections {} even with pools of 2: use a larger \
                 instance or a connection pooler (RDS Proxy)",
                input.db_max_connections
            ));
        }
    }
    if data_bytes.is_none() {
        notes.push(
            "no Redis sizes in the report (measured on the PostgreSQL + Redis backend only): \
             Redis memory left open"
                .into(),
        );
    }
    if for_peak < input.min_tasks {
        notes.push(format!(
            "the peak needs {for_peak} task(s); the floor of {} (one per zone) sets min and desired",
            input.min_tasks
        ));
    }
    Ok(Plan {
        input: input.clone(),
        avg_rps,
        peak_rps,
        planned_rps_per_task: planned,
        tasks,
        database,
        redis,
        alb,
        notes,
    })
}

/// The figures of a report the planner needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFigures {
    pub per_task_rps: f64,
    pub source: String,
    /// Per-scenario per-task capacity, when the report measured them.
    pub scenarios: Vec<(String, f64)>,
    pub redis_bytes_per_session: Option<f64>,
    pub redis_bytes_per_lockout_key: Option<f64>,
    pub db_max_connections: Option<u32>,
    pub db_pool_size: Option<u32>,
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

/// Reads a report written by `run`, `ramp` or `capacity`. The mix's per-task
/// capacity comes from, in order: the capacity table's mix row; a ramp's knee on
/// the mix scaled to one task; a mix run's throughput scaled to one task.
pub fn figures_from_report(report: &Value) -> Result<ReportFigures, String> {
    let redis_bytes_per_session = num(report, &["redis", "bytes_per_session"]);
    let redis_bytes_per_lockout_key = num(report, &["redis", "bytes_per_lockout_key"]);
    let db_max_connections =
        num(report, &["database", "max_connections"]).and_then(|v| u32::try_from(v as u64).ok());
    let db_pool_size =
        num(report, &["database", "pool_size"]).and_then(|v| u32::try_from(v as u64).ok());
    let task_scale = num(report, &["setup", "task_scale"]).unwrap_or(1.0);

    let mut scenarios = Vec::new();
    if let Some(rows) = report
        .get("capacity")
        .and_then(|c| c.get("scenarios"))
        .and_then(Value::as_array)
    {
        for row in rows {
            if let (Some(name), Some(rps)) = (
                row.get("scenario").and_then(Value::as_str),
                num(row, &["per_task_rps"]),
            ) {
                scenarios.push((name.to_owned(), rps));
            }
        }
    }
    let base = |per_task_rps: f64, source: String| ReportFigures {
        per_task_rps,
        source,
        scenarios: scenarios.clone(),
        redis_bytes_per_session,
        redis_bytes_per_lockout_key,
        db_max_connections,
        db_pool_size,
    };
    if let Some((_, rps)) = scenarios.iter().find(|(n, _)| n == "mix") {
        return Ok(base(*rps, "the capacity table's mix row".into()));
    }
    let scenario_of = |v: &Value| {
        v.get("scenario")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(ramp) = report.get("ramp") {
        if scenario_of(ramp) == "mix" {
            if let Some(knee_rps) = num(ramp, &["knee_ok_rps"]) {
                return Ok(base(
                    knee_rps * task_scale,
                    format!("the mix ramp's knee x task scale {task_scale}"),
                ));
            }
        }
    }
    if let Some(runs) = report.get("runs").and_then(Value::as_array) {
        if let Some(run) = runs.iter().find(|r| scenario_of(r) == "mix") {
            if let Some(rps) = num(run, &["summary", "ok_rps"]) {
                return Ok(base(
                    rps * task_scale,
                    format!(
                        "a mix run's throughput x task scale {task_scale} (a run below the knee \
                         understates capacity: prefer a `capacity` report)"
                    ),
                ));
            }
        }
    }
    Err(
        "the report holds no mix figure: write one with `capacity`, `ramp --scenario mix` \
         or `run --scenario mix`"
            .into(),
    )
}

impl Plan {
    pub fn print_human(&self) {
        let i = &self.input;
        println!(
            "users {}  x {} requests/user/day  peak factor {}",
            i.users, i.requests_per_user_per_day, i.peak_factor
        );
        println!(
            "  average {:.2} req/s, peak {:.2} req/s",
            self.avg_rps, self.peak_rps
        );
        println!(
            "per-task capacity (mix) {:.1} req/s, from {}; planned at {:.0} %: {:.1} req/s per task",
            i.per_task_rps,
            i.capacity_source,
            i.target_utilization * 100.0,
            self.planned_rps_per_task
        );
        println!();
        println!(
            "ECS tasks            min {}  desired {}  max {}",
            self.tasks.min, self.tasks.desired, self.tasks.max
        );
        let d = &self.database;
        println!(
            "database             (pool {} + {}) x {} tasks at max x {} % surge = {} connections; budget {} of max_connections {} -> {}",
            d.pool_size,
            CONNECTIONS_BESIDE_POOL,
            self.tasks.max,
            i.deployment_maximum_percent,
            d.connections_at_max,
            d.connection_budget,
            d.max_connections,
            if d.fits { "fits" } else { "DOES NOT FIT" }
        );
        let r = &self.redis;
        match (r.data_bytes, r.provisioned_mib) {
            (Some(bytes), Some(mib)) => println!(
                "redis                {:.0} sessions x {:.0} B + {:.0} lockout keys x {} = {:.1} MiB data; provision {:.1} MiB",
                r.sessions,
                r.bytes_per_session.unwrap_or(0.0),
                r.lockout_keys,
                r.bytes_per_lockout_key
                    .map_or_else(|| "? B".to_owned(), |b| format!("{b:.0} B")),
                bytes / (1024.0 * 1024.0),
                mib
            ),
            _ => println!(
                "redis                {:.0} sessions, {:.0} lockout keys; bytes per key not measured",
                r.sessions, r.lockout_keys
            ),
        }
        println!(
            "ALB scaling          RequestCountPerTarget target {} per minute; scale out when p95 > {:.0} ms",
            self.alb.request_count_per_target, self.alb.p95_threshold_ms
        );
        for n in &self.notes {
            println!("note: {n}");
        }
        println!();
        println!("terraform (deploy/terraform/modules/ecs variables):");
        println!("  min_capacity               = {}", self.tasks.min);
        println!("  max_capacity               = {}", self.tasks.max);
        println!(
            "  db_pool_size               = {}",
            if d.fits {
                d.pool_size
            } else {
                d.largest_fitting_pool.max(2)
            }
        );
        println!("  db_max_connections         = {}", d.max_connections);
        println!("  request_target_utilization = {}", i.target_utilization);
        println!(
            "  latency_p95_threshold_ms   = {}",
            self.alb.p95_threshold_ms
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn input(users: u64, per_task: f64) -> PlanInput {
        PlanInput::with_defaults(users, per_task, "test".into())
    }

    #[test]
    fn the_seed_example_sized_by_a_measured_capacity() {
        // 100,000 users x 10 req/day x 3 = 34.7 req/s at peak.
        let p = plan(&input(100_000, 50.0)).unwrap();
        assert!((p.peak_rps - 34.722).abs() < 0.01, "{}", p.peak_rps);
        // 35 req/s at peak over 35 req/s per task (50 x 0.7): one task; the floor is 3.
        assert_eq!(
            p.tasks,
            Tasks {
                min: 3,
                desired: 3,
                max: 5
            }
        );
        assert_eq!(p.alb.request_count_per_target, 2100);
        assert!(p.database.fits);
        assert_eq!(p.database.connections_at_max, 5 * 2 * (8 + 1));
    }

    #[test]
    fn a_large_fleet() {
        let mut i = input(20_000_000, 100.0);
        i.requests_per_user_per_day = 50.0;
        let p = plan(&i).unwrap();
        // avg 11574 req/s, peak 34722 req/s, 70 req/s per task.
        assert_eq!(p.tasks.desired, 497);
        assert_eq!(p.tasks.min, 166);
        assert_eq!(p.tasks.max, 746);
        assert!(!p.database.fits);
        assert_eq!(p.database.largest_fitting_pool, 0);
        assert!(p.notes.iter().any(|n| n.contains("RDS Proxy")));
    }

    #[test]
    fn pool_advice_when_connections_overflow() {
        let mut i = input(1_000_000, 100.0);
        i.db_pool_size = 16;
        let p = plan(&i).unwrap();
        // peak 347 req/s / 70 = 5 tasks desired, max 8: 8 x 2 x (16 + 1) = 272 <= 360 fits.
        assert_eq!(p.tasks.max, 8);
        assert!(p.database.fits);
        i.db_max_connections = 100;
        let p = plan(&i).unwrap();
        assert!(!p.database.fits);
        assert_eq!(p.database.largest_fitting_pool, 4);
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("lower DB_POOL_SIZE to 4")));
    }

    #[test]
    fn redis_memory_from_measured_sizes() {
        let mut i = input(1_000_000, 100.0);
        i.redis_bytes_per_session = Some(200.0);
        i.redis_bytes_per_lockout_key = Some(150.0);
        let p = plan(&i).unwrap();
        // 100,000 sessions x 200 B + 10,000 lockout keys x 150 B.
        assert_eq!(p.redis.data_bytes, Some(21_500_000.0));
        let mib = p.redis.provisioned_mib.unwrap();
        assert!((mib - 30.756).abs() < 0.01, "{mib}");
        let p = plan(&input(1_000_000, 100.0)).unwrap();
        assert_eq!(p.redis.data_bytes, None);
        assert!(p.notes.iter().any(|n| n.contains("Redis")));
    }

    #[test]
    fn min_never_exceeds_desired_or_max() {
        // A deterministic sweep over extreme and ordinary inputs.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let users = [0u64, 1, 10, 1_000, 100_000, 10_000_000, 1_000_000_000];
        let caps = [0.01, 0.5, 12.0, 345.0, 4375.0, 1e9];
        let mut checked = 0;
        for &u in &users {
            for &c in &caps {
                for _ in 0..40 {
                    let mut i = input(u, c);
                    i.requests_per_user_per_day = 0.1 + (next() % 10_000) as f64 / 10.0;
                    i.peak_factor = 1.0 + (next() % 100) as f64 / 10.0;
                    i.min_tasks = 1 + (next() % 50) as u32;
                    i.target_utilization = 0.05 + (next() % 95) as f64 / 100.0;
                    i.max_headroom = 1.0 + (next() % 30) as f64 / 10.0;
                    let p = plan(&i).unwrap();
                    assert!(
                        p.tasks.min <= p.tasks.desired && p.tasks.desired <= p.tasks.max,
                        "{:?} for {i:?}",
                        p.tasks
                    );
                    assert!(p.tasks.min >= i.min_tasks);
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, users.len() * caps.len() * 40);
    }

    #[test]
    fn nonsense_inputs_are_refused() {
        let mut i = input(10, 10.0);
        i.peak_factor = 0.5;
        assert!(plan(&i).is_err());
        let mut i = input(10, 0.0);
        assert!(plan(&i).is_err());
        i = input(10, 10.0);
        i.target_utilization = 1.5;
        assert!(plan(&i).is_err());
        i = input(10, f64::NAN);
        assert!(plan(&i).is_err());
        i = input(10, 10.0);
        i.min_tasks = 0;
        assert!(plan(&i).is_err());
    }

    #[test]
    fn figures_from_the_report_kinds() {
        let capacity = serde_json::json!({
            "setup": {"task_scale": 1.0},
            "capacity": {"scenarios": [
                {"scenario": "login", "per_task_rps": 11.0},
                {"scenario": "mix", "per_task_rps": 120.0}
            ]},
            "redis": {"bytes_per_session": 180.0, "bytes_per_lockout_key": 120.0},
            "database": {"max_connections": 100, "pool_size": 8}
        });
        let f = figures_from_report(&capacity).unwrap();
        assert_eq!(f.per_task_rps, 120.0);
        assert_eq!(f.scenarios.len(), 2);
        assert_eq!(f.redis_bytes_per_session, Some(180.0));
        assert_eq!(f.db_max_connections, Some(100));

        let ramp = serde_json::json!({
            "setup": {"task_scale": 0.25},
            "ramp": {"scenario": "mix", "knee_ok_rps": 800.0}
        });
        assert_eq!(figures_from_report(&ramp).unwrap().per_task_rps, 200.0);

        let run = serde_json::json!({
            "setup": {"task_scale": 0.5},
            "runs": [{"scenario": "me", "summary": {"ok_rps": 5.0}},
                     {"scenario": "mix", "summary": {"ok_rps": 300.0}}]
        });
        let f = figures_from_report(&run).unwrap();
        assert_eq!(f.per_task_rps, 150.0);
        assert!(f.source.contains("prefer"));

        assert!(figures_from_report(&serde_json::json!({"runs": []})).is_err());
    }
}
