//! A measuring session: the servers (started here, or an external target), the
//! monitor, the mail, the users, the progress line, and the report every run is
//! recorded into. `run`, `ramp`, `bench` and `capacity` are sequences of runs on
//! one session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{self, User, UsersFile};
use crate::knee::{self, KneeRule, Step};
use crate::launch::{Backend, CpuRequest, Fleet, FleetOpts};
use crate::mailbox::{self, Mailbox, SourceGuard};
use crate::monitor::Monitor;
use crate::progress::{Printer, Progress};
use crate::report::{DatabaseInfo, FullReport, RampSection, RampStep, RedisSizes, RunSection};
use crate::run::{self, Mix, Model, RunOpts, Scenario};
use crate::setup::{self, PrepareOpts};
use crate::target::BaseUrl;

/// Where mail is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MailSource {
    /// Files for the embedded default, the SMTP sink for PostgreSQL + Redis.
    Auto,
    /// The `.txt`/`.eml` files the server writes under DATA_DIR/mail.
    Files,
    /// An SMTP sink of the harness on 127.0.0.1.
    Smtp,
}

#[derive(Debug, Clone)]
pub struct EnvOpts {
    /// Existing servers to measure instead of starting them (checked base URLs).
    pub targets: Vec<BaseUrl>,
    pub backend: Backend,
    pub instances: usize,
    pub cpu: CpuRequest,
    pub server_bin: PathBuf,
    pub mail: MailSource,
    /// Mail files of an external target (embedded mode), if readable here.
    pub external_mail_dir: Option<PathBuf>,
    pub keep: bool,
    pub db_pool_size: u32,
    pub statsd: bool,
    /// Plain accounts to register, and accounts with email codes on.
    pub users: usize,
    pub otp_users: usize,
    /// Accounts that exist already (skips registration).
    pub users_file: Option<PathBuf>,
    pub client_threads: usize,
    pub timeout: Duration,
    pub extra_env: Vec<(String, String)>,
    pub progress: bool,
}

pub struct Env {
    pub report: FullReport,
    pub targets: Vec<BaseUrl>,
    pub users: Vec<User>,
    pub otp_users: Vec<User>,
    pub mailbox: Option<Arc<Mailbox>>,
    pub client_threads: usize,
    pub timeout: Duration,
    monitor: Arc<Monitor>,
    progress: Arc<Progress>,
    printer: Option<Printer>,
    _mail_source: Option<SourceGuard>,
    /// Dropped last: stops the servers and removes what they made.
    fleet: Option<Fleet>,
}

/// Common knobs of one run within a session.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub scenario: Scenario,
    pub model: Model,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub mix: Mix,
}

