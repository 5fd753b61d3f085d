//! The README's walk-through, run as written: its `sh` block under
//! "Walk-through" goes to bash against the real binary started as a newcomer
//! would (`cargo run` in a fresh directory: default `./data`, development
//! environment, generated keys, mail as files), and every line the block
//! prints must match the `# …` comment shown under its command. Also the
//! start-up banner of that server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::TempDir;

/// The `sh` block that follows the "## Walk-through" heading.
fn walk_through() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Walk-through"))
        .expect("a \"## Walk-through\" section in README.md");
    let start = section
        .find("```sh\n")
        .expect("an sh block in the walk-through")
        + 6;
    let end = section[start..].find("```").expect("the block's end") + start;
    section[start..end].to_string()
}

/// The answers the block shows: comment lines that are JSON (`# {…}`).
fn expected_answers(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# "))
        .filter(|l| l.starts_with('{') || l.starts_with('['))
        .map(str::to_string)
        .collect()
}

/// `…` in an expected line matches any text (including none).
fn matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split('…').collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || !actual[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// The server binary, killed when the test ends however it ends.
struct Server {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&mut from);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.0: the status code, if the server answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = String::new();
    BufReader::new(stream).read_line(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Starts the binary as `cargo run` would in `dir`: only PATH, HOME and the port.
fn start_server(dir: &Path, port: u16) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_suma-auth"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("HTTP_WORKERS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the suma-auth binary");
    let stdout = capture(child.stdout.take().unwrap());
    let stderr = capture(child.stderr.take().unwrap());
    let mut server = Server {
        child,
        stdout,
        stderr,
    };
    // Readiness: /ready answers 200, or the process died (a bounded wait, not a timing check).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if http_status(port, "/ready") == Some(200) {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "the server exited with {status}: {}",
                server.stderr.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server did not get ready: {}",
            server.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The banner is printed just after the listener is up.
    while !server.stdout.lock().unwrap().contains("  keys ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn the_readme_walk_through_works_as_written() {
    let block = walk_through();
    let expected = expected_answers(&block);
    assert!(
        expected.len() >= 4,
        "the walk-through shows the answers of register, verify, login and /me: {expected:?}"
    );
    let dir = TempDir::new();
    let port = free_port();
    let server = start_server(&dir.0, port);

    let mut bash = Command::new("bash")
        .args(["-e", "-u", "-o", "pipefail", "-c", &block])
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("SUMA_URL", format!("http://localhost:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let out = capture(bash.stdout.take().unwrap());
    let err = capture(bash.stderr.take().unwrap());
    // A broken step can loop (waiting for a mail): bounded, then killed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = bash.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = bash.kill();
            let _ = bash.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the readers drain the pipes.
    std::thread::sleep(Duration::from_millis(200));
    let out = out.lock().unwrap().clone();
    let err = err.lock().unwrap().clone();
    let report = format!(
        "\n--- block ---\n{block}\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- server ---\n{}",
        server.stderr.lock().unwrap()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the walk-through failed ({status:?}){report}"
    );
    let printed: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        printed.len(),
        expected.len(),
        "every printed line has its answer shown under it{report}"
    );
    for (want, got) in expected.iter().zip(&printed) {
        assert!(
            matches(want, got),
            "expected {want}\n     got {got}{report}"
        );
    }
    // Registered -> verified -> signed in -> /me, in that order.
    assert_eq!(printed[0], r#"{"status":"verification_pending"}"#);
    assert_eq!(printed[1], r#"{"status":"verified"}"#);
    assert!(printed[2].starts_with(r#"{"access_token":"ey"#));
    assert!(printed[3].contains(r#""email":"ana@example.com","email_verified":true"#));
}

#[test]
fn a_development_server_prints_where_things_are_and_no_secret() {
    let dir = TempDir::new();
    let port = free_port();
    let server = start_server(&dir.0, port);
    let banner = server.stdout.lock().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    for line in [
        format!("  URL       {url} "),
        format!("  OpenAPI   {url}/openapi.json"),
        "  storage   embedded SQLite, ./data/suma-auth.db".to_string(),
        "  mail      files in ./data/mail".to_string(),
        format!("  links     mails link to http://localhost:{port}/verify-email"),
        "  keys      JWT signing key and data encryption key generated for development in ./data/keys"
            .to_string(),
    ] {
        assert!(banner.contains(&line), "{line:?} not in:\n{banner}");
    }
    // The OpenAPI URL it names answers.
    assert_eq!(http_status(port, "/openapi.json"), Some(200));
    // No key material anywhere in what the server printed.
    let keys = dir.0.join("data/keys");
    let data_key = std::fs::read_to_string(keys.join("data.key")).unwrap();
    let pem = std::fs::read_to_string(keys.join("jwt-private.pem")).unwrap();
    let printed = format!("{banner}{}", server.stderr.lock().unwrap());
    assert!(!printed.contains(data_key.trim()));
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !printed.contains(line),
            "a line of the private key was printed"
        );
    }
}

/// A second server started on the data directory another one serves exits
/// at once, naming the reason, and the first keeps serving.
#[test]
fn a_second_server_on_one_embedded_database_is_refused() {
    let dir = TempDir::new();
    let port = free_port();
    let _first = start_server(&dir.0, port);
    let mut second = Command::new(env!("CARGO_BIN_EXE_suma-auth"))
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a second server");
    let stderr = capture(second.stderr.take().unwrap());
    let mut server = Server {
        child: second,
        stdout: Arc::default(),
        stderr,
    };
    // A bounded wait for its exit: a second server that started would run on.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second server is still running: {}",
            server.stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    // Its stderr is read to the end once the pipe closes.
    let wanted = "another suma-auth server is serving";
    while !server.stderr.lock().unwrap().contains(wanted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.stderr.lock().unwrap().contains(wanted),
        "{}",
        server.stderr.lock().unwrap()
    );
    assert_eq!(http_status(port, "/ready"), Some(200));
}

#[test]
fn the_expected_answer_matcher() {
    assert!(matches(
        r#"{"a":"…","b":1,…}"#,
        r#"{"a":"xyz","b":1,"c":2}"#
    ));
    assert!(matches(r#"{"a":1}"#, r#"{"a":1}"#));
    assert!(!matches(r#"{"a":1}"#, r#"{"a":2}"#));
    assert!(!matches(
        r#"{"a":"…","b":1,…}"#,
        r#"{"a":"xyz","b":2,"c":2}"#
    ));
    assert!(!matches(
        r#"{"status":"verified"}"#,
        r#"{"status":"invalid_token"}"#
    ));
}
