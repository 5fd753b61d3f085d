//! The actor crate of suma-auth: pure security policies with time passed in
//! ([`policy`]), per-user actors that cache and serialise one account's hot state behind
//! sharded registries ([`SecurityActors`], [`SecurityHandle`]), the backing contract for
//! sharing lockout decisions between instances ([`LockoutBacking`]), and a keyed rate
//! limiter ([`RateLimits`]). It knows nothing of HTTP or SQL.
//!
//! Only `clock.rs` reads a clock (`actors/clippy.toml` bans it elsewhere).

pub mod backing;
pub mod clock;
mod config;
mod error;
mod handle;
mod key;
pub mod policy;
pub mod rate_limit;
mod shard;
mod stats;
pub mod time;
mod user;

pub use backing::{Backing, BackingFuture, LockoutBacking, MemoryBacking};
pub use config::SecurityConfig;
pub use error::{ActorError, BackingError, StartError};
pub use handle::{SecurityActors, SecurityHandle};
pub use key::UserKey;
pub use policy::lockout::{
    FailureOutcome, LockoutPolicy, LockoutState, Reservation, ReserveOutcome,
};
pub use rate_limit::{RateDecision, RateLimits, RateQuota};
pub use stats::ActorStats;
pub use time::Timestamp;
