//! `bench`: the combined report. The machine's limits first (Argon2id hashing and
//! RS256 signing, with the server idle), then every scenario at fixed concurrency,
//! login at 80 % of its best throughput in the open model, and `GET /health` (the
//! trivial handler); then each figure over its limit, and the targets.

use std::time::Duration;

use serde::Serialize;

use crate::argon2_limit::{self, Argon2Opts, Argon2Report};
use crate::capacity;
use crate::harness::{Env, RunSpec};
use crate::limits::{self, Rs256Report};
use crate::report::{HealthLimit, Limits};
use crate::run::{Mix, Model, Scenario};
use crate::stats::{round3, Report};

/// Login throughput must reach this share of the Argon2id limit (at concurrency
/// of at least twice the cores).
pub const LOGIN_SHARE_TARGET: f64 = 0.95;
/// Login p95 at 80 % of its best throughput, milliseconds.
pub const LOGIN_P95_TARGET_MS: f64 = 200.0;
/// Refresh over the RS256 signing limit: embedded default, PostgreSQL + Redis.
pub const REFRESH_SHARE_EMBEDDED: f64 = 0.80;
pub const REFRESH_SHARE_POSTGRES: f64 = 0.60;
/// Token-validated `GET /me`, requests per second.
pub const ME_TARGET_RPS: f64 = 13_000.0;
/// Refresh (rotate, sign, persist), requests per second.
pub const REFRESH_TARGET_RPS: f64 = 2_400.0;

/// One run of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    pub scenario: Scenario,
    pub concurrency: usize,
    /// Needs the mail (register, login_otp, the mix with registrations).
    pub needs_mail: bool,
}

/// The runs of the bench, in order. Login runs at 2 and at 4 x cores.
pub fn plan(cores: usize) -> Vec<Planned> {
    let p = |scenario, concurrency, needs_mail| Planned {
        scenario,
        concurrency,
        needs_mail,
    };
    vec![
        p(Scenario::Login, 2, false),
        p(Scenario::Login, (4 * cores).max(4), false),
        p(Scenario::Register, 4, true),
        p(Scenario::LoginOtp, 4, true),
        p(Scenario::Me, 16, false),
        p(Scenario::Refresh, 16, false),
        p(Scenario::Mix, 16, true),
        p(Scenario::Health, 16, false),
    ]
}

#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub argon2: Argon2Opts,
    pub rs256_duration: Duration,
    /// Quiet time between runs, so one run's tail does not spill into the next.
    pub pause: Duration,
    pub mix: Mix,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub value: f64,
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
    pub backend: String,
    pub instances: usize,
    pub argon2: Argon2Report,
    pub rs256: Rs256Report,
    pub runs: Vec<Report>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<TargetCheck>,
    pub skipped: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        round3(a / b)
    } else {
        0.0
    }
}

