//! `capacity`: what one task of the seed's size (half a core) sustains, per
//! scenario and on the mix, next to the machine's limits measured in the same
//! session. Each scenario is ramped (closed model, doubling workers) to its knee,
//! then confirmed in the open model at 80 % of the knee's throughput.

use std::time::Duration;

use crate::argon2_limit::{self, Argon2Opts};
use crate::harness::{Env, RunSpec};
use crate::knee::KneeRule;
use crate::limits;
use crate::report::{CapacityRow, CapacitySection, HealthLimit, Limits};
use crate::run::{Mix, Model, Scenario};

#[derive(Debug, Clone)]
pub struct CapacityOpts {
    pub scenarios: Vec<Scenario>,
    /// Worker counts of the ramp.
    pub loads: Vec<f64>,
    pub step_duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub confirm_share: f64,
    pub connections: usize,
    pub mix: Mix,
    pub argon2: Argon2Opts,
    pub rs256_duration: Duration,
    pub task_cores: f64,
    pub pause: Duration,
}

pub fn capacity(env: &mut Env, opts: &CapacityOpts) -> Result<CapacitySection, String> {
    eprintln!("capacity: the machine's limits first (servers idle)…");
    let argon2 = argon2_limit::measure(&opts.argon2)?;
    let rs256 = limits::measure_rs256(opts.rs256_duration, None, 10_000_000)?;
    let task_scale = env.report.setup.task_scale;
    let method = env
        .report
        .setup
        .cpu
        .as_ref()
        .map_or_else(|| "none".to_owned(), |c| c.method.clone());
    let mut rows = Vec::new();
    let mut health = None;
    for &scenario in &opts.scenarios {
        if scenario.needs_mail(&opts.mix) && env.mailbox.is_none() {
            eprintln!("capacity: {} skipped (needs the mail)", scenario.name());
            continue;
        }
        eprintln!("capacity: ramping {}…", scenario.name());
        let base = RunSpec {
            scenario,
            model: Model::Closed,
            concurrency: 1,
            duration: opts.step_duration,
            warmup: opts.warmup,
            max_requests: opts.max_requests,
            mix: opts.mix.clone(),
        };
        // One account with email codes per worker or connection.
        let (loads, connections): (Vec<f64>, usize) = if scenario.needs_otp_users(&opts.mix) {
            let max = env.otp_users.len();
            (
                opts.loads
                    .iter()
                    .copied()
                    .filter(|l| *l <= max as f64)
                    .collect(),
                opts.connections.min(max).max(1),
            )
        } else {
            (opts.loads.clone(), opts.connections)
        };
        let ramp = env.ramp(
            &base,
            &loads,
            false,
            connections,
            &KneeRule::default(),
            Some(opts.confirm_share),
            opts.pause,
        )?;
        let confirm = ramp.confirm_run.map(|i| env.report.runs[i].summary.clone());
        let confirm_throttled = ramp
            .confirm_run
            .and_then(|i| env.report.runs[i].throttled_share);
        let knee_step = ramp.knee.map(|k| &ramp.steps[k.index]);
        let (measured, flows, p95, note) = match (knee_step, ramp.knee_p95_ms) {
            (Some(step), Some(p)) => (
                step.ok_rps,
                step.iteration_ok_rps,
                p,
                ramp.knee_reason
                    .clone()
                    .map(|r| format!("next step: {r}"))
                    .unwrap_or_default(),
            ),
            _ => {
                // No knee within the ramp: its best step is a lower bound.
                let best = ramp
                    .steps
                    .iter()
                    .max_by(|a, b| a.ok_rps.total_cmp(&b.ok_rps));
                (
                    best.map_or(0.0, |s| s.ok_rps),
                    best.map_or(0.0, |s| s.iteration_ok_rps),
                    best.map_or(0.0, |s| s.p95_ms),
                    "no knee within the ramp: a lower bound".to_owned(),
                )
            }
        };
        if scenario == Scenario::Health {
            health = Some(HealthLimit {
                concurrency: ramp.knee_load.unwrap_or(0.0) as usize,
                ok_rps: measured * task_scale,
                p95_ms: p95,
            });
        }
        rows.push(CapacityRow {
            scenario: scenario.name().to_owned(),
            knee_load: ramp.knee_load,
            measured_ok_rps: measured,
            p95_ms: p95,
            per_task_rps: (measured * task_scale * 10.0).round() / 10.0,
            per_task_flows: (flows * task_scale * 10.0).round() / 10.0,
            confirm_rate: confirm.as_ref().map(|_| {
                knee_step.map_or(0.0, |s| s.iteration_ok_rps) * ramp.confirm_share.unwrap_or(0.0)
            }),
            confirm_ok_rps: confirm.as_ref().map(|c| c.ok_rps),
            confirm_p95_ms: confirm.as_ref().map(|c| c.p95_ms),
            confirm_p99_ms: confirm.as_ref().map(|c| c.p99_ms),
            confirm_throttled_share: confirm_throttled,
            note,
        });
        env.report.ramp = Some(ramp);
    }
    env.report.ramp = None;
    // The limits once more, and the cheaper of each pair kept (see `cheaper`).
    eprintln!("capacity: the machine's limits again (servers idle)…");
    let argon2_after = argon2_limit::measure(&opts.argon2)?;
    let rs256_after = limits::measure_rs256(opts.rs256_duration, None, 10_000_000)?;
    eprintln!(
        "capacity: Argon2id {:.2} then {:.2} ms of CPU per hash alone; RS256 {:.1} then {:.1} µs per signature alone; the cheaper of each is the limit",
        argon2.single_cpu_hash_ms,
        argon2_after.single_cpu_hash_ms,
        rs256.single_cpu_sign_us,
        rs256_after.single_cpu_sign_us
    );
    let argon2 = cheaper(argon2, argon2_after, |a| a.single_cpu_hash_ms);
    let rs256 = cheaper(rs256, rs256_after, |r| r.single_cpu_sign_us);
    env.report.limits = Some(Limits {
        argon2: Some(argon2),
        rs256: Some(rs256),
        health,
    });
    let section = CapacitySection {
        task_cores: opts.task_cores,
        method,
        task_scale,
        scenarios: rows,
    };
    env.report.capacity = Some(section.clone());
    Ok(section)
}

