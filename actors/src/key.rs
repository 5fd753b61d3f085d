//! Owns `UserKey`, the identity of a per-user actor, and the stable hash that picks its shard.

use std::fmt;
use std::sync::Arc;

/// Which account an actor serves: a normalised email or a user id, chosen by the caller.
///
/// Cheap to clone (shared string), so the shard map, the actor and in-flight backing calls
/// share one allocation. `Debug` does not print it: keys may be emails (personal data).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserKey(Arc<str>);

impl UserKey {
    /// The key for `key`, taken as given (normalise before calling).
    pub fn new(key: &str) -> Self {
        Self(Arc::from(key))
    }

    /// The key as text, e.g. to build a Redis key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserKey(<redacted>)")
    }
}

/// The shard (of `shards`) that owns `key`: FNV-1a, stable across processes and versions.
pub(crate) fn shard_of(key: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let shards = u64::try_from(shards.max(1)).unwrap_or(u64::MAX);
    usize::try_from(hash % shards).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_is_stable_and_in_range() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c
        assert_eq!(shard_of("a", 1 << 16), 0xec8c);
        for n in 0..1000 {
            assert!(shard_of(&format!("user{n}@example.com"), 8) < 8);
        }
    }

    #[test]
    fn shard_of_spreads_keys() {
        let mut counts = [0usize; 8];
        for n in 0..8000 {
            counts[shard_of(&format!("user{n}@example.com"), 8)] += 1;
        }
        assert!(counts.iter().all(|c| (700..1300).contains(c)), "{counts:?}");
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(!format!("{:?}", UserKey::new("alice@example.com")).contains("alice"));
    }
}
