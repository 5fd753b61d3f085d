//! The measured loops.
//!
//! Closed model: C workers, each with its own keep-alive `awc::Client`, each sending
//! one request (or one flow, for `register` and `login_otp`) at a time until the
//! deadline or the request budget runs out.
//!
//! Open model: requests are due at a constant rate (see `schedule.rs`); C
//! connections take the next due slot when they are free, and each request's
//! latency is measured from the moment it was due, so a slow server cannot hide
//! the requests it delayed.
//!
//! With several targets (instances), every worker sends its requests to them in
//! turn: the harness's own round-robin.
//!
//! Workers are spread over `client_threads` OS threads, each running its own actix
//! `System` (a single-threaded runtime); every worker is a task on its thread's
//! System.

use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use awc::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use awc::http::{Method, StatusCode, Uri};
use awc::{Client, FrozenClientRequest};
use clap::ValueEnum;
use serde::Serialize;

use crate::api::{self, TokenPair, User};
use crate::mailbox::{Mail, Mailbox, MAIL_WAIT};
use crate::progress::Progress;
use crate::schedule::{self, Claim, Schedule};
use crate::stats::{self, Details, Op, Report, Tally};
use crate::target::BaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// POST /register, then the verification link from the mail and POST /verify-email.
    Register,
    /// POST /api/v1/auth/login (one Argon2id verification per request).
    Login,
    /// Login of an account with email codes on: POST /login (challenge), the code
    /// from the mail, POST /otp/verify.
    LoginOtp,
    /// POST /api/v1/auth/refresh, carrying the new refresh token forward each time.
    Refresh,
    /// GET /api/v1/auth/me with a Bearer access token (each worker signs in once first).
    Me,
    /// A weighted mix of the others (--mix).
    Mix,
    /// GET /health: the framework's ceiling on this machine.
    Health,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Register => "register",
            Scenario::Login => "login",
            Scenario::LoginOtp => "login_otp",
            Scenario::Refresh => "refresh",
            Scenario::Me => "me",
            Scenario::Mix => "mix",
            Scenario::Health => "health",
        }
    }

    /// The actions the scenario performs.
    fn actions(self, mix: &Mix) -> Vec<Action> {
        match self {
            Scenario::Register => vec![Action::Register],
            Scenario::Login => vec![Action::Login],
            Scenario::LoginOtp => vec![Action::LoginOtp],
            Scenario::Refresh => vec![Action::Refresh],
            Scenario::Me => vec![Action::Me],
            Scenario::Health => vec![Action::Health],
            Scenario::Mix => mix.weights.iter().map(|(a, _)| *a).collect(),
        }
    }

    pub fn needs_users(self, mix: &Mix) -> bool {
        self.actions(mix)
            .iter()
            .any(|a| matches!(a, Action::Login | Action::Refresh | Action::Me))
    }

    pub fn needs_otp_users(self, mix: &Mix) -> bool {
        self.actions(mix).contains(&Action::LoginOtp)
    }

    pub fn needs_mail(self, mix: &Mix) -> bool {
        self.actions(mix)
            .iter()
            .any(|a| matches!(a, Action::Register | Action::LoginOtp))
    }

    fn needs_session(self, mix: &Mix) -> bool {
        self.actions(mix)
            .iter()
            .any(|a| matches!(a, Action::Me | Action::Refresh))
    }
}

/// One iteration of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Register,
    Login,
    LoginOtp,
    Refresh,
    Me,
    Health,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::LoginOtp => "login_otp",
            Action::Refresh => "refresh",
            Action::Me => "me",
            Action::Health => "health",
        }
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "register" => Ok(Action::Register),
            "login" => Ok(Action::Login),
            "login_otp" | "login-otp" => Ok(Action::LoginOtp),
            "refresh" => Ok(Action::Refresh),
            "me" => Ok(Action::Me),
            "health" => Ok(Action::Health),
            other => Err(format!(
                "unknown mix entry {other:?} (register, login, login_otp, refresh, me, health)"
            )),
        }
    }
}

/// Weights of the mix's actions: each iteration picks one at random, in
/// proportion to its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub weights: Vec<(Action, u32)>,
}

