//! The password policy (NIST SP 800-63B): 12 to 128 Unicode code points after
//! NFKC normalization, never truncated or trimmed, no composition rules, and
//! refused when it is easy to guess:
//!
//! - it is in the bundled list of common breached passwords (`common_password`)
//!   or in the list of breached passwords of 12 or more characters
//!   (`breached`);
//! - it contains the email's local part (`contains_email`) or the user's first
//!   or last name (`contains_personal_info`);
//! - the zxcvbn strength estimator, told the user's email and names and the
//!   service's own words, expects it to fall in fewer than 10^10 guesses
//!   (`too_weak`, or `contains_personal_info` when the user's own details are
//!   what makes it guessable).

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::{Email, FieldError};

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

/// The lowest zxcvbn score accepted: 4 means at least 10^10 estimated
/// guesses. Score 3 (10^8) lets any three pieces through, such as
/// `SumaFinance2025!` (word, year, symbol).
pub const MIN_SCORE: u8 = 4;

/// Words of the service itself, which a user is tempted to build on
/// (`SumaFinance2025!`); the estimator counts them as known words.
pub const SERVICE_WORDS: &[&str] = &[
    "suma",
    "finance",
    "sumafinance",
    "suma finance",
    "suma-finance",
    "suma-auth",
    "sumaauth",
    "auth",
    "fintech",
];

/// Shortest name or email local part that is matched inside a password.
const MIN_PERSONAL_CHARS: usize = 3;

/// The 20,000 most common passwords of public breach corpora, gzipped.
static COMMON_GZ: &[u8] = include_bytes!("common-passwords.txt.gz");

/// Breached passwords of 12 or more characters: every entry of at least 12
/// printable ASCII characters of the UK NCSC's `PwnedPasswordsTop100k.txt`
/// (the 100,000 passwords seen most often in Have I Been Pwned's corpus; also
/// published as SecLists' `100k-most-used-passwords-NCSC.txt`), `$HEX[…]`
/// entries decoded, lowercased, deduplicated and sorted.
static BREACHED_GZ: &[u8] = include_bytes!("breached-12plus.txt.gz");

static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| load(COMMON_GZ, "common-password"));
static BREACHED: LazyLock<HashSet<String>> =
    LazyLock::new(|| load(BREACHED_GZ, "breached-password"));

fn load(gz: &[u8], name: &str) -> HashSet<String> {
    use std::io::Read;
    let mut text = String::new();
    let mut decoder = flate2::read::GzDecoder::new(gz);
    if decoder.read_to_string(&mut text).is_err() {
        tracing::error!(list = name, "a bundled password list could not be read");
    }
    text.lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Loads the password lists and the estimator's dictionaries now rather than
/// on the first registration; returns the number of listed passwords.
pub fn warm_up() -> usize {
    let _ = zxcvbn::zxcvbn("warm up the dictionaries", SERVICE_WORDS);
    COMMON.len() + BREACHED.len()
}

/// Why a password was refused (the `code` in the 422 `errors` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    TooShort,
    TooLong,
    Common,
    Breached,
    ContainsEmail,
    ContainsPersonalInfo,
    TooWeak,
}

impl PasswordRule {
    pub fn code(self) -> &'static str {
        match self {
            PasswordRule::TooShort => "too_short",
            PasswordRule::TooLong => "too_long",
            PasswordRule::Common => "common_password",
            PasswordRule::Breached => "breached",
            PasswordRule::ContainsEmail => "contains_email",
            PasswordRule::ContainsPersonalInfo => "contains_personal_info",
            PasswordRule::TooWeak => "too_weak",
        }
    }

    fn message(self) -> String {
        match self {
            PasswordRule::TooShort => format!("use at least {MIN_CHARS} characters"),
            PasswordRule::TooLong => format!("use at most {MAX_CHARS} characters"),
            PasswordRule::Common => "this password is too common; choose another".to_string(),
            PasswordRule::Breached => {
                "this password appears in published data breaches; choose another".to_string()
            }
            PasswordRule::ContainsEmail => {
                "the password must not contain your email address".to_string()
            }
            PasswordRule::ContainsPersonalInfo => {
                "the password must not be built on your name or email address".to_string()
            }
            PasswordRule::TooWeak => "this password is too easy to guess; \
                 a few unrelated words make a strong passphrase"
                .to_string(),
        }
    }
}

