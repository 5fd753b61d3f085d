//! Sessions and their refresh-token families.

use super::*;
use crate::domain::refresh::RefreshDecision;
use crate::storage::sql;

/// Ends a live session of its owner and revokes its unspent refresh tokens;
/// every statement is scoped to the owner (the writer lock makes the pair
/// atomic). True when the session was live.
fn revoke_own_session(
    tx: &rusqlite::Transaction<'_>,
    session_id: &str,
    by: Revocation,
) -> rusqlite::Result<bool> {
    let (owner, now, reason) = (by.owner.to_string(), ms(by.at), by.reason);
    tx.exec(
        "UPDATE refresh_tokens SET revoked_at = ?3
         WHERE revoked_at IS NULL AND user_id = ?2 AND session_id IN
           (SELECT id FROM sessions WHERE id = ?1 AND user_id = ?2 AND invalidated_at IS NULL)",
        params![session_id, owner, now],
    )?;
    let n = tx.exec(
        "UPDATE sessions SET invalidated_at = ?3, revoked_reason = ?4
         WHERE id = ?1 AND user_id = ?2 AND invalidated_at IS NULL",
        params![session_id, owner, now, reason],
    )?;
    Ok(n > 0)
}

/// The ids that a statement ending sessions returns.
fn ended(
    tx: &rusqlite::Transaction<'_>,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.stmt(&dialect(statement))?;
    let rows = stmt.query_map(params, |r| r.get(0))?;
    rows.collect()
}

/// The statements of a rotation in SQLite's spelling, spelled once.
struct RotateSql {
    find: String,
    spend: String,
    successor: String,
    activity: String,
}

static ROTATE_SQL: std::sync::LazyLock<RotateSql> = std::sync::LazyLock::new(|| RotateSql {
    find: dialect(sql::REFRESH_WITH_SESSION).into_owned(),
    spend: dialect(sql::SPEND_REFRESH_TOKEN).into_owned(),
    successor: dialect(sql::ISSUE_SUCCESSOR).into_owned(),
    activity: dialect(sql::SET_SESSION_ACTIVITY).into_owned(),
});

