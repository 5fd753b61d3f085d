//! Sessions and their refresh-token families.

use super::*;
use crate::domain::refresh::RefreshDecision;
use crate::storage::sql;
use tokio_postgres::types::Type;

/// Locks the session of a presented refresh token: $1 token hash. Run
/// before [`LOCK_REFRESH`], whose join would lock the token's row first:
/// every writer of both rows takes the session's first.
const LOCK_SESSION_OF_REFRESH: &str = "SELECT id FROM sessions
     WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) FOR UPDATE";

/// The presented refresh token and its session, locked: $1 token hash.
static LOCK_REFRESH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{} FOR UPDATE OF rt, s", sql::REFRESH_WITH_SESSION));

/// The `successor` step of [`ROTATE`] and [`ROTATE_LIVE`]: the token that
/// follows the one `spent` returned ($1 its id, $2 its hash, $3 time), in
/// the same family and session, one rotation further.
macro_rules! successor {
    () => {
        "
     successor AS (
       INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent,
         ip_address, expires_at, created_at, rotation_count)
       SELECT $1, user_id, session_id, $2, device_id, user_agent, ip_address, expires_at, $3,
         COALESCE(rotation_count, 0) + 1 FROM spent)"
    };
}

/// Every write of a rotation in one statement, on condition that the
/// session is still live and the token still unspent (what the decision
/// read): records the activity on the session, spends the token and issues
/// its successor (a copy of the spent row with a new id and hash). Answers
/// how many tokens it spent (0 or 1). $1 successor id, $2 its hash, $3 time,
/// $4 spent token, $5 session, $6 the time it must commit by or NULL
/// (`Rotation::commit_by`: past it, the statement fails and writes nothing).
///
/// Row locks make the condition exact: a concurrent rotation or revocation
/// of the same rows either commits first (the condition, checked again on
/// the newest row version, fails) or waits for this one. The session row is
/// locked before the token's (`spent` reads `touched`), the order in which
/// revocations lock them, so the two cannot deadlock.
const ROTATE: &str = concat!(
    "WITH touched AS (
       UPDATE sessions SET last_activity_at = $3
       WHERE id = $5 AND invalidated_at IS NULL
       RETURNING id),
     spent AS (
       UPDATE refresh_tokens SET revoked_at = $3, last_used_at = $3, replaced_by = $1
       WHERE id = $4 AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM touched)
       RETURNING user_id, session_id, device_id, user_agent, ip_address, expires_at, rotation_count),",
    successor!(),
    "
     SELECT count(*) FROM spent WHERE suma_auth_in_time($6)"
);

/// The rotation that needs no decision, in one statement and one round
/// trip: a presented token that is unspent, of a session that is live,
/// before its end and active after the idle cutoff, is spent, its successor
/// issued and the activity recorded, as [`ROTATE`] does; answers the
/// session's columns (as [`sql::REFRESH_WITH_SESSION`] from index 2), or no
/// row when any condition fails (then the rule decides, after a read).
/// $1 successor id, $2 its hash, $3 time, $4 presented hash, $5 idle cutoff,
/// $6 the time it must commit by or NULL (checked on the locked session's
/// row: past it the statement fails and writes nothing).
///
/// The token is found without a lock; the session's row is locked first and
/// the token's second, as in [`ROTATE`], and each condition is checked again
/// on the newest row version once its lock is held.
const ROTATE_LIVE: &str = concat!(
    "WITH token AS (
       SELECT id, session_id FROM refresh_tokens WHERE token_hash = $4 AND revoked_at IS NULL),
     touched AS (
       UPDATE sessions s SET last_activity_at = $3
       FROM token
       WHERE s.id = token.session_id AND s.invalidated_at IS NULL
         AND s.expires_at > $3 AND s.last_activity_at > $5
       RETURNING s.id, s.user_id, s.device_id, s.user_agent, s.ip_address, s.amr,
         s.created_at, s.last_activity_at, s.expires_at, s.invalidated_at),
     spent AS (
       UPDATE refresh_tokens SET revoked_at = $3, last_used_at = $3, replaced_by = $1
       WHERE id = (SELECT id FROM token) AND revoked_at IS NULL
         AND EXISTS (SELECT 1 FROM touched)
       RETURNING user_id, session_id, device_id, user_agent, ip_address, expires_at, rotation_count),",
    successor!(),
    "
     SELECT touched.* FROM touched, spent WHERE suma_auth_in_time($6)"
);

