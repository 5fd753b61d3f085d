//! The measured loops: C workers, each with its own keep-alive `awc::Client`, sending
//! one request at a time until the deadline or the shared request budget runs out.
//!
//! Workers are spread over `client_threads` OS threads, each running its own actix
//! `System` (a single-threaded runtime); every worker is a task on its thread's System.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use awc::http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use awc::http::{StatusCode, Uri};
use awc::{Client, FrozenClientRequest};
use clap::ValueEnum;

use crate::api::{self, TokenPair, User};
use crate::stats::{Report, Tally};
use crate::target::BaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// POST /api/v1/auth/login (one Argon2id verification per request).
    Login,
    /// GET /api/v1/auth/me with a Bearer access token (each worker signs in once first).
    Me,
    /// POST /api/v1/auth/refresh, carrying the new refresh token forward each time.
    Refresh,
    /// GET /health: the framework's ceiling on this machine.
    Health,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Login => "login",
            Scenario::Me => "me",
            Scenario::Refresh => "refresh",
            Scenario::Health => "health",
        }
    }

    fn needs_users(self) -> bool {
        self != Scenario::Health
    }

    fn needs_session(self) -> bool {
        matches!(self, Scenario::Me | Scenario::Refresh)
    }
}

#[derive(Debug, Clone)]
pub struct RunOpts {
    pub base: BaseUrl,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: u64,
    pub client_threads: usize,
    pub timeout: Duration,
    pub users: Vec<User>,
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
    base: BaseUrl,
    users: Arc<Vec<User>>,
    login_bodies: Arc<Vec<String>>,
    concurrency: usize,
    timeout: Duration,
    measure_start: Instant,
    deadline: Instant,
    budget: Arc<AtomicU64>,
    max_requests: u64,
}

pub fn run(opts: &RunOpts) -> Result<Report, String> {
    if opts.concurrency == 0 {
        return Err("--concurrency must be at least 1".to_owned());
    }
    if opts.scenario.needs_users() && opts.users.is_empty() {
        return Err(format!(
            "scenario {} needs verified users: run `setup` and pass --users users.json",
            opts.scenario.name()
        ));
    }
    let threads = opts.client_threads.clamp(1, opts.concurrency);
    let users = Arc::new(opts.users.clone());

    // Sessions for me/refresh are opened before the clock starts.
    let sessions = if opts.scenario.needs_session() {
        open_sessions(opts)?
    } else {
        vec![None; opts.concurrency]
    };

    let start = Instant::now();
    let measure_start = start + opts.warmup;
    let shared = Shared {
        scenario: opts.scenario,
        base: opts.base.clone(),
        login_bodies: Arc::new(users.iter().map(api::login_body).collect()),
        users,
        concurrency: opts.concurrency,
        timeout: opts.timeout,
        measure_start,
        deadline: measure_start + opts.duration,
        budget: Arc::new(AtomicU64::new(0)),
        max_requests: opts.max_requests,
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
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => tally.merge(t),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some("a client thread panicked".to_owned())),
        }
    }
    let window = Instant::now().saturating_duration_since(measure_start);
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Report::from_tally(
        opts.scenario.name(),
        opts.concurrency,
        threads,
        window,
        tally,
    ))
}

/// Signs in once per worker (worker i uses user i mod N), a few at a time.
fn open_sessions(opts: &RunOpts) -> Result<Vec<Option<TokenPair>>, String> {
    let users = opts.users.clone();
    let base = opts.base.clone();
    let concurrency = opts.concurrency;
    let timeout = opts.timeout;
    actix_rt::System::new().block_on(async move {
        let client = api::client(timeout);
        let mut sessions = Vec::with_capacity(concurrency);
        // Sign in in small batches so a bounded hashing pool is not overrun.
        let indices: Vec<usize> = (0..concurrency).collect();
        for batch in indices.chunks(4) {
            let futures = batch.iter().map(|&i| {
                let user = &users[i % users.len()];
                api::login(&client, &base, user)
            });
            for result in futures_util::future::join_all(futures).await {
                sessions.push(Some(result?));
            }
        }
        Ok(sessions)
    })
}

fn run_thread(shared: Shared, inits: Vec<WorkerInit>) -> Result<Tally, String> {
    actix_rt::System::new().block_on(async move {
        let shared = Rc::new(shared);
        let mut handles = Vec::with_capacity(inits.len());
        for init in inits {
            handles.push(actix_rt::spawn(worker(Rc::clone(&shared), init)));
        }
        let mut tally = Tally::default();
        for h in handles {
            let t = h
                .await
                .map_err(|e| format!("a worker task failed: {e}"))??;
            tally.merge(t);
        }
        Ok(tally)
    })
}

