//! Reading verification links out of the `.eml` files that the server writes in
//! embedded mode (no SMTP configured): `DATA_DIR/mail/*.eml`.
//!
//! The parser does not trust any particular encoder: it walks the MIME structure
//! (boundaries taken from the `Content-Type` headers), decodes every part according to
//! its `Content-Transfer-Encoding` (quoted-printable with `=\r\n` soft line breaks and
//! `=3D` escapes, base64, or plain 7bit/8bit), and then looks for
//! `verify-email?...token=<URL-safe token>` in the decoded text.

/// Tokens shorter than this are taken for a truncated read (a file still being written)
/// and ignored; real tokens are high-entropy and much longer.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Plain,
    QuotedPrintable,
    Base64,
}

/// Every distinct verification token in one raw message, in order of appearance.
pub fn extract_verify_tokens(raw: &[u8]) -> Vec<String> {
    let mut tokens = Vec::new();
    for segment in decoded_segments(raw) {
        tokens_in_text(&segment, &mut tokens);
    }
    if tokens.is_empty() {
        // Not a MIME shape we understood: fall back to the whole file, decoded as
        // quoted-printable only if the file says so anywhere.
        let whole = if find_ci(raw, b"quoted-printable", 0).is_some() {
            decode_qp(raw)
        } else {
            raw.to_vec()
        };
        tokens_in_text(&whole, &mut tokens);
    }
    tokens
}

/// Every decoded leaf body of a raw message, joined: the text a reader sees.
pub fn decoded_text(raw: &[u8]) -> String {
    let segments = decoded_segments(raw);
    let joined: Vec<u8> = segments.join(&b"\n"[..]);
    String::from_utf8_lossy(&joined).into_owned()
}

/// The value of the first top-level header `name` (unfolded), if any.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

/// The six-digit sign-in code of a one-time-code mail: the first run of exactly
/// six digits after "code" in the subject or the text.
pub fn otp_code(subject: &str, text: &str) -> Option<String> {
    for source in [subject, text] {
        let lower = source.to_ascii_lowercase();
        let mut from = 0;
        while let Some(at) = lower[from..].find("code") {
            let start = from + at + 4;
            if let Some(code) = first_six_digits(&source[start..]) {
                return Some(code);
            }
            from = start;
        }
    }
    None
}

