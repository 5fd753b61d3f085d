//! The metric catalogue: every metric the server emits, defined once, with the
//! names the Datadog dashboards and monitors in `deploy/` query.
//!
//! Metrics go to the DogStatsD agent (`DD_AGENT_HOST:DD_DOGSTATSD_PORT`)
//! through `metrics-exporter-statsd`, with the default tags `env`, `service`
//! and `version`. Tags never carry user ids or emails.
//!
//! The recorder is held by the application rather than installed globally so
//! that several instances in one process (tests) each report to their own
//! agent.

use std::sync::Arc;
use std::time::Duration;

use cadence::{BufferedUdpMetricSink, MetricSink};
use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_statsd::{StatsdBuilder, StatsdRecorder};

use crate::config::Config;

/// `auth.endpoint.requests` — counter; tags `endpoint` (route pattern),
/// `method`, `status`.
pub const ENDPOINT_REQUESTS: &str = "auth.endpoint.requests";
/// `auth.endpoint.errors` — counter of responses with status ≥ 400; tags
/// `endpoint`, `status`, `status_class` (`4xx`/`5xx`). The error-rate monitor
/// pages on `status_class:5xx` only, so that attacks (4xx) do not page.
pub const ENDPOINT_ERRORS: &str = "auth.endpoint.errors";
/// `auth.endpoint.duration` — distribution of request time in milliseconds;
/// tags `endpoint`, `method`.
pub const ENDPOINT_DURATION: &str = "auth.endpoint.duration";
/// `auth.login.success` — counter; tag `mfa` (`true`/`false`).
pub const LOGIN_SUCCESS: &str = "auth.login.success";
/// `auth.login.failure` — counter; tag `reason` (`invalid_credentials`,
/// `email_not_verified`, `account_locked`, `inactive`).
pub const LOGIN_FAILURE: &str = "auth.login.failure";
/// `auth.account_lockout` — counter: an account (or unknown email) locked.
pub const ACCOUNT_LOCKOUT: &str = "auth.account_lockout";
/// `auth.token.refresh` — counter; tag `outcome` (`rotated`, `invalid`, `reuse`).
pub const TOKEN_REFRESH: &str = "auth.token.refresh";
/// `auth.refresh_token_reuse` — counter: a spent refresh token presented again
/// (its session was revoked).
pub const REFRESH_TOKEN_REUSE: &str = "auth.refresh_token_reuse";
/// `auth.session.ended` — counter; tag `reason` (`logout`, `logout_all`,
/// `revoked`, `password_changed`, `refresh_token_reuse`, `idle_timeout`).
pub const SESSION_ENDED: &str = "auth.session.ended";
/// `auth.registration` — counter; tag `outcome` (`created`, `existing`).
pub const REGISTRATION: &str = "auth.registration";
/// `auth.email_verification` — counter; tag `outcome` (`verified`, `invalid`).
pub const EMAIL_VERIFICATION: &str = "auth.email_verification";
/// `auth.mail.queued` / `auth.mail.sent` / `auth.mail.failed` — counters; tag
/// `template` (failed = dead: refused for good or out of attempts).
pub const MAIL_QUEUED: &str = "auth.mail.queued";
/// `auth.mail.outbox.depth` — gauge: mails waiting; `auth.mail.outbox.age` —
/// gauge: seconds the oldest waiting mail has waited; `auth.mail.outbox.dead`.
pub const MAIL_OUTBOX_DEPTH: &str = "auth.mail.outbox.depth";
pub const MAIL_OUTBOX_AGE: &str = "auth.mail.outbox.age";
pub const MAIL_OUTBOX_DEAD: &str = "auth.mail.outbox.dead";
pub const MAIL_SENT: &str = "auth.mail.sent";
pub const MAIL_FAILED: &str = "auth.mail.failed";
/// `auth.rate_limited` — counter; tag `route`.
pub const RATE_LIMITED: &str = "auth.rate_limited";
/// `auth.hash_pool.in_flight` — gauge: password hashes running or waiting.
pub const HASH_POOL_IN_FLIGHT: &str = "auth.hash_pool.in_flight";
/// `auth.hash_pool.rejected` — counter: hash requests refused with 503.
pub const HASH_POOL_REJECTED: &str = "auth.hash_pool.rejected";
/// `auth.actors.live` — gauge: per-user actors alive.
pub const ACTORS_LIVE: &str = "auth.actors.live";
/// `auth.actors.mailbox_rejections` — gauge: total full-mailbox refusals.
pub const ACTORS_MAILBOX_REJECTIONS: &str = "auth.actors.mailbox_rejections";
/// `auth.db.pool.connections` — gauge of open database connections.
pub const DB_POOL_CONNECTIONS: &str = "auth.db.pool.connections";

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// The application's metrics handle. Cheap to clone; a no-op without an agent.
#[derive(Clone, Default)]
pub struct Metrics {
    recorder: Option<Arc<StatsdRecorder>>,
    sink: Option<Arc<BufferedUdpMetricSink>>,
}

