//! Starting the servers under test, and leaving nothing behind.
//!
//! The harness starts the release `suma-auth` binary itself: one instance on the
//! embedded default (SQLite and mail files in a fresh temporary `DATA_DIR`), or one
//! or more instances on PostgreSQL + Redis (a fresh database created for the run
//! and dropped afterwards, an empty Redis logical database claimed for the run and
//! flushed afterwards). Instances of one fleet share the data directory, so they
//! sign with the same development key and open each other's sealed mail.
//!
//! A server may be confined to a share of a core (the seed's task size): in a CPU
//! cgroup with a quota (cgroup v2 `cpu.max`, else cgroup v1 `cpu.cfs_quota_us`),
//! or, where no cgroup can be made, pinned to one core with `taskset` — then the
//! figures must be scaled by the share (`task_scale`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::resp::Redis;
use crate::target::BaseUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Postgres {
        pg_host: String,
        pg_port: u16,
        pg_user: String,
        redis_host: String,
        redis_port: u16,
    },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Postgres { .. } => "postgres+redis",
        }
    }
}

/// How much CPU each instance gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuRequest {
    /// The whole machine.
    Unlimited,
    /// A share of one core per instance (0.5 = the seed's task).
    Cores(f64),
}

/// How the request was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confinement {
    /// "none", "cgroup v2 cpu.max", "cgroup v1 cfs quota" or "taskset".
    pub method: String,
    /// Cores each instance may use.
    pub cores_per_instance: f64,
    /// Multiply measured throughput by this to get the figure of one task of the
    /// requested size (1 with a quota; the share with `taskset`).
    pub task_scale: f64,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct FleetOpts {
    pub server_bin: PathBuf,
    pub backend: Backend,
    pub instances: usize,
    pub cpu: CpuRequest,
    pub statsd_port: Option<u16>,
    pub smtp_port: Option<u16>,
    pub db_pool_size: u32,
    pub extra_env: Vec<(String, String)>,
    pub keep: bool,
    pub ready_timeout: Duration,
}

#[derive(Debug)]
pub struct Instance {
    pub base: BaseUrl,
    pub pid: u32,
    log: PathBuf,
    child: Child,
}

#[derive(Debug, Clone)]
struct PgDb {
    host: String,
    port: u16,
    user: String,
    name: String,
}

#[derive(Debug, Clone)]
struct RedisDb {
    host: String,
    port: u16,
    db: u32,
}

/// Running servers; dropping the fleet stops them and removes what the run made.
#[derive(Debug)]
pub struct Fleet {
    pub instances: Vec<Instance>,
    pub data_dir: PathBuf,
    pub mail_dir: PathBuf,
    pub confinement: Confinement,
    pub backend: String,
    pub ready_ms: Vec<f64>,
    pub db_pool_size: Option<u32>,
    pg: Option<PgDb>,
    redis: Option<RedisDb>,
    cgroups: Vec<PathBuf>,
    keep: bool,
    /// This fleet's entry in [`REGISTRY`].
    id: u64,
}

/// What a fleet must undo, kept where a signal handler can reach it: when the
/// harness is interrupted or terminated, the handler stops the servers and undoes
/// the rest before the process exits (see [`install_signal_cleanup`]).
#[derive(Debug, Clone, Default)]
struct Leftovers {
    pids: Vec<u32>,
    cgroups: Vec<PathBuf>,
    pg: Option<PgDb>,
    redis: Option<RedisDb>,
    data_dir: Option<PathBuf>,
    keep: bool,
}

