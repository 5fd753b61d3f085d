//! The change notices of `users` rows (migration 000011): a dedicated
//! connection `LISTEN`s and makes every instance forget a user the moment
//! its row changes, whoever changed it (another instance, the operator CLI,
//! an SQL console). While this connection is down the cache is off, so a
//! missed notice can never leave a stale profile behind.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use crate::storage::UserCache;

/// The channel the trigger notifies (payload: the user's id).
pub(super) const CHANNEL: &str = "suma_auth_user_changed";

/// How long an entry is trusted even while notices flow (a bound on what a
/// silently broken connection could leave stale).
pub(super) const MAX_AGE: Duration = Duration::from_secs(5);

/// Keeps a listening connection open for as long as the store lives,
/// reconnecting after a failure; the cache is on only while it listens.
pub(super) async fn watch(
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    cache: UserCache,
) {
    loop {
        if cache.orphaned() {
            return;
        }
        match config.connect(connector.clone()).await {
            Ok((client, mut connection)) => {
                let (tx, mut notices) = tokio::sync::mpsc::unbounded_channel::<String>();
                // Drives the connection and hands its notices over; ends
                // when the connection does.
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            if tx.send(n.payload().to_string()).is_err() {
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        cache.set_enabled(true);
                        listen(&cache, &mut notices).await;
                        cache.set_enabled(false);
                    }
                    Err(e) => {
                        tracing::warn!(error = %super::PgError(e), "user change notices: LISTEN failed");
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::debug!(error = %e, "user change notices: not connected; retrying");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Forgets each user named by a notice until the connection ends or the
/// store is dropped.
async fn listen(cache: &UserCache, notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), notices.recv()).await {
            Ok(Some(payload)) => match Uuid::parse_str(&payload) {
                Ok(id) => cache.forget(id),
                Err(_) => cache.invalidate(),
            },
            Ok(None) => return,
            Err(_) if cache.orphaned() => return,
            Err(_) => {}
        }
    }
}
