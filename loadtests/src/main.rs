//! suma-auth-loadtests: the load generator, benchmark harness and capacity planner
//! of suma-auth.
//!
//! Every request goes to the loopback interface unless another target is named
//! twice (`--base-url` and `--confirm-target`), and every loop is bounded by a
//! duration and a request count. See loadtests/README.md.

mod api;
mod argon2_limit;
mod bench;
mod capacity;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod e2e_tests;
mod harness;
mod html;
mod knee;
mod launch;
mod limits;
mod mail;
mod mailbox;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod mock;
mod monitor;
mod planner;
mod progress;
mod report;
mod resp;
mod run;
mod schedule;
mod setup;
mod stats;
mod target;

use std::error::Error;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::argon2_limit::Argon2Opts;
use crate::harness::{Env, EnvOpts, MailSource, RunSpec};
use crate::knee::KneeRule;
use crate::launch::{Backend, CpuRequest};
use crate::run::{Mix, Model, Scenario};
use crate::target::BaseUrl;

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Longest measurement a single run may ask for.
const MAX_DURATION_SECS: u64 = 3600;

#[derive(Debug, Parser)]
#[command(
    name = "suma-auth-loadtests",
    version,
    about = "Load generator, benchmark and capacity planner for suma-auth (loopback unless a target is confirmed; bounded by time and request count)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine's raw Argon2id limit (hashes/s on all cores).
    Argon2(Argon2Args),
    /// Measure this machine's RS256 signing limit (aws-lc-rs, signatures/s).
    Rs256(Rs256Args),
    /// Register N users and verify them through the mail files the server writes.
    Setup(SetupArgs),
    /// One scenario, closed (fixed concurrency) or open (constant arrival rate).
    Run(RunArgs),
    /// Raise the load step by step until the knee (throughput stops rising or p95 jumps).
    Ramp(RampArgs),
    /// Every scenario against the machine's limits (Argon2id, RS256, /health).
    Bench(BenchArgs),
    /// Per-task capacity: each scenario and the mix on a task of half a core.
    Capacity(CapacityArgs),
    /// Fleet size from a report: ECS tasks, database connections, Redis memory, ALB thresholds.
    Plan(PlanArgs),
    /// Wait until GET /ready answers 200 (prints the time it took).
    WaitReady(WaitReadyArgs),
    /// Print a free TCP port on 127.0.0.1 (for scripts).
    FreePort,
}

