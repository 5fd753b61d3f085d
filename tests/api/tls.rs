//! TLS to PostgreSQL as libpq defines `sslmode`, against a TLS-only server
//! with a throwaway CA: `verify-full` connects, a wrong CA or host name is
//! refused with one line naming the variable, and plaintext is refused by the
//! server's `hostssl`-only `pg_hba.conf`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::tls_postgres::TlsPostgres;

fn server_env(
    pg: &TlsPostgres,
    host: &str,
    mode: &str,
    root: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("DB_HOST".to_string(), host.to_string()),
        ("DB_PORT".to_string(), pg.port.to_string()),
        ("DB_NAME".to_string(), "postgres".to_string()),
        ("DB_USER".to_string(), "postgres".to_string()),
        ("DB_SSLMODE".to_string(), mode.to_string()),
    ];
    if let Some(root) = root {
        env.push(("DB_SSLROOTCERT".to_string(), root.to_string()));
    }
    env
}

/// Starts the real binary; returns its exit status (None if still running)
/// and stderr after the server was asked to stop.
fn start_binary(
    env: &[(String, String)],
    data_dir: &std::path::Path,
) -> (Option<i32>, bool, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_suma-auth"))
        .env_clear()
        .envs(env.iter().cloned())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("DATA_DIR", data_dir)
        .env("ARGON2_MEMORY_KIB", "64")
        .env("ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut healthy = false;
    let mut exited = None;
    for _ in 0..150 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = status.code();
            break;
        }
        let probe = Command::new(env!("CARGO_BIN_EXE_suma-auth"))
            .arg("health")
            .env("PORT", port.to_string())
            .output()
            .unwrap();
        if probe.status.success() {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if exited.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (
        exited,
        healthy,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_server_reaches_tls_only_postgres_as_sslmode_says() {
    let pg = TlsPostgres::start();
    let data = tempdir();
    let ca = pg.file("ca.pem");

    // verify-full with the CA: the binary starts and `suma-auth health` says ready.
    let (exited, healthy, stderr) = start_binary(
        &server_env(&pg, "localhost", "verify-full", Some(&ca)),
        &data,
    );
    assert!(
        healthy,
        "verify-full did not start (exit {exited:?}): {stderr}"
    );

    // The CA may also be given as PEM text (as ECS injects secrets).
    let pem = std::fs::read_to_string(&ca).unwrap();
    let (_, healthy, stderr) = start_binary(
        &server_env(&pg, "localhost", "verify-full", Some(&pem)),
        &data,
    );
    assert!(healthy, "inline CA refused: {stderr}");

    // A CA that did not sign the server's certificate: refused, one line, names the variable.
    let (exited, healthy, stderr) = start_binary(
        &server_env(
            &pg,
            "localhost",
            "verify-full",
            Some(&pg.file("other-ca.pem")),
        ),
        &data,
    );
    assert!(!healthy && exited.is_some_and(|c| c != 0), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains("DB_SSLROOTCERT") && line.contains("not trusted"),
        "{stderr}"
    );

    // The right CA but a host name the certificate does not carry.
    let (exited, healthy, stderr) = start_binary(
        &server_env(&pg, "127.0.0.1", "verify-full", Some(&ca)),
        &data,
    );
    assert!(!healthy && exited.is_some_and(|c| c != 0), "{stderr}");
    let line = last_line(&stderr);
    assert!(
        line.contains("DB_HOST") && line.contains("not valid for host"),
        "{stderr}"
    );

    // verify-ca checks the chain but not the name: the same address connects.
    let (_, healthy, stderr) =
        start_binary(&server_env(&pg, "127.0.0.1", "verify-ca", Some(&ca)), &data);
    assert!(healthy, "verify-ca refused a trusted chain: {stderr}");

    // verify-ca with the wrong CA is still refused.
    let (_, healthy, _) = start_binary(
        &server_env(
            &pg,
            "127.0.0.1",
            "verify-ca",
            Some(&pg.file("other-ca.pem")),
        ),
        &data,
    );
    assert!(!healthy);

    // Plaintext: the server's hostssl-only rules refuse it.
    let (exited, healthy, stderr) =
        start_binary(&server_env(&pg, "localhost", "disable", None), &data);
    assert!(!healthy && exited.is_some_and(|c| c != 0), "{stderr}");
    assert!(stderr.contains("pg_hba.conf"), "{stderr}");

    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn production_refuses_unverified_database_tls() {
    let base = [
        ("ENVIRONMENT", "production"),
        ("DB_HOST", "db"),
        ("DB_NAME", "auth"),
        ("DB_USER", "u"),
        ("JWT_PRIVATE_KEY_PATH", "/k.pem"),
        ("DATA_ENCRYPTION_KEY", "k"),
        ("SENDGRID_API_KEY", "k"),
        ("PUBLIC_URL", "https://auth.example"),
        ("TRUSTED_PROXIES", "10.0.0.0/16"),
    ];
    let config = |extra: &[(&str, &str)]| {
        let map: std::collections::HashMap<String, String> = base
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        suma_auth::Config::from_map(&map)
    };
    let err = config(&[("DB_SSLMODE", "require")]).unwrap_err();
    assert_eq!(err.var, "DB_SSLMODE");
    let err = config(&[]).unwrap_err();
    assert_eq!(err.var, "DB_SSLMODE", "the default (prefer) is refused too");
    assert!(config(&[("DB_SSLMODE", "verify-full")]).is_ok());
    assert!(config(&[
        ("DB_SSLMODE", "require"),
        ("DB_SSLMODE_ALLOW_INSECURE", "true")
    ])
    .is_ok());
    // sslmode in DATABASE_URL counts, and is named as the source.
    let map: std::collections::HashMap<String, String> = base
        .iter()
        .filter(|(k, _)| !k.starts_with("DB_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(
            "DATABASE_URL".to_string(),
            "postgres://u@db/auth?sslmode=require".to_string(),
        )])
        .collect();
    assert_eq!(
        suma_auth::Config::from_map(&map).unwrap_err().var,
        "DATABASE_URL"
    );
}

fn last_line(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("suma-tls-data-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