/// A sign-in's session with its first refresh token and the sign-in's mark
/// on the account, in one statement: $1 session, $2 user, $3 device, $4 user
/// agent, $5 ip, $6 amr, $7 end, $8 time, $9 token id, $10 token hash,
/// $11 new password hash or NULL, $12 the device's fingerprint or NULL,
/// $13 the time it must commit by or NULL (checked once the account's row
/// is locked: past it the statement fails and writes nothing), $14 the
/// second-factor challenge the sign-in completes or NULL (spent here, after
/// the account's row is locked: the order in which a challenge's creation
/// and an erasure take the two; already spent, no session is opened). Returns whether it
/// opened, whether the account exists, whether the account knew the device
/// (then its sighting is recorded too: one round trip and one commit fewer
/// for a sign-in from a known device, most of them), and whether the
/// account is active (the account's own update then stands, as a sign-in
/// that won the challenge commits the same).
///
/// The account's row is updated first, `WHERE is_active`: the update takes
/// the row's lock, so a disable whose update is not yet committed is waited
/// for, and the condition is then checked again on the committed row (READ
/// COMMITTED). A plain read, or an `INSERT … SELECT` of an active account,
/// would see the row as of the statement's start and open a session the
/// disable never ends. (The token's foreign key is checked at the end of the
/// statement, when the session row exists.)
const OPEN_SESSION: &str = "WITH account AS (
       UPDATE users SET last_login_at = $8, failed_login_attempts = 0, locked_until = NULL,
         is_locked = false, password_hash = COALESCE($11, password_hash)
       WHERE id = $2 AND is_active AND deleted_at IS NULL
       RETURNING id),
     challenge AS (
       UPDATE mfa_challenges SET consumed_at = $8
       WHERE id = $14 AND consumed_at IS NULL AND EXISTS (SELECT 1 FROM account)
       RETURNING id),
     session AS (
       INSERT INTO sessions (id, user_id, device_id, user_agent, ip_address, amr, expires_at,
         created_at, last_activity_at)
       SELECT $1, id, $3, $4, $5, $6, $7, $8, $8 FROM account
       WHERE suma_auth_in_time($13) AND ($14::uuid IS NULL OR EXISTS (SELECT 1 FROM challenge))
       RETURNING id),
     token AS (
       INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, device_id, user_agent,
         ip_address, expires_at, created_at)
       SELECT $9, $2, id, $10, $3, $4, $5, $7, $8 FROM session),
     device AS (
       UPDATE device_fingerprints SET last_seen_at = $8, user_agent = $4, ip_address = $5
       WHERE user_id = $2 AND fingerprint_hash = $12 AND EXISTS (SELECT 1 FROM session)
       RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM session),
       EXISTS (SELECT 1 FROM users WHERE id = $2 AND deleted_at IS NULL),
       EXISTS (SELECT 1 FROM device),
       EXISTS (SELECT 1 FROM account)";

/// Ends a live session of its owner and revokes its unspent refresh tokens,
/// in one statement scoped to the owner; returns the session's id when it was
/// live. `session` is the SQL naming the session ($1); $2 owner, $3 time, $4 reason.
fn revoke_own_session(session: &str) -> String {
    format!(
        "WITH ended AS (
           UPDATE sessions SET invalidated_at = $3, revoked_reason = $4
           WHERE id = {session} AND user_id = $2 AND invalidated_at IS NULL RETURNING id),
         spent AS (
           UPDATE refresh_tokens SET revoked_at = $3
           WHERE session_id IN (SELECT id FROM ended) AND user_id = $2 AND revoked_at IS NULL)
         SELECT id FROM ended"
    )
}

/// Ends the live sessions of a user but one: $1 user, $2 the one kept (or
/// NULL), $3 time, $4 reason; returns their ids.
const END_USER_SESSIONS: &str = "UPDATE sessions SET invalidated_at = $3, revoked_reason = $4
     WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2) AND invalidated_at IS NULL
     RETURNING id";

