//! Typed views of the API's answers, read from a [`Resp`] instead of
//! indexing JSON values field by field.

use serde::Deserialize;
use serde_json::Value;

use super::Resp;

/// The token pair a sign-in or a refresh answers with.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub session_id: String,
    /// The whole body, for fields asserted as JSON.
    #[serde(skip)]
    pub json: Value,
}

impl std::ops::Index<&str> for TokenPair {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        &self.json[field]
    }
}

/// A field error of a 422 problem.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    pub message: String,
}

/// A problem body (RFC 9457) with this API's extensions.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: Option<String>,
    pub request_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl Resp {
    /// The body as `T`; panics, showing the answer, when it is not one.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not {what} ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text (lossy), for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The token pair of a 200 sign-in or refresh.
    pub fn token_pair(&self) -> TokenPair {
        assert_eq!(
            self.status,
            200,
            "a token pair: {}",
            String::from_utf8_lossy(&self.body)
        );
        let mut pair: TokenPair = self.parse("a token pair");
        pair.json = self.json();
        pair
    }

    /// The problem body of an error answer.
    pub fn problem(&self) -> Problem {
        self.parse("a problem")
    }

    /// The `recovery_codes` of an answer that issues them.
    pub fn recovery_codes(&self) -> Vec<String> {
        self.json()["recovery_codes"]
            .as_array()
            .unwrap_or_else(|| panic!("no recovery codes: {}", String::from_utf8_lossy(&self.body)))
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    /// The `mfa_token` of a login that asks for a second factor.
    pub fn mfa_token(&self) -> String {
        self.json()["mfa_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no mfa_token: {}", String::from_utf8_lossy(&self.body)))
            .to_string()
    }
}