pub fn bench(env: &mut Env, opts: &BenchOpts, progress: bool) -> Result<BenchReport, String> {
    if progress {
        eprintln!("bench: measuring the Argon2id limit (server idle)…");
    }
    let argon2 = argon2_limit::measure(&opts.argon2)?;
    if progress {
        eprintln!("bench: measuring the RS256 signing limit (server idle)…");
    }
    let rs256 = limits::measure_rs256(opts.rs256_duration, None, 10_000_000)?;
    let cores = argon2.cores;
    let has_mail = env.mailbox.is_some();
    let mut skipped = Vec::new();
    let mut runs: Vec<Report> = Vec::new();
    // Completed iterations per second: registrations and sign-ins with a code are
    // flows of two requests, one hash each.
    let mut flows: Vec<(&str, usize, f64)> = Vec::new();
    let mut sessions = Vec::new();
    for p in plan(cores) {
        if p.needs_mail && !has_mail {
            skipped.push(format!(
                "{} (needs the mail: the harness's own server, or --mail-dir)",
                p.scenario.name()
            ));
            continue;
        }
        if p.scenario == Scenario::LoginOtp && env.otp_users.len() < p.concurrency {
            skipped.push("login_otp (no accounts with email codes)".into());
            continue;
        }
        std::thread::sleep(opts.pause);
        let label = format!("{} c={}", p.scenario.name(), p.concurrency);
        if progress {
            eprintln!("bench: {label} for {:.0} s…", opts.duration.as_secs_f64());
        }
        // me and refresh carry their sessions over; others start afresh.
        if !matches!(p.scenario, Scenario::Me | Scenario::Refresh | Scenario::Mix) {
            sessions.clear();
        }
        let idx = env.run(
            &label,
            &RunSpec {
                scenario: p.scenario,
                model: Model::Closed,
                concurrency: p.concurrency,
                duration: opts.duration,
                warmup: opts.warmup,
                max_requests: opts.max_requests,
                mix: opts.mix.clone(),
            },
            &mut sessions,
        )?;
        runs.push(env.report.runs[idx].summary.clone());
        flows.push((
            p.scenario.name(),
            p.concurrency,
            env.report.runs[idx].details.iteration_ok_rps,
        ));
    }
    let best_login = runs
        .iter()
        .filter(|r| r.scenario == "login")
        .map(|r| r.ok_rps)
        .fold(0.0, f64::max);

    // Login at 80 % of its best throughput, open model: the latency users see
    // below the knee.
    let mut login80 = None;
    if best_login > 0.0 {
        std::thread::sleep(opts.pause);
        let rate = best_login * 0.8;
        let label = format!("login @{rate:.1}/s (80 %)");
        if progress {
            eprintln!("bench: {label}…");
        }
        let idx = env.run(
            &label,
            &RunSpec {
                scenario: Scenario::Login,
                model: Model::Open { rate },
                concurrency: 32,
                duration: opts.duration,
                warmup: opts.warmup,
                max_requests: opts.max_requests,
                mix: opts.mix.clone(),
            },
            &mut Vec::new(),
        )?;
        let r = env.report.runs[idx].summary.clone();
        login80 = Some(r.clone());
        runs.push(r);
    }

    let find = |name: &str, c: usize| {
        runs.iter()
            .find(|r| r.scenario == name && r.concurrency == c)
            .cloned()
    };
    let health = find("health", 16);
    let health_rps = health.as_ref().map_or(0.0, |h| h.ok_rps);
    let get = |name: &str, c: usize| find(name, c).map_or(0.0, |r| r.ok_rps);
    let flows_of = |name: &str, c: usize| {
        flows
            .iter()
            .find(|(n, k, _)| *n == name && *k == c)
            .map_or(0.0, |(_, _, f)| *f)
    };
    let login_c = (4 * cores).max(4);
    let mut ratios = vec![
        Ratio {
            name: "login c=2 / Argon2id limit".into(),
            value: ratio(get("login", 2), argon2.limit_hps),
        },
        Ratio {
            name: format!("login c={login_c} / Argon2id limit"),
            value: ratio(get("login", login_c), argon2.limit_hps),
        },
        Ratio {
            name: "registrations c=4 / Argon2id limit".into(),
            value: ratio(flows_of("register", 4), argon2.limit_hps),
        },
        Ratio {
            name: "login_otp sign-ins c=4 / Argon2id limit".into(),
            value: ratio(flows_of("login_otp", 4), argon2.limit_hps),
        },
        Ratio {
            name: "refresh / RS256 signing limit".into(),
            value: ratio(get("refresh", 16), rs256.limit_sps),
        },
        Ratio {
            name: "me / health".into(),
            value: ratio(get("me", 16), health_rps),
        },
        Ratio {
            name: "refresh / health".into(),
            value: ratio(get("refresh", 16), health_rps),
        },
        // What the machine gave the limit measurements in this run (wall clock,
        // with whatever else ran): the figures under the same contention.
        Ratio {
            name: format!("login c={login_c} / Argon2id measured now"),
            value: ratio(get("login", login_c), argon2.measured_hps),
        },
        Ratio {
            name: "refresh / RS256 measured now".into(),
            value: ratio(get("refresh", 16), rs256.measured_sps),
        },
    ];
    let limits = Limits {
        argon2: Some(argon2.clone()),
        rs256: Some(rs256.clone()),
        health: health.as_ref().map(|h| HealthLimit {
            concurrency: h.concurrency,
            ok_rps: h.ok_rps,
            p95_ms: h.p95_ms,
        }),
    };
    if let Some((_, mix_limit)) = capacity::limit_for("mix", cores as f64, &limits, &opts.mix) {
        ratios.push(Ratio {
            name: "mix iterations / its actions' limits".into(),
            value: ratio(flows_of("mix", 16), mix_limit),
        });
    }
    ratios.retain(|r| r.value > 0.0);
    env.report.limits = Some(limits);

    let postgres = env.report.setup.backend.starts_with("postgres");
    let refresh_share_target = if postgres {
        REFRESH_SHARE_POSTGRES
    } else {
        REFRESH_SHARE_EMBEDDED
    };
    let refresh_share = ratio(get("refresh", 16), rs256.limit_sps);
    let login_share = ratio(get("login", login_c), argon2.limit_hps);
    let mut targets = vec![
        TargetCheck {
            name: "login throughput".into(),
            target: format!(
                ">= {:.0} % of the Argon2id limit ({:.1}/s) at c={login_c}",
                LOGIN_SHARE_TARGET * 100.0,
                argon2.limit_hps * LOGIN_SHARE_TARGET
            ),
            measured: format!(
                "{:.1} % ({:.1}/s)",
                login_share * 100.0,
                get("login", login_c)
            ),
            met: login_share >= LOGIN_SHARE_TARGET,
        },
        TargetCheck {
            name: "refresh throughput".into(),
            target: format!(
                ">= {:.0} % of the RS256 limit ({:.0}/s)",
                refresh_share_target * 100.0,
                rs256.limit_sps * refresh_share_target
            ),
            measured: format!(
                "{:.1} % ({:.0}/s)",
                refresh_share * 100.0,
                get("refresh", 16)
            ),
            met: refresh_share >= refresh_share_target,
        },
        TargetCheck {
            name: "GET /me".into(),
            target: format!(">= {ME_TARGET_RPS:.0}/s"),
            measured: format!("{:.0}/s", get("me", 16)),
            met: get("me", 16) >= ME_TARGET_RPS,
        },
        TargetCheck {
            name: "refresh".into(),
            target: format!(">= {REFRESH_TARGET_RPS:.0}/s"),
            measured: format!("{:.0}/s", get("refresh", 16)),
            met: get("refresh", 16) >= REFRESH_TARGET_RPS,
        },
    ];
    if let Some(r) = &login80 {
        targets.push(TargetCheck {
            name: "login p95 at 80 % of its best".into(),
            target: format!("< {LOGIN_P95_TARGET_MS:.0} ms (open model)"),
            measured: format!("{:.1} ms at {:.1}/s", r.p95_ms, r.ok_rps),
            met: r.ok > 0 && r.p95_ms < LOGIN_P95_TARGET_MS,
        });
    }
    Ok(BenchReport {
        base_url: env
            .targets
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        backend: env.report.setup.backend.clone(),
        instances: env.targets.len(),
        argon2,
        rs256,
        runs,
        ratios,
        targets,
        skipped,
    })
}

