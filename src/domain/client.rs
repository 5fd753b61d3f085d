//! Where a request came from: recorded with consents, sessions and audit rows.
//! The HTTP layer fills it (trusting forwarded addresses only from configured
//! proxies); nothing below it reads a request.

use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}
