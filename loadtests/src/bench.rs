//! `bench`: the combined report. Argon2id limit first (server idle), then
//! login c=2, login c=8, me c=16, refresh c=16, health c=16, then ratios and the
//! targets of DESIGN.md ("Targets").

use std::time::Duration;

use serde::Serialize;

use crate::api::User;
use crate::argon2_limit::{self, Argon2Opts, Argon2Report};
use crate::run::{self, RunOpts, Scenario};
use crate::stats::{round3, Report};
use crate::target::BaseUrl;

/// Login throughput must reach this share of the Argon2id limit.
pub const LOGIN_SHARE_TARGET: f64 = 0.90;
/// Login p95 below the knee (concurrency 2), milliseconds.
pub const LOGIN_P95_TARGET_MS: f64 = 200.0;
/// Token-validated `GET /me`, requests per second.
pub const ME_TARGET_RPS: f64 = 13_000.0;
/// Refresh (rotate, sign, persist), requests per second.
pub const REFRESH_TARGET_RPS: f64 = 2_400.0;

/// The runs of the bench, in order: (scenario, concurrency).
pub const PLAN: [(Scenario, usize); 5] = [
    (Scenario::Login, 2),
    (Scenario::Login, 8),
    (Scenario::Me, 16),
    (Scenario::Refresh, 16),
    (Scenario::Health, 16),
];

#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub base: BaseUrl,
    pub users: Vec<User>,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub client_threads: usize,
    pub timeout: Duration,
    pub argon2: Argon2Opts,
    /// Quiet time between runs, so one run's tail does not spill into the next.
    pub pause: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub login_c2_over_argon2_limit: f64,
    pub login_c8_over_argon2_limit: f64,
    pub me_over_health: f64,
    pub refresh_over_health: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub base_url: String,
    pub argon2: Argon2Report,
    pub runs: Vec<Report>,
    pub ratios: Ratios,
    pub targets: Vec<TargetCheck>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        round3(a / b)
    } else {
        0.0
    }
}

pub fn bench(opts: &BenchOpts, progress: bool) -> Result<BenchReport, String> {
    if progress {
        eprintln!("bench: measuring the Argon2id limit (server should be idle)…");
    }
    let argon2 = argon2_limit::measure(&opts.argon2)?;
    let mut runs = Vec::with_capacity(PLAN.len());
    for (scenario, concurrency) in PLAN {
        std::thread::sleep(opts.pause);
        if progress {
            eprintln!(
                "bench: {} at concurrency {concurrency} for {:.0} s…",
                scenario.name(),
                opts.duration.as_secs_f64()
            );
        }
        let report = run::run(&RunOpts {
            base: opts.base.clone(),
            scenario,
            concurrency,
            duration: opts.duration,
            warmup: opts.warmup,
            max_requests: opts.max_requests,
            client_threads: opts.client_threads,
            timeout: opts.timeout,
            users: opts.users.clone(),
        })?;
        runs.push(report);
    }
    let [login2, login8, me, refresh, health] = [0, 1, 2, 3, 4].map(|i| runs[i].clone());
    let ratios = Ratios {
        login_c2_over_argon2_limit: ratio(login2.ok_rps, argon2.limit_hps),
        login_c8_over_argon2_limit: ratio(login8.ok_rps, argon2.limit_hps),
        me_over_health: ratio(me.ok_rps, health.ok_rps),
        refresh_over_health: ratio(refresh.ok_rps, health.ok_rps),
    };
    let best_login_share = ratios
        .login_c2_over_argon2_limit
        .max(ratios.login_c8_over_argon2_limit);
    let targets = vec![
        TargetCheck {
            name: "login throughput".into(),
            target: format!(
                ">= {:.0} % of the Argon2id limit ({:.1}/s)",
                LOGIN_SHARE_TARGET * 100.0,
                argon2.limit_hps * LOGIN_SHARE_TARGET
            ),
            measured: format!(
                "{:.1} % (best of c=2 {:.1}/s, c=8 {:.1}/s)",
                best_login_share * 100.0,
                login2.ok_rps,
                login8.ok_rps
            ),
            met: best_login_share >= LOGIN_SHARE_TARGET,
        },
        TargetCheck {
            name: "login p95 below the knee".into(),
            target: format!("< {LOGIN_P95_TARGET_MS:.0} ms at c=2"),
            measured: format!("{:.1} ms", login2.p95_ms),
            met: login2.ok > 0 && login2.p95_ms < LOGIN_P95_TARGET_MS,
        },
        TargetCheck {
            name: "GET /me".into(),
            target: format!(">= {ME_TARGET_RPS:.0}/s"),
            measured: format!("{:.0}/s", me.ok_rps),
            met: me.ok_rps >= ME_TARGET_RPS,
        },
        TargetCheck {
            name: "refresh".into(),
            target: format!(">= {REFRESH_TARGET_RPS:.0}/s"),
            measured: format!("{:.0}/s", refresh.ok_rps),
            met: refresh.ok_rps >= REFRESH_TARGET_RPS,
        },
    ];
    Ok(BenchReport {
        base_url: opts.base.as_str().to_owned(),
        argon2,
        runs,
        ratios,
        targets,
    })
}

impl BenchReport {
    pub fn print_human(&self) {
        let a = &self.argon2;
        println!("suma-auth bench against {}", self.base_url);
        println!();
        a.print_human();
        println!();
        println!(
            "{:<10} {:>5} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9}  errors",
            "scenario", "conc", "threads", "ok req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for r in &self.runs {
            println!(
                "{:<10} {:>5} {:>7} {:>11.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                r.scenario,
                r.concurrency,
                r.client_threads,
                r.ok_rps,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.max_ms,
                if r.errors == 0 {
                    "0".to_owned()
                } else {
                    format!("{} ({})", r.errors, r.error_summary())
                }
            );
        }
        println!();
        println!("ratios");
        let x = &self.ratios;
        println!(
            "  login c=2 / Argon2id limit   {:>7.3}",
            x.login_c2_over_argon2_limit
        );
        println!(
            "  login c=8 / Argon2id limit   {:>7.3}",
            x.login_c8_over_argon2_limit
        );
        println!("  me / health                  {:>7.3}", x.me_over_health);
        println!(
            "  refresh / health             {:>7.3}",
            x.refresh_over_health
        );
        println!();
        println!("targets (DESIGN.md, \"Targets\")");
        for t in &self.targets {
            println!(
                "  {:<26} {:<44} {:<40} {}",
                t.name,
                t.target,
                t.measured,
                if t.met { "met" } else { "NOT MET" }
            );
        }
    }
}
