//! Consents as pure rules: the four types, the state a user's history adds up
//! to, which changes a request makes, and whether a sign-in must first accept
//! new versions of the terms or the privacy policy.
//!
//! The history is append-only: a change is a new record, never an update.
//! The version recorded is always the service's current version of that type
//! (configuration), never one a client names.

use chrono::{DateTime, Utc};

use super::FieldError;

/// A kind of consent (`consent_records.consent_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentType {
    Terms,
    Privacy,
    Marketing,
    DataProcessing,
}

impl ConsentType {
    pub const ALL: [ConsentType; 4] = [
        ConsentType::Terms,
        ConsentType::Privacy,
        ConsentType::Marketing,
        ConsentType::DataProcessing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentType::Terms => "terms",
            ConsentType::Privacy => "privacy",
            ConsentType::Marketing => "marketing",
            ConsentType::DataProcessing => "data_processing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Terms and privacy are the basis of the account: they end only with it
    /// (erasure), and sign-in waits until their current versions are accepted.
    pub fn required(self) -> bool {
        matches!(self, ConsentType::Terms | ConsentType::Privacy)
    }
}

/// The current version of every consent type (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentVersions {
    pub terms: String,
    pub privacy: String,
    pub marketing: String,
    pub data_processing: String,
}

impl ConsentVersions {
    pub fn of(&self, t: ConsentType) -> &str {
        match t {
            ConsentType::Terms => &self.terms,
            ConsentType::Privacy => &self.privacy,
            ConsentType::Marketing => &self.marketing,
            ConsentType::DataProcessing => &self.data_processing,
        }
    }
}

/// One statement of the history, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub consent_type: ConsentType,
    pub version: String,
    pub granted: bool,
    pub at: DateTime<Utc>,
}

/// The latest statement of a type, if any. `history` may be in any order;
/// of two statements at the same time, the later one in the slice wins when
/// the slice is oldest first, so callers pass it oldest first.
pub fn latest(history: &[Statement], t: ConsentType) -> Option<&Statement> {
    history
        .iter()
        .filter(|s| s.consent_type == t)
        .fold(None, |best: Option<&Statement>, s| match best {
            Some(b) if b.at > s.at => Some(b),
            _ => Some(s),
        })
}

/// The required types whose current version the user has not accepted: a
/// grant of exactly that version exists and nothing withdrew it since. (A
/// version accepted once stays accepted, so rolling the configuration back
/// does not ask again.)
pub fn missing_acceptances(history: &[Statement], current: &ConsentVersions) -> Vec<ConsentType> {
    ConsentType::ALL
        .into_iter()
        .filter(|t| t.required())
        .filter(|t| {
            let version = current.of(*t);
            let accepted = history
                .iter()
                .any(|s| s.consent_type == *t && s.granted && s.version == version);
            let still = latest(history, *t).is_some_and(|s| s.granted);
            !(accepted && still)
        })
        .collect()
}

/// One requested change: grant or withdraw a type, optionally naming the
/// version the client showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub consent_type: ConsentType,
    pub granted: bool,
    pub version: Option<String>,
}

/// Why a set of requested changes is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentRefusal {
    /// Terms or privacy withdrawn: only erasing the account ends them.
    WithdrawalRequiresErasure(ConsentType),
    /// A named version is not the current one.
    Invalid(Vec<FieldError>),
}

