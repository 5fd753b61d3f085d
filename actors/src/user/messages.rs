//! Owns the messages a user actor answers and their reply channel. Each message carries a
//! oneshot `Reply`, so it can travel by `try_send` (bounded) and still be answered.

use actix::Message;
use tokio::sync::oneshot;

use crate::error::ActorError;
use crate::policy::lockout::{FailureOutcome, Reservation};
use crate::time::Timestamp;

/// Where an actor sends its answer.
pub(crate) struct Reply<T>(oneshot::Sender<Result<T, ActorError>>);

/// The receiving end of a `Reply`.
pub(crate) type ReplyReceiver<T> = oneshot::Receiver<Result<T, ActorError>>;

impl<T> Reply<T> {
    pub(crate) fn channel() -> (Self, ReplyReceiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Self(tx), rx)
    }

    pub(crate) fn send(self, value: T) {
        // the caller may have timed out and gone: nothing to do then
        let _ = self.0.send(Ok(value));
    }

    pub(crate) fn fail(self, error: ActorError) {
        let _ = self.0.send(Err(error));
    }
}

/// A request to a user actor that can be refused with an `ActorError` when undeliverable.
pub(crate) trait UserRequest: Message<Result = ()> + Send + 'static {
    fn fail(self, error: ActorError);
}

macro_rules! user_request {
    ($name:ident) => {
        impl Message for $name {
            type Result = ();
        }

        impl UserRequest for $name {
            fn fail(self, error: ActorError) {
                self.reply.fail(error);
            }
        }
    };
}

/// Reserve one password verification.
pub(crate) struct ReserveLogin {
    pub(crate) now: Timestamp,
    pub(crate) reply: Reply<Reservation>,
}
user_request!(ReserveLogin);

/// A reserved verification failed.
pub(crate) struct RecordLoginFailure {
    pub(crate) now: Timestamp,
    pub(crate) reply: Reply<FailureOutcome>,
}
user_request!(RecordLoginFailure);

/// A reserved verification succeeded.
pub(crate) struct RecordLoginSuccess {
    pub(crate) reply: Reply<()>,
}
user_request!(RecordLoginSuccess);

/// From the shard: nothing was routed to this actor for `idle_timeout`. The actor stops
/// if it holds nothing that must survive; otherwise it ignores the notice.
pub(crate) struct IdleCheck;

impl Message for IdleCheck {
    type Result = ();
}
