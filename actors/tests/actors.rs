//! Actor tests through the public handles: on-demand creation, idle reaping, bounded
//! mailboxes, per-user serialisation, the shared backing with its local fallback, and
//! reservations that wait for verifications in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::{pending, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use suma_auth_actors::clock::wall_clock_now;
use suma_auth_actors::{
    ActorError, Backing, BackingError, BackingFuture, FailureOutcome, LockoutBacking,
    LockoutPolicy, MemoryBacking, RateLimits, RateQuota, Reservation, ReserveOutcome,
    SecurityActors, SecurityConfig, SecurityHandle, StartError, Timestamp, UserKey,
};
use tokio::sync::{Notify, Semaphore};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// Reservations left pending (no outcome is ever recorded) are answered after 100 ms.
fn config() -> SecurityConfig {
    SecurityConfig {
        lockout: LockoutPolicy::new(5, Duration::from_secs(15 * 60)),
        shards: 4,
        pending_wait: Duration::from_millis(100),
        ..SecurityConfig::default()
    }
}

/// Waiting reservations are decided by outcomes long before they could give up.
fn patient() -> SecurityConfig {
    SecurityConfig {
        pending_wait: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
        ..config()
    }
}

fn start(config: SecurityConfig, backing: Backing) -> SecurityHandle {
    SecurityActors::start(config, backing).unwrap()
}

/// Waits (up to 5 s) until `done` holds; tests assert on state, never on wall time.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if done() {
            return true;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// Runs `n` copies of `make(i)` concurrently and collects their results.
async fn concurrently<T, F>(n: usize, make: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| actix::spawn(make(i))).collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn allowed(results: &[Result<Reservation, ActorError>]) -> usize {
    results
        .iter()
        .filter(|r| matches!(r, Ok(Reservation::Allowed { .. })))
        .count()
}

fn in_flight(results: &[Result<Reservation, ActorError>]) -> usize {
    results
        .iter()
        .filter(|r| **r == Err(ActorError::AttemptsInFlight))
        .count()
}

#[actix::test]
async fn user_actors_are_created_on_demand_once_per_key() {
    let actors = start(config(), Backing::Local);
    assert_eq!(actors.stats().live_actors, 0);

    for n in 0..10 {
        let key = format!("user{n}@example.com");
        actors.reserve_login(&key, NOW).await.unwrap();
    }
    actors
        .reserve_login("user3@example.com", NOW)
        .await
        .unwrap();

    assert_eq!(actors.stats().live_actors, 10);
    assert_eq!(
        actors.reserve_login("user3@example.com", NOW).await,
        Ok(Reservation::Allowed { attempt: 3 }),
        "the same key reaches the same actor"
    );
}

#[actix::test]
async fn idle_actors_are_reaped_and_a_later_request_gets_a_fresh_one() {
    let actors = start(
        SecurityConfig {
            idle_timeout: Duration::from_millis(50),
            ..config()
        },
        Backing::Local,
    );
    for n in 0..20 {
        let key = format!("user{n}@example.com");
        actors.reserve_login(&key, NOW).await.unwrap();
        actors.record_login_success(&key).await.unwrap();
    }
    assert_eq!(actors.stats().live_actors, 20);

    assert!(eventually(|| actors.stats().live_actors == 0).await);

    assert_eq!(
        actors.reserve_login("user7@example.com", NOW).await,
        Ok(Reservation::Allowed { attempt: 1 })
    );
    assert_eq!(actors.stats().live_actors, 1);
}

/// While tens of thousands of actors go idle and stop, requests keep being served: a
/// sweep notifies idle actors in batches of at most half a shard's mailbox, so their
/// stop notices never fill it. Notified all at once, they did, and requests arriving
/// meanwhile were refused as overloaded.
#[actix::test]
async fn requests_during_a_mass_reap_are_not_refused() {
    const USERS: usize = 50_000;
    let actors = start(
        SecurityConfig {
            idle_timeout: Duration::from_millis(200),
            ..config()
        },
        Backing::Local,
    );
    let refused = concurrently(16, |worker| {
        let actors = actors.clone();
        async move {
            let mut refused = Vec::new();
            for n in (worker..USERS).step_by(16) {
                let key = format!("user{n}@example.com");
                if let Err(e) = actors.reserve_login(&key, NOW).await {
                    refused.push(e);
                } else if let Err(e) = actors.record_login_success(&key).await {
                    refused.push(e);
                }
            }
            refused
        }
    })
    .await
    .concat();
    assert_eq!(refused, Vec::new());
    assert_eq!(actors.stats().mailbox_rejections, 0);
}

