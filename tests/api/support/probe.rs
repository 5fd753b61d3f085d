//! Reads tests make straight from an app's database: audit rows and consent
//! rows, which the server itself never reads back. Kept here so that the
//! production store carries no test-only methods.

use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use secrecy::ExposeSecret;
use suma_auth::config::DatabaseConfig;
use uuid::Uuid;

/// An audit row as stored.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct AuditRecord {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub event_type: String,
    pub event_status: String,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A consent row as stored.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct ConsentRecord {
    pub consent_type: String,
    pub consent_version: String,
    pub consented: bool,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Where an app keeps its records.
#[derive(Debug, Clone)]
pub enum Probe {
    Postgres(String),
    Sqlite(PathBuf),
}

const AUDIT: &str = "SELECT id, user_id, event_type, event_status, ip_address, user_agent, \
     metadata, created_at FROM audit_logs WHERE user_id = $1 ORDER BY created_at DESC";
const CONSENTS: &str = "SELECT consent_type, consent_version, consented, ip_address, user_agent, \
     created_at FROM consent_records WHERE user_id = $1 ORDER BY created_at DESC, consent_type";
const COUNT: &str = "SELECT COUNT(*) FROM audit_logs WHERE event_type = $1 AND event_status = $2";

fn ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap()
}

impl Probe {
    pub fn of(database: &DatabaseConfig) -> Self {
        match database {
            DatabaseConfig::Postgres { url, .. } => {
                Probe::Postgres(url.expose_secret().to_string())
            }
            DatabaseConfig::Sqlite { path } => Probe::Sqlite(path.clone()),
        }
    }

    async fn pg(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to the app's database");
        tokio::spawn(conn);
        client
    }