impl Default for Mix {
    /// Mostly token checks and refreshes, some logins, few registrations (the
    /// deployment's `traffic_mix` default).
    fn default() -> Self {
        Self {
            weights: vec![
                (Action::Me, 70),
                (Action::Refresh, 20),
                (Action::Login, 8),
                (Action::Register, 2),
            ],
        }
    }
}

impl FromStr for Mix {
    type Err = String;
    /// `me=70,refresh=20,login=8,register=2`
    fn from_str(s: &str) -> Result<Self, String> {
        let mut weights = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not name=weight"))?;
            let action: Action = name.parse()?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("mix weight {w:?} is not a whole number"))?;
            if weights.iter().any(|(a, _)| *a == action) {
                return Err(format!("{} appears twice in the mix", action.name()));
            }
            if w > 0 {
                weights.push((action, w));
            }
        }
        if weights.is_empty() {
            return Err("the mix needs at least one entry with a positive weight".into());
        }
        Ok(Self { weights })
    }
}

impl Mix {
    pub fn total(&self) -> u32 {
        self.weights.iter().map(|(_, w)| *w).sum()
    }

    /// The action for a number in `0..total()`.
    pub fn pick(&self, r: u32) -> Action {
        let mut acc = 0;
        for (a, w) in &self.weights {
            acc += w;
            if r < acc {
                return *a;
            }
        }
        self.weights.last().map_or(Action::Me, |(a, _)| *a)
    }

