//! `suma-auth admin`: operator commands. They read the server's configuration
//! (the same environment), build the store, Redis and the services the
//! server would, without HTTP, act through the same use cases as the API
//! (`services::admin`) and write an audit row `admin_*` for every action.
//!
//! A group of commands is one file here with a `Command` enum (its clap
//! subcommands) and `run(command, &Context)`, named once in [`groups!`].
//!
//! Output: a short human table by default, JSON with `--json`. Exit codes:
//! 0 done, 1 not found or failed, 2 bad usage (clap's own, and configuration
//! errors).

mod audit;
mod keys;
mod outbox;
mod output;
mod sessions;
mod user;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::app::{build_parts, Options};
use crate::config::Config;
use crate::services::admin::{Admin, Operator};
use crate::services::erasure::Eraser;
use crate::services::Parts;
pub use output::Output;

/// `suma-auth admin [--json] <group> <command>`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub group: Group,
}

/// What a command acts with: the operator area, and the parts it was made
/// of for what only reads (the outbox state, the keys, a user's sessions).
pub struct Context {
    pub admin: Admin,
    pub svc: Parts,
    pub operator: Operator,
    pub out: Output,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Usage(String),
}

impl AdminError {
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Failed(_) => "failed",
            Self::Usage(_) => "usage",
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Declares the groups: each `Variant => module` becomes a subcommand
/// (documented by its doc comment) dispatched to `module::run`.
macro_rules! groups {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)*) => {
        #[derive(Debug, Subcommand)]
        pub enum Group {
            $($(#[$doc])* $variant {
                #[command(subcommand)]
                command: $module::Command,
            },)*
        }

        impl Group {
            async fn run(self, ctx: &Context) -> Result<(), AdminError> {
                match self {
                    $(Group::$variant { command } => $module::run(command, ctx).await,)*
                }
            }
        }
    };
}

groups! {
    /// Accounts: show, unlock, disable, enable, erase.
    User => user,
    /// Sessions: end those of one user, or of everyone.
    Sessions => sessions,
    /// The mail outbox: its state, and dead mail queued again.
    Outbox => outbox,
    /// Keys: what verifies tokens now (public facts only); adopting a new data key.
    Keys => keys,
    /// The audit trail: verify its hash chain, export a time range.
    Audit => audit,
}

/// Runs one admin command; the exit code says how it went.
pub async fn run(config: Config, args: AdminArgs) -> ExitCode {
    let out = Output { json: args.json };
    let adopting = matches!(
        args.group,
        Group::Keys {
            command: keys::Command::AdoptDataKey
        }
    );
    let options = Options {
        beside_server: true,
        any_data_key: adopting,
        ..Options::default()
    };
    let svc = match build_parts(config, options).await {
        Ok(svc) => svc,
        Err(e) => {
            out.error("failed", &format!("cannot reach what the server uses: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The actors the services start (a few shards per core) run their
    // `started` when the runtime first polls them, a bounded number per turn;
    // they must all have run before the runtime ends (an actor first polled
    // while it shuts down cannot set its timers). Each yield is one turn.
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    let ctx = Context {
        admin: Admin::new(&svc, Eraser::new(&svc)),
        svc,
        operator: Operator { os_user: os_user() },
        out,
    };
    let result = args.group.run(&ctx).await;
    // Every audit row was awaited; the writer ends before the runtime does.
    ctx.svc.audit_writer.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ctx.out.error(e.code(), &e.to_string());
            e.exit_code()
        }
    }
}

/// The account that runs the command: its name where the system knows it,
/// and its uid.
fn os_user() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let mut buf: Vec<libc::c_char> = vec![0; 4096];
        // SAFETY: passwd is a plain C struct; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is its size.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
            // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
            let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
            return format!("{} (uid {uid})", name.to_string_lossy());
        }
        format!("uid {uid}")
    }
    #[cfg(not(unix))]
    {
        "unknown".to_string()
    }
}
