//! RSA signing keys: loaded from PEM values or files, or — in development only
//! — generated once into the data directory with a loud warning.
//!
//! A key's `kid` is its RFC 7638 JWK thumbprint, so every instance given the
//! same key names it the same way without further configuration.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::{Config, KeySource};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("RSA key generation failed")]
    Generation,
}

/// One RSA key pair with its public components.
pub struct SigningKey {
    pub kid: String,
    pub pair: RsaKeyPair,
    /// Modulus, big-endian without leading zero.
    pub n: Vec<u8>,
    /// Public exponent, big-endian without leading zero.
    pub e: Vec<u8>,
}

impl SigningKey {
    pub fn from_pair(pair: RsaKeyPair) -> Self {
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let kid = thumbprint(&n, &e);
        Self { kid, pair, n, e }
    }
}

/// RFC 7638 thumbprint of an RSA public key, base64url.
pub fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Loads the configured key, or generates a development key when allowed.
pub fn load(config: &Config) -> Result<SigningKey, KeyError> {
    let source = &config.jwt.keys;
    if source.is_configured() {
        return load_configured(source);
    }
    // Config validation already refused this in production-like environments.
    let dir = config.data_dir.join("keys");
    let private_path = dir.join("jwt-private.pem");
    if private_path.exists() {
        let pem = read(&private_path)?;
        return parse_private_pem(&pem, "JWT_PRIVATE_KEY_PATH");
    }
    tracing::warn!(
        path = %private_path.display(),
        "no JWT_PRIVATE_KEY configured: generating a DEVELOPMENT signing key; never use this in production"
    );
    let (private_pem, public_pem) = generate_pem()?;
    let kept = create_private_once(&private_path, &private_pem, whole_pem)?;
    if kept == private_pem {
        write_file(&dir.join("jwt-public.pem"), &public_pem)?;
    }
    parse_private_pem(&kept, "JWT_PRIVATE_KEY_PATH")
}

/// The DER of the signing key this configuration uses: the configured one,
/// or the development key generated into `DATA_DIR` (once [`load`] ran).
pub fn signing_key_der(config: &Config) -> Option<Vec<u8>> {
    let source = &config.jwt.keys;
    let pem = match (&source.private_pem, &source.private_path) {
        (Some(pem), _) => pem.expose_secret().replace("\\n", "\n"),
        (None, Some(path)) => read(path).ok()?,
        (None, None) => read(&config.data_dir.join("keys").join("jwt-private.pem")).ok()?,
    };
    pem_body(&pem, "JWT_PRIVATE_KEY").ok()
}

fn load_configured(source: &KeySource) -> Result<SigningKey, KeyError> {
    let (pem, var) = match (&source.private_pem, &source.private_path) {
        (Some(pem), _) => (pem.expose_secret().replace("\\n", "\n"), "JWT_PRIVATE_KEY"),
        (None, Some(path)) => (read(path)?, "JWT_PRIVATE_KEY_PATH"),
        (None, None) => {
            return Err(KeyError::Invalid {
                var: "JWT_PRIVATE_KEY",
                message: "not set".into(),
            })
        }
    };
    let key = parse_private_pem(&pem, var)?;
    // A configured public key must be the private key's own half.
    let public = match (&source.public_pem, &source.public_path) {
        (Some(pem), _) => Some((pem.replace("\\n", "\n"), "JWT_PUBLIC_KEY")),
        (None, Some(path)) => Some((read(path)?, "JWT_PUBLIC_KEY_PATH")),
        (None, None) => None,
    };
    if let Some((pem, var)) = public {
        let der = pem_body(&pem, var)?;
        let expected = key
            .pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::Generation)?;
        let pkcs1 = key.pair.public_key().as_ref().to_vec();
        if der != expected.as_ref() && der != pkcs1 {
            return Err(KeyError::Invalid {
                var,
                message: "the public key does not belong to the private key".into(),
            });
        }
    }
    Ok(key)
}

