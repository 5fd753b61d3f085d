//! A DogStatsD agent stand-in: a UDP socket that keeps the lines it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;

#[derive(Clone)]
pub struct StatsdSink {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl StatsdSink {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let port = socket.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let store = lines.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let mut store = store.lock().unwrap();
                store.extend(text.lines().map(str::to_string));
            }
        });
        Self { port, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) for a line starting with `prefix` and containing every tag.
    pub async fn wait_for(&self, prefix: &str, tags: &[&str]) -> String {
        self.wait_for_within(prefix, tags, Duration::from_secs(5))
            .await
    }

    /// The same, waiting up to `limit`.
    pub async fn wait_for_within(&self, prefix: &str, tags: &[&str], limit: Duration) -> String {
        for _ in 0..(limit.as_millis() / 50) {
            if let Some(line) = self
                .lines()
                .into_iter()
                .find(|l| l.starts_with(prefix) && tags.iter().all(|t| l.contains(t)))
            {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no statsd line {prefix} with {tags:?}; got {:#?}",
            self.lines()
        );
    }
}
