//! What the actors keep once every idle one is reaped. Its own test binary: it counts
//! every allocation of the process, which a test running beside it would disturb.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use suma_auth_actors::clock::wall_clock_now;
use suma_auth_actors::{Backing, SecurityActors, SecurityConfig, SecurityHandle};

#[path = "../examples/support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

const USERS: usize = 100_000;
const CONCURRENCY: usize = 16;

/// Signs `USERS` distinct users in (a reservation and its success each), `CONCURRENCY`
/// at a time.
async fn touch_every_user(handle: &SecurityHandle) {
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|worker| {
            let handle = handle.clone();
            actix_rt::spawn(async move {
                for n in (worker..USERS).step_by(CONCURRENCY) {
                    let key = format!("user{n:07}@example.com");
                    handle.reserve_login(&key, wall_clock_now()).await.unwrap();
                    handle.record_login_success(&key).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// A sweep notifies its idle actors in batches, letting the thread run each batch
/// before the next. Notified all at once, every shard's thread queued all its actors
/// together, and its run queue kept that capacity (8 bytes per actor) after the reap.
/// The idle timeout outlasts the sign-ins, so that one sweep finds every actor idle.
#[actix_rt::test]
async fn a_mass_reap_gives_back_what_the_actors_held() {
    let config = SecurityConfig {
        idle_timeout: Duration::from_secs(3),
        ..SecurityConfig::default()
    };
    let handle = SecurityActors::start(config, Backing::Local).unwrap();
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    let before = counting::live_bytes();

    touch_every_user(&handle).await;
    let peak = counting::live_bytes();

    // up to a minute
    for _ in 0..1200 {
        if handle.stats().live_actors == 0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(handle.stats().live_actors, 0, "{:?}", handle.stats());
    // the last stop notices reach the shards, which then shrink their maps
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let kept = counting::live_bytes() - before;
    println!(
        "{USERS} users: heap +{} KiB at the peak, +{} KiB after the reap",
        (peak - before) / 1024,
        kept / 1024,
    );
    assert!(kept < 256 * 1024, "kept {kept} bytes after the reap");
}
