//! Owns how a shard routes requests: to the user's actor by `try_send` through the one
//! registered address; a full mailbox is answered `Overloaded` at once, never queued.

use actix::dev::SendError;
use actix::{Context, Handler};

use super::messages::{Route, UserStopped};
use super::Shard;
use crate::error::ActorError;
use crate::user::messages::UserRequest;
use crate::user::UserActor;

impl<M> Handler<Route<M>> for Shard
where
    M: UserRequest,
    UserActor: Handler<M>,
{
    type Result = ();

    fn handle(&mut self, msg: Route<M>, _ctx: &mut Context<Self>) {
        let Route { key, request } = msg;
        let Some(addr) = self.user(&key) else {
            request.fail(ActorError::Unavailable);
            return;
        };
        match addr.try_send(request) {
            Ok(()) => {}
            Err(SendError::Full(request)) => {
                self.settings.counters.mailbox_rejected();
                request.fail(ActorError::Overloaded);
            }
            // stopped between the liveness check and now: start afresh, once
            Err(SendError::Closed(request)) => {
                self.spawn_user(key.clone());
                let Some(entry) = self.users.get(&key) else {
                    request.fail(ActorError::Unavailable);
                    return;
                };
                if let Err(refused) = entry.addr.try_send(request) {
                    refused.into_inner().fail(ActorError::Unavailable);
                }
            }
        }
    }
}

impl Handler<UserStopped> for Shard {
    type Result = ();

    fn handle(&mut self, msg: UserStopped, _ctx: &mut Context<Self>) {
        self.forget(&msg.key, msg.id);
    }
}

#[cfg(test)]
impl Handler<super::messages::ForceIdleCheck> for Shard {
    type Result = ();

    fn handle(&mut self, msg: super::messages::ForceIdleCheck, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.users.get(&msg.0) {
            let _ = entry.addr.try_send(crate::user::messages::IdleCheck);
        }
    }
}