    fn sqlite(path: &PathBuf) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the app's database file")
    }

    /// The verification links of an address, as text (a failing test names
    /// what the database held): each link's token hash prefix and whether it
    /// was used or expired, plus the account's verified flag.
    pub async fn verification_state(&self, email: &str) -> String {
        const LINKS: &str = "SELECT substr(t.token_hash, 1, 12), t.verified_at IS NOT NULL, \
             u.email_verified, u.deleted_at IS NOT NULL \
             FROM email_verification_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = $1";
        match self {
            Probe::Postgres(url) => match Self::pg(url).await.query(LINKS, &[&email]).await {
                Ok(rows) => format!(
                    "{:?}",
                    rows.iter()
                        .map(|r| (
                            r.get::<_, String>(0),
                            r.get::<_, bool>(1),
                            r.get::<_, bool>(2),
                            r.get::<_, bool>(3)
                        ))
                        .collect::<Vec<_>>()
                ),
                Err(e) => e.to_string(),
            },
            Probe::Sqlite(path) => {
                let conn = Self::sqlite(path);
                let rows = conn.prepare(&LINKS.replace('$', "?")).and_then(|mut st| {
                    st.query_map([email], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, bool>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, bool>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                });
                match rows {
                    Ok(rows) => format!("{rows:?}"),
                    Err(e) => e.to_string(),
                }
            }
        }
    }

    /// Audit rows of an event type and status.
    pub async fn count_audit(&self, event_type: &str, status: &str) -> Result<u64, String> {
        Ok(match self {
            Probe::Postgres(url) => {
                let row = Self::pg(url)
                    .await
                    .query_one(COUNT, &[&event_type, &status])
                    .await
                    .map_err(|e| e.to_string())?;
                row.get::<_, i64>(0) as u64
            }
            Probe::Sqlite(path) => Self::sqlite(path)
                .query_row(&COUNT.replace('$', "?"), [event_type, status], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| e.to_string())? as u64,
        })
    }

    /// Audit rows of a user, newest first.
    pub async fn audit_for_user(
        &self,
        user_id: Uuid,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, String> {
        let mut rows = match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query(AUDIT, &[&user_id])
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| AuditRecord {
                    id: r.get(0),
                    user_id: r.get(1),
                    event_type: r.get(2),
                    event_status: r.get(3),
                    ip_address: r.get(4),
                    user_agent: r.get(5),
                    metadata: r.get::<_, Option<serde_json::Value>>(6).unwrap_or_default(),
                    created_at: r.get(7),
                })
                .collect(),
            Probe::Sqlite(path) => {
                let c = Self::sqlite(path);
                let sql = format!("{}, rowid DESC", AUDIT.replace('$', "?"));
                let mut stmt = c.prepare(&sql).map_err(|e| e.to_string())?;
                let rows = stmt
                    .query_map([user_id.to_string()], |r| {
                        Ok(AuditRecord {
                            id: r.get::<_, String>(0)?.parse().unwrap(),
                            user_id: r.get::<_, Option<String>>(1)?.map(|u| u.parse().unwrap()),
                            event_type: r.get(2)?,
                            event_status: r.get(3)?,
                            ip_address: r.get::<_, Option<String>>(4)?.and_then(|i| i.parse().ok()),
                            user_agent: r.get(5)?,
                            metadata: r
                                .get::<_, Option<String>>(6)?
                                .and_then(|m| serde_json::from_str(&m).ok())
                                .unwrap_or_default(),
                            created_at: ms(r.get(7)?),
                        })
                    })
                    .map_err(|e| e.to_string())?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?
            }
        };
        rows.truncate(limit);
        Ok(rows)
    }

    /// Consent rows of a user, newest first.
    pub async fn consents_for_user(&self, user_id: Uuid) -> Result<Vec<ConsentRecord>, String> {
        Ok(match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query(CONSENTS, &[&user_id])
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| ConsentRecord {
                    consent_type: r.get(0),
                    consent_version: r.get(1),
                    consented: r.get(2),
                    ip_address: r.get(3),
                    user_agent: r.get(4),
                    created_at: r.get(5),
                })
                .collect(),
            Probe::Sqlite(path) => {
                let c = Self::sqlite(path);
                let mut stmt = c
                    .prepare(&CONSENTS.replace('$', "?"))
                    .map_err(|e| e.to_string())?;
                let rows = stmt
                    .query_map([user_id.to_string()], |r| {
                        Ok(ConsentRecord {
                            consent_type: r.get(0)?,
                            consent_version: r.get(1)?,
                            consented: r.get(2)?,
                            ip_address: r.get::<_, Option<String>>(3)?.and_then(|i| i.parse().ok()),
                            user_agent: r.get(4)?,
                            created_at: ms(r.get(5)?),
                        })
                    })
                    .map_err(|e| e.to_string())?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?
            }
        })
    }
}

