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
    AccountErased,
    SecondFactorLocked,
    TwoFactorChanged,
    NewDevice,
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
            Template::AccountErased => "account_erased",
            Template::SecondFactorLocked => "second_factor_locked",
            Template::TwoFactorChanged => "two_factor_changed",
            Template::NewDevice => "new_device",
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

/// Prose lines are wrapped at this width (RFC 5322 asks for at most 78).
const WIDTH: usize = 72;

/// Wraps a paragraph at [`WIDTH`] columns on spaces; a word longer than the
/// width stays whole on a line of its own.
fn wrap(paragraph: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in paragraph.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > WIDTH {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The body of a mail: paragraphs, and at most one link, which both parts
/// show in full.
struct Body<'a> {
    before: &'a [String],
    /// (button label, URL)
    link: Option<(&'a str, &'a str)>,
    after: &'a [String],
}

impl Body<'_> {
    /// The plain-text part: CRLF lines, prose wrapped at 72 columns, the
    /// link alone on its own line, never split, so that a reader (or
    /// `grep -o 'token=[A-Za-z0-9_-]*'`) sees it whole.
    fn text(&self) -> String {
        let mut blocks: Vec<String> = self.before.iter().map(|p| wrap(p).join("\r\n")).collect();
        if let Some((_, href)) = self.link {
            blocks.push(href.to_string());
        }
        blocks.extend(self.after.iter().map(|p| wrap(p).join("\r\n")));
        blocks.join("\r\n\r\n") + "\r\n"
    }

    /// The HTML part: the same paragraphs, a button-like link, and the same
    /// URL again as text for clients that do not follow links.
    fn html(&self, title: &str) -> String {
        let paragraph = |p: &String| format!("<p>{}</p>\r\n", wrap(&escape(p)).join("\r\n"));
        let mut body = String::new();
        body.extend(self.before.iter().map(paragraph));
        if let Some((label, href)) = self.link {
            let href = escape(href);
            body.push_str(&format!(
                "<p><a href=\"{href}\">{}</a></p>\r\n<p>Or copy this address into your browser:<br>\r\n{href}</p>\r\n",
                escape(label)
            ));
        }
        body.extend(self.after.iter().map(paragraph));
        format!(
            "<!doctype html>\r\n<html lang=\"en\"><head><meta charset=\"utf-8\">\r\n<title>{title}</title></head>\r\n<body>\r\n<h1>{title}</h1>\r\n{body}</body></html>\r\n",
            title = escape(title),
        )
    }

    fn mail(&self, to: &str, template: Template, subject: &str) -> OutgoingMail {
        OutgoingMail {
            to: to.to_string(),
            template,
            subject: subject.to_string(),
            text: self.text(),
            html: self.html(subject),
        }
    }
}

/// "Confirm your email" with the verification link.
pub fn verification(to: &str, public_url: &str, token: &str) -> OutgoingMail {
    let link = format!("{public_url}/verify-email?token={token}");
    Body {
        before: &[
            "Welcome to SUMA Finance.".into(),
            "Confirm your email address by opening this link within 24 hours:".into(),
        ],
        link: Some(("Confirm my email", &link)),
        after: &["If you did not create an account, ignore this message.".into()],
    }
    .mail(to, Template::Verification, "Confirm your email address")
}

/// Sent to the owner of an address someone tried to register again.
pub fn already_registered(to: &str, public_url: &str) -> OutgoingMail {
    let reset = format!("{public_url}/reset-password");
    Body {
        before: &[
            "Someone tried to create a SUMA Finance account with this email address, which already has an account.".into(),
            "If it was you, sign in instead; if you forgot your password, reset it here:".into(),
        ],
        link: Some(("Reset my password", &reset)),
        after: &["If it was not you, you can ignore this message: your account is unchanged.".into()],
    }
    .mail(
        to,
        Template::AlreadyRegistered,
        "Someone tried to register with your email address",
    )
}

/// Sent when repeated failed sign-ins lock an account.
pub fn account_locked(to: &str, minutes: u64) -> OutgoingMail {
    simple(
        to,
        Template::AccountLocked,
        "Your account was temporarily locked",
        &[
            &format!("Several sign-in attempts with a wrong password were made on your SUMA Finance account, so sign-in is locked for {minutes} minutes."),
            "If this was not you, consider resetting your password once the lock ends.",
        ],
    )
}

