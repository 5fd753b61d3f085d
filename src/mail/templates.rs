//! Mail templates: each renders a subject, a plain-text part and an HTML part.
//! Values placed in HTML are escaped.

use super::OutgoingMail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Verification,
    AlreadyRegistered,
    AccountLocked,
    RefreshTokenReuse,
    PasswordChanged,
    PasswordReset,
    OtpCode,
    NewTwoFactor,
}

impl Template {
    /// The metric tag and log name.
    pub fn name(self) -> &'static str {
        match self {
            Template::Verification => "verification",
            Template::AlreadyRegistered => "already_registered",
            Template::AccountLocked => "account_locked",
            Template::RefreshTokenReuse => "refresh_token_reuse",
            Template::PasswordChanged => "password_changed",
            Template::PasswordReset => "password_reset",
            Template::OtpCode => "otp_code",
            Template::NewTwoFactor => "new_two_factor",
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html_page(title: &str, paragraphs: &[String], link: Option<(&str, &str)>) -> String {
    let mut body = String::new();
    for p in paragraphs {
        body.push_str(&format!("<p>{}</p>\n", escape(p)));
    }
    if let Some((label, href)) = link {
        body.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            escape(href),
            escape(label)
        ));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n<h1>{}</h1>\n{}</body></html>",
        escape(title),
        escape(title),
        body
    )
}

/// "Confirm your email" with the verification link.
pub fn verification(to: &str, public_url: &str, token: &str) -> OutgoingMail {
    let link = format!("{public_url}/verify-email?token={token}");
    let subject = "Confirm your email address".to_string();
    let text = format!(
        "Welcome to SUMA Finance.\r\n\r\nConfirm your email address by opening this link within 24 hours:\r\n\r\n{link}\r\n\r\nIf you did not create an account, ignore this message.\r\n"
    );
    let html = html_page(
        &subject,
        &[
            "Welcome to SUMA Finance.".into(),
            "Confirm your email address by opening this link within 24 hours:".into(),
        ],
        Some(("Confirm my email", &link)),
    );
    OutgoingMail {
        to: to.to_string(),
        template: Template::Verification,
        subject,
        text,
        html,
    }
}

/// Sent to the owner of an address someone tried to register again.
pub fn already_registered(to: &str, public_url: &str) -> OutgoingMail {
    let reset = format!("{public_url}/reset-password");
    let subject = "Someone tried to register with your email address".to_string();
    let text = format!(
        "Someone tried to create a SUMA Finance account with this email address, which already has an account.\r\n\r\nIf it was you, sign in instead; if you forgot your password, reset it here:\r\n\r\n{reset}\r\n\r\nIf it was not you, you can ignore this message: your account is unchanged.\r\n"
    );
    let html = html_page(
        &subject,
        &[
            "Someone tried to create a SUMA Finance account with this email address, which already has an account.".into(),
            "If it was you, sign in instead; if you forgot your password, reset it.".into(),
            "If it was not you, you can ignore this message: your account is unchanged.".into(),
        ],
        Some(("Reset my password", &reset)),
    );
    OutgoingMail {
        to: to.to_string(),
        template: Template::AlreadyRegistered,
        subject,
        text,
        html,
    }
}

/// Sent when repeated failed sign-ins lock an account.
pub fn account_locked(to: &str, minutes: u64) -> OutgoingMail {
    let subject = "Your account was temporarily locked".to_string();
    let text = format!(
        "Several sign-in attempts with a wrong password were made on your SUMA Finance account, so sign-in is locked for {minutes} minutes.\r\n\r\nIf this was not you, consider resetting your password once the lock ends.\r\n"
    );
    let html = html_page(
        &subject,
        &[
            format!("Several sign-in attempts with a wrong password were made on your SUMA Finance account, so sign-in is locked for {minutes} minutes."),
            "If this was not you, consider resetting your password once the lock ends.".into(),
        ],
        None,
    );
    OutgoingMail {
        to: to.to_string(),
        template: Template::AccountLocked,
        subject,
        text,
        html,
    }
}

fn simple(to: &str, template: Template, subject: &str, paragraphs: &[&str]) -> OutgoingMail {
    let text = paragraphs.join("\r\n\r\n") + "\r\n";
    let html = html_page(
        subject,
        &paragraphs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        None,
    );
    OutgoingMail {
        to: to.to_string(),
        template,
        subject: subject.to_string(),
        text,
        html,
    }
}

/// Sent when a spent refresh token was presented again and its session ended.
pub fn refresh_token_reuse(to: &str) -> OutgoingMail {
    simple(
        to,
        Template::RefreshTokenReuse,
        "A session of your account was ended for your safety",
        &[
            "A sign-in token of your SUMA Finance account was used twice, which can mean it was copied. We ended that session; sign in again on that device.",
            "If you did not expect this, change your password.",
        ],
    )
}

/// The password-reset link (valid one hour).
pub fn password_reset(to: &str, public_url: &str, token: &str) -> OutgoingMail {
    let link = format!("{public_url}/reset-password?token={token}");
    let subject = "Reset your password".to_string();
    let text = format!(
        "Someone asked to reset the password of your SUMA Finance account.\r\n\r\nTo choose a new password, open this link within an hour:\r\n\r\n{link}\r\n\r\nIf it was not you, ignore this message: your password is unchanged.\r\n"
    );
    let html = html_page(
        &subject,
        &[
            "Someone asked to reset the password of your SUMA Finance account.".into(),
            "To choose a new password, open this link within an hour:".into(),
            "If it was not you, ignore this message: your password is unchanged.".into(),
        ],
        Some(("Choose a new password", &link)),
    );
    OutgoingMail {
        to: to.to_string(),
        template: Template::PasswordReset,
        subject,
        text,
        html,
    }
}

/// A sign-in code.
pub fn otp_code(to: &str, code: &str, minutes: u64) -> OutgoingMail {
    let first = format!("Your SUMA Finance sign-in code is {code}");
    let second = format!(
        "It expires in {minutes} minutes. Never share it: SUMA Finance will never ask you for it."
    );
    simple(
        to,
        Template::OtpCode,
        &format!("Your sign-in code: {code}"),
        &[&first, &second],
    )
}

/// Sent when a second factor is turned on.
pub fn new_two_factor(to: &str, method: &str) -> OutgoingMail {
    let first =
        format!("Two-step sign-in with {method} was turned on for your SUMA Finance account.");
    simple(
        to,
        Template::NewTwoFactor,
        "Two-step sign-in was turned on",
        &[
            &first,
            "If this was not you, reset your password and contact support.",
        ],
    )
}

/// Sent after the password of an account changed.
pub fn password_changed(to: &str) -> OutgoingMail {
    simple(
        to,
        Template::PasswordChanged,
        "Your password was changed",
        &[
            "The password of your SUMA Finance account was just changed, and your other sessions were ended.",
            "If this was not you, reset your password now and contact support.",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_mail_carries_the_link_in_both_parts() {
        let m = verification("a@example.com", "https://auth.example", "tok_en-1");
        assert!(m
            .text
            .contains("https://auth.example/verify-email?token=tok_en-1"));
        assert!(m
            .html
            .contains("https://auth.example/verify-email?token=tok_en-1"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
    }
}
