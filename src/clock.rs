//! The service clock: wall time plus an offset that tests can advance, so that
//! expiry rules are tested without sleeping. And the deadline of the request
//! being served, for writes that must not commit once it has been answered.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Moves this clock forward (tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

tokio::task_local! {
    static REQUEST_ENDS: std::time::Instant;
}

/// Runs `fut` as the serving of a request that is abandoned (answered 503)
/// at `ends`; [`request_ends`] tells it to the code `fut` runs.
pub async fn serving_until<F: std::future::Future>(ends: std::time::Instant, fut: F) -> F::Output {
    REQUEST_ENDS.scope(ends, fut).await
}

/// When the request this runs for is abandoned; `None` outside a request
/// (or in a task spawned from one, which outlives it on purpose).
pub fn request_ends() -> Option<std::time::Instant> {
    REQUEST_ENDS.try_with(|ends| *ends).ok()
}

/// How long before its request's deadline a write must have committed when
/// it checks ([`commit_by`]): room for the commit itself, and for a database
/// clock running behind this host's.
pub const COMMIT_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// The instant after which a write for the request this runs for must not
/// commit: [`COMMIT_MARGIN`] before the request is abandoned (answered 503),
/// after which its client, told nothing happened, may send it again.
pub fn commit_by() -> Option<std::time::Instant> {
    request_ends().and_then(|ends| ends.checked_sub(COMMIT_MARGIN))
}

/// `at`, a monotonic instant, as wall-clock time (the real clock, never a
/// test's advanced one: a database compares it with its own clock).
pub fn wall_time(at: std::time::Instant) -> DateTime<Utc> {
    let now = std::time::Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => Utc::now() + chrono::Duration::from_std(ahead).unwrap_or_default(),
        None => Utc::now() - chrono::Duration::from_std(now - at).unwrap_or_default(),
    }
}
