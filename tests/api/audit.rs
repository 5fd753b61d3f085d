//! The audit trail's hash chain (`docs/audit.md`): verification names the
//! first row that was edited, deleted or moved; erasure and the retention
//! prune leave a valid chain; the database refuses edits and deletes; appends
//! from several instances never fork; `GET /me/audit` shows a user their own
//! events only.

use std::time::Duration;

use serde_json::{json, Value};
use suma_auth::jobs::sweep::sweep_once;
use suma_auth::services::audit::{verify_chain, BreakReason, ChainReport};
use suma_auth::storage::{AuditEvent, ChainRow};

use crate::on_both_backends;
use crate::support::probe::Probe;
use crate::support::{Backend, TestApp, TestDatabase, TestFleet, TestSetup, TokenPair, PASSWORD};

async fn verify(app: &TestApp) -> ChainReport {
    verify_chain(&*app.services.store).await.unwrap()
}

pub(crate) async fn chain(app: &TestApp) -> Vec<ChainRow> {
    app.services
        .store
        .audit_chain_rows(suma_auth::storage::Page::new(-1, 10_000), i64::MAX)
        .await
        .unwrap()
}

/// Runs SQL straight on the app's database, as an operator with full rights
/// would. With `bypass`, the append-only triggers do not fire (PostgreSQL:
/// `session_replication_role = replica` as superuser; SQLite: the triggers
/// are dropped and recreated around the statements).
pub(crate) async fn raw(app: &TestApp, sql: &str, bypass: bool) -> Result<(), String> {
    match app.probe() {
        Probe::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let sql = if bypass {
                format!("SET session_replication_role = replica; {sql}")
            } else {
                sql.to_string()
            };
            client.batch_execute(&sql).await.map_err(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            })
        }
        Probe::Sqlite(path) => {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            let sql = if bypass {
                let triggers: Vec<(String, String)> = c
                    .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_logs'")
                    .unwrap()
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(triggers.len(), 2, "the embedded database has its triggers");
                let drop: String = triggers
                    .iter()
                    .map(|(name, _)| format!("DROP TRIGGER {name};"))
                    .collect();
                let create: String = triggers.iter().map(|(_, s)| format!("{s};")).collect();
                format!("BEGIN; {drop} {sql}; {create} COMMIT;")
            } else {
                sql.to_string()
            };
            c.execute_batch(&sql).map_err(|e| e.to_string())
        }
    }
}

/// A user with a few audited actions: registration, verification, sign-in,
/// a failed sign-in, a second sign-in.
pub(crate) async fn busy_user(app: &TestApp) -> (String, TokenPair) {
    let (email, pair) = app.signed_in().await;
    assert_eq!(
        app.login(&email, "not the password at all").await.status,
        401
    );
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    (email, pair)
}

fn assert_ok(report: &ChainReport) {
    assert!(report.ok, "{report:?}");
    assert!(report.broken.is_none(), "{report:?}");
}

on_both_backends!(
    an_edited_row_is_named_and_the_first_one_wins,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        busy_user(&app).await;
        let rows = chain(&app).await;
        assert!(rows.len() >= 8, "{}", rows.len());
        let report = verify(&app).await;
        assert_ok(&report);
        assert_eq!(report.rows_checked, rows.len() as u64);
        assert_eq!(report.head_seq, rows.last().unwrap().seq);

        // An edited event type: that row, by seq and id.
        let late = &rows[rows.len() - 2];
        raw(
            &app,
            &format!(
                "UPDATE audit_logs SET event_type = 'logout' WHERE seq = {}",
                late.seq
            ),
            true,
        )
        .await
        .unwrap();
        let report = verify(&app).await;
        assert!(!report.ok);
        let broken = report.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.id, broken.reason),
            (late.seq, Some(late.id), BreakReason::RowHashMismatch)
        );

        // An edited address on an earlier row is now the first broken row.
        let early = rows.iter().find(|r| r.ip_address.is_some()).unwrap();
        assert!(early.seq < late.seq);
        raw(
            &app,
            &format!(
                "UPDATE audit_logs SET ip_address = '203.0.113.9' WHERE seq = {}",
                early.seq
            ),
            true,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.id, broken.reason),
            (early.seq, Some(early.id), BreakReason::ClientMismatch)
        );

        // Edited metadata on the first row.
        let first = &rows[0];
        raw(
            &app,
            &format!(
                "UPDATE audit_logs SET metadata = '{{\"forged\": true}}' WHERE seq = {}",
                first.seq
            ),
            true,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (first.seq, BreakReason::RowHashMismatch)
        );
    }
);