    pub fn describe(&self) -> String {
        self.weights
            .iter()
            .map(|(a, w)| format!("{}={w}", a.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Model {
    /// Fixed concurrency: each worker sends its next request when the previous
    /// one is answered.
    Closed,
    /// Constant arrival rate (requests per second).
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct RunOpts {
    /// One or more servers; requests go to them in turn.
    pub targets: Vec<BaseUrl>,
    pub scenario: Scenario,
    pub model: Model,
    /// Workers (closed model) or connections (open model).
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub client_threads: usize,
    pub timeout: Duration,
    pub users: Vec<User>,
    /// Accounts with email codes on, for `login_otp`; one per worker at least.
    pub otp_users: Vec<User>,
    pub mix: Mix,
    /// Where mail arrives (needed by `register` and `login_otp`; without it
    /// `register` does not verify).
    pub mailbox: Option<Arc<Mailbox>>,
    pub progress: Option<Arc<Progress>>,
    /// Sessions of a previous run to carry on with (workers i < len).
    pub sessions: Vec<Option<TokenPair>>,
}

#[cfg(test)]
impl RunOpts {
    /// Defaults for everything but the target and the scenario.
    pub fn new(targets: Vec<BaseUrl>, scenario: Scenario) -> Self {
        Self {
            targets,
            scenario,
            model: Model::Closed,
            concurrency: 8,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            max_requests: 5_000_000,
            client_threads: 1,
            timeout: Duration::from_secs(30),
            users: Vec::new(),
            otp_users: Vec::new(),
            mix: Mix::default(),
            mailbox: None,
            progress: None,
            sessions: Vec::new(),
        }
    }
}

/// A run's figures, and the sessions its workers ended with (for the next step
/// of a ramp).
#[derive(Debug)]
pub struct RunOutcome {
    pub report: Report,
    pub details: Details,
    pub sessions: Vec<Option<TokenPair>>,
}

/// Everything a worker needs, all `Send` so it can move to its thread.
#[derive(Debug, Clone)]
struct WorkerInit {
    index: usize,
    session: Option<TokenPair>,
}

#[derive(Debug, Clone)]
struct Shared {
    scenario: Scenario,
    mix: Mix,
    targets: Vec<BaseUrl>,
    users: Arc<Vec<User>>,
    otp_users: Arc<Vec<User>>,
    login_bodies: Arc<Vec<String>>,
    otp_login_bodies: Arc<Vec<String>>,
    concurrency: usize,
    timeout: Duration,
    start: Instant,
    measure_start: Instant,
    deadline: Instant,
    schedule: Option<Schedule>,
    next_slot: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    max_requests: u64,
    mailbox: Option<Arc<Mailbox>>,
    progress: Option<Arc<Progress>>,
    /// Distinguishes this run's registrations from every other run's.
    tag: String,
}

/// Runs one scenario and returns its summary (see [`run_full`]).
#[cfg(test)]
pub fn run(opts: &RunOpts) -> Result<Report, String> {
    run_full(opts).map(|o| o.report)
}

pub fn run_full(opts: &RunOpts) -> Result<RunOutcome, String> {
    if opts.concurrency == 0 {
        return Err("--concurrency must be at least 1".to_owned());
    }
    if opts.targets.is_empty() {
        return Err("no target to send requests to".to_owned());
    }
    let mix = &opts.mix;
    if opts.scenario.needs_users(mix) && opts.users.is_empty() {
        return Err(format!(
            "scenario {} needs verified users: run `setup` and pass --users users.json",
            opts.scenario.name()
        ));
    }
    if opts.scenario.needs_otp_users(mix) {
        if opts.otp_users.len() < opts.concurrency {
            return Err(format!(
                "login_otp needs an account with email codes on per worker: {} for {} workers",
                opts.otp_users.len(),
                opts.concurrency
            ));
        }
        if opts.mailbox.is_none() {
            return Err("login_otp reads the sign-in codes from mail: it needs the mail (the harness's own server, or --mail-dir)".into());
        }
    }
    let schedule = match opts.model {
        Model::Closed => None,
        Model::Open { rate } => Some(Schedule::new(rate)?),
    };
    let threads = opts.client_threads.clamp(1, opts.concurrency);
    let users = Arc::new(opts.users.clone());

    // Sessions for me/refresh are opened before the clock starts.
    let mut sessions: Vec<Option<TokenPair>> = opts.sessions.clone();
    sessions.resize(opts.concurrency, None);
    if opts.scenario.needs_session(mix) {
        open_sessions(opts, &mut sessions)?;
    }

    let start = Instant::now();
    let measure_start = start + opts.warmup;
    let shared = Shared {
        scenario: opts.scenario,
        mix: opts.mix.clone(),
        targets: opts.targets.clone(),
        login_bodies: Arc::new(users.iter().map(api::login_body).collect()),
        otp_login_bodies: Arc::new(opts.otp_users.iter().map(api::login_body).collect()),
        users,
        otp_users: Arc::new(opts.otp_users.clone()),
        concurrency: opts.concurrency,
        timeout: opts.timeout,
        start,
        measure_start,
        deadline: measure_start + opts.duration,
        schedule,
        next_slot: Arc::new(AtomicU64::new(0)),
        sent: Arc::new(AtomicU64::new(0)),
        max_requests: opts.max_requests,
        mailbox: opts.mailbox.clone(),
        progress: opts.progress.clone(),
        tag: crate::launch::random_tag(),
    };

    let mut per_thread: Vec<Vec<WorkerInit>> = vec![Vec::new(); threads];
    for (index, session) in sessions.into_iter().enumerate() {
        per_thread[index % threads].push(WorkerInit { index, session });
    }

    let mut handles = Vec::with_capacity(threads);
    for (t, inits) in per_thread.into_iter().enumerate() {
        let shared = shared.clone();
        let handle = thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_thread(shared, inits))
            .map_err(|e| format!("cannot start a client thread: {e}"))?;
        handles.push(handle);
    }
    let mut tally = Tally::default();
    let mut first_err = None;
    let mut ended: Vec<(usize, Option<TokenPair>)> = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok((t, s))) => {
                tally.merge(t);
                ended.extend(s);
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some("a client thread panicked".to_owned())),
        }
    }
    let window = Instant::now().saturating_duration_since(measure_start);
    if let Some(e) = first_err {
        return Err(e);
    }
    ended.sort_by_key(|(i, _)| *i);
    let details = stats::details(&tally, window);
    let report = Report::from_tally(
        opts.scenario.name(),
        opts.concurrency,
        threads,
        window,
        tally,
    );
    Ok(RunOutcome {
        report,
        details,
        sessions: ended.into_iter().map(|(_, s)| s).collect(),
    })
}

/// Signs in every worker that has no session yet (worker i as user i mod N), a
/// few at a time.
fn open_sessions(opts: &RunOpts, sessions: &mut [Option<TokenPair>]) -> Result<(), String> {
    let missing: Vec<usize> = sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| i)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let users = opts.users.clone();
    let base = opts.targets[0].clone();
    let timeout = opts.timeout;
    let opened: Vec<(usize, TokenPair)> = actix_rt::System::new().block_on(async move {
        let client = api::client(timeout);
        let mut opened = Vec::with_capacity(missing.len());
        // Sign in in small batches so a bounded hashing pool is not overrun.
        for batch in missing.chunks(4) {
            let futures = batch.iter().map(|&i| {
                let user = &users[i % users.len()];
                api::login(&client, &base, user)
            });
            let results = futures_util::future::join_all(futures).await;
            for (&i, result) in batch.iter().zip(results) {
                opened.push((i, result?));
            }
        }
        Ok::<_, String>(opened)
    })?;
    for (i, pair) in opened {
        sessions[i] = Some(pair);
    }
    Ok(())
}

