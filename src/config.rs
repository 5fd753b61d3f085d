//! Configuration: every setting the server reads, parsed and validated from the
//! environment once at start-up, with the deployment's variable names.
//!
//! A bad or missing value stops start-up with one line naming the variable
//! ([`ConfigError`]). `ENVIRONMENT=production` refuses development shortcuts.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use crate::storage::postgres::tls::{split_ssl_params, PgTls, RootCert, SslMode};

mod vars;
pub use vars::{EnvVar, ENV_VARS};

/// A configuration error: names the variable and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self {
            var,
            message: message.into(),
        }
    }
}

/// Where the server runs; production refuses development shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Staging and production run like production: JSON logs, no shortcuts.
    pub fn is_production_like(self) -> bool {
        matches!(self, Environment::Staging | Environment::Production)
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" => Ok(Environment::Development),
            "test" => Ok(Environment::Test),
            "staging" => Ok(Environment::Staging),
            "production" | "prod" => Ok(Environment::Production),
            other => Err(format!(
                "unknown environment {other:?} (expected development, test, staging or production)"
            )),
        }
    }
}

/// Where durable records live.
#[derive(Clone)]
pub enum DatabaseConfig {
    /// PostgreSQL, the production system of record.
    Postgres {
        /// Connection string without `sslmode`/`sslrootcert` (those are in `tls`).
        url: SecretString,
        tls: PgTls,
        /// Connections per instance (`DB_POOL_SIZE`).
        pool_size: u32,
    },
    /// Embedded SQLite file, the single-node default.
    Sqlite { path: PathBuf },
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseConfig::Postgres { .. } => f.write_str("Postgres { url: [redacted] }"),
            DatabaseConfig::Sqlite { path } => write!(f, "Sqlite {{ path: {path:?} }}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port` or `rediss://host:port` (TLS, as ElastiCache in transit).
    pub endpoint: String,
    pub auth_token: Option<SecretString>,
    /// The first part of every key this service writes (`REDIS_KEY_PREFIX`):
    /// deployments sharing one Redis keep apart, and the operator commands
    /// act on the keys of the server they share it with.
    pub key_prefix: String,
}

/// How SMTP connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" | "implicit" => Ok(SmtpTls::Tls),
            other => Err(format!("{other:?} is not one of none, starttls, tls")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: SmtpTls,
}

/// Where the RSA signing keys come from.
#[derive(Debug, Clone, Default)]
pub struct KeySource {
    pub private_pem: Option<SecretString>,
    pub public_pem: Option<String>,
    pub private_path: Option<PathBuf>,
    pub public_path: Option<PathBuf>,
    /// Verify-only public keys (PEM, several concatenated): the previous key
    /// during a rotation, or the next one published ahead of signing.
    pub additional_public_pem: Option<String>,
    pub additional_public_path: Option<PathBuf>,
}

impl KeySource {
    pub fn is_configured(&self) -> bool {
        self.private_pem.is_some() || self.private_path.is_some()
    }
}

/// The `iss` of access tokens when neither `JWT_ISSUER` nor `PUBLIC_URL` is set.
pub const DEFAULT_ISSUER: &str = "suma-auth";

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub keys: KeySource,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
}

/// Argon2id parameters and the bounded hashing pool.
#[derive(Debug, Clone, Copy)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once (threads busy hashing).
    pub workers: usize,
    /// Hash requests allowed to wait for a worker before the server answers 503.
    pub queue: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub login: u32,
    pub register: u32,
    pub password_reset: u32,
    pub otp: u32,
    /// Data exports (`GET /me/export`).
    pub export: u32,
    pub window: Duration,
    /// IPv6 clients are limited per network of this many bits (a /64 by default).
    pub ipv6_prefix: u8,
    /// Mails nobody signed in asked for (verification links, notices of a
    /// registration for a taken address) per address per hour, whoever asks
    /// and from wherever (`MAIL_PER_ADDRESS_PER_HOUR`).
    pub mail_per_address: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct SecurityPolicy {
    pub max_login_attempts: u32,
    pub lockout_duration: Duration,
    pub session_timeout: Duration,
    pub session_absolute_timeout: Duration,
    /// With Redis, how long an instance decides a session from memory
    /// before asking Redis again (bounds a lost revocation message).
    pub session_revalidate: Duration,
    pub otp_expiry: Duration,
    pub verification_token_ttl: Duration,
    /// A spent refresh token presented again within this time is refused
    /// without revoking its session (a client retrying one request); 0 = off.
    pub refresh_reuse_grace: Duration,
    /// Accounts still unverified this long after their (latest) registration
    /// are deleted by the expiry sweep.
    pub unverified_account_max_age: Duration,
}