/// What one request came to.
enum Outcome {
    Ok,
    /// Error label for the tally.
    Err(String),
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
    method: awc::http::Method,
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

async fn worker(shared: Rc<Shared>, init: WorkerInit) -> Result<Tally, String> {
    let client = api::client(shared.timeout);
    let base = &shared.base;
    let mut tally = Tally::default();
    let user_count = shared.users.len().max(1);
    let my_user = init.index % user_count;
    let mut session = init.session;

    let login_req = freeze(
        &client,
        awc::http::Method::POST,
        &base.uri(api::LOGIN)?,
        None,
        true,
    )?;
    let refresh_req = freeze(
        &client,
        awc::http::Method::POST,
        &base.uri(api::REFRESH)?,
        None,
        true,
    )?;
    let health_req = freeze(
        &client,
        awc::http::Method::GET,
        &base.uri(api::HEALTH)?,
        None,
        false,
    )?;
    let me_uri = base.uri(api::ME)?;
    let mut me_req = match &session {
        Some(s) => Some(freeze(
            &client,
            awc::http::Method::GET,
            &me_uri,
            Some(&bearer(&s.access_token)?),
            false,
        )?),
        None => None,
    };

    // login: worker i uses users i, i+C, i+2C, … (mod N), spreading load over accounts.
    let mut next_user = init.index;

    loop {
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        if shared.budget.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
            break;
        }
        let t0 = Instant::now();
        let mut need_relogin = false;
        let outcome = match shared.scenario {
            Scenario::Health => match exchange(&health_req, None).await {
                Ok((StatusCode::OK, _)) => Outcome::Ok,
                Ok((s, _)) => Outcome::Err(status_label(s)),
                Err(l) => Outcome::Err(l),
            },
            Scenario::Login => {
                let body = shared.login_bodies[next_user % user_count].clone();
                next_user = next_user.wrapping_add(shared.concurrency);
                match exchange(&login_req, Some(body)).await {
                    Ok((StatusCode::OK, b)) => match api::parse_token_pair(&b) {
                        Ok(_) => Outcome::Ok,
                        Err(l) => Outcome::Err(l.to_owned()),
                    },
                    Ok((s, _)) => Outcome::Err(status_label(s)),
                    Err(l) => Outcome::Err(l),
                }
            }
            Scenario::Me => match &me_req {
                Some(req) => match exchange(req, None).await {
                    Ok((StatusCode::OK, _)) => Outcome::Ok,
                    Ok((s, _)) => {
                        need_relogin = s == StatusCode::UNAUTHORIZED;
                        Outcome::Err(status_label(s))
                    }
                    Err(l) => Outcome::Err(l),
                },
                None => {
                    need_relogin = true;
                    Outcome::Err("no_session".to_owned())
                }
            },
            Scenario::Refresh => match &session {
                Some(s) => {
                    let body = api::refresh_body(&s.refresh_token);
                    match exchange(&refresh_req, Some(body)).await {
                        Ok((StatusCode::OK, b)) => match api::parse_token_pair(&b) {
                            Ok(pair) => {
                                session = Some(pair);
                                Outcome::Ok
                            }
                            Err(l) => {
                                need_relogin = true;
                                Outcome::Err(l.to_owned())
                            }
                        },
                        Ok((s, _)) => {
                            // A spent or revoked refresh token will not come back.
                            need_relogin = s == StatusCode::UNAUTHORIZED;
                            Outcome::Err(status_label(s))
                        }
                        Err(l) => {
                            // The server may have rotated the token before the answer
                            // was lost: start a fresh session.
                            need_relogin = true;
                            Outcome::Err(l)
                        }
                    }
                }
                None => {
                    need_relogin = true;
                    Outcome::Err("no_session".to_owned())
                }
            },
        };
        let latency = t0.elapsed();
        let transport_error = matches!(&outcome, Outcome::Err(l) if !l.starts_with("status_"));
        if t0 >= shared.measure_start {
            match outcome {
                Outcome::Ok => tally.record_ok(latency),
                Outcome::Err(label) => tally.record_error(&label),
            }
        }
        if need_relogin && shared.scenario.needs_session() && Instant::now() < shared.deadline {
            // Not measured: a new session for this worker.
            match api::login(&client, base, &shared.users[my_user]).await {
                Ok(pair) => {
                    if shared.scenario == Scenario::Me {
                        me_req = Some(freeze(
                            &client,
                            awc::http::Method::GET,
                            &me_uri,
                            Some(&bearer(&pair.access_token)?),
                            false,
                        )?);
                    }
                    session = Some(pair);
                }
                Err(_) => {
                    tally.record_error("relogin_failed");
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        } else if transport_error {
            // Do not spin on a server that is down or refusing connections.
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(tally)
}