type ThreadResult = Result<(Tally, Vec<(usize, Option<TokenPair>)>), String>;

fn run_thread(shared: Shared, inits: Vec<WorkerInit>) -> ThreadResult {
    actix_rt::System::new().block_on(async move {
        let shared = Rc::new(shared);
        let mut handles = Vec::with_capacity(inits.len());
        for init in inits {
            let index = init.index;
            let shared = Rc::clone(&shared);
            handles.push((
                index,
                actix_rt::spawn(async move { Worker::new(shared, init)?.run().await }),
            ));
        }
        let mut tally = Tally::default();
        let mut sessions = Vec::new();
        for (index, h) in handles {
            let (t, s) = h
                .await
                .map_err(|e| format!("a worker task failed: {e}"))??;
            tally.merge(t);
            sessions.push((index, s));
        }
        Ok((tally, sessions))
    })
}

/// Below this, the open model does not sleep until a slot is due (tokio's timer
/// works in whole milliseconds).
const TIMER_GRANULARITY: Duration = Duration::from_millis(1);

/// Where an open-model request's latency starts. A connection that was still busy
/// when the slot fell due kept the request waiting for the server: the latency
/// counts from the due time (no coordinated omission). A connection that was free
/// before it only waited for the timetable, and the timer's own lateness is the
/// generator's, not the server's: the latency counts from the send.
pub fn origin_of(due: Instant, free_at: Instant, sent: Instant) -> Instant {
    if free_at >= due {
        due
    } else {
        sent
    }
}

fn status_label(status: StatusCode) -> String {
    format!("status_{}", status.as_u16())
}

fn send_error_label(e: &awc::error::SendRequestError) -> String {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => "timeout",
        E::Connect(_) => "connect",
        E::Send(_) => "send",
        E::Response(_) => "response_parse",
        _ => "transport",
    }
    .to_owned()
}

/// Sends a frozen request (optionally with a body) and reads the whole answer, so the
/// connection goes back to the keep-alive pool.
async fn exchange(
    frozen: &FrozenClientRequest,
    body: Option<String>,
) -> Result<(StatusCode, Vec<u8>), String> {
    let want_body = body.is_some();
    let sent = match body {
        Some(b) => frozen.send_body(b).await,
        None => frozen.send().await,
    };
    let mut resp = sent.map_err(|e| send_error_label(&e))?;
    let bytes = resp
        .body()
        .limit(api::BODY_LIMIT)
        .await
        .map_err(|_| "body_read".to_owned())?;
    // Only the POST answers (token pairs) are looked at; GET bodies are just drained.
    let body = if want_body {
        bytes.to_vec()
    } else {
        Vec::new()
    };
    Ok((resp.status(), body))
}

fn freeze(
    client: &Client,
    method: Method,
    uri: &Uri,
    auth: Option<&HeaderValue>,
    json: bool,
) -> Result<FrozenClientRequest, String> {
    let mut req = client.request(method, uri.clone());
    if let Some(v) = auth {
        req = req.insert_header((AUTHORIZATION, v.clone()));
    }
    if json {
        req = req.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
    }
    req.freeze()
        .map_err(|e| format!("cannot build request for {uri}: {e}"))
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "access token is not a valid header value".to_owned())
}