/// A verify-only public key: its `kid` and RSA components.
pub struct VerifyOnlyKey {
    pub kid: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

/// The configured verify-only keys (`JWT_ADDITIONAL_PUBLIC_KEYS[_PATH]`).
pub fn load_additional(source: &KeySource) -> Result<Vec<VerifyOnlyKey>, KeyError> {
    let (bundle, var) = match (
        &source.additional_public_pem,
        &source.additional_public_path,
    ) {
        (Some(pem), _) => (pem.replace("\\n", "\n"), "JWT_ADDITIONAL_PUBLIC_KEYS"),
        (None, Some(path)) => (read(path)?, "JWT_ADDITIONAL_PUBLIC_KEYS_PATH"),
        (None, None) => return Ok(Vec::new()),
    };
    let mut keys = Vec::new();
    for block in bundle
        .split("-----END")
        .filter(|b| b.contains("-----BEGIN"))
    {
        let pem = format!("{block}-----END");
        let der = pem_body(&pem, var)?;
        let public = aws_lc_rs::rsa::PublicKey::from_der(&der).map_err(|e| KeyError::Invalid {
            var,
            message: format!("not an RSA public key ({e})"),
        })?;
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        keys.push(VerifyOnlyKey {
            kid: thumbprint(&n, &e),
            n,
            e,
        });
    }
    Ok(keys)
}

/// Parses a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
pub fn parse_private_pem(pem: &str, var: &'static str) -> Result<SigningKey, KeyError> {
    let der = pem_body(pem, var)?;
    let pair = if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    }
    .map_err(|e| KeyError::Invalid {
        var,
        message: format!("not an RSA private key ({e})"),
    })?;
    if pair.public_modulus_len() < 256 {
        return Err(KeyError::Invalid {
            var,
            message: "RSA keys must have at least 2048 bits".into(),
        });
    }
    Ok(SigningKey::from_pair(pair))
}

fn pem_body(pem: &str, var: &'static str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if !pem.contains("-----BEGIN") || body.is_empty() {
        return Err(KeyError::Invalid {
            var,
            message: "not a PEM document".into(),
        });
    }
    STANDARD.decode(body).map_err(|_| KeyError::Invalid {
        var,
        message: "the PEM body is not valid base64".into(),
    })
}

/// The SPKI public PEM of a private PEM (for publishing a key ahead of use).
pub fn public_pem_of(private_pem: &str) -> Result<String, KeyError> {
    let key = parse_private_pem(private_pem, "private key")?;
    let der = key
        .pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Generation)?;
    Ok(to_pem("PUBLIC KEY", der.as_ref()))
}

/// Generates a 2048-bit RSA pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_pem() -> Result<(String, String), KeyError> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
    let private = pair.as_der().map_err(|_| KeyError::Generation)?;
    let public = pair
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Generation)?;
    Ok((
        to_pem("PRIVATE KEY", private.as_ref()),
        to_pem("PUBLIC KEY", public.as_ref()),
    ))
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

fn write_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    let io = io_error(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)
}

