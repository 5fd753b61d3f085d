//! PostgreSQL backend: a bb8 pool of tokio-postgres connections, one file per
//! aggregate. Statements that read the same in both dialects come from
//! [`crate::storage::sql`]; the ones here are PostgreSQL's own.

pub mod migrate;
pub mod tls;

use std::time::Duration;

use async_trait::async_trait;
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use super::*;

mod audit;
mod consents;
mod devices;
mod lockout;
mod outbox;
mod privacy;
mod rate;
mod second_factor;
mod sessions;
mod tokens;
mod user_changes;
mod users;

use outbox::insert_outbox;

/// Serialises one user's writes that must see each other (a per-user cap,
/// "is this device new?") until the transaction ends: $1 the user id.
///
/// Why an advisory lock and not `SELECT … FROM users … FOR UPDATE`: a row
/// lock on the user conflicts with the key-share lock that every foreign key
/// to `users` takes, and concurrent sign-ins of one user (device recording
/// beside session creation) deadlocked on it (40P01).
const LOCK_USER: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))";

/// Takes [`LOCK_USER`] for `user_id` inside `tx`.
async fn lock_user(tx: &Tx<'_>, user_id: &Uuid) -> StoreResult<()> {
    tx.execute(LOCK_USER, &[user_id]).await.map_err(q)?;
    Ok(())
}

type Pool = bb8::Pool<Manager>;

/// The pool's connections: tokio-postgres clients that keep every statement
/// they run prepared for as long as they live.
pub struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

/// The statements a connection has prepared, by their text.
type Statements = std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>;

/// More distinct statement texts than the store has; a bound, not a tuning.
const MAX_PREPARED: usize = 512;

/// The statement for `sql` prepared on this connection: parsed and planned
/// by the server once, not at every execution.
///
/// Why: tokio-postgres runs a statement given as text in two round trips
/// (prepare, then execute) and PostgreSQL parses and plans it every time; a
/// prepared one is a single round trip.
async fn prepared(
    client: &tokio_postgres::Client,
    statements: &Statements,
    sql: &str,
    types: &[tokio_postgres::types::Type],
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    let cached = statements
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(sql)
        .cloned();
    if let Some(statement) = cached {
        return Ok(statement);
    }
    let statement = client.prepare_typed(sql, types).await?;
    let mut statements = statements.lock().unwrap_or_else(|p| p.into_inner());
    if statements.len() < MAX_PREPARED {
        statements.insert(sql.to_string(), statement.clone());
    }
    Ok(statement)
}

/// Forgets the connection's statement for `sql` when the server says it no
/// longer fits: a migration changed the types of what it returns (0A000,
/// "cached plan must not change result type") or it is gone (26000). That
/// execution fails; the next one prepares it afresh.
fn forget_stale(statements: &Statements, sql: &str, e: &tokio_postgres::Error) {
    use tokio_postgres::error::SqlState;
    let stale = e.code().is_some_and(|c| {
        *c == SqlState::FEATURE_NOT_SUPPORTED || *c == SqlState::INVALID_SQL_STATEMENT_NAME
    });
    if stale {
        statements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sql);
    }
}

/// Runs `sql` prepared on the connection of `$self` (a client or a
/// transaction) with `$method`, forgetting the statement when it is stale.
macro_rules! run_prepared {
    ($self:ident, $sql:ident, $types:expr, $method:ident, $params:ident) => {{
        let statement = prepared($self.client(), $self.statements(), $sql, $types).await?;
        let result = $self.inner().$method(&statement, $params).await;
        if let Err(e) = &result {
            forget_stale($self.statements(), $sql, e);
        }
        result
    }};
}

