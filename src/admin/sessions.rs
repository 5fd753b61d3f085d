//! `suma-auth admin sessions …`: ending sessions without their tokens.

use clap::{ArgGroup, Subcommand};

use super::{AdminError, Context};
use crate::services::admin;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ends the sessions of one user (--user) or of every user (--all), at
    /// once on every instance. Their refresh tokens are revoked with them
    /// (refused as invalid later, never taken for stolen ones).
    #[command(group(ArgGroup::new("whose").required(true).args(["user", "all"])))]
    Revoke {
        /// Email address or user id.
        #[arg(long)]
        user: Option<String>,
        /// Every session of every user.
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    let Command::Revoke { user, all } = command;
    let (scope, ended) = match (user, all) {
        (Some(who), false) => {
            let user = admin::find_user(&ctx.admin, &who)
                .await
                .map_err(AdminError::failed)?
                .ok_or_else(|| AdminError::NotFound(format!("no account {who:?}")))?;
            let ended = admin::revoke_sessions_of(&ctx.admin, &ctx.operator, &user)
                .await
                .map_err(AdminError::failed)?;
            (user.id.to_string(), ended)
        }
        (None, true) => {
            let ended = admin::revoke_all_sessions(&ctx.admin, &ctx.operator)
                .await
                .map_err(AdminError::failed)?;
            ("all".to_string(), ended)
        }
        _ => return Err(AdminError::Usage("give either --user or --all".to_string())),
    };
    ctx.out.record(
        &serde_json::json!({"scope": scope, "sessions_ended": ended}),
        &[
            ("scope", scope.clone()),
            ("sessions ended", ended.to_string()),
        ],
    );
    Ok(())
}
