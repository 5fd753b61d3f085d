//! Owns how a user actor answers each message. Lockout decisions go to the shared backing
//! when there is one; the actor waits for it (`ctx.wait`) so that no other message for this
//! user runs meanwhile, mirrors the answer, and decides locally if the backing fails.
//!
//! A reservation that is `Pending` (every attempt of the window held by verifications in
//! flight) is not answered yet: it waits in the user's bounded queue, oldest first. The
//! oldest is asked for again whenever this actor records an outcome (a success reopens the
//! window, a last failure locks it), and every `pending_poll` for outcomes recorded by
//! other instances; after `pending_wait` it is answered `AttemptsInFlight`.

use std::sync::Arc;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use super::messages::{RecordLoginFailure, RecordLoginSuccess, ReserveLogin};
use super::waiting::Waiter;
use super::UserActor;
use crate::backing::{BackingFuture, LockoutBacking};
use crate::clock::monotonic_now;
use crate::error::{ActorError, BackingError};
use crate::key::UserKey;
use crate::policy::lockout::{LockoutState, ReserveOutcome};

impl UserActor {
    /// Asks the shared backing (if any), mirrors its decision into the local state and
    /// hands it to `then`; decides with `local` when there is no backing or it fails.
    fn decide<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        call: impl FnOnce(&dyn LockoutBacking, &UserKey) -> BackingFuture<T>,
        adopt: impl FnOnce(&mut LockoutState, &T) + 'static,
        local: impl FnOnce(&mut LockoutState) -> T + 'static,
        then: impl FnOnce(&mut Self, &mut Context<Self>, T) + 'static,
    ) {
        let Some(store) = self.settings.backing.shared_store() else {
            let decided = local(&mut self.state_mut().lockout);
            self.settle();
            then(self, ctx, decided);
            return;
        };
        let pending = bounded(
            call(store.as_ref(), &self.key),
            self.settings.backing_timeout,
        );
        // ctx.wait: the mailbox (and the retry timer) is not polled until this resolves,
        // so calls for one user never overlap and the mirror is updated in order.
        ctx.wait(pending.into_actor(self).map(move |result, act, ctx| {
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
            then(act, ctx, decided);
        }));
    }

    /// Asks for a place for `waiter`: answers it when the window decides, and then gives
    /// the next waiting reservation its turn; otherwise it waits at the head of the queue.
    fn reserve(&mut self, ctx: &mut Context<Self>, waiter: Waiter) {
        let (policy, now) = (self.settings.lockout, waiter.now);
        self.decide(
            ctx,
            |store, key| store.reserve(key, policy, now),
            move |state, decided| state.adopt_reservation(&policy, now, *decided),
            move |state| state.reserve(&policy, now),
            move |act, ctx, outcome: ReserveOutcome| match outcome.decided() {
                Some(reservation) => {
                    waiter.reply.send(reservation);
                    act.next_waiter(ctx);
                }
                None => act.wait_first(ctx, waiter),
            },
        );
    }

    /// Gives the oldest waiting reservation, if any, its turn; stops the timer when
    /// none waits.
    fn next_waiter(&mut self, ctx: &mut Context<Self>) {
        match self.state.as_mut().and_then(|s| s.waiting.pop_front()) {
            Some(waiter) => self.reserve(ctx, waiter),
            None => {
                if let Some(timer) = self.state.as_mut().and_then(|s| s.waiting.timer.take()) {
                    ctx.cancel_future(timer);
                }
                self.settle();
            }
        }
    }

    /// Lets `waiter` wait, at the back of the queue or (the oldest, put back after a
    /// retry) at its front. Refuses it with `AttemptsInFlight` when `max_pending` wait
    /// already; returns whether it waits.
    fn park(&mut self, mut waiter: Waiter, front: bool) -> bool {
        let settings = Arc::clone(&self.settings);
        let waiting = &mut self.state_mut().waiting;
        if waiter.deadline.is_none() {
            if waiting.len() >= settings.max_pending {
                settings.counters.pending_refused();
                waiter.reply.fail(ActorError::AttemptsInFlight);
                self.settle();
                return false;
            }
            settings.counters.pending_waited();
            waiter.deadline = Some(monotonic_now() + settings.pending_wait);
        }
        if front {
            waiting.push_front(waiter);
        } else {
            waiting.push_back(waiter);
        }
        true
    }

    /// Keeps a reservation that is still pending at the head of the queue (it is the
    /// oldest, or the queue was empty), answers those that waited `pending_wait`, and
    /// keeps the retry timer armed while any waits.
    fn wait_first(&mut self, ctx: &mut Context<Self>, waiter: Waiter) {
        if !self.park(waiter, true) {
            return;
        }
        let settings = Arc::clone(&self.settings);
        let waiting = &mut self.state_mut().waiting;
        let now = monotonic_now();
        while let Some(overdue) = waiting.pop_overdue(now) {
            settings.counters.pending_refused();
            overdue.reply.fail(ActorError::AttemptsInFlight);
        }
        if !waiting.has_waiters() {
            // every one waited its time: stop the timer
            self.next_waiter(ctx);
        } else if waiting.timer.is_none() {
            // one retry per tick, armed again only after it (an interval would run late
            // ticks back to back and overlap backing calls)
            let timer = ctx.run_later(settings.pending_poll, |act, ctx| {
                if let Some(state) = act.state.as_mut() {
                    state.waiting.timer = None;
                }
                act.next_waiter(ctx);
            });
            self.state_mut().waiting.timer = Some(timer);
        }
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
        let waiter = Waiter::new(msg.now, msg.reply);
        let others_wait = self.state.as_ref().is_some_and(|s| s.waiting.has_waiters());
        if !others_wait {
            self.reserve(ctx, waiter);
        } else if self.park(waiter, false) {
            // first come, first served: the oldest is asked for first
            self.next_waiter(ctx);
        }
    }
}

impl Handler<RecordLoginFailure> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RecordLoginFailure, ctx: &mut Context<Self>) {
        let (policy, now, reply) = (self.settings.lockout, msg.now, msg.reply);
        self.decide(
            ctx,
            |store, key| store.record_failure(key, policy, now),
            move |state, decided| state.adopt_failure(&policy, now, *decided),
            move |state| state.record_failure(&policy, now),
            move |act, ctx, decided| {
                reply.send(decided);
                act.next_waiter(ctx);
            },
        );
    }
}

impl Handler<RecordLoginSuccess> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RecordLoginSuccess, ctx: &mut Context<Self>) {
        let reply = msg.reply;
        self.decide(
            ctx,
            |store, key| store.record_success(key),
            |state, _| state.record_success(),
            |state| state.record_success(),
            move |act, ctx, ()| {
                reply.send(());
                act.next_waiter(ctx);
            },
        );
    }
}