/// How second factors are limited per account (on every instance).
#[derive(Debug, Clone, Copy)]
pub struct SecondFactorPolicy {
    /// Wrong codes per account per window before the second-factor step
    /// locks (`SECOND_FACTOR_MAX_ATTEMPTS`, at most 10).
    pub max_attempts: u32,
    /// The window and the lock (`SECOND_FACTOR_LOCKOUT_MINUTES`).
    pub lockout_duration: Duration,
    /// Wrong codes per account per day before the step locks for a day
    /// (`SECOND_FACTOR_MAX_FAILURES_PER_DAY`); a success does not reset it.
    pub max_failures_per_day: u32,
    /// Login challenges (and step-up codes) opened per account per hour
    /// (`MFA_CHALLENGES_PER_HOUR`).
    pub challenges_per_hour: u32,
    /// A sign-in from a device new to an account without a second factor
    /// must pass an emailed code first (`NEW_DEVICE_STEP_UP`, default off).
    pub new_device_step_up: bool,
}

#[derive(Debug, Clone)]
pub struct StatsdConfig {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub log_level: String,
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub database: DatabaseConfig,
    pub redis: Option<RedisConfig>,
    pub jwt: JwtConfig,
    pub smtp: Option<SmtpConfig>,
    pub mail_from: String,
    /// First retry delay of the mail outbox; later ones double (capped at 10 min).
    pub mail_retry_base: Duration,
    /// AES-256-GCM key (base64) for data sealed at rest.
    pub data_key: Option<SecretString>,
    pub statsd: Option<StatsdConfig>,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limits: RateLimits,
    pub security: SecurityPolicy,
    /// The current version of each consent text; sign-in waits for the
    /// current terms and privacy versions to be accepted.
    pub consents: crate::domain::consent::ConsentVersions,
    pub hashing: HashingConfig,
    /// HTTP worker threads (defaults to the number of cores).
    pub http_workers: usize,
    pub shutdown_timeout: Duration,
    /// A per-user actor unused this long is reaped.
    pub actor_idle_timeout: Duration,
    /// How often expired sessions and tokens are pruned.
    pub sweep_interval: Duration,
    pub version: &'static str,
    /// Datadog unified service tags on every metric.
    pub tags: ServiceTags,
    /// Per-account limits of second factors.
    pub second_factor: SecondFactorPolicy,
}

/// `service`, `env` and `version` as Datadog's unified service tagging names
/// them (`DD_SERVICE`, `DD_ENV`, `DD_VERSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTags {
    pub service: String,
    pub env: String,
    pub version: String,
}

/// `suma-auth --version`: the package version and the commit.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SUMA_AUTH_GIT_SHA"),
    ")"
);

/// The build's version and the commit it was built from: `0.1.0+1a2b3c4d5e6f`.
pub const BUILD_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("SUMA_AUTH_GIT_SHA"));

/// The version of every consent text when its variable is unset.
pub const DEFAULT_CONSENT_VERSION: &str = "1.0";

