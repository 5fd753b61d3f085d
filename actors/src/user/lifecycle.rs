//! Owns a user actor's life: on its shard's idle notice it re-checks that it holds
//! nothing that must survive (a waiting reservation; a lock or open window when lockout
//! is decided locally) and stops itself; on stopping it tells its shard to forget it.

use actix::{Actor, ActorContext, Context, Handler, Running};

use super::messages::IdleCheck;
use super::UserActor;
use crate::clock::wall_clock_now;
use crate::shard::messages::UserStopped;

impl Actor for UserActor {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        // The shard drops this entry (if still ours). A request it routed here after the
        // idle notice is dropped unprocessed with this actor; its caller sees the reply
        // channel close and retries once, reaching a fresh actor.
        if let Some(shard) = self.shard.upgrade() {
            shard.do_send(UserStopped {
                key: self.key.clone(),
                id: self.id,
            });
        }
        Running::Stop
    }
}

impl Handler<IdleCheck> for UserActor {
    type Result = ();

    fn handle(&mut self, _msg: IdleCheck, ctx: &mut Context<Self>) {
        // every message routed before the notice has been handled (FIFO): idle since then
        let Some(state) = self.state.as_mut() else {
            ctx.stop();
            return;
        };
        let now = wall_clock_now();
        let lockout_is_local = self.settings.backing.shared_store().is_none();
        if state.is_reapable(lockout_is_local, &self.settings.lockout, now) {
            ctx.stop();
        } else {
            self.settle();
        }
    }
}