/// The statement methods of a client or transaction, running each statement
/// prepared once per connection ([`prepared`]). They shadow the methods of
/// the same name on the tokio-postgres types they wrap.
macro_rules! prepared_statement_methods {
    () => {
        pub async fn execute(
            &self,
            sql: &str,
            params: &[Param<'_>],
        ) -> Result<u64, tokio_postgres::Error> {
            run_prepared!(self, sql, &[], execute, params)
        }

        pub async fn query(
            &self,
            sql: &str,
            params: &[Param<'_>],
        ) -> Result<Vec<Row>, tokio_postgres::Error> {
            run_prepared!(self, sql, &[], query, params)
        }

        pub async fn query_opt(
            &self,
            sql: &str,
            params: &[Param<'_>],
        ) -> Result<Option<Row>, tokio_postgres::Error> {
            run_prepared!(self, sql, &[], query_opt, params)
        }

        pub async fn query_one(
            &self,
            sql: &str,
            params: &[Param<'_>],
        ) -> Result<Row, tokio_postgres::Error> {
            run_prepared!(self, sql, &[], query_one, params)
        }
    };
}

/// A client with its prepared statements.
pub struct CachedClient {
    client: tokio_postgres::Client,
    statements: Statements,
}

impl std::ops::Deref for CachedClient {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl std::ops::DerefMut for CachedClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.client
    }
}

impl CachedClient {
    fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    fn inner(&self) -> &tokio_postgres::Client {
        &self.client
    }

    fn statements(&self) -> &Statements {
        &self.statements
    }

    prepared_statement_methods!();

    /// [`Self::query_opt`] with the parameter types given (where the server
    /// could not infer them).
    pub async fn query_opt_typed(
        &self,
        sql: &str,
        types: &[tokio_postgres::types::Type],
        params: &[Param<'_>],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        run_prepared!(self, sql, types, query_opt, params)
    }

    /// [`Self::query_one`] with the parameter types given.
    pub async fn query_one_typed(
        &self,
        sql: &str,
        types: &[tokio_postgres::types::Type],
        params: &[Param<'_>],
    ) -> Result<Row, tokio_postgres::Error> {
        run_prepared!(self, sql, types, query_one, params)
    }

    /// A transaction whose statements run prepared too.
    pub async fn transaction(&mut self) -> Result<Tx<'_>, tokio_postgres::Error> {
        let Self { client, statements } = self;
        Ok(Tx {
            tx: client.transaction().await?,
            statements,
        })
    }
}

/// Either a client or a transaction, for writes that may run alone or
/// inside the caller's transaction.
pub trait Execute {
    fn execute_prepared(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send;
}

impl Execute for CachedClient {
    async fn execute_prepared(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, tokio_postgres::Error> {
        self.execute(sql, params).await
    }
}

impl Execute for Tx<'_> {
    async fn execute_prepared(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, tokio_postgres::Error> {
        self.execute(sql, params).await
    }
}

/// A transaction on a [`CachedClient`]: its statements run prepared.
pub struct Tx<'a> {
    tx: tokio_postgres::Transaction<'a>,
    statements: &'a Statements,
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = tokio_postgres::Transaction<'a>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl<'a> Tx<'a> {
    fn client(&self) -> &tokio_postgres::Client {
        self.tx.client()
    }

    fn inner(&self) -> &tokio_postgres::Transaction<'a> {
        &self.tx
    }

    fn statements(&self) -> &Statements {
        self.statements
    }

    prepared_statement_methods!();

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.tx.rollback().await
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = CachedClient;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        Ok(CachedClient {
            client: self.0.connect().await?,
            statements: Default::default(),
        })
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        self.0.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Users for `GET /me`, on while change notices are received
    /// ([`user_changes`]).
    users: UserCache,
}

fn q(e: tokio_postgres::Error) -> StorageError {
    // SQLSTATE classes of an outage or of a transaction the server rolled
    // back for its own reasons, not of a bad query: connection exception
    // (08), transaction rollback such as a deadlock or a serialization
    // failure (40: the same request may succeed when sent again), insufficient
    // resources (53), a statement cancelled (57014: a statement timeout, or
    // a request's deadline passed, see migration 16), operator intervention
    // such as a shutdown terminating the session (57P), system error (58).
    let outage = |code: &str| {
        ["08", "40", "53", "57014", "57P", "58"]
            .iter()
            .any(|c| code.starts_with(c))
    };
    if e.is_closed() || e.as_db_error().is_none_or(|db| outage(db.code().code())) {
        StorageError::unavailable(e)
    } else {
        StorageError::query(PgError(e))
    }
}

/// A query error whose text names the SQLSTATE, the message and the
/// constraint (tokio-postgres prints only "db error"). Never the `detail`,
/// which can quote the values of a row.
#[derive(Debug)]
struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "{} {}", db.code().code(), db.message())?;
                if let Some(c) = db.constraint() {
                    write!(f, " (constraint {c})")?;
                }
                Ok(())
            }
            None => self.0.fmt(f),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// A column of a row, typed; a type mismatch is an error, not a panic.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i).map_err(q)
}

impl Columns for Row {
    type Error = StorageError;

    fn uuid(&self, i: usize) -> StoreResult<Uuid> {
        get(self, i)
    }

    fn text(&self, i: usize) -> StoreResult<Option<String>> {
        get(self, i)
    }

    fn flag(&self, i: usize) -> StoreResult<Option<bool>> {
        get(self, i)
    }

    fn time(&self, i: usize) -> StoreResult<Option<DateTime<Utc>>> {
        get(self, i)
    }

    fn int(&self, i: usize) -> StoreResult<Option<i64>> {
        let wide = self
            .columns()
            .get(i)
            .is_some_and(|c| *c.type_() == tokio_postgres::types::Type::INT8);
        if wide {
            get(self, i)
        } else {
            Ok(get::<Option<i32>>(self, i)?.map(i64::from))
        }
    }

    fn ip(&self, i: usize) -> StoreResult<Option<std::net::IpAddr>> {
        get(self, i)
    }

    fn json(&self, i: usize) -> StoreResult<Option<serde_json::Value>> {
        get(self, i)
    }
}

/// The first host of a connection config, as certificates name it.
fn config_host(config: &tokio_postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    }
}