/// Writes a private key readable by its owner only, from the moment the
/// file exists (it is created with that mode, never widened then narrowed).
pub fn write_private(path: &Path, contents: &str) -> Result<(), KeyError> {
    let io = io_error(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// Turns an I/O error on `path` into a [`KeyError`].
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> KeyError + Copy + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `path` holding `contents`, readable by its owner only, unless it
/// exists; returns what the file holds. Instances started together on one
/// `DATA_DIR` each generate a development key: the first to link its file in
/// place wins and the others read it, so all of them sign and seal with the
/// same key. A plain write, or a rename into place, would let the last one
/// win after the others had started with their own. Where the file system
/// has no hard links, the file is created exclusively instead, and the
/// others read it once it is `whole` ([`create_exclusively`]).
pub fn create_private_once(
    path: &Path,
    contents: &str,
    whole: fn(&str) -> bool,
) -> Result<String, KeyError> {
    let io = io_error(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut nonce = [0u8; 8];
    rand::fill(&mut nonce[..]);
    let draft = path.with_extension(format!("draft-{}", hex::encode(nonce)));
    write_private(&draft, contents)?;
    let linked = std::fs::hard_link(&draft, path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(contents.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(_) => create_exclusively(path, contents, whole),
    }
}

/// [`create_private_once`] where the file system has no hard links: the
/// first to create the file writes it; the others wait until what they read
/// is `whole` (the first may still be writing), for at most two seconds.
fn create_exclusively(
    path: &Path,
    contents: &str,
    whole: fn(&str) -> bool,
) -> Result<String, KeyError> {
    let io = io_error(path);
    match owner_only().write(true).create_new(true).open(path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(contents.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_whole(path, whole),
        Err(e) => Err(io(e)),
    }
}

/// Reads `path` again until its text is `whole`, for at most two seconds;
/// then returns what it holds (the caller's parse names what is wrong).
fn read_whole(path: &Path, whole: fn(&str) -> bool) -> Result<String, KeyError> {
    let mut text = read(path)?;
    for _ in 0..100 {
        if whole(&text) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        text = read(path)?;
    }
    Ok(text)
}

/// Whether a PEM file's text is complete (its last line is an END line).
pub fn whole_pem(text: &str) -> bool {
    text.trim_end()
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("-----END ") && l.ends_with("-----"))
}

fn owner_only() -> std::fs::OpenOptions {
    #[allow(unused_mut)]
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes a new key pair as `<prefix>-private.pem` / `<prefix>-public.pem`.
pub fn write_pair(dir: &Path, prefix: &str) -> Result<(PathBuf, PathBuf, String), KeyError> {
    let (private_pem, public_pem) = generate_pem()?;
    let kid = parse_private_pem(&private_pem, "generated")?.kid;
    let private_path = dir.join(format!("{prefix}-private.pem"));
    let public_path = dir.join(format!("{prefix}-public.pem"));
    write_private(&private_path, &private_pem)?;
    write_file(&public_path, &public_pem)?;
    Ok((private_path, public_path, kid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_pems_round_trip_with_a_stable_kid() {
        let (private_pem, _public) = generate_pem().unwrap();
        let a = parse_private_pem(&private_pem, "X").unwrap();
        let b = parse_private_pem(&private_pem, "X").unwrap();
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.kid.len(), 43);
        assert_eq!(a.e, vec![1, 0, 1]);
    }

    /// Eight starts racing on one empty directory keep one key, readable by
    /// its owner only.
    #[test]
    fn racing_starts_keep_the_first_key_written() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("keys").join("k.pem");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let kept: Vec<String> = (0..8)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    create_private_once(&path, &format!("key {i}\n"), |t| t.ends_with('\n'))
                        .unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(kept.iter().all(|k| *k == on_disk), "{kept:?} vs {on_disk}");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "drafts left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Without hard links, the file is created exclusively: racing starts
    /// keep the first key, and one that finds the file still being written
    /// waits until it is whole.
    #[test]
    fn without_hard_links_the_first_key_is_kept_and_read_whole() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let ends = |t: &str| t.ends_with('\n');
        let kept: Vec<String> = (0..8)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    create_exclusively(&path, &format!("key {i}\n"), ends).unwrap()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(kept.iter().all(|k| *k == on_disk), "{kept:?} vs {on_disk}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // A file still being written (half a PEM) is read once it is whole.
        let half = dir.join("half.pem");
        std::fs::write(&half, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
        let finishing = {
            let half = half.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let whole = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
                std::fs::write(&half, whole).unwrap();
            })
        };
        let read = create_exclusively(&half, "another", whole_pem).unwrap();
        finishing.join().unwrap();
        assert!(whole_pem(&read), "{read}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_is_refused_with_the_variable_named() {
        let err = parse_private_pem("hello", "JWT_PRIVATE_KEY").err().unwrap();
        assert!(err.to_string().starts_with("JWT_PRIVATE_KEY:"));
    }
}