#[actix::test]
async fn a_local_open_window_keeps_its_actor_alive() {
    let actors = start(
        SecurityConfig {
            idle_timeout: Duration::from_millis(20),
            ..config()
        },
        Backing::Local,
    );
    let now = wall_clock_now();
    actors
        .reserve_login("window@example.com", now)
        .await
        .unwrap();
    actors
        .record_login_success("clean@example.com")
        .await
        .unwrap();

    assert!(eventually(|| actors.stats().live_actors == 1).await);
    actix::clock::sleep(Duration::from_millis(200)).await;

    assert_eq!(actors.stats().live_actors, 1);
    assert_eq!(
        actors.reserve_login("window@example.com", now).await,
        Ok(Reservation::Allowed { attempt: 2 }),
        "reaping must never forget an open window"
    );
}

#[actix::test]
async fn fifty_concurrent_reservations_for_one_user_allow_exactly_max_attempts() {
    let actors = start(config(), Backing::Local);

    let results = concurrently(50, |_| {
        let actors = actors.clone();
        async move { actors.reserve_login("alice@example.com", NOW).await }
    })
    .await;

    // nothing was recorded: the others waited for the five in flight, and were never
    // told "locked"
    assert_eq!(allowed(&results), 5);
    assert_eq!(in_flight(&results), 45, "{results:?}");
}

#[actix::test]
async fn failures_lock_once_and_success_resets() {
    let actors = start(config(), Backing::Local);
    let key = "bob@example.com";
    let mut locks = 0;
    for n in 0..5 {
        let at = NOW.plus_ms(n);
        assert!(actors.reserve_login(key, at).await.unwrap().is_allowed());
        if let FailureOutcome::Locked { .. } = actors.record_login_failure(key, at).await.unwrap() {
            locks += 1;
        }
    }
    assert_eq!(locks, 1);
    assert!(!actors
        .reserve_login(key, NOW.plus_ms(10))
        .await
        .unwrap()
        .is_allowed());

    actors.record_login_success(key).await.unwrap();
    assert_eq!(
        actors.reserve_login(key, NOW.plus_ms(11)).await,
        Ok(Reservation::Allowed { attempt: 1 })
    );
}