on_both_backends!(
    a_deleted_or_moved_row_is_named,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        let rows = chain(&app).await;
        let middle = &rows[rows.len() / 2];
        raw(
            &app,
            &format!("DELETE FROM audit_logs WHERE seq = {}", middle.seq),
            true,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        let after = &rows[rows.len() / 2 + 1];
        assert_eq!(
            (broken.seq, broken.id, broken.reason),
            (after.seq, Some(after.id), BreakReason::MissingRows)
        );

        // Deleting the last row: the head names a row that is gone.
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        let rows = chain(&app).await;
        let last = rows.last().unwrap();
        raw(
            &app,
            &format!("DELETE FROM audit_logs WHERE seq = {}", last.seq),
            true,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (last.seq, BreakReason::MissingTail)
        );

        // Two rows swapped: the first of them.
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        let rows = chain(&app).await;
        let (a, b) = (rows[2].seq, rows[3].seq);
        raw(
            &app,
            &format!(
                "UPDATE audit_logs SET seq = -1 WHERE seq = {a}; \
                 UPDATE audit_logs SET seq = {a} WHERE seq = {b}; \
                 UPDATE audit_logs SET seq = {b} WHERE seq = -1"
            ),
            true,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(broken.seq, a, "{broken:?}");
        assert_eq!(broken.id, Some(rows[3].id));
    }
);

on_both_backends!(
    the_database_refuses_edits_and_deletes,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        let rows = chain(&app).await;
        let row = rows.iter().find(|r| r.ip_address.is_some()).unwrap();
        let seq = row.seq;
        for sql in [
            format!("UPDATE audit_logs SET event_type = 'logout' WHERE seq = {seq}"),
            format!(
                "UPDATE audit_logs SET created_at = created_at + {} WHERE seq = {seq}",
                if backend == Backend::Postgres {
                    "interval '1 second'"
                } else {
                    "1"
                }
            ),
            format!("UPDATE audit_logs SET ip_address = '203.0.113.9' WHERE seq = {seq}"),
            // Clearing the address alone would leave its digest unverifiable.
            format!("UPDATE audit_logs SET ip_address = NULL WHERE seq = {seq}"),
            format!("DELETE FROM audit_logs WHERE seq = {seq}"),
            "DELETE FROM audit_logs".to_string(),
        ] {
            let refused = raw(&app, &sql, false).await;
            assert!(refused.is_err(), "{sql} was allowed");
        }
        if backend == Backend::Postgres {
            assert!(raw(&app, "TRUNCATE audit_logs", false).await.is_err());
        }
        assert_eq!(chain(&app).await.len(), rows.len());
        assert_ok(&verify(&app).await);

        // What erasure does is allowed, and the chain stays valid.
        raw(
            &app,
            &format!(
                "UPDATE audit_logs SET ip_address = NULL, user_agent = NULL, client_salt = NULL \
                 WHERE seq = {seq}"
            ),
            false,
        )
        .await
        .unwrap();
        assert_ok(&verify(&app).await);
    }
);

on_both_backends!(
    erasure_keeps_the_chain_valid,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, pair) = busy_user(&app).await;
        let id = app.user_id(&email).await;
        busy_user(&app).await;
        assert_eq!(
            app.with_token(
                "DELETE",
                "/api/v1/auth/me",
                &pair.access_token,
                Some(json!({"password": PASSWORD}))
            )
            .await
            .status,
            204
        );
        let report = verify(&app).await;
        assert_ok(&report);
        let theirs: Vec<ChainRow> = chain(&app)
            .await
            .into_iter()
            .filter(|r| r.user_id.as_deref() == Some(id.to_string().as_str()))
            .collect();
        assert!(theirs.len() >= 5);
        assert!(theirs.iter().any(|r| r.event_type == "account_erased"));
        for r in &theirs {
            assert!(r.ip_address.is_none() && r.user_agent.is_none() && r.client_salt.is_none());
        }
        // Others keep theirs.
        assert!(chain(&app).await.iter().any(|r| r.ip_address.is_some()));
    }
);