impl Env {
    pub fn start(opts: &EnvOpts, kind: &str, title: String) -> Result<Self, String> {
        let mut report = FullReport::new(kind, title);
        let monitor = Arc::new(Monitor::start(
            Duration::from_millis(500),
            opts.statsd && opts.targets.is_empty(),
        )?);
        let mailbox = Mailbox::new();
        let mut mail_source = None;
        let mut fleet = None;
        let targets;
        if opts.targets.is_empty() {
            let use_smtp = match opts.mail {
                MailSource::Smtp => true,
                MailSource::Files => false,
                MailSource::Auto => opts.backend != Backend::Embedded,
            };
            let smtp_port = if use_smtp {
                let (port, guard) = mailbox::start_smtp_sink(Arc::clone(&mailbox))?;
                mail_source = Some(guard);
                Some(port)
            } else {
                None
            };
            eprintln!(
                "starting {} instance(s) of {} on {}…",
                opts.instances,
                opts.server_bin.display(),
                opts.backend.name()
            );
            let f = Fleet::start(&FleetOpts {
                server_bin: opts.server_bin.clone(),
                backend: opts.backend.clone(),
                instances: opts.instances,
                cpu: opts.cpu,
                statsd_port: monitor.statsd_port,
                smtp_port,
                db_pool_size: opts.db_pool_size,
                extra_env: opts.extra_env.clone(),
                keep: opts.keep,
                ready_timeout: Duration::from_secs(60),
            })?;
            if !use_smtp {
                mail_source = Some(mailbox::watch_mail_dir(
                    f.mail_dir.clone(),
                    Arc::clone(&mailbox),
                    true,
                )?);
            }
            for (i, inst) in f.instances.iter().enumerate() {
                monitor.watch(&format!("suma-auth #{i}"), inst.pid);
            }
            targets = f.bases();
            report.setup.backend = f.backend.clone();
            report.setup.cpu = Some(f.confinement.clone());
            report.setup.task_scale = f.confinement.task_scale;
            report.setup.ready_ms = f.ready_ms.clone();
            report.setup.mail = if use_smtp { "smtp" } else { "files" }.into();
            report.setup.server_bin = opts.server_bin.display().to_string();
            if f.pg_database().is_some() {
                report.database = Some(DatabaseInfo {
                    max_connections: f.pg_max_connections(),
                    pool_size: f.db_pool_size,
                    instances: f.instances.len(),
                });
            }
            for (i, ms) in f.ready_ms.iter().enumerate() {
                eprintln!(
                    "  instance {i} at {} ready after {ms:.0} ms",
                    f.instances[i].base
                );
            }
            fleet = Some(f);
        } else {
            targets = opts.targets.clone();
            report.setup.backend = "external".into();
            report.setup.mail = match &opts.external_mail_dir {
                Some(dir) => {
                    mail_source = Some(mailbox::watch_mail_dir(
                        dir.clone(),
                        Arc::clone(&mailbox),
                        true,
                    )?);
                    "files".into()
                }
                None => "none".into(),
            };
        }
        report.setup.instances = targets.len();
        report.setup.targets = targets.iter().map(|t| t.as_str().to_owned()).collect();
        report.setup.client_threads = opts.client_threads;
        let has_mail = mail_source.is_some();

        let progress = Progress::new();
        let mut env = Env {
            report,
            targets,
            users: Vec::new(),
            otp_users: Vec::new(),
            mailbox: has_mail.then_some(mailbox),
            client_threads: opts.client_threads,
            timeout: opts.timeout,
            monitor,
            progress,
            printer: None,
            _mail_source: mail_source,
            fleet,
        };
        if let Err(e) = env.prepare_users(opts) {
            return Err(match env.fleet.as_mut().and_then(Fleet::exits) {
                Some(exits) => format!("{e}\n{exits}"),
                None => e,
            });
        }
        if opts.progress {
            env.printer = Some(Printer::start(
                Arc::clone(&env.progress),
                env.fleet.as_ref().map(|_| Arc::clone(&env.monitor)),
            ));
        }
        Ok(env)
    }

    fn prepare_users(&mut self, opts: &EnvOpts) -> Result<(), String> {
        if let Some(path) = &opts.users_file {
            self.users = UsersFile::load(path)?.usable();
            if self.users.is_empty() {
                return Err(format!("{} holds no verified user", path.display()));
            }
        }
        let to_register = if opts.users_file.is_some() {
            0
        } else {
            opts.users
        };
        if to_register + opts.otp_users == 0 {
            return Ok(());
        }
        let Some(mailbox) = self.mailbox.clone() else {
            return Err(
                "registering users needs the mail: pass --users users.json for an external target"
                    .into(),
            );
        };
        let prepared = setup::prepare(&PrepareOpts {
            base: self.targets[0].clone(),
            mailbox,
            users: to_register,
            otp_users: opts.otp_users,
            concurrency: 4,
            mail_timeout: Duration::from_secs(60),
            timeout: self.timeout,
        })?;
        if to_register > 0 {
            self.users = prepared.users;
            if self.users.is_empty() {
                return Err("no user could be registered and verified".into());
            }
        }
        self.otp_users = prepared.otp_users;
        if self.otp_users.len() < opts.otp_users {
            return Err(format!(
                "only {} of {} accounts with email codes could be prepared",
                self.otp_users.len(),
                opts.otp_users
            ));
        }
        self.report.setup.users = self.users.len();
        self.report.setup.otp_users = self.otp_users.len();
        eprintln!(
            "setup: {} users, {} with email codes",
            self.users.len(),
            self.otp_users.len()
        );
        Ok(())
    }