/// The longest a request waits for a pooled connection. While the database
/// is down every checkout fails after this (a 503 with `Retry-After`), so no
/// request waits on it longer; start-up retries past it until its own
/// deadline.
pub const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(1);

fn pool_err(e: bb8::RunError<tokio_postgres::Error>) -> StorageError {
    StorageError::unavailable(e)
}

impl PgStore {
    /// Connects (retrying for up to `wait`, as the database may still be
    /// starting) with a pool of `max_size` connections, over TLS as `tls` says.
    /// A certificate the mode refuses fails at once: retrying cannot fix it.
    /// A server's store: it also listens for account changes (one more
    /// connection) and keeps profiles in memory while it hears them.
    pub async fn connect(
        url: &SecretString,
        tls: &tls::PgTls,
        max_size: u32,
        wait: Duration,
    ) -> StoreResult<Self> {
        Self::connect_with(url, tls, max_size, wait, true).await
    }

    /// [`Self::connect`] for a short-lived tool (the operator commands,
    /// `migrate`): no listening connection, every read goes to the database.
    pub async fn connect_for_tool(
        url: &SecretString,
        tls: &tls::PgTls,
        max_size: u32,
        wait: Duration,
    ) -> StoreResult<Self> {
        Self::connect_with(url, tls, max_size, wait, false).await
    }