on_both_backends!(
    the_retention_prune_records_its_anchor,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        let old = chain(&app).await;
        // Three years on, newer events; two years and three days later the
        // older ones are past five years, the newer ones not.
        app.services
            .clock
            .advance(Duration::from_secs(3 * 365 * 24 * 3600));
        busy_user(&app).await;
        let newer: Vec<ChainRow> = chain(&app).await.split_off(old.len());
        app.services
            .clock
            .advance(Duration::from_secs((2 * 365 + 3) * 24 * 3600));
        assert!(sweep_once(&app.services).await >= old.len() as u64);

        let rows = chain(&app).await;
        let report = verify(&app).await;
        assert_ok(&report);
        let last_old = old.last().unwrap();
        assert_eq!(report.anchor_seq, last_old.seq);
        assert_eq!(Some(&report.anchor_hash), last_old.row_hash.as_ref());
        assert_eq!(rows.first().unwrap().seq, newer[0].seq);
        assert_eq!(rows.len(), newer.len() + 1);
        let prune = rows.last().unwrap();
        assert_eq!(prune.event_type, "audit_pruned");
        assert_eq!(prune.metadata["anchor_seq"], json!(last_old.seq));
        assert_eq!(prune.metadata["rows"], json!(old.len()));

        // Rows above the anchor still cannot be deleted.
        assert!(raw(
            &app,
            &format!("DELETE FROM audit_logs WHERE seq = {}", newer[0].seq),
            false
        )
        .await
        .is_err());

        // More events, another sweep that prunes nothing: still valid.
        busy_user(&app).await;
        sweep_once(&app.services).await;
        assert_ok(&verify(&app).await);

        // Moving the anchor over the next rows (to hide their deletion) is
        // caught by the prune row that recorded the real one.
        let hidden = &newer[1];
        raw(
            &app,
            &format!(
                "UPDATE audit_chain SET anchor_seq = {}, anchor_hash = '{}'; \
                 DELETE FROM audit_logs WHERE seq <= {};",
                hidden.seq,
                hidden.row_hash.as_ref().unwrap(),
                hidden.seq
            ),
            false,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.id, broken.reason),
            (prune.seq, Some(prune.id), BreakReason::AnchorMismatch)
        );
        // A changed anchor hash: the first row after it no longer follows it.
        raw(
            &app,
            &format!("UPDATE audit_chain SET anchor_hash = '{}'", "1".repeat(64)),
            false,
        )
        .await
        .unwrap();
        let broken = verify(&app).await.broken.unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (hidden.seq + 1, BreakReason::AnchorMismatch)
        );
    }
);

fn revoked(services: &suma_auth::services::Parts, user: uuid::Uuid, n: usize) -> AuditEvent {
    AuditEvent {
        user_id: Some(user),
        event_type: "session_revoked",
        success: n % 2 == 0,
        client: suma_auth::domain::ClientContext {
            ip: Some("198.51.100.7".parse().unwrap()),
            user_agent: Some("concurrency test".to_string()),
        },
        metadata: json!({"n": n}),
        at: services.clock.now(),
    }
}

