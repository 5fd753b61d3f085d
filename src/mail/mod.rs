//! Outgoing mail: templates rendered to plain text + HTML and delivered over
//! SMTP with `mail-send`, or — on the embedded default with no SMTP
//! configured — written as `.eml` files under `DATA_DIR/mail/`.
//!
//! Every mail is first written, sealed, to the durable outbox (`mail_outbox`)
//! and then delivered by a background worker with retries and exponential
//! backoff. Mails carrying a token or code (verification, reset, OTP) and the
//! password-changed and second-factor notices are written in the same
//! transaction as their event ([`Mailer::prepare`]); the lock, token-reuse and
//! already-registered notices are queued just after theirs ([`Mailer::dispatch`]): an SMTP outage delays mail and loses none; permanent refusals
//! (5xx) are marked dead and never block other mail; with several instances
//! each mail is sent once (claims lease rows with `FOR UPDATE SKIP LOCKED`).
//! Delivery is off the request path, so a slow relay never slows a response
//! and "new account" and "already registered" answers take the same time.

pub mod templates;
mod transport;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub use crate::auth::seal::{SealError, Sealer};
pub use templates::Template;
pub use transport::{Transport, TransportError};

use crate::clock::Clock;
use crate::config::Config;
use crate::storage::{DynStore, OutboxMail};
use crate::telemetry::metrics::Metrics;

/// A rendered message ready for delivery.
#[derive(Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub template: Template,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body carries tokens and codes: never printed.
        f.debug_struct("OutgoingMail")
            .field("template", &self.template.name())
            .finish_non_exhaustive()
    }
}

/// Sends mail through the durable outbox. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    from: String,
    public_url: String,
    metrics: Metrics,
    store: DynStore,
    clock: Clock,
    sealer: Sealer,
    retry_base: Duration,
    wake: Notify,
}

/// What the outbox keeps of a mail (sealed).
#[derive(Serialize, Deserialize)]
struct Payload {
    to: String,
    subject: String,
    text: String,
    html: String,
}

/// A mail failing this many times is dead.
const MAX_ATTEMPTS: u32 = 12;
/// A claimed mail is leased this long; a worker that dies frees it then.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// How many mails one instance has claimed and not yet finished delivering, at most.
/// Why more than one: every SMTP delivery opens a connection of its own (TCP, TLS,
/// AUTH: several round trips to the relay), and one at a time left sign-in codes and
/// links queued behind one another.
const DELIVERIES_AT_ONCE: usize = 8;

/// A claimed mail with its place among [`DELIVERIES_AT_ONCE`], given back once its
/// delivery has ended.
type Claimed = (OutboxMail, OwnedSemaphorePermit);

/// The mails claimed while an earlier one to the same address was being delivered, by
/// recipient tag, in the order they were claimed: the delivery under way sends them
/// next, so one address gets its mails in order (a second code after the first).
#[derive(Clone, Default)]
struct Behind(Arc<std::sync::Mutex<HashMap<String, VecDeque<Claimed>>>>);

