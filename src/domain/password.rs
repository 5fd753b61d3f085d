//! The password policy (NIST SP 800-63B): 12 to 128 Unicode code points after
//! NFKC normalization, never truncated or trimmed, no composition rules, not in
//! the bundled list of common breached passwords, not containing the email's
//! local part.

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::{Email, FieldError};

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

/// The 20,000 most common passwords of public breach corpora, gzipped.
static COMMON_GZ: &[u8] = include_bytes!("common-passwords.txt.gz");

static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    use std::io::Read;
    let mut text = String::new();
    let mut decoder = flate2::read::GzDecoder::new(COMMON_GZ);
    if decoder.read_to_string(&mut text).is_err() {
        tracing::error!("the bundled common-password list could not be read");
    }
    text.lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
});

/// Loads the common-password list now rather than on the first registration.
pub fn warm_up() -> usize {
    COMMON.len()
}

/// Why a password was refused (the `code` in the 422 `errors` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    TooShort,
    TooLong,
    Common,
    ContainsEmail,
}

impl PasswordRule {
    pub fn code(self) -> &'static str {
        match self {
            PasswordRule::TooShort => "too_short",
            PasswordRule::TooLong => "too_long",
            PasswordRule::Common => "common_password",
            PasswordRule::ContainsEmail => "contains_email",
        }
    }

    fn message(self) -> String {
        match self {
            PasswordRule::TooShort => format!("use at least {MIN_CHARS} characters"),
            PasswordRule::TooLong => format!("use at most {MAX_CHARS} characters"),
            PasswordRule::Common => "this password is too common; choose another".to_string(),
            PasswordRule::ContainsEmail => {
                "the password must not contain your email address".to_string()
            }
        }
    }
}

/// A password that passed the policy, NFKC-normalized, kept secret.
pub struct NewPassword(SecretString);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

impl NewPassword {
    /// Checks `raw` against every rule; all broken rules are reported.
    pub fn parse(
        raw: &SecretString,
        email: Option<&Email>,
        field: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let normalized = normalize(raw);
        let pw = normalized.expose_secret();
        let chars = pw.chars().count();
        let mut broken = Vec::new();
        if chars < MIN_CHARS {
            broken.push(PasswordRule::TooShort);
        }
        if chars > MAX_CHARS {
            broken.push(PasswordRule::TooLong);
        }
        let lower = pw.to_lowercase();
        if COMMON.contains(&lower) {
            broken.push(PasswordRule::Common);
        }
        if let Some(email) = email {
            let local = email.local_part();
            if local.chars().count() >= 3 && lower.contains(local) {
                broken.push(PasswordRule::ContainsEmail);
            }
        }
        if broken.is_empty() {
            Ok(NewPassword(normalized))
        } else {
            Err(broken
                .into_iter()
                .map(|r| FieldError::new(field, r.code(), r.message()))
                .collect())
        }
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// NFKC normalization, applied both when a password is set and when it is
/// checked, so that the same characters typed on different keyboards match.
pub fn normalize(raw: &SecretString) -> SecretString {
    SecretString::from(raw.expose_secret().nfkc().collect::<String>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(pw: &str, email: &str) -> Result<NewPassword, Vec<String>> {
        let email = Email::parse(email, "email").unwrap();
        NewPassword::parse(
            &SecretString::from(pw.to_string()),
            Some(&email),
            "password",
        )
        .map_err(|errs| errs.into_iter().map(|e| e.code).collect())
    }

    #[test]
    fn accepts_a_long_passphrase_without_composition_rules() {
        assert!(check("correct horse battery staple", "a@example.com").is_ok());
    }

    #[test]
    fn counts_code_points_not_bytes() {
        // 12 code points, 36 bytes.
        assert!(check("ぱすわーどぱすわーどぱす", "a@example.com").is_ok());
        assert_eq!(
            check("ぱすわーど", "a@example.com").unwrap_err(),
            vec!["too_short"]
        );
    }

    #[test]
    fn rejects_short_long_common_and_email() {
        assert_eq!(
            check("short", "a@example.com").unwrap_err(),
            vec!["too_short"]
        );
        assert_eq!(
            check(&"x".repeat(129), "a@example.com").unwrap_err(),
            vec!["too_long"]
        );
        assert!(check(&"x".repeat(128), "a@example.com").is_ok());
        let common = check("1q2w3e4r5t6y", "a@example.com").unwrap_err();
        assert_eq!(common, vec!["common_password"]);
        assert_eq!(
            check("my name is alicewonder!", "AliceWonder@example.com").unwrap_err(),
            vec!["contains_email"]
        );
    }

    #[test]
    fn the_list_holds_at_least_ten_thousand_entries() {
        assert!(warm_up() >= 10_000);
    }

    #[test]
    fn never_trims() {
        // Leading/trailing spaces count as characters.
        assert_eq!(check("  abcdefghi ", "a@example.com").map(|_| ()), Ok(()));
    }

    #[test]
    fn nfkc_makes_compatibility_forms_equal() {
        let a = normalize(&SecretString::from("ﬁﬁﬁﬁﬁﬁ123456".to_string()));
        assert_eq!(a.expose_secret(), "fifififififi123456");
    }
}