impl Probe {
    /// Every `table.column` of every table whose value, as text, contains
    /// `needle` (case-insensitive): the tables and columns are listed from the
    /// database's own catalogue (information_schema; sqlite_master and
    /// table_info), so a table or column added later is searched too.
    pub async fn find_everywhere(&self, needle: &str) -> Vec<String> {
        let mut hits = Vec::new();
        match self {
            Probe::Postgres(url) => {
                let c = Self::pg(url).await;
                let columns = c
                    .query(
                        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
                         JOIN information_schema.tables t
                           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
                         ORDER BY 1, 2",
                        &[],
                    )
                    .await
                    .unwrap();
                assert!(columns.len() > 50, "the catalogue lists the columns");
                for row in columns {
                    let (table, column): (String, String) = (row.get(0), row.get(1));
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE strpos(lower(\"{column}\"::text), lower($1)) > 0"
                    );
                    let n: i64 = c.query_one(&sql, &[&needle]).await.unwrap().get(0);
                    if n > 0 {
                        hits.push(format!("{table}.{column}"));
                    }
                }
            }
            Probe::Sqlite(path) => {
                let c = Self::sqlite(path);
                let tables: Vec<String> = {
                    let mut stmt = c
                        .prepare(
                            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                        )
                        .unwrap();
                    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
                    rows.collect::<Result<_, _>>().unwrap()
                };
                let mut searched = 0;
                for table in tables {
                    let columns: Vec<String> = {
                        let mut stmt = c
                            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                            .unwrap();
                        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
                        rows.collect::<Result<_, _>>().unwrap()
                    };
                    for column in columns {
                        searched += 1;
                        let sql = format!(
                            "SELECT COUNT(*) FROM \"{table}\" WHERE instr(lower(CAST(\"{column}\" AS TEXT)), lower(?1)) > 0"
                        );
                        let n: i64 = c.query_row(&sql, [needle], |r| r.get(0)).unwrap();
                        if n > 0 {
                            hits.push(format!("{table}.{column}"));
                        }
                    }
                }
                assert!(searched > 50, "the catalogue lists the columns");
            }
        }
        hits
    }

    /// (template, status) of the outbox rows carrying a recipient tag.
    pub async fn mail_tagged(&self, tag: &str) -> Vec<(String, String)> {
        const SQL: &str =
            "SELECT template, status FROM mail_outbox WHERE recipient_tag = $1 ORDER BY created_at";
        match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query(SQL, &[&tag])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Probe::Sqlite(path) => {
                let c = Self::sqlite(path);
                let mut stmt = c.prepare(&SQL.replace('$', "?")).unwrap();
                let rows = stmt
                    .query_map([tag], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap();
                rows.collect::<Result<_, _>>().unwrap()
            }
        }
    }

    /// Outbox rows claimed (leased) and not yet delivered.
    pub async fn mail_claimed(&self) -> i64 {
        const SQL: &str =
            "SELECT COUNT(*) FROM mail_outbox WHERE status = 'pending' AND leased_until IS NOT NULL";
        match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query_one(SQL, &[])
                .await
                .unwrap()
                .get(0),
            Probe::Sqlite(path) => Self::sqlite(path).query_row(SQL, [], |r| r.get(0)).unwrap(),
        }
    }

    /// Rows of `table` whose `column` is `id` (a user id).
    pub async fn count_of(&self, table: &str, column: &str, id: Uuid) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
        match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query_one(&sql, &[&id])
                .await
                .unwrap()
                .get(0),
            Probe::Sqlite(path) => Self::sqlite(path)
                .query_row(&sql.replace('$', "?"), [id.to_string()], |r| r.get(0))
                .unwrap(),
        }
    }

    /// Ends a session on its row alone, its refresh tokens untouched (as an
    /// end for idleness does).
    pub async fn end_session_row(&self, id: Uuid) {
        match self {
            Probe::Postgres(url) => {
                Self::pg(url)
                    .await
                    .execute(
                        "UPDATE sessions SET invalidated_at = now() WHERE id = $1",
                        &[&id],
                    )
                    .await
                    .unwrap();
            }
            Probe::Sqlite(path) => {
                let now = chrono::Utc::now().timestamp_millis();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                conn.execute(
                    "UPDATE sessions SET invalidated_at = ?2 WHERE id = ?1",
                    rusqlite::params![id.to_string(), now],
                )
                .unwrap();
            }
        }
    }

    /// (email, password hash, sealed TOTP secret, deleted) of a user row, live or erased.
    pub async fn user_row(&self, id: Uuid) -> Option<(String, String, Option<String>, bool)> {
        const SQL: &str = "SELECT email, password_hash, totp_secret_sealed, deleted_at IS NOT NULL FROM users WHERE id = $1";
        match self {
            Probe::Postgres(url) => Self::pg(url)
                .await
                .query_opt(SQL, &[&id])
                .await
                .unwrap()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))),
            Probe::Sqlite(path) => {
                use rusqlite::OptionalExtension;
                Self::sqlite(path)
                    .query_row(&SQL.replace('$', "?"), [id.to_string()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                    .unwrap()
            }
        }
    }
}