impl Behind {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Claimed>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The mail back when it can be delivered now (its address has no delivery under
    /// way, which from now on it has); else `None`, queued behind that delivery.
    fn queue_if_busy(&self, claimed: Claimed) -> Option<Claimed> {
        let Some(tag) = claimed.0.recipient_tag.clone() else {
            return Some(claimed);
        };
        let mut busy = self.lock();
        match busy.get_mut(&tag) {
            Some(queue) => {
                queue.push_back(claimed);
                None
            }
            None => {
                busy.insert(tag, VecDeque::new());
                Some(claimed)
            }
        }
    }

    /// The next mail to the address a delivery just finished with, if one is queued;
    /// else the address is free again.
    fn next_after(&self, tag: Option<&str>) -> Option<Claimed> {
        let tag = tag?;
        let mut busy = self.lock();
        let next = busy.get_mut(tag).and_then(VecDeque::pop_front);
        if next.is_none() {
            busy.remove(tag);
        }
        next
    }
}

impl Mailer {
    pub fn new(
        config: &Config,
        metrics: Metrics,
        store: DynStore,
        clock: Clock,
    ) -> Result<Self, SealError> {
        let transport = match &config.smtp {
            Some(smtp) => Transport::smtp(smtp.clone()),
            None => Transport::files(config.mail_dir()),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                from: config.mail_from.clone(),
                public_url: config.public_url.clone(),
                metrics,
                store,
                clock,
                sealer: Sealer::from_config(config)?,
                retry_base: config.mail_retry_base,
                wake: Notify::new(),
            }),
        })
    }

    /// Where mail goes, for the start-up banner.
    pub fn describe(&self) -> String {
        self.inner.transport.describe()
    }

    pub fn mail_dir(&self) -> Option<PathBuf> {
        self.inner.transport.mail_dir()
    }

    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The key that seals data at rest (also used for TOTP secrets).
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// The keyed digest of an address that its outbox rows carry, so that
    /// erasing an account finds the mail queued to it without storing the
    /// address in the clear.
    pub fn recipient_tag(&self, address: &str) -> String {
        self.inner
            .sealer
            .tag("mail-recipient", &address.trim().to_lowercase())
    }

    /// Seals a mail into an outbox row, for a store method that writes it in
    /// the same transaction as the event causing it; call [`Mailer::queued`]
    /// after that transaction commits.
    pub fn prepare(&self, mail: &OutgoingMail) -> Result<OutboxMail, SealError> {
        let payload = Payload {
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
        };
        let json = serde_json::to_vec(&payload).map_err(|_| SealError::Open)?;
        Ok(OutboxMail {
            id: uuid::Uuid::new_v4(),
            template: mail.template.name().to_string(),
            payload: self.inner.sealer.seal(&json)?,
            attempts: 0,
            created_at: self.inner.clock.now(),
            recipient_tag: Some(self.recipient_tag(&mail.to)),
        })
    }

    /// Counts a mail written with its event and wakes the delivery worker.
    pub fn queued(&self, template: Template) {
        self.inner.metrics.mail_queued(template.name());
        self.inner.wake.notify_one();
    }

    /// Queues a mail in the outbox (sealed) and wakes the delivery worker.
    /// For notices; mails carrying a token or code go with their event
    /// ([`Mailer::prepare`]).
    /// Delivery, retries and backoff happen in [`Mailer::run_worker`].
    pub async fn dispatch(&self, mail: OutgoingMail) {
        let recipient_tag = Some(self.recipient_tag(&mail.to));
        let payload = Payload {
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
        };
        let sealed = serde_json::to_vec(&payload)
            .map_err(|e| e.to_string())
            .and_then(|json| self.inner.sealer.seal(&json).map_err(|e| e.to_string()));
        let queued = match sealed {
            Ok(payload) => self
                .inner
                .store
                .enqueue_mail(
                    OutboxMail {
                        id: uuid::Uuid::new_v4(),
                        template: mail.template.name().to_string(),
                        payload,
                        attempts: 0,
                        created_at: self.inner.clock.now(),
                        recipient_tag,
                    },
                    self.inner.clock.now(),
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match queued {
            Ok(()) => {
                self.inner.metrics.mail_queued(mail.template.name());
                self.inner.wake.notify_one();
            }
            Err(e) => {
                self.inner.metrics.mail_failed(mail.template.name());
                tracing::error!(template = mail.template.name(), error = %e, "mail could not be queued");
            }
        }
    }

    /// Delivers due mail until the process ends, with at most [`DELIVERIES_AT_ONCE`]
    /// claimed and not yet delivered: woken by new mail, by a delivery that ends while
    /// every place was taken, and every second for retries. Several workers
    /// (instances) share the outbox: each claim leases its mails, so each mail is sent
    /// once.
    pub async fn run_worker(self) {
        let slots = Arc::new(Semaphore::new(DELIVERIES_AT_ONCE));
        let behind = Behind::default();
        loop {
            // Claim only as many as there are free places: a claimed mail
            // waits for no one but an earlier mail to the same address.
            let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let free = slots.available_permits() + 1;
            let mut batch = self.claim(free).await;
            // The store returns a claim in no particular order; mails to one
            // address are delivered in the order they were queued.
            batch.sort_by_key(|mail| mail.created_at);
            if batch.is_empty() {
                drop(first);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), self.inner.wake.notified()).await;
                continue;
            }
            let mut permit = Some(first);
            for mail in batch {
                // no more were claimed than places were free
                let slot = match permit.take() {
                    Some(p) => p,
                    None => match Arc::clone(&slots).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let Some(claimed) = behind.queue_if_busy((mail, slot)) else {
                    continue;
                };
                let (mailer, behind) = (self.clone(), behind.clone());
                tokio::spawn(async move {
                    let mut next = Some(claimed);
                    while let Some((mail, slot)) = next {
                        let tag = mail.recipient_tag.clone();
                        mailer.deliver(mail).await;
                        drop(slot);
                        next = behind.next_after(tag.as_deref());
                    }
                    // A later mail to this address may have been held back
                    // while this one was leased (see `claim_mail`): claim again.
                    mailer.inner.wake.notify_one();
                });
            }
        }
    }

    /// Leases up to `limit` due mails; none while the outbox is unavailable.
    async fn claim(&self, limit: usize) -> Vec<OutboxMail> {
        let inner = &self.inner;
        let claim = crate::storage::MailClaim {
            now: inner.clock.now(),
            lease: LEASE,
            limit: u32::try_from(limit).unwrap_or(1),
        };
        match inner.store.claim_mail(claim).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "mail outbox unavailable");
                Vec::new()
            }
        }
    }

    /// Sends one claimed mail and records the outcome: sent, dead, or retried later.
    async fn deliver(&self, mail: OutboxMail) {
        let inner = &self.inner;
        let template = template_name(&mail.template);
        let result = match inner
            .sealer
            .open(&mail.payload)
            .ok()
            .and_then(|p| serde_json::from_slice::<Payload>(&p).ok())
        {
            Some(p) => {
                let out = OutgoingMail {
                    to: p.to,
                    template: Template::Verification,
                    subject: p.subject,
                    text: p.text,
                    html: p.html,
                };
                inner
                    .transport
                    .send(&inner.from, &out, inner.clock.now())
                    .await
            }
            // Sealed with another key (an instance configured differently):
            // another instance may open it, so it is retried, not dead.
            None => Err(TransportError::Transient(
                "the payload cannot be opened with this instance's DATA_ENCRYPTION_KEY".into(),
            )),
        };
        let now = inner.clock.now();
        let outcome = match result {
            Ok(()) => {
                inner.metrics.mail_sent(template);
                inner.store.mail_sent(mail.id, now).await
            }
            Err(e) if e.is_permanent() || mail.attempts >= MAX_ATTEMPTS => {
                inner.metrics.mail_failed(template);
                tracing::error!(template, attempts = mail.attempts, error = %e, "mail dead: not retried");
                inner.store.mail_dead(mail.id, &e.to_string()).await
            }
            Err(e) => {
                let delay = backoff(inner.retry_base, mail.attempts);
                tracing::warn!(template, attempts = mail.attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "mail delivery failed; will retry");
                let next = now
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(10));
                let retry = crate::storage::MailRetry {
                    at: next,
                    error: e.to_string(),
                };
                inner.store.mail_retry(mail.id, retry).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "mail outcome not recorded; the lease will expire and it is retried");
        }
    }

    /// Outbox depth and age, for the gauges.
    pub async fn stats(&self) -> Option<crate::storage::OutboxStats> {
        self.inner
            .store
            .outbox_stats(self.inner.clock.now())
            .await
            .ok()
    }
}

