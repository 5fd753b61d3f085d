//! The audit trail's hash chain (`docs/audit.md`): the canonical encoding of
//! a row, its SHA-256, and the salted digest that stands in the chain for the
//! row's IP address and user agent. Pure functions; the stores append with
//! them and `services::audit` verifies with them.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first chained row, and the anchor before any prune.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The event a retention prune appends; its metadata records the new anchor.
pub const PRUNE_EVENT: &str = "audit_pruned";

/// Domain separation of the two digests.
const ROW_TAG: &[u8] = b"suma-auth/audit-row/v1";
const CLIENT_TAG: &[u8] = b"suma-auth/audit-client/v1";

/// What the hash of a row covers, as stored.
#[derive(Debug, Clone, Copy)]
pub struct RowFields<'a> {
    pub seq: i64,
    pub prev_hash: &'a str,
    pub id: Uuid,
    /// The (pseudonymous) user id as stored (hyphenated lowercase); kept
    /// after erasure.
    pub user_id: Option<&'a str>,
    pub event_type: &'a str,
    pub event_status: &'a str,
    /// [`client_digest`] of the IP address and user agent, when either was known.
    pub client_digest: Option<&'a str>,
    pub metadata: &'a serde_json::Value,
    /// At the precision the backend stores (microseconds or milliseconds).
    pub created_at: DateTime<Utc>,
}

/// One field: a presence byte, then the length (u64, big endian) and the bytes.
fn field(h: &mut Sha256, v: Option<&[u8]>) {
    match v {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

/// The row's hash: SHA-256 of its canonical encoding, lowercase hex.
pub fn row_hash(r: &RowFields<'_>) -> String {
    let mut h = Sha256::new();
    field(&mut h, Some(ROW_TAG));
    field(&mut h, Some(r.seq.to_string().as_bytes()));
    field(&mut h, Some(r.prev_hash.as_bytes()));
    field(&mut h, Some(r.id.hyphenated().to_string().as_bytes()));
    field(&mut h, r.user_id.map(str::as_bytes));
    field(&mut h, Some(r.event_type.as_bytes()));
    field(&mut h, Some(r.event_status.as_bytes()));
    field(&mut h, r.client_digest.map(str::as_bytes));
    field(&mut h, Some(canonical_json(r.metadata).as_bytes()));
    field(
        &mut h,
        Some(r.created_at.timestamp_micros().to_string().as_bytes()),
    );
    hex::encode(h.finalize())
}

/// The salted digest of a row's IP address and user agent. The salt is the
/// row's own and is cleared with them on erasure, so the digest left in the
/// chain cannot be matched against guessed addresses afterwards.
pub fn client_digest(salt: &str, ip: Option<&str>, user_agent: Option<&str>) -> String {
    let mut h = Sha256::new();
    field(&mut h, Some(CLIENT_TAG));
    field(&mut h, Some(salt.as_bytes()));
    field(&mut h, ip.map(str::as_bytes));
    field(&mut h, user_agent.map(str::as_bytes));
    hex::encode(h.finalize())
}

/// A fresh random salt for [`client_digest`] (128 bits, hex).
pub fn new_salt() -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    hex::encode(salt)
}

/// JSON with object keys sorted and no whitespace, so that a value reads the
/// same after a round trip through either database (PostgreSQL's `jsonb`
/// reorders keys).
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(value) = map.get(k) {
                    write_canonical(value, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields<'a>(metadata: &'a serde_json::Value, digest: Option<&'a str>) -> RowFields<'a> {
        RowFields {
            seq: 7,
            prev_hash: GENESIS,
            id: Uuid::nil(),
            user_id: Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            event_type: "login",
            event_status: "success",
            client_digest: digest,
            metadata,
            created_at: DateTime::<Utc>::default(),
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,"z"]}}"#).unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":[1,"z"],"y":2},"b":1}"#).unwrap_or_default();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":[1,"z"],"y":2},"b":1}"#);
        assert_eq!(row_hash(&fields(&a, None)), row_hash(&fields(&b, None)));
    }

    #[test]
    fn every_field_changes_the_hash() {
        let m = json!({"reason": "x"});
        let base = row_hash(&fields(&m, Some("d")));
        let other = json!({"reason": "y"});
        let variants = [
            RowFields {
                seq: 8,
                ..fields(&m, Some("d"))
            },
            RowFields {
                prev_hash: "1",
                ..fields(&m, Some("d"))
            },
            RowFields {
                id: Uuid::max(),
                ..fields(&m, Some("d"))
            },
            RowFields {
                user_id: None,
                ..fields(&m, Some("d"))
            },
            RowFields {
                event_type: "logout",
                ..fields(&m, Some("d"))
            },
            RowFields {
                event_status: "failure",
                ..fields(&m, Some("d"))
            },
            RowFields {
                client_digest: None,
                ..fields(&m, Some("d"))
            },
            fields(&other, Some("d")),
            RowFields {
                created_at: DateTime::<Utc>::default() + chrono::Duration::microseconds(1),
                ..fields(&m, Some("d"))
            },
        ];
        for v in variants {
            assert_ne!(row_hash(&v), base);
        }
    }

    #[test]
    fn the_client_digest_depends_on_salt_and_fields() {
        let d = client_digest("s", Some("192.0.2.1"), Some("ua"));
        assert_ne!(d, client_digest("t", Some("192.0.2.1"), Some("ua")));
        assert_ne!(d, client_digest("s", Some("192.0.2.2"), Some("ua")));
        assert_ne!(d, client_digest("s", Some("192.0.2.1"), None));
        // Field boundaries are part of the encoding.
        assert_ne!(
            client_digest("s", Some("ab"), Some("c")),
            client_digest("s", Some("a"), Some("bc"))
        );
    }
}
