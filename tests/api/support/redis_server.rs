//! A Redis server of a test's own, which the test may stop and start again.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on {}", self.port);
    }

    /// Stops the server's process (SIGSTOP): connections stay open and
    /// accepted, nothing answers — a frozen host. `thaw` undoes it; a
    /// frozen server is still killed when dropped.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// Kills the server (an outage, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every command Redis runs, as `MONITOR` reports it.
pub struct Monitor {
    pub lines: Arc<Mutex<Vec<String>>>,
    conn: redis::aio::MultiplexedConnection,
}

impl Monitor {
    pub async fn start(url: &str) -> Self {
        let client = redis::Client::open(url).unwrap();
        let monitor = client.get_async_monitor().await.unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                sink.lock().unwrap().push(line);
            }
        });
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut m = Self { lines, conn };
        m.mark("start").await;
        m
    }

    /// Sends a marker through Redis and waits until the monitor has seen it:
    /// every command sent before it has been seen too.
    pub async fn mark(&mut self, marker: &str) {
        let marker = format!("monitor-marker-{marker}");
        let _: String = redis::cmd("ECHO")
            .arg(&marker)
            .query_async(&mut self.conn)
            .await
            .unwrap();
        self.wait_for(|l| l.contains(&marker)).await;
    }

    pub async fn wait_for(&self, f: impl Fn(&str) -> bool) {
        for _ in 0..250 {
            if self.lines.lock().unwrap().iter().any(|l| f(l)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not seen by MONITOR: {:#?}", self.lines.lock().unwrap());
    }

    pub fn count(&self, f: impl Fn(&str) -> bool) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| f(l)).count()
    }
}
