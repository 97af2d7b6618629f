//! An actor that keeps its reactor busy.

use std::time::{Duration, Instant};

use credit_actors::{Actor, Ctx};

/// Computes for `per_run` in each run, then queues itself again, until it
/// is killed: a CPU-heavy actor, for what a reactor kept busy does to its
/// connections and to its peers' view of it.
#[derive(Debug)]
pub struct Busy {
    per_run: Duration,
}

impl Busy {
    /// Busy for `per_run` per run.
    pub fn new(per_run: Duration) -> Busy {
        Busy { per_run }
    }
}

impl Actor for Busy {
    type Msg = ();

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.send(ctx.me(), ());
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (): ()) {
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < self.per_run {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        ctx.send(ctx.me(), ());
    }
}
