//! The catalogue of every environment variable the server reads, printed by
//! `suma-auth env` and checked by the deployment's consistency tests (compose,
//! the ECS task definition). A unit test asserts that this list and the names
//! `Config::from_lookup` asks for are the same set.

use serde::Serialize;

/// One variable: its default, whether it holds a secret, and whether
/// production refuses to start without it (or one of its alternatives).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EnvVar {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub required_in_production: bool,
    pub alternatives: &'static [&'static str],
    pub description: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    description: &'static str,
) -> EnvVar {
    EnvVar {
        name,
        default,
        secret: false,
        required_in_production: false,
        alternatives: &[],
        description,
    }
}

const fn secret(name: &'static str, description: &'static str) -> EnvVar {
    EnvVar {
        name,
        default: None,
        secret: true,
        required_in_production: false,
        alternatives: &[],
        description,
    }
}

const fn required(mut v: EnvVar, alternatives: &'static [&'static str]) -> EnvVar {
    v.required_in_production = true;
    v.alternatives = alternatives;
    v
}

/// Every variable, grouped as the README's configuration table groups them.
pub const ENV_VARS: &[EnvVar] = &[
    // Runtime
    required(var("ENVIRONMENT", Some("development"), "development|dev|test|staging|production|prod; staging and production log JSON and refuse development shortcuts"), &[]),
    var("LOG_LEVEL", Some("info"), "tracing filter, e.g. info or suma_auth=debug"),
    var("HOST", Some("0.0.0.0"), "listen address"),
    var("PORT", Some("8080"), "listen port (also the port `suma-auth health` asks)"),
    var("DATA_DIR", Some("./data"), "home of the embedded database, development keys and mail files"),
    required(var("PUBLIC_URL", Some("http://localhost:$PORT"), "base of links in mails; https:// in production"), &[]),
    var("HTTP_WORKERS", Some("cores"), "HTTP worker threads"),
    var("SHUTDOWN_TIMEOUT_SECONDS", Some("25"), "graceful drain on SIGTERM (keep below the orchestrator's stop timeout)"),
    required(var("TRUSTED_PROXIES", None, "CIDRs whose X-Forwarded-For is believed: the load balancer's subnets and the CDN's origin-facing ranges"), &[]),
    // Database
    required(secret("DATABASE_URL", "postgres://… (or sqlite://path); alternative to DB_*; may carry sslmode/sslrootcert"), &["DB_HOST"]),
    required(var("DB_HOST", None, "PostgreSQL host; unset (and no DATABASE_URL) = embedded SQLite"), &["DATABASE_URL"]),
    var("DB_PORT", Some("5432"), "PostgreSQL port"),
    required(var("DB_NAME", None, "database name (required with DB_HOST)"), &["DATABASE_URL"]),
    required(var("DB_USER", None, "database user (required with DB_HOST)"), &["DATABASE_URL"]),
    secret("DB_PASSWORD", "database password"),
    required(var("DB_SSLMODE", Some("prefer"), "disable|prefer|require|verify-ca|verify-full (libpq semantics); production refuses below verify-full"), &["DATABASE_URL"]),
    var("DB_SSLROOTCERT", None, "CA bundle trusted beside the system roots: a file path or the PEM text (e.g. the RDS bundle)"),
    var("DB_SSLMODE_ALLOW_INSECURE", Some("false"), "true lets production run below verify-full (deliberate exceptions only)"),
    var("DB_POOL_SIZE", Some("16"), "PostgreSQL connections per instance"),
    // Redis
    var("REDIS_ENDPOINT", None, "host:port, redis://… or rediss://… (TLS); unset = in-process state (single instance)"),
    secret("REDIS_AUTH_TOKEN", "Redis AUTH token (ElastiCache auth token)"),
    var("REDIS_KEY_PREFIX", Some("suma-auth"), "first part of every Redis key; the server and its operator commands (`suma-auth admin`) must agree"),
    // Tokens and keys
    required(secret("JWT_PRIVATE_KEY", "RS256 signing key, PEM value"), &["JWT_PRIVATE_KEY_PATH"]),
    var("JWT_PUBLIC_KEY", None, "its public key, PEM value (derived from the private key when unset)"),
    required(var("JWT_PRIVATE_KEY_PATH", None, "RS256 signing key, PEM file"), &["JWT_PRIVATE_KEY"]),
    var("JWT_PUBLIC_KEY_PATH", None, "its public key, PEM file"),
    var("JWT_ADDITIONAL_PUBLIC_KEYS", None, "verify-only public keys (PEM, concatenated) during a key rotation"),
    var("JWT_ADDITIONAL_PUBLIC_KEYS_PATH", None, "the same, from a file"),
    var("JWT_ISSUER", Some("PUBLIC_URL when set, else suma-auth"), "iss claim"),
    var("JWT_AUDIENCE", Some("suma-finance"), "aud claim"),
    var("ACCESS_TOKEN_TTL_SECONDS", Some("900"), "access-token lifetime"),
    required(secret("DATA_ENCRYPTION_KEY", "AES-256-GCM key (base64, 32 bytes) sealing TOTP secrets and queued mail"), &[]),
    // Mail
    required(secret("SENDGRID_API_KEY", "selects SendGrid's SMTP relay (smtp.sendgrid.net:587)"), &["SMTP_HOST"]),
    required(var("SMTP_HOST", None, "SMTP relay; unset (and no SendGrid key) = mail files under DATA_DIR/mail"), &["SENDGRID_API_KEY"]),
    var("SMTP_PORT", Some("587"), "SMTP port (465 with SMTP_TLS=tls)"),
    var("SMTP_USERNAME", None, "SMTP user"),
    secret("SMTP_PASSWORD", "SMTP password"),
    var("SMTP_TLS", Some("starttls"), "starttls|tls|none (production refuses none)"),
    var("MAIL_FROM", Some("SUMA Finance <no-reply@suma.finance>"), "sender"),
    var("MAIL_RETRY_BASE_MS", Some("2000"), "first outbox retry delay; later ones double"),
    // Metrics
    var("DD_AGENT_HOST", None, "DogStatsD agent host; unset = no metrics"),
    var("DD_DOGSTATSD_PORT", Some("8125"), "DogStatsD port"),
    var("DD_SERVICE", Some("suma-auth"), "service tag of every metric"),
    var("DD_ENV", Some("ENVIRONMENT"), "env tag of every metric"),
    var("DD_VERSION", Some("build version+git sha"), "version tag of every metric"),
    // Limits and policy
    var("RATE_LIMIT_LOGIN", Some("5"), "login requests per client IP per window"),
    var("RATE_LIMIT_REGISTER", Some("3"), "registrations per client IP per window"),
    var("RATE_LIMIT_PASSWORD_RESET", Some("3"), "reset requests per client IP per window"),
    var("RATE_LIMIT_OTP", Some("5"), "OTP requests per client IP per window"),
    var("RATE_LIMIT_EXPORT", Some("3"), "data exports (GET /me/export) per client IP per window"),
    var("RATE_LIMIT_WINDOW_SECONDS", Some("300"), "rate-limit window"),
    var("MAIL_PER_ADDRESS_PER_HOUR", Some("10"), "verification links and registration notices mailed to one address per hour, whatever client asks"),
    var("RATE_LIMIT_IPV6_PREFIX", Some("64"), "IPv6 clients are limited per network of this many bits (32-128)"),
    var("MAX_LOGIN_ATTEMPTS", Some("5"), "password verifications per account per lockout window"),
    var("LOCKOUT_DURATION_MINUTES", Some("15"), "lockout length"),
    var("SESSION_TIMEOUT_MINUTES", Some("15"), "idle timeout of a session"),
    var("SESSION_ABSOLUTE_TIMEOUT_HOURS", Some("8"), "absolute lifetime of a session"),
    var("SESSION_REVALIDATE_SECONDS", Some("5"), "with Redis, how long an instance decides a session from memory before asking Redis again (1-60)"),
    var("OTP_EXPIRY_MINUTES", Some("5"), "email OTP lifetime"),
    var("CONSENT_TERMS_VERSION", Some("1.0"), "current version of the terms of service; sign-in asks users who have not accepted it (403 consent_required)"),
    var("CONSENT_PRIVACY_VERSION", Some("1.0"), "current version of the privacy policy; sign-in asks users who have not accepted it"),
    var("CONSENT_MARKETING_VERSION", Some("1.0"), "current version of the marketing consent text (recorded with each grant)"),
    var("CONSENT_DATA_PROCESSING_VERSION", Some("1.0"), "current version of the optional data-processing consent text (recorded with each grant)"),
    var("SECOND_FACTOR_MAX_ATTEMPTS", Some("5"), "wrong second-factor codes (email, TOTP, recovery) per account per window before that step locks (1-10)"),
    var("SECOND_FACTOR_LOCKOUT_MINUTES", Some("15"), "second-factor window and lock length"),
    var("SECOND_FACTOR_MAX_FAILURES_PER_DAY", Some("20"), "wrong second-factor codes per account per day before the step locks for a day"),
    var("MFA_CHALLENGES_PER_HOUR", Some("10"), "sign-in challenges and step-up codes opened per account per hour (then 429)"),
    var("NEW_DEVICE_STEP_UP", Some("false"), "true: a sign-in from a device new to an account without a second factor must pass an emailed code first"),
    var("REFRESH_REUSE_GRACE_SECONDS", Some("0"), "a spent refresh token retried within this time is refused without revoking (max 30)"),
    var("UNVERIFIED_ACCOUNT_MAX_AGE_DAYS", Some("7"), "accounts still unverified this many days after their latest registration are deleted by the sweep"),
    // Password hashing and actors
    var("ARGON2_MEMORY_KIB", Some("19456"), "Argon2id memory (production refuses less)"),
    var("ARGON2_ITERATIONS", Some("2"), "Argon2id passes"),
    var("ARGON2_PARALLELISM", Some("1"), "Argon2id lanes"),
    var("HASH_WORKERS", Some("cores"), "hashing threads"),
    var("HASH_QUEUE", Some("64 x cores"), "hash requests allowed to wait before 503"),
    var("ACTOR_IDLE_SECONDS", Some("60"), "a per-user actor unused this long is reaped"),
    var("SWEEP_INTERVAL_SECONDS", Some("600"), "how often expired rows are pruned"),
];

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::ENV_VARS;
    use crate::config::Config;

    /// The catalogue is exactly the set of names the config reader asks for
    /// (over inputs that take every branch), so `suma-auth env` cannot drift.
    #[test]
    fn the_catalogue_is_what_the_config_reads() {
        let asked = RefCell::new(BTreeSet::new());
        let inputs: &[&[(&str, &str)]] = &[
            &[],
            &[
                ("DB_HOST", "db"),
                ("DB_NAME", "n"),
                ("DB_USER", "u"),
                ("REDIS_ENDPOINT", "r:6379"),
                ("DD_AGENT_HOST", "a"),
                ("SMTP_HOST", "m"),
                ("TRUSTED_PROXIES", "10.0.0.0/8"),
            ],
            &[
                ("DATABASE_URL", "postgres://db/x"),
                ("SENDGRID_API_KEY", "k"),
            ],
        ];
        for pairs in inputs {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let _ = Config::from_lookup(&|k| {
                asked.borrow_mut().insert(k.to_string());
                map.get(k).cloned()
            });
        }
        let catalogue: BTreeSet<String> = ENV_VARS.iter().map(|v| v.name.to_string()).collect();
        let asked = asked.into_inner();
        let unlisted: Vec<_> = asked.difference(&catalogue).collect();
        let unread: Vec<_> = catalogue.difference(&asked).collect();
        assert!(
            unlisted.is_empty(),
            "read but not in the catalogue: {unlisted:?}"
        );
        assert!(
            unread.is_empty(),
            "in the catalogue but never read: {unread:?}"
        );
    }

    #[test]
    fn names_are_unique() {
        let names: BTreeSet<_> = ENV_VARS.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), ENV_VARS.len());
    }
}
