//! What identifies a device at sign-in: the client's `device_id` and the
//! *family* of its user agent (browser or app, and operating system, without
//! versions), so that a browser update is not a new device while another
//! browser on the same machine is.
//!
//! The fingerprint stored is a keyed hash of [`fingerprint_input`] (see
//! `services::devices`); nothing here does I/O.

/// The user-agent family: `"<browser> on <os>"`, `"<browser>"`, `"<os>"`, or
/// the name of the first product token (`okhttp/4.9` → `okhttp`); `"Unknown"`
/// when none is recognised. Versions are never part of it.
pub fn user_agent_family(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("").trim();
    let browser = browser_of(ua);
    let os = os_of(ua);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => o.to_string(),
        (None, None) => product_of(ua).unwrap_or_else(|| "Unknown".to_string()),
    }
}

/// The browser family, most specific first (Edge and Opera also say Chrome;
/// Chrome also says Safari).
fn browser_of(ua: &str) -> Option<&'static str> {
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
    ];
    if let Some((_, name)) = BROWSERS.iter().find(|(token, _)| ua.contains(token)) {
        return Some(*name);
    }
    (ua.contains("Safari/") && ua.contains("Version/")).then_some("Safari")
}

/// The operating-system family (Android before Linux, iOS before macOS:
/// their user agents name both).
fn os_of(ua: &str) -> Option<&'static str> {
    const SYSTEMS: &[(&str, &str)] = &[
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

/// The name of the first product token (`name/version`), when it is a
/// plain name of at most 40 characters.
fn product_of(ua: &str) -> Option<String> {
    let first = ua.split_whitespace().next()?;
    let name = first.split('/').next()?;
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!name.is_empty() && name.len() <= 40 && plain).then(|| name.to_string())
}

/// What the fingerprint is computed over: the device id (empty when the
/// client sent none) and the user-agent family, separated so that no pair
/// reads as another.
pub fn fingerprint_input(device_id: Option<&str>, family: &str) -> String {
    format!("{}\u{0}{family}", device_id.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_do_not_change_the_family() {
        let old = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";
        let new = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(user_agent_family(Some(old)), "Chrome on Windows");
        assert_eq!(user_agent_family(Some(old)), user_agent_family(Some(new)));
        assert_eq!(
            user_agent_family(Some("okhttp/4.9.0")),
            user_agent_family(Some("okhttp/4.12.0"))
        );
    }

    #[test]
    fn browsers_and_systems_are_told_apart() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", "Edge on Windows"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", "Safari on macOS"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
            ("curl/8.4.0", "curl"),
            ("", "Unknown"),
            ("(weird)", "Unknown"),
        ];
        for (ua, family) in cases {
            assert_eq!(user_agent_family(Some(ua)), family, "{ua}");
        }
        assert_eq!(user_agent_family(None), "Unknown");
    }

    #[test]
    fn the_input_separates_its_parts() {
        assert_ne!(
            fingerprint_input(Some("a"), "b c"),
            fingerprint_input(Some("a b"), "c")
        );
        assert_eq!(
            fingerprint_input(None, "x"),
            fingerprint_input(Some(""), "x")
        );
    }
}