/// Of two measurements of a limit, before and after the scenarios, the one
/// that found the work cheaper (by `cost`). Why: a virtual machine's speed
/// moves by a fifth and more from one minute to the next, with what its host
/// runs beside it; a scenario measured in a fast minute against a limit
/// measured in a slow one would claim more than its share. Against the
/// cheaper of the two, a share can only come out lower.
fn cheaper<T>(before: T, after: T, cost: impl Fn(&T) -> f64) -> T {
    if cost(&after) < cost(&before) {
        after
    } else {
        before
    }
}

/// The limit of one task for a scenario, in flows per second: for login, register
/// and login_otp (one hash each) task cores ÷ the CPU time of a hash; for refresh
/// task cores × one core's RS256 rate; for me the task's `/health`; for the mix the
/// weighted harmonic combination of its actions' limits (what a task could do if
/// each action ran at its own limit).
pub fn limit_for(
    scenario: &str,
    task_cores: f64,
    limits: &Limits,
    mix: &Mix,
) -> Option<(String, f64)> {
    match scenario {
        "login" | "register" | "login_otp" => limits.argon2.as_ref().map(|a| {
            (
                "Argon2id".to_owned(),
                task_cores / (a.single_cpu_hash_ms.max(1e-6) / 1000.0),
            )
        }),
        "refresh" => limits
            .rs256
            .as_ref()
            .map(|r| ("RS256".to_owned(), task_cores * r.per_core_sps)),
        "me" | "health" => limits
            .health
            .as_ref()
            .map(|h| ("/health".to_owned(), h.ok_rps)),
        "mix" => {
            let total = f64::from(mix.total().max(1));
            let mut cost = 0.0;
            for (action, w) in &mix.weights {
                let (_, l) = limit_for(action.name(), task_cores, limits, mix)?;
                if l <= 0.0 {
                    return None;
                }
                cost += f64::from(*w) / total / l;
            }
            (cost > 0.0).then(|| ("its actions' limits".to_owned(), 1.0 / cost))
        }
        _ => None,
    }
}