/// Revokes the unspent refresh tokens of sessions: $1 their ids, $2 time.
const REVOKE_TOKENS_OF_SESSIONS: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = ANY($1) AND revoked_at IS NULL";

/// A presented token read with its session: the token's id, when it was
/// spent, and the session ([`sql::REFRESH_WITH_SESSION`]'s columns).
fn refresh_row(row: &Row) -> StoreResult<(Uuid, Option<DateTime<Utc>>, SessionRecord)> {
    let token_id: Uuid = row.try_get(0).map_err(q)?;
    let spent_at: Option<DateTime<Utc>> = row.try_get(1).map_err(q)?;
    Ok((token_id, spent_at, session_from(row, 2)?))
}

/// The ids in the first column of `rows`.
fn ids(rows: &[Row]) -> StoreResult<Vec<Uuid>> {
    rows.iter().map(|r| get(r, 0)).collect()
}

impl PgStore {
    /// A rotation decided under lock: the presented token's session and then
    /// the token are locked and read again (the order [`ROTATE`] and the
    /// revocations take them in), and the decision's writes (ending the
    /// session for idleness, revoking the family of a reused token, or a
    /// rotation whose unlocked read went stale) commit together.
    async fn rotate_locked(&self, r: Rotation, decide: RefreshRule) -> StoreResult<RotateOutcome> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.query_opt(LOCK_SESSION_OF_REFRESH, &[&r.presented_hash])
            .await
            .map_err(q)?;
        let row = tx
            .query_opt(LOCK_REFRESH.as_str(), &[&r.presented_hash])
            .await
            .map_err(q)?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Invalid);
        };
        let (token_id, spent_at, s) = refresh_row(&row)?;
        let outcome = match decide(&s.refresh_state(spent_at)) {
            RefreshDecision::Refuse => return Ok(RotateOutcome::Invalid),
            RefreshDecision::Expired => return Ok(RotateOutcome::Expired),
            RefreshDecision::RevokeFamily => {
                let reason = end_reason::REFRESH_TOKEN_REUSE;
                let end: [Param; 3] = [&s.id, &r.now, &reason];
                let was_live = tx.execute(sql::END_LIVE_SESSION, &end).await.map_err(q)? > 0;
                tx.execute(sql::REVOKE_SESSION_TOKENS, &[&s.id, &r.now])
                    .await
                    .map_err(q)?;
                s.reused(was_live)
            }
            RefreshDecision::EndIdle => {
                let reason = end_reason::IDLE_TIMEOUT;
                tx.execute(sql::END_LIVE_SESSION, &[&s.id, &r.now, &reason])
                    .await
                    .map_err(q)?;
                RotateOutcome::Expired
            }
            RefreshDecision::Rotate => {
                let commit_by = r.commit_by.map(crate::clock::wall_time);
                let params: [Param; 6] =
                    [&r.new_id, &r.new_hash, &r.now, &token_id, &s.id, &commit_by];
                // Under lock the condition holds: the read saw the token
                // unspent and the session live.
                tx.query_one(ROTATE, &params).await.map_err(q)?;
                s.rotated(r.now)
            }
        };
        tx.commit().await.map_err(q)?;
        Ok(outcome)
    }

    /// Runs [`revoke_own_session`] for the session that `session` names
    /// with $1 = `key`; the session's id when it was live.
    async fn revoke_own_session(
        &self,
        session: &str,
        key: &(dyn ToSql + Sync),
        by: Revocation,
    ) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        let params: [Param; 4] = [key, &by.owner, &by.at, &by.reason];
        let row = conn
            .query_opt(&revoke_own_session(session), &params)
            .await
            .map_err(q)?;
        row.map(|r| get(&r, 0)).transpose()
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn open_session(&self, s: NewSession) -> StoreResult<SessionOpening> {
        // One statement (atomic on its own), prepared once per connection:
        // one round trip and one commit for the session, its token and the
        // account's update (see [`OPEN_SESSION`]).
        let _users = self.users.changing_user(s.user_id);
        let conn = self.conn().await?;
        let (ua, ip) = (&s.client.user_agent, &s.client.ip);
        let commit_by = s.commit_by.map(crate::clock::wall_time);
        let params: [Param; 14] = [
            &s.id,
            &s.user_id,
            &s.device_id,
            ua,
            ip,
            &s.amr,
            &s.expires_at,
            &s.created_at,
            &s.refresh_token_id,
            &s.refresh_token_hash,
            &s.rehash,
            &s.device_fingerprint,
            &commit_by,
            &s.completes_challenge,
        ];
        let row = conn.query_one(OPEN_SESSION, &params).await.map_err(q)?;
        let (opened, exists) = (get::<bool>(&row, 0)?, get::<bool>(&row, 1)?);
        Ok(match (opened, exists, get::<bool>(&row, 3)?) {
            (true, _, _) => SessionOpening::Opened {
                device_known: get::<bool>(&row, 2)?,
            },
            // Active, so the challenge was spent already.
            (false, true, true) => SessionOpening::ChallengeSpent,
            (false, true, false) => SessionOpening::AccountDisabled,
            (false, false, _) => SessionOpening::NoAccount,
        })
    }

    async fn find_session(&self, id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let conn = self.conn().await?;
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row = conn.query_opt(&sql, &[&id]).await.map_err(q)?;
        row.as_ref().map(|r| session_from(r, 0)).transpose()
    }

    async fn find_session_by_refresh(&self, token_hash: &str) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(sql::SESSION_OF_REFRESH, &[&token_hash])
            .await
            .map_err(q)?;
        Ok(row
            .map(|r| get::<Option<Uuid>>(&r, 0))
            .transpose()?
            .flatten())
    }

    async fn rotate_refresh_token(
        &self,
        r: Rotation,
        decide: RefreshRule,
        early: Option<EarlyRotation>,
    ) -> StoreResult<RotateOutcome> {
        // The hot path is one round trip: [`ROTATE_LIVE`], when the caller
        // gives the idle cutoff. Otherwise, or when it rotates nothing, two
        // round trips and two statements, both prepared on the connection:
        // the read (no lock, no transaction) and, when it says rotate, one
        // conditional statement for every write. The facts
        // a decision reads only ever move one way (a token is spent once, a
        // session ends once), so a refusal read without a lock stays true;
        // a rotation whose condition no longer holds, and the rare decisions
        // that end sessions, are decided again under lock.
        let conn = self.conn().await?;
        // Checked by the statements once their rows are locked (converted
        // to wall time here, as late as can be).
        let commit_by = r.commit_by.map(crate::clock::wall_time);
        if let Some(cutoff) = r.active_since {
            let types = [
                Type::UUID,
                Type::VARCHAR,
                Type::TIMESTAMPTZ,
                Type::VARCHAR,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
            ];
            let params: [Param; 6] = [
                &r.new_id,
                &r.new_hash,
                &r.now,
                &r.presented_hash,
                &cutoff,
                &commit_by,
            ];
            let done = conn
                .query_opt_typed(ROTATE_LIVE, &types, &params)
                .await
                .map_err(q)?;
            if let Some(row) = done {
                return Ok(RotateOutcome::Rotated(session_from(&row, 0)?));
            }
            // Not the common case: the rule decides below, on a read.
        }
        let Some(row) = conn
            .query_opt_typed(
                sql::REFRESH_WITH_SESSION,
                &[Type::VARCHAR],
                &[&r.presented_hash],
            )
            .await
            .map_err(q)?
        else {
            return Ok(RotateOutcome::Invalid);
        };
        let (token_id, spent_at, s) = refresh_row(&row)?;
        match decide(&s.refresh_state(spent_at)) {
            RefreshDecision::Refuse => return Ok(RotateOutcome::Invalid),
            RefreshDecision::Expired => return Ok(RotateOutcome::Expired),
            RefreshDecision::Rotate => {
                let types = [
                    Type::UUID,
                    Type::VARCHAR,
                    Type::TIMESTAMPTZ,
                    Type::UUID,
                    Type::UUID,
                    Type::TIMESTAMPTZ,
                ];
                let params: [Param; 6] =
                    [&r.new_id, &r.new_hash, &r.now, &token_id, &s.id, &commit_by];
                if let (Some(early), RotateOutcome::Rotated(session)) =
                    (early, s.clone().rotated(r.now))
                {
                    // The caller may have gone.
                    let _ = early.send(session);
                }
                let done = conn
                    .query_one_typed(ROTATE, &types, &params)
                    .await
                    .map_err(q)?;
                if done.try_get::<_, i64>(0).map_err(q)? == 1 {
                    return Ok(s.rotated(r.now));
                }
                // Spent by a concurrent request, or the session ended,
                // after the read.
            }
            RefreshDecision::EndIdle | RefreshDecision::RevokeFamily => {}
        }
        drop(conn);
        self.rotate_locked(r, decide).await
    }

    async fn revoke_session(&self, session_id: Uuid, by: Revocation) -> StoreResult<bool> {
        let ended = self.revoke_own_session("$1", &session_id, by).await?;
        Ok(ended.is_some())
    }

    async fn revoke_session_by_refresh(
        &self,
        token_hash: &str,
        by: Revocation,
    ) -> StoreResult<Option<Uuid>> {
        // The session of a token among the owner's own.
        let session =
            "(SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)";
        self.revoke_own_session(session, &token_hash, by).await
    }

    async fn revoke_user_sessions(
        &self,
        except: Option<Uuid>,
        by: Revocation,
    ) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let sessions: [Param; 4] = [&by.owner, &except, &by.at, &by.reason];
        let ended = ids(&tx.query(END_USER_SESSIONS, &sessions).await.map_err(q)?)?;
        tx.execute(REVOKE_TOKENS_OF_SESSIONS, &[&ended, &by.at])
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(ended)
    }

    async fn revoke_all_sessions(
        &self,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let sessions: [Param; 2] = [&now, &reason];
        let ended = ids(&tx
            .query(sql::END_ALL_LIVE_SESSIONS, &sessions)
            .await
            .map_err(q)?)?;
        tx.execute(sql::REVOKE_ALL_UNSPENT_TOKENS, &[&now])
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(ended)
    }

    async fn list_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE user_id = $1 AND invalidated_at IS NULL AND expires_at > $2
                     ORDER BY created_at DESC"
                ),
                &[&user_id, &now],
            )
            .await
            .map_err(q)?;
        rows.iter().map(|r| session_from(r, 0)).collect()
    }

    async fn touch_sessions(&self, touches: &[(Uuid, DateTime<Utc>)]) -> StoreResult<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = touches.iter().map(|t| t.0).collect();
        let times: Vec<DateTime<Utc>> = touches.iter().map(|t| t.1).collect();
        self.exec(
            "UPDATE sessions s SET last_activity_at = GREATEST(s.last_activity_at, t.at)
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at) WHERE s.id = t.id",
            &[&ids, &times],
        )
        .await?;
        Ok(())
    }
}

