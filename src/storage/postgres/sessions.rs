//! Sessions and their refresh-token families.

use super::*;
use crate::domain::refresh::RefreshDecision;
use crate::storage::sql;

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

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, s: NewSession) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let (ua, ip) = (&s.client.user_agent, &s.client.ip);
        let session: [Param; 8] = [
            &s.id,
            &s.user_id,
            &s.device_id,
            ua,
            ip,
            &s.amr,
            &s.expires_at,
            &s.created_at,
        ];
        tx.execute(sql::INSERT_SESSION, &session).await.map_err(q)?;
        let token: [Param; 9] = [
            &s.refresh_token_id,
            &s.user_id,
            &s.id,
            &s.refresh_token_hash,
            &s.device_id,
            ua,
            ip,
            &s.expires_at,
            &s.created_at,
        ];
        tx.execute(sql::INSERT_REFRESH_TOKEN, &token)
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)
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
    ) -> StoreResult<RotateOutcome> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                &format!("{} FOR UPDATE OF rt, s", sql::REFRESH_WITH_SESSION),
                &[&r.presented_hash],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Invalid);
        };
        let token_id: Uuid = row.try_get(0).map_err(q)?;
        let spent_at: Option<DateTime<Utc>> = row.try_get(1).map_err(q)?;
        let s = session_from(&row, 2)?;
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
                RotateOutcome::Reused {
                    session_id: s.id,
                    user_id: s.user_id,
                    was_live,
                }
            }
            RefreshDecision::EndIdle => {
                let reason = end_reason::IDLE_TIMEOUT;
                tx.execute(sql::END_LIVE_SESSION, &[&s.id, &r.now, &reason])
                    .await
                    .map_err(q)?;
                RotateOutcome::Expired
            }
            RefreshDecision::Rotate => {
                tx.execute(sql::SPEND_REFRESH_TOKEN, &[&token_id, &r.now, &r.new_id])
                    .await
                    .map_err(q)?;
                let successor = [&r.new_id as Param, &r.new_hash, &r.now, &token_id];
                tx.execute(sql::ISSUE_SUCCESSOR, &successor)
                    .await
                    .map_err(q)?;
                tx.execute(sql::SET_SESSION_ACTIVITY, &[&s.id, &r.now])
                    .await
                    .map_err(q)?;
                RotateOutcome::Rotated(SessionRecord {
                    last_activity_at: r.now,
                    ..s
                })
            }
        };
        tx.commit().await.map_err(q)?;
        Ok(outcome)
    }

    async fn revoke_session(
        &self,
        session_id: Uuid,
        owner: Uuid,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &revoke_own_session("$1"),
                &[&session_id, &owner, &now, &reason],
            )
            .await
            .map_err(q)?;
        Ok(!rows.is_empty())
    }

    async fn revoke_session_by_refresh(
        &self,
        token_hash: &str,
        owner: Uuid,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        // The session of a token among the owner's own.
        let session =
            "(SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)";
        let row = conn
            .query_opt(
                &revoke_own_session(session),
                &[&token_hash, &owner, &now, &reason],
            )
            .await
            .map_err(q)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let rows = tx
            .query(
                "UPDATE sessions SET invalidated_at = $3, revoked_reason = $4
                 WHERE user_id = $1 AND ($2::uuid IS NULL OR id <> $2) AND invalidated_at IS NULL
                 RETURNING id",
                &[&user_id, &except, &now, &reason],
            )
            .await
            .map_err(q)?;
        let ids = rows
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<Vec<Uuid>>>()?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE session_id = ANY($1) AND revoked_at IS NULL",
            &[&ids, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(ids)
    }

    async fn revoke_all_sessions(
        &self,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let rows = tx
            .query(sql::END_ALL_LIVE_SESSIONS, &[&now, &reason])
            .await
            .map_err(q)?;
        let ids = rows
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<Vec<Uuid>>>()?;
        tx.execute(sql::REVOKE_ALL_UNSPENT_TOKENS, &[&now])
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(ids)
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
