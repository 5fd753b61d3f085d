//! Building and running the application: one [`Application::build`] used by
//! `main` and by the tests (which bind port 0 and bring their own database).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::auth::hashing::{HashError, PasswordHasher};
use crate::auth::jwt::JwtService;
use crate::auth::keys;
use crate::auth::seal::{short_fingerprint, DATA_KEY_PURPOSE};
use crate::config::{Config, DatabaseConfig};
use crate::domain::password;
use crate::http::{self, client::TrustedProxies, extract, middleware};
use crate::mail::Mailer;
use crate::redis::RedisStore;
use crate::security::{FactorLockout, LockoutStore, RateLimiter, SessionDecisions, SessionGuard};
use crate::services::audit_writer::AuditWriter;
use crate::services::background::Background;
use crate::services::{Clock, Parts, Services};
use crate::storage::postgres::PgStore;
use crate::storage::sqlite::SqliteStore;
use crate::storage::DynStore;
use crate::telemetry::metrics::Metrics;
use suma_auth_actors::{Backing, LockoutPolicy, SecurityActors, SecurityConfig};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("signing keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("password hashing: {0}")]
    Hashing(#[from] crate::auth::hashing::HashError),
    #[error("redis: {0}")]
    Redis(#[from] crate::redis::RedisError),
    #[error("actors: {0}")]
    Actors(#[from] suma_auth_actors::StartError),
    #[error("mail: {0}")]
    Mail(#[from] crate::mail::SealError),
    #[error("DATA_ENCRYPTION_KEY is not the key this database's data was sealed with (recorded fingerprint {recorded}, this key's {ours}): give every instance the same key; to adopt this one and give up what the old one sealed, run `suma-auth admin keys adopt-data-key`")]
    DataKey { recorded: String, ours: String },
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Knobs that tests turn; production uses the defaults.
#[derive(Clone, Default)]
pub struct Options {
    /// Prefix of every Redis key (each test run gets its own).
    pub redis_prefix: Option<String>,
    /// The clock services read (tests advance it).
    pub clock: Option<Clock>,
    /// Holds the work done after an answer until a permit is added (tests
    /// look at what a request did before it answered).
    pub hold_background: Option<Arc<tokio::sync::Semaphore>>,
    /// A tool beside a running server (the operator commands): its writes to
    /// the embedded database are announced to the server; on PostgreSQL it
    /// opens no connection listening for account changes.
    pub beside_server: bool,
    /// Revocations are written to Redis but not published to the other
    /// instances (tests of the revalidation bound).
    pub unpublished_revocations: bool,
    /// How long a revocation waits for the other instances to confirm it
    /// (default `REVOCATION_CONFIRM_WAIT`).
    pub revocation_confirm_wait: Option<std::time::Duration>,
    /// Received revocation messages are applied only once a permit is added
    /// (an instance slow to apply them).
    pub hold_revocation_feed: Option<Arc<tokio::sync::Semaphore>>,
    /// The revocation channel is never subscribed (an instance whose
    /// subscription is down while Redis and the others are up).
    pub no_revocation_feed: bool,
    /// Starts whatever data key the database recorded (the operator command
    /// that adopts a new key).
    pub any_data_key: bool,
}

pub struct Application {
    port: u16,
    server: Server,
    parts: Parts,
}

/// Opens the configured store; Postgres is migrated under the advisory lock.
/// `beside_server`: this process is a tool next to a running server, whose
/// embedded database it announces its writes to (see `sqlite::external`).
pub async fn open_store(config: &Config, beside_server: bool) -> Result<DynStore, StartError> {
    Ok(match &config.database {
        DatabaseConfig::Postgres {
            url,
            tls,
            pool_size,
        } => {
            let wait = Duration::from_secs(30);
            let store = if beside_server {
                PgStore::connect_for_tool(url, tls, *pool_size, wait).await?
            } else {
                PgStore::connect(url, tls, *pool_size, wait).await?
            };
            let applied = store.migrate().await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "database migrated");
            }
            Arc::new(store)
        }
        DatabaseConfig::Sqlite { path } if beside_server => {
            Arc::new(SqliteStore::open_beside_server(path)?)
        }
        DatabaseConfig::Sqlite { path } => {
            Arc::new(SqliteStore::open(path)?.commit_on_caller(config.http_workers == 1))
        }
    })
}

/// What the use cases are made of, without the HTTP server, the mail worker,
/// the periodic jobs or the session revocation feed (which only a server
/// judging requests subscribes to): what `Application` serves with, and what
/// the operator commands (`suma-auth admin`) act through.
pub async fn build_parts(config: Config, options: Options) -> Result<Parts, StartError> {
    let config = Arc::new(config);
    let metrics = Metrics::from_config(&config).map_err(StartError::Metrics)?;
    // A first start in development generates its signing key (about 0.15 s
    // of RSA work) while the database opens and migrates, not after; so does
    // the hashing pool, whose start hashes once (the stand-in hash that
    // unknown addresses are checked against).
    let key_config = config.clone();
    let key = tokio::task::spawn_blocking(move || keys::load(&key_config));
    let hashing_config = config.clone();
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(&hashing_config.hashing));
    let store = open_store(&config, options.beside_server).await?;
    let key = key.await.map_err(|_| keys::KeyError::Generation)??;
    let hasher = hasher
        .await
        .map_err(|e| HashError::Internal(format!("the hashing pool did not start: {e}")))??;
    let verify_only = keys::load_additional(&config.jwt.keys)?;
    let jwt = JwtService::with_keys(
        key,
        verify_only,
        &config.jwt.issuer,
        &config.jwt.audience,
        config.jwt.access_ttl,
    );
    let clock = options.clock.clone().unwrap_or_default();
    let mailer = Mailer::new(&config, metrics.clone(), store.clone(), clock.clone())?;
    // Another key would seal mail the other instances cannot open and digest
    // codes they cannot match: a configured one is refused. A development key
    // (none configured) is only reported, as before the check existed: such
    // a fleet is someone's experiment, whose instances may not share a
    // signing key either.
    let ours = mailer.sealer().fingerprint();
    let recorded = store.key_fingerprint(DATA_KEY_PURPOSE, &ours).await?;
    if recorded != ours && !options.any_data_key {
        let (recorded, ours) = (short_fingerprint(&recorded), short_fingerprint(&ours));
        if config.data_key.is_some() {
            return Err(StartError::DataKey { recorded, ours });
        }
        tracing::error!(
            recorded,
            ours,
            "the development data key is not the one this database's data was sealed with: mail and second-factor codes of the other instances will fail here; set the same DATA_ENCRYPTION_KEY (or JWT_PRIVATE_KEY) on every instance"
        );
    }
    let redis = match &config.redis {
        Some(redis) => Some(RedisStore::new(
            redis,
            options.redis_prefix.as_deref().unwrap_or(&redis.key_prefix),
        )?),
        None => None,
    };
    let lockout = LockoutStore::new(redis.clone(), store.clone());
    let factor_lockout = FactorLockout::start(
        &config.second_factor,
        config.actor_idle_timeout,
        lockout.clone(),
    )?;
    let actors = SecurityActors::start(
        SecurityConfig {
            lockout: LockoutPolicy::new(
                config.security.max_login_attempts,
                config.security.lockout_duration,
            ),
            idle_timeout: config.actor_idle_timeout,
            request_timeout: Duration::from_secs(5),
            backing_timeout: Duration::from_secs(3),
            ..SecurityConfig::default()
        },
        Backing::shared(lockout),
    )?;
    let rate_limiter = RateLimiter::start(config.rate_limits, redis.clone(), store.clone())?;
    let mut sessions = SessionGuard::new(
        redis.clone(),
        store.clone(),
        config.security.session_timeout,
        config.is_embedded(),
        config.jwt.access_ttl,
        config.security.session_revalidate,
        clock.clone(),
    );
    if options.unpublished_revocations {
        sessions = sessions.without_publishing();
    }
    if let Some(wait) = options.revocation_confirm_wait {
        sessions = sessions.confirming_within(wait);
    }
    if let Some(gate) = &options.hold_revocation_feed {
        sessions = sessions.holding_feed(gate.clone());
    }
    let audit_writer = AuditWriter::start(store.clone(), metrics.clone());
    let parts = Parts {
        config: config.clone(),
        store,
        hasher,
        jwt,
        mailer,
        metrics,
        clock,
        redis,
        actors,
        rate_limiter,
        sessions,
        factor_lockout,
        background: Background::new(options.hold_background.clone()),
        audit_writer,
    };
    Ok(parts)
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with(config, Options::default()).await
    }

    pub async fn build_with(config: Config, options: Options) -> Result<Self, StartError> {
        // The password lists and dictionaries (tens of ms of CPU) load on a
        // thread of their own while the store opens (and PostgreSQL
        // migrates), and are loaded before the server listens.
        let warming = std::thread::spawn(password::warm_up);
        let feed = !options.no_revocation_feed;
        let parts = build_parts(config, options).await?;
        if let Err(panic) = warming.join() {
            // As when they loaded here: the start fails.
            std::panic::resume_unwind(panic);
        }
        let config = parts.config.clone();
        if feed {
            parts.sessions.spawn_feed();
        }

        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?
            .port();

        let data = web::Data::new(Services::new(&parts));
        let trusted = web::Data::new(TrustedProxies(config.trusted_proxies.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(trusted.clone())
                .app_data(extract::json_config())
                .wrap(from_fn(extract::edge_checks))
                .wrap(from_fn(middleware::observe))
                .configure(http::configure)
                .default_service(web::to(http::fallback))
        })
        .workers(config.http_workers)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|source| StartError::Bind {
            addr: format!("{}:{port}", config.host),
            source,
        })?
        .run();

        spawn_gauges(parts.clone());
        tokio::spawn(parts.mailer.clone().run_worker());
        crate::jobs::spawn(parts.clone());
        Ok(Self {
            port,
            server,
            parts,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server was built from (the periodic jobs and tests hold it).
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (then drains within the shutdown timeout),
    /// then writes the audit rows still queued.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.parts.audit_writer.shutdown().await;
        served
    }
}

/// Publishes gauges from state on a timer (statsd gauges cannot be incremented).
fn spawn_gauges(services: Parts) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        let mut decided = SessionDecisions::default();
        loop {
            tick.tick().await;
            if n % 10 == 0 {
                publish_gauges(&services).await;
                let now = services.sessions.decisions();
                services.metrics.session_checks(
                    now.memory - decided.memory,
                    now.redis - decided.redis,
                    now.database - decided.database,
                );
                decided = now;
            }
            if n % 30 == 29 {
                release_freed_memory();
            }
            services.sessions.flush_shared(services.clock.now()).await;
            if n % 5 == 4 {
                services.sessions.flush_activity(services.clock.now()).await;
            }
            services.metrics.flush();
            n += 1;
        }
    });
}