/// The frozen requests of one target.
struct TargetReqs {
    login: FrozenClientRequest,
    refresh: FrozenClientRequest,
    health: FrozenClientRequest,
    register: FrozenClientRequest,
    verify: FrozenClientRequest,
    otp_verify: FrozenClientRequest,
    me_uri: Uri,
    /// Rebuilt when the worker's access token changes.
    me: Option<FrozenClientRequest>,
}

/// A worker's answer to "what happened": success, or an error label; plus
/// whether the worker must sign in again.
struct Step {
    outcome: Result<(), String>,
    relogin: bool,
}

impl Step {
    fn ok() -> Self {
        Self {
            outcome: Ok(()),
            relogin: false,
        }
    }

    fn err(label: impl Into<String>) -> Self {
        Self {
            outcome: Err(label.into()),
            relogin: false,
        }
    }

    fn relogin(label: impl Into<String>) -> Self {
        Self {
            outcome: Err(label.into()),
            relogin: true,
        }
    }
}

struct Worker {
    shared: Rc<Shared>,
    index: usize,
    client: Client,
    reqs: Vec<TargetReqs>,
    next_target: usize,
    session: Option<TokenPair>,
    tally: Tally,
    /// login: users i, i+C, i+2C, … (mod N), spreading load over accounts.
    next_user: usize,
    next_otp_user: usize,
    registered: u64,
    rng: u64,
}

