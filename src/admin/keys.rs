//! `suma-auth admin keys …`: the keys that verify access tokens, as the
//! server would load them from this configuration (public facts only), and
//! the adoption of a new data encryption key.

use clap::Subcommand;

use super::{AdminError, Context};
use crate::auth::seal::{short_fingerprint, DATA_KEY_PURPOSE};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every key the JWKS serves: kid, algorithm, whether it signs.
    List,
    /// Records this configuration's DATA_ENCRYPTION_KEY as the database's,
    /// so that instances configured with it start (they refuse a configured
    /// key other than the one recorded). What the old key sealed stays
    /// unreadable: TOTP secrets and recovery codes must be enrolled again,
    /// queued mail is lost.
    AdoptDataKey,
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    match command {
        Command::List => list(ctx),
        Command::AdoptDataKey => adopt_data_key(ctx).await,
    }
}

async fn adopt_data_key(ctx: &Context) -> Result<(), AdminError> {
    let ours = ctx.svc.mailer.sealer().fingerprint();
    ctx.svc
        .store
        .replace_key_fingerprint(DATA_KEY_PURPOSE, &ours)
        .await
        .map_err(AdminError::failed)?;
    let short = short_fingerprint(&ours);
    ctx.out.table(
        &serde_json::json!({"purpose": DATA_KEY_PURPOSE, "fingerprint": short}),
        &["purpose", "fingerprint"],
        &[vec![DATA_KEY_PURPOSE.to_string(), short]],
    );
    Ok(())
}

fn list(ctx: &Context) -> Result<(), AdminError> {
    let keys = ctx.svc.jwt.keys();
    // PEM keys carry no validity period, so there is no not-after to show.
    let json: Vec<_> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "kid": k.kid,
                "algorithm": k.algorithm,
                "active": k.signing,
            })
        })
        .collect();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.kid.clone(),
                k.algorithm.to_string(),
                if k.signing { "signing" } else { "verify only" }.to_string(),
            ]
        })
        .collect();
    ctx.out.table(&json, &["kid", "algorithm", "active"], &rows);
    Ok(())
}
