//! Hashes of one-time codes and recovery codes at rest.
//!
//! A code is short (six digits, or ten base32 characters), so a bare digest
//! of it would be reversed by trying every code. Stored hashes are keyed:
//! `HMAC-SHA-256(code key, SHA-256("<scope>:<code>"))`, hex, where the code
//! key is derived from `DATA_ENCRYPTION_KEY` ([`Sealer::code_mac`]) and the
//! scope binds the code to its challenge (email codes) or its user
//! (recovery codes), so equal codes never share a hash.
//!
//! The inner digest is what earlier releases stored bare (the *legacy*
//! form). Keying that digest, rather than the code, lets a stored legacy
//! hash be converted without knowing the code ([`rekey`]): recovery codes
//! are converted by the sweep, and until a row is converted the legacy form
//! is accepted for that row only (see `storage` `use_recovery_code`).

use sha2::{Digest, Sha256};

use super::seal::Sealer;

fn digest(scope: &str, code: &str) -> [u8; 32] {
    Sha256::digest(format!("{scope}:{code}").as_bytes()).into()
}

/// The stored form: keyed.
pub fn keyed_hash(sealer: &Sealer, scope: &str, code: &str) -> String {
    hex::encode(sealer.code_mac(&digest(scope, code)))
}

/// The bare digest earlier releases stored (accepted only on unconverted rows).
pub fn legacy_hash(scope: &str, code: &str) -> String {
    hex::encode(digest(scope, code))
}

/// The keyed form of a stored legacy hash; `None` when it is not a digest.
pub fn rekey(sealer: &Sealer, legacy: &str) -> Option<String> {
    let bytes = hex::decode(legacy).ok().filter(|b| b.len() == 32)?;
    Some(hex::encode(sealer.code_mac(&bytes)))
}

/// A recovery code as typed, reduced to what identifies it (letters and
/// digits, lowercase): `ABCDE-12345` and `abcde12345` are the same code.
pub fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keyed_hashes_are_not_bare_digests_and_depend_on_the_key() {
        let a = Sealer::from_bytes(&[1u8; 32]).unwrap();
        let b = Sealer::from_bytes(&[2u8; 32]).unwrap();
        let keyed = keyed_hash(&a, "scope", "123456");
        assert_eq!(keyed.len(), 64);
        assert_ne!(keyed, legacy_hash("scope", "123456"));
        assert_ne!(keyed, keyed_hash(&b, "scope", "123456"));
        assert_ne!(keyed, keyed_hash(&a, "other", "123456"));
    }

    #[test]
    fn a_legacy_hash_rekeys_to_the_keyed_hash_of_the_same_code() {
        let s = Sealer::from_bytes(&[1u8; 32]).unwrap();
        let legacy = legacy_hash("user", "abcde12345");
        assert_eq!(
            rekey(&s, &legacy).as_deref(),
            Some(keyed_hash(&s, "user", "abcde12345").as_str())
        );
        assert_eq!(rekey(&s, "not hex"), None);
        assert_eq!(rekey(&s, "abcd"), None);
    }

    #[test]
    fn recovery_codes_normalize() {
        assert_eq!(normalize_recovery(" ABCDE-12345 "), "abcde12345");
    }
}
