//! The start-up banner of development and test runs: one block on stdout
//! telling a newcomer where things are. It names places, never a secret:
//! connection strings lose their credentials and keys are named by path.

use secrecy::ExposeSecret;

use crate::config::{Config, DatabaseConfig};

/// Prints the banner, outside staging and production (which log JSON only).
pub fn print(config: &Config, port: u16) {
    if let Some(banner) = render(config, port) {
        // One write, so the block is never interleaved with log lines.
        println!("{banner}");
    }
}

/// The banner text; `None` in staging and production.
pub fn render(config: &Config, port: u16) -> Option<String> {
    if config.environment.is_production_like() {
        return None;
    }
    let host = match config.host.to_string().as_str() {
        "0.0.0.0" | "::" => "localhost".to_string(),
        h if config.host.is_ipv6() => format!("[{h}]"),
        h => h.to_string(),
    };
    let url = format!("http://{host}:{port}");
    let storage = match &config.database {
        DatabaseConfig::Sqlite { path } => format!("embedded SQLite, {}", path.display()),
        DatabaseConfig::Postgres { url, .. } => {
            format!("PostgreSQL, {}", postgres_place(url.expose_secret()))
        }
    };
    let redis = match &config.redis {
        Some(r) => without_credentials(&r.endpoint),
        None => "none: lockout, rate limits and sessions are kept by this process".to_string(),
    };
    let mail = match &config.smtp {
        Some(smtp) => format!(
            "SMTP relay {}:{} ({})",
            smtp.host,
            smtp.port,
            match smtp.tls {
                crate::config::SmtpTls::None => "no TLS",
                crate::config::SmtpTls::StartTls => "STARTTLS",
                crate::config::SmtpTls::Tls => "TLS",
            }
        ),
        None => format!(
            "files in {} (each .eml with a readable .txt beside it)",
            config.mail_dir().display()
        ),
    };
    let keys_dir = config.data_dir.join("keys");
    let mut generated = Vec::new();
    if !config.jwt.keys.is_configured() {
        generated.push("JWT signing key");
    }
    if config.data_key.is_none() {
        generated.push("data encryption key");
    }
    let keys = if generated.is_empty() {
        "from the environment".to_string()
    } else {
        format!(
            "{} generated for development in {} (never use them in production)",
            generated.join(" and "),
            keys_dir.display()
        )
    };
    let lines = [
        format!(
            "suma-auth {} ready ({})",
            env!("CARGO_PKG_VERSION"),
            config.environment.as_str()
        ),
        format!("  URL       {url}   (listening on {}:{port})", config.host),
        format!("  OpenAPI   {url}/openapi.json"),
        format!("  storage   {storage}"),
        format!("  Redis     {redis}"),
        format!("  mail      {mail}"),
        format!(
            "  links     mails link to {}/verify-email and {}/reset-password",
            config.public_url, config.public_url
        ),
        format!("  keys      {keys}"),
    ];
    Some(lines.join("\n"))
}

/// `scheme://host:port/path` of a URL, without user or password.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let rest = rest.split('?').next().unwrap_or_default();
            format!("{scheme}://{rest}")
        }
        None => "(unparsed address)".to_string(),
    }
}

/// Where a PostgreSQL connection string points: `host:port/db`, from a URL
/// or a `key=value` string, never its user or password.
fn postgres_place(conn: &str) -> String {
    if conn.contains("://") {
        return without_credentials(conn);
    }
    let (mut host, mut port, mut db) = (String::new(), String::new(), String::new());
    for (key, value) in key_values(conn) {
        match key.as_str() {
            "host" | "hostaddr" => host = value,
            "port" => port = value,
            "dbname" => db = value,
            _ => {}
        }
    }
    let port = if port.is_empty() {
        String::new()
    } else {
        format!(":{port}")
    };
    format!("{host}{port}/{db}")
}

/// The pairs of a libpq `key=value` string (values may be single-quoted).
fn key_values(conn: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return pairs;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map).unwrap()
    }

    #[test]
    fn development_banner_says_where_things_are() {
        let c = config(&[("DATA_DIR", "/tmp/d"), ("PORT", "8080")]);
        let b = render(&c, 8080).unwrap();
        assert!(b.contains("URL       http://localhost:8080 "), "{b}");
        assert!(b.contains("OpenAPI   http://localhost:8080/openapi.json"));
        assert!(b.contains("embedded SQLite, /tmp/d/"));
        assert!(b.contains("files in /tmp/d/mail"));
        assert!(b.contains(
            "JWT signing key and data encryption key generated for development in /tmp/d/keys"
        ));
        assert!(b.contains("mails link to http://localhost:8080/verify-email"));
    }

    #[test]
    fn no_secret_reaches_the_banner() {
        let c = config(&[
            (
                "DATABASE_URL",
                "postgres://app:pg-s3cret@db.internal:5432/suma?sslmode=disable",
            ),
            (
                "REDIS_ENDPOINT",
                "rediss://:redis-s3cret@cache.internal:6379",
            ),
            ("REDIS_AUTH_TOKEN", "token-s3cret"),
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_USERNAME", "apikey"),
            ("SMTP_PASSWORD", "smtp-s3cret"),
            (
                "DATA_ENCRYPTION_KEY",
                "c3VtYS1hdXRoIHRlc3QgZGF0YSBrZXkgMzIgYnl0ZXM=",
            ),
        ]);
        let b = render(&c, 1234).unwrap();
        assert!(!b.contains("s3cret"), "{b}");
        assert!(!b.contains("c3VtYS1hdXRo"), "{b}");
        assert!(
            b.contains("PostgreSQL, postgres://db.internal:5432/suma"),
            "{b}"
        );
        assert!(b.contains("rediss://cache.internal:6379"), "{b}");
        assert!(
            b.contains("SMTP relay smtp.example.com:587 (STARTTLS)"),
            "{b}"
        );
        assert!(b.contains("JWT signing key generated"), "{b}");
        assert!(!b.contains("data encryption key generated"), "{b}");
    }

    #[test]
    fn key_value_connection_strings_lose_their_password() {
        let place = postgres_place(
            "host='db.internal' port=5432 user='app' password='p w\\'s3cret' dbname='suma'",
        );
        assert_eq!(place, "db.internal:5432/suma");
    }

    #[test]
    fn staging_and_production_print_nothing() {
        // Production-like configs need much more; render only looks at the environment.
        let mut c = config(&[]);
        c.environment = crate::config::Environment::Staging;
        assert!(render(&c, 8080).is_none());
    }
}
