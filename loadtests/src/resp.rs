//! A minimal Redis client (RESP2 over TCP, one command at a time): enough to claim
//! an empty logical database for a run, size the keys the run created with
//! `MEMORY USAGE`, and flush the database afterwards.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn as_string(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Simple(s) if s == "OK")
    }
}

pub struct Redis {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Err("Redis closed the connection".into());
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("bad RESP line {line:?}"))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Int(int(rest)?)),
        "$" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        "*" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(read_reply(r)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(format!("bad RESP line {line:?}")),
    }
}

impl Redis {
    pub fn connect(host: &str, port: u16) -> Result<Self, String> {
        let stream = TcpStream::connect((host, port))
            .map_err(|e| format!("cannot connect to Redis at {host}:{port}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        Ok(Self {
            writer: stream,
            reader,
        })
    }

    pub fn cmd(&mut self, args: &[&str]) -> Result<Reply, String> {
        self.writer
            .write_all(&encode(args))
            .map_err(|e| format!("Redis: {e}"))?;
        match read_reply(&mut self.reader)? {
            Reply::Error(e) => Err(format!("Redis {}: {e}", args.first().unwrap_or(&""))),
            r => Ok(r),
        }
    }

    pub fn select(&mut self, db: u32) -> Result<(), String> {
        self.cmd(&["SELECT", &db.to_string()]).map(|_| ())
    }

    /// Up to `limit` keys matching `pattern` (SCAN, so the server is not blocked).
    pub fn scan(&mut self, pattern: &str, limit: usize) -> Result<Vec<String>, String> {
        let mut cursor = "0".to_owned();
        let mut keys = Vec::new();
        loop {
            let reply = self.cmd(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])?;
            let Reply::Array(Some(parts)) = reply else {
                return Err("unexpected SCAN reply".into());
            };
            let next = parts.first().and_then(Reply::as_string).unwrap_or_default();
            if let Some(Reply::Array(Some(found))) = parts.get(1) {
                keys.extend(found.iter().filter_map(Reply::as_string));
            }
            if next == "0" || next.is_empty() || keys.len() >= limit {
                keys.truncate(limit);
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// `MEMORY USAGE key SAMPLES 0`: bytes the key and its value take.
    pub fn memory_usage(&mut self, key: &str) -> Result<Option<i64>, String> {
        Ok(self
            .cmd(&["MEMORY", "USAGE", key, "SAMPLES", "0"])?
            .as_int())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_as_bulk_arrays() {
        assert_eq!(
            encode(&["SET", "k", "v 1"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv 1\r\n".to_vec()
        );
    }

    #[test]
    fn replies_are_decoded() {
        let mut r: &[u8] = b"+OK\r\n-ERR no\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n$1\r\n0\r\n*1\r\n$3\r\nabc\r\n";
        assert!(read_reply(&mut r).unwrap().is_ok());
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(read_reply(&mut r).unwrap().as_int(), Some(42));
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Bulk(Some(b"he\r\no".to_vec()))
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Bulk(None));
        let Reply::Array(Some(a)) = read_reply(&mut r).unwrap() else {
            panic!()
        };
        assert_eq!(a[0].as_string().as_deref(), Some("0"));
        assert!(read_reply(&mut r).is_err());
    }
}