static REGISTRY: Mutex<Vec<(u64, Leftovers)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The `suma-auth` binary next to this one (both are built into the same
/// `target/<profile>/`).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("suma-auth")))
        .unwrap_or_else(|| PathBuf::from("suma-auth"))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn random_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Runs `psql` against the `postgres` database; returns its output.
fn psql(host: &str, port: u16, user: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-A",
            "-t",
            "-q",
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (needed for the PostgreSQL backend): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `max_connections` of the PostgreSQL server.
pub fn pg_max_connections(host: &str, port: u16, user: &str) -> Option<u32> {
    psql(host, port, user, "SHOW max_connections")
        .ok()?
        .parse()
        .ok()
}

/// Claims an empty Redis logical database (1..15) for this run with a marker key.
fn claim_redis_db(host: &str, port: u16, tag: &str) -> Result<u32, String> {
    let mut r = Redis::connect(host, port)?;
    let databases = r
        .cmd(&["CONFIG", "GET", "databases"])
        .ok()
        .and_then(|reply| match reply {
            crate::resp::Reply::Array(Some(v)) => v.get(1).and_then(|x| x.as_int()),
            _ => None,
        })
        .unwrap_or(16);
    for db in (1..databases).rev() {
        let db = u32::try_from(db).map_err(|e| e.to_string())?;
        r.select(db)?;
        let size = r.cmd(&["DBSIZE"])?.as_int().unwrap_or(1);
        if size != 0 {
            continue;
        }
        let claim = r.cmd(&["SET", "suma-auth-loadtests:claim", tag, "NX", "EX", "86400"])?;
        if claim.is_ok() {
            return Ok(db);
        }
    }
    Err(format!(
        "no empty Redis logical database at {host}:{port} (1..{}): flush one or free one",
        databases - 1
    ))
}

/// The mount point of a cgroup hierarchy from `/proc/self/mountinfo`: cgroup v2
/// (`cgroup2`) or the v1 hierarchy with the `cpu` controller.
pub fn cgroup_mount(mountinfo: &str, v2: bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let fstype = r.next()?;
        let _source = r.next();
        let options = r.next().unwrap_or_default();
        let mount_point = left.split_whitespace().nth(4)?;
        let wanted = if v2 {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && options.split(',').any(|o| o == "cpu")
        };
        wanted.then(|| PathBuf::from(mount_point))
    })
}

fn try_cgroup_v2(name: &str, cores: f64) -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let root = cgroup_mount(&mountinfo, true).ok_or("no cgroup2 mount")?;
    let controllers =
        fs::read_to_string(root.join("cgroup.controllers")).map_err(|e| e.to_string())?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return Err("the cgroup2 hierarchy has no cpu controller".into());
    }
    let subtree = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    if !subtree.split_whitespace().any(|c| c == "cpu") {
        fs::write(root.join("cgroup.subtree_control"), "+cpu")
            .map_err(|e| format!("cannot enable cpu in cgroup.subtree_control: {e}"))?;
    }
    let dir = root.join(name);
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let quota = (cores * 100_000.0).round() as u64;
    if let Err(e) = fs::write(dir.join("cpu.max"), format!("{quota} 100000")) {
        let _ = fs::remove_dir(&dir);
        return Err(format!("cannot set cpu.max: {e}"));
    }
    Ok(dir)
}

fn try_cgroup_v1(name: &str, cores: f64) -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let root = cgroup_mount(&mountinfo, false).ok_or("no cgroup v1 cpu hierarchy")?;
    let dir = root.join(name);
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let quota = (cores * 100_000.0).round() as u64;
    let set = fs::write(dir.join("cpu.cfs_period_us"), "100000")
        .and_then(|()| fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()));
    if let Err(e) = set {
        let _ = fs::remove_dir(&dir);
        return Err(format!("cannot set the CFS quota: {e}"));
    }
    Ok(dir)
}

/// How each instance is started: in a cgroup, pinned, or as is.
enum Wrapper {
    None,
    Cgroup(PathBuf),
    Taskset(usize),
}