    async fn connect_with(
        url: &SecretString,
        tls: &tls::PgTls,
        max_size: u32,
        wait: Duration,
        listen: bool,
    ) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .expose_secret()
            .parse()
            .map_err(|e| StorageError::unavailable(format!("invalid database settings: {e}")))?;
        config.ssl_mode(tls.negotiation());
        let connector = tls
            .connector()
            .map_err(|e| StorageError::unavailable(e.to_string()))?;
        let host = config_host(&config);
        let manager = Manager(PostgresConnectionManager::new(
            config.clone(),
            connector.clone(),
        ));
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(POOL_CHECKOUT_TIMEOUT)
            .test_on_check_out(false)
            .build_unchecked(manager);
        let store = Self {
            pool,
            users: UserCache::new(false, Some(user_changes::MAX_AGE)),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match store.ping().await {
                Ok(()) => {
                    if listen {
                        tokio::spawn(user_changes::watch(config, connector, store.users.clone()));
                    }
                    return Ok(store);
                }
                Err(e) => {
                    // The pool only says it timed out; one direct attempt names the cause.
                    let cause = match config.connect(connector.clone()).await {
                        Ok(_) => None,
                        Err(e) => {
                            if let Some(tls_error) = tls.explain(&e, &host) {
                                return Err(StorageError::unavailable(format!(
                                    "database TLS: {tls_error}"
                                )));
                            }
                            if let Some(db) = e.as_db_error() {
                                // Refused credentials or pg_hba rules (SQLSTATE class 28)
                                // will not change by waiting.
                                if db.code().code().starts_with("28") {
                                    return Err(StorageError::unavailable(format!(
                                        "{}: {}",
                                        tls.host_var,
                                        db.message()
                                    )));
                                }
                            }
                            Some(
                                e.as_db_error()
                                    .map_or_else(|| e.to_string(), |db| db.message().to_string()),
                            )
                        }
                    };
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StorageError::unavailable(cause.unwrap_or_else(|| {
                            "the pool could not connect in time".to_string()
                        })));
                    }
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Open and idle connections of the pool, for the gauges.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Applies pending migrations under the advisory lock.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let conn = self.pool.get().await.map_err(pool_err)?;
        migrate::apply(&conn).await
    }

    pub async fn migration_status(&self) -> StoreResult<migrate::MigrationStatus> {
        let conn = self.pool.get().await.map_err(pool_err)?;
        migrate::status(&conn).await
    }

    /// Runs one statement on a pooled connection; returns the rows it changed.
    async fn exec(&self, sql: &str, params: &[Param<'_>]) -> StoreResult<u64> {
        let conn = self.conn().await?;
        conn.execute(sql, params).await.map_err(q)
    }

    async fn conn(&self) -> StoreResult<bb8::PooledConnection<'_, Manager>> {
        self.pool.get().await.map_err(pool_err)
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn pool_state(&self) -> Option<(u32, u32)> {
        Some(PgStore::pool_state(self))
    }

    async fn ping(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        conn.simple_query("SELECT 1").await.map_err(q)?;
        Ok(())
    }

    async fn key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<String> {
        let conn = self.conn().await?;
        // Two statements: a row another start inserted while this one's
        // INSERT waited is visible only to a statement that begins after it.
        conn.execute(
            "INSERT INTO key_checks (purpose, fingerprint) VALUES ($1, $2) ON CONFLICT (purpose) DO NOTHING",
            &[&purpose, &fingerprint],
        )
        .await
        .map_err(q)?;
        let row = conn
            .query_one(
                "SELECT fingerprint FROM key_checks WHERE purpose = $1",
                &[&purpose],
            )
            .await
            .map_err(q)?;
        row.try_get(0).map_err(q)
    }

    async fn replace_key_fingerprint(&self, purpose: &str, fingerprint: &str) -> StoreResult<()> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO key_checks (purpose, fingerprint) VALUES ($1, $2)
             ON CONFLICT (purpose) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, recorded_at = now()",
            &[&purpose, &fingerprint],
        )
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        keep_ended: chrono::Duration,
    ) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let ended_before = now - keep_ended;
        let mut total = 0;
        for sql in [
            // Spent tokens of live sessions stay: presenting one again must still
            // revoke the session. They go with their session.
            "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT 5000) AND $2::timestamptz IS NOT NULL",
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 OR (invalidated_at IS NOT NULL AND invalidated_at < $2) LIMIT 5000)",
            "DELETE FROM email_verification_tokens WHERE id IN (SELECT id FROM email_verification_tokens WHERE expires_at < $1 OR (verified_at IS NOT NULL AND verified_at < $2) LIMIT 5000)",
            "DELETE FROM password_reset_tokens WHERE id IN (SELECT id FROM password_reset_tokens WHERE expires_at < $1 OR (used_at IS NOT NULL AND used_at < $2) LIMIT 5000)",
            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE status <> 'pending' AND created_at < $2 LIMIT 5000) AND $1::timestamptz IS NOT NULL",
            // Challenges stay a day after they start: the hourly cap counts them.
            "DELETE FROM mfa_challenges WHERE id IN (SELECT id FROM mfa_challenges WHERE expires_at < $1 AND created_at < $2 LIMIT 5000)",
            "DELETE FROM login_lockouts WHERE account_key IN (SELECT account_key FROM login_lockouts WHERE updated_at < $2 AND (locked_until IS NULL OR locked_until < $1) LIMIT 5000)",
            "DELETE FROM rate_windows WHERE key IN (SELECT key FROM rate_windows WHERE expires_at < $1 LIMIT 5000) AND $2::timestamptz IS NOT NULL",
        ] {
            total += conn.execute(sql, &[&now, &ended_before]).await.map_err(q)?;
        }
        Ok(total)
    }
}

