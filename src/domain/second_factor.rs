//! A user's second factors, and the flags derived from them. The store locks
//! the user, reads a [`SecondFactors`], lets a pure change decide the next one
//! and writes it with its derived [`SecondFactors::flags`]; no flag is
//! computed in SQL.

/// The second-factor columns of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondFactors {
    pub email_otp: bool,
    pub totp: bool,
    /// The active TOTP secret, sealed.
    pub totp_secret_sealed: Option<String>,
    /// A TOTP secret set up but not yet confirmed with a code, sealed.
    pub totp_pending_sealed: Option<String>,
    /// The last TOTP time step accepted (replays are refused).
    pub totp_last_step: Option<i64>,
}

impl SecondFactors {
    /// `two_factor_enabled` and `two_factor_method` as stored for readers.
    pub fn flags(&self) -> (bool, Option<&'static str>) {
        let method = match (self.totp, self.email_otp) {
            (true, true) => Some("totp,email"),
            (true, false) => Some("totp"),
            (false, true) => Some("email"),
            (false, false) => None,
        };
        (method.is_some(), method)
    }

    /// Email codes on or off.
    pub fn with_email_otp(self, enabled: bool) -> Option<Self> {
        Some(Self {
            email_otp: enabled,
            ..self
        })
    }

    /// Stores (or clears) a pending TOTP secret.
    pub fn with_pending(self, sealed: Option<String>) -> Option<Self> {
        Some(Self {
            totp_pending_sealed: sealed,
            ..self
        })
    }

    /// Makes the pending secret active, provided it is still `pending` (it
    /// may have been replaced meanwhile); `step` counts as used.
    pub fn confirm_totp(self, pending: &str, step: i64) -> Option<Self> {
        if self.totp_pending_sealed.as_deref() != Some(pending) {
            return None;
        }
        Some(Self {
            totp: true,
            totp_secret_sealed: self.totp_pending_sealed,
            totp_pending_sealed: None,
            totp_last_step: Some(step),
            ..self
        })
    }

    /// Accepts a TOTP step only when it is later than every step accepted before.
    pub fn accept_step(self, step: i64) -> Option<Self> {
        if self.totp_last_step.is_some_and(|last| last >= step) {
            return None;
        }
        Some(Self {
            totp_last_step: Some(step),
            ..self
        })
    }

    /// Every factor off, every secret forgotten.
    pub fn disabled() -> Self {
        Self::default()
    }
}

/// A change to a user's second factors, applied inside the store's
/// transaction; `None` leaves them as they are.
pub type SecondFactorChange = Box<dyn FnOnce(SecondFactors) -> Option<SecondFactors> + Send>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_factors() {
        let none = SecondFactors::default();
        assert_eq!(none.flags(), (false, None));
        let email = none.clone().with_email_otp(true).unwrap_or_default();
        assert_eq!(email.flags(), (true, Some("email")));
        let both = SecondFactors {
            totp: true,
            ..email.clone()
        };
        assert_eq!(both.flags(), (true, Some("totp,email")));
        let totp = both.with_email_otp(false).unwrap_or_default();
        assert_eq!(totp.flags(), (true, Some("totp")));
    }

    #[test]
    fn confirming_needs_the_same_pending_secret() {
        let s = SecondFactors::default()
            .with_pending(Some("sealed-a".into()))
            .unwrap_or_default();
        assert_eq!(s.clone().confirm_totp("sealed-b", 7), None);
        let on = s.confirm_totp("sealed-a", 7).unwrap_or_default();
        assert!(on.totp);
        assert_eq!(on.totp_secret_sealed.as_deref(), Some("sealed-a"));
        assert_eq!((on.totp_pending_sealed, on.totp_last_step), (None, Some(7)));
    }

    #[test]
    fn steps_are_accepted_once_and_in_order() {
        let s = SecondFactors {
            totp_last_step: Some(10),
            ..Default::default()
        };
        assert_eq!(s.clone().accept_step(10), None);
        assert_eq!(s.clone().accept_step(9), None);
        assert_eq!(s.accept_step(11).and_then(|s| s.totp_last_step), Some(11));
        assert!(SecondFactors::default().accept_step(0).is_some());
    }
}
