//! Owns how a user actor answers each message. Lockout decisions go to the shared backing
//! when there is one; the actor waits for it (`ctx.wait`) so that no other message for this
//! user runs meanwhile, mirrors the answer, and decides locally if the backing fails.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use super::messages::{
    PutOtpChallenge, RecordLoginFailure, RecordLoginSuccess, Reply, ReserveLogin, VerifyOtp,
};
use super::UserActor;
use crate::backing::{BackingFuture, LockoutBacking};
use crate::error::BackingError;
use crate::key::UserKey;
use crate::policy::lockout::LockoutState;
use crate::policy::otp::OtpOutcome;

impl UserActor {
    /// Asks the shared backing (if any) and answers with its decision mirrored into the
    /// local state; answers with `local` when there is no backing or it fails.
    fn decide<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        reply: Reply<T>,
        call: impl FnOnce(&dyn LockoutBacking, &UserKey) -> BackingFuture<T>,
        adopt: impl FnOnce(&mut LockoutState, &T) + 'static,
        local: impl FnOnce(&mut LockoutState) -> T + 'static,
    ) {
        let Some(store) = self.settings.backing.shared_store() else {
            let decided = local(&mut self.state_mut().lockout);
            self.settle();
            reply.send(decided);
            return;
        };
        let pending = bounded(
            call(store.as_ref(), &self.key),
            self.settings.backing_timeout,
        );
        // ctx.wait: the mailbox is not polled until this resolves, so calls for one user
        // never overlap and the mirror is updated in order.
        ctx.wait(pending.into_actor(self).map(move |result, act, _ctx| {
            let decided = match result {
                Ok(decided) => {
                    adopt(&mut act.state_mut().lockout, &decided);
                    decided
                }
                Err(error) => {
                    act.settings.counters.backing_failed();
                    tracing::warn!(error = %error, "lockout backing failed; deciding locally");
                    local(&mut act.state_mut().lockout)
                }
            };
            act.settle();
            reply.send(decided);
        }));
    }
}

async fn bounded<T>(call: BackingFuture<T>, limit: Duration) -> Result<T, BackingError> {
    actix::clock::timeout(limit, call)
        .await
        .unwrap_or(Err(BackingError::Timeout))
}

impl Handler<ReserveLogin> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: ReserveLogin, ctx: &mut Context<Self>) {
        let (policy, now) = (self.settings.lockout, msg.now);
        self.decide(
            ctx,
            msg.reply,
            |store, key| store.reserve(key, policy, now),
            move |state, decided| state.adopt_reservation(&policy, now, *decided),
            move |state| state.reserve(&policy, now),
        );
    }
}

impl Handler<RecordLoginFailure> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RecordLoginFailure, ctx: &mut Context<Self>) {
        let (policy, now) = (self.settings.lockout, msg.now);
        self.decide(
            ctx,
            msg.reply,
            |store, key| store.record_failure(key, policy, now),
            move |state, decided| state.adopt_failure(&policy, now, *decided),
            move |state| state.record_failure(&policy, now),
        );
    }
}

impl Handler<RecordLoginSuccess> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RecordLoginSuccess, ctx: &mut Context<Self>) {
        self.decide(
            ctx,
            msg.reply,
            |store, key| store.record_success(key),
            |state, _| state.record_success(),
            |state| state.record_success(),
        );
    }
}

impl Handler<PutOtpChallenge> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: PutOtpChallenge, _ctx: &mut Context<Self>) {
        let max = self.settings.max_otp_challenges;
        self.state_mut()
            .put_otp(&msg.challenge_id, msg.challenge, max);
        msg.reply.send(());
    }
}

impl Handler<VerifyOtp> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: VerifyOtp, _ctx: &mut Context<Self>) {
        let outcome = match self.state.as_mut() {
            Some(state) => state.verify_otp(&msg.challenge_id, msg.now, &msg.candidate_hash),
            None => OtpOutcome::Unknown,
        };
        msg.reply.send(outcome);
    }
}