/// Reads variables from a source: the process environment, or a map in tests.
struct Vars<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    /// A set, non-empty value (surrounding whitespace removed).
    fn opt(&self, var: &'static str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A value kept exactly as given (PEM keys, passwords).
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.get)(var).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.opt(var) {
            None => Ok(default),
            Some(v) => v
                .parse::<T>()
                .map_err(|e| ConfigError::new(var, format!("invalid value {v:?}: {e}"))),
        }
    }

    /// A consent version: 1–20 printable characters, `1.0` when unset.
    fn version(&self, var: &'static str) -> Result<String, ConfigError> {
        let v = self
            .opt(var)
            .unwrap_or_else(|| DEFAULT_CONSENT_VERSION.to_string());
        if v.chars().count() > 20 || v.chars().any(char::is_control) {
            return Err(ConfigError::new(
                var,
                "use at most 20 printable characters (e.g. 2.0 or 2026-01)",
            ));
        }
        Ok(v)
    }

    /// A whole number within `[min, max]`.
    fn bounded(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let v: u64 = self.parse(var, default)?;
        if v < min || v > max {
            return Err(ConfigError::new(
                var,
                format!("{v} is out of range ({min}..={max})"),
            ));
        }
        Ok(v)
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads the configuration from a map (tests, tools).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(&|k| map.get(k).cloned())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Vars { get };
        let environment: Environment = v.parse("ENVIRONMENT", Environment::Development)?;
        let log_level = v.opt("LOG_LEVEL").unwrap_or_else(|| "info".to_string());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(ConfigError::new(
                "LOG_LEVEL",
                format!("{log_level:?} is not a log level or filter (e.g. info, debug, suma_auth=debug)"),
            ));
        }
        let host: IpAddr = v.parse("HOST", IpAddr::from([0, 0, 0, 0]))?;
        let port = v.bounded("PORT", 8080, 0, 65535)? as u16;
        let data_dir = PathBuf::from(v.opt("DATA_DIR").unwrap_or_else(|| "./data".to_string()));
        let public_url_set = v.opt("PUBLIC_URL");
        let public_url = public_url_set
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }
        let public_url = public_url.trim_end_matches('/').to_string();

        let database = Self::database(&v, &data_dir)?;
        let redis = match v.opt("REDIS_ENDPOINT") {
            None => None,
            Some(endpoint) => {
                let endpoint = if endpoint.contains("://") {
                    endpoint
                } else {
                    format!("redis://{endpoint}")
                };
                if !(endpoint.starts_with("redis://") || endpoint.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        "REDIS_ENDPOINT",
                        "must be host:port, redis://host:port or rediss://host:port",
                    ));
                }
                let key_prefix = v
                    .opt("REDIS_KEY_PREFIX")
                    .unwrap_or_else(|| "suma-auth".to_string());
                if key_prefix.contains(['{', '}', ' ']) {
                    return Err(ConfigError::new(
                        "REDIS_KEY_PREFIX",
                        "must not contain braces or spaces",
                    ));
                }
                Some(RedisConfig {
                    endpoint,
                    auth_token: v.raw("REDIS_AUTH_TOKEN").map(SecretString::from),
                    key_prefix,
                })
            }
        };

        let keys = KeySource {
            private_pem: v.raw("JWT_PRIVATE_KEY").map(SecretString::from),
            public_pem: v.raw("JWT_PUBLIC_KEY"),
            private_path: v.opt("JWT_PRIVATE_KEY_PATH").map(PathBuf::from),
            public_path: v.opt("JWT_PUBLIC_KEY_PATH").map(PathBuf::from),
            additional_public_pem: v.raw("JWT_ADDITIONAL_PUBLIC_KEYS"),
            additional_public_path: v.opt("JWT_ADDITIONAL_PUBLIC_KEYS_PATH").map(PathBuf::from),
        };
        if keys.private_pem.is_some() && keys.private_path.is_some() {
            return Err(ConfigError::new(
                "JWT_PRIVATE_KEY_PATH",
                "set either JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_PATH, not both",
            ));
        }
        if environment.is_production_like() && !keys.is_configured() {
            return Err(ConfigError::new(
                "JWT_PRIVATE_KEY",
                "required in production (generated development keys are refused)",
            ));
        }
        let jwt = JwtConfig {
            keys,
            // Not the port-derived default of PUBLIC_URL: instances of one
            // fleet listening on different ports must issue tokens the
            // others accept.
            issuer: v
                .opt("JWT_ISSUER")
                .or_else(|| public_url_set.map(|u| u.trim_end_matches('/').to_string()))
                .unwrap_or_else(|| DEFAULT_ISSUER.to_string()),
            audience: v
                .opt("JWT_AUDIENCE")
                .unwrap_or_else(|| "suma-finance".to_string()),
            access_ttl: Duration::from_secs(v.bounded(
                "ACCESS_TOKEN_TTL_SECONDS",
                900,
                30,
                86_400,
            )?),
        };

        let smtp = Self::smtp(&v)?;
        let mail_from = v
            .opt("MAIL_FROM")
            .unwrap_or_else(|| "SUMA Finance <no-reply@suma.finance>".to_string());

        let mail_retry_base =
            Duration::from_millis(v.bounded("MAIL_RETRY_BASE_MS", 2000, 10, 600_000)?);
        let data_key = v.raw("DATA_ENCRYPTION_KEY").map(SecretString::from);
        if environment.is_production_like() && data_key.is_none() {
            return Err(ConfigError::new(
                "DATA_ENCRYPTION_KEY",
                "required in production (a generated development key is refused)",
            ));
        }
        let statsd = match v.opt("DD_AGENT_HOST") {
            None => None,
            Some(host) => Some(StatsdConfig {
                host,
                port: v.bounded("DD_DOGSTATSD_PORT", 8125, 1, 65535)? as u16,
            }),
        };

        let trusted_proxies = match v.opt("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            ConfigError::new(
                                "TRUSTED_PROXIES",
                                format!("{s:?} is not a CIDR or IP address"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        let rate_limits = RateLimits {
            login: v.bounded("RATE_LIMIT_LOGIN", 5, 1, 10_000_000)? as u32,
            register: v.bounded("RATE_LIMIT_REGISTER", 3, 1, 10_000_000)? as u32,
            password_reset: v.bounded("RATE_LIMIT_PASSWORD_RESET", 3, 1, 10_000_000)? as u32,
            otp: v.bounded("RATE_LIMIT_OTP", 5, 1, 10_000_000)? as u32,
            export: v.bounded("RATE_LIMIT_EXPORT", 3, 1, 10_000_000)? as u32,
            window: Duration::from_secs(v.bounded("RATE_LIMIT_WINDOW_SECONDS", 300, 1, 86_400)?),
            ipv6_prefix: v.bounded("RATE_LIMIT_IPV6_PREFIX", 64, 32, 128)? as u8,
            mail_per_address: v.bounded("MAIL_PER_ADDRESS_PER_HOUR", 10, 1, 10_000_000)? as u32,
        };

        let security = SecurityPolicy {
            max_login_attempts: v.bounded("MAX_LOGIN_ATTEMPTS", 5, 1, 1000)? as u32,
            lockout_duration: Duration::from_secs(
                60 * v.bounded("LOCKOUT_DURATION_MINUTES", 15, 1, 7 * 24 * 60)?,
            ),
            session_timeout: Duration::from_secs(
                60 * v.bounded("SESSION_TIMEOUT_MINUTES", 15, 1, 7 * 24 * 60)?,
            ),
            session_absolute_timeout: Duration::from_secs(
                3600 * v.bounded("SESSION_ABSOLUTE_TIMEOUT_HOURS", 8, 1, 24 * 90)?,
            ),
            session_revalidate: Duration::from_secs(v.bounded(
                "SESSION_REVALIDATE_SECONDS",
                5,
                1,
                60,
            )?),
            otp_expiry: Duration::from_secs(60 * v.bounded("OTP_EXPIRY_MINUTES", 5, 1, 60)?),
            verification_token_ttl: Duration::from_secs(24 * 3600),
            refresh_reuse_grace: Duration::from_secs(v.bounded(
                "REFRESH_REUSE_GRACE_SECONDS",
                0,
                0,
                30,
            )?),
            unverified_account_max_age: Duration::from_secs(
                86_400 * v.bounded("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", 7, 1, 3650)?,
            ),
        };

        let consents = crate::domain::consent::ConsentVersions {
            terms: v.version("CONSENT_TERMS_VERSION")?,
            privacy: v.version("CONSENT_PRIVACY_VERSION")?,
            marketing: v.version("CONSENT_MARKETING_VERSION")?,
            data_processing: v.version("CONSENT_DATA_PROCESSING_VERSION")?,
        };

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let hashing = HashingConfig {
            memory_kib: v.bounded("ARGON2_MEMORY_KIB", 19_456, 8, 4 * 1024 * 1024)? as u32,
            iterations: v.bounded("ARGON2_ITERATIONS", 2, 1, 100)? as u32,
            parallelism: v.bounded("ARGON2_PARALLELISM", 1, 1, 64)? as u32,
            workers: v.bounded("HASH_WORKERS", cores as u64, 1, 1024)? as usize,
            queue: v.bounded("HASH_QUEUE", 64 * cores as u64, 0, 1_000_000)? as usize,
        };
        if environment == Environment::Production && hashing.memory_kib < 19_456 {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                "production refuses Argon2id memory below the OWASP minimum (19456 KiB)",
            ));
        }
        let http_workers = v.bounded("HTTP_WORKERS", cores as u64, 1, 1024)? as usize;
        let shutdown_timeout =
            Duration::from_secs(v.bounded("SHUTDOWN_TIMEOUT_SECONDS", 25, 1, 300)?);
        let actor_idle_timeout =
            Duration::from_secs(v.bounded("ACTOR_IDLE_SECONDS", 60, 1, 86_400)?);
        let sweep_interval =
            Duration::from_secs(v.bounded("SWEEP_INTERVAL_SECONDS", 600, 1, 86_400)?);
        let second_factor = SecondFactorPolicy {
            max_attempts: v.bounded("SECOND_FACTOR_MAX_ATTEMPTS", 5, 1, 10)? as u32,
            lockout_duration: Duration::from_secs(
                60 * v.bounded("SECOND_FACTOR_LOCKOUT_MINUTES", 15, 1, 24 * 60)?,
            ),
            max_failures_per_day: v.bounded("SECOND_FACTOR_MAX_FAILURES_PER_DAY", 20, 1, 100)?
                as u32,
            challenges_per_hour: v.bounded("MFA_CHALLENGES_PER_HOUR", 10, 1, 10_000_000)? as u32,
            new_device_step_up: v.parse("NEW_DEVICE_STEP_UP", false)?,
        };

        let config = Config {
            environment,
            log_level,
            host,
            port,
            data_dir,
            public_url,
            database,
            redis,
            jwt,
            smtp,
            mail_from,
            mail_retry_base,
            data_key,
            statsd,
            trusted_proxies,
            rate_limits,
            security,
            consents,
            hashing,
            http_workers,
            shutdown_timeout,
            actor_idle_timeout,
            sweep_interval,
            version: env!("CARGO_PKG_VERSION"),
            tags: ServiceTags {
                service: v
                    .opt("DD_SERVICE")
                    .unwrap_or_else(|| "suma-auth".to_string()),
                env: v
                    .opt("DD_ENV")
                    .unwrap_or_else(|| environment.as_str().to_string()),
                version: v
                    .opt("DD_VERSION")
                    .unwrap_or_else(|| BUILD_VERSION.to_string()),
            },
            second_factor,
        };
        config.refuse_production_shortcuts()?;
        Ok(config)
    }

    fn database(v: &Vars<'_>, data_dir: &std::path::Path) -> Result<DatabaseConfig, ConfigError> {
        let (url, url_mode, url_root, host_var) = if let Some(url) = v.raw("DATABASE_URL") {
            let url = url.trim().to_string();
            if let Some(path) = url.strip_prefix("sqlite://") {
                return Ok(DatabaseConfig::Sqlite {
                    path: PathBuf::from(path),
                });
            }
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite://",
                ));
            }
            let (rest, mode, root) = split_ssl_params(&url);
            (rest, mode, root, "DATABASE_URL")
        } else {
            let Some(host) = v.opt("DB_HOST") else {
                return Ok(DatabaseConfig::Sqlite {
                    path: data_dir.join("suma-auth.db"),
                });
            };
            let port = v.bounded("DB_PORT", 5432, 1, 65535)?;
            let name = v
                .opt("DB_NAME")
                .ok_or_else(|| ConfigError::new("DB_NAME", "required when DB_HOST is set"))?;
            let user = v
                .opt("DB_USER")
                .ok_or_else(|| ConfigError::new("DB_USER", "required when DB_HOST is set"))?;
            // Built in the key/value form so that passwords need no URL escaping.
            let mut url = format!(
                "host='{}' port={port} dbname='{}' user='{}'",
                quote_conn(&host),
                quote_conn(&name),
                quote_conn(&user)
            );
            if let Some(password) = v.raw("DB_PASSWORD") {
                url.push_str(&format!(" password='{}'", quote_conn(&password)));
            }
            (url, None, None, "DB_HOST")
        };
        // The connection string's own sslmode wins over DB_SSLMODE, as in libpq.
        let env_mode = v.opt("DB_SSLMODE");
        let (mode_text, mode_var) = match (url_mode, env_mode) {
            (Some(m), _) => (Some(m), "DATABASE_URL"),
            (None, Some(m)) => (Some(m), "DB_SSLMODE"),
            (None, None) => (None, "DB_SSLMODE"),
        };
        let mode = match mode_text {
            None => SslMode::Prefer,
            Some(m) => m
                .parse()
                .map_err(|e: String| ConfigError::new(mode_var, e))?,
        };
        let root_cert = url_root
            .or_else(|| v.raw("DB_SSLROOTCERT"))
            .map(|r| RootCert::from_setting(&r));
        let pool_size = v.bounded("DB_POOL_SIZE", 16, 1, 1000)? as u32;
        let allow_insecure: bool = v.parse("DB_SSLMODE_ALLOW_INSECURE", false)?;
        Ok(DatabaseConfig::Postgres {
            url: SecretString::from(url),
            tls: PgTls {
                mode,
                root_cert,
                mode_var,
                host_var,
            },
            pool_size,
        })
        .and_then(|db| Self::refuse_insecure_tls(v, db, allow_insecure))
    }

    /// Production talks to its database over verified TLS unless told otherwise.
    fn refuse_insecure_tls(
        v: &Vars<'_>,
        db: DatabaseConfig,
        allow_insecure: bool,
    ) -> Result<DatabaseConfig, ConfigError> {
        let environment: Environment = v.parse("ENVIRONMENT", Environment::Development)?;
        if let DatabaseConfig::Postgres { tls, .. } = &db {
            if environment == Environment::Production
                && tls.mode < SslMode::VerifyFull
                && !allow_insecure
            {
                return Err(ConfigError::new(
                    tls.mode_var,
                    format!(
                        "production refuses sslmode {} (use verify-full with DB_SSLROOTCERT, or set DB_SSLMODE_ALLOW_INSECURE=true deliberately)",
                        tls.mode.as_str()
                    ),
                ));
            }
        }
        Ok(db)
    }

    fn smtp(v: &Vars<'_>) -> Result<Option<SmtpConfig>, ConfigError> {
        if let Some(host) = v.opt("SMTP_HOST") {
            let tls: SmtpTls = v.parse("SMTP_TLS", SmtpTls::StartTls)?;
            let default_port = match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            };
            return Ok(Some(SmtpConfig {
                host,
                port: v.bounded("SMTP_PORT", default_port, 1, 65535)? as u16,
                username: v.opt("SMTP_USERNAME"),
                password: v.raw("SMTP_PASSWORD").map(SecretString::from),
                tls,
            }));
        }
        if let Some(key) = v.raw("SENDGRID_API_KEY") {
            // SendGrid's SMTP relay: user "apikey", the API key as password.
            return Ok(Some(SmtpConfig {
                host: "smtp.sendgrid.net".to_string(),
                port: v.bounded("SMTP_PORT", 587, 1, 65535)? as u16,
                username: Some("apikey".to_string()),
                password: Some(SecretString::from(key.trim().to_string())),
                tls: SmtpTls::StartTls,
            }));
        }
        Ok(None)
    }

    fn refuse_production_shortcuts(&self) -> Result<(), ConfigError> {
        if self.environment != Environment::Production {
            return Ok(());
        }
        if matches!(self.database, DatabaseConfig::Sqlite { .. }) {
            return Err(ConfigError::new(
                "DB_HOST",
                "production needs PostgreSQL (DB_HOST/DB_* or DATABASE_URL); the embedded database is for development",
            ));
        }
        if self.smtp.is_none() {
            return Err(ConfigError::new(
                "SENDGRID_API_KEY",
                "production needs a mail relay (SENDGRID_API_KEY or SMTP_HOST); mail files are for development",
            ));
        }
        if let Some(smtp) = &self.smtp {
            if smtp.tls == SmtpTls::None {
                return Err(ConfigError::new(
                    "SMTP_TLS",
                    "production refuses SMTP without TLS",
                ));
            }
        }
        if self.trusted_proxies.is_empty() {
            return Err(ConfigError::new(
                "TRUSTED_PROXIES",
                "required in production: the load balancer's (and CDN's) address ranges, so that rate limits and audit see the client's address, not the proxy's",
            ));
        }
        if !self.public_url.starts_with("https://") {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "production links must be https://",
            ));
        }
        Ok(())
    }

    /// True when the server runs on its embedded single-node defaults.
    pub fn is_embedded(&self) -> bool {
        matches!(self.database, DatabaseConfig::Sqlite { .. })
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }
}

