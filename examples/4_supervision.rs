//! Supervision: a supervisor restarts a child that fails, one for one, and
//! the child is found by name after every restart.
//!
//! The worker panics on `Crash`. Its spec is `Permanent` (always
//! restarted) and `registered` (each incarnation holds the name "worker"),
//! so callers never keep a stale address: they look the worker up by name.
//! Past its restart intensity the supervisor gives up and ends, with a
//! reason that says why.
//!
//! `cargo run --example 4_supervision`

use std::time::Duration;

use credit_actors::actor::{ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::{Actor, ActorId, Config, Ctx, ExitReason, MonitorRef, Reactor, Reply};

/// Counts what it is told, and panics on `Crash`.
struct Worker {
    seen: u64,
}

enum WorkerMsg {
    Work,
    Crash,
    /// Answered with the work done by this incarnation.
    Seen(Reply<u64>),
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Work => self.seen += 1,
            WorkerMsg::Crash => panic!("told to crash"),
            WorkerMsg::Seen(reply) => reply.resolve(ctx, self.seen),
        }
    }
}

/// Reports how the supervisor ended, then stops the reactor.
struct Watcher(ActorId);

impl Actor for Watcher {
    type Msg = ();

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.monitor(self.0, 0);
    }

    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}

    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        println!("supervisor ended: {reason}");
        ctx.shutdown_reactor();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runtime catches a handler's panic and makes it the actor's exit
    // reason (the watcher prints it); keep the default hook's report quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let (handle, reactor) = Reactor::start(Config::default(), |_| {})?;
    let wait = Duration::from_secs(5);
    let supervisor = handle.spawn(|| {
        Supervisor::new()
            .intensity(2, Duration::from_secs(10))
            .child(
                ChildSpec::actor("worker", Restart::Permanent, || Worker { seen: 0 }).registered(),
            )
    })?;
    handle.spawn(move || Watcher(supervisor.id()))?;
    for round in 0..3 {
        // Answered after the supervisor handled every exit before it: the
        // name now belongs to the current incarnation.
        let children = handle.request_wait(supervisor, SupervisorMsg::Children, wait)?;
        let worker = handle
            .whereis::<Worker>("worker")?
            .expect("the worker is registered");
        println!(
            "round {round}: worker {worker} (restarts: {})",
            children[0].restarts
        );
        handle.send(worker, WorkerMsg::Work);
        let seen = handle.request_wait(worker, WorkerMsg::Seen, wait)?;
        println!("round {round}: it did {seen} piece(s) of work; now it crashes");
        handle.send(worker, WorkerMsg::Crash);
        // Queued behind the crash: dropped unanswered when the worker dies.
        if let Err(e) = handle.request_wait(worker, WorkerMsg::Seen, wait) {
            println!("round {round}: asking the old worker: {e}");
        }
    }
    // The third crash was one restart too many within the period: the
    // watcher reports why the supervisor ended, and stops the reactor.
    reactor.join().expect("reactor thread")?;
    Ok(())
}