/// One round of gauges: pools, actors, the outbox and whether each
/// dependency answers (a probe bounded by two seconds, like `/ready`).
async fn publish_gauges(services: &Parts) {
    let metrics = &services.metrics;
    metrics.hash_pool_in_flight(services.hasher.in_flight());
    metrics.hash_pool_rejected(services.hasher.take_rejected());
    let stats = services.actors.stats();
    metrics.actors(stats.live_actors, stats.mailbox_rejections);
    if let Some((open, idle)) = services.store.pool_state() {
        metrics.db_pool(open, idle);
    }
    let probe = Duration::from_secs(2);
    let db_up = matches!(
        tokio::time::timeout(probe, services.store.ping()).await,
        Ok(Ok(()))
    );
    metrics.dependency_up("database", db_up);
    if let Some(redis) = &services.redis {
        let (open, idle) = redis.pool_state();
        metrics.redis_pool(open, idle);
        let up = tokio::time::timeout(probe, redis.ping())
            .await
            .unwrap_or(false);
        metrics.dependency_up("redis", up);
        if !services.config.is_embedded() {
            metrics.revocation_feed(services.sessions.revocations_subscribed());
        }
    }
    if db_up {
        if let Some(outbox) = services.mailer.stats().await {
            metrics.outbox(outbox.pending, outbox.oldest_pending_secs, outbox.dead);
        }
    }
}

/// Hands memory freed by reaped actors back to the OS. glibc keeps freed heap
/// in its arenas, so without this the resident size never returns to its
/// baseline after a burst of distinct users.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