    /// Runs one spec and records it; returns its index in the report.
    pub fn run(
        &mut self,
        label: &str,
        spec: &RunSpec,
        sessions: &mut Vec<Option<api::TokenPair>>,
    ) -> Result<usize, String> {
        self.progress.set_label(label);
        let t_start = self.monitor.now_s();
        let cpu_before = self.fleet.as_ref().and_then(Fleet::cpu_stat);
        let outcome = run::run_full(&RunOpts {
            targets: self.targets.clone(),
            scenario: spec.scenario,
            model: spec.model,
            concurrency: spec.concurrency,
            duration: spec.duration,
            warmup: spec.warmup,
            max_requests: spec.max_requests,
            client_threads: self.client_threads,
            timeout: self.timeout,
            users: self.users.clone(),
            otp_users: self.otp_users.clone(),
            mix: spec.mix.clone(),
            mailbox: self.mailbox.clone(),
            progress: Some(Arc::clone(&self.progress)),
            sessions: std::mem::take(sessions),
        });
        if let Some(exits) = self.fleet.as_mut().and_then(Fleet::exits) {
            return Err(format!("during {label}: {exits}"));
        }
        let outcome = outcome?;
        *sessions = outcome.sessions;
        let throttling = match (cpu_before, self.fleet.as_ref().and_then(Fleet::cpu_stat)) {
            (Some((p0, t0, ns0)), Some((p1, t1, ns1))) if p1 > p0 => Some((
                (t1.saturating_sub(t0)) as f64 / (p1 - p0) as f64,
                ns1.saturating_sub(ns0) as f64 / 1e9,
            )),
            _ => None,
        };
        // The window opened after the sessions were set up and the warm-up ran:
        // place it on the monitor's clock from its end.
        let t_end = self.monitor.now_s();
        let t0_s = (t_end - outcome.report.duration_s).max(t_start);
        self.report.runs.push(RunSection {
            label: label.to_owned(),
            scenario: spec.scenario.name().to_owned(),
            model: spec.model,
            concurrency: spec.concurrency,
            mix: (spec.scenario == Scenario::Mix).then(|| spec.mix.describe()),
            t0_s,
            summary: outcome.report,
            details: outcome.details,
            throttled_share: throttling.map(|t| (t.0 * 1000.0).round() / 1000.0),
            throttled_s: throttling.map(|t| (t.1 * 1000.0).round() / 1000.0),
        });
        Ok(self.report.runs.len() - 1)
    }

    /// A ramp: runs each load in turn until the step after the knee. Closed model:
    /// loads are worker counts; open: arrival rates (with `connections`). With
    /// `confirm`, then runs the open model at that share of the knee's throughput.
    #[allow(clippy::too_many_arguments)]
    pub fn ramp(
        &mut self,
        base: &RunSpec,
        loads: &[f64],
        open: bool,
        connections: usize,
        rule: &KneeRule,
        confirm: Option<f64>,
        step_pause: Duration,
    ) -> Result<RampSection, String> {
        let mut steps: Vec<RampStep> = Vec::new();
        let mut knee_steps: Vec<Step> = Vec::new();
        let mut sessions = Vec::new();
        let mut found = None;
        for &load in loads {
            let (model, concurrency, label) = if open {
                (
                    Model::Open { rate: load },
                    connections,
                    format!("{} @{load:.0}/s", base.scenario.name()),
                )
            } else {
                let c = (load.round() as usize).max(1);
                (Model::Closed, c, format!("{} c={c}", base.scenario.name()))
            };
            let spec = RunSpec {
                model,
                concurrency,
                ..base.clone()
            };
            let idx = self.run(&label, &spec, &mut sessions)?;
            let s = &self.report.runs[idx].summary;
            let iterations = self.report.runs[idx].details.iteration_ok_rps;
            let error_share = if s.requests > 0 {
                s.errors as f64 / s.requests as f64
            } else {
                1.0
            };
            eprintln!(
                "  {label}: {:.1} ok/s, p95 {:.2} ms, p99 {:.2} ms, errors {}",
                s.ok_rps, s.p95_ms, s.p99_ms, s.errors
            );
            steps.push(RampStep {
                load,
                ok_rps: s.ok_rps,
                iteration_ok_rps: iterations,
                p50_ms: s.p50_ms,
                p95_ms: s.p95_ms,
                p99_ms: s.p99_ms,
                error_share,
                run: idx,
            });
            knee_steps.push(Step {
                load,
                // The open model offers iterations: compare like with like.
                ok_rps: if open { iterations } else { s.ok_rps },
                p95_ms: s.p95_ms,
                error_share,
            });
            found = knee::find_knee(&knee_steps, open, rule);
            if found.is_some() {
                break;
            }
            std::thread::sleep(step_pause);
        }
        let knee_step = found.map(|k| &steps[k.index]);
        let mut section = RampSection {
            scenario: base.scenario.name().to_owned(),
            model: if open { "open" } else { "closed" }.into(),
            knee: found,
            knee_load: knee_step.map(|s| s.load),
            knee_ok_rps: knee_step.map(|s| s.ok_rps),
            knee_p95_ms: knee_step.map(|s| s.p95_ms),
            knee_reason: found.map(|k| k.reason.describe().to_owned()),
            steps,
            confirm_run: None,
            confirm_share: None,
        };
        let knee_iterations = found.map(|k| section.steps[k.index].iteration_ok_rps);
        if let (Some(share), Some(rps)) = (confirm, knee_iterations) {
            let rate = (rps * share).max(0.5);
            std::thread::sleep(step_pause);
            // Enough connections to absorb jitter at the knee's concurrency
            // without piling far more requests on the server than it had there.
            let knee_workers = if open {
                connections
            } else {
                section.knee_load.unwrap_or(1.0).round() as usize
            };
            let spec = RunSpec {
                model: Model::Open { rate },
                concurrency: (4 * knee_workers).max(16).min(connections.max(1)),
                ..base.clone()
            };
            let label = format!(
                "{} @{rate:.1}/s ({:.0} % of the knee)",
                base.scenario.name(),
                share * 100.0
            );
            let idx = self.run(&label, &spec, &mut sessions)?;
            let s = &self.report.runs[idx].summary;
            eprintln!(
                "  {label}: {:.1} ok/s, p95 {:.2} ms, p99 {:.2} ms, errors {}",
                s.ok_rps, s.p95_ms, s.p99_ms, s.errors
            );
            section.confirm_run = Some(idx);
            section.confirm_share = Some(share);
        }
        Ok(section)
    }

