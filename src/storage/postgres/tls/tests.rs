//! Unit tests of the TLS settings.

use super::*;

#[test]
fn url_params_are_taken_out() {
    let (rest, mode, root) = split_ssl_params(
        "postgres://u:p@db:5432/auth?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
    );
    assert_eq!(rest, "postgres://u:p@db:5432/auth?application_name=x");
    assert_eq!(mode.as_deref(), Some("verify-full"));
    assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
    let (rest, mode, _) = split_ssl_params("postgres://db/auth");
    assert_eq!((rest.as_str(), mode), ("postgres://db/auth", None));
}

#[test]
fn key_value_params_are_taken_out() {
    let (rest, mode, root) = split_ssl_params(
        "host='db' port=5432 password='p\\'w x' sslmode=require sslrootcert='/a b.pem'",
    );
    assert_eq!(rest, "host='db' port=5432 password='p\\'w x'");
    assert_eq!(mode.as_deref(), Some("require"));
    assert_eq!(root.as_deref(), Some("/a b.pem"));
    assert!(rest.parse::<tokio_postgres::Config>().is_ok());
}

#[test]
fn modes_follow_libpq() {
    assert!("verify-full".parse::<SslMode>().is_ok());
    assert!("allow".parse::<SslMode>().is_err());
    let tls = |mode, root: Option<RootCert>| PgTls {
        mode,
        root_cert: root,
        ..PgTls::default()
    };
    assert_eq!(
        tls(SslMode::Require, None).verification(),
        Verification::None
    );
    assert_eq!(
        tls(SslMode::Require, Some(RootCert::Path("/x".into()))).verification(),
        Verification::CaOnly
    );
    assert_eq!(
        tls(SslMode::VerifyFull, None).verification(),
        Verification::Full
    );
    assert!(RootCert::from_setting("-----BEGIN CERTIFICATE-----\n") != RootCert::Path("x".into()));
}
