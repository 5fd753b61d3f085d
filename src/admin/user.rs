//! `suma-auth admin user …`: one account, named by its email address or id.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Serialize;
use uuid::Uuid;

use super::output::or_dash;
use super::{AdminError, Context};
use crate::security::{self, FactorLockout};
use crate::services::admin::{self, UnlockError};
use crate::storage::UserRecord;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What the account is (never a hash, a secret or a code).
    Show {
        /// Email address or user id.
        user: String,
    },
    /// Clears the password lockout and the second-factor lockout.
    Unlock { user: String },
    /// Disables sign-in and ends every session at once, on every instance.
    Disable { user: String },
    /// Lets a disabled account sign in again.
    Enable { user: String },
    /// Erases the account as DELETE /me does (without its password).
    Erase {
        user: String,
        /// Confirms: an erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    match command {
        Command::Show { user } => show(ctx, &find(ctx, &user).await?).await,
        Command::Unlock { user } => {
            let user = find(ctx, &user).await?;
            let done = admin::unlock(&ctx.admin, &ctx.operator, &user)
                .await
                .map_err(|e| match e {
                    UnlockError::Auth(e) => AdminError::failed(e),
                    e @ UnlockError::Redis(_) => AdminError::failed(e),
                })?;
            ctx.out.record(
                &done,
                &[
                    ("unlocked", user.id.to_string()),
                    ("windows cleared", done.windows.to_string()),
                    ("redis cleared", done.redis.to_string()),
                ],
            );
            Ok(())
        }
        Command::Disable { user } => {
            let user = find(ctx, &user).await?;
            let done = admin::disable(&ctx.admin, &ctx.operator, &user)
                .await
                .map_err(AdminError::failed)?;
            ctx.out.record(
                &done,
                &[
                    ("disabled", user.id.to_string()),
                    ("was active", done.was_active.to_string()),
                    ("sessions ended", done.sessions_ended.to_string()),
                ],
            );
            Ok(())
        }
        Command::Enable { user } => {
            let user = find(ctx, &user).await?;
            let changed = admin::enable(&ctx.admin, &ctx.operator, &user)
                .await
                .map_err(AdminError::failed)?;
            ctx.out.record(
                &serde_json::json!({"user_id": user.id, "was_disabled": changed}),
                &[
                    ("enabled", user.id.to_string()),
                    ("was disabled", changed.to_string()),
                ],
            );
            Ok(())
        }
        Command::Erase { user, yes } => {
            if !yes {
                return Err(AdminError::Usage(
                    "an erasure cannot be undone: add --yes".to_string(),
                ));
            }
            let user = find(ctx, &user).await?;
            let ended = admin::erase(&ctx.admin, &ctx.operator, &user)
                .await
                .map_err(AdminError::failed)?;
            ctx.out.record(
                &serde_json::json!({"user_id": user.id, "erased": true, "sessions_ended": ended}),
                &[
                    ("erased", user.id.to_string()),
                    ("sessions ended", ended.to_string()),
                ],
            );
            Ok(())
        }
    }
}

async fn find(ctx: &Context, who: &str) -> Result<UserRecord, AdminError> {
    admin::find_user(&ctx.admin, who)
        .await
        .map_err(AdminError::failed)?
        .ok_or_else(|| AdminError::NotFound(format!("no account {who:?}")))
}

/// `user show`: facts an operator needs, nothing that proves an identity.
#[derive(Debug, Serialize)]
struct Shown {
    id: Uuid,
    email: String,
    email_verified: bool,
    active: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    two_factor_methods: Vec<&'static str>,
    live_sessions: usize,
    /// The password lockout: locked until (when locked now).
    password_locked_until: Option<DateTime<Utc>>,
    /// The second-factor lockout (its window or its day): locked until.
    second_factor_locked_until: Option<DateTime<Utc>>,
}

async fn show(ctx: &Context, user: &UserRecord) -> Result<(), AdminError> {
    let svc = &ctx.svc;
    let now = svc.clock.now();
    let live = svc
        .store
        .list_sessions(user.id, now)
        .await
        .map_err(AdminError::failed)?
        .len();
    let locked_until = |key: String| async move {
        svc.store
            .load_lockout(&key)
            .await
            .map(|r| r.and_then(|r| r.locked_until).filter(|t| *t > now))
            .map_err(AdminError::failed)
    };
    let password = locked_until(security::account_key(user.email.as_str())).await?;
    let window = locked_until(FactorLockout::key(user.id)).await?;
    let day = locked_until(FactorLockout::day_key_of(user.id)).await?;
    let mut methods = Vec::new();
    if user.totp_enabled {
        methods.push("totp");
    }
    if user.email_otp_enabled {
        methods.push("email_otp");
    }
    let shown = Shown {
        id: user.id,
        email: user.email.as_str().to_string(),
        email_verified: user.email_verified,
        active: user.is_active,
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        created_at: user.created_at,
        last_login_at: user.last_login_at,
        two_factor_methods: methods,
        live_sessions: live,
        password_locked_until: password,
        second_factor_locked_until: window.max(day),
    };
    ctx.out.record(
        &shown,
        &[
            ("id", shown.id.to_string()),
            ("email", shown.email.clone()),
            ("email verified", shown.email_verified.to_string()),
            ("active", shown.active.to_string()),
            ("name", {
                let name = [shown.first_name.as_deref(), shown.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                if name.is_empty() {
                    "-".to_string()
                } else {
                    name
                }
            }),
            ("created", shown.created_at.to_rfc3339()),
            (
                "last login",
                or_dash(shown.last_login_at.map(|t| t.to_rfc3339())),
            ),
            (
                "second factors",
                if shown.two_factor_methods.is_empty() {
                    "-".to_string()
                } else {
                    shown.two_factor_methods.join(", ")
                },
            ),
            ("live sessions", shown.live_sessions.to_string()),
            (
                "password locked until",
                or_dash(shown.password_locked_until.map(|t| t.to_rfc3339())),
            ),
            (
                "second factor locked until",
                or_dash(shown.second_factor_locked_until.map(|t| t.to_rfc3339())),
            ),
        ],
    );
    Ok(())
}