impl Worker {
    fn new(shared: Rc<Shared>, init: WorkerInit) -> Result<Self, String> {
        let client = api::client(shared.timeout);
        let mut reqs = Vec::with_capacity(shared.targets.len());
        for base in &shared.targets {
            let post = |path: &str| freeze(&client, Method::POST, &base.uri(path)?, None, true);
            reqs.push(TargetReqs {
                login: post(api::LOGIN)?,
                refresh: post(api::REFRESH)?,
                register: post(api::REGISTER)?,
                verify: post(api::VERIFY_EMAIL)?,
                otp_verify: post(api::OTP_VERIFY)?,
                health: freeze(&client, Method::GET, &base.uri(api::HEALTH)?, None, false)?,
                me_uri: base.uri(api::ME)?,
                me: None,
            });
        }
        let seed =
            (init.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rand::random::<u64>();
        Ok(Self {
            index: init.index,
            next_user: init.index,
            next_otp_user: init.index,
            next_target: init.index,
            session: init.session,
            client,
            reqs,
            tally: Tally::default(),
            registered: 0,
            rng: seed | 1,
            shared,
        })
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn target(&mut self) -> usize {
        let t = self.next_target % self.reqs.len();
        self.next_target = self.next_target.wrapping_add(1);
        t
    }

    /// Counts one request against the budget; false when it is spent.
    fn take_budget(&self) -> bool {
        self.shared.sent.fetch_add(1, Ordering::Relaxed) < self.shared.max_requests
    }

    /// Records a request that was due (open model) or sent (closed) at `origin`.
    fn record(&mut self, op: Op, origin: Instant, outcome: &Result<(), String>) {
        let done = Instant::now();
        let start = self.shared.start;
        let latency = schedule::latency_from_due(
            origin.saturating_duration_since(start),
            done.saturating_duration_since(start),
        );
        if let Some(p) = &self.shared.progress {
            p.record(outcome.is_ok(), stats::micros(latency));
        }
        if origin >= self.shared.measure_start {
            let at = done.saturating_duration_since(self.shared.measure_start);
            self.tally.record(
                op,
                at,
                latency,
                outcome.as_ref().map(|_| ()).map_err(String::as_str),
            );
        }
    }

    async fn run(mut self) -> Result<(Tally, Option<TokenPair>), String> {
        let actions = self.shared.scenario.actions(&self.shared.mix);
        let total = self.shared.mix.total().max(1);
        loop {
            let origin = match self.shared.schedule {
                None => {
                    if Instant::now() >= self.shared.deadline {
                        break;
                    }
                    Instant::now()
                }
                Some(schedule) => {
                    let free_at = Instant::now();
                    let slot = self.shared.next_slot.fetch_add(1, Ordering::Relaxed);
                    let end = self
                        .shared
                        .deadline
                        .saturating_duration_since(self.shared.start);
                    match schedule.claim(slot, end, self.shared.max_requests) {
                        Claim::Done => break,
                        Claim::At(offset) => {
                            let due = self.shared.start + offset;
                            let early = due.saturating_duration_since(free_at);
                            // The timer wakes on whole milliseconds: a slot due
                            // within one is sent at once.
                            if early > TIMER_GRANULARITY {
                                actix_rt::time::sleep_until(tokio::time::Instant::from_std(due))
                                    .await;
                            }
                            let sent = Instant::now();
                            if due >= self.shared.measure_start {
                                let lag = schedule::send_lag(
                                    offset,
                                    sent.saturating_duration_since(self.shared.start),
                                );
                                self.tally.send_lags_us.push(stats::micros(lag));
                            }
                            origin_of(due, free_at, sent)
                        }
                    }
                }
            };
            if !self.take_budget() {
                break;
            }
            let action = if self.shared.scenario == Scenario::Mix {
                let r = u32::try_from(self.random() % u64::from(total)).unwrap_or(0);
                self.shared.mix.pick(r)
            } else {
                actions.first().copied().unwrap_or(Action::Health)
            };
            let transport_error = self.iteration(action, origin).await?;
            if transport_error && self.shared.schedule.is_none() {
                // Do not spin on a server that is down or refusing connections.
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok((self.tally, self.session))
    }

    /// One action; returns whether it ended on a transport error.
    async fn iteration(&mut self, action: Action, origin: Instant) -> Result<bool, String> {
        let (op, step) = match action {
            Action::Health => (Op::Health, self.health().await),
            Action::Login => (Op::Login, self.login().await),
            Action::Me => (Op::Me, self.me().await?),
            Action::Refresh => (Op::Refresh, self.refresh().await),
            Action::Register => return self.register(origin).await,
            Action::LoginOtp => return self.login_otp(origin).await,
        };
        self.record(op, origin, &step.outcome);
        let transport = matches!(&step.outcome, Err(l) if !l.starts_with("status_"));
        if step.relogin && Instant::now() < self.shared.deadline {
            self.relogin().await?;
        }
        Ok(transport)
    }

    async fn health(&mut self) -> Step {
        let t = self.target();
        match exchange(&self.reqs[t].health, None).await {
            Ok((StatusCode::OK, _)) => Step::ok(),
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        }
    }

    async fn login(&mut self) -> Step {
        let n = self.shared.users.len().max(1);
        let body = self.shared.login_bodies[self.next_user % n].clone();
        self.next_user = self.next_user.wrapping_add(self.shared.concurrency);
        let t = self.target();
        match exchange(&self.reqs[t].login, Some(body)).await {
            Ok((StatusCode::OK, b)) => match api::parse_token_pair(&b) {
                Ok(pair) => {
                    if self.shared.scenario == Scenario::Mix {
                        // The client carries on with its new session.
                        self.adopt(pair);
                    }
                    Step::ok()
                }
                Err(l) => Step::err(l),
            },
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        }
    }

    fn adopt(&mut self, pair: TokenPair) {
        self.session = Some(pair);
        for r in &mut self.reqs {
            r.me = None;
        }
    }

    async fn me(&mut self) -> Result<Step, String> {
        let t = self.target();
        let Some(session) = &self.session else {
            return Ok(Step::relogin("no_session"));
        };
        if self.reqs[t].me.is_none() {
            let auth = bearer(&session.access_token)?;
            let req = freeze(
                &self.client,
                Method::GET,
                &self.reqs[t].me_uri,
                Some(&auth),
                false,
            )?;
            self.reqs[t].me = Some(req);
        }
        let Some(req) = &self.reqs[t].me else {
            return Ok(Step::relogin("no_session"));
        };
        Ok(match exchange(req, None).await {
            Ok((StatusCode::OK, _)) => Step::ok(),
            Ok((s, _)) if s == StatusCode::UNAUTHORIZED => Step::relogin(status_label(s)),
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        })
    }

    async fn refresh(&mut self) -> Step {
        let Some(session) = &self.session else {
            return Step::relogin("no_session");
        };
        let body = api::refresh_body(&session.refresh_token);
        let t = self.target();
        match exchange(&self.reqs[t].refresh, Some(body)).await {
            Ok((StatusCode::OK, b)) => match api::parse_token_pair(&b) {
                Ok(pair) => {
                    self.adopt(pair);
                    Step::ok()
                }
                Err(l) => Step::relogin(l),
            },
            // A spent or revoked refresh token will not come back.
            Ok((s, _)) if s == StatusCode::UNAUTHORIZED => Step::relogin(status_label(s)),
            Ok((s, _)) => Step::err(status_label(s)),
            // The server may have rotated the token before the answer was lost:
            // start a fresh session.
            Err(l) => Step::relogin(l),
        }
    }

    /// Not measured: a new session for this worker.
    async fn relogin(&mut self) -> Result<(), String> {
        let n = self.shared.users.len();
        if n == 0 {
            return Ok(());
        }
        let user = self.shared.users[self.index % n].clone();
        let t = self.target();
        match api::login(&self.client, &self.shared.targets[t], &user).await {
            Ok(pair) => self.adopt(pair),
            Err(_) => {
                self.tally.record_error("relogin_failed");
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// POST /register; then, with a mailbox, the link of the verification mail and
    /// POST /verify-email.
    async fn register(&mut self, origin: Instant) -> Result<bool, String> {
        self.registered += 1;
        let email = format!(
            "lt-{}-{}-{}@example.com",
            self.shared.tag, self.index, self.registered
        );
        let secret = self.random();
        let password = format!("Load test {} {} {secret:016x}", self.index, self.registered);
        let body = serde_json::json!({
            "email": email,
            "password": password,
            "consents": {"terms": true, "privacy": true},
        })
        .to_string();
        let t = self.target();
        let step = match exchange(&self.reqs[t].register, Some(body)).await {
            Ok((StatusCode::ACCEPTED, _)) => Step::ok(),
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        };
        self.record(Op::Register, origin, &step.outcome);
        let transport = matches!(&step.outcome, Err(l) if !l.starts_with("status_"));
        if step.outcome.is_err() {
            return Ok(transport);
        }
        let Some(mailbox) = self.shared.mailbox.clone() else {
            return Ok(false);
        };
        let answered = Instant::now();
        let mail = mailbox
            .wait_take(&email, |m: &Mail| m.verify_token().is_some(), MAIL_WAIT)
            .await;
        let Some(token) = mail.and_then(|m| m.verify_token()) else {
            self.tally.record_error("mail_timeout");
            return Ok(false);
        };
        if answered >= self.shared.measure_start {
            self.tally
                .mail_waits_us
                .push(stats::micros(answered.elapsed()));
        }
        if Instant::now() >= self.shared.deadline || !self.take_budget() {
            return Ok(false);
        }
        let sent = Instant::now();
        let body = serde_json::json!({ "token": token }).to_string();
        let t = self.target();
        let step = match exchange(&self.reqs[t].verify, Some(body)).await {
            Ok((StatusCode::OK, _)) => Step::ok(),
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        };
        self.record(Op::VerifyEmail, sent, &step.outcome);
        Ok(matches!(&step.outcome, Err(l) if !l.starts_with("status_")))
    }

    /// POST /login of an account with email codes on (a challenge), the code from
    /// the mail, POST /otp/verify.
    async fn login_otp(&mut self, origin: Instant) -> Result<bool, String> {
        let Some(mailbox) = self.shared.mailbox.clone() else {
            return Err("login_otp needs the mail".into());
        };
        let n = self.shared.otp_users.len().max(1);
        // Workers own their accounts (i, i+C, …) so no one takes another's code.
        let u = self.next_otp_user % n;
        self.next_otp_user = self.next_otp_user.wrapping_add(self.shared.concurrency);
        let email = self.shared.otp_users[u].email.clone();
        mailbox.discard(&email, Mail::is_otp);
        let body = self.shared.otp_login_bodies[u].clone();
        let t = self.target();
        let (step, mfa_token) = match exchange(&self.reqs[t].login, Some(body)).await {
            Ok((StatusCode::OK, b)) => match api::parse_mfa_token(&b) {
                Some(token) => (Step::ok(), Some(token)),
                None => (Step::err("no_challenge"), None),
            },
            Ok((s, _)) => (Step::err(status_label(s)), None),
            Err(l) => (Step::err(l), None),
        };
        self.record(Op::LoginOtp, origin, &step.outcome);
        let transport = matches!(&step.outcome, Err(l) if !l.starts_with("status_"));
        let Some(mfa_token) = mfa_token else {
            return Ok(transport);
        };
        let answered = Instant::now();
        let Some(code) = mailbox
            .wait_take(&email, Mail::is_otp, MAIL_WAIT)
            .await
            .and_then(|m| m.otp_code())
        else {
            self.tally.record_error("mail_timeout");
            return Ok(false);
        };
        if answered >= self.shared.measure_start {
            self.tally
                .mail_waits_us
                .push(stats::micros(answered.elapsed()));
        }
        if Instant::now() >= self.shared.deadline || !self.take_budget() {
            return Ok(false);
        }
        let sent = Instant::now();
        let body = serde_json::json!({ "mfa_token": mfa_token, "code": code }).to_string();
        let t = self.target();
        let step = match exchange(&self.reqs[t].otp_verify, Some(body)).await {
            Ok((StatusCode::OK, b)) => match api::parse_token_pair(&b) {
                Ok(_) => Step::ok(),
                Err(l) => Step::err(l),
            },
            Ok((s, _)) => Step::err(status_label(s)),
            Err(l) => Step::err(l),
        };
        self.record(Op::OtpVerify, sent, &step.outcome);
        Ok(matches!(&step.outcome, Err(l) if !l.starts_with("status_")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_in_proportion() {
        let m: Mix = "me=70, refresh=20,login=8,register=2".parse().unwrap();
        assert_eq!(m, Mix::default());
        assert_eq!(m.total(), 100);
        let mut counts = std::collections::BTreeMap::new();
        for r in 0..m.total() {
            *counts.entry(m.pick(r).name()).or_insert(0) += 1;
        }
        assert_eq!(counts["me"], 70);
        assert_eq!(counts["refresh"], 20);
        assert_eq!(counts["login"], 8);
        assert_eq!(counts["register"], 2);
        assert_eq!(m.describe(), "me=70,refresh=20,login=8,register=2");
        let z: Mix = "me=1,login_otp=0".parse().unwrap();
        assert_eq!(z.weights, vec![(Action::Me, 1)]);
        for bad in ["", "me", "me=x", "me=1,me=2", "nap=3", "me=0"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn open_model_latency_starts_at_the_due_time_only_when_the_server_held_it() {
        let t0 = Instant::now();
        let ms = |v: u64| t0 + Duration::from_millis(v);
        // Busy until 30 ms with a slot due at 10: the 20 ms wait is the server's.
        assert_eq!(origin_of(ms(10), ms(30), ms(30)), ms(10));
        // Free at 5, due at 10, the timer fired at 11: counted from the send.
        assert_eq!(origin_of(ms(10), ms(5), ms(11)), ms(11));
        // Free exactly when due.
        assert_eq!(origin_of(ms(10), ms(10), ms(10)), ms(10));
    }

    #[test]
    fn scenario_needs() {
        let mix = Mix::default();
        assert!(Scenario::Mix.needs_users(&mix));
        assert!(Scenario::Mix.needs_mail(&mix));
        assert!(!Scenario::Mix.needs_otp_users(&mix));
        assert!(Scenario::Mix.needs_session(&mix));
        assert!(!Scenario::Register.needs_users(&mix));
        assert!(Scenario::Register.needs_mail(&mix));
        assert!(Scenario::LoginOtp.needs_otp_users(&mix));
        assert!(!Scenario::Health.needs_users(&mix));
        assert!(!Scenario::Login.needs_session(&mix));
    }
}