#[derive(Debug, Args, Clone)]
struct Argon2Args {
    /// Memory cost in KiB (server default: OWASP's 19456).
    #[arg(long, default_value_t = 19456)]
    m_cost: u32,
    /// Iterations.
    #[arg(long, default_value_t = 2)]
    t_cost: u32,
    /// Lanes.
    #[arg(long, default_value_t = 1)]
    p_cost: u32,
    /// Seconds all threads hash in parallel.
    #[arg(long, default_value_t = 3.0)]
    argon2_duration: f64,
    /// Hashing threads (default: one per core, from available_parallelism).
    #[arg(long)]
    argon2_threads: Option<usize>,
    /// Upper bound on the number of parallel hashes.
    #[arg(long, default_value_t = 100_000)]
    max_hashes: u64,
    /// Reuse one memory area per thread instead of allocating it for every hash (the
    /// server allocates per hash; this shows what allocation and page faults cost).
    #[arg(long)]
    reuse_memory: bool,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

impl Argon2Args {
    fn opts(&self) -> BoxResult<Argon2Opts> {
        Ok(Argon2Opts {
            m_cost_kib: self.m_cost,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
            duration: positive_secs(self.argon2_duration, "--argon2-duration")?,
            threads: self.argon2_threads,
            max_hashes: self.max_hashes,
            reuse_memory: self.reuse_memory,
        })
    }
}

#[derive(Debug, Args, Clone)]
struct Rs256Args {
    /// Seconds all threads sign in parallel.
    #[arg(long, default_value_t = 3.0)]
    rs256_duration: f64,
    /// Signing threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// Server base URL; must be on loopback, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base_url: String,
    /// Number of users to register.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    users: u64,
    /// Where the server writes mails (.txt and .eml files): its DATA_DIR/mail/
    #[arg(long)]
    mail_dir: PathBuf,
    /// Output file with the users (email, password, verified) as JSON.
    #[arg(long, default_value = "users.json")]
    out: PathBuf,
    /// Concurrent registrations (each costs the server one Argon2id hash).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds to wait for all verification mails.
    #[arg(long, default_value_t = 60.0)]
    mail_timeout: f64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// SQLite and mail files in a fresh DATA_DIR (the single-node default).
    Embedded,
    /// PostgreSQL (a fresh database) + Redis (an empty logical database).
    Postgres,
}

/// Where the load goes: servers the harness starts (the default), or existing ones.
#[derive(Debug, Args, Clone)]
struct EnvArgs {
    /// Measure a running server instead of starting one (repeat for round-robin over
    /// several). Loopback only, unless confirmed with --confirm-target.
    #[arg(long)]
    base_url: Vec<String>,
    /// HOST:PORT of a --base-url off this machine's loopback interface, written
    /// again to confirm that load is meant to go there.
    #[arg(long)]
    confirm_target: Option<String>,
    /// Users file of existing accounts (from `setup`); skips registration.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Mail files of a --base-url server (its DATA_DIR/mail), for register and login_otp.
    #[arg(long)]
    mail_dir: Option<PathBuf>,
    /// Backend of the servers the harness starts.
    #[arg(long, value_enum, default_value_t = BackendArg::Embedded)]
    backend: BackendArg,
    /// Server instances to start (PostgreSQL + Redis only for more than one); the
    /// harness sends requests to them in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    instances: u64,
    /// CPU of each started instance, in cores (0.5 = the seed's task); default: the
    /// whole machine. A CPU cgroup quota where one can be made, else one pinned core
    /// with the figures scaled.
    #[arg(long)]
    task_cores: Option<f64>,
    /// The server binary [default: suma-auth next to this binary].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where mail is read: files for embedded, an SMTP sink for PostgreSQL + Redis.
    #[arg(long, value_enum, default_value_t = MailSource::Auto)]
    mail: MailSource,
    /// Keep the data directory (server logs, mail) afterwards.
    #[arg(long)]
    keep: bool,
    /// DB_POOL_SIZE of each instance (PostgreSQL), as the deployment sets it.
    #[arg(long, default_value_t = 8)]
    db_pool_size: u32,
    /// Do not point the servers at the harness's DogStatsD listener.
    #[arg(long)]
    no_statsd: bool,
    #[arg(long, default_value = "127.0.0.1")]
    pg_host: String,
    #[arg(long, default_value_t = 5432)]
    pg_port: u16,
    #[arg(long, default_value = "postgres")]
    pg_user: String,
    #[arg(long, default_value = "127.0.0.1")]
    redis_host: String,
    #[arg(long, default_value_t = 6379)]
    redis_port: u16,
    /// Accounts to register for login, me and refresh [default: enough for the workers].
    #[arg(long)]
    setup_users: Option<usize>,
    /// Client OS threads, each with its own actix System [default: one per core].
    #[arg(long)]
    client_threads: Option<usize>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Directory for the JSON and HTML reports.
    #[arg(long, default_value = "loadtest-reports")]
    out_dir: PathBuf,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// Options shared by the measured commands.
#[derive(Debug, Args, Clone)]
struct LoadArgs {
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before the measurement window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Upper bound on requests per run (warm-up included), whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Mix weights: me=70,refresh=20,login=8,register=2 (also login_otp, health).
    #[arg(long, default_value = "me=70,refresh=20,login=8,register=2")]
    mix: String,
    /// Print one JSON line of the figures on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Closed,
    Open,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// closed: --concurrency workers; open: --rate requests/s over --concurrency connections.
    #[arg(long, value_enum, default_value_t = ModelArg::Closed)]
    model: ModelArg,
    /// Arrival rate of the open model, requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Workers (closed) or connections (open).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    env: EnvArgs,
}

#[derive(Debug, Args)]
struct RampArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value_t = ModelArg::Closed)]
    model: ModelArg,
    /// Steps: workers (closed) or requests/s (open), comma-separated.
    #[arg(long, default_value = "1,2,4,8,16,32,64")]
    loads: String,
    /// Connections of the open model.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// After the knee, an open-model run at this share of its throughput (0 = none).
    #[arg(long, default_value_t = 0.8)]
    confirm: f64,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    env: EnvArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    argon2: Argon2BenchArgs,
    /// Seconds of RS256 signing on all cores.
    #[arg(long, default_value_t = 2.0)]
    rs256_duration: f64,
    /// Quiet seconds between runs.
    #[arg(long, default_value_t = 1.0)]
    pause: f64,
    #[command(flatten)]
    env: EnvArgs,
}

