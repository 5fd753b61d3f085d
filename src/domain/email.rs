//! Email addresses: trimmed, lowercased and checked once at the edge.

use std::fmt;

use super::FieldError;

/// A normalized email address (trimmed, lowercase), the account's unique key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalizes an address; `field` names it in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldError> {
        let normalized = raw.trim().to_lowercase();
        let invalid = |why: &str| FieldError::new(field, "invalid_email", why);
        if normalized.is_empty() {
            return Err(invalid("an email address is required"));
        }
        if normalized.chars().count() > 254 {
            return Err(invalid("the address is longer than 254 characters"));
        }
        let Some((local, domain)) = normalized.rsplit_once('@') else {
            return Err(invalid("the address has no @"));
        };
        if !valid_local(local) {
            return Err(invalid("the part before @ is not valid"));
        }
        if !valid_domain(domain) {
            return Err(invalid("the domain is not valid"));
        }
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    /// Wraps a value read back from storage (already normalized when stored).
    pub fn from_stored(value: String) -> Self {
        Email(value)
    }
}

/// Addresses are personal data: `Debug` masks the local part.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.rsplit_once('@') {
            Some((_, domain)) => write!(f, "Email(***@{domain})"),
            None => f.write_str("Email(***)"),
        }
    }
}

fn valid_local(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 || local.starts_with('.') || local.ends_with('.') {
        return false;
    }
    if local.contains("..") {
        return false;
    }
    local
        .chars()
        .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
}

fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let labels_ok = labels.iter().all(|label| {
        !label.is_empty()
            && label.chars().count() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    labels_ok && tld_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn normalizes_case_and_whitespace() {
        let e = Email::parse("  Alice.Smith@Example.COM ", "email").unwrap();
        assert_eq!(e.as_str(), "alice.smith@example.com");
        assert_eq!(e.local_part(), "alice.smith");
    }

    #[test]
    fn rejects_invalid_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-x.com",
            "a b@example.com",
            "a@example.c",
            "a@1.2.3.4",
            "a@exa mple.com",
            "a@example..com",
        ] {
            let err = Email::parse(bad, "email").unwrap_err();
            assert_eq!(err.code, "invalid_email", "{bad}");
        }
    }

    #[test]
    fn debug_does_not_print_the_local_part() {
        let e = Email::parse("secret.person@example.com", "email").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }
}
