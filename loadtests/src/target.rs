//! The only place a base URL is accepted: every request this harness sends goes to the
//! loopback interface of this machine, never anywhere else.

use std::net::IpAddr;

use awc::http::Uri;

/// A validated `http://` base URL whose host is on the loopback interface.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    base: String,
}

impl BaseUrl {
    /// Accepts `http://127.x.y.z:PORT`, `http://localhost:PORT` or `http://[::1]:PORT`
    /// (an optional trailing `/` is dropped). Anything else is refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|e| format!("invalid base URL {raw:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            _ => return Err(format!("base URL {raw:?} must start with http://")),
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("base URL {raw:?} has no host"))?;
        if !is_loopback_host(host) {
            return Err(format!(
                "refusing base URL {raw:?}: this harness only sends traffic to the loopback \
                 interface (127.0.0.0/8, localhost, [::1])"
            ));
        }
        if uri
            .path_and_query()
            .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
        {
            return Err(format!(
                "base URL {raw:?} must not have a path; give http://HOST:PORT"
            ));
        }
        Ok(Self {
            base: trimmed.to_owned(),
        })
    }

    /// `path` must start with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The absolute URI of `path`, parsed once so workers can reuse it cheaply.
    pub fn uri(&self, path: &str) -> Result<Uri, String> {
        self.join(path)
            .parse()
            .map_err(|e| format!("invalid URL {}: {e}", self.join(path)))
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_only() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.1.2.3:1",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(BaseUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.1",
            "http://example.com",
            "https://127.0.0.1:8443",
            "http://127.0.0.1:8080/api",
            "127.0.0.1:8080",
            "http://[::2]:80",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joins_paths() {
        let b = BaseUrl::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(b.join("/health"), "http://127.0.0.1:9/health");
        assert_eq!(b.as_str(), "http://127.0.0.1:9");
    }
}
