//! Every Redis key this service writes, its format and its lifetime.
//!
//! Keys carry a hash tag (`{…}`) per account or per client, so the scripts
//! that touch one account's keys run on one Redis Cluster slot. Emails never
//! appear in key names: accounts are named by a SHA-256 digest.

use sha2::{Digest, Sha256};

/// A short, stable digest of an account key (normalized email).
pub fn account_tag(account: &str) -> String {
    let digest = Sha256::digest(account.as_bytes());
    hex::encode(&digest[..12])
}

/// `{prefix}:lockout:{<account digest>}` — a hash with fields `a` (attempts),
/// `f` (failures), `w` (window start, unix ms), `l` (locked until, unix ms).
/// Expires two lockout periods after its last change.
pub fn lockout(prefix: &str, account: &str) -> String {
    format!("{prefix}:lockout:{{{}}}", account_tag(account))
}

/// `{prefix}:rate:{<route>:<client>}` — a sorted set of the times (unix ms)
/// of a client's admitted requests in the sliding window; expires a window
/// after its last request. `client` is an IPv4 address or an IPv6 network.
pub fn rate(prefix: &str, route: &str, client: &str) -> String {
    format!("{prefix}:rate:{{{route}:{client}}}")
}

/// `{prefix}:session:{<session id>}` — a hash with `la` (last activity,
/// unix ms), `ex` (absolute end), `rv` (revoked), `ck` (when the database
/// last confirmed it). A cache of the database's session row, rebuilt from
/// the database when absent and checked against it again a minute after `ck`;
/// it expires a minute after its last use (every use, and every batch of
/// activity an instance writes, renews that), and a revocation is kept for
/// the access-token lifetime plus a minute.
pub fn session(prefix: &str, session_id: &str) -> String {
    format!("{prefix}:session:{{{session_id}}}")
}

/// `{prefix}:session-revocations` — the pub/sub channel on which each
/// revocation is published (space-separated session ids) to every instance.
pub fn session_revocations(prefix: &str) -> String {
    format!("{prefix}:session-revocations")
}

/// `{prefix}:session-revocation-acks:{instance}` — the pub/sub channel on
/// which the instances confirm to `instance` that they applied one of its
/// revocation messages (the message's sequence number).
pub fn session_revocation_acks(prefix: &str, instance: &str) -> String {
    format!("{prefix}:session-revocation-acks:{instance}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_tagged_and_carry_no_email() {
        let k = lockout("p", "alice@example.com");
        assert!(k.starts_with("p:lockout:{") && k.ends_with('}'));
        assert!(!k.contains("alice"));
        assert_eq!(rate("p", "login", "1.2.3.4"), "p:rate:{login:1.2.3.4}");
    }
}