/// What is known about the account whose password is being chosen: its own
/// details make a password easier to guess.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub email: Option<&'a Email>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
}

impl<'a> PasswordContext<'a> {
    pub fn new(
        email: Option<&'a Email>,
        first_name: Option<&'a str>,
        last_name: Option<&'a str>,
    ) -> Self {
        Self {
            email,
            first_name,
            last_name,
        }
    }

    /// The user's names, lowercased, long enough to be matched.
    fn names(&self) -> Vec<String> {
        [self.first_name, self.last_name]
            .into_iter()
            .flatten()
            .map(|n| n.trim().nfkc().collect::<String>().to_lowercase())
            .filter(|n| n.chars().count() >= MIN_PERSONAL_CHARS)
            .collect()
    }

    /// The user's own details as the estimator's user inputs: the address,
    /// its local part and the pieces of both, the names and their pieces.
    fn personal_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(email) = self.email {
            words.push(email.as_str().to_string());
            words.push(email.local_part().to_string());
            words.extend(
                email
                    .as_str()
                    .split(|c: char| !c.is_alphanumeric())
                    .map(str::to_string),
            );
        }
        for name in self.names() {
            words.extend(
                name.split(|c: char| !c.is_alphanumeric())
                    .map(str::to_string),
            );
            words.push(name.chars().filter(|c| c.is_alphanumeric()).collect());
            words.push(name);
        }
        let mut seen = HashSet::new();
        words.retain(|w| w.chars().count() >= MIN_PERSONAL_CHARS && seen.insert(w.clone()));
        words
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
    /// Checks `raw` against the policy. Length rules are all reported; a
    /// password of valid length is then refused for the first reason found:
    /// a listed password, the user's own details, then the estimate.
    pub fn parse(
        raw: &SecretString,
        context: &PasswordContext<'_>,
        field: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let normalized = normalize(raw);
        let broken = broken_rules(normalized.expose_secret(), context);
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

fn broken_rules(pw: &str, context: &PasswordContext<'_>) -> Vec<PasswordRule> {
    let chars = pw.chars().count();
    if chars < MIN_CHARS {
        return vec![PasswordRule::TooShort];
    }
    if chars > MAX_CHARS {
        return vec![PasswordRule::TooLong];
    }
    let lower = pw.to_lowercase();
    if COMMON.contains(&lower) {
        return vec![PasswordRule::Common];
    }
    if BREACHED.contains(&lower) {
        return vec![PasswordRule::Breached];
    }
    let mut broken = Vec::new();
    if let Some(email) = context.email {
        let local = email.local_part();
        if local.chars().count() >= MIN_PERSONAL_CHARS && lower.contains(local) {
            broken.push(PasswordRule::ContainsEmail);
        }
    }
    if context
        .names()
        .iter()
        .any(|name| lower.contains(name.as_str()))
    {
        broken.push(PasswordRule::ContainsPersonalInfo);
    }
    if !broken.is_empty() {
        return broken;
    }
    estimate(pw, context).into_iter().collect()
}

/// The zxcvbn estimate, with the user's details first among its inputs and
/// the service's words after them.
fn estimate(pw: &str, context: &PasswordContext<'_>) -> Option<PasswordRule> {
    let personal = context.personal_words();
    let inputs: Vec<&str> = personal
        .iter()
        .map(String::as_str)
        .chain(SERVICE_WORDS.iter().copied())
        .collect();
    let evaluated = estimated_prefix(pw);
    let entropy = zxcvbn::zxcvbn(evaluated, &inputs);
    if u8::from(entropy.score()) >= MIN_SCORE {
        return None;
    }
    let personal_match = entropy.sequence().iter().any(|m| match &m.pattern {
        zxcvbn::matching::patterns::MatchPattern::Dictionary(d) => {
            personal.contains(&d.matched_word)
        }
        _ => false,
    });
    Some(if personal_match {
        PasswordRule::ContainsPersonalInfo
    } else {
        PasswordRule::TooWeak
    })
}

/// Groups of characters the estimator reads as the same letter (its l33t
/// table: `4` and `@` for `a`, …); `1`, `|` and `7` stand for two letters.
const LOOK_ALIKES: &[&str] = &[
    "4@", "8", "({[<", "3", "69", "1!|", "1|7", "0", "$5", "+7", "%", "2",
];
const TWO_LETTER_LOOK_ALIKES: &[char] = &['1', '|', '7'];

/// Work the estimator may do for one password, counted as l33t readings
/// times substrings: about 10 ms of one core in an optimized build.
const ESTIMATE_BUDGET: usize = 200_000;

/// The estimator tries every l33t reading of the password against its
/// dictionaries, so its cost grows with the product of the look-alike
/// characters present times the square of the length: 100 characters drawn
/// from `{[<(!|1…` take seconds. An ordinary password is evaluated whole;
/// one dense in look-alikes (which no one types by accident) is evaluated on
/// its longest prefix that fits [`ESTIMATE_BUDGET`], never shorter than
/// [`MIN_CHARS`].
fn estimated_prefix(pw: &str) -> &str {
    let mut present: Vec<char> = Vec::new();
    let mut end = pw.len();
    for (k, (at, c)) in pw.char_indices().enumerate() {
        if !present.contains(&c) && LOOK_ALIKES.iter().any(|g| g.contains(c)) {
            present.push(c);
        }
        let len = k + 1;
        let cost = readings(&present).saturating_mul(len * (len + 1) / 2);
        if len > MIN_CHARS && cost > ESTIMATE_BUDGET {
            end = at;
            break;
        }
    }
    &pw[..end]
}

/// An upper bound of the number of l33t readings the estimator tries.
fn readings(present: &[char]) -> usize {
    let per_letter = LOOK_ALIKES.iter().fold(1usize, |n, group| {
        let found = group.chars().filter(|c| present.contains(c)).count();
        n.saturating_mul(found.max(1))
    });
    TWO_LETTER_LOOK_ALIKES
        .iter()
        .filter(|c| present.contains(c))
        .fold(per_letter, |n, _| n.saturating_mul(2))
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

    fn check_with(
        pw: &str,
        email: &str,
        first: Option<&str>,
        last: Option<&str>,
    ) -> Result<NewPassword, Vec<String>> {
        let email = Email::parse(email, "email").unwrap();
        NewPassword::parse(
            &SecretString::from(pw.to_string()),
            &PasswordContext::new(Some(&email), first, last),
            "password",
        )
        .map_err(|errs| errs.into_iter().map(|e| e.code).collect())
    }

    fn check(pw: &str, email: &str) -> Result<NewPassword, Vec<String>> {
        check_with(pw, email, None, None)
    }

    fn codes(pw: &str) -> Vec<String> {
        check(pw, "a@example.com")
            .map(|_| ())
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn accepts_a_long_passphrase_without_composition_rules() {
        assert!(check("correct horse battery staple", "a@example.com").is_ok());
        for pw in [
            "a completely new passphrase",
            "another long passphrase",
            "yet another passphrase",
            "a brand new passphrase",
            "Tr0ub4dor&3xyz",
        ] {
            assert_eq!(codes(pw), Vec::<String>::new(), "{pw}");
        }
    }

    #[test]
    fn counts_code_points_not_bytes() {
        // 12 code points, 36 bytes.
        assert!(check("ぱすわーどをかえましょう", "a@example.com").is_ok());
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
        let max: String = "Tr0ub4dor&3 horse battery staple "
            .chars()
            .cycle()
            .take(128)
            .collect();
        assert!(check(&max, "a@example.com").is_ok());
        let common = check("1q2w3e4r5t6y", "a@example.com").unwrap_err();
        assert_eq!(common, vec!["common_password"]);
        assert_eq!(
            check("my name is alicewonder!", "AliceWonder@example.com").unwrap_err(),
            vec!["contains_email"]
        );
    }

    #[test]
    fn twelve_characters_of_a_guessable_kind_are_refused() {
        assert_eq!(codes("123456789012"), vec!["breached"]);
        assert_eq!(codes("aaaaaaaaaaaa"), vec!["breached"]);
        assert_eq!(codes("sumafinance2025"), vec!["too_weak"]);
        assert_eq!(codes("SumaFinance!!"), vec!["too_weak"]);
        assert_eq!(codes("SumaFinance2025!"), vec!["too_weak"]);
        assert_eq!(codes(&"x".repeat(128)), vec!["too_weak"]);
        assert_eq!(codes("ぱすわーどぱすわーどぱす"), vec!["too_weak"]);
        assert_eq!(codes("Password2025!"), vec!["too_weak"]);
        assert_eq!(codes("qwertyuiopasdf"), vec!["too_weak"]);
    }

    #[test]
    fn the_breached_list_catches_what_the_estimator_lets_through() {
        // Scored 4 by zxcvbn, yet among Have I Been Pwned's most frequent.
        for pw in ["avadakedavra", "tobeornottobe", "venividivici"] {
            assert_eq!(codes(pw), vec!["breached"], "{pw}");
        }
        assert!(BREACHED.len() > 1_000);
        assert!(BREACHED.iter().all(|p| p.chars().count() >= MIN_CHARS));
    }

    #[test]
    fn names_and_email_pieces_are_personal_info() {
        assert_eq!(
            check_with(
                "Wonderland rocks!",
                "x@example.com",
                Some("Alice"),
                Some("Wonderland")
            )
            .unwrap_err(),
            vec!["contains_personal_info"]
        );
        assert_eq!(
            check_with(
                "correct alice battery staple",
                "x@example.com",
                Some("Alice"),
                None
            )
            .unwrap_err(),
            vec!["contains_personal_info"]
        );
        // The local part's pieces are known words to the estimator.
        assert_eq!(
            check("zorblaxquimby2025", "zorblax.quimby@example.com").unwrap_err(),
            vec!["contains_personal_info"]
        );
        assert!(check("zorblaxquimby2025", "someone@example.com").is_ok());
        // Short names are not matched inside words.
        assert!(check_with(
            "correct horse battery staple",
            "x@example.com",
            Some("Al"),
            Some("Or")
        )
        .is_ok());
    }

    #[test]
    fn the_service_words_count_as_known_words() {
        assert_eq!(codes("SumaFinance!!"), vec!["too_weak"]);
        assert_eq!(codes("SumaAuth2025!"), vec!["too_weak"]);
        // The same shapes with words the estimator does not know pass.
        assert_eq!(codes("ZorblaxQuimby!!"), Vec::<String>::new());
        assert_eq!(codes("ZorbQuim2025!"), Vec::<String>::new());
    }

    #[test]
    fn the_list_holds_at_least_ten_thousand_entries() {
        assert!(warm_up() >= 10_000);
    }

    #[test]
    fn never_trims() {
        // Leading/trailing spaces count as characters: 12 with them, 10 without.
        assert_eq!(check("  qk7#vw2!zp", "a@example.com").map(|_| ()), Ok(()));
        assert_eq!(
            check(" qk7#vw2!zp", "a@example.com").unwrap_err(),
            vec!["too_short"]
        );
    }

    #[test]
    fn nfkc_makes_compatibility_forms_equal() {
        let a = normalize(&SecretString::from("ﬁﬁﬁﬁﬁﬁ123456".to_string()));
        assert_eq!(a.expose_secret(), "fifififififi123456");
    }

    #[test]
    fn look_alike_dense_input_is_estimated_on_a_bounded_prefix() {
        let dense = "{[<(1!|74@69$5+%2830".repeat(6);
        let prefix = estimated_prefix(&dense);
        assert!(prefix.chars().count() >= MIN_CHARS);
        assert!(prefix.chars().count() < 40, "{}", prefix.chars().count());
        let ordinary = "Tr0ub4dor&3 correct horse battery staple ".repeat(3);
        assert_eq!(estimated_prefix(&ordinary), ordinary);
    }
}