fn quote_conn(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    /// Instances on different ports share an issuer unless told otherwise;
    /// `PUBLIC_URL`, then `JWT_ISSUER`, set it.
    #[test]
    fn the_issuer_does_not_depend_on_the_port() {
        let on = |port: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![("PORT", port)];
            pairs.extend_from_slice(extra);
            config(&pairs).unwrap().jwt.issuer
        };
        assert_eq!(on("8081", &[]), on("8082", &[]));
        assert_eq!(on("8081", &[]), DEFAULT_ISSUER);
        let public = [("PUBLIC_URL", "https://auth.example/")];
        assert_eq!(on("8081", &public), "https://auth.example");
        let both = [
            ("PUBLIC_URL", "https://auth.example"),
            ("JWT_ISSUER", "https://issuer.example"),
        ];
        assert_eq!(on("8081", &both), "https://issuer.example");
    }

    #[test]
    fn empty_environment_gives_embedded_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert!(c.is_embedded());
        assert_eq!(c.security.max_login_attempts, 5);
        assert_eq!(c.security.session_timeout, Duration::from_secs(900));
        assert_eq!(c.rate_limits.register, 3);
        assert_eq!(c.hashing.memory_kib, 19_456);
        assert_eq!(c.consents.terms, "1.0");
        assert_eq!(c.rate_limits.export, 3);
    }

    #[test]
    fn session_revalidation_defaults_to_five_seconds_and_is_bounded() {
        let c = config(&[]).unwrap();
        assert_eq!(c.security.session_revalidate, Duration::from_secs(5));
        let c = config(&[("SESSION_REVALIDATE_SECONDS", "1")]).unwrap();
        assert_eq!(c.security.session_revalidate, Duration::from_secs(1));
        for bad in ["0", "61"] {
            let err = config(&[("SESSION_REVALIDATE_SECONDS", bad)]).unwrap_err();
            assert_eq!(err.var, "SESSION_REVALIDATE_SECONDS");
        }
    }

    #[test]
    fn consent_versions_are_read_and_checked() {
        let c = config(&[
            ("CONSENT_TERMS_VERSION", "2026-01"),
            ("CONSENT_PRIVACY_VERSION", " 3 "),
        ])
        .unwrap();
        assert_eq!(
            (c.consents.terms.as_str(), c.consents.privacy.as_str()),
            ("2026-01", "3")
        );
        let err = config(&[("CONSENT_PRIVACY_VERSION", &"9".repeat(21))]).unwrap_err();
        assert_eq!(err.var, "CONSENT_PRIVACY_VERSION");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("MAX_LOGIN_ATTEMPTS", "many")]).unwrap_err();
        assert_eq!(err.var, "MAX_LOGIN_ATTEMPTS");
        let err = config(&[("PORT", "70000")]).unwrap_err();
        assert_eq!(err.var, "PORT");
        let err = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, nonsense")]).unwrap_err();
        assert_eq!(err.var, "TRUSTED_PROXIES");
        let err = config(&[("DB_HOST", "db")]).unwrap_err();
        assert_eq!(err.var, "DB_NAME");
    }

    #[test]
    fn production_refuses_shortcuts() {
        let err = config(&[("ENVIRONMENT", "production")]).unwrap_err();
        assert_eq!(err.var, "JWT_PRIVATE_KEY");
        let err = config(&[
            ("ENVIRONMENT", "production"),
            ("JWT_PRIVATE_KEY_PATH", "/k.pem"),
            (
                "DATA_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ])
        .unwrap_err();
        assert_eq!(err.var, "DB_HOST");
        let complete = [
            ("ENVIRONMENT", "production"),
            ("JWT_PRIVATE_KEY_PATH", "/k.pem"),
            (
                "DATA_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("DB_HOST", "db"),
            ("DB_NAME", "auth"),
            ("DB_USER", "u"),
            ("DB_SSLMODE", "verify-full"),
            ("SENDGRID_API_KEY", "k"),
            ("PUBLIC_URL", "https://auth.example"),
        ];
        let err = config(&complete).unwrap_err();
        assert_eq!(err.var, "TRUSTED_PROXIES");
        let mut with_proxies = complete.to_vec();
        with_proxies.push(("TRUSTED_PROXIES", "10.0.0.0/16"));
        assert!(config(&with_proxies).is_ok());
    }

    #[test]
    fn db_components_build_a_postgres_config() {
        let c = config(&[
            ("DB_HOST", "db"),
            ("DB_NAME", "auth"),
            ("DB_USER", "u"),
            ("DB_PASSWORD", "p'w"),
        ])
        .unwrap();
        assert!(matches!(c.database, DatabaseConfig::Postgres { .. }));
        assert!(!format!("{:?}", c.database).contains("p'w"));
    }

    #[test]
    fn sendgrid_key_selects_the_relay() {
        let c = config(&[("SENDGRID_API_KEY", "SG.x")]).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.host, "smtp.sendgrid.net");
        assert_eq!(smtp.username.as_deref(), Some("apikey"));
    }
}
