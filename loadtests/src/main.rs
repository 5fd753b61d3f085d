//! suma-auth-loadtests: the load generator and benchmark harness of suma-auth.
//!
//! Every request goes to the loopback interface (the base URL is checked), and every
//! loop is bounded by a duration and a request count. See loadtests/README.md.

mod api;
mod argon2_limit;
mod bench;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod e2e_tests;
mod mail;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod mock;
mod run;
mod setup;
mod stats;
mod target;

use std::error::Error;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::api::UsersFile;
use crate::argon2_limit::Argon2Opts;
use crate::run::Scenario;
use crate::target::BaseUrl;

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Longest measurement a single run may ask for.
const MAX_DURATION_SECS: u64 = 3600;

#[derive(Debug, Parser)]
#[command(
    name = "suma-auth-loadtests",
    version,
    about = "Load generator for suma-auth (loopback only, bounded by time and request count)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine's raw Argon2id limit (hashes/s on all cores).
    Argon2(Argon2Args),
    /// Register N users and verify them through the mail files the server writes.
    Setup(SetupArgs),
    /// Drive one scenario with C concurrent workers for a fixed time.
    Run(RunArgs),
    /// The combined report: Argon2id limit, login c=2/8, me, refresh, health c=16.
    Bench(BenchArgs),
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

#[derive(Debug, Args)]
struct SetupArgs {
    /// Server base URL; must be on loopback, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base_url: String,
    /// Number of users to register.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    users: u64,
    /// Where the server writes mails as .eml files: its DATA_DIR/mail/
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

/// Options shared by `run` and `bench`.
#[derive(Debug, Args, Clone)]
struct LoadArgs {
    /// Server base URL; must be on loopback, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base_url: String,
    /// Users file written by `setup` (needed by login, me and refresh).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Measured seconds per run (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before the measurement window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Upper bound on requests per run (warm-up included), whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Client OS threads, each with its own actix System; workers are spread over them
    /// [default: one per core]. One thread tops out near 25k req/s here, below the
    /// server's ceiling for cheap routes; see README.md.
    #[arg(long)]
    client_threads: Option<usize>,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print one JSON line of the figures instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent workers (each one request at a time, own keep-alive client).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    argon2: Argon2BenchArgs,
    /// Quiet seconds between runs.
    #[arg(long, default_value_t = 1.0)]
    pause: f64,
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

fn load_users(path: Option<&PathBuf>, needed: bool) -> BoxResult<Vec<api::User>> {
    match path {
        Some(p) => {
            let users = UsersFile::load(p)?.usable();
            if needed && users.is_empty() {
                return Err(format!("{} holds no verified user", p.display()).into());
            }
            Ok(users)
        }
        None if needed => Err("this scenario needs --users users.json (from `setup`)".into()),
        None => Ok(Vec::new()),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> BoxResult<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
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

fn cmd_run(args: &RunArgs) -> BoxResult<()> {
    let l = &args.load;
    let needs_users = args.scenario != Scenario::Health;
    let opts = run::RunOpts {
        base: BaseUrl::parse(&l.base_url)?,
        scenario: args.scenario,
        concurrency: usize::try_from(args.concurrency)?,
        duration: positive_secs(l.duration, "--duration")?,
        warmup: secs(l.warmup, "--warmup")?,
        max_requests: l.max_requests,
        client_threads: client_threads(l.client_threads),
        timeout: positive_secs(l.timeout, "--timeout")?,
        users: load_users(l.users.as_ref(), needs_users)?,
    };
    let report = run::run(&opts)?;
    if l.json {
        print_json(&report)
    } else {
        report.print_human();
        Ok(())
    }
}

fn cmd_bench(args: &BenchArgs) -> BoxResult<()> {
    let l = &args.load;
    let a = &args.argon2;
    let opts = bench::BenchOpts {
        base: BaseUrl::parse(&l.base_url)?,
        users: load_users(l.users.as_ref(), true)?,
        duration: positive_secs(l.duration, "--duration")?,
        warmup: secs(l.warmup, "--warmup")?,
        max_requests: l.max_requests,
        client_threads: client_threads(l.client_threads),
        timeout: positive_secs(l.timeout, "--timeout")?,
        argon2: Argon2Opts {
            m_cost_kib: a.m_cost,
            t_cost: a.t_cost,
            p_cost: a.p_cost,
            duration: positive_secs(a.argon2_duration, "--argon2-duration")?,
            threads: a.argon2_threads,
            max_hashes: 100_000,
            reuse_memory: false,
        },
        pause: secs(args.pause, "--pause")?,
    };
    let report = bench::bench(&opts, !l.json)?;
    if l.json {
        print_json(&report)
    } else {
        report.print_human();
        Ok(())
    }
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
    let result = match &cli.command {
        Command::Argon2(a) => cmd_argon2(a),
        Command::Setup(a) => cmd_setup(a),
        Command::Run(a) => cmd_run(a),
        Command::Bench(a) => cmd_bench(a),
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
        assert_eq!(b.load.client_threads, Some(2));
        assert!(b.load.json);
    }

    #[test]
    fn run_parses_scenarios_and_bounds() {
        for s in ["login", "me", "refresh", "health"] {
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
