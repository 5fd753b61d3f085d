//! `suma-auth admin audit …`: the hash-chained audit trail (`docs/audit.md`).

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::output::or_dash;
use super::{AdminError, Context};
use crate::services::admin;
use crate::services::audit::AuditError;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walks the chain from its anchor to its head; exits 1 naming the first
    /// row that was edited, deleted or moved.
    Verify,
    /// The rows created in [--from, --to), in chain order (`--json` for the
    /// whole document, hashes included).
    Export {
        /// Start (RFC 3339 or YYYY-MM-DD, UTC); default: the oldest row kept.
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// End, exclusive (RFC 3339 or YYYY-MM-DD, UTC); default: now.
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
    },
}

/// RFC 3339, or a date meaning its midnight UTC.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{s}` is neither RFC 3339 nor YYYY-MM-DD"))
}

fn audit_error(e: AuditError) -> AdminError {
    match e {
        AuditError::InvalidRange => AdminError::Usage(e.to_string()),
        AuditError::Storage(e) => AdminError::failed(e),
    }
}

pub async fn run(command: Command, ctx: &Context) -> Result<(), AdminError> {
    let svc = &ctx.svc;
    match command {
        Command::Verify => {
            let report = admin::verify_audit(&ctx.admin, &ctx.operator)
                .await
                .map_err(audit_error)?;
            let mut rows = vec![
                ("rows checked", report.rows_checked.to_string()),
                ("anchor", format!("seq {}", report.anchor_seq)),
                ("head", format!("seq {}", report.head_seq)),
            ];
            match &report.broken {
                None => rows.insert(0, ("chain", "intact".to_string())),
                Some(b) => {
                    rows.insert(0, ("chain", "BROKEN".to_string()));
                    rows.push(("first broken row", format!("seq {}", b.seq)));
                    rows.push(("its id", or_dash(b.id)));
                    rows.push((
                        "reason",
                        serde_json::to_value(b.reason)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    ));
                    rows.push(("detail", b.detail.clone()));
                }
            }
            ctx.out.record(&report, &rows);
            match report.broken {
                None => Ok(()),
                Some(b) => Err(AdminError::Failed(format!(
                    "the audit chain is broken at seq {} ({})",
                    b.seq, b.detail
                ))),
            }
        }
        Command::Export { from, to } => {
            let from = from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
            let to = to.unwrap_or_else(|| svc.clock.now());
            let export = admin::export_audit(&ctx.admin, &ctx.operator, from, to)
                .await
                .map_err(audit_error)?;
            let rows: Vec<Vec<String>> = export
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        r.created_at.to_rfc3339(),
                        r.event_type.clone(),
                        r.event_status.clone(),
                        or_dash(r.user_id.as_deref()),
                    ]
                })
                .collect();
            ctx.out.table(
                &export,
                &["seq", "created", "event", "status", "user"],
                &rows,
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(
            parse_time("2026-11-30").unwrap().to_rfc3339(),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-11-30T12:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-30T11:00:00+00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