/// `base · 2^(attempts-1)`, at most ten minutes.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    (base * factor).min(Duration::from_secs(600))
}

fn template_name(name: &str) -> &'static str {
    [
        Template::Verification,
        Template::AlreadyRegistered,
        Template::AccountLocked,
        Template::RefreshTokenReuse,
        Template::PasswordChanged,
        Template::PasswordReset,
        Template::OtpCode,
        Template::NewTwoFactor,
        Template::AccountErased,
        Template::SecondFactorLocked,
        Template::TwoFactorChanged,
        Template::NewDevice,
    ]
    .into_iter()
    .map(Template::name)
    .find(|n| *n == name)
    .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 5), Duration::from_secs(32));
        assert_eq!(backoff(base, 40), Duration::from_secs(600));
    }

    fn mail_to(tag: &str) -> OutboxMail {
        OutboxMail {
            id: uuid::Uuid::new_v4(),
            template: "verification".into(),
            payload: String::new(),
            attempts: 1,
            created_at: chrono::Utc::now(),
            recipient_tag: Some(tag.into()),
        }
    }

    /// A mail to an address with a delivery under way waits behind it, holding
    /// its place; the delivery hands on to it, then frees the address.
    #[test]
    fn a_finished_delivery_hands_on_to_the_next_mail_then_frees_the_address() {
        let slots = Arc::new(Semaphore::new(DELIVERIES_AT_ONCE));
        let behind = Behind::default();
        let claim = || Arc::clone(&slots).try_acquire_owned().unwrap();
        let first = behind.queue_if_busy((mail_to("a"), claim())).unwrap();
        let second = mail_to("a");
        let second_id = second.id;
        assert!(behind.queue_if_busy((second, claim())).is_none());
        // Another address is not held back.
        let other = behind.queue_if_busy((mail_to("b"), claim()));
        assert!(other.is_some());
        // Each claimed mail holds a place, the one waiting too.
        assert_eq!(slots.available_permits(), DELIVERIES_AT_ONCE - 3);
        drop(first);
        let next = behind.next_after(Some("a")).unwrap();
        assert_eq!(next.0.id, second_id);
        drop(next);
        assert!(behind.next_after(Some("a")).is_none());
        assert!(behind.queue_if_busy((mail_to("a"), claim())).is_some());
    }
}