/// The order in which writers of a session and its tokens take their rows:
/// taken in different orders by two transactions, PostgreSQL finds a
/// deadlock and aborts one of them.
#[cfg(test)]
mod tests {
    use super::super::{migrated_store, test_user, ThrowawayDb};
    use super::*;
    use crate::domain::ClientContext;
    use crate::storage::{Erasure, NewSession, PrivacyStore, SessionStore};

    /// A store on a database of its own, migrated.
    async fn fresh_store() -> (PgStore, ThrowawayDb) {
        migrated_store("locks").await
    }

    /// A user with one session whose refresh token hashes to `hash`.
    struct Family {
        user: Uuid,
        session: Uuid,
        hash: String,
    }

    async fn family(store: &PgStore) -> Family {
        let now = Utc::now();
        let user = Uuid::new_v4();
        let client = ClientContext::default();
        test_user(store, user, "locks@example.com").await;
        let (session, hash) = (Uuid::new_v4(), "h".repeat(64));
        store
            .open_session(NewSession {
                id: session,
                user_id: user,
                refresh_token_id: Uuid::new_v4(),
                refresh_token_hash: hash.clone(),
                device_id: None,
                client,
                amr: "pwd".into(),
                created_at: now,
                expires_at: now + chrono::Duration::hours(1),
                rehash: None,
                device_fingerprint: None,
                commit_by: None,
                completes_challenge: None,
            })
            .await
            .unwrap();
        Family {
            user,
            session,
            hash,
        }
    }

