//! The only place a base URL is accepted: every request this harness sends goes to the
//! loopback interface of this machine, unless another target is named twice: as the
//! base URL and, word for word, as `--confirm-target HOST:PORT`.

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
        Self::parse_confirmed(raw, None)
    }

    /// As [`BaseUrl::parse`], but a host off the loopback interface is accepted
    /// when `confirm` names exactly its `HOST:PORT`.
    pub fn parse_confirmed(raw: &str, confirm: Option<&str>) -> Result<Self, String> {
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
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let confirmed = confirm.is_some_and(|c| c.trim().eq_ignore_ascii_case(&authority));
        if !is_loopback_host(host) && !confirmed {
            return Err(format!(
                "refusing base URL {raw:?}: this harness only sends traffic to the loopback \
                 interface (127.0.0.0/8, localhost, [::1]); to load another server, name it \
                 again with --confirm-target {authority}"
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

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
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
    fn another_target_only_when_confirmed_by_name() {
        let url = "http://10.1.2.3:8080";
        assert!(BaseUrl::parse(url).is_err());
        assert!(BaseUrl::parse_confirmed(url, None).is_err());
        assert!(BaseUrl::parse_confirmed(url, Some("10.1.2.3")).is_err());
        assert!(BaseUrl::parse_confirmed(url, Some("10.1.2.3:8081")).is_err());
        assert!(BaseUrl::parse_confirmed(url, Some("10.9.9.9:8080")).is_err());
        assert!(BaseUrl::parse_confirmed(url, Some("10.1.2.3:8080")).is_ok());
        assert!(
            BaseUrl::parse_confirmed("http://staging.example:80", Some("STAGING.example:80"))
                .is_ok()
        );
        assert!(
            BaseUrl::parse_confirmed("http://staging.example", Some("staging.example:80")).is_ok()
        );
        let err = BaseUrl::parse(url).unwrap_err();
        assert!(err.contains("--confirm-target 10.1.2.3:8080"), "{err}");
    }

    #[test]
    fn joins_paths() {
        let b = BaseUrl::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(b.join("/health"), "http://127.0.0.1:9/health");
        assert_eq!(b.as_str(), "http://127.0.0.1:9");
    }
}
