//! Owns the messages a shard answers: requests routed to a user actor, and user actors'
//! stop notices.

use actix::Message;

use crate::key::UserKey;
use crate::user::messages::UserRequest;

/// Deliver `request` to the actor of `key`, creating it if needed.
pub(crate) struct Route<M> {
    pub(crate) key: UserKey,
    pub(crate) request: M,
}

impl<M: UserRequest> Message for Route<M> {
    type Result = ();
}

/// User actor `id` of `key` is stopping.
pub(crate) struct UserStopped {
    pub(crate) key: UserKey,
    pub(crate) id: u64,
}

impl Message for UserStopped {
    type Result = ();
}

/// Test hook: send `key`'s actor an idle notice now, whatever its last use.
#[cfg(test)]
pub(crate) struct ForceIdleCheck(pub(crate) UserKey);

#[cfg(test)]
impl Message for ForceIdleCheck {
    type Result = ();
}