    /// Sizes the Redis keys the run created (PostgreSQL + Redis only): creates a
    /// few sessions and lockout windows on purpose, then `MEMORY USAGE` on them.
    pub fn measure_redis(&mut self) -> Result<(), String> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let Some(conn) = fleet.redis() else {
            return Ok(());
        };
        let mut redis = conn?;
        let db = fleet.redis_db().unwrap_or(0);
        // Sessions in use, sessions ended (a revocation is kept for the token
        // lifetime) and lockout windows after one failed attempt.
        let users: Vec<User> = self.users.iter().take(10).cloned().collect();
        let base = self.targets[0].clone();
        let timeout = self.timeout;
        actix_rt::System::new().block_on(async move {
            let client = api::client(timeout);
            for (i, u) in users.iter().enumerate() {
                if let Ok(pair) = api::login(&client, &base, u).await {
                    let bearer = format!("Bearer {}", pair.access_token);
                    if let Ok(mut r) = client
                        .get(base.join(api::ME))
                        .insert_header(("Authorization", bearer.clone()))
                        .send()
                        .await
                    {
                        let _ = r.body().await;
                    }
                    if i % 2 == 1 {
                        if let Ok(mut r) = client
                            .post(base.join(api::LOGOUT))
                            .insert_header(("Authorization", bearer))
                            .content_type("application/json")
                            .send_body("{}")
                            .await
                        {
                            let _ = r.body().await;
                        }
                    }
                }
                let wrong = User {
                    password: format!("{} but wrong", u.password),
                    ..u.clone()
                };
                let _ =
                    api::post_json(&client, &base.join(api::LOGIN), api::login_body(&wrong)).await;
            }
        });
        let mut sizes = RedisSizes {
            db,
            ..RedisSizes::default()
        };
        let all = redis.scan("*", 200_000)?;
        sizes.keys_total = all.len() as u64;
        let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
        for k in &all {
            let kind: String = k.splitn(3, ':').take(2).collect::<Vec<_>>().join(":");
            *kinds.entry(kind).or_insert(0) += 1;
        }
        sizes.key_kinds = kinds.into_iter().collect();
        let mut average = |pattern: &str| -> Result<(usize, Option<f64>), String> {
            let keys = redis.scan(pattern, 200)?;
            let mut sum = 0i64;
            let mut n = 0usize;
            for k in &keys {
                if let Some(b) = redis.memory_usage(k)? {
                    sum += b;
                    n += 1;
                }
            }
            Ok((n, (n > 0).then(|| sum as f64 / n as f64)))
        };
        (sizes.session_keys_sampled, sizes.bytes_per_session) = average("*:session:*")?;
        (sizes.lockout_keys_sampled, sizes.bytes_per_lockout_key) = average("*:lockout:*")?;
        self.report.redis = Some(sizes);
        Ok(())
    }

    /// Stops the progress line, the monitor and the servers; writes the report.
    pub fn finish(mut self, out_dir: &std::path::Path, stem: &str) -> Result<FullReport, String> {
        self.printer = None;
        if let Err(e) = self.measure_redis() {
            self.report
                .notes
                .push(format!("Redis key sizes not measured: {e}"));
        }
        let data = self.monitor.finish();
        if self.fleet.is_some() {
            self.report.server = Some(data);
        }
        self.report.machine.load_after = crate::monitor::load_average();
        // Stop the servers before writing, so nothing competes with the writing.
        self.fleet = None;
        let (json, html) = self.report.write(out_dir, stem)?;
        eprintln!("report: {} and {}", json.display(), html.display());
        Ok(self.report.clone())
    }

    /// Drops the progress line (before printing results to the terminal).
    pub fn quiet(&mut self) {
        self.printer = None;
    }
}