fn first_six_digits(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if run == 6 {
                return Some(s[i..i + 6].to_owned());
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

/// Whether the raw message names `address` (case-insensitively), e.g. in its `To:` header.
#[cfg(test)]
pub fn mentions_address(raw: &[u8], address: &str) -> bool {
    find_ci(raw, address.as_bytes(), 0).is_some()
}

/// Splits the message into its leaf bodies, each decoded per its transfer encoding.
fn decoded_segments(raw: &[u8]) -> Vec<Vec<u8>> {
    let lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();

    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    let mut segments = Vec::new();
    let mut in_headers = true;
    let mut header_block: Vec<Vec<u8>> = Vec::new();
    let mut encoding = Encoding::Plain;
    let mut body: Vec<&[u8]> = Vec::new();

    for line in lines {
        if in_headers {
            if line.is_empty() {
                let (enc, new_boundaries) = parse_headers(&header_block);
                encoding = enc;
                boundaries.extend(new_boundaries);
                header_block.clear();
                in_headers = false;
            } else if (line[0] == b' ' || line[0] == b'\t') && !header_block.is_empty() {
                if let Some(last) = header_block.last_mut() {
                    last.push(b' ');
                    last.extend_from_slice(trim_ascii(line));
                }
            } else {
                header_block.push(line.to_vec());
            }
            continue;
        }
        match boundary_kind(line, &boundaries) {
            Some(closing) => {
                segments.push(decode_body(&body, encoding));
                body.clear();
                if closing {
                    // Epilogue (or the rest of the enclosing part): plain text.
                    encoding = Encoding::Plain;
                } else {
                    in_headers = true;
                    encoding = Encoding::Plain;
                }
            }
            None => body.push(line),
        }
    }
    if !body.is_empty() {
        segments.push(decode_body(&body, encoding));
    }
    segments
}

/// `Some(false)` for `--boundary`, `Some(true)` for `--boundary--`, else `None`.
fn boundary_kind(line: &[u8], boundaries: &[Vec<u8>]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?;
    let rest = trim_ascii_end(rest);
    for b in boundaries {
        if let Some(after) = rest.strip_prefix(b.as_slice()) {
            if after.is_empty() {
                return Some(false);
            }
            if after == b"--" {
                return Some(true);
            }
        }
    }
    None
}

/// The transfer encoding of a header block and any multipart boundaries it declares.
fn parse_headers(block: &[Vec<u8>]) -> (Encoding, Vec<Vec<u8>>) {
    let mut encoding = Encoding::Plain;
    let mut boundaries = Vec::new();
    for header in block {
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_ascii(&header[..colon]);
        let value = trim_ascii(&header[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            let v = value.to_ascii_lowercase();
            encoding = if v.starts_with(b"quoted-printable") {
                Encoding::QuotedPrintable
            } else if v.starts_with(b"base64") {
                Encoding::Base64
            } else {
                Encoding::Plain
            };
        } else if name.eq_ignore_ascii_case(b"content-type") {
            if let Some(b) = boundary_param(value) {
                boundaries.push(b);
            }
        }
    }
    (encoding, boundaries)
}

fn boundary_param(value: &[u8]) -> Option<Vec<u8>> {
    let at = find_ci(value, b"boundary=", 0)?;
    let rest = &value[at + b"boundary=".len()..];
    let b = if let Some(quoted) = rest.strip_prefix(b"\"") {
        let end = quoted.iter().position(|&c| c == b'"')?;
        &quoted[..end]
    } else {
        let end = rest
            .iter()
            .position(|&c| c == b';' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        &rest[..end]
    };
    (!b.is_empty()).then(|| b.to_vec())
}

fn decode_body(lines: &[&[u8]], encoding: Encoding) -> Vec<u8> {
    let joined = lines.join(&b"\n"[..]);
    match encoding {
        Encoding::Plain => joined,
        Encoding::QuotedPrintable => decode_qp(&joined),
        Encoding::Base64 => decode_base64(&joined),
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes and `=` soft line breaks (with
/// optional trailing whitespace before the line end). Malformed escapes stay literal.
fn decode_qp(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        // Soft line break: '=' [spaces/tabs] ("\r\n" | "\n")
        let mut j = i + 1;
        while j < input.len() && (input[j] == b' ' || input[j] == b'\t') {
            j += 1;
        }
        if j < input.len() && input[j] == b'\n' {
            i = j + 1;
            continue;
        }
        if j + 1 < input.len() && input[j] == b'\r' && input[j + 1] == b'\n' {
            i = j + 2;
            continue;
        }
        if i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Standard (and, leniently, URL-safe) base64; whitespace and padding are skipped.
fn decode_base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Characters that can appear in a URL as written in a mail (stops at whitespace,
/// quotes and angle brackets).
fn is_url_char(c: u8) -> bool {
    c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`')
}

fn tokens_in_text(text: &[u8], tokens: &mut Vec<String>) {
    const MARKER: &[u8] = b"verify-email?";
    let mut from = 0;
    while let Some(at) = find_ci(text, MARKER, from) {
        let q_start = at + MARKER.len();
        let q_end = text[q_start..]
            .iter()
            .position(|&c| !is_url_char(c))
            .map_or(text.len(), |p| q_start + p);
        from = q_start;
        if let Some(token) = token_param(&text[q_start..q_end]) {
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
}

/// The `token` parameter of a query string (`&` or `&amp;` separated).
fn token_param(query: &[u8]) -> Option<String> {
    let query = query.split(|&c| c == b'#').next().unwrap_or(query);
    for param in query.split(|&c| c == b'&' || c == b';') {
        let Some(value) = param.strip_prefix(b"token=") else {
            continue;
        };
        let mut len = value.iter().take_while(|&&c| is_token_char(c)).count();
        // Accept '=' padding, should the server ever emit padded base64url.
        let pad = value[len..].iter().take_while(|&&c| c == b'=').count();
        if pad <= 2 && len + pad == value.len() {
            len += pad;
        }
        let token = &value[..len];
        if token.len() >= MIN_TOKEN_LEN {
            return String::from_utf8(token.to_vec()).ok();
        }
    }
    None
}

fn find_ci(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from >= hay.len() || hay.len() - from < needle.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    trim_ascii_end(&s[start..])
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &s[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TOKEN: &str = "Qm9vdHN0cmFwX3Rva2VuX2Zvcl90ZXN0aW5n-_x";

    fn b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        // wrap at 76 like real encoders
        out.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    #[test]
    fn plain_single_part() {
        let eml = format!(
            "From: SUMA <no-reply@suma.finance>\r\nTo: <bench-1-abc@example.com>\r\n\
             Subject: Verify your email\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\nHello,\r\n\r\nConfirm: \
             http://127.0.0.1:8080/verify-email?token={TOKEN}\r\n\r\nThanks\r\n"
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
        assert!(mentions_address(eml.as_bytes(), "BENCH-1-abc@example.com"));
        assert!(!mentions_address(
            eml.as_bytes(),
            "bench-11-abc@example.com"
        ));
    }

    #[test]
    fn no_headers_at_all_still_found() {
        let text = format!("Open https://app.example/verify-email?token={TOKEN} now");
        assert_eq!(
            extract_verify_tokens(text.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn quoted_printable_with_soft_breaks_and_3d() {
        // Soft line breaks inside the marker and inside the token, CRLF line ends.
        let (a, b) = TOKEN.split_at(10);
        let eml = format!(
            "To: bench-2-x@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Bitte best=C3=A4tigen: http://127.0.0.1:8080/verify-em=\r\nail?token=3D{a}=\r\n{b}\r\n"
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn quoted_printable_lf_only_and_trailing_space_soft_break() {
        let (a, b) = TOKEN.split_at(20);
        let eml = format!(
            "Content-Transfer-Encoding: Quoted-Printable\n\n\
             link: http://x/verify-email?token=3D{a}= \n{b}\n"
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn multipart_alternative_qp_text_and_base64_html() {
        let html = format!(
            "<p><a href=\"http://127.0.0.1:8080/verify-email?token={TOKEN}&amp;utm=x\">Verify</a></p>"
        );
        let (a, b) = TOKEN.split_at(7);
        let eml = format!(
            "To: <bench-3-x@example.com>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative;\r\n boundary=\"=_b0und4ry\"\r\n\r\n\
             This is a multi-part message.\r\n\
             --=_b0und4ry\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Verify: http://127.0.0.1:8080/verify-email?token=3D{a}=\r\n{b}\r\n\
             --=_b0und4ry\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--=_b0und4ry--\r\n",
            b64(html.as_bytes())
        );
        // Both parts carry the same token: reported once.
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn base64_only_body() {
        let body = format!("Verify: http://127.0.0.1:8080/verify-email?token={TOKEN}\n");
        let eml = format!(
            "To: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64(body.as_bytes())
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn plain_token_starting_with_3d_is_not_qp_decoded() {
        let token = "3DAbcdefghijklmnopqrstuvwxyz";
        let eml = format!(
            "Content-Transfer-Encoding: 8bit\r\n\r\nhttp://h/verify-email?token={token}\r\n"
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![token.to_owned()]
        );
    }

    #[test]
    fn token_parameter_not_first_and_nested_multipart() {
        let eml = format!(
            "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
             Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\n\
             Content-Type: text/plain\r\n\r\n-- \r\nsignature-like line above\r\n\
             http://h/verify-email?lang=en&token={TOKEN}#top\r\n--inner--\r\n--outer--\r\n"
        );
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned()]
        );
    }

    #[test]
    fn ignores_short_missing_and_reset_links() {
        let eml = "Content-Type: text/plain\r\n\r\n\
                   http://h/verify-email?token=short\r\n\
                   http://h/reset-password?token=AAAAAAAAAAAAAAAAAAAAAAAA\r\n\
                   http://h/verify-email?token=\r\n";
        assert!(extract_verify_tokens(eml.as_bytes()).is_empty());
        assert!(extract_verify_tokens(b"").is_empty());
    }

    #[test]
    fn padded_token_is_kept_whole() {
        let token = "AbcdefghijklmnopqrstuvwxyzAB==";
        let eml = format!("\r\nhttp://h/verify-email?token={token}\r\n");
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![token.to_owned()]
        );
    }

    #[test]
    fn multiple_distinct_tokens_in_order() {
        let t2 = "ZZZZZZZZZZZZZZZZZZZZZZZZZZ";
        let eml =
            format!("\n\nfirst http://h/verify-email?token={TOKEN}\nsecond http://h/verify-email?token={t2}\n");
        assert_eq!(
            extract_verify_tokens(eml.as_bytes()),
            vec![TOKEN.to_owned(), t2.to_owned()]
        );
    }

    #[test]
    fn qp_decoder_edge_cases() {
        assert_eq!(decode_qp(b"a=3Db"), b"a=b");
        assert_eq!(decode_qp(b"a=\r\nb"), b"ab");
        assert_eq!(decode_qp(b"a=\nb"), b"ab");
        assert_eq!(decode_qp(b"a=zz"), b"a=zz");
        assert_eq!(decode_qp(b"end="), b"end=");
        assert_eq!(decode_qp(b"end=4"), b"end=4");
        assert_eq!(decode_qp(b"x=4a"), b"xJ");
    }

    /// The server renders mails with mail-send's builder (mail-builder): parse its real
    /// output, in the shape of the verification template, with bodies that push it to
    /// each transfer encoding it picks (quoted-printable, base64).
    #[test]
    fn real_mail_builder_output() {
        use mail_builder::MessageBuilder;
        let token = "kY3-_Zq0aB9xLmN2pQrStUvWxYz0123456789-_AbCdE";
        let link = format!("http://127.0.0.1:8080/verify-email?token={token}");
        let bodies = [
            // ASCII, short lines
            format!(
                "Welcome to SUMA Finance.\r\n\r\nConfirm your email address by opening this \
                 link within 24 hours:\r\n\r\n{link}\r\n\r\nIf you did not create an \
                 account, ignore this message.\r\n"
            ),
            // non-ASCII text: forces an 8-bit-safe encoding
            format!("Bitte bestätigen Sie Ihre Adresse – öffnen Sie: {link} — danke!\r\n"),
            // mostly non-ASCII: base64 territory
            format!("确认您的电子邮件地址确认您的电子邮件地址确认您的电子邮件地址 {link} 确认\r\n"),
            // one very long line
            format!("{} {link} {}\r\n", "x".repeat(200), "y".repeat(200)),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for text in bodies {
            let html = format!(
                "<!doctype html><html><body><p>Welcome to SUMA Finance.</p>\n\
                 <p><a href=\"{link}\">Confirm my email</a></p>\n</body></html>"
            );
            let raw = MessageBuilder::new()
                .from(("SUMA Finance", "no-reply@suma.finance"))
                .to("bench-7-0badf00d@example.com")
                .subject("Confirm your email address")
                .text_body(text.as_str())
                .html_body(html.as_str())
                .write_to_vec()
                .unwrap();
            assert_eq!(
                extract_verify_tokens(&raw),
                vec![token.to_owned()],
                "{}",
                String::from_utf8_lossy(&raw)
            );
            assert!(mentions_address(&raw, "bench-7-0badf00d@example.com"));
            seen.extend(
                String::from_utf8_lossy(&raw)
                    .lines()
                    .filter_map(|l| l.strip_prefix("Content-Transfer-Encoding: "))
                    .map(|v| v.trim().to_ascii_lowercase()),
            );
        }
        // The cases above reach both encodings the builder uses for text.
        for enc in ["quoted-printable", "base64"] {
            assert!(seen.contains(enc), "{enc} not exercised: {seen:?}");
        }
    }

    #[test]
    fn headers_text_and_sign_in_codes() {
        let eml = "To: <a@example.com>\r\nSubject: Your sign-in code:\r\n 042917\r\n\
                   Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                   Your SUMA Finance sign-in code is 042917=\r\n.\r\n";
        assert_eq!(
            header(eml.as_bytes(), "subject").as_deref(),
            Some("Your sign-in code: 042917")
        );
        assert_eq!(
            header(eml.as_bytes(), "to").as_deref(),
            Some("<a@example.com>")
        );
        assert_eq!(header(eml.as_bytes(), "from"), None);
        assert!(decoded_text(eml.as_bytes()).contains("code is 042917."));
        assert_eq!(
            otp_code("Your sign-in code: 042917", "").as_deref(),
            Some("042917")
        );
        assert_eq!(
            otp_code("Sign in", "expires in 5 minutes; your code is 123456.").as_deref(),
            Some("123456")
        );
        assert_eq!(
            otp_code("Confirm your email", "code 1234567 or 12345"),
            None
        );
    }
}
