//! Access tokens whose signature this process has already verified.
//!
//! A client presents the same access token on every request until it
//! expires, and the RSA verification is the largest single cost of an
//! authenticated request. An entry is keyed by the SHA-256 of the whole
//! token (header, claims and signature), so only the very bytes that were
//! verified can hit; the times (`exp`, `nbf`, `iat`) are still checked on
//! every use by the caller. The verifying keys of a process never change, so
//! an entry never needs to be revoked (session revocation is decided after
//! the token, by the session check).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Shards (locks); a power of two.
const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (the entries are only a
/// shortcut). 16 × 256 × about 300 bytes: about 1.2 MB at most.
const PER_SHARD: usize = 256;

/// `C`: the claims a verification yields (the access-token claims of
/// `jwt.rs`); generic so that this cache knows nothing of the token format.
pub(super) struct VerifiedTokens<C> {
    shards: Vec<Mutex<HashMap<[u8; 32], C>>>,
}

impl<C> Default for VerifiedTokens<C> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<C: Clone> VerifiedTokens<C> {
    pub(super) fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], C>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The claims of a token verified before, if this one is.
    pub(super) fn get(&self, key: &[u8; 32]) -> Option<C> {
        self.shard(key).lock().ok()?.get(key).cloned()
    }

    /// Remembers a token whose signature and fixed claims were verified.
    pub(super) fn insert(&self, key: [u8; 32], claims: &C) {
        if let Ok(mut shard) = self.shard(&key).lock() {
            if shard.len() >= PER_SHARD {
                shard.clear();
            }
            shard.insert(key, claims.clone());
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}
