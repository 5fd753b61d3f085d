//! Owns one pending one-time-password challenge: single use, a wrong-guess budget and an
//! expiry, with a constant-time comparison of code hashes. Time is passed in.
//!
//! ```text
//!              verify: right code, now < expires_at
//!   +---------+ ------------------------------------> +------------------+
//!   | Pending |                                       | Dead (spent)     |
//!   +---------+ --- verify: wrong, wrong == max ----> | verify -> Dead   |
//!     |  ^  |                                         +------------------+
//!     |  |  | verify: wrong, wrong < max -> Wrong{remaining}
//!     |  +--+
//!     | now >= expires_at
//!     v
//!   Expired (verify -> Expired; a Dead challenge stays Dead)
//! ```
//!
//! The challenge stores only a hash of the code; callers hash the candidate the same way.

use std::fmt;

use crate::time::Timestamp;

/// Wrong guesses a challenge tolerates before it dies (5).
pub const DEFAULT_MAX_WRONG: u32 = 5;

/// A pending OTP challenge. Holds the code's hash, never the code.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpChallenge {
    code_hash: [u8; 32],
    expires_at: Timestamp,
    wrong_attempts: u32,
    max_wrong: u32,
    spent: bool,
}

/// The result of one verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpOutcome {
    /// The code matched; the challenge is now spent.
    Accepted,
    /// The code did not match; `remaining` more guesses are allowed (0: the next is refused).
    Wrong { remaining: u32 },
    /// Spent, or out of guesses: no code will ever be accepted again.
    Dead,
    /// Past its expiry.
    Expired,
    /// No such challenge (never put, evicted, or its actor was reaped). Only the actor
    /// layer answers this; treat it like `Dead`.
    Unknown,
}

impl OtpChallenge {
    /// A challenge for the code whose hash is `code_hash`, valid until `expires_at`,
    /// allowing `DEFAULT_MAX_WRONG` wrong guesses.
    pub fn new(code_hash: [u8; 32], expires_at: Timestamp) -> Self {
        Self {
            code_hash,
            expires_at,
            wrong_attempts: 0,
            max_wrong: DEFAULT_MAX_WRONG,
            spent: false,
        }
    }

    /// The same challenge allowing `max_wrong` wrong guesses instead.
    pub fn with_max_wrong(mut self, max_wrong: u32) -> Self {
        self.max_wrong = max_wrong;
        self
    }

    /// When the challenge expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Wrong guesses so far.
    pub fn wrong_attempts(&self) -> u32 {
        self.wrong_attempts
    }

    /// Whether a code could still be accepted at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.is_dead() && now < self.expires_at
    }

    /// Whether no code can ever be accepted again (spent or out of guesses).
    pub fn is_dead(&self) -> bool {
        self.spent || self.wrong_attempts >= self.max_wrong
    }

    /// Checks `candidate_hash` against the code at `now`.
    pub fn verify(&mut self, now: Timestamp, candidate_hash: &[u8; 32]) -> OtpOutcome {
        if self.is_dead() {
            return OtpOutcome::Dead;
        }
        if now >= self.expires_at {
            return OtpOutcome::Expired;
        }
        if ct_eq(&self.code_hash, candidate_hash) {
            self.spent = true;
            return OtpOutcome::Accepted;
        }
        self.wrong_attempts += 1;
        OtpOutcome::Wrong {
            remaining: self.max_wrong.saturating_sub(self.wrong_attempts),
        }
    }
}

impl fmt::Debug for OtpChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpChallenge")
            .field("code_hash", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("wrong_attempts", &self.wrong_attempts)
            .field("max_wrong", &self.max_wrong)
            .field("spent", &self.spent)
            .finish()
    }
}

/// Compares two hashes in time independent of where they differ.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const CODE: [u8; 32] = [7; 32];

    fn t(ms: i64) -> Timestamp {
        Timestamp(1_700_000_000_000 + ms)
    }

    fn wrong() -> [u8; 32] {
        let mut w = CODE;
        w[31] ^= 1;
        w
    }

    #[test]
    fn accepts_the_right_code_once_then_is_dead() {
        let mut c = OtpChallenge::new(CODE, t(300_000));
        assert_eq!(c.verify(t(0), &CODE), OtpOutcome::Accepted);
        assert_eq!(c.verify(t(1), &CODE), OtpOutcome::Dead);
        assert!(!c.is_live(t(1)));
    }

    #[test]
    fn five_wrong_guesses_kill_the_challenge() {
        let mut c = OtpChallenge::new(CODE, t(300_000));
        for n in 1..=5u32 {
            assert_eq!(
                c.verify(t(n.into()), &wrong()),
                OtpOutcome::Wrong { remaining: 5 - n }
            );
        }
        assert_eq!(c.verify(t(6), &CODE), OtpOutcome::Dead);
        assert_eq!(c.wrong_attempts(), 5);
    }

    #[test]
    fn the_right_code_after_some_wrong_guesses_is_accepted() {
        let mut c = OtpChallenge::new(CODE, t(300_000));
        c.verify(t(0), &wrong());
        assert_eq!(c.verify(t(1), &CODE), OtpOutcome::Accepted);
    }

    #[test]
    fn expires_at_its_deadline() {
        let mut c = OtpChallenge::new(CODE, t(300_000));
        assert!(c.is_live(t(299_999)));
        assert_eq!(c.verify(t(300_000), &CODE), OtpOutcome::Expired);
        assert_eq!(c.wrong_attempts(), 0);
    }

    #[test]
    fn custom_wrong_budget() {
        let mut c = OtpChallenge::new(CODE, t(300_000)).with_max_wrong(1);
        assert_eq!(c.verify(t(0), &wrong()), OtpOutcome::Wrong { remaining: 0 });
        assert_eq!(c.verify(t(1), &CODE), OtpOutcome::Dead);
    }

    #[test]
    fn ct_eq_compares_every_byte() {
        assert!(ct_eq(&CODE, &CODE));
        for i in 0..32 {
            let mut other = CODE;
            other[i] ^= 0x80;
            assert!(!ct_eq(&CODE, &other), "byte {i} ignored");
        }
    }

    #[test]
    fn debug_never_prints_the_hash() {
        let c = OtpChallenge::new([0xAB; 32], t(0));
        let shown = format!("{c:?}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
