//! Work done after the answer. A request whose answer must not depend on
//! whether an account exists (`POST /password-reset`, `POST
//! /verify-email/resend`) checks its input, hands the account-dependent work
//! here and answers: both paths do the same work before answering, so they
//! take the same time.
//!
//! At most [`LIMIT`] tasks run or wait per instance; beyond that the request
//! is refused with 503 + `Retry-After`, whatever the address. A task lost
//! with its instance (a crash between the answer and the store write) leaves
//! nothing half-done: its store write and its mail commit together (the
//! outbox), and the user asks again.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::AuthError;

/// Tasks running or waiting per instance, at most.
pub const LIMIT: usize = 256;

/// Runs work after the answer. Cheap to clone.
#[derive(Clone)]
pub struct Background {
    permits: Arc<Semaphore>,
    /// Tests hold tasks here (a semaphore without permits) to see what a
    /// request did before it answered; `None` in service.
    hold: Option<Arc<Semaphore>>,
    waiting: Arc<AtomicUsize>,
}

impl Background {
    pub fn new(hold: Option<Arc<Semaphore>>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(LIMIT)),
            hold,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Starts `work` on this worker's runtime after the current request;
    /// `Busy` when [`LIMIT`] tasks are already running or waiting.
    pub fn run(&self, work: impl Future<Output = ()> + 'static) -> Result<(), AuthError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| AuthError::Busy {
                retry_after: Duration::from_secs(1),
            })?;
        let hold = self.hold.clone();
        let waiting = Arc::clone(&self.waiting);
        waiting.fetch_add(1, Ordering::SeqCst);
        actix_web::rt::spawn(async move {
            if let Some(hold) = hold {
                // closed only when the test drops it: run then as well
                let _ = hold.acquire().await;
            }
            waiting.fetch_sub(1, Ordering::SeqCst);
            work.await;
            drop(permit);
        });
        Ok(())
    }

    /// Tasks accepted that have not started yet.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}