/// Holds every backing call until the test opens the gate; counts overlapping calls.
struct GatedBacking {
    store: MemoryBacking,
    gate: Arc<Semaphore>,
    entered: Arc<Notify>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl GatedBacking {
    fn new(open: bool) -> Self {
        Self {
            store: MemoryBacking::new(),
            gate: Arc::new(Semaphore::new(if open {
                Semaphore::MAX_PERMITS
            } else {
                0
            })),
            entered: Arc::new(Notify::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn hold<T: Send + 'static>(&self, decided: BackingFuture<T>) -> BackingFuture<T> {
        let (gate, entered) = (self.gate.clone(), self.entered.clone());
        let (in_flight, max) = (self.in_flight.clone(), self.max_in_flight.clone());
        Box::pin(async move {
            let now_in = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now_in, Ordering::SeqCst);
            entered.notify_one();
            let permit = gate.acquire().await.unwrap();
            actix::clock::sleep(Duration::from_millis(1)).await;
            drop(permit);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            decided.await
        })
    }
}

impl LockoutBacking for GatedBacking {
    fn reserve(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<ReserveOutcome> {
        self.hold(self.store.reserve(key, policy, now))
    }

    fn record_failure(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<FailureOutcome> {
        self.hold(self.store.record_failure(key, policy, now))
    }

    fn record_success(&self, key: &UserKey) -> BackingFuture<()> {
        self.hold(self.store.record_success(key))
    }
}

#[actix::test]
async fn a_shared_backing_sees_one_call_at_a_time_per_user() {
    let backing = Arc::new(GatedBacking::new(true));
    let actors = start(config(), Backing::Shared(backing.clone()));

    let results = concurrently(50, |_| {
        let actors = actors.clone();
        async move { actors.reserve_login("dave@example.com", NOW).await }
    })
    .await;

    assert_eq!(allowed(&results), 5);
    assert_eq!(in_flight(&results), 45);
    // the waiting ones were asked for again, one backing call at a time
    assert_eq!(backing.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(actors.stats().backing_failures, 0);
}

#[actix::test]
async fn two_instances_sharing_a_backing_allow_max_attempts_in_total() {
    let shared = Arc::new(MemoryBacking::new());
    let one = start(config(), Backing::Shared(shared.clone()));
    let two = start(config(), Backing::Shared(shared.clone()));

    let results = concurrently(40, |i| {
        let actors = if i % 2 == 0 { one.clone() } else { two.clone() };
        async move { actors.reserve_login("erin@example.com", NOW).await }
    })
    .await;

    assert_eq!(allowed(&results), 5);
    assert_eq!(in_flight(&results), 35);
    assert_eq!(shared.state("erin@example.com").unwrap().attempts, 5);
}

struct BrokenBacking {
    hang: bool,
}

impl BrokenBacking {
    fn fail<T: Send + 'static>(&self) -> BackingFuture<T> {
        if self.hang {
            Box::pin(pending())
        } else {
            Box::pin(async { Err(BackingError::failed("redis: connection refused")) })
        }
    }
}

impl LockoutBacking for BrokenBacking {
    fn reserve(
        &self,
        _: &UserKey,
        _: LockoutPolicy,
        _: Timestamp,
    ) -> BackingFuture<ReserveOutcome> {
        self.fail()
    }

    fn record_failure(
        &self,
        _: &UserKey,
        _: LockoutPolicy,
        _: Timestamp,
    ) -> BackingFuture<FailureOutcome> {
        self.fail()
    }

    fn record_success(&self, _: &UserKey) -> BackingFuture<()> {
        self.fail()
    }
}

#[actix::test]
async fn a_failing_backing_falls_back_to_the_local_policy() {
    let actors = start(config(), Backing::shared(BrokenBacking { hang: false }));

    let results = concurrently(8, |_| {
        let actors = actors.clone();
        async move { actors.reserve_login("frank@example.com", NOW).await }
    })
    .await;

    assert_eq!(allowed(&results), 5, "still answered, still bounded");
    assert_eq!(in_flight(&results), 3, "{results:?}");
    // every retry of a waiting reservation asked the backing again
    assert!(actors.stats().backing_failures >= 8);
}

/// A shared store that can go down (a Redis outage).
struct FlakyBacking {
    store: MemoryBacking,
    down: AtomicBool,
}

impl FlakyBacking {
    fn guard<T: Send + 'static>(&self, decided: BackingFuture<T>) -> BackingFuture<T> {
        if self.down.load(Ordering::SeqCst) {
            Box::pin(async { Err(BackingError::failed("redis: connection reset")) })
        } else {
            decided
        }
    }
}

impl LockoutBacking for FlakyBacking {
    fn reserve(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<ReserveOutcome> {
        self.guard(self.store.reserve(key, policy, now))
    }

    fn record_failure(
        &self,
        key: &UserKey,
        policy: LockoutPolicy,
        now: Timestamp,
    ) -> BackingFuture<FailureOutcome> {
        self.guard(self.store.record_failure(key, policy, now))
    }

    fn record_success(&self, key: &UserKey) -> BackingFuture<()> {
        self.guard(self.store.record_success(key))
    }
}

#[actix::test]
async fn during_a_backing_outage_the_actor_continues_from_the_mirrored_state() {
    let backing = Arc::new(FlakyBacking {
        store: MemoryBacking::new(),
        down: AtomicBool::new(false),
    });
    let actors = start(config(), Backing::Shared(backing.clone()));
    let key = "ivan@example.com";
    for n in 0..4 {
        assert!(actors
            .reserve_login(key, NOW.plus_ms(n))
            .await
            .unwrap()
            .is_allowed());
        actors
            .record_login_failure(key, NOW.plus_ms(n))
            .await
            .unwrap();
    }

    backing.down.store(true, Ordering::SeqCst);

    assert_eq!(
        actors.reserve_login(key, NOW.plus_ms(10)).await,
        Ok(Reservation::Allowed { attempt: 5 })
    );
    assert!(matches!(
        actors.record_login_failure(key, NOW.plus_ms(10)).await,
        Ok(FailureOutcome::Locked { .. })
    ));
    assert!(!actors
        .reserve_login(key, NOW.plus_ms(11))
        .await
        .unwrap()
        .is_allowed());
    assert_eq!(actors.stats().backing_failures, 3);
}

#[actix::test]
async fn a_hanging_backing_times_out_and_falls_back() {
    let actors = start(
        SecurityConfig {
            backing_timeout: Duration::from_millis(30),
            ..config()
        },
        Backing::shared(BrokenBacking { hang: true }),
    );

    assert_eq!(
        actors.reserve_login("grace@example.com", NOW).await,
        Ok(Reservation::Allowed { attempt: 1 })
    );
    assert_eq!(actors.stats().backing_failures, 1);
}

#[actix::test]
async fn a_full_user_mailbox_answers_overloaded_at_once() {
    let backing = Arc::new(GatedBacking::new(false));
    let actors = start(
        SecurityConfig {
            user_mailbox: 2,
            backing_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ..config()
        },
        Backing::Shared(backing.clone()),
    );
    let key = "heidi@example.com";
    // the first request holds the actor inside the backing call
    let first = actix::spawn({
        let actors = actors.clone();
        async move { actors.reserve_login(key, NOW).await }
    });
    backing.entered.notified().await;

    let flood: Vec<_> = (0..30)
        .map(|_| {
            let actors = actors.clone();
            actix::spawn(async move { actors.reserve_login(key, NOW).await })
        })
        .collect();
    // every flood request has been routed (answered Overloaded or queued) once the
    // rejection count stops growing; then open the gate
    let mut seen = u64::MAX;
    while actors.stats().mailbox_rejections != seen {
        seen = actors.stats().mailbox_rejections;
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    backing.gate.add_permits(Semaphore::MAX_PERMITS);

    let mut results = vec![first.await.unwrap()];
    for task in flood {
        results.push(task.await.unwrap());
    }
    let overloaded = results
        .iter()
        .filter(|r| **r == Err(ActorError::Overloaded))
        .count();
    let answered = results.iter().filter(|r| r.is_ok()).count();

    assert!(
        overloaded >= 25,
        "only {overloaded} of 31 refused with a mailbox of 2"
    );
    assert_eq!(overloaded + answered, 31);
    assert_eq!(actors.stats().mailbox_rejections, overloaded as u64);
    assert_eq!(allowed(&results), answered.min(5));
}

/// One sign-in with the right password: reserve, verify (a yield), record the success.
async fn correct_password(actors: SecurityHandle, key: &'static str) -> Result<u32, ActorError> {
    match actors.reserve_login(key, NOW).await? {
        Reservation::Allowed { attempt } => {
            actix::clock::sleep(Duration::from_millis(1)).await;
            actors.record_login_success(key).await?;
            Ok(attempt)
        }
        Reservation::Locked { .. } => Err(ActorError::Unavailable),
    }
}

#[actix::test]
async fn forty_concurrent_correct_passwords_all_verify_and_none_is_locked() {
    let actors = start(patient(), Backing::Local);
    let results = concurrently(40, |_| correct_password(actors.clone(), "judy@example.com")).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // every attempt of every window was used, never more than five
    assert!(results
        .iter()
        .all(|r| (1..=5).contains(r.as_ref().unwrap())));
    let stats = actors.stats();
    assert!(stats.pending_waits > 0, "{stats:?}");
    assert_eq!(stats.pending_refusals, 0);
}

#[actix::test]
async fn a_success_on_one_instance_gives_places_to_reservations_waiting_on_another() {
    let shared = Arc::new(MemoryBacking::new());
    let one = start(patient(), Backing::Shared(shared.clone()));
    let two = start(patient(), Backing::Shared(shared.clone()));
    let key = "kim@example.com";
    // five checks in flight on instance one
    for _ in 0..5 {
        assert!(one.reserve_login(key, NOW).await.unwrap().is_allowed());
    }
    // ten sign-ins with the right password wait on instance two: only its poll of the
    // shared state can see the success recorded by instance one
    let waiting: Vec<_> = (0..10)
        .map(|_| actix::spawn(correct_password(two.clone(), key)))
        .collect();
    assert!(eventually(|| two.stats().pending_waits == 10).await);
    one.record_login_success(key).await.unwrap();

    for task in waiting {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(two.stats().pending_refusals, 0);
}

#[actix::test]
async fn waiting_reservations_are_told_locked_only_by_the_last_failure() {
    let actors = start(patient(), Backing::Local);
    let key = "lena@example.com";
    for _ in 0..5 {
        assert!(actors.reserve_login(key, NOW).await.unwrap().is_allowed());
    }
    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let actors = actors.clone();
            actix::spawn(async move { actors.reserve_login(key, NOW).await })
        })
        .collect();
    assert!(eventually(|| actors.stats().pending_waits == 10).await);

    for n in 0..4 {
        assert_eq!(
            actors.record_login_failure(key, NOW.plus_ms(n)).await,
            Ok(FailureOutcome::Counted {
                failures: n as u32 + 1
            })
        );
    }
    actix::clock::sleep(Duration::from_millis(50)).await;
    assert!(
        waiting.iter().all(|task| !task.is_finished()),
        "answered before the outcome of every check in flight"
    );

    assert!(matches!(
        actors.record_login_failure(key, NOW.plus_ms(4)).await,
        Ok(FailureOutcome::Locked { .. })
    ));
    for task in waiting {
        assert!(matches!(
            task.await.unwrap(),
            Ok(Reservation::Locked { .. })
        ));
    }
}

#[actix::test]
async fn a_reservation_waits_at_most_pending_wait_and_is_not_told_locked() {
    let actors = start(config(), Backing::Local);
    let key = "mia@example.com";
    for _ in 0..5 {
        assert!(actors.reserve_login(key, NOW).await.unwrap().is_allowed());
    }
    // no outcome ever comes
    assert_eq!(
        actors.reserve_login(key, NOW).await,
        Err(ActorError::AttemptsInFlight)
    );
    let stats = actors.stats();
    assert_eq!((stats.pending_waits, stats.pending_refusals), (1, 1));
    // the account is not locked: a success reopens the window
    actors.record_login_success(key).await.unwrap();
    assert_eq!(
        actors.reserve_login(key, NOW).await,
        Ok(Reservation::Allowed { attempt: 1 })
    );
}

#[actix::test]
async fn at_most_max_pending_reservations_wait_per_user() {
    let actors = start(
        SecurityConfig {
            max_pending: 3,
            ..patient()
        },
        Backing::Local,
    );
    let key = "noor@example.com";
    for _ in 0..5 {
        assert!(actors.reserve_login(key, NOW).await.unwrap().is_allowed());
    }
    // ten more while the five are in flight: three wait, seven are refused at once
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let actors = actors.clone();
            actix::spawn(async move { actors.reserve_login(key, NOW).await })
        })
        .collect();
    assert!(eventually(|| actors.stats().pending_refusals == 7).await);
    assert_eq!(actors.stats().pending_waits, 3);
    actors.record_login_success(key).await.unwrap();

    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(allowed(&results), 3, "{results:?}");
    assert_eq!(in_flight(&results), 7, "{results:?}");
}

#[test]
fn starting_outside_an_actix_system_is_an_error() {
    let result = SecurityActors::start(config(), Backing::Local);
    assert!(matches!(result, Err(StartError::NoArbiter)));
}

#[actix::test]
async fn rate_limits_prune_idle_keys_on_a_timer() {
    let limits = RateLimits::start(
        [("login", RateQuota::new(1, Duration::from_millis(300)))],
        Duration::from_millis(20),
    )
    .unwrap();

    assert!(limits.check("login", "192.0.2.1").is_allowed());
    assert!(!limits.check("login", "192.0.2.1").is_allowed());
    assert_eq!(limits.tracked_keys(), 1);

    assert!(eventually(|| limits.tracked_keys() == 0).await);
    assert!(limits.check("login", "192.0.2.1").is_allowed());
}