/// Many audited actions at once on three instances sharing one PostgreSQL
/// database: every row is written, each with its own seq, in one chain, and
/// rows queued together on an instance share a transaction and a statement.
#[actix_web::test]
async fn concurrent_appends_on_three_instances_never_fork() {
    let apps = TestFleet::spawn(3).await;
    let (email, _) = apps[0].signed_in().await;
    let id = apps[0].user_id(&email).await;
    let before = chain(&apps[0]).await.len();
    // Fifty appends per instance, all in flight at once: 150 against one
    // chain, more than the pools' connections.
    const EACH: usize = 50;
    let appends = apps.iter().flat_map(|app| {
        (0..EACH).map(move |n| {
            let services = app.services.clone();
            async move {
                services
                    .audit_writer
                    .append(revoked(&services, id, n))
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
        })
    });
    // Sign-ins on every instance at the same time.
    let logins = apps.iter().map(|app| app.login(&email, PASSWORD));
    let started = std::time::Instant::now();
    let (results, statuses) = futures_util::future::join(
        futures_util::future::join_all(appends),
        futures_util::future::join_all(logins),
    )
    .await;
    eprintln!(
        "{} concurrent appends and 3 sign-ins: {:?}",
        3 * EACH,
        started.elapsed()
    );
    assert!(statuses.iter().all(|r| r.status == 200));
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    const ALL: usize = 3 * EACH;

    let rows = chain(&apps[0]).await;
    assert!(
        rows.len() > before + ALL,
        "{} rows, {before} before",
        rows.len()
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.event_type == "session_revoked")
            .count(),
        ALL,
        "every append was written"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.event_type == "login" && r.event_status == "success")
            .count(),
        4
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
    }
    let report = verify(&apps[1]).await;
    assert_ok(&report);
    assert_eq!(report.rows_checked, rows.len() as u64);
    assert_eq!(report.head_seq, rows.len() as i64);

    // Group commit, as the database saw it: rows inserted by one transaction
    // share its id (`xmin`); fewer transactions than rows.
    let Probe::Postgres(url) = apps[0].probe() else {
        unreachable!()
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let transactions: i64 = client
        .query_one(
            "SELECT COUNT(DISTINCT xmin::text) FROM audit_logs WHERE event_type = 'session_revoked'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("{ALL} rows in {transactions} transactions");
    assert!(
        (transactions as usize) < ALL,
        "{transactions} transactions for {ALL} rows"
    );
    // One statement per transaction: the rows one statement inserted share
    // its command id (`cmin`) within the transaction.
    let statements: i64 = client
        .query_one(
            "SELECT COUNT(DISTINCT (xmin::text, cmin::text)) FROM audit_logs \
             WHERE event_type = 'session_revoked'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        statements, transactions,
        "each batch's rows went in with one statement"
    );
    let written: u64 = apps
        .iter()
        .map(|a| a.services.audit_writer.stats().rows)
        .sum();
    assert!(written >= ALL as u64);
}

on_both_backends!(
    the_audit_writer_commits_queued_events_together,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, _) = app.signed_in().await;
        let id = app.user_id(&email).await;
        let writer = &app.services.audit_writer;
        let start = writer.stats();
        const N: usize = 40;
        let results = futures_util::future::join_all(
            (0..N).map(|n| writer.append(revoked(&app.services, id, n))),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let end = writer.stats();
        let (batches, rows) = (end.batches - start.batches, end.rows - start.rows);
        assert_eq!(rows, N as u64, "every event went through the writer");
        assert!(
            batches < rows,
            "{batches} transactions for {rows} rows: no group commit"
        );
        assert!(end.largest > 1);
        let all = chain(&app).await;
        assert_eq!(
            all.iter()
                .filter(|r| r.event_type == "session_revoked")
                .count(),
            N
        );
        let mut ns: Vec<u64> = all
            .iter()
            .filter(|r| r.event_type == "session_revoked")
            .map(|r| r.metadata["n"].as_u64().unwrap())
            .collect();
        ns.sort_unstable();
        assert_eq!(ns, (0..N as u64).collect::<Vec<_>>());
        assert_ok(&verify(&app).await);
    }
);

on_both_backends!(
    shutdown_writes_the_queued_audit_events,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (email, _) = app.signed_in().await;
        let id = app.user_id(&email).await;
        let writer = app.services.audit_writer.clone();
        let start = writer.stats();
        const N: usize = 30;
        // The appends are queued before the shutdown starts: the writer
        // writes them as it stops, in one transaction.
        let (results, ()) = futures_util::future::join(
            futures_util::future::join_all(
                (0..N).map(|n| writer.append(revoked(&app.services, id, n))),
            ),
            writer.shutdown(),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let end = writer.stats();
        assert_eq!(
            (end.batches - start.batches, end.rows - start.rows),
            (1, N as u64),
            "the queue was drained by the writer"
        );
        // After the shutdown, an append goes straight to the store.
        writer.append(revoked(&app.services, id, N)).await.unwrap();
        assert_eq!(writer.stats(), end);
        let all = chain(&app).await;
        assert_eq!(
            all.iter()
                .filter(|r| r.event_type == "session_revoked")
                .count(),
            N + 1
        );
        assert_ok(&verify(&app).await);
    }
);

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app
        .with_token("GET", &format!("/api/v1/auth/me/audit{query}"), token, None)
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.json()
}