#[derive(Debug, Args)]
struct CapacityArgs {
    /// Scenarios to measure, comma-separated.
    #[arg(long, default_value = "register,login,login_otp,refresh,me,mix,health")]
    scenarios: String,
    /// Workers of the ramp's steps.
    #[arg(long, default_value = "1,2,4,8,16,32,64")]
    loads: String,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 4.0)]
    step_duration: f64,
    /// Share of the knee for the open-model confirmation.
    #[arg(long, default_value_t = 0.8)]
    confirm: f64,
    /// Connections of the open-model confirmation.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Quiet seconds between steps.
    #[arg(long, default_value_t = 0.5)]
    pause: f64,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    argon2: Argon2BenchArgs,
    #[arg(long, default_value_t = 2.0)]
    rs256_duration: f64,
    #[command(flatten)]
    env: EnvArgs,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Users (accounts active on a day).
    #[arg(long)]
    users: u64,
    #[arg(long, default_value_t = 10.0)]
    requests_per_user_per_day: f64,
    /// Peak traffic over the daily average.
    #[arg(long, default_value_t = 3.0)]
    peak_factor: f64,
    /// A report written by `capacity` (best), `ramp --scenario mix` or `run --scenario mix`.
    #[arg(long)]
    report: PathBuf,
    /// Share of a task's capacity to plan and scale for.
    #[arg(long, default_value_t = 0.7)]
    target_utilization: f64,
    /// Fewest tasks (one per availability zone).
    #[arg(long, default_value_t = 3)]
    min_tasks: u32,
    /// Most tasks over the peak's need.
    #[arg(long, default_value_t = 1.5)]
    max_headroom: f64,
    /// DB_POOL_SIZE [default: the report's, else 8].
    #[arg(long)]
    db_pool_size: Option<u32>,
    /// max_connections of the production database [default: 400, a db.t4g.medium].
    #[arg(long, default_value_t = 400)]
    db_max_connections: u32,
    #[arg(long, default_value_t = 200)]
    deployment_maximum_percent: u32,
    /// Share of users with a session cached in Redis at the peak.
    #[arg(long, default_value_t = 0.1)]
    concurrent_session_share: f64,
    #[arg(long, default_value_t = 1.0)]
    sessions_per_user: f64,
    /// Share of users with a lockout window open.
    #[arg(long, default_value_t = 0.01)]
    lockout_share: f64,
    /// p95 above which tasks are added, milliseconds.
    #[arg(long, default_value_t = 200.0)]
    latency_p95_threshold_ms: f64,
    #[arg(long)]
    json: bool,
}

/// The Argon2id options as `bench` takes them (its own --json is the bench's).
#[derive(Debug, Args, Clone)]
struct Argon2BenchArgs {
    /// Argon2id memory cost in KiB.
    #[arg(long, default_value_t = 19456)]
    m_cost: u32,
    /// Argon2id iterations.
    #[arg(long, default_value_t = 2)]
    t_cost: u32,
    /// Argon2id lanes.
    #[arg(long, default_value_t = 1)]
    p_cost: u32,
    /// Seconds the Argon2id measurement hashes on all threads.
    #[arg(long, default_value_t = 3.0)]
    argon2_duration: f64,
    /// Argon2id hashing threads [default: one per core].
    #[arg(long)]
    argon2_threads: Option<usize>,
    /// Allocate the Argon2id memory for every hash instead of reusing one area per
    /// thread (as the server does).
    #[arg(long)]
    allocate_per_hash: bool,
}

impl Argon2BenchArgs {
    fn opts(&self) -> BoxResult<Argon2Opts> {
        Ok(Argon2Opts {
            m_cost_kib: self.m_cost,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
            duration: positive_secs(self.argon2_duration, "--argon2-duration")?,
            threads: self.argon2_threads,
            max_hashes: 100_000,
            // The server hashes into a scratch area kept per hashing worker: the
            // limit is the cost of the hash itself.
            reuse_memory: !self.allocate_per_hash,
        })
    }
}

#[derive(Debug, Args)]
struct WaitReadyArgs {
    #[arg(long)]
    base_url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Give up as soon as this process (the server) is gone (checked through /proc).
    #[arg(long)]
    pid: Option<u32>,
}

fn secs(v: f64, name: &str) -> BoxResult<Duration> {
    if !v.is_finite() || v < 0.0 || v > MAX_DURATION_SECS as f64 {
        return Err(format!("{name} must be between 0 and {MAX_DURATION_SECS} seconds").into());
    }
    Ok(Duration::from_secs_f64(v))
}

fn positive_secs(v: f64, name: &str) -> BoxResult<Duration> {
    let d = secs(v, name)?;
    if d.is_zero() {
        return Err(format!("{name} must be more than 0 seconds").into());
    }
    Ok(d)
}

/// The chosen client thread count, or one per core.
fn client_threads(chosen: Option<usize>) -> usize {
    chosen
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Comma-separated positive numbers, in rising order.
fn parse_loads(s: &str, name: &str) -> BoxResult<Vec<f64>> {
    let mut loads = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let v: f64 = part
            .trim()
            .parse()
            .map_err(|_| format!("{name}: {part:?} is not a number"))?;
        if !v.is_finite() || v <= 0.0 || v > 1_000_000.0 {
            return Err(format!("{name}: {v} is out of range").into());
        }
        if loads.last().is_some_and(|&l: &f64| v <= l) {
            return Err(format!("{name} must rise step by step").into());
        }
        loads.push(v);
    }
    if loads.is_empty() {
        return Err(format!("{name} is empty").into());
    }
    Ok(loads)
}

