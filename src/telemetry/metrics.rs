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

/// What a metric is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    /// A DogStatsD distribution (`d`): percentiles computed by Datadog across hosts.
    Distribution,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Distribution => "distribution",
        }
    }
}

/// One metric of the catalogue. Every metric also carries `env`, `service`
/// and `version` (Datadog unified service tagging).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub tags: &'static [&'static str],
    pub description: &'static str,
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $konst:ident = $name:literal, $kind:ident, [$($tag:literal),*], $desc:literal;)*) => {
        $($(#[$doc])* #[doc = $desc] pub const $konst: &str = $name;)*
        /// Every metric the server emits (printed by `suma-auth metrics`).
        pub const CATALOGUE: &[MetricDef] = &[
            $(MetricDef { name: $name, kind: MetricKind::$kind, tags: &[$($tag),*], description: $desc },)*
        ];
    };
}

catalogue! {
    ENDPOINT_REQUESTS = "auth.endpoint.requests", Counter, ["endpoint", "method", "status"],
        "HTTP requests by matched route pattern.";
    ENDPOINT_ERRORS = "auth.endpoint.errors", Counter, ["endpoint", "status", "status_class"],
        "Responses with status >= 400; status_class 4xx or 5xx (the error-rate monitor pages on 5xx only, so attacks do not page).";
    ENDPOINT_DURATION = "auth.endpoint.duration", Distribution, ["endpoint", "method", "status_class"],
        "Request time in milliseconds (p50/p95/p99 without APM); status_class 2xx/3xx/4xx/5xx.";
    LOGIN_SUCCESS = "auth.login.success", Counter, ["mfa"],
        "Successful sign-ins (mfa true/false).";
    LOGIN_FAILURE = "auth.login.failure", Counter, ["reason"],
        "Failed sign-ins: invalid_credentials, email_not_verified, account_locked, inactive, invalid_code, too_many_challenges, consent_required.";
    ACCOUNT_LOCKOUT = "auth.account_lockout", Counter, ["factor"],
        "An account (or unknown email) locked after too many failures; factor password (wrong passwords) or second_factor (wrong email, TOTP or recovery codes).";
    NEW_DEVICE = "auth.login.new_device", Counter, [],
        "Sign-ins from a device new to an account that already had one (the owner is mailed).";
    TOKEN_REFRESH = "auth.token.refresh", Counter, ["outcome"],
        "Refresh attempts: rotated, invalid, reuse.";
    REFRESH_TOKEN_REUSE = "auth.refresh_token_reuse", Counter, [],
        "A spent refresh token presented again (its session was revoked).";
    SESSION_ENDED = "auth.session.ended", Counter, ["reason"],
        "Sessions ended: logout, logout_all, revoked, password_changed, refresh_token_reuse, idle_timeout, two_factor_changed, account_erased.";
    REGISTRATION = "auth.registration", Counter, ["outcome"],
        "Registrations: created, replaced (an unverified account's pending registration), existing (verified; a notice is mailed).";
    EMAIL_VERIFICATION = "auth.email_verification", Counter, ["outcome"],
        "Email verifications: verified, invalid.";
    MAIL_QUEUED = "auth.mail.queued", Counter, ["template"],
        "Mails written to the outbox.";
    MAIL_SENT = "auth.mail.sent", Counter, ["template"],
        "Mails accepted by the relay.";
    MAIL_FAILED = "auth.mail.failed", Counter, ["template"],
        "Mails dead: refused for good or out of attempts.";
    MAIL_WITHHELD = "auth.mail.withheld", Counter, ["route"],
        "Requests that would have mailed an address which already had MAIL_PER_ADDRESS_PER_HOUR unasked-for mails this hour, and did nothing (route register or verify_resend); a surge is someone filling a stranger's mailbox.";
    MAIL_OUTBOX_DEPTH = "auth.mail.outbox.depth", Gauge, [],
        "Mails waiting in the outbox.";
    MAIL_OUTBOX_AGE = "auth.mail.outbox.age", Gauge, [],
        "Seconds the oldest waiting mail has waited.";
    MAIL_OUTBOX_DEAD = "auth.mail.outbox.dead", Gauge, [],
        "Dead mails kept in the outbox.";
    RATE_LIMITED = "auth.rate_limited", Counter, ["route"],
        "Requests refused with 429.";
    HASH_POOL_IN_FLIGHT = "auth.hash_pool.in_flight", Gauge, [],
        "Password hashes running or waiting.";
    HASH_POOL_REJECTED = "auth.hash_pool.rejected", Counter, [],
        "Hash requests refused with 503 (pool full).";
    ACTORS_LIVE = "auth.actors.live", Gauge, [],
        "Per-user actors alive.";
    ACTORS_MAILBOX_REJECTIONS = "auth.actors.mailbox_rejections", Gauge, [],
        "Full-mailbox refusals since start.";
    DB_POOL_CONNECTIONS = "auth.db.pool.connections", Gauge, [],
        "Open PostgreSQL connections of this instance's pool.";
    DB_POOL_IDLE = "auth.db.pool.idle", Gauge, [],
        "Idle PostgreSQL connections of this instance's pool.";
    REDIS_POOL_CONNECTIONS = "auth.redis.pool.connections", Gauge, [],
        "Open Redis connections of this instance's pool.";
    REDIS_POOL_IDLE = "auth.redis.pool.idle", Gauge, [],
        "Idle Redis connections of this instance's pool.";
    DEPENDENCY_UP = "auth.dependency.up", Gauge, ["dependency"],
        "1 while a dependency answers its probe, else 0 (dependency: database, redis).";
    SESSION_CHECKS = "auth.session.checks", Counter, ["by"],
        "Session checks of authenticated requests by what decided them: memory (this instance's map, no round trip), redis, database.";
    AUDIT_BATCH_SIZE = "auth.audit.batch_size", Distribution, [],
        "Audit rows appended per transaction by an instance's audit writer (group commit; direct appends are not counted).";
    SESSION_REVOCATION_FEED = "auth.session.revocation_feed", Gauge, [],
        "With Redis: 1 while this instance is subscribed to the session revocation channel, else 0 (every authenticated request then asks Redis).";
}

fn status_class(status: u16) -> &'static str {
    match status {
        500.. => "5xx",
        400..=499 => "4xx",
        300..=399 => "3xx",
        _ => "2xx",
    }
}

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
            .with_default_tag("env", &config.tags.env)
            .with_default_tag("service", &config.tags.service)
            .with_default_tag("version", &config.tags.version)
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
        self.gauge_tagged(name, &[], value);
    }

    fn gauge_tagged(&self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        if let Some(r) = &self.recorder {
            r.register_gauge(&Self::key(name, labels), &METADATA)
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
            let class = status_class(status);
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
            ("status_class", status_class(status).to_string()),
        ];
        r.register_histogram(&Self::key(ENDPOINT_DURATION, &labels), &METADATA)
            .record(elapsed.as_secs_f64() * 1000.0);
    }

    /// One transaction of the audit writer, with `rows` rows.
    pub fn audit_batch(&self, rows: usize) {
        if let Some(r) = &self.recorder {
            r.register_histogram(&Self::key(AUDIT_BATCH_SIZE, &[]), &METADATA)
                .record(rows as f64);
        }
    }

    pub fn login_success(&self, mfa: bool) {
        self.count(LOGIN_SUCCESS, &[("mfa", mfa.to_string())]);
    }

    pub fn login_failure(&self, reason: &'static str) {
        self.count(LOGIN_FAILURE, &[("reason", reason.to_string())]);
    }

    /// A password lockout.
    pub fn account_lockout(&self) {
        self.count(ACCOUNT_LOCKOUT, &[("factor", "password".to_string())]);
    }

    /// A second-factor lockout.
    pub fn second_factor_lockout(&self) {
        self.count(ACCOUNT_LOCKOUT, &[("factor", "second_factor".to_string())]);
    }

    /// A sign-in from a device new to its account.
    pub fn new_device(&self) {
        self.count(NEW_DEVICE, &[]);
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

    pub fn mail_withheld(&self, route: &'static str) {
        self.count(MAIL_WITHHELD, &[("route", route.to_string())]);
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

    /// Hash requests refused since the last call (the pool counts them).
    pub fn hash_pool_rejected(&self, n: u64) {
        if let (Some(r), true) = (&self.recorder, n > 0) {
            r.register_counter(&Self::key(HASH_POOL_REJECTED, &[]), &METADATA)
                .increment(n);
        }
    }

    pub fn db_pool(&self, connections: u32, idle: u32) {
        self.gauge(DB_POOL_CONNECTIONS, connections as f64);
        self.gauge(DB_POOL_IDLE, idle as f64);
    }

    pub fn redis_pool(&self, connections: u32, idle: u32) {
        self.gauge(REDIS_POOL_CONNECTIONS, connections as f64);
        self.gauge(REDIS_POOL_IDLE, idle as f64);
    }

    pub fn dependency_up(&self, dependency: &'static str, up: bool) {
        self.gauge_tagged(
            DEPENDENCY_UP,
            &[("dependency", dependency.to_string())],
            if up { 1.0 } else { 0.0 },
        );
    }

    /// Session checks decided by each source since the last call.
    pub fn session_checks(&self, memory: u64, redis: u64, database: u64) {
        if let Some(r) = &self.recorder {
            for (by, n) in [("memory", memory), ("redis", redis), ("database", database)] {
                if n > 0 {
                    r.register_counter(
                        &Self::key(SESSION_CHECKS, &[("by", by.to_string())]),
                        &METADATA,
                    )
                    .increment(n);
                }
            }
        }
    }

    pub fn revocation_feed(&self, up: bool) {
        self.gauge(SESSION_REVOCATION_FEED, if up { 1.0 } else { 0.0 });
    }

    pub fn hash_pool_in_flight(&self, n: usize) {
        self.gauge(HASH_POOL_IN_FLIGHT, n as f64);
    }

    pub fn actors(&self, live: u64, mailbox_rejections: u64) {
        self.gauge(ACTORS_LIVE, live as f64);
        self.gauge(ACTORS_MAILBOX_REJECTIONS, mailbox_rejections as f64);
    }
}