/// A database of its own on the test cluster (`TEST_DATABASE_URL`), dropped
/// when this is, also when the test fails.
#[cfg(test)]
pub(super) struct ThrowawayDb {
    /// A client on the cluster's default database.
    pub admin: tokio_postgres::Client,
    pub name: String,
    pub url: String,
    cluster: String,
}

#[cfg(test)]
pub(super) async fn throwaway_database(prefix: &str) -> ThrowawayDb {
    let cluster = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (admin, conn) = tokio_postgres::connect(&cluster, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = match cluster.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => unreachable!("{cluster}"),
    };
    ThrowawayDb {
        admin,
        name,
        url,
        cluster,
    }
}

/// A store on a database of its own (see [`throwaway_database`]), migrated.
#[cfg(test)]
pub(super) async fn migrated_store(prefix: &str) -> (PgStore, ThrowawayDb) {
    let db = throwaway_database(prefix).await;
    let store = PgStore::connect_for_tool(
        &SecretString::from(db.url.clone()),
        &tls::PgTls::default(),
        2,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    (store, db)
}

/// Creates the user `id` with the address `email` (unverified, no consents).
#[cfg(test)]
pub(super) async fn test_user(store: &PgStore, id: Uuid, email: &str) {
    let now = Utc::now();
    store
        .create_user(crate::storage::NewUser {
            id,
            email: crate::domain::Email::parse(email, "email").unwrap(),
            password_hash: "x".into(),
            first_name: None,
            last_name: None,
            consents: Vec::new(),
            verification_token_hash: "v".repeat(64),
            verification_expires_at: now,
            client: ClientContext::default(),
            now,
            mail: None,
        })
        .await
        .unwrap();
}

#[cfg(test)]
impl ThrowawayDb {
    /// How many connections to this database match `condition` (SQL over
    /// `pg_stat_activity`'s columns).
    pub async fn backends(&self, condition: &str) -> i64 {
        let sql =
            format!("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND ({condition})");
        self.admin
            .query_one(&sql, &[&self.name])
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until a connection to this database waits for a lock.
    pub async fn until_one_waits(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.backends("wait_event_type = 'Lock'").await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        // On a thread with a runtime of its own: `drop` cannot wait for the
        // test's runtime, which may be unwinding.
        let (cluster, name) = (self.cluster.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&cluster, tokio_postgres::NoTls).await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements of `conn`'s session that are prepared now, by text.
    async fn prepared_now(conn: &CachedClient, sql: &str) -> usize {
        let rows = conn
            .client
            .query(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                &[&sql],
            )
            .await
            .unwrap();
        rows[0].get::<_, i64>(0) as usize
    }

    #[tokio::test]
    async fn a_statement_is_prepared_once_per_connection_in_and_out_of_transactions() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let store = PgStore::connect(
            &SecretString::from(url),
            &tls::PgTls::default(),
            1,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let sql = "SELECT $1::int4 + 1";
        let mut conn = store.conn().await.unwrap();
        for n in 0..3i32 {
            let row = conn.query_one(sql, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n + 1);
        }
        let tx = conn.transaction().await.unwrap();
        assert_eq!(tx.execute(sql, &[&7i32]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        // tokio-postgres closes a statement it prepared for one execution;
        // this one stays, once.
        assert_eq!(prepared_now(&conn, sql).await, 1);

        // One first prepared in a transaction that rolls back stays usable.
        let other = "SELECT $1::int4 * 2";
        let tx = conn.transaction().await.unwrap();
        assert_eq!(
            tx.query_one(other, &[&2i32])
                .await
                .unwrap()
                .get::<_, i32>(0),
            4
        );
        tx.rollback().await.unwrap();
        assert_eq!(
            conn.query_one(other, &[&3i32])
                .await
                .unwrap()
                .get::<_, i32>(0),
            6
        );
    }

    #[tokio::test]
    async fn a_statement_a_migration_made_stale_is_prepared_again() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let store = PgStore::connect(
            &SecretString::from(url),
            &tls::PgTls::default(),
            1,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let conn = store.conn().await.unwrap();
        let table = format!("stale_{}", Uuid::new_v4().simple());
        conn.batch_execute(&format!(
            "CREATE TEMP TABLE {table} (v int4); INSERT INTO {table} VALUES (1)"
        ))
        .await
        .unwrap();
        let sql: &'static str = Box::leak(format!("SELECT v FROM {table}").into_boxed_str());
        let row = conn.query_one(sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        // What a migration may do under a running server: the result type changes.
        conn.batch_execute(&format!("ALTER TABLE {table} ALTER COLUMN v TYPE int8"))
            .await
            .unwrap();
        let stale = conn.query_one(sql, &[]).await.unwrap_err();
        assert_eq!(
            stale.code(),
            Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
            "{stale}"
        );
        let row = conn.query_one(sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
    }

    /// A deadlock is the server's decision, not a bad query: the request
    /// that lost it answers 503 with `Retry-After`, not 500.
    #[tokio::test]
    async fn a_deadlock_is_a_retryable_unavailability() {
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            clients.push(client);
        }
        let keys: [i64; 2] = [rand::random(), rand::random()];
        for (client, key) in clients.iter().zip(keys) {
            client
                .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({key})"))
                .await
                .unwrap();
        }
        // Each now waits for the other's lock: PostgreSQL aborts one.
        let (a, b) = futures_util::future::join(
            clients[0].execute("SELECT pg_advisory_xact_lock($1)", &[&keys[1]]),
            clients[1].execute("SELECT pg_advisory_xact_lock($1)", &[&keys[0]]),
        )
        .await;
        let lost = a.err().or(b.err()).expect("one of them lost");
        assert_eq!(
            lost.code(),
            Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
        );
        assert!(matches!(q(lost), StorageError::Unavailable(_)));
    }

    /// Connections that listen for account changes, as the server sees them.
    const LISTENING: &str = "query LIKE 'LISTEN %'";

    #[tokio::test]
    async fn only_a_server_listens_for_account_changes() {
        let db = throwaway_database("listen").await;
        let secret = SecretString::from(db.url.clone());
        let wait = Duration::from_secs(10);

        let tool = PgStore::connect_for_tool(&secret, &tls::PgTls::default(), 1, wait)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(db.backends(LISTENING).await, 0);
        drop(tool);

        let server = PgStore::connect(&secret, &tls::PgTls::default(), 1, wait)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while db.backends(LISTENING).await != 1 {
            assert!(tokio::time::Instant::now() < deadline, "no listener");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(server);
    }
}
