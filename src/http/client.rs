//! Who is calling: the client IP and user agent of a request.
//!
//! The IP comes from `X-Forwarded-For` only when the TCP peer is a trusted
//! proxy (`TRUSTED_PROXIES`); then it is the right-most address that is not
//! itself trusted, since the ALB appends the address it saw. Anyone else's
//! forwarded headers change nothing.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use ipnet::IpNet;

use crate::domain::ClientContext;

/// The trusted proxy networks, shared as app data.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address for a peer and its `X-Forwarded-For` values.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> Option<IpAddr> {
        let peer = peer?;
        if !self.contains(&peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> = forwarded_for
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        Some(
            hops.iter()
                .rev()
                .find(|ip| !self.contains(ip))
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// Extracts the [`ClientContext`] of a request.
pub struct Client(pub ClientContext);

pub fn context(req: &HttpRequest) -> ClientContext {
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .map(|d| d.get_ref().clone())
        .unwrap_or_default();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = trusted.client_ip(req.peer_addr().map(|a| a.ip()), &forwarded);
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    ClientContext { ip, user_agent }
}

impl FromRequest for Client {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Client(context(req))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let t = TrustedProxies::default();
        assert_eq!(
            t.client_ip(Some(ip("203.0.113.9")), &["1.2.3.4"]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn trusted_proxy_gives_rightmost_untrusted_hop() {
        let t = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        // The client claims 1.2.3.4; the ALB appended the address it saw.
        assert_eq!(
            t.client_ip(Some(ip("10.0.1.5")), &["1.2.3.4, 198.51.100.7", "10.0.2.2"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(t.client_ip(Some(ip("10.0.1.5")), &[]), Some(ip("10.0.1.5")));
    }
}
