//! Domain types parsed at the edge: once a value is an [`Email`] or a
//! [`NewPassword`] it has passed every rule. No I/O happens here.

pub mod audit_chain;
pub mod client;
pub mod consent;
pub mod device;
pub mod email;
pub mod login_counters;
pub mod password;
pub mod rate_window;
pub mod refresh;
pub mod reset;
pub mod retention;
pub mod second_factor;

/// The time of the rules' tests: a manual clock, minutes after a fixed instant.
#[cfg(test)]
pub(crate) mod test_clock {
    use chrono::{DateTime, Duration, TimeZone, Utc};

    pub fn at(minutes: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default()
            + Duration::minutes(minutes)
    }
}

pub use client::ClientContext;
pub use email::Email;
pub use password::{NewPassword, PasswordContext, PasswordRule};

/// One rule a field broke, reported in a 422 problem's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            code: code.to_string(),
            message: message.into(),
        }
    }
}
