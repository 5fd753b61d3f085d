//! Several server instances on one deployment: one PostgreSQL database, one
//! Redis key prefix and one SMTP sink, as a horizontally scaled fleet runs.

use super::{delete_redis_prefix, Backend, SmtpSink, TestApp, TestDatabase, TestSetup};

/// Instances sharing a database, a Redis prefix and a mail sink. Dropping it
/// stops nothing by itself but removes what the fleet left: its instances'
/// Redis keys (the shared prefix) and then the database.
pub struct TestFleet {
    /// The running instances (dropped before the database).
    pub apps: Vec<TestApp>,
    pub smtp: SmtpSink,
    pub prefix: String,
    /// The Redis endpoints any instance was given, cleaned up on drop.
    redis_urls: Vec<String>,
    db: TestDatabase,
}

impl TestFleet {
    /// `n` instances with the default test settings (no Redis).
    pub async fn spawn(n: usize) -> Self {
        Self::spawn_with(n, |setup| setup).await
    }

    /// `n` instances, each set up by `configure` (extra env, Redis, ...).
    pub async fn spawn_with(n: usize, configure: impl Fn(TestSetup) -> TestSetup) -> Self {
        Self::spawn_each(n, |_, setup| configure(setup)).await
    }

    /// `n` instances, the `i`-th set up by `configure(i, setup)`.
    pub async fn spawn_each(n: usize, configure: impl Fn(usize, TestSetup) -> TestSetup) -> Self {
        let mut fleet = Self::empty().await;
        for i in 0..n {
            fleet.add(|setup| configure(i, setup)).await;
        }
        fleet
    }

    /// The shared database, prefix and sink, no instance yet.
    pub async fn empty() -> Self {
        Self {
            apps: Vec::new(),
            smtp: SmtpSink::start().await,
            prefix: format!("test:{}", uuid::Uuid::new_v4().simple()),
            redis_urls: Vec::new(),
            db: TestDatabase::create().await,
        }
    }

    /// The URL of the shared database.
    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// A setup for one more instance of this fleet.
    pub fn setup(&self) -> TestSetup {
        TestSetup::new(Backend::Postgres).sharing(&self.db.url, &self.prefix, &self.smtp)
    }

    /// Starts one more instance, set up by `configure`, without keeping it
    /// in `apps` (the caller owns and stops it).
    pub async fn instance(&mut self, configure: impl FnOnce(TestSetup) -> TestSetup) -> TestApp {
        let app = configure(self.setup()).spawn().await;
        if let Some(url) = app.env.get("REDIS_ENDPOINT") {
            if !self.redis_urls.contains(url) {
                self.redis_urls.push(url.clone());
            }
        }
        app
    }

    /// Starts one more instance, set up by `configure`, kept in `apps`.
    pub async fn add(&mut self, configure: impl FnOnce(TestSetup) -> TestSetup) -> &TestApp {
        let app = self.instance(configure).await;
        self.apps.push(app);
        &self.apps[self.apps.len() - 1]
    }

    /// Stops every instance (graceful) and drops them; the database, the
    /// prefix and the sink stay for instances started afterwards.
    pub async fn stop_all(&mut self) {
        for app in &self.apps {
            app.stop().await;
        }
        self.apps.clear();
    }

    /// Moves every instance's clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        super::advance(&self.apps, secs);
    }
}

impl std::ops::Deref for TestFleet {
    type Target = [TestApp];

    fn deref(&self) -> &[TestApp] {
        &self.apps
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        // The instances first (each removes the prefix's keys it can reach),
        // then whatever instances started later wrote under the prefix; the
        // database goes last, with the fleet's own fields.
        self.apps.clear();
        for url in &self.redis_urls {
            delete_redis_prefix(url, &self.prefix);
        }
    }
}

impl<'a> IntoIterator for &'a TestFleet {
    type Item = &'a TestApp;
    type IntoIter = std::slice::Iter<'a, TestApp>;

    fn into_iter(self) -> Self::IntoIter {
        self.apps.iter()
    }
}
