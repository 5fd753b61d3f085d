//! `suma-auth admin keys …`: the keys that verify access tokens, as the
//! server would load them from this configuration (public facts only).

use clap::Subcommand;

use super::{AdminError, Context};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every key the JWKS serves: kid, algorithm, whether it signs.
    List,
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    let Command::List = command;
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
