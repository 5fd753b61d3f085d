//! End-to-end runs of setup, every scenario in both models, ramps, bench and the
//! report against the stand-in server in `mock.rs`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::UsersFile;
use crate::argon2_limit::Argon2Opts;
use crate::harness::{Env, EnvOpts, MailSource, RunSpec};
use crate::knee::KneeRule;
use crate::launch::{Backend, CpuRequest};
use crate::mailbox::{self, Mailbox};
use crate::run::{Mix, Model, RunOpts, Scenario};
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
        concurrency: 4,
        duration: Duration::from_millis(300),
        warmup: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        users: users.to_vec(),
        ..RunOpts::new(vec![base.clone()], scenario)
    }
}

fn env_opts(base: &BaseUrl, mail_dir: PathBuf, users: usize, otp_users: usize) -> EnvOpts {
    EnvOpts {
        targets: vec![base.clone()],
        backend: Backend::Embedded,
        instances: 1,
        cpu: CpuRequest::Unlimited,
        server_bin: PathBuf::from("unused"),
        mail: MailSource::Auto,
        external_mail_dir: Some(mail_dir),
        keep: false,
        db_pool_size: 8,
        statsd: false,
        users,
        otp_users,
        users_file: None,
        client_threads: 1,
        timeout: Duration::from_secs(5),
        extra_env: Vec::new(),
        progress: false,
    }
}

