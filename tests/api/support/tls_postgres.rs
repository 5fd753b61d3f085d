//! A throwaway PostgreSQL cluster that accepts only TLS (`ssl = on`, a
//! `hostssl`-only `pg_hba.conf`), with a certificate for `localhost` signed by
//! a throwaway CA — and a second CA that signed nothing, for the refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct TlsPostgres {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL binary as the `postgres` user when the tests run as root
/// (initdb refuses root).
fn as_postgres(bin: &Path, args: &[String]) {
    if is_root() {
        let line = std::iter::once(bin.display().to_string())
            .chain(args.iter().map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        run(Command::new("su")
            .current_dir("/")
            .args(["postgres", "-s", "/bin/sh", "-c", &line])
            .stdout(Stdio::null()));
    } else {
        run(Command::new(bin).args(args).stdout(Stdio::null()));
    }
}

fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql (scripts/test.sh installs them)",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

impl TlsPostgres {
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir =
            std::env::temp_dir().join(format!("suma-tls-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // The CA, the server's certificate (localhost only: no IP address in
        // it, so that 127.0.0.1 is a wrong host name), and an unrelated CA.
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=suma test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=other CA",
                "-keyout",
                "other.key",
                "-out",
                "other-ca.pem",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.pem",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join("data");
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir));
        }
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-U".into(),
                "postgres".into(),
                "-A".into(),
                "trust".into(),
            ],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\nssl = on\nssl_cert_file = '{d}/server.pem'\nssl_key_file = '{d}/server.key'\nfsync = off\n",
            d = dir.display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        // TLS or nothing: plaintext TCP has no matching line.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres"]).arg(&dir));
        }
        run(Command::new("chmod").arg("600").arg(dir.join("server.key")));
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D".into(),
                data.display().to_string(),
                "-l".into(),
                dir.join("log").display().to_string(),
                "-w".into(),
                "start".into(),
            ],
        );
        Self { port, dir, bin }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let args = [
            "-D".to_string(),
            data,
            "-m".into(),
            "immediate".into(),
            "stop".into(),
        ];
        let pg_ctl = self.bin.join("pg_ctl");
        if is_root() {
            let line = format!("{} {}", pg_ctl.display(), args.join(" "));
            let _ = Command::new("su")
                .current_dir("/")
                .args(["postgres", "-s", "/bin/sh", "-c", &line])
                .output();
        } else {
            let _ = Command::new(pg_ctl).args(args).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
