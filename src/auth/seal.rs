//! Sealing data at rest with AES-256-GCM (TOTP secrets; outbox payloads,
//! which carry links and codes). The key comes from `DATA_ENCRYPTION_KEY` (base64 of 32 bytes); in
//! development without one, a key is generated into the data directory.
//!
//! The same key also yields, by HMAC-SHA-256 with a fixed label, the
//! separate key of the keyed hashes of one-time codes and recovery codes
//! ([`Sealer::code_mac`], see `auth::codes`).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::ExposeSecret;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("DATA_ENCRYPTION_KEY: {0}")]
    Key(String),
    #[error("sealed data is damaged or was sealed with another key")]
    Open,
}

/// The `key_checks` purpose of `DATA_ENCRYPTION_KEY`.
pub const DATA_KEY_PURPOSE: &str = "data_encryption_key";

/// The first 12 characters of a fingerprint, enough to tell two apart in a
/// log line or an operator's table.
pub fn short_fingerprint(fingerprint: &str) -> String {
    fingerprint.chars().take(12).collect()
}

pub struct Sealer {
    key: LessSafeKey,
    /// HMAC-SHA-256 key of the code hashes, derived from the data key.
    code_key: hmac::Key,
    /// HMAC-SHA-256 key for [`Sealer::tag`], derived from the data key (never
    /// the AES key itself).
    tag_key: hmac::Key,
}

/// The label the code-hash key is derived under (changing it re-keys every
/// stored code hash).
const CODE_KEY_LABEL: &[u8] = b"suma-auth/code-hash/v1";

/// The label a development data key is derived from the signing key under.
const DEVELOPMENT_KEY_LABEL: &[u8] = b"suma-auth/development-data-key/v1";

/// The label the tag key is derived under (changing it re-keys every stored tag).
const TAG_KEY_LABEL: &[u8] = b"suma-auth/tag/v1";

impl Sealer {
    pub fn from_config(config: &Config) -> Result<Self, SealError> {
        let bytes = match &config.data_key {
            Some(b64) => STANDARD
                .decode(b64.expose_secret().trim())
                .map_err(|_| SealError::Key("not base64".into()))?,
            None => Self::development_key(config)?,
        };
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SealError::Key("must be 32 bytes".into()))?;
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, bytes), CODE_KEY_LABEL);
        let tag_derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, bytes), TAG_KEY_LABEL);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            code_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            tag_key: hmac::Key::new(hmac::HMAC_SHA256, tag_derived.as_ref()),
        })
    }

    /// HMAC-SHA-256 of `data` under the code-hash key.
    pub fn code_mac(&self, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let tag = hmac::sign(&self.code_key, data);
        for (o, t) in out.iter_mut().zip(tag.as_ref()) {
            *o = *t;
        }
        out
    }

    fn development_key(config: &Config) -> Result<Vec<u8>, SealError> {
        let path = config.data_dir.join("keys").join("data.key");
        if let Ok(existing) = std::fs::read_to_string(&path) {
            return STANDARD
                .decode(existing.trim())
                .map_err(|_| SealError::Key(format!("{} is not base64", path.display())));
        }
        // Derived from the signing key where there is one, so that instances
        // sharing a signing key (as they must, to accept each other's tokens)
        // and a database, each with its own DATA_DIR, seal alike.
        let key: [u8; 32] = match crate::auth::keys::signing_key_der(config) {
            Some(der) => {
                tracing::warn!(path = %path.display(), "no DATA_ENCRYPTION_KEY: deriving a DEVELOPMENT data key from the JWT signing key");
                let mut key = [0u8; 32];
                let mac = hmac::sign(
                    &hmac::Key::new(hmac::HMAC_SHA256, &der),
                    DEVELOPMENT_KEY_LABEL,
                );
                key.copy_from_slice(&mac.as_ref()[..32]);
                key
            }
            None => {
                tracing::warn!(path = %path.display(), "no DATA_ENCRYPTION_KEY: generating a DEVELOPMENT data key");
                let mut key = [0u8; 32];
                rand::fill(&mut key[..]);
                key
            }
        };
        // Whole once it is the 44 characters of 32 bytes in base64.
        let whole = |t: &str| t.trim().len() == 44;
        let kept = crate::auth::keys::create_private_once(&path, &STANDARD.encode(key), whole)
            .map_err(|e| SealError::Key(e.to_string()))?;
        STANDARD
            .decode(kept.trim())
            .map_err(|_| SealError::Key(format!("{} is not base64", path.display())))
    }

    /// A keyed digest (HMAC-SHA256, hex) of `value` under `purpose`: equal
    /// values give equal tags, so rows can be found by it, but without the
    /// key a tag says nothing of its value (unlike a bare hash of an email
    /// address, which a dictionary reverses).
    pub fn tag(&self, purpose: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.tag_key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }

    /// What the database records of this key (`key_checks`): a tag under
    /// it, which tells keys apart and says nothing of them.
    pub fn fingerprint(&self) -> String {
        self.tag("key-check", DATA_KEY_PURPOSE)
    }

    /// base64(nonce ‖ ciphertext ‖ tag)
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = STANDARD.decode(sealed).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Two instances with the same signing key and no data key, each with
    /// its own `DATA_DIR`, seal alike; another signing key seals otherwise.
    #[test]
    fn development_data_keys_follow_the_signing_key() {
        let (pem, _) = crate::auth::keys::generate_pem().unwrap();
        let (other_pem, _) = crate::auth::keys::generate_pem().unwrap();
        let root = std::env::temp_dir().join(format!("seal-{}", uuid::Uuid::new_v4().simple()));
        let sealer = |dir: &str, pem: &str| {
            let map: std::collections::HashMap<String, String> = [
                ("DATA_DIR", root.join(dir).display().to_string()),
                ("JWT_PRIVATE_KEY", pem.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            Sealer::from_config(&Config::from_map(&map).unwrap()).unwrap()
        };
        let a = sealer("a", &pem);
        let b = sealer("b", &pem);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(b.open(&a.seal(b"mail").unwrap()).unwrap(), b"mail");
        assert_ne!(sealer("c", &other_pem).fingerprint(), a.fingerprint());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let s = Sealer::from_bytes(&[7u8; 32]).unwrap();
        let sealed = s.seal(b"token=abc").unwrap();
        assert!(!sealed.contains("abc"));
        assert_eq!(s.open(&sealed).unwrap(), b"token=abc");
        let other = Sealer::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(Sealer::from_bytes(&[1u8; 16]).is_err());
    }

    #[test]
    fn tags_are_keyed_stable_and_bound_to_their_purpose() {
        let s = Sealer::from_bytes(&[7u8; 32]).unwrap();
        let t = s.tag("mail", "ana@example.com");
        assert_eq!(t, s.tag("mail", "ana@example.com"));
        assert_eq!(t.len(), 64);
        assert_ne!(t, s.tag("other", "ana@example.com"));
        let other = Sealer::from_bytes(&[8u8; 32]).unwrap();
        assert_ne!(t, other.tag("mail", "ana@example.com"));
    }

    #[test]
    fn the_code_key_depends_on_the_data_key_and_differs_from_it() {
        let a = Sealer::from_bytes(&[7u8; 32]).unwrap();
        let b = Sealer::from_bytes(&[8u8; 32]).unwrap();
        assert_eq!(a.code_mac(b"x"), a.code_mac(b"x"));
        assert_ne!(a.code_mac(b"x"), b.code_mac(b"x"));
        let plain = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]), b"x");
        assert_ne!(&a.code_mac(b"x")[..], plain.as_ref());
    }
}