#[test]
fn setup_and_every_scenario_against_a_stand_in_server() {
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

    // Accounts with email codes, and the mail as the harness reads it.
    let mailbox = Mailbox::new();
    let _watch =
        mailbox::watch_mail_dir(server.mail_dir.clone(), Arc::clone(&mailbox), false).unwrap();
    let prepared = setup::prepare(&setup::PrepareOpts {
        base: base.clone(),
        mailbox: Arc::clone(&mailbox),
        users: 0,
        otp_users: 4,
        concurrency: 2,
        mail_timeout: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    assert_eq!(prepared.otp_users.len(), 4);

    for scenario in [
        Scenario::Login,
        Scenario::Me,
        Scenario::Refresh,
        Scenario::Health,
        Scenario::Register,
        Scenario::LoginOtp,
        Scenario::Mix,
    ] {
        for threads in [1, 2] {
            let mut opts = run_opts(&base, scenario, &users);
            opts.client_threads = threads;
            opts.otp_users = prepared.otp_users.clone();
            opts.mailbox = Some(Arc::clone(&mailbox));
            opts.mix = "me=5,refresh=3,login=1,register=1,login_otp=1"
                .parse()
                .unwrap();
            let out = run::run_full(&opts).unwrap();
            let r = &out.report;
            assert!(r.ok > 0, "{scenario:?}: {r:?}");
            assert_eq!(r.errors, 0, "{scenario:?}: {r:?}");
            assert_eq!(r.client_threads, threads);
            assert!(r.p50_ms <= r.p95_ms && r.p95_ms <= r.max_ms, "{r:?}");
            assert!(!out.details.ops.is_empty());
            match scenario {
                Scenario::Register => {
                    let names: Vec<&str> = out.details.ops.iter().map(|o| o.op.name()).collect();
                    assert_eq!(names, ["register", "verify_email"], "{r:?}");
                    assert!(out.details.mail_wait.is_some());
                }
                Scenario::LoginOtp => {
                    let names: Vec<&str> = out.details.ops.iter().map(|o| o.op.name()).collect();
                    assert_eq!(names, ["login_otp", "otp_verify"], "{r:?}");
                }
                Scenario::Mix => assert!(out.details.ops.len() >= 3, "{:?}", out.details.ops),
                _ => assert_eq!(out.details.ops.len(), 1),
            }
            if matches!(scenario, Scenario::Me | Scenario::Refresh) {
                assert_eq!(out.sessions.len(), 4);
                assert!(out.sessions.iter().all(Option::is_some));
            }
        }
    }

    // login_otp refuses to share an account's codes between workers.
    let mut opts = run_opts(&base, Scenario::LoginOtp, &users);
    opts.otp_users = prepared.otp_users[..2].to_vec();
    opts.mailbox = Some(Arc::clone(&mailbox));
    assert!(run::run_full(&opts).is_err());

    // The request budget stops a run long before its duration.
    let mut opts = run_opts(&base, Scenario::Health, &users);
    opts.max_requests = 50;
    opts.duration = Duration::from_secs(30);
    opts.warmup = Duration::ZERO;
    let t0 = Instant::now();
    let r = run::run(&opts).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.requests, 50, "{r:?}");

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_open_model_sends_at_the_rate_whatever_the_connections() {
    let dir = temp_dir("open");
    let server = mock::start(dir.join("mail"));
    let base = BaseUrl::parse(&server.base_url).unwrap();
    let mut opts = run_opts(&base, Scenario::Health, &[]);
    opts.model = Model::Open { rate: 400.0 };
    opts.concurrency = 8;
    opts.warmup = Duration::ZERO;
    opts.duration = Duration::from_millis(500);
    let out = run::run_full(&opts).unwrap();
    // 400/s over 0.5 s: 200 slots, every one sent (the stand-in answers at once).
    assert_eq!(out.report.requests, 200, "{:?}", out.report);
    assert_eq!(out.report.errors, 0);
    let lag = out.details.send_lag.unwrap();
    assert_eq!(lag.count, 200);
    // The budget bounds the open model too.
    opts.max_requests = 20;
    let out = run::run_full(&opts).unwrap();
    assert_eq!(out.report.requests, 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn several_targets_share_the_load_in_turn() {
    let dir = temp_dir("rr");
    let a = mock::start(dir.join("a"));
    let b = mock::start(dir.join("b"));
    let targets = vec![
        BaseUrl::parse(&a.base_url).unwrap(),
        BaseUrl::parse(&b.base_url).unwrap(),
    ];
    let mut opts = run_opts(&targets[0], Scenario::Health, &[]);
    opts.targets = targets;
    opts.warmup = Duration::ZERO;
    opts.max_requests = 400;
    opts.duration = Duration::from_secs(10);
    let r = run::run(&opts).unwrap();
    assert_eq!(r.requests, 400);
    let (ha, hb) = (
        a.hits.load(Ordering::Relaxed),
        b.hits.load(Ordering::Relaxed),
    );
    assert_eq!(ha + hb, 400);
    assert!(ha.abs_diff(hb) <= 4, "{ha} vs {hb}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_session_bench_ramp_and_report() {
    let dir = temp_dir("env");
    let server = mock::start(dir.join("mail"));
    let base = BaseUrl::parse(&server.base_url).unwrap();
    let mut env = Env::start(
        &env_opts(&base, server.mail_dir.clone(), 40, 4),
        "bench",
        "stand-in bench".into(),
    )
    .unwrap();
    assert_eq!(env.users.len(), 40);
    assert_eq!(env.otp_users.len(), 4);
    let report = bench::bench(
        &mut env,
        &bench::BenchOpts {
            duration: Duration::from_millis(200),
            warmup: Duration::ZERO,
            max_requests: 1_000_000,
            argon2: Argon2Opts {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 1,
                duration: Duration::from_millis(100),
                threads: Some(1),
                max_hashes: 1000,
                reuse_memory: false,
            },
            rs256_duration: Duration::from_millis(100),
            pause: Duration::ZERO,
            mix: Mix::default(),
        },
        false,
    )
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Every planned run, then login at 80 % of its best.
    assert_eq!(
        report.runs.len(),
        bench::plan(cores).len() + 1,
        "{:?}",
        report.skipped
    );
    assert!(
        report.runs.iter().all(|r| r.ok > 0 && r.errors == 0),
        "{:?}",
        report.runs
    );
    assert!(report.ratios.iter().any(|r| r.name == "me / health"));
    assert!(report
        .ratios
        .iter()
        .any(|r| r.name == "refresh / RS256 signing limit"));
    assert_eq!(report.targets.len(), 5);
    serde_json::to_string(&report).unwrap();

    let base_spec = RunSpec {
        scenario: Scenario::Health,
        model: Model::Closed,
        concurrency: 1,
        duration: Duration::from_millis(150),
        warmup: Duration::ZERO,
        max_requests: 1_000_000,
        mix: Mix::default(),
    };
    let ramp = env
        .ramp(
            &base_spec,
            &[1.0, 2.0, 4.0],
            false,
            8,
            &KneeRule::default(),
            Some(0.5),
            Duration::ZERO,
        )
        .unwrap();
    assert!(!ramp.steps.is_empty());
    if ramp.knee.is_some() {
        assert!(ramp.confirm_run.is_some());
    }
    env.report.ramp = Some(ramp);
    let out = dir.join("reports");
    let full = env.finish(&out, "test").unwrap();
    assert!(full.runs.len() > report.runs.len());
    let html = std::fs::read_to_string(out.join("test.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
    assert_eq!(json["kind"], "bench");
    assert!(json["runs"][0]["details"]["timeline"].is_array());
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
    assert!(run::run(&run_opts(&base, Scenario::Mix, &[])).is_err());
}