/// The statements to append for `requested`, given the history (oldest
/// first): only real changes (a different answer, or a grant of a newer
/// version) are recorded, so repeating the current state writes nothing.
pub fn changes(
    history: &[Statement],
    requested: &[Requested],
    current: &ConsentVersions,
) -> Result<Vec<(ConsentType, String, bool)>, ConsentRefusal> {
    let mut errors = Vec::new();
    for r in requested {
        if r.consent_type.required() && !r.granted {
            return Err(ConsentRefusal::WithdrawalRequiresErasure(r.consent_type));
        }
        if let Some(v) = &r.version {
            if v != current.of(r.consent_type) {
                errors.push(FieldError::new(
                    &format!("{}.version", r.consent_type.as_str()),
                    "version_mismatch",
                    format!("the current version is {}", current.of(r.consent_type)),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConsentRefusal::Invalid(errors));
    }
    let mut out: Vec<(ConsentType, String, bool)> = Vec::new();
    for r in requested {
        if out.iter().any(|(t, _, _)| *t == r.consent_type) {
            continue;
        }
        let version = current.of(r.consent_type).to_string();
        let same = latest(history, r.consent_type)
            .is_some_and(|s| s.granted == r.granted && (!r.granted || s.version == version));
        // Never stated and withdrawn now: nothing to record either.
        let nothing = !r.granted && latest(history, r.consent_type).is_none();
        if !same && !nothing {
            out.push((r.consent_type, version, r.granted));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_clock::at;

    fn versions(terms: &str, privacy: &str) -> ConsentVersions {
        ConsentVersions {
            terms: terms.into(),
            privacy: privacy.into(),
            marketing: "m1".into(),
            data_processing: "d1".into(),
        }
    }

    fn st(t: ConsentType, version: &str, granted: bool, minute: i64) -> Statement {
        Statement {
            consent_type: t,
            version: version.into(),
            granted,
            at: at(minute),
        }
    }

    fn req(t: ConsentType, granted: bool) -> Requested {
        Requested {
            consent_type: t,
            granted,
            version: None,
        }
    }

    #[test]
    fn types_round_trip_and_only_terms_and_privacy_are_required() {
        for t in ConsentType::ALL {
            assert_eq!(ConsentType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ConsentType::parse("cookies"), None);
        let required: Vec<_> = ConsentType::ALL
            .into_iter()
            .filter(|t| t.required())
            .collect();
        assert_eq!(required, [ConsentType::Terms, ConsentType::Privacy]);
    }

    #[test]
    fn a_newer_required_version_must_be_accepted() {
        let history = vec![
            st(ConsentType::Terms, "1", true, 0),
            st(ConsentType::Privacy, "1", true, 0),
        ];
        assert!(missing_acceptances(&history, &versions("1", "1")).is_empty());
        assert_eq!(
            missing_acceptances(&history, &versions("2", "1")),
            [ConsentType::Terms]
        );
        assert_eq!(
            missing_acceptances(&history, &versions("2", "2")),
            [ConsentType::Terms, ConsentType::Privacy]
        );
        assert_eq!(
            missing_acceptances(&[], &versions("1", "1")),
            [ConsentType::Terms, ConsentType::Privacy]
        );
        // Accepted later: satisfied; a rollback to an accepted version too.
        let mut later = history.clone();
        later.push(st(ConsentType::Terms, "2", true, 5));
        assert!(missing_acceptances(&later, &versions("2", "1")).is_empty());
        assert!(missing_acceptances(&later, &versions("1", "1")).is_empty());
        // Withdrawn since (legacy data): not satisfied.
        later.push(st(ConsentType::Terms, "2", false, 6));
        assert_eq!(
            missing_acceptances(&later, &versions("2", "1")),
            [ConsentType::Terms]
        );
    }

    #[test]
    fn only_real_changes_are_recorded() {
        let v = versions("1", "1");
        let history = vec![
            st(ConsentType::Terms, "1", true, 0),
            st(ConsentType::Marketing, "m1", true, 0),
        ];
        assert_eq!(
            changes(&history, &[req(ConsentType::Marketing, true)], &v),
            Ok(vec![])
        );
        assert_eq!(
            changes(&history, &[req(ConsentType::Marketing, false)], &v),
            Ok(vec![(ConsentType::Marketing, "m1".into(), false)])
        );
        // Never stated and withdrawn: nothing; granted: recorded.
        assert_eq!(
            changes(&history, &[req(ConsentType::DataProcessing, false)], &v),
            Ok(vec![])
        );
        assert_eq!(
            changes(&history, &[req(ConsentType::DataProcessing, true)], &v),
            Ok(vec![(ConsentType::DataProcessing, "d1".into(), true)])
        );
        // A grant of a newer version is a change.
        let v2 = ConsentVersions {
            marketing: "m2".into(),
            ..v.clone()
        };
        assert_eq!(
            changes(&history, &[req(ConsentType::Marketing, true)], &v2),
            Ok(vec![(ConsentType::Marketing, "m2".into(), true)])
        );
    }

    #[test]
    fn terms_and_privacy_cannot_be_withdrawn_and_versions_must_be_current() {
        let v = versions("1", "1");
        assert_eq!(
            changes(&[], &[req(ConsentType::Privacy, false)], &v),
            Err(ConsentRefusal::WithdrawalRequiresErasure(
                ConsentType::Privacy
            ))
        );
        let stale = Requested {
            consent_type: ConsentType::Terms,
            granted: true,
            version: Some("0.9".into()),
        };
        match changes(&[], &[stale], &v) {
            Err(ConsentRefusal::Invalid(errors)) => {
                assert_eq!(errors[0].field, "terms.version");
                assert_eq!(errors[0].code, "version_mismatch");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn latest_is_the_newest_statement() {
        let history = vec![
            st(ConsentType::Marketing, "m1", true, 0),
            st(ConsentType::Marketing, "m1", false, 3),
            st(ConsentType::Marketing, "m1", true, 1),
        ];
        assert!(!latest(&history, ConsentType::Marketing).is_some_and(|s| s.granted));
        assert!(latest(&history, ConsentType::Terms).is_none());
    }
}
