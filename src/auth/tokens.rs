//! Opaque tokens (verification, reset, refresh): 256 random bits from a
//! CSPRNG, URL-safe base64 on the wire, and only their SHA-256 digest at rest.
//!
//! A fast digest is right here: the tokens carry 256 bits of entropy, so
//! there is nothing to brute-force, and lookups must be by hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A fresh 256-bit token, URL-safe base64 without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The id of a new refresh-token row: time-ordered (UUIDv7), so that the
/// rows a refresh inserts land at the end of the primary-key index, in a page
/// every recent rotation shares, instead of in a random page each (which
/// every commit would then write out again). The id is never shown; the
/// token itself stays random.
pub fn token_row_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// The SHA-256 digest of a token, hex encoded (64 characters): what is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// True when `token` has the shape of one of ours; anything else is refused
/// before it reaches the database.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_urlsafe_and_hashed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert!(well_formed(&a));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a".repeat(42).add_char('+')));
    }

    /// Each row id sorts after the one issued before it, as stored (text).
    #[test]
    fn token_row_ids_sort_in_issue_order() {
        let ids: Vec<String> = (0..1000).map(|_| token_row_id().to_string()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    trait AddChar {
        fn add_char(self, c: char) -> String;
    }
    impl AddChar for String {
        fn add_char(mut self, c: char) -> String {
            self.push(c);
            self
        }
    }
}