/// The capacity table as Markdown (for RESULTS.md).
pub fn markdown(section: &CapacitySection, limits: Option<&Limits>, mix: &Mix) -> String {
    let mut out = String::new();
    out.push_str("| scenario | knee (workers) | per task ok req/s | flows/s | p95 at knee ms | 80 % of knee: rate → p95 ms | limit of a task | share of the limit |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &section.scenarios {
        let (limit, share) = match limits
            .filter(|_| r.scenario != "health")
            .and_then(|l| limit_for(&r.scenario, section.task_cores, l, mix))
        {
            Some((name, v)) if v > 0.0 => (
                format!("{name} {v:.0}/s"),
                // Hash-bound flows (one hash each) are compared by flows.
                format!("{:.0} %", r.per_task_flows / v * 100.0),
            ),
            _ => ("—".to_owned(), "—".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {} | {} | {} |\n",
            r.scenario,
            r.knee_load.map_or("—".to_owned(), |v| format!("{v:.0}")),
            r.per_task_rps,
            r.per_task_flows,
            r.p95_ms,
            match (r.confirm_rate, r.confirm_p95_ms) {
                (Some(rate), Some(p)) => format!(
                    "{rate:.1}/s → {p:.2}{}",
                    r.confirm_throttled_share.map_or(String::new(), |t| format!(
                        " ({:.0} % of periods throttled)",
                        t * 100.0
                    ))
                ),
                _ => "—".to_owned(),
            },
            limit,
            share
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::argon2_limit::Argon2Report;
    use crate::limits::Rs256Report;

    #[test]
    fn the_limit_is_the_cheaper_of_its_two_measurements() {
        let cost = |x: &(&str, f64)| x.1;
        assert_eq!(
            cheaper(("before", 445.0), ("after", 376.0), cost).0,
            "after"
        );
        assert_eq!(
            cheaper(("before", 376.0), ("after", 502.0), cost).0,
            "before"
        );
    }

    #[test]
    fn markdown_compares_each_scenario_with_its_limit() {
        let section = CapacitySection {
            task_cores: 0.5,
            method: "cgroup v1 cfs quota".into(),
            task_scale: 1.0,
            scenarios: vec![
                CapacityRow {
                    scenario: "login".into(),
                    knee_load: Some(2.0),
                    measured_ok_rps: 12.0,
                    p95_ms: 90.0,
                    per_task_rps: 12.0,
                    per_task_flows: 12.0,
                    confirm_rate: Some(9.6),
                    confirm_ok_rps: Some(9.6),
                    confirm_p95_ms: Some(60.0),
                    confirm_p99_ms: Some(80.0),
                    confirm_throttled_share: None,
                    note: String::new(),
                },
                CapacityRow {
                    scenario: "refresh".into(),
                    knee_load: None,
                    measured_ok_rps: 100.0,
                    p95_ms: 5.0,
                    per_task_rps: 100.0,
                    per_task_flows: 100.0,
                    confirm_rate: None,
                    confirm_ok_rps: None,
                    confirm_p95_ms: None,
                    confirm_p99_ms: None,
                    confirm_throttled_share: None,
                    note: String::new(),
                },
            ],
        };
        let limits = Limits {
            argon2: Some(Argon2Report {
                cores: 2,
                threads: 2,
                m_cost_kib: 19456,
                t_cost: 2,
                p_cost: 1,
                reuse_memory: false,
                single_hash_ms: 80.0,
                parallel_hash_ms: 90.0,
                single_cpu_hash_ms: 40.0,
                parallel_cpu_hash_ms: 45.0,
                parallel_hash_p95_ms: 50.0,
                hashes: 10,
                elapsed_s: 1.0,
                measured_hps: 44.0,
                limit_hps: 44.4,
            }),
            rs256: None,
            health: None,
        };
        let md = markdown(&section, Some(&limits), &Mix::default());
        // Half a core over 40 ms per hash: 12.5 hashes/s; 12 is 96 %.
        assert!(
            md.contains(
                "| login | 2 | 12.0 | 12.0 | 90.00 | 9.6/s → 60.00 | Argon2id 12/s | 96 % |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| refresh | — | 100.0 | 100.0 | 5.00 | — | — | — |"),
            "{md}"
        );
        // The mix: 10 % of its iterations hash at 12.5/s, 90 % run at 1000/s.
        let limits = Limits {
            health: Some(HealthLimit {
                concurrency: 8,
                ok_rps: 1000.0,
                p95_ms: 1.0,
            }),
            rs256: Some(Rs256Report {
                cores: 2,
                threads: 2,
                single_sign_us: 1000.0,
                parallel_sign_us: 1000.0,
                single_cpu_sign_us: 500.0,
                parallel_cpu_sign_us: 500.0,
                signatures: 1,
                elapsed_s: 1.0,
                measured_sps: 2000.0,
                limit_sps: 4000.0,
                per_core_sps: 2000.0,
            }),
            ..limits
        };
        let mix: Mix = "me=70,refresh=20,login=8,register=2".parse().unwrap();
        let (_, l) = limit_for("mix", 0.5, &limits, &mix).unwrap();
        // 1 / (0.7/1000 + 0.2/1000 + 0.1/12.5) = 112.4
        assert!((l - 112.4).abs() < 0.1, "{l}");
    }
}