on_both_backends!(
    me_audit_pages_through_own_events_only,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let (a_email, a_pair) = busy_user(&app).await;
        let (b_email, b_pair) = busy_user(&app).await;
        assert_eq!(app.login(&a_email, PASSWORD).await.status, 200);
        let a = app.user_id(&a_email).await;
        let b = app.user_id(&b_email).await;
        let token = &a_pair.access_token;

        let expected: Vec<String> = app
            .probe()
            .audit_for_user(a, 1000)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        assert!(expected.len() >= 6);

        let mut seen: Vec<Value> = Vec::new();
        let mut query = "?limit=2".to_string();
        loop {
            let body = page(&app, token, &query).await;
            let items = body["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().cloned());
            match body["next"].as_str() {
                Some(next) => query = format!("?limit=2&before={next}"),
                None => break,
            }
        }
        let ids: Vec<String> = seen
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        let mut sorted = expected.clone();
        sorted.sort();
        let mut got = ids.clone();
        got.sort();
        assert_eq!(got, sorted, "every event of A once, none of B's");
        // Newest first.
        let times: Vec<String> = seen
            .iter()
            .map(|i| i["created_at"].as_str().unwrap().to_string())
            .collect();
        let mut newest_first = times.clone();
        newest_first.sort_by(|x, y| {
            chrono::DateTime::parse_from_rfc3339(y)
                .unwrap()
                .cmp(&chrono::DateTime::parse_from_rfc3339(x).unwrap())
        });
        assert_eq!(times, newest_first);
        assert_eq!(seen[0]["event_type"], "login");
        assert_eq!(seen[0]["outcome"], "success");
        assert!(seen.iter().any(|i| i["outcome"] == "failure"));
        assert!(seen[0]["ip_address"].is_string());
        for item in &seen {
            let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
            for k in keys {
                assert!(
                    [
                        "id",
                        "event_type",
                        "outcome",
                        "created_at",
                        "ip_address",
                        "user_agent",
                        "metadata"
                    ]
                    .contains(&k.as_str()),
                    "{k}"
                );
            }
        }

        // Default limit, and B sees only B's.
        let first = page(&app, token, "").await;
        assert_eq!(
            first["items"].as_array().unwrap().len(),
            expected.len().min(20)
        );
        let theirs = page(&app, &b_pair.access_token, "?limit=100").await;
        let b_expected = app.probe().audit_for_user(b, 1000).await.unwrap();
        assert_eq!(theirs["items"].as_array().unwrap().len(), b_expected.len());
        assert!(theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !ids.contains(&i["id"].as_str().unwrap().to_string())));
        assert!(theirs["next"].is_null());

        for bad in [
            "?limit=0",
            "?limit=101",
            "?limit=x",
            "?before=abc",
            "?before=-3",
            "?before=",
        ] {
            let res = app
                .with_token("GET", &format!("/api/v1/auth/me/audit{bad}"), token, None)
                .await;
            assert_eq!(res.status, 422, "{bad}");
            assert_eq!(
                res.header("content-type").as_deref(),
                Some("application/problem+json"),
                "{bad}"
            );
            assert_eq!(res.code(), "validation_failed");
        }
        assert_eq!(app.get("/api/v1/auth/me/audit").await.status, 401);
    }
);

#[actix_web::test]
async fn the_endpoint_is_in_the_openapi_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/openapi.json").await.json();
    let op = &doc["paths"]["/api/v1/auth/me/audit"]["get"];
    assert!(op.is_object(), "{}", doc["paths"]);
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["before", "limit"]);
    assert!(op["responses"]["422"].is_object());
}