#[async_trait]
impl SessionStore for SqliteStore {
    async fn open_session(&self, s: NewSession) -> StoreResult<SessionOpening> {
        // One transaction on the single writer: a disable is committed
        // either before it (and seen here) or after it (and ends the session).
        let opened = self.run_users(move |c| {
            // Too late to commit (see `NewSession::commit_by`): nothing is
            // written. The writer holds the rows from here to the commit.
            if s.commit_by
                .is_some_and(|by| std::time::Instant::now() >= by)
            {
                return Ok(None);
            }
            let tx = c.transaction()?;
            let (id, user_id) = (s.id.to_string(), s.user_id.to_string());
            let active: Option<bool> = tx
                .row(
                    "SELECT is_active FROM users WHERE id = ?1 AND deleted_at IS NULL",
                    params![user_id],
                    |r| r.get(0),
                )
                .optional()?;
            match active {
                None => return Ok(Some(SessionOpening::NoAccount)),
                Some(false) => return Ok(Some(SessionOpening::AccountDisabled)),
                Some(true) => {}
            }
            let ip = s.client.ip.map(|i| i.to_string());
            let (ua, end, at) = (&s.client.user_agent, ms(s.expires_at), ms(s.created_at));
            if let Some(challenge) = s.completes_challenge {
                let spent = tx.exec(
                    &dialect(sql::SPEND_CHALLENGE),
                    params![challenge.to_string(), at],
                )?;
                if spent == 0 {
                    // Spent already: the dropped transaction writes nothing.
                    return Ok(Some(SessionOpening::ChallengeSpent));
                }
            }
            tx.exec(
                "UPDATE users SET last_login_at = ?2, failed_login_attempts = 0, locked_until = NULL,
                     is_locked = 0, password_hash = COALESCE(?3, password_hash), updated_at = ?2
                 WHERE id = ?1",
                params![user_id, at, s.rehash],
            )?;
            tx.exec(
                &dialect(sql::INSERT_SESSION),
                params![id, user_id, s.device_id, ua, ip, s.amr, end, at],
            )?;
            let token_id = s.refresh_token_id.to_string();
            tx.exec(
                &dialect(sql::INSERT_REFRESH_TOKEN),
                params![
                    token_id,
                    user_id,
                    id,
                    s.refresh_token_hash,
                    s.device_id,
                    ua,
                    ip,
                    end,
                    at
                ],
            )?;
            let device_known = match &s.device_fingerprint {
                Some(fingerprint) => {
                    tx.exec(
                        &dialect(sql::TOUCH_KNOWN_DEVICE),
                        params![user_id, fingerprint, at, ua, ip],
                    )? > 0
                }
                None => false,
            };
            tx.commit()?;
            Ok(Some(SessionOpening::Opened { device_known }))
        })
        .await?;
        opened.ok_or_else(|| {
            StorageError::unavailable("the request's deadline passed before its session was opened")
        })
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        self.read(move |c| {
            c.row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
                params![id.to_string()],
                |r| session_from(r, 0),
            )
            .optional()
        })
        .await
    }

    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            let id: Option<Option<String>> = c
                .row(
                    &dialect(sql::SESSION_OF_REFRESH),
                    params![token_hash],
                    |r| r.get(0),
                )
                .optional()?;
            id.flatten().map(uuid).transpose()
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        r: Rotation,
        decide: RefreshRule,
        early: Option<EarlyRotation>,
    ) -> StoreResult<RotateOutcome> {
        // The refresh hot path: committed in groups, its statements
        // prepared once on the writer.
        let written = self
            .pool
            .write_grouped(move |tx| {
                // Too late to commit (see `Rotation::commit_by`): nothing is
                // written. The writer is the only one, so nothing changes
                // these rows from here to the group's commit, a moment away.
                if r.commit_by
                    .is_some_and(|by| std::time::Instant::now() >= by)
                {
                    return Ok(None);
                }
                let found = tx
                    .row(&ROTATE_SQL.find, params![r.presented_hash], |row| {
                        let token_id: String = row.get(0)?;
                        let spent: Option<i64> = row.get(1)?;
                        Ok((token_id, time_opt(spent), session_from(row, 2)?))
                    })
                    .optional()?;
                let Some((token_id, spent_at, s)) = found else {
                    return Ok(Some(RotateOutcome::Invalid));
                };
                let (now, sid) = (ms(r.now), s.id.to_string());
                let outcome = match decide(&s.refresh_state(spent_at)) {
                    RefreshDecision::Refuse => return Ok(Some(RotateOutcome::Invalid)),
                    RefreshDecision::Expired => return Ok(Some(RotateOutcome::Expired)),
                    RefreshDecision::RevokeFamily => {
                        let reason = end_reason::REFRESH_TOKEN_REUSE;
                        let was_live = tx
                            .exec(&dialect(sql::END_LIVE_SESSION), params![sid, now, reason])?
                            > 0;
                        tx.exec(&dialect(sql::REVOKE_SESSION_TOKENS), params![sid, now])?;
                        s.reused(was_live)
                    }
                    RefreshDecision::EndIdle => {
                        let reason = end_reason::IDLE_TIMEOUT;
                        tx.exec(&dialect(sql::END_LIVE_SESSION), params![sid, now, reason])?;
                        RotateOutcome::Expired
                    }
                    RefreshDecision::Rotate => {
                        let new_id = r.new_id.to_string();
                        tx.exec(&ROTATE_SQL.spend, params![token_id, now, new_id])?;
                        tx.exec(
                            &ROTATE_SQL.successor,
                            params![new_id, r.new_hash, now, token_id],
                        )?;
                        tx.exec(&ROTATE_SQL.activity, params![sid, now])?;
                        let rotated = s.rotated(r.now);
                        if let (Some(early), RotateOutcome::Rotated(session)) = (early, &rotated) {
                            // The caller may have gone.
                            let _ = early.send(session.clone());
                        }
                        rotated
                    }
                };
                Ok(Some(outcome))
            })
            .await?;
        written.ok_or_else(|| {
            StorageError::unavailable(
                "the request's deadline passed before its rotation was written",
            )
        })
    }

    async fn revoke_session(&self, session_id: Uuid, by: Revocation) -> StoreResult<bool> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let ended = revoke_own_session(&tx, &session_id.to_string(), by)?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    async fn revoke_session_by_refresh(
        &self,
        token_hash: &str,
        by: Revocation,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            // The session of a token among the owner's own.
            let session: Option<String> = tx
                .row(
                    "SELECT session_id FROM refresh_tokens WHERE token_hash = ?1 AND user_id = ?2",
                    params![token_hash, by.owner.to_string()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let ended = match session {
                Some(id) if revoke_own_session(&tx, &id, by)? => Uuid::parse_str(&id).ok(),
                _ => None,
            };
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        except: Option<Uuid>,
        by: Revocation,
    ) -> StoreResult<Vec<Uuid>> {
        let (user, except, now) = (
            by.owner.to_string(),
            except.map(|e| e.to_string()),
            ms(by.at),
        );
        self.run(move |c| {
            let tx = c.transaction()?;
            let statement = "UPDATE sessions SET invalidated_at = ?3, revoked_reason = ?4
                 WHERE user_id = ?1 AND (?2 IS NULL OR id <> ?2) AND invalidated_at IS NULL RETURNING id";
            let ids = ended(&tx, statement, params![user, except, now, by.reason])?;
            for id in &ids {
                tx.exec(&dialect(sql::REVOKE_SESSION_TOKENS), params![id, now])?;
            }
            tx.commit()?;
            ids.into_iter().map(uuid).collect()
        })
        .await
    }

    async fn revoke_all_sessions(
        &self,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let now = ms(now);
        self.run(move |c| {
            let tx = c.transaction()?;
            let ids = ended(&tx, sql::END_ALL_LIVE_SESSIONS, params![now, reason])?;
            tx.exec(&dialect(sql::REVOKE_ALL_UNSPENT_TOKENS), params![now])?;
            tx.commit()?;
            ids.into_iter().map(uuid).collect()
        })
        .await
    }

    async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |c| {
            let mut stmt = c.stmt(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE user_id = ?1 AND invalidated_at IS NULL AND expires_at > ?2
                     ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map(params![user_id.to_string(), ms(now)], |r| {
                session_from(r, 0)
            })?;
            rows.collect()
        })
        .await
    }

    async fn touch_sessions(&self, touches: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        let touches: Vec<(String, i64)> = touches
            .iter()
            .map(|(id, at)| (id.to_string(), ms(*at)))
            .collect();
        self.run(move |c| {
            let tx = c.transaction()?;
            for (id, at) in &touches {
                tx.exec(
                    "UPDATE sessions SET last_activity_at = MAX(last_activity_at, ?2) WHERE id = ?1",
                    params![id, at],
                )?;
            }
            tx.commit()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use chrono::{Duration, Utc};

    use super::*;
    use crate::domain::refresh::RefreshPolicy;
    use crate::domain::{ClientContext, Email};
    use crate::storage::{NewSession, NewUser};

    /// Polls `fut` once: true when it finished.
    async fn poll_once<F: Future + ?Sized>(fut: &mut Pin<Box<F>>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
    }

    /// A grouped write that tells when it runs, then holds the group (and
    /// so its commit) until released.
    fn holding(
        pool: &Pool,
    ) -> (
        Pin<Box<impl Future<Output = StoreResult<()>> + use<'_>>>,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (running, is_running) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let write = pool.write_grouped(move |_| {
            running.send(()).unwrap();
            released.recv().unwrap();
            Ok(())
        });
        (Box::pin(write), is_running, release)
    }

    /// A store in a fresh directory with one user and one session, whose
    /// refresh token hashes to `"e" × 64`.
    struct WithSession {
        store: SqliteStore,
        dir: std::path::PathBuf,
        user_id: Uuid,
        session_id: Uuid,
        now: chrono::DateTime<Utc>,
    }

    /// A session of `user_id` opened at `now` whose refresh token hashes to
    /// `hash`, to be committed by `commit_by`.
    fn new_session(
        user_id: Uuid,
        hash: &str,
        now: chrono::DateTime<Utc>,
        commit_by: Option<std::time::Instant>,
    ) -> NewSession {
        NewSession {
            id: Uuid::new_v4(),
            user_id,
            refresh_token_id: Uuid::new_v4(),
            refresh_token_hash: hash.into(),
            device_id: None,
            client: ClientContext::default(),
            amr: "pwd".into(),
            created_at: now,
            expires_at: now + Duration::hours(8),
            rehash: None,
            device_fingerprint: None,
            commit_by,
            completes_challenge: None,
        }
    }

    /// What the write `op(by)` answers when it is queued behind another
    /// write that holds the writer until after `by`.
    async fn late_behind_a_held_writer<'a, T, F>(
        store: &'a SqliteStore,
        op: impl FnOnce(std::time::Instant) -> F,
    ) -> T
    where
        F: Future<Output = T> + 'a,
    {
        let (mut first, first_running, release_first) = holding(&store.pool);
        assert!(!poll_once(&mut first).await);
        tokio::task::spawn_blocking(move || first_running.recv().unwrap())
            .await
            .unwrap();
        let by = std::time::Instant::now() + std::time::Duration::from_millis(200);
        let mut late = Box::pin(op(by));
        assert!(!poll_once(&mut late).await);
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        release_first.send(()).unwrap();
        first.await.unwrap();
        late.await
    }

    async fn store_with_a_session() -> WithSession {
        let dir = std::env::temp_dir().join(format!("rotation-{}", Uuid::new_v4().simple()));
        let store = SqliteStore::open(&dir.join("t.db")).unwrap();
        let now = Utc::now();
        let user_id = Uuid::new_v4();
        store
            .create_user(NewUser {
                id: user_id,
                email: Email::parse("early@example.com", "email").unwrap(),
                password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
                first_name: None,
                last_name: None,
                consents: vec![],
                verification_token_hash: "a".repeat(64),
                verification_expires_at: now + Duration::hours(1),
                client: ClientContext::default(),
                now,
                mail: None,
            })
            .await
            .unwrap();
        let opening = new_session(user_id, &"e".repeat(64), now, None);
        let session_id = opening.id;
        store.open_session(opening).await.unwrap();

        WithSession {
            store,
            dir,
            user_id,
            session_id,
            now,
        }
    }

    /// A rotation committed in a group tells its session as soon as it is
    /// decided, while the group it belongs to has yet to commit; its outcome
    /// comes only with the commit.
    #[tokio::test]
    async fn a_grouped_rotation_is_told_before_its_group_commits() {
        let WithSession {
            store,
            dir,
            user_id,
            session_id,
            now,
        } = store_with_a_session().await;

        // A first grouped write holds the writer, so that the rotation and a
        // second holding write queue up behind it as one group, in that order.
        let (mut first, first_running, release_first) = holding(&store.pool);
        assert!(!poll_once(&mut first).await);
        tokio::task::spawn_blocking(move || first_running.recv().unwrap())
            .await
            .unwrap();
        let policy = RefreshPolicy {
            idle_timeout: Duration::minutes(15),
            reuse_grace: Duration::zero(),
        };
        let (early, mut decided) = tokio::sync::oneshot::channel();
        let mut rotation = Box::pin(store.rotate_refresh_token(
            Rotation {
                presented_hash: "e".repeat(64),
                new_id: Uuid::new_v4(),
                new_hash: "f".repeat(64),
                now,
                active_since: None,
                commit_by: None,
            },
            Box::new(move |s| policy.decide(s, None, now)),
            Some(early),
        ));
        assert!(!poll_once(&mut rotation).await);
        let (mut second, second_running, release_second) = holding(&store.pool);
        assert!(!poll_once(&mut second).await);

        release_first.send(()).unwrap();
        first.await.unwrap();
        // The rotation has run; the write after it holds the group's commit.
        tokio::task::spawn_blocking(move || second_running.recv().unwrap())
            .await
            .unwrap();
        let told = tokio::time::timeout(std::time::Duration::from_secs(5), &mut decided)
            .await
            .expect("the rotated session is told before the commit")
            .unwrap();
        assert_eq!(told.id, session_id);
        assert_eq!(told.user_id, user_id);
        assert!(
            !poll_once(&mut rotation).await,
            "the rotation answered before its group committed"
        );

        release_second.send(()).unwrap();
        second.await.unwrap();
        match rotation.await.unwrap() {
            RotateOutcome::Rotated(session) => assert_eq!(session.id, session_id),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A rotation that reaches the writer only after the time it must commit
    /// by (a write ahead of it held the writer) writes nothing and fails as
    /// an outage: its request has been answered 503 and its client still
    /// holds the token, which a rotation after it then spends.
    #[tokio::test]
    async fn a_rotation_past_its_commit_time_writes_nothing() {
        let WithSession {
            store,
            dir,
            session_id,
            now,
            ..
        } = store_with_a_session().await;
        let rotation = |commit_by| Rotation {
            presented_hash: "e".repeat(64),
            new_id: Uuid::new_v4(),
            new_hash: "f".repeat(64),
            now,
            active_since: None,
            commit_by,
        };
        let rule = || -> RefreshRule { Box::new(|_| RefreshDecision::Rotate) };
        let outcome = late_behind_a_held_writer(&store, |by| {
            store.rotate_refresh_token(rotation(Some(by)), rule(), None)
        })
        .await;
        assert!(
            matches!(outcome, Err(StorageError::Unavailable(_))),
            "{outcome:?}"
        );

        let again = store
            .rotate_refresh_token(rotation(None), rule(), None)
            .await;
        match again {
            Ok(RotateOutcome::Rotated(session)) => assert_eq!(session.id, session_id),
            other => panic!("the token was spent: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A sign-in's opening that reaches the writer only after the time it
    /// must commit by (a write ahead of it held the writer) opens nothing and
    /// fails as an outage.
    #[tokio::test]
    async fn an_opening_past_its_commit_time_opens_nothing() {
        let WithSession {
            store,
            dir,
            user_id,
            now,
            ..
        } = store_with_a_session().await;
        let late_id = Uuid::new_v4();
        let outcome = late_behind_a_held_writer(&store, |by| {
            let mut opening = new_session(user_id, &"l".repeat(64), now, Some(by));
            opening.id = late_id;
            store.open_session(opening)
        })
        .await;
        assert!(
            matches!(outcome, Err(StorageError::Unavailable(_))),
            "{outcome:?}"
        );
        assert!(store.find_session(late_id).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