fn loopback_host(host: &str, name: &str) -> BoxResult<String> {
    let probe = format!("http://{host}:1");
    BaseUrl::parse(&probe).map_err(|_| {
        format!("{name} must be on the loopback interface: the harness creates and drops databases there")
    })?;
    Ok(host.to_owned())
}

fn print_json<T: serde::Serialize>(value: &T) -> BoxResult<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// What a command needs of its session.
struct Needs {
    scenarios: Vec<Scenario>,
    mix: Mix,
    /// Most workers any run uses.
    max_workers: usize,
}

fn env_opts(e: &EnvArgs, needs: &Needs, default_cores: Option<f64>) -> BoxResult<EnvOpts> {
    let mut targets = Vec::new();
    for raw in &e.base_url {
        targets.push(BaseUrl::parse_confirmed(raw, e.confirm_target.as_deref())?);
    }
    let backend = match e.backend {
        BackendArg::Embedded => Backend::Embedded,
        BackendArg::Postgres => Backend::Postgres {
            pg_host: loopback_host(&e.pg_host, "--pg-host")?,
            pg_port: e.pg_port,
            pg_user: e.pg_user.clone(),
            redis_host: loopback_host(&e.redis_host, "--redis-host")?,
            redis_port: e.redis_port,
        },
    };
    if backend == Backend::Embedded && e.instances > 1 && targets.is_empty() {
        return Err("several instances need a shared database: use --backend postgres".into());
    }
    let cpu = match e.task_cores.or(default_cores) {
        None => CpuRequest::Unlimited,
        Some(c) if c.is_finite() && c > 0.0 && c <= 64.0 => CpuRequest::Cores(c),
        Some(c) => return Err(format!("--task-cores {c} is out of range").into()),
    };
    let mix = &needs.mix;
    let wants_users = needs.scenarios.iter().any(|s| s.needs_users(mix));
    let otp = needs.scenarios.iter().any(|s| s.needs_otp_users(mix));
    let users = if wants_users {
        e.setup_users.unwrap_or(needs.max_workers.max(16)).max(1)
    } else {
        0
    };
    Ok(EnvOpts {
        targets,
        backend,
        instances: usize::try_from(e.instances)?,
        cpu,
        server_bin: e
            .server_bin
            .clone()
            .unwrap_or_else(launch::default_server_bin),
        mail: e.mail,
        external_mail_dir: e.mail_dir.clone(),
        keep: e.keep,
        db_pool_size: e.db_pool_size,
        statsd: !e.no_statsd,
        users,
        otp_users: if otp { needs.max_workers } else { 0 },
        users_file: e.users.clone(),
        client_threads: client_threads(e.client_threads),
        timeout: positive_secs(e.timeout, "--timeout")?,
        extra_env: Vec::new(),
        progress: !e.quiet,
    })
}

fn cmd_argon2(args: &Argon2Args) -> BoxResult<()> {
    let report = argon2_limit::measure(&args.opts()?)?;
    if args.json {
        print_json(&report)
    } else {
        report.print_human();
        Ok(())
    }
}

fn cmd_rs256(args: &Rs256Args) -> BoxResult<()> {
    let report = limits::measure_rs256(
        positive_secs(args.rs256_duration, "--rs256-duration")?,
        args.threads,
        100_000_000,
    )?;
    if args.json {
        print_json(&report)
    } else {
        report.print_human();
        Ok(())
    }
}

fn cmd_setup(args: &SetupArgs) -> BoxResult<()> {
    let opts = setup::SetupOpts {
        base: BaseUrl::parse(&args.base_url)?,
        users: usize::try_from(args.users)?,
        mail_dir: args.mail_dir.clone(),
        out: args.out.clone(),
        concurrency: args.concurrency,
        mail_timeout: positive_secs(args.mail_timeout, "--mail-timeout")?,
        timeout: positive_secs(args.timeout, "--timeout")?,
    };
    setup::setup(&opts)?;
    Ok(())
}

fn model_of(model: ModelArg, rate: Option<f64>) -> BoxResult<Model> {
    match (model, rate) {
        (ModelArg::Closed, None) => Ok(Model::Closed),
        (ModelArg::Closed, Some(_)) => Err("--rate is for --model open".into()),
        (ModelArg::Open, Some(rate)) if rate.is_finite() && rate > 0.0 => Ok(Model::Open { rate }),
        (ModelArg::Open, _) => Err("--model open needs --rate (requests per second)".into()),
    }
}

