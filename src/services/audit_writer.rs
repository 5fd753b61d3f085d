//! Group commit of audit rows (`docs/audit.md`). Appends to the chain queue
//! on one lock across the deployment, so each instance has one writer task:
//! [`AuditWriter::append`] queues an event and waits for its commit; the
//! writer takes every event queued (up to [`BATCH`]) and appends them all in
//! one transaction under one acquisition of the chain's lock, then answers
//! each waiter with that transaction's outcome.
//!
//! When the queue is full or the writer has stopped, the event is appended
//! directly (its own transaction), never dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::storage::{AuditEvent, DynStore, StorageError};
use crate::telemetry::metrics::Metrics;

/// Events waiting for the writer, at most, per instance.
pub const QUEUE: usize = 1024;
/// Events appended in one transaction, at most.
pub const BATCH: usize = 256;

/// The outcome of an append, shared by every event of a batch.
pub type AppendResult = Result<(), Arc<StorageError>>;

struct Job {
    event: AuditEvent,
    done: oneshot::Sender<AppendResult>,
}

/// Transactions and rows the writer committed (tests and diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub batches: u64,
    pub rows: u64,
    pub largest: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    largest: AtomicU64,
}

/// The handle to this instance's audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Job>,
    store: DynStore,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl AuditWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(store: DynStore, metrics: Metrics) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            rx,
            store.clone(),
            metrics,
            Arc::clone(&counters),
            Arc::clone(&stop),
        ));
        Self {
            queue,
            store,
            counters,
            stop,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Appends `event` and returns once it is committed (or failed). Queued
    /// for the writer; appended directly when the queue is full, the writer
    /// has stopped, or the writer ended without answering.
    pub async fn append(&self, event: AuditEvent) -> AppendResult {
        let (done, answer) = oneshot::channel();
        let fallback = event.clone();
        match self.queue.try_send(Job { event, done }) {
            Ok(()) => match answer.await {
                Ok(result) => result,
                Err(_) => self.direct(fallback).await,
            },
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                self.direct(job.event).await
            }
        }
    }

    async fn direct(&self, event: AuditEvent) -> AppendResult {
        self.store.insert_audit(event).await.map_err(Arc::new)
    }

    /// Stops taking events and returns once every queued event is written
    /// (later appends go directly to the store). Idempotent.
    pub async fn shutdown(&self) {
        self.stop.notify_one();
        let task = match self.task.lock() {
            Ok(mut task) => task.take(),
            Err(_) => None,
        };
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "audit writer ended abnormally");
            }
        }
    }

    /// What the writer committed so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::SeqCst),
            rows: self.counters.rows.load(Ordering::SeqCst),
            largest: self.counters.largest.load(Ordering::SeqCst),
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: DynStore,
    metrics: Metrics,
    counters: Arc<Counters>,
    stop: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.notified() => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        batch.push(first);
        fill(&mut rx, &mut batch);
        write(&store, &metrics, &counters, &mut batch).await;
    }
    // Shutdown: refuse new events (they go directly to the store) and write
    // what is queued.
    rx.close();
    while let Some(job) = rx.recv().await {
        batch.push(job);
        fill(&mut rx, &mut batch);
        write(&store, &metrics, &counters, &mut batch).await;
    }
}

/// Takes what is queued, up to [`BATCH`] in all.
fn fill(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Appends the batch in one transaction and answers every waiter.
async fn write(store: &DynStore, metrics: &Metrics, counters: &Counters, batch: &mut Vec<Job>) {
    let (events, waiters): (Vec<AuditEvent>, Vec<oneshot::Sender<AppendResult>>) =
        batch.drain(..).map(|j| (j.event, j.done)).unzip();
    let result = store.insert_audit_batch(&events).await.map_err(Arc::new);
    if result.is_ok() {
        let n = events.len() as u64;
        counters.batches.fetch_add(1, Ordering::SeqCst);
        counters.rows.fetch_add(n, Ordering::SeqCst);
        counters.largest.fetch_max(n, Ordering::SeqCst);
        metrics.audit_batch(events.len());
    }
    for waiter in waiters {
        // A waiter gone (its request dropped) needs no answer.
        let _ = waiter.send(result.clone());
    }
}