fn simple(to: &str, template: Template, subject: &str, paragraphs: &[&str]) -> OutgoingMail {
    let paragraphs: Vec<String> = paragraphs.iter().map(|p| p.to_string()).collect();
    Body {
        before: &paragraphs,
        link: None,
        after: &[],
    }
    .mail(to, template, subject)
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
    Body {
        before: &[
            "Someone asked to reset the password of your SUMA Finance account.".into(),
            "To choose a new password, open this link within an hour:".into(),
        ],
        link: Some(("Choose a new password", &link)),
        after: &["If it was not you, ignore this message: your password is unchanged.".into()],
    }
    .mail(to, Template::PasswordReset, "Reset your password")
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
    let first = format!(
        "Two-step sign-in with {method} was turned on for your SUMA Finance account, and your other sessions were ended."
    );
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

/// Sent when a second factor is replaced or turned off, or recovery codes
/// are made anew; `what` is the sentence that says which.
pub fn two_factor_changed(to: &str, what: &str) -> OutgoingMail {
    simple(
        to,
        Template::TwoFactorChanged,
        "Your two-step sign-in changed",
        &[
            what,
            "Your other sessions were ended. If this was not you, reset your password and contact support.",
        ],
    )
}

/// Sent when an account is signed in to from a device it did not know:
/// when (UTC), from which IP address, and the device (its user-agent family).
pub fn new_device(to: &str, when: &str, ip: &str, device: &str) -> OutgoingMail {
    let when = format!("When: {when}");
    let ip = format!("Where: IP address {ip}");
    let device = format!("Device: {device}");
    simple(
        to,
        Template::NewDevice,
        "New sign-in to your SUMA account",
        &[
            "Your SUMA Finance account was just signed in to from a device it had not seen before.",
            &when,
            &ip,
            &device,
            "If this was you, there is nothing to do. If it was not, change your password now: that ends every session.",
        ],
    )
}

/// Sent when repeated wrong sign-in codes lock the second step of sign-in.
pub fn second_factor_locked(to: &str, minutes: u64) -> OutgoingMail {
    let first = format!(
        "Several wrong sign-in codes were entered for your SUMA Finance account after a correct password, so the code step of sign-in is locked for {minutes} minutes."
    );
    simple(
        to,
        Template::SecondFactorLocked,
        "Sign-in codes were locked on your account",
        &[
            &first,
            "If this was not you, someone may know your password: change it once the lock ends.",
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

/// The farewell: sent once an account has been erased.
pub fn account_erased(to: &str) -> OutgoingMail {
    simple(
        to,
        Template::AccountErased,
        "Your account was deleted",
        &[
            "Your SUMA Finance account was deleted at your request: you were signed out everywhere, and your name, email address and sign-in history were erased.",
            "Records the law requires us to keep (such as the security log, without your address) are kept for the periods of our retention policy, then deleted.",
            "If this was not you, contact support at once.",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_template() -> Vec<OutgoingMail> {
        let url = "https://auth.example.com";
        let token = "a".repeat(43);
        vec![
            verification("a@example.com", url, &token),
            already_registered("a@example.com", url),
            account_locked("a@example.com", 15),
            refresh_token_reuse("a@example.com"),
            password_reset("a@example.com", url, &token),
            otp_code("a@example.com", "123456", 5),
            new_two_factor("a@example.com", "an authenticator app"),
            two_factor_changed("a@example.com", "Two-step sign-in was turned off."),
            second_factor_locked("a@example.com", 15),
            password_changed("a@example.com"),
            account_erased("a@example.com"),
            new_device(
                "a@example.com",
                "2026-01-02 03:04 UTC",
                "192.0.2.1",
                "Firefox on Linux",
            ),
        ]
    }

    #[test]
    fn verification_mail_carries_the_link_in_both_parts() {
        let m = verification("a@example.com", "https://auth.example", "tok_en-1");
        let link = "https://auth.example/verify-email?token=tok_en-1";
        assert!(m.text.lines().any(|l| l.trim_end() == link), "{}", m.text);
        assert!(m.html.contains(&format!("href=\"{link}\"")));
        assert!(m
            .html
            .lines()
            .any(|l| l.trim_end() == format!("{link}</p>")));
    }

    #[test]
    fn links_are_the_same_in_both_parts() {
        for m in every_template() {
            let links = |s: &str| -> Vec<String> {
                s.split(|c: char| c.is_whitespace() || c == '"' || c == '<')
                    .filter(|w| w.starts_with("https://"))
                    .map(str::to_string)
                    .collect()
            };
            let text = links(&m.text);
            let mut html = links(&m.html);
            html.dedup();
            assert_eq!(text, html, "{}", m.template.name());
        }
    }

    #[test]
    fn prose_is_wrapped_and_lines_end_in_crlf() {
        for m in every_template() {
            for part in [&m.text, &m.html] {
                assert!(part.ends_with("\r\n"));
                assert!(!part.replace("\r\n", "").contains(['\r', '\n']));
                for line in part.split("\r\n") {
                    assert!(
                        line.len() <= 78 || line.contains("https://"),
                        "{}: {line:?}",
                        m.template.name()
                    );
                }
            }
        }
    }

    #[test]
    fn wrap_keeps_long_words_whole() {
        let long = format!("see {} now", "x".repeat(100));
        assert_eq!(
            wrap(&long),
            vec!["see".to_string(), "x".repeat(100), "now".into()]
        );
        assert_eq!(wrap("a b"), vec!["a b".to_string()]);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
    }
}
