//! The `suma-auth` command line: `serve` (the default), `migrate`, `keys`,
//! `admin` (operator commands, `suma_auth::admin`), `health` (for container
//! health checks), and `env`, `metrics`, `openapi` (what the server reads and
//! emits, for operators and consistency tests).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use suma_auth::config::{Config, DatabaseConfig};
use suma_auth::storage::postgres::{migrate, PgStore};
use suma_auth::{telemetry, Application};

#[derive(Parser)]
#[command(
    name = "suma-auth",
    version = suma_auth::config::LONG_VERSION,
    about = "User registration and authentication service of SUMA Finance"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Database migrations (PostgreSQL; the embedded database migrates itself).
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Exit 0 when the local server answers 200 on /ready (container health checks).
    Health {
        /// The readiness URL (default: http://127.0.0.1:$PORT/ready).
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Every environment variable the server reads, with defaults.
    Env {
        #[arg(long)]
        json: bool,
    },
    /// The metric catalogue: every metric the server emits, with its tags.
    Metrics {
        #[arg(long)]
        json: bool,
    },
    /// Print the OpenAPI document (the same as GET /openapi.json).
    Openapi,
    /// Operator commands: accounts, sessions, the mail outbox, keys.
    Admin(suma_auth::admin::AdminArgs),
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration (the default).
    Apply,
    /// Show the current version and what is pending.
    Status,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write a new RSA-2048 PEM pair and print its kid.
    Generate {
        /// Directory to write into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// File name prefix: <prefix>-private.pem / <prefix>-public.pem.
        #[arg(long, default_value = "jwt")]
        prefix: String,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if let Some(Command::Keys {
        action: KeysAction::Generate { out, prefix },
    }) = &cli.command
    {
        return match suma_auth::auth::keys::write_pair(out, prefix) {
            Ok((private, public, kid)) => {
                println!(
                    "private key: {}\npublic key:  {}\nkid:         {kid}",
                    private.display(),
                    public.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keys generate: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Some(Command::Health { url, timeout }) => return health(url.clone(), *timeout),
        Some(Command::Env { json }) => return print_env(*json),
        Some(Command::Metrics { json }) => return print_metrics(*json),
        Some(Command::Openapi) => {
            return match serde_json::to_string_pretty(&suma_auth::http::openapi::document()) {
                Ok(doc) => {
                    println!("{doc}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("openapi: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config);
    let command = match cli.command {
        Some(Command::Admin(args)) => {
            return actix_web::rt::System::new().block_on(suma_auth::admin::run(config, args));
        }
        other => other,
    };
    let result = actix_web::rt::System::new().block_on(async move {
        match command {
            None | Some(Command::Serve) => serve(config).await,
            Some(Command::Migrate { action }) => {
                migrate_cmd(config, action.unwrap_or(MigrateAction::Apply)).await
            }
            Some(
                Command::Keys { .. }
                | Command::Health { .. }
                | Command::Env { .. }
                | Command::Metrics { .. }
                | Command::Openapi
                | Command::Admin(_),
            ) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("suma-auth: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    let (database, _serving) = match &config.database {
        DatabaseConfig::Sqlite { path } => (
            format!("sqlite {}", path.display()),
            Some(suma_auth::storage::sqlite::serving::claim(path)?),
        ),
        DatabaseConfig::Postgres { .. } => ("postgres".to_string(), None),
    };
    let app = Application::build(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mail = app.parts().mailer.describe();
    tracing::info!(
        listen = %format!("http://{}:{}", config.host, app.port()),
        database = %database,
        data_dir = %config.data_dir.display(),
        mail = %mail,
        redis = config.redis.is_some(),
        environment = config.environment.as_str(),
        ready_ms = started.elapsed().as_millis() as u64,
        "suma-auth ready"
    );
    suma_auth::telemetry::banner::print(&config, app.port());
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn migrate_cmd(config: Config, action: MigrateAction) -> Result<(), String> {
    let DatabaseConfig::Postgres { url, tls, .. } = &config.database else {
        println!("the embedded database migrates itself when the server starts; nothing to do");
        return Ok(());
    };
    let store = PgStore::connect_for_tool(url, tls, 2, std::time::Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    match action {
        MigrateAction::Apply => {
            let applied = store.migrate().await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("up to date at version {}", migrate::latest());
            } else {
                println!("applied: {applied:?}");
            }
        }
        MigrateAction::Status => {
            let status = store.migration_status().await.map_err(|e| e.to_string())?;
            println!(
                "current version: {}{}",
                status
                    .current
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into()),
                if status.dirty { " (dirty)" } else { "" }
            );
            if status.pending.is_empty() {
                println!("pending: none");
            }
            for (version, name) in status.pending {
                println!("pending: {version} {name}");
            }
        }
    }
    Ok(())
}

/// `suma-auth health`: GET /ready on the local server with a plain HTTP/1.1
/// request, so that images need neither curl nor a shell. Reads only `PORT`.
fn health(url: Option<String>, timeout: u64) -> ExitCode {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/ready", port.trim()));
    match suma_auth::http::probe::get_status(&url, std::time::Duration::from_secs(timeout)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("health: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("health: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_env(json: bool) -> ExitCode {
    let vars = suma_auth::config::ENV_VARS;
    if json {
        return print_json(&vars);
    }
    println!(
        "{:<34} {:<24} {:<10} description",
        "variable", "default", "production"
    );
    for v in vars {
        let production = match (v.required_in_production, v.alternatives.is_empty()) {
            (false, _) => "",
            (true, true) => "required",
            (true, false) => "one of",
        };
        let name = if v.secret {
            format!("{} (secret)", v.name)
        } else {
            v.name.to_string()
        };
        println!(
            "{:<34} {:<24} {:<10} {}",
            name,
            v.default.unwrap_or("-"),
            production,
            v.description
        );
    }
    ExitCode::SUCCESS
}

fn print_metrics(json: bool) -> ExitCode {
    let catalogue = suma_auth::telemetry::metrics::CATALOGUE;
    if json {
        return print_json(&catalogue);
    }
    println!("every metric carries the tags env, service, version");
    for m in catalogue {
        println!(
            "{:<34} {:<13} [{}] {}",
            m.name,
            m.kind.as_str(),
            m.tags.join(", "),
            m.description
        );
    }
    ExitCode::SUCCESS
}

fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> ExitCode {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Allocations of a mebibyte or more (the hashing threads' Argon2 buffers)
/// are mapped and unmapped, not kept in glibc's arenas, whose dynamic mmap
/// threshold would otherwise keep freed buffers resident for ever.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
