//! `suma-auth admin outbox …`: the durable mail queue.

use clap::Subcommand;
use serde::Serialize;

use super::{AdminError, Context};
use crate::services::admin;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mail waiting and dead, and the age of the oldest waiting mail.
    Status,
    /// Queues dead mail again (due at once, its attempts counted afresh).
    RetryDead,
}

#[derive(Debug, Serialize)]
struct Status {
    pending: u64,
    dead: u64,
    oldest_pending_secs: f64,
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    let svc = &ctx.svc;
    match command {
        Command::Status => {
            let stats = svc
                .store
                .outbox_stats(svc.clock.now())
                .await
                .map_err(AdminError::failed)?;
            let status = Status {
                pending: stats.pending,
                dead: stats.dead,
                oldest_pending_secs: stats.oldest_pending_secs,
            };
            ctx.out.table(
                &status,
                &["pending", "dead", "oldest pending"],
                &[vec![
                    status.pending.to_string(),
                    status.dead.to_string(),
                    format!("{:.0} s", status.oldest_pending_secs),
                ]],
            );
        }
        Command::RetryDead => {
            let moved = admin::retry_dead_mail(&ctx.admin, &ctx.operator)
                .await
                .map_err(AdminError::failed)?;
            ctx.out.record(
                &serde_json::json!({"moved": moved}),
                &[("dead mail queued again", moved.to_string())],
            );
        }
    }
    Ok(())
}