fn cmd_run(args: &RunArgs) -> BoxResult<()> {
    let l = &args.load;
    let mix: Mix = l.mix.parse()?;
    let concurrency = usize::try_from(args.concurrency)?;
    let model = model_of(args.model, args.rate)?;
    let needs = Needs {
        scenarios: vec![args.scenario],
        mix: mix.clone(),
        max_workers: concurrency,
    };
    let opts = env_opts(&args.env, &needs, None)?;
    let label = match model {
        Model::Closed => format!("{} c={concurrency}", args.scenario.name()),
        Model::Open { rate } => format!("{} @{rate}/s", args.scenario.name()),
    };
    let mut env = Env::start(&opts, "run", format!("suma-auth {label}"))?;
    let spec = RunSpec {
        scenario: args.scenario,
        model,
        concurrency,
        duration: positive_secs(l.duration, "--duration")?,
        warmup: secs(l.warmup, "--warmup")?,
        max_requests: l.max_requests,
        mix,
    };
    let idx = env.run(&label, &spec, &mut Vec::new())?;
    env.quiet();
    let run = env.report.runs[idx].clone();
    let stem = report::stem("run", args.scenario.name(), env.report.started_unix);
    env.finish(&args.env.out_dir, &stem)?;
    if l.json {
        print_json(&run)
    } else {
        run.summary.print_human();
        for o in &run.details.ops {
            println!(
                "  {:<13} {:>8} requests  {:>9.1} ok/s  p50 {:.2}  p95 {:.2}  p99 {:.2} ms  errors {}",
                o.op.name(),
                o.requests,
                o.ok_rps,
                o.latency.p50_ms,
                o.latency.p95_ms,
                o.latency.p99_ms,
                o.errors
            );
        }
        if let Some(lag) = &run.details.send_lag {
            println!(
                "  open model: sent p50 {:.2} ms, p99 {:.2} ms after due",
                lag.p50_ms, lag.p99_ms
            );
        }
        Ok(())
    }
}

fn cmd_ramp(args: &RampArgs) -> BoxResult<()> {
    let l = &args.load;
    let mix: Mix = l.mix.parse()?;
    let loads = parse_loads(&args.loads, "--loads")?;
    let open = args.model == ModelArg::Open;
    let max_workers = if open {
        args.connections
    } else {
        loads.last().copied().unwrap_or(1.0).round() as usize
    };
    let needs = Needs {
        scenarios: vec![args.scenario],
        mix: mix.clone(),
        max_workers: max_workers.max(args.connections.min(64)),
    };
    let opts = env_opts(&args.env, &needs, None)?;
    let mut env = Env::start(
        &opts,
        "ramp",
        format!("suma-auth ramp: {}", args.scenario.name()),
    )?;
    let base = RunSpec {
        scenario: args.scenario,
        model: Model::Closed,
        concurrency: 1,
        duration: positive_secs(l.duration, "--duration")?,
        warmup: secs(l.warmup, "--warmup")?,
        max_requests: l.max_requests,
        mix,
    };
    let confirm = (args.confirm > 0.0).then_some(args.confirm.min(1.0));
    let ramp = env.ramp(
        &base,
        &loads,
        open,
        args.connections,
        &KneeRule::default(),
        confirm,
        Duration::from_millis(500),
    )?;
    env.quiet();
    env.report.ramp = Some(ramp.clone());
    let stem = report::stem("ramp", args.scenario.name(), env.report.started_unix);
    env.finish(&args.env.out_dir, &stem)?;
    if l.json {
        return print_json(&ramp);
    }
    match (ramp.knee_load, ramp.knee_ok_rps, ramp.knee_p95_ms) {
        (Some(load), Some(rps), Some(p95)) => println!(
            "knee of {} at load {load}: {rps:.1} ok/s, p95 {p95:.2} ms (the next step: {})",
            ramp.scenario,
            ramp.knee_reason.as_deref().unwrap_or("")
        ),
        _ => println!(
            "no knee within the ramp of {}: raise --loads",
            ramp.scenario
        ),
    }
    Ok(())
}

fn cmd_bench(args: &BenchArgs) -> BoxResult<()> {
    let l = &args.load;
    let mix: Mix = l.mix.parse()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let needs = Needs {
        scenarios: bench::plan(cores).iter().map(|p| p.scenario).collect(),
        mix: mix.clone(),
        max_workers: bench::plan(cores)
            .iter()
            .map(|p| p.concurrency)
            .max()
            .unwrap_or(16)
            .max(32),
    };
    let mut opts = env_opts(&args.env, &needs, None)?;
    // login_otp runs at concurrency 4 only.
    if opts.otp_users > 0 {
        opts.otp_users = 4;
    }
    let mut env = Env::start(&opts, "bench", "suma-auth bench".into())?;
    let bench_opts = bench::BenchOpts {
        duration: positive_secs(l.duration, "--duration")?,
        warmup: secs(l.warmup, "--warmup")?,
        max_requests: l.max_requests,
        argon2: args.argon2.opts()?,
        rs256_duration: positive_secs(args.rs256_duration, "--rs256-duration")?,
        pause: secs(args.pause, "--pause")?,
        mix,
    };
    let report = bench::bench(&mut env, &bench_opts, !l.json)?;
    env.quiet();
    let stem = report::stem(
        "bench",
        &env.report.setup.backend.replace('+', "-"),
        env.report.started_unix,
    );
    let full = env.finish(&args.env.out_dir, &stem)?;
    if l.json {
        print_json(&report)
    } else {
        report.print_human();
        print_server_summary(&full);
        Ok(())
    }
}

