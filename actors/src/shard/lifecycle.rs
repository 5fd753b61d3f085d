//! Owns a shard's life: it learns its own (weak) address at start, for the user actors it
//! creates to report their stop, and runs the idle sweep timer.

use actix::{Actor, AsyncContext, Context};

use super::Shard;

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address().downgrade());
        let every = Shard::sweep_every(self.settings.idle_timeout);
        ctx.run_interval(every, |shard, ctx| shard.sweep(ctx));
    }
}
