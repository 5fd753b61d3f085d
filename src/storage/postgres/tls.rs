//! TLS to PostgreSQL with rustls, with libpq's `sslmode` semantics.
//!
//! tokio-postgres itself only knows `disable`/`prefer`/`require` and never
//! verifies certificates; the verification levels live here, in the rustls
//! client configuration handed to `tokio-postgres-rustls`:
//!
//! | mode          | encrypted          | certificate checked                 |
//! |---------------|--------------------|-------------------------------------|
//! | `disable`     | no                 | —                                   |
//! | `prefer`      | if the server can  | no (as libpq)                       |
//! | `require`     | yes                | no; with a root bundle: the CA      |
//! | `verify-ca`   | yes                | signed by a trusted CA              |
//! | `verify-full` | yes                | trusted CA and the host name        |
//!
//! Trusted CAs are the system roots plus the optional `DB_SSLROOTCERT` bundle
//! (a file path, or the PEM text itself so that ECS can inject it as a secret).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            // libpq's `allow` tries plaintext first; nothing here wants that.
            other => Err(format!(
                "unknown sslmode {other:?} (expected disable, prefer, require, verify-ca or verify-full)"
            )),
        }
    }
}

/// A CA bundle: a file, or PEM text given inline.
#[derive(Clone, PartialEq, Eq)]
pub enum RootCert {
    Path(PathBuf),
    Pem(String),
}

impl RootCert {
    /// `DB_SSLROOTCERT`'s value: PEM text when it holds a certificate, else a path.
    pub fn from_setting(value: &str) -> Self {
        if value.contains("-----BEGIN") {
            RootCert::Pem(value.to_string())
        } else {
            RootCert::Path(PathBuf::from(value.trim()))
        }
    }
}

impl fmt::Debug for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::Path(p) => write!(f, "{}", p.display()),
            RootCert::Pem(_) => f.write_str("inline PEM"),
        }
    }
}

/// How to reach the database over TLS, and which settings said so (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    /// The variable that chose the mode (`DB_SSLMODE` or `DATABASE_URL`).
    pub mode_var: &'static str,
    /// The variable that names the host (`DB_HOST` or `DATABASE_URL`).
    pub host_var: &'static str,
}

impl Default for PgTls {
    fn default() -> Self {
        Self {
            mode: SslMode::Prefer,
            root_cert: None,
            mode_var: "DB_SSLMODE",
            host_var: "DB_HOST",
        }
    }
}

/// Why a TLS setup or handshake failed, worded for one start-up line.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct TlsError {
    pub var: &'static str,
    pub message: String,
}

impl PgTls {
    /// The mode tokio-postgres negotiates with (verification is rustls's job).
    pub fn negotiation(&self) -> tokio_postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }

    fn verification(&self) -> Verification {
        match self.mode {
            SslMode::VerifyFull => Verification::Full,
            SslMode::VerifyCa => Verification::CaOnly,
            SslMode::Require if self.root_cert.is_some() => Verification::CaOnly,
            _ => Verification::None,
        }
    }

    /// The rustls connector for this mode.
    pub fn connector(&self) -> Result<MakeRustlsConnect, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.setup_error(e.to_string()))?;
        let config = match self.verification() {
            Verification::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lax {
                    provider,
                    chain: None,
                }))
                .with_no_client_auth(),
            Verification::Full | Verification::CaOnly => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| self.setup_error(e.to_string()))?;
                let verifier: Arc<dyn ServerCertVerifier> =
                    if self.verification() == Verification::Full {
                        webpki
                    } else {
                        Arc::new(Lax {
                            provider,
                            chain: Some(webpki),
                        })
                    };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn setup_error(&self, message: String) -> TlsError {
        TlsError {
            var: self.mode_var,
            message,
        }
    }

    /// The system roots plus the configured bundle.
    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(bundle) = &self.root_cert {
            let pem = match bundle {
                RootCert::Pem(pem) => pem.clone().into_bytes(),
                RootCert::Path(path) => std::fs::read(path).map_err(|e| TlsError {
                    var: "DB_SSLROOTCERT",
                    message: format!("cannot read {}: {e}", path.display()),
                })?,
            };
            let mut added = 0;
            for cert in rustls_pemfile_certs(&pem) {
                if roots.add(cert).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                return Err(TlsError {
                    var: "DB_SSLROOTCERT",
                    message: format!("no usable certificate in {bundle:?}"),
                });
            }
        }
        if roots.is_empty() {
            return Err(TlsError {
                var: "DB_SSLROOTCERT",
                message: format!(
                    "sslmode {} needs a trusted CA: no system roots were found and no bundle is set",
                    self.mode.as_str()
                ),
            });
        }
        Ok(roots)
    }

    /// Words a failed connection for one line when TLS was the cause.
    pub fn explain(&self, error: &tokio_postgres::Error, host: &str) -> Option<TlsError> {
        if let Some(rustls::Error::InvalidCertificate(cert)) = find_rustls_error(error) {
            return Some(match cert {
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    TlsError {
                        var: self.host_var,
                        message: format!(
                            "the database's certificate is not valid for host {host:?} (sslmode {})",
                            self.mode.as_str()
                        ),
                    }
                }
                other => TlsError {
                    var: "DB_SSLROOTCERT",
                    message: format!(
                        "the database's certificate is not trusted ({other:?}; sslmode {}; trusted: system roots{})",
                        self.mode.as_str(),
                        if self.root_cert.is_some() { " + DB_SSLROOTCERT" } else { "" }
                    ),
                },
            });
        }
        if error.to_string().contains("server does not support TLS") {
            return Some(TlsError {
                var: self.mode_var,
                message: format!(
                    "sslmode {} requires TLS but the database does not offer it",
                    self.mode.as_str()
                ),
            });
        }
        None
    }
}

/// The rustls error behind a connection error, also when an `io::Error` wraps it.
fn find_rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    None,
    CaOnly,
    Full,
}

/// PEM `CERTIFICATE` blocks of a bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The verifiers laxer than `verify-full`, as libpq's modes are. Without a
/// chain (`prefer`/`require` without a bundle) the connection is encrypted
/// but any certificate is accepted, exactly as libpq does; with one
/// (`verify-ca`) the chain must lead to a trusted CA and the host name is
/// not checked. Handshake signatures are checked either way.
#[derive(Debug)]
struct Lax {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl Lax {
    /// The signature algorithms handshakes are checked with.
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for Lax {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL or
/// key/value form), which tokio-postgres would refuse or ignore, and returns
/// the rest with them.
pub fn split_ssl_params(conn: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return (conn.to_string(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = Some(percent_decode(v)),
                "sslrootcert" => root = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, mode, root);
    }
    // key/value form: `key=value` or `key='quoted \' value'`, space separated.
    let mut kept = Vec::new();
    let chars: Vec<char> = conn.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '=' {
            i += 1;
        }
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        match key.as_str() {
            "" => {}
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(raw),
        }
    }
    (kept.join(" "), mode, root)
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