fn confine(cpu: CpuRequest, name: &str) -> (Wrapper, Confinement) {
    let cores = match cpu {
        CpuRequest::Unlimited => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            return (
                Wrapper::None,
                Confinement {
                    method: "none".into(),
                    cores_per_instance: n as f64,
                    task_scale: 1.0,
                    detail: format!("the whole machine ({n} cores)"),
                },
            );
        }
        CpuRequest::Cores(c) => c,
    };
    let mut why = Vec::new();
    match try_cgroup_v2(name, cores) {
        Ok(dir) => {
            let detail = format!(
                "{}: cpu.max {} 100000",
                dir.display(),
                (cores * 100_000.0).round()
            );
            return (
                Wrapper::Cgroup(dir),
                Confinement {
                    method: "cgroup v2 cpu.max".into(),
                    cores_per_instance: cores,
                    task_scale: 1.0,
                    detail,
                },
            );
        }
        Err(e) => why.push(format!("cgroup v2: {e}")),
    }
    match try_cgroup_v1(name, cores) {
        Ok(dir) => {
            let detail = format!(
                "{}: cpu.cfs_quota_us {} per cpu.cfs_period_us 100000",
                dir.display(),
                (cores * 100_000.0).round()
            );
            return (
                Wrapper::Cgroup(dir),
                Confinement {
                    method: "cgroup v1 cfs quota".into(),
                    cores_per_instance: cores,
                    task_scale: 1.0,
                    detail,
                },
            );
        }
        Err(e) => why.push(format!("cgroup v1: {e}")),
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu_index = n.saturating_sub(1);
    (
        Wrapper::Taskset(cpu_index),
        Confinement {
            method: "taskset".into(),
            cores_per_instance: 1.0,
            task_scale: cores,
            detail: format!(
                "pinned to core {cpu_index}; figures x {cores} for the task size ({})",
                why.join("; ")
            ),
        },
    )
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits until `GET /ready` answers 200 (plain TCP, no runtime needed).
pub fn wait_ready(base: &BaseUrl, child: &mut Child, timeout: Duration) -> Result<f64, String> {
    let started = Instant::now();
    let addr = base
        .as_str()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server exited ({status}) before it was ready"));
        }
        if ready_once(&addr) {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() >= timeout {
            return Err(format!(
                "{base} not ready after {:.0} s",
                timeout.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ready_once(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].starts_with(b"HTTP/1.1 200")
}

impl Fleet {
    pub fn start(opts: &FleetOpts) -> Result<Self, String> {
        if !opts.server_bin.is_file() {
            return Err(format!(
                "{} not found: build it with `cargo build --release -p suma-auth` or pass --server-bin",
                opts.server_bin.display()
            ));
        }
        let tag = random_tag();
        let data_dir = std::env::temp_dir().join(format!("suma-auth-loadtests-{tag}"));
        fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create the data dir: {e}"))?;
        let mut fleet = Fleet {
            instances: Vec::new(),
            mail_dir: data_dir.join("mail"),
            data_dir,
            confinement: Confinement {
                method: "none".into(),
                cores_per_instance: 0.0,
                task_scale: 1.0,
                detail: String::new(),
            },
            backend: opts.backend.name().to_owned(),
            ready_ms: Vec::new(),
            db_pool_size: None,
            pg: None,
            redis: None,
            cgroups: Vec::new(),
            keep: opts.keep,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        fleet.register();
        let mut env: Vec<(String, String)> = vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("DATA_DIR".into(), fleet.data_dir.display().to_string()),
            ("ENVIRONMENT".into(), "development".into()),
            ("LOG_LEVEL".into(), "warn".into()),
            // Every request of the harness comes from 127.0.0.1.
            ("RATE_LIMIT_LOGIN".into(), "1000000".into()),
            ("RATE_LIMIT_REGISTER".into(), "1000000".into()),
            ("RATE_LIMIT_PASSWORD_RESET".into(), "1000000".into()),
            ("RATE_LIMIT_OTP".into(), "1000000".into()),
            // login_otp signs the same users in many times an hour.
            ("MFA_CHALLENGES_PER_HOUR".into(), "1000000".into()),
        ];
        if let Some(port) = opts.statsd_port {
            env.push(("DD_AGENT_HOST".into(), "127.0.0.1".into()));
            env.push(("DD_DOGSTATSD_PORT".into(), port.to_string()));
        }
        if let Some(port) = opts.smtp_port {
            env.push(("SMTP_HOST".into(), "127.0.0.1".into()));
            env.push(("SMTP_PORT".into(), port.to_string()));
            env.push(("SMTP_TLS".into(), "none".into()));
        }
        if let Backend::Postgres {
            pg_host,
            pg_port,
            pg_user,
            redis_host,
            redis_port,
        } = &opts.backend
        {
            let name = format!("suma_lt_{tag}");
            psql(
                pg_host,
                *pg_port,
                pg_user,
                &format!("CREATE DATABASE {name}"),
            )?;
            fleet.pg = Some(PgDb {
                host: pg_host.clone(),
                port: *pg_port,
                user: pg_user.clone(),
                name: name.clone(),
            });
            fleet.register();
            let db = claim_redis_db(redis_host, *redis_port, &tag)?;
            fleet.redis = Some(RedisDb {
                host: redis_host.clone(),
                port: *redis_port,
                db,
            });
            fleet.register();
            env.push((
                "DATABASE_URL".into(),
                format!("postgres://{pg_user}@{pg_host}:{pg_port}/{name}?sslmode=disable"),
            ));
            env.push(("DB_POOL_SIZE".into(), opts.db_pool_size.to_string()));
            env.push((
                "REDIS_ENDPOINT".into(),
                format!("redis://{redis_host}:{redis_port}/{db}"),
            ));
            fleet.db_pool_size = Some(opts.db_pool_size);
        }
        env.extend(opts.extra_env.iter().cloned());

        // One public URL for the fleet, as behind a load balancer: it is the
        // tokens' issuer, which every instance must agree on.
        let mut public_url: Option<String> = None;
        for i in 0..opts.instances.max(1) {
            let (wrapper, confinement) = confine(opts.cpu, &format!("suma-auth-lt-{tag}-{i}"));
            if let Wrapper::Cgroup(dir) = &wrapper {
                fleet.cgroups.push(dir.clone());
                fleet.register();
            }
            fleet.confinement = confinement;
            let port = free_port()?;
            let base = BaseUrl::parse(&format!("http://127.0.0.1:{port}"))?;
            let public = public_url
                .get_or_insert_with(|| base.as_str().to_owned())
                .clone();
            let log = fleet.data_dir.join(format!("server-{i}.log"));
            let log_file = fs::File::create(&log).map_err(|e| e.to_string())?;
            let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
            let bin = opts.server_bin.display().to_string();
            let mut cmd = match &wrapper {
                Wrapper::None => Command::new(&opts.server_bin),
                Wrapper::Cgroup(dir) => {
                    let mut c = Command::new("sh");
                    c.args([
                        "-c",
                        "echo $$ > \"$1/cgroup.procs\" && shift && exec \"$@\"",
                        "sh",
                        &dir.display().to_string(),
                        &bin,
                    ]);
                    c
                }
                Wrapper::Taskset(cpu) => {
                    let mut c = Command::new("taskset");
                    c.args(["-c", &cpu.to_string(), &bin]);
                    c
                }
            };
            cmd.arg("serve");
            for var in [
                "DATABASE_URL",
                "DB_HOST",
                "DB_PORT",
                "DB_NAME",
                "DB_USER",
                "DB_PASSWORD",
                "DB_SSLMODE",
                "REDIS_ENDPOINT",
                "REDIS_AUTH_TOKEN",
                "SMTP_HOST",
                "SMTP_PORT",
                "SMTP_USERNAME",
                "SMTP_PASSWORD",
                "SMTP_TLS",
                "SENDGRID_API_KEY",
                "DD_AGENT_HOST",
                "DD_DOGSTATSD_PORT",
                "TRUSTED_PROXIES",
                "HTTP_WORKERS",
                "HASH_WORKERS",
            ] {
                cmd.env_remove(var);
            }
            cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("PORT", port.to_string())
                .env("PUBLIC_URL", &public)
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err);
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot start {bin}: {e}"))?;
            let pid = child.id();
            // The first instance generates the development keys into the shared
            // data directory; the others start once it is ready and read them.
            let ready = wait_ready(&base, &mut child, opts.ready_timeout);
            fleet.instances.push(Instance {
                base,
                pid,
                log: log.clone(),
                child,
            });
            fleet.register();
            match ready {
                Ok(ms) => fleet.ready_ms.push(ms),
                Err(e) => {
                    let tail = fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(format!(
                        "instance {i}: {e}; last lines of its log:\n{}",
                        tail.join("\n")
                    ));
                }
            }
        }
        Ok(fleet)
    }

    pub fn bases(&self) -> Vec<BaseUrl> {
        self.instances.iter().map(|i| i.base.clone()).collect()
    }

    /// The instances that exited, with their status and the end of their log.
    pub fn exits(&mut self) -> Option<String> {
        let mut out = Vec::new();
        for (i, inst) in self.instances.iter_mut().enumerate() {
            if let Ok(Some(status)) = inst.child.try_wait() {
                let log = fs::read_to_string(&inst.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                out.push(format!(
                    "instance {i} (pid {}) exited ({status}); last lines of its log:\n{}",
                    inst.pid,
                    tail.join("\n")
                ));
            }
        }
        (!out.is_empty()).then(|| out.join("\n"))
    }

    /// A Redis connection on the run's logical database.
    pub fn redis(&self) -> Option<Result<Redis, String>> {
        let r = self.redis.as_ref()?;
        Some(Redis::connect(&r.host, r.port).and_then(|mut c| {
            c.select(r.db)?;
            Ok(c)
        }))
    }

    /// CFS counters of the instances' CPU groups, summed: (periods, throttled
    /// periods, throttled nanoseconds). None without a cgroup.
    pub fn cpu_stat(&self) -> Option<(u64, u64, u64)> {
        if self.cgroups.is_empty() {
            return None;
        }
        let mut total = (0, 0, 0);
        for dir in &self.cgroups {
            let text = fs::read_to_string(dir.join("cpu.stat")).ok()?;
            let (p, t, ns) = parse_cpu_stat(&text)?;
            total = (total.0 + p, total.1 + t, total.2 + ns);
        }
        Some(total)
    }

    pub fn redis_db(&self) -> Option<u32> {
        self.redis.as_ref().map(|r| r.db)
    }

    pub fn pg_database(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.name.as_str())
    }

    pub fn pg_max_connections(&self) -> Option<u32> {
        let p = self.pg.as_ref()?;
        pg_max_connections(&p.host, p.port, &p.user)
    }

    fn leftovers(&self) -> Leftovers {
        Leftovers {
            pids: self.instances.iter().map(|i| i.pid).collect(),
            cgroups: self.cgroups.clone(),
            pg: self.pg.clone(),
            redis: self.redis.clone(),
            data_dir: Some(self.data_dir.clone()),
            keep: self.keep,
        }
    }

    fn register(&self) {
        if let Ok(mut r) = REGISTRY.lock() {
            let l = self.leftovers();
            match r.iter_mut().find(|(id, _)| *id == self.id) {
                Some(entry) => entry.1 = l,
                None => r.push((self.id, l)),
            }
        }
    }

    /// Stops every instance (SIGTERM, SIGKILL after 10 s).
    fn stop_all(&mut self) {
        for i in &self.instances {
            signal(i.pid, "-TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for i in &mut self.instances {
            loop {
                match i.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = i.child.kill();
                        let _ = i.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// `nr_periods`, `nr_throttled` and the throttled time in nanoseconds from a
/// cgroup's `cpu.stat` (v1 `throttled_time` in ns, v2 `throttled_usec`).
pub fn parse_cpu_stat(text: &str) -> Option<(u64, u64, u64)> {
    let mut periods = None;
    let mut throttled = None;
    let mut ns = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(v) = v.parse::<u64>() else {
            continue;
        };
        match k {
            "nr_periods" => periods = Some(v),
            "nr_throttled" => throttled = Some(v),
            "throttled_time" => ns = Some(v),
            "throttled_usec" => ns = Some(v * 1000),
            _ => {}
        }
    }
    Some((periods?, throttled?, ns.unwrap_or(0)))
}

fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes what a fleet made besides its processes: its CPU groups, database,
/// Redis data and data directory.
fn undo(l: &Leftovers) {
    for dir in &l.cgroups {
        remove_cgroup(dir);
    }
    if let Some(pg) = &l.pg {
        if let Err(e) = psql(
            &pg.host,
            pg.port,
            &pg.user,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name),
        ) {
            eprintln!("suma-auth-loadtests: could not drop {}: {e}", pg.name);
        }
    }
    if let Some(r) = &l.redis {
        let flushed = Redis::connect(&r.host, r.port).and_then(|mut c| {
            c.select(r.db)?;
            c.cmd(&["FLUSHDB"])
        });
        if let Err(e) = flushed {
            eprintln!(
                "suma-auth-loadtests: could not flush Redis db {}: {e}",
                r.db
            );
        }
    }
    if let Some(dir) = &l.data_dir {
        if l.keep {
            eprintln!(
                "suma-auth-loadtests: kept {} (server logs, mail)",
                dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Whether a process is gone or a zombie (it can no longer hold anything).
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
        Err(_) => true,
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stops every server the harness started
/// (SIGTERM, SIGKILL after 10 s), undoes the rest, and exits (128 + signal).
pub fn install_signal_cleanup() {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let code = rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    return None;
                };
                tokio::select! {
                    _ = int.recv() => Some(130),
                    _ = term.recv() => Some(143),
                    _ = hup.recv() => Some(129),
                }
            });
            let Some(code) = code else {
                return;
            };
            eprintln!("\nsuma-auth-loadtests: interrupted; stopping the servers and cleaning up…");
            let all: Vec<Leftovers> = REGISTRY
                .lock()
                .map(|mut r| r.drain(..).map(|(_, l)| l).collect())
                .unwrap_or_default();
            for l in &all {
                for pid in &l.pids {
                    signal(*pid, "-TERM");
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            for l in &all {
                for &pid in &l.pids {
                    while !gone(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if !gone(pid) {
                        signal(pid, "-KILL");
                    }
                }
            }
            for l in &all {
                undo(l);
            }
            std::process::exit(code);
        });
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_all();
        undo(&self.leftovers());
        if let Ok(mut r) = REGISTRY.lock() {
            r.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_are_found_in_mountinfo() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/cpuset rw,relatime shared:15 - cgroup cgroup rw,cpuset
37 30 0:33 / /sys/fs/cgroup/unified rw,relatime shared:16 - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup_mount(info, false),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            cgroup_mount(info, true),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let only_cpuset =
            "36 30 0:32 / /sys/fs/cgroup/cpuset rw shared:15 - cgroup cgroup rw,cpuset\n";
        assert_eq!(cgroup_mount(only_cpuset, false), None);
    }

    #[test]
    fn cfs_counters_are_read_from_either_version() {
        let v1 = "nr_periods 200\nnr_throttled 50\nthrottled_time 2500000000\n";
        assert_eq!(parse_cpu_stat(v1), Some((200, 50, 2_500_000_000)));
        let v2 = "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 10\nnr_throttled 1\nthrottled_usec 300\n";
        assert_eq!(parse_cpu_stat(v2), Some((10, 1, 300_000)));
        assert_eq!(parse_cpu_stat("usage_usec 1\n"), None);
    }

    #[test]
    fn the_whole_machine_needs_no_wrapper() {
        let (w, c) = confine(CpuRequest::Unlimited, "unused");
        assert!(matches!(w, Wrapper::None));
        assert_eq!(c.task_scale, 1.0);
        assert!(c.cores_per_instance >= 1.0);
    }
}