// Rows written before the chain existed (a database at the schema before it):
// the upgrade numbers them below the first anchor, the chain starts after
// them, and the sweep deletes them once past their period without breaking it.
on_both_backends!(
    rows_from_before_the_chain_sit_below_the_anchor,
    |backend: Backend| async move {
        let dir = crate::support::TempDir::new();
        let db = match backend {
            Backend::Postgres => Some(TestDatabase::create().await),
            Backend::Sqlite => None,
        };
        // Six years old, and one recent; no user (their accounts are gone).
        let legacy = "INSERT INTO audit_logs (id, user_id, event_type, event_status, metadata, created_at) VALUES";
        match &db {
            Some(db) => {
                let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")
                    .await
                    .unwrap();
                for m in suma_auth::storage::migrations::MIGRATIONS
                    .iter()
                    .filter(|m| m.version < 9)
                {
                    client.batch_execute(m.up).await.unwrap();
                }
                client
                    .batch_execute(&format!(
                        "INSERT INTO schema_migrations VALUES (8, false); {legacy} \
                         (gen_random_uuid(), NULL, 'login', 'success', '{{}}', now() - interval '6 years'), \
                         (gen_random_uuid(), NULL, 'login', 'failure', '{{}}', now() - interval '6 years'), \
                         (gen_random_uuid(), NULL, 'logout', 'success', '{{}}', now() - interval '1 day')"
                    ))
                    .await
                    .unwrap();
            }
            None => {
                let c = rusqlite::Connection::open(dir.0.join("suma-auth.db")).unwrap();
                let mut sql = suma_auth::storage::migrations::SQLITE_SCHEMA.to_string();
                for (v, step) in suma_auth::storage::migrations::SQLITE_UPGRADES {
                    if *v < 9 {
                        sql.push_str(step);
                    }
                }
                let now = chrono::Utc::now().timestamp_millis();
                let year = 365 * 24 * 3600 * 1000i64;
                c.execute_batch(&format!(
                    "{sql} PRAGMA user_version = 7; {legacy} \
                     ('{}', NULL, 'login', 'success', '{{}}', {}), \
                     ('{}', NULL, 'login', 'failure', '{{}}', {}), \
                     ('{}', NULL, 'logout', 'success', '{{}}', {});",
                    uuid::Uuid::new_v4(),
                    now - 6 * year,
                    uuid::Uuid::new_v4(),
                    now - 6 * year,
                    uuid::Uuid::new_v4(),
                    now - year / 365
                ))
                .unwrap();
            }
        }
        let setup = match &db {
            Some(db) => TestSetup::new(Backend::Postgres).on_database(&db.url),
            None => TestSetup::new(Backend::Sqlite).in_dir(&dir.0),
        };
        let app = setup.spawn().await;
        let rows = chain(&app).await;
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(rows.iter().all(|r| r.row_hash.is_none()));
        let report = verify(&app).await;
        assert_ok(&report);
        assert_eq!(
            (report.anchor_seq, report.head_seq, report.rows_checked),
            (3, 3, 0)
        );

        busy_user(&app).await;
        let report = verify(&app).await;
        assert_ok(&report);
        assert_eq!(report.rows_checked as usize, chain(&app).await.len() - 3);
        // The two past their period go; the recent one and the chain stay.
        assert!(sweep_once(&app.services).await >= 2);
        let after = chain(&app).await;
        assert_eq!(after[0].seq, 3);
        assert!(after.iter().all(|r| r.event_type != "audit_pruned"));
        assert_ok(&verify(&app).await);
        app.stop().await;
        drop(app);
        drop(db);
    }
);

on_both_backends!(
    the_export_lists_a_time_range_in_chain_order,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        busy_user(&app).await;
        app.services.clock.advance(Duration::from_secs(60));
        let start = app.services.clock.now();
        busy_user(&app).await;
        let end = app.services.clock.now() + chrono::Duration::seconds(1);
        app.services.clock.advance(Duration::from_secs(60));
        busy_user(&app).await;

        let all = chain(&app).await;
        let doc = suma_auth::services::audit::export(&*app.services.store, start, end)
            .await
            .unwrap();
        let expected: Vec<i64> = all
            .iter()
            .filter(|r| r.created_at >= start && r.created_at < end)
            .map(|r| r.seq)
            .collect();
        assert!(expected.len() >= 5);
        assert_eq!(doc.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), expected);
        assert_eq!(doc.head_seq, all.last().unwrap().seq);
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["rows"][0]["row_hash"].is_string());
        assert!(json["rows"][0].get("client_salt").is_none());
        assert!(
            suma_auth::services::audit::export(&*app.services.store, end, start)
                .await
                .is_err()
        );
    }
);