    /// Another connection, in a transaction that holds the session's row
    /// as the one-statement rotation does after its first update.
    async fn holding_the_session<'a>(
        other: &'a mut tokio_postgres::Client,
        session: Uuid,
    ) -> tokio_postgres::Transaction<'a> {
        let tx = other.transaction().await.unwrap();
        tx.execute(
            "UPDATE sessions SET last_activity_at = now() WHERE id = $1",
            &[&session],
        )
        .await
        .unwrap();
        tx
    }

    /// A rotation of the token hashing to `hash` at `now`.
    fn rotation_of(
        hash: String,
        now: DateTime<Utc>,
        active_since: Option<DateTime<Utc>>,
        commit_by: Option<std::time::Instant>,
    ) -> Rotation {
        Rotation {
            presented_hash: hash,
            new_id: Uuid::new_v4(),
            new_hash: "n".repeat(64),
            now,
            active_since,
            commit_by,
        }
    }

    /// Spends a refresh token: $1 its hash.
    const SPEND: &str = "UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = $1";

    /// Runs `statements` in `tx`, then commits; the first error, if any.
    async fn then_commit(
        tx: tokio_postgres::Transaction<'_>,
        statements: &[(&str, &[&(dyn tokio_postgres::types::ToSql + Sync)])],
    ) -> Result<(), tokio_postgres::Error> {
        for (sql, params) in statements {
            tx.execute(*sql, params).await?;
        }
        tx.commit().await
    }

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    /// A rotation decided under lock takes the session's row before the
    /// token's, as the one-statement rotation and every revocation do. Here
    /// another transaction holds the session (as a concurrent rotation of
    /// the same token does between its two updates) and then spends the
    /// token: it must not wait for the locked rotation, which waits for it.
    /// Taken the other way round, PostgreSQL finds a deadlock and aborts one.
    #[tokio::test]
    async fn a_rotation_under_lock_takes_the_session_first() {
        let (store, db) = fresh_store().await;
        let Family { session, hash, .. } = family(&store).await;
        let mut other = connect(&db.url).await;
        let tx = holding_the_session(&mut other, session).await;

        let locked = {
            let (store, hash) = (store.clone(), hash.clone());
            tokio::spawn(async move {
                let rotation = rotation_of(hash, Utc::now(), None, None);
                store
                    .rotate_locked(rotation, Box::new(|_| RefreshDecision::Refuse))
                    .await
            })
        };
        db.until_one_waits().await;
        let committed = then_commit(tx, &[(SPEND, &[&hash])]).await;
        let rotated = locked.await.unwrap();
        assert!(
            committed.is_ok() && rotated.is_ok(),
            "{committed:?} / {rotated:?}"
        );
    }

    /// A rotation decided on its read tells the rotated session before the
    /// statement that writes it has committed: here that statement waits
    /// for another transaction holding the session's row, and the word
    /// arrives meanwhile; the outcome comes once the row is free.
    #[tokio::test]
    async fn a_rotation_is_told_before_its_write_commits() {
        let (store, db) = fresh_store().await;
        let Family { session, hash, .. } = family(&store).await;
        let mut other = connect(&db.url).await;
        let tx = holding_the_session(&mut other, session).await;

        let (early, decided) = tokio::sync::oneshot::channel();
        let now = Utc::now();
        let rotating = {
            let store = store.clone();
            tokio::spawn(async move {
                let rotation = rotation_of(hash, now, None, None);
                store
                    .rotate_refresh_token(
                        rotation,
                        Box::new(|_| RefreshDecision::Rotate),
                        Some(early),
                    )
                    .await
            })
        };
        let told = tokio::time::timeout(Duration::from_secs(10), decided)
            .await
            .expect("the rotated session is told before the write")
            .unwrap();
        assert_eq!(told.id, session);
        db.until_one_waits().await;
        assert!(!rotating.is_finished(), "the write did not wait");
        tx.commit().await.unwrap();
        match rotating.await.unwrap().unwrap() {
            RotateOutcome::Rotated(s) => assert_eq!(s.id, session),
            other => panic!("{other:?}"),
        }
    }

    /// A rotation that gets its rows only after the time it must commit by
    /// (another transaction held the session's row meanwhile) writes
    /// nothing and fails as an outage: its request has been answered 503 and
    /// its client still holds the presented token. Both statements: the
    /// one-step rotation (given the idle cutoff) and the rotation after a
    /// read (without); and, with no time to commit by, the same wait ends
    /// in a rotation.
    #[tokio::test]
    async fn a_rotation_past_its_commit_time_writes_nothing() {
        let cutoff = Some(Utc::now() - chrono::Duration::minutes(15));
        for (active_since, bounded) in [(cutoff, true), (None, true), (cutoff, false)] {
            let (store, db) = fresh_store().await;
            let Family { session, hash, .. } = family(&store).await;
            let mut other = connect(&db.url).await;
            let tx = holding_the_session(&mut other, session).await;
            let rotating = {
                let (store, hash) = (store.clone(), hash.clone());
                let commit_by =
                    bounded.then(|| std::time::Instant::now() + Duration::from_millis(300));
                tokio::spawn(async move {
                    let rotation = rotation_of(hash, Utc::now(), active_since, commit_by);
                    store
                        .rotate_refresh_token(rotation, Box::new(|_| RefreshDecision::Rotate), None)
                        .await
                })
            };
            db.until_one_waits().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            tx.rollback().await.unwrap();
            let outcome = rotating.await.unwrap();
            let conn = connect(&db.url).await;
            let row = conn
                .query_one(
                    "SELECT revoked_at IS NULL, (SELECT count(*) FROM refresh_tokens)
                     FROM refresh_tokens WHERE token_hash = $1",
                    &[&hash],
                )
                .await
                .unwrap();
            let (unspent, tokens): (bool, i64) = (row.get(0), row.get(1));
            if bounded {
                assert!(
                    matches!(outcome, Err(StorageError::Unavailable(_))),
                    "{active_since:?}: {outcome:?}"
                );
                assert!(
                    unspent && tokens == 1,
                    "{active_since:?}: the token was spent"
                );
            } else {
                assert!(
                    matches!(outcome, Ok(RotateOutcome::Rotated(_))),
                    "{outcome:?}"
                );
                assert!(!unspent && tokens == 2);
            }
        }
    }

    /// An erasure takes the user's row without excluding the key-share lock
    /// that a rotation's new token takes on it, and the sessions before
    /// their tokens: a rotation of one of the user's sessions that is under
    /// way when the erasure starts finishes, and the erasure after it.
    /// Taken with `FOR UPDATE` (or tokens before sessions), the two deadlock.
    #[tokio::test]
    async fn an_erasure_waits_for_a_rotation_under_way() {
        let (store, db) = fresh_store().await;
        let Family {
            user,
            session,
            hash,
        } = family(&store).await;
        let mut other = connect(&db.url).await;
        let tx = holding_the_session(&mut other, session).await;

        let erased = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .erase_user(Erasure {
                        user_id: user,
                        placeholder_email: format!("{user}@erased.invalid"),
                        recipient_tag: "t".into(),
                        lockout_key: "locks@example.com".into(),
                        now: Utc::now(),
                        farewell: None,
                    })
                    .await
            })
        };
        db.until_one_waits().await;
        // The rest of the rotation: it spends the token, and issues its
        // successor, whose foreign keys take key-share locks on the user and
        // the session.
        let successor = (Uuid::new_v4(), "s".repeat(64));
        let committed = then_commit(
            tx,
            &[
                (SPEND, &[&hash]),
                (
                    "INSERT INTO refresh_tokens (id, user_id, session_id, token_hash, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, now() + interval '1 hour', now())",
                    &[&successor.0, &user, &session, &successor.1],
                ),
            ],
        )
        .await;
        let erased = erased.await.unwrap();
        assert!(
            committed.is_ok() && matches!(erased, Ok(Some(_))),
            "{committed:?} / {erased:?}"
        );
        let left: i64 = admin_count(&db.url, "SELECT count(*) FROM refresh_tokens").await;
        assert_eq!(left, 0, "the erasure deleted the token issued before it");
    }

    async fn admin_count(url: &str, sql: &str) -> i64 {
        connect(url).await.query_one(sql, &[]).await.unwrap().get(0)
    }
}