impl BenchReport {
    pub fn print_human(&self) {
        println!(
            "suma-auth bench: {} ({} instance{}) at {}",
            self.backend,
            self.instances,
            if self.instances == 1 { "" } else { "s" },
            self.base_url
        );
        println!();
        self.argon2.print_human();
        println!();
        self.rs256.print_human();
        println!();
        println!(
            "{:<28} {:>5} {:>11} {:>9} {:>9} {:>9} {:>9}  errors",
            "run", "conc", "ok req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for r in &self.runs {
            println!(
                "{:<28} {:>5} {:>11.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                r.scenario,
                r.concurrency,
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
        for s in &self.skipped {
            println!("skipped: {s}");
        }
        println!();
        println!("ratios to the limits of this machine, measured in this run");
        for r in &self.ratios {
            println!("  {:<36} {:>7.3}", r.name, r.value);
        }
        println!();
        println!("targets");
        for t in &self.targets {
            println!(
                "  {:<30} {:<48} {:<28} {}",
                t.name,
                t.target,
                t.measured,
                if t.met { "met" } else { "NOT MET" }
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_loads_login_at_twice_the_cores_at_least() {
        for cores in [1, 2, 8] {
            let p = plan(cores);
            let c = p
                .iter()
                .filter(|x| x.scenario == Scenario::Login)
                .map(|x| x.concurrency)
                .max()
                .unwrap();
            assert!(c >= 2 * cores, "{c} for {cores} cores");
        }
        assert!(plan(2).iter().any(|x| x.scenario == Scenario::Mix));
    }
}