/// Start-up time, memory and machine load of a session, from its report.
fn print_server_summary(full: &report::FullReport) {
    println!();
    for (i, ms) in full.setup.ready_ms.iter().enumerate() {
        println!("server #{i} ready after {ms:.0} ms");
    }
    if let Some(server) = &full.server {
        for p in &server.processes {
            let first = p.points.first().map_or(0, |x| x.rss_bytes);
            let peak = p.points.iter().map(|x| x.rss_bytes).max().unwrap_or(0);
            println!(
                "{} (pid {}): RSS {:.1} MB at first sample, {:.1} MB at peak",
                p.name,
                p.pid,
                first as f64 / 1e6,
                peak as f64 / 1e6
            );
        }
    }
    if let Some(r) = &full.redis {
        println!(
            "Redis: {:.0} bytes per session key, {:.0} per lockout key (MEMORY USAGE)",
            r.bytes_per_session.unwrap_or(0.0),
            r.bytes_per_lockout_key.unwrap_or(0.0)
        );
    }
    println!(
        "load average: {:.2} before, {:.2} after",
        full.machine.load_before.unwrap_or(0.0),
        full.machine.load_after.unwrap_or(0.0)
    );
}

fn cmd_capacity(args: &CapacityArgs) -> BoxResult<()> {
    let l = &args.load;
    let mix: Mix = l.mix.parse()?;
    let mix_for_table = mix.clone();
    let mut scenarios = Vec::new();
    for name in args.scenarios.split(',').filter(|s| !s.trim().is_empty()) {
        scenarios.push(
            Scenario::from_str(&name.trim().replace('_', "-"), true)
                .map_err(|_| format!("unknown scenario {name:?}"))?,
        );
    }
    let loads = parse_loads(&args.loads, "--loads")?;
    let max_workers = loads.last().copied().unwrap_or(1.0).round() as usize;
    let needs = Needs {
        scenarios: scenarios.clone(),
        mix: mix.clone(),
        max_workers: max_workers.max(args.connections),
    };
    let mut opts = env_opts(&args.env, &needs, Some(0.5))?;
    // login_otp ramps over at most 16 workers (one account with email codes each).
    if opts.otp_users > 0 {
        opts.otp_users = opts.otp_users.min(16);
    }
    let task_cores = match opts.cpu {
        CpuRequest::Cores(c) => c,
        CpuRequest::Unlimited => std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
    };
    let mut env = Env::start(
        &opts,
        "capacity",
        format!("suma-auth per-task capacity ({task_cores} core)"),
    )?;
    let section = capacity::capacity(
        &mut env,
        &capacity::CapacityOpts {
            scenarios,
            loads,
            step_duration: positive_secs(args.step_duration, "--step-duration")?,
            warmup: secs(l.warmup, "--warmup")?,
            max_requests: l.max_requests,
            confirm_share: args.confirm.clamp(0.05, 1.0),
            connections: args.connections,
            mix,
            argon2: args.argon2.opts()?,
            rs256_duration: positive_secs(args.rs256_duration, "--rs256-duration")?,
            task_cores,
            pause: secs(args.pause, "--pause")?,
        },
    )?;
    env.quiet();
    let stem = report::stem(
        "capacity",
        &env.report.setup.backend.replace('+', "-"),
        env.report.started_unix,
    );
    let report = env.finish(&args.env.out_dir, &stem)?;
    if l.json {
        return print_json(&report.capacity);
    }
    let m = &report.machine;
    println!(
        "per-task capacity: {} core via {} (task scale {}), backend {}",
        section.task_cores, section.method, section.task_scale, report.setup.backend
    );
    println!(
        "machine: {} cores, {}; load average {:.2} before, {:.2} after",
        m.nproc,
        m.cpu_model,
        m.load_before.unwrap_or(0.0),
        m.load_after.unwrap_or(0.0)
    );
    if let Some(limits) = &report.limits {
        if let Some(a) = &limits.argon2 {
            println!(
                "Argon2id: {:.1} ms of CPU per hash alone ({:.1} ms wall), {:.1} ms with all cores hashing; machine limit {:.1}/s",
                a.single_cpu_hash_ms, a.single_hash_ms, a.parallel_cpu_hash_ms, a.limit_hps
            );
        }
        if let Some(r) = &limits.rs256 {
            println!(
                "RS256: {:.0} µs of CPU per signature alone ({:.0} µs wall; {:.0}/s per core); machine limit {:.0}/s",
                r.single_cpu_sign_us, r.single_sign_us, r.per_core_sps, r.limit_sps
            );
        }
    }
    println!();
    print!(
        "{}",
        capacity::markdown(&section, report.limits.as_ref(), &mix_for_table)
    );
    Ok(())
}

