//! End-to-end runs of setup, run and bench against the stand-in server in `mock.rs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::api::UsersFile;
use crate::argon2_limit::Argon2Opts;
use crate::run::{RunOpts, Scenario};
use crate::target::BaseUrl;
use crate::{bench, mock, run, setup};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "suma-loadtests-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_opts(base: &BaseUrl, scenario: Scenario, users: &[crate::api::User]) -> RunOpts {
    RunOpts {
        base: base.clone(),
        scenario,
        concurrency: 4,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        max_requests: 1_000_000,
        client_threads: 1,
        timeout: Duration::from_secs(5),
        users: users.to_vec(),
    }
}

#[test]
fn setup_run_and_bench_against_a_stand_in_server() {
    let dir = temp_dir("e2e");
    let server = mock::start(dir.join("mail"));
    let base = BaseUrl::parse(&server.base_url).unwrap();
    let out = dir.join("users.json");

    let file = setup::setup(&setup::SetupOpts {
        base: base.clone(),
        users: 6,
        mail_dir: server.mail_dir.clone(),
        out: out.clone(),
        concurrency: 3,
        mail_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    assert_eq!(file.usable().len(), 6);
    let users = UsersFile::load(&out).unwrap().usable();
    assert_eq!(users.len(), 6);

    for scenario in [
        Scenario::Login,
        Scenario::Me,
        Scenario::Refresh,
        Scenario::Health,
    ] {
        for threads in [1, 2] {
            let mut opts = run_opts(&base, scenario, &users);
            opts.client_threads = threads;
            let r = run::run(&opts).unwrap();
            assert!(r.ok > 0, "{r:?}");
            assert_eq!(r.errors, 0, "{r:?}");
            assert_eq!(r.client_threads, threads);
            assert!(r.p50_ms <= r.p95_ms && r.p95_ms <= r.max_ms, "{r:?}");
        }
    }

    // The request budget stops a run long before its duration.
    let mut opts = run_opts(&base, Scenario::Health, &users);
    opts.max_requests = 50;
    opts.duration = Duration::from_secs(30);
    opts.warmup = Duration::ZERO;
    let t0 = Instant::now();
    let r = run::run(&opts).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.requests, 50, "{r:?}");

    let report = bench::bench(
        &bench::BenchOpts {
            base: base.clone(),
            users,
            duration: Duration::from_millis(200),
            warmup: Duration::ZERO,
            max_requests: 1_000_000,
            client_threads: 1,
            timeout: Duration::from_secs(5),
            argon2: Argon2Opts {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 1,
                duration: Duration::from_millis(100),
                threads: Some(1),
                max_hashes: 1000,
                reuse_memory: false,
            },
            pause: Duration::ZERO,
        },
        false,
    )
    .unwrap();
    assert_eq!(report.runs.len(), bench::PLAN.len());
    assert!(report.runs.iter().all(|r| r.ok > 0 && r.errors == 0));
    assert!(report.ratios.me_over_health > 0.0);
    assert_eq!(report.targets.len(), 4);
    serde_json::to_string(&report).unwrap();

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_server_that_is_down_gives_bounded_connect_errors() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = BaseUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let t0 = Instant::now();
    let r = run::run(&run_opts(&base, Scenario::Health, &[])).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r.ok, 0);
    assert!(r.error_counts.contains_key("connect"), "{r:?}");
}

#[test]
fn scenarios_needing_users_refuse_to_start_without() {
    let base = BaseUrl::parse("http://127.0.0.1:9").unwrap();
    assert!(run::run(&run_opts(&base, Scenario::Login, &[])).is_err());
}