/// The UDP sink, shared so that a timer can flush it: a buffered sink alone
/// only sends when its buffer fills, which at low traffic means never.
struct SharedSink(Arc<BufferedUdpMetricSink>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Metrics {
    /// Builds the DogStatsD recorder when `DD_AGENT_HOST` is set.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let Some(statsd) = &config.statsd else {
            return Ok(Self::default());
        };
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let sink = Arc::new(
            BufferedUdpMetricSink::with_capacity((statsd.host.as_str(), statsd.port), socket, 1432)
                .map_err(|e| e.to_string())?,
        );
        let recorder = StatsdBuilder::from(statsd.host.clone(), statsd.port)
            .with_sink(SharedSink(sink.clone()))
            .histogram_is_distribution()
            .with_default_tag("env", config.environment.as_str())
            .with_default_tag("service", "suma-auth")
            .with_default_tag("version", config.version)
            .build(None)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            recorder: Some(Arc::new(recorder)),
            sink: Some(sink),
        })
    }

    /// Sends what is buffered (called every second, and at shutdown).
    pub fn flush(&self) {
        if let Some(sink) = &self.sink {
            let _ = sink.flush();
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
        Key::from_parts(
            name,
            labels
                .iter()
                .map(|(k, v)| Label::new(*k, v.clone()))
                .collect::<Vec<_>>(),
        )
    }

    fn count(&self, name: &'static str, labels: &[(&'static str, String)]) {
        if let Some(r) = &self.recorder {
            r.register_counter(&Self::key(name, labels), &METADATA)
                .increment(1);
        }
    }

    fn gauge(&self, name: &'static str, value: f64) {
        if let Some(r) = &self.recorder {
            r.register_gauge(&Self::key(name, &[]), &METADATA)
                .set(value);
        }
    }

    /// One finished HTTP request.
    pub fn endpoint(&self, endpoint: &str, method: &str, status: u16, elapsed: Duration) {
        let Some(r) = &self.recorder else { return };
        let labels = [
            ("endpoint", endpoint.to_string()),
            ("method", method.to_string()),
            ("status", status.to_string()),
        ];
        r.register_counter(&Self::key(ENDPOINT_REQUESTS, &labels), &METADATA)
            .increment(1);
        if status >= 400 {
            let class = if status >= 500 { "5xx" } else { "4xx" };
            let labels = [
                ("endpoint", endpoint.to_string()),
                ("status", status.to_string()),
                ("status_class", class.to_string()),
            ];
            r.register_counter(&Self::key(ENDPOINT_ERRORS, &labels), &METADATA)
                .increment(1);
        }
        let labels = [
            ("endpoint", endpoint.to_string()),
            ("method", method.to_string()),
        ];
        r.register_histogram(&Self::key(ENDPOINT_DURATION, &labels), &METADATA)
            .record(elapsed.as_secs_f64() * 1000.0);
    }

    pub fn login_success(&self, mfa: bool) {
        self.count(LOGIN_SUCCESS, &[("mfa", mfa.to_string())]);
    }

    pub fn login_failure(&self, reason: &'static str) {
        self.count(LOGIN_FAILURE, &[("reason", reason.to_string())]);
    }

    pub fn account_lockout(&self) {
        self.count(ACCOUNT_LOCKOUT, &[]);
    }

    pub fn token_refresh(&self, outcome: &'static str) {
        self.count(TOKEN_REFRESH, &[("outcome", outcome.to_string())]);
    }

    pub fn refresh_token_reuse(&self) {
        self.count(REFRESH_TOKEN_REUSE, &[]);
    }

    pub fn session_ended(&self, reason: &'static str, n: usize) {
        for _ in 0..n {
            self.count(SESSION_ENDED, &[("reason", reason.to_string())]);
        }
    }

    pub fn registration(&self, outcome: &'static str) {
        self.count(REGISTRATION, &[("outcome", outcome.to_string())]);
    }

    pub fn email_verification(&self, outcome: &'static str) {
        self.count(EMAIL_VERIFICATION, &[("outcome", outcome.to_string())]);
    }

    pub fn mail_queued(&self, template: &'static str) {
        self.count(MAIL_QUEUED, &[("template", template.to_string())]);
    }

    pub fn outbox(&self, depth: u64, oldest_secs: f64, dead: u64) {
        self.gauge(MAIL_OUTBOX_DEPTH, depth as f64);
        self.gauge(MAIL_OUTBOX_AGE, oldest_secs);
        self.gauge(MAIL_OUTBOX_DEAD, dead as f64);
    }

    pub fn mail_sent(&self, template: &'static str) {
        self.count(MAIL_SENT, &[("template", template.to_string())]);
    }

    pub fn mail_failed(&self, template: &'static str) {
        self.count(MAIL_FAILED, &[("template", template.to_string())]);
    }

    pub fn rate_limited(&self, route: &'static str) {
        self.count(RATE_LIMITED, &[("route", route.to_string())]);
    }

    pub fn hash_pool_rejected(&self) {
        self.count(HASH_POOL_REJECTED, &[]);
    }

    pub fn hash_pool_in_flight(&self, n: usize) {
        self.gauge(HASH_POOL_IN_FLIGHT, n as f64);
    }

    pub fn actors(&self, live: u64, mailbox_rejections: u64) {
        self.gauge(ACTORS_LIVE, live as f64);
        self.gauge(ACTORS_MAILBOX_REJECTIONS, mailbox_rejections as f64);
    }
}