fn cmd_plan(args: &PlanArgs) -> BoxResult<()> {
    let text = std::fs::read_to_string(&args.report)
        .map_err(|e| format!("cannot read {}: {e}", args.report.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a report: {e}", args.report.display()))?;
    let figures = planner::figures_from_report(&value)?;
    let mut input = planner::PlanInput::with_defaults(
        args.users,
        figures.per_task_rps,
        format!("{} in {}", figures.source, args.report.display()),
    );
    input.requests_per_user_per_day = args.requests_per_user_per_day;
    input.peak_factor = args.peak_factor;
    input.target_utilization = args.target_utilization;
    input.min_tasks = args.min_tasks;
    input.max_headroom = args.max_headroom;
    input.db_pool_size = args.db_pool_size.or(figures.db_pool_size).unwrap_or(8);
    input.db_max_connections = args.db_max_connections;
    input.deployment_maximum_percent = args.deployment_maximum_percent;
    input.redis_bytes_per_session = figures.redis_bytes_per_session;
    input.redis_bytes_per_lockout_key = figures.redis_bytes_per_lockout_key;
    input.concurrent_session_share = args.concurrent_session_share;
    input.sessions_per_user = args.sessions_per_user;
    input.lockout_share = args.lockout_share;
    input.latency_p95_threshold_ms = args.latency_p95_threshold_ms;
    let plan = planner::plan(&input)?;
    if args.json {
        return print_json(&plan);
    }
    plan.print_human();
    let routes: Vec<&(String, f64)> = figures
        .scenarios
        .iter()
        .filter(|(name, _)| ["login", "register", "refresh", "me"].contains(&name.as_str()))
        .collect();
    if !routes.is_empty() {
        println!("  per_task_capacity_rps      = {{");
        for (name, rps) in routes {
            println!("    {name:<8} = {rps}");
        }
        println!("  }}");
    }
    Ok(())
}

fn cmd_wait_ready(args: &WaitReadyArgs) -> BoxResult<()> {
    let base = BaseUrl::parse(&args.base_url)?;
    let timeout = positive_secs(args.timeout, "--timeout")?;
    let url = base.join(api::READY);
    let pid = args.pid;
    let started = Instant::now();
    let outcome: Result<Duration, String> = actix_rt::System::new().block_on(async move {
        let client = api::client(Duration::from_secs(1));
        let mut last = String::from("no answer");
        while started.elapsed() < timeout {
            if let Some(pid) = pid {
                if process_gone(pid) {
                    return Err(format!("process {pid} exited before {url} was ready"));
                }
            }
            match client.get(url.as_str()).send().await {
                Ok(mut resp) => {
                    let _ = resp.body().limit(api::BODY_LIMIT).await;
                    if resp.status().as_u16() == 200 {
                        return Ok(started.elapsed());
                    }
                    last = format!("status {}", resp.status());
                }
                Err(e) => last = e.to_string(),
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!(
            "{url} not ready after {:.0} s ({last})",
            timeout.as_secs_f64()
        ))
    });
    let took = outcome?;
    println!("ready after {:.0} ms", took.as_secs_f64() * 1000.0);
    Ok(())
}

/// Whether a process has exited (no /proc entry, or a zombie). Where there is no
/// /proc, nothing can be told and the answer is no.
fn process_gone(pid: u32) -> bool {
    let proc_dir = std::path::Path::new("/proc");
    if !proc_dir.is_dir() {
        return false;
    }
    match std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
        Err(_) => true,
    }
}

fn cmd_free_port() -> BoxResult<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    launch::install_signal_cleanup();
    let result = match &cli.command {
        Command::Argon2(a) => cmd_argon2(a),
        Command::Rs256(a) => cmd_rs256(a),
        Command::Setup(a) => cmd_setup(a),
        Command::Run(a) => cmd_run(a),
        Command::Ramp(a) => cmd_ramp(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Capacity(a) => cmd_capacity(a),
        Command::Plan(a) => cmd_plan(a),
        Command::WaitReady(a) => cmd_wait_ready(a),
        Command::FreePort => cmd_free_port(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suma-auth-loadtests: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod cli_tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn process_liveness() {
        assert!(!process_gone(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not reaped: a zombie.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(process_gone(pid));
        child.wait().unwrap();
        assert!(process_gone(pid));
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_takes_its_own_and_the_argon2_options() {
        let cli = Cli::try_parse_from([
            "suma-auth-loadtests",
            "bench",
            "--base-url",
            "http://127.0.0.1:8080",
            "--users",
            "users.json",
            "--duration",
            "5",
            "--argon2-duration",
            "2",
            "--argon2-threads",
            "1",
            "--client-threads",
            "2",
            "--json",
        ])
        .unwrap();
        let Command::Bench(b) = cli.command else {
            panic!("not bench");
        };
        assert_eq!(b.load.duration, 5.0);
        assert_eq!(b.argon2.argon2_duration, 2.0);
        assert_eq!(b.argon2.argon2_threads, Some(1));
        assert_eq!(b.env.client_threads, Some(2));
        assert_eq!(b.env.base_url, vec!["http://127.0.0.1:8080".to_owned()]);
        assert!(b.load.json);
    }

    #[test]
    fn open_model_needs_a_rate_and_loads_must_rise() {
        assert!(model_of(ModelArg::Open, None).is_err());
        assert!(model_of(ModelArg::Closed, Some(5.0)).is_err());
        assert!(model_of(ModelArg::Open, Some(0.0)).is_err());
        assert_eq!(
            model_of(ModelArg::Open, Some(250.0)).unwrap(),
            Model::Open { rate: 250.0 }
        );
        assert_eq!(
            parse_loads("1, 2,4", "--loads").unwrap(),
            vec![1.0, 2.0, 4.0]
        );
        assert!(parse_loads("4,2", "--loads").is_err());
        assert!(parse_loads("", "--loads").is_err());
        assert!(parse_loads("1,x", "--loads").is_err());
        let cli = Cli::try_parse_from([
            "x",
            "run",
            "--scenario",
            "mix",
            "--model",
            "open",
            "--rate",
            "300",
            "--mix",
            "me=9,refresh=1",
            "--backend",
            "postgres",
            "--instances",
            "3",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!("not run");
        };
        assert_eq!(r.env.instances, 3);
        assert_eq!(r.rate, Some(300.0));
    }

    #[test]
    fn other_targets_need_their_name_twice_and_databases_stay_local() {
        let needs = Needs {
            scenarios: vec![Scenario::Health],
            mix: Mix::default(),
            max_workers: 1,
        };
        let parse = |extra: &[&str]| {
            let mut argv = vec!["x", "run", "--scenario", "health"];
            argv.extend_from_slice(extra);
            let Command::Run(r) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not run");
            };
            env_opts(&r.env, &needs, None)
        };
        assert!(parse(&["--base-url", "http://10.0.0.7:8080"]).is_err());
        assert!(parse(&[
            "--base-url",
            "http://10.0.0.7:8080",
            "--confirm-target",
            "10.0.0.7:8080"
        ])
        .is_ok());
        assert!(parse(&["--backend", "postgres", "--pg-host", "db.example"]).is_err());
        assert!(parse(&["--backend", "postgres", "--redis-host", "10.0.0.8"]).is_err());
        assert!(parse(&["--instances", "3"]).is_err());
        let ok = parse(&["--backend", "postgres", "--instances", "3"]).unwrap();
        assert!(ok.targets.is_empty());
        assert_eq!(ok.instances, 3);
        assert!(parse(&["--task-cores", "0"]).is_err());
    }

    #[test]
    fn capacity_names_scenarios_either_way() {
        let cli = Cli::try_parse_from(["x", "capacity"]).unwrap();
        let Command::Capacity(c) = cli.command else {
            panic!("not capacity");
        };
        let names: Vec<Scenario> = c
            .scenarios
            .split(',')
            .map(|n| Scenario::from_str(&n.replace('_', "-"), true).unwrap())
            .collect();
        assert_eq!(names.len(), 7);
        assert!(names.contains(&Scenario::LoginOtp));
    }

    #[test]
    fn plan_takes_a_report() {
        let cli = Cli::try_parse_from([
            "x",
            "plan",
            "--users",
            "100000",
            "--report",
            "r.json",
            "--peak-factor",
            "4",
        ])
        .unwrap();
        let Command::Plan(p) = cli.command else {
            panic!("not plan");
        };
        assert_eq!(
            (p.users, p.peak_factor, p.requests_per_user_per_day),
            (100_000, 4.0, 10.0)
        );
    }

    #[test]
    fn run_parses_scenarios_and_bounds() {
        for s in [
            "register",
            "login",
            "login-otp",
            "me",
            "refresh",
            "mix",
            "health",
        ] {
            let cli = Cli::try_parse_from([
                "x",
                "run",
                "--base-url",
                "http://127.0.0.1:1",
                "--scenario",
                s,
                "--concurrency",
                "16",
                "--duration",
                "3",
                "--max-requests",
                "100",
            ]);
            assert!(cli.is_ok(), "{s}");
        }
        assert!(Cli::try_parse_from([
            "x",
            "run",
            "--base-url",
            "http://127.0.0.1:1",
            "--scenario",
            "health",
            "--concurrency",
            "0",
        ])
        .is_err());
        assert!(secs(4000.0, "--duration").is_err());
        assert!(positive_secs(0.0, "--duration").is_err());
        assert!(secs(f64::NAN, "--duration").is_err());
    }
}
