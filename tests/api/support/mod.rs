//! Test support: a real server per test (port 0) on its own database — a fresh
//! PostgreSQL database, dropped afterwards, or a fresh SQLite file — with a
//! real SMTP sink and a StatsD sink.

pub mod fleet;
pub mod probe;
pub mod redis_server;
pub mod responses;
pub mod smtp;
pub mod statsd;
pub mod tls_postgres;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use awc::http::header;
use serde_json::{json, Value};
use suma_auth::{Application, Config, Options};

pub use fleet::TestFleet;
pub use responses::TokenPair;
pub use smtp::SmtpSink;
pub use statsd::StatsdSink;

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The admin URL of the test PostgreSQL server.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// One signing key for the whole test process (generating RSA keys is slow).
fn test_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| suma_auth::auth::keys::generate_pem().unwrap().0)
}

/// A database of its own, dropped when the test ends.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let name = format!("suma_test_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL (TEST_DATABASE_URL)");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => panic!("TEST_DATABASE_URL needs a database path"),
        };
        Self { name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped from a plain thread: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("suma-auth-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to build a test server.
pub struct TestSetup {
    pub backend: Backend,
    pub env: HashMap<String, String>,
    /// Several instances share these: one database, one Redis prefix, one mail sink.
    pub shared_db_url: Option<String>,
    pub redis_prefix: Option<String>,
    pub smtp_sink: Option<SmtpSink>,
    pub data_dir: Option<PathBuf>,
    /// Deliver mail to an SMTP sink (else `.eml` files in the data dir).
    pub smtp: bool,
    pub statsd: bool,
    /// Work done after an answer waits for a permit here (see `holding`).
    pub hold_background: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    /// Revocations are written to Redis but not published to other instances.
    pub unpublished_revocations: bool,
    /// How long a revocation waits for the other instances' confirmations.
    pub revocation_confirm_wait: Option<Duration>,
    /// Received revocation messages wait for a permit here.
    pub hold_revocation_feed: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    pub no_revocation_feed: bool,
}

impl TestSetup {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            env: HashMap::new(),
            shared_db_url: None,
            redis_prefix: None,
            smtp_sink: None,
            data_dir: None,
            smtp: true,
            statsd: false,
            hold_background: None,
            unpublished_revocations: false,
            revocation_confirm_wait: None,
            hold_revocation_feed: None,
            no_revocation_feed: false,
        }
    }

    /// Revocations wait at most `wait` for the other instances to confirm.
    pub fn confirming_within(mut self, wait: Duration) -> Self {
        self.revocation_confirm_wait = Some(wait);
        self
    }

    /// Received revocation messages are applied only once `gate` (a
    /// semaphore created without permits) has a permit.
    pub fn holding_revocations(mut self, gate: &std::sync::Arc<tokio::sync::Semaphore>) -> Self {
        self.hold_revocation_feed = Some(gate.clone());
        self
    }

    /// An instance that never subscribes to the revocation channel (its
    /// subscription down while Redis and the other instances are up).
    pub fn without_revocation_feed(mut self) -> Self {
        self.no_revocation_feed = true;
        self
    }

    /// An instance whose revocations reach Redis but send no message to the
    /// other instances (a lost message).
    pub fn unpublished_revocations(mut self) -> Self {
        self.unpublished_revocations = true;
        self
    }

    /// Holds the work requests leave for after their answer until a permit
    /// is added to `gate` (a semaphore created without permits).
    pub fn holding(mut self, gate: &std::sync::Arc<tokio::sync::Semaphore>) -> Self {
        self.hold_background = Some(gate.clone());
        self
    }

    /// An instance on a database, Redis prefix and mail sink shared with others.
    pub fn sharing(mut self, db_url: &str, redis_prefix: &str, smtp: &SmtpSink) -> Self {
        self.shared_db_url = Some(db_url.to_string());
        self.redis_prefix = Some(redis_prefix.to_string());
        self.smtp_sink = Some(smtp.clone());
        self
    }

    /// An instance on an existing database (its own Redis prefix and sink).
    pub fn on_database(mut self, db_url: &str) -> Self {
        self.shared_db_url = Some(db_url.to_string());
        self
    }

    /// Reuses a data directory (an embedded instance restarted).
    pub fn in_dir(mut self, dir: &std::path::Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Several settings at once.
    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (key, value) in pairs {
            self = self.env(key, value);
        }
        self
    }

    pub fn without_smtp(mut self) -> Self {
        self.smtp = false;
        self
    }

    pub fn with_statsd(mut self) -> Self {
        self.statsd = true;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let data_dir = TempDir::new();
        let db = match (self.backend, &self.shared_db_url) {
            (Backend::Postgres, None) => Some(TestDatabase::create().await),
            _ => None,
        };
        let smtp = match (&self.smtp_sink, self.smtp) {
            (Some(sink), _) => Some(sink.clone()),
            (None, true) => Some(SmtpSink::start().await),
            (None, false) => None,
        };
        let statsd = if self.statsd {
            Some(StatsdSink::start().await)
        } else {
            None
        };
        let mut env: HashMap<String, String> = [
            ("ENVIRONMENT", "test"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("LOG_LEVEL", "warn"),
            ("PUBLIC_URL", "http://app.test"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
            ("HTTP_WORKERS", "2"),
            // Tests run two at a time, some with three instances: a smaller
            // pool keeps them inside PostgreSQL's 100 connections.
            ("DB_POOL_SIZE", "8"),
            ("RATE_LIMIT_LOGIN", "1000"),
            ("RATE_LIMIT_REGISTER", "1000"),
            ("RATE_LIMIT_PASSWORD_RESET", "1000"),
            ("RATE_LIMIT_OTP", "1000"),
            ("RATE_LIMIT_EXPORT", "1000"),
            ("MAIL_PER_ADDRESS_PER_HOUR", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let dir = self.data_dir.clone().unwrap_or_else(|| data_dir.0.clone());
        env.insert("DATA_DIR".into(), dir.display().to_string());
        env.insert("JWT_PRIVATE_KEY".into(), test_key().to_string());
        // Instances sharing a database share the key that seals the mail outbox.
        env.insert(
            "DATA_ENCRYPTION_KEY".into(),
            "c3VtYS1hdXRoIHRlc3QgZGF0YSBrZXkgMzIgYnl0ZXM=".into(),
        );
        if let Some(db) = &db {
            env.insert("DATABASE_URL".into(), db.url.clone());
        }
        if let Some(url) = &self.shared_db_url {
            env.insert("DATABASE_URL".into(), url.clone());
        }
        if let Some(smtp) = &smtp {
            env.insert("SMTP_HOST".into(), "127.0.0.1".into());
            env.insert("SMTP_PORT".into(), smtp.port.to_string());
            env.insert("SMTP_TLS".into(), "none".into());
        }
        if let Some(statsd) = &statsd {
            env.insert("DD_AGENT_HOST".into(), "127.0.0.1".into());
            env.insert("DD_DOGSTATSD_PORT".into(), statsd.port.to_string());
        }
        env.extend(self.env);
        let config = Config::from_map(&env).expect("test config");
        let options = Options {
            redis_prefix: Some(
                self.redis_prefix
                    .clone()
                    .unwrap_or_else(|| format!("test:{}", uuid::Uuid::new_v4().simple())),
            ),
            hold_background: self.hold_background.clone(),
            unpublished_revocations: self.unpublished_revocations,
            revocation_confirm_wait: self.revocation_confirm_wait,
            hold_revocation_feed: self.hold_revocation_feed.clone(),
            no_revocation_feed: self.no_revocation_feed,
            ..Default::default()
        };
        let app = Application::build_with(config.clone(), options)
            .await
            .expect("build app");
        let port = app.port();
        let services = app.parts().clone();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
            services,
            handle,
            smtp,
            statsd,
            env,
            _data_dir: data_dir,
            _db: db,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: awc::Client,
    pub services: suma_auth::services::Parts,
    pub handle: actix_web::dev::ServerHandle,
    pub smtp: Option<SmtpSink>,
    pub statsd: Option<StatsdSink>,
    #[allow(dead_code)]
    pub env: HashMap<String, String>,
    pub _data_dir: TempDir,
    pub _db: Option<TestDatabase>,
}

/// A response read whole.
pub struct Resp {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        TestSetup::new(backend).spawn().await
    }

    /// Direct reads of this app's database (audit and consent rows).
    pub fn probe(&self) -> probe::Probe {
        probe::Probe::of(&self.services.config.database)
    }

    /// Stops the server (graceful) and waits for it.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// A POST with a chosen `X-Forwarded-For`.
    pub async fn post_from(&self, path: &str, forwarded_for: &str, body: Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .insert_header(("X-Forwarded-For", forwarded_for)),
            Some(body),
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, req: awc::ClientRequest, body: Option<Value>) -> Resp {
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request");
        let body = res
            .body()
            .limit(10 * 1024 * 1024)
            .await
            .expect("body")
            .to_vec();
        Resp {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.client.post(self.url(path)), Some(body))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path)), None).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Resp {
        self.send(
            self.client
                .get(self.url(path))
                .insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
            None,
        )
        .await
    }

    /// A request with a bearer token (and a JSON body when given).
    pub async fn with_token(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Resp {
        let req = match method {
            "GET" => self.client.get(self.url(path)),
            "POST" => self.client.post(self.url(path)),
            "PUT" => self.client.put(self.url(path)),
            "DELETE" => self.client.delete(self.url(path)),
            other => panic!("unexpected method {other}"),
        };
        self.send(
            req.insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
            body,
        )
        .await
    }

    pub async fn register(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/register",
            json!({"email": email, "password": password, "consents": {"terms": true, "privacy": true}}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub fn smtp(&self) -> &SmtpSink {
        self.smtp.as_ref().expect("this test app has an SMTP sink")
    }

    /// Follows the verification link of the `n`-th mail to `email`.
    pub async fn verification_token(&self, email: &str, n: usize) -> String {
        let mail = self.smtp().wait_for_nth(email, n).await;
        mail.token_after("http://app.test/verify-email?token=")
            .unwrap_or_else(|| panic!("no verification link in: {}", mail.decoded()))
    }

    /// Registers, verifies by following the mailed link, and returns the email.
    pub async fn verified_user(&self) -> String {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        assert_eq!(self.register(&email, PASSWORD).await.status, 202);
        let token = self.verification_token(&email, 1).await;
        let res = self
            .post("/api/v1/auth/verify-email", json!({"token": token}))
            .await;
        if res.status != 200 {
            panic!(
                "verify: {} {}; token hash {}; links (hash, used, account verified, deleted): {}; mails: {}",
                res.status,
                String::from_utf8_lossy(&res.body),
                &suma_auth::auth::tokens::token_hash(&token)[..12],
                self.probe().verification_state(&email).await,
                self.smtp().count_to(&email),
            );
        }
        email
    }

    /// Signs a verified user in; returns the email and the token pair.
    pub async fn signed_in(&self) -> (String, TokenPair) {
        let email = self.verified_user().await;
        let pair = self.login_pair(&email).await;
        (email, pair)
    }

    /// Signs `email` in with [`PASSWORD`]; the login must answer a token pair.
    pub async fn login_pair(&self, email: &str) -> TokenPair {
        self.login(email, PASSWORD).await.token_pair()
    }

    /// Signs `email` in with [`PASSWORD`]; the login must ask for a second
    /// factor, whose challenge token this returns.
    pub async fn mfa_token(&self, email: &str) -> String {
        self.login(email, PASSWORD).await.mfa_token()
    }

    /// A POST sent by a client naming itself `agent` (`User-Agent`).
    pub async fn post_as(&self, path: &str, agent: &str, body: Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .insert_header(("User-Agent", agent)),
            Some(body),
        )
        .await
    }

    /// A login with [`PASSWORD`] from a client `agent` on the device `device`.
    pub async fn login_from(&self, email: &str, agent: &str, device: &str) -> Resp {
        self.post_as(
            "/api/v1/auth/login",
            agent,
            json!({"email": email, "password": PASSWORD, "device_id": device}),
        )
        .await
    }

    /// The id of the user registered as `email`.
    pub async fn user_id(&self, email: &str) -> uuid::Uuid {
        self.user_record(email).await.id
    }

    /// The stored account registered as `email`, read by address.
    pub async fn user_record(&self, email: &str) -> suma_auth::storage::UserRecord {
        self.services
            .store
            .find_user_by_email(&suma_auth::domain::Email::parse(email, "email").unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    /// A POST with a bearer token and a JSON body.
    pub async fn post_bearer(&self, path: &str, token: &str, body: Value) -> Resp {
        self.with_token("POST", path, token, Some(body)).await
    }

    /// Exchanges a refresh token (whatever the answer).
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `GET /api/v1/auth/me` with an access token.
    pub async fn me(&self, access_token: &str) -> Resp {
        self.get_with_token("/api/v1/auth/me", access_token).await
    }
}

/// TOTP codes on the app's clock, and enrolment.
impl TestApp {
    /// The code of the app's current time step.
    pub fn totp_now(&self, secret: &[u8]) -> String {
        let step = suma_auth::auth::totp::step_of(self.services.clock.unix());
        format!("{:06}", suma_auth::auth::totp::code_at(secret, step))
    }

    /// Turns emailed sign-in codes on for the holder of `token` (proven by
    /// the password); the answer must be 204.
    pub async fn turn_on_email_codes(&self, token: &str) {
        let on = self
            .post_bearer(
                "/api/v1/auth/me/2fa/email",
                token,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(on.status, 204, "{}", on.text());
    }

    /// Sets TOTP up and confirms it with the current code for the holder of
    /// `token`; returns the secret and the recovery codes. The clock then
    /// moves a step on: the confirming step is spent, later codes come from
    /// later steps.
    pub async fn enroll_totp(&self, token: &str) -> (Vec<u8>, Vec<String>) {
        let setup = self
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/setup",
                token,
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(
            setup.status,
            200,
            "{}",
            String::from_utf8_lossy(&setup.body)
        );
        let secret =
            suma_auth::auth::totp::from_base32(setup.json()["secret"].as_str().unwrap()).unwrap();
        let enabled = self
            .post_bearer(
                "/api/v1/auth/me/2fa/totp/enable",
                token,
                json!({"password": PASSWORD, "code": self.totp_now(&secret)}),
            )
            .await;
        assert_eq!(
            enabled.status,
            200,
            "{}",
            String::from_utf8_lossy(&enabled.body)
        );
        let recovery = enabled.recovery_codes();
        self.services.clock.advance(Duration::from_secs(30));
        (secret, recovery)
    }
}

/// Moves every instance's clock forward by `secs`.
pub fn advance(apps: &[TestApp], secs: u64) {
    for app in apps {
        app.services.clock.advance(Duration::from_secs(secs));
    }
}

/// Runs a test body on both storage backends.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[actix_web::test]
            async fn postgres() {
                ($body)($crate::support::Backend::Postgres).await;
            }

            #[actix_web::test]
            async fn sqlite() {
                ($body)($crate::support::Backend::Sqlite).await;
            }
        }
    };
}

impl Drop for TestApp {
    /// Removes this app's Redis keys (its prefix), so tests leave nothing behind.
    fn drop(&mut self) {
        if let (Some(url), Some(redis)) =
            (self.env.get("REDIS_ENDPOINT"), self.services.redis.as_ref())
        {
            delete_redis_prefix(url, redis.prefix());
        }
    }
}

/// Deletes every Redis key under `prefix` (best effort: an unreachable
/// Redis leaves nothing to delete).
pub fn delete_redis_prefix(url: &str, prefix: &str) {
    let url = url.to_string();
    let pattern = format!("{prefix}:*");
    let _ = std::thread::spawn(move || {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    })
    .join();
}

/// One database (and mail sink) that successive servers run on: a deployment
/// whose settings change between releases (new consent versions, say).
pub struct Deployment {
    pub smtp: SmtpSink,
    db: Option<TestDatabase>,
    dir: TempDir,
    prefix: String,
}

impl Deployment {
    pub async fn new(backend: Backend) -> Self {
        Self {
            smtp: SmtpSink::start().await,
            db: match backend {
                Backend::Postgres => Some(TestDatabase::create().await),
                Backend::Sqlite => None,
            },
            dir: TempDir::new(),
            prefix: format!("test:{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// A server of this deployment with these settings. Stop the previous one
    /// first (an embedded database has one server at a time).
    pub async fn spawn(&self, env: &[(&str, &str)]) -> TestApp {
        let setup = match &self.db {
            Some(db) => {
                TestSetup::new(Backend::Postgres).sharing(&db.url, &self.prefix, &self.smtp)
            }
            None => {
                let mut setup = TestSetup::new(Backend::Sqlite).in_dir(&self.dir.0);
                setup.smtp_sink = Some(self.smtp.clone());
                setup
            }
        };
        setup.envs(env).spawn().await
    }
}

/// What a sign-in by password alone brings to its session: no device, no
/// new hash, no challenge.
pub fn password_opening() -> suma_auth::services::tokens::Opening<'static> {
    suma_auth::services::tokens::Opening {
        device_id: None,
        device_fingerprint: None,
        amr: &["pwd"],
        rehash: None,
        completes_challenge: None,
    }
}
