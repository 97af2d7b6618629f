//! Links and monitors: how actors learn that others ended.
//!
//! A *link* is two-way and fires on every exit, normal ones included: by
//! default the linked actor ends too, with a reason that names the chain's
//! origin. An actor may handle the notice and stay alive instead. A
//! *monitor* is one-way, carries a reference the watcher chose, and never
//! ends the watcher.
//!
//! Here `a`, `b` and `c` are linked in a chain; a watcher monitors all
//! three and the chain is started by killing `a`. Then a second chain shows
//! an actor that handles its link notice and stays alive.
//!
//! `cargo run --example 3_links_and_monitors`

use credit_actors::{Actor, ActorId, Ctx, ExitReason, LinkAction, MonitorRef, Reactor};

/// Does nothing; links decide its fate.
struct Member;

impl Actor for Member {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}
}

/// Handles link notices and stays alive.
struct Survivor;

impl Actor for Survivor {
    type Msg = ();

    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}

    fn link_exit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reason: &ExitReason,
    ) -> LinkAction {
        println!("survivor: linked {peer} ended ({reason}); staying alive");
        ctx.stop();
        LinkAction::Stay
    }
}

/// Prints every monitor notice; stops after `expect` of them.
struct Watcher {
    names: Vec<(ActorId, &'static str)>,
    expect: usize,
}

impl Actor for Watcher {
    type Msg = ();

    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}

    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reference: MonitorRef,
        reason: &ExitReason,
    ) {
        let name = self
            .names
            .iter()
            .find(|(id, _)| *id == peer)
            .map_or("?", |(_, n)| n);
        println!("watcher: {name} (monitor {reference}) ended: {reason}");
        self.expect -= 1;
        if self.expect == 0 {
            ctx.stop();
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut reactor = Reactor::new()?;
    let a = reactor.spawn(Member).id();
    let b = reactor.spawn(Member).id();
    let c = reactor.spawn(Member).id();
    reactor.link(a, b);
    reactor.link(b, c);
    let w = reactor.spawn(Watcher {
        names: vec![(a, "a"), (b, "b"), (c, "c")],
        expect: 3,
    });
    for (i, id) in [a, b, c].into_iter().enumerate() {
        reactor.monitor(w.id(), id, i as MonitorRef + 1);
    }
    reactor.kill(a);
    reactor.run()?;

    // A second reactor: a link notice handled.
    let mut reactor = Reactor::new()?;
    let member = reactor.spawn(Member).id();
    let survivor = reactor.spawn(Survivor).id();
    reactor.link(member, survivor);
    reactor.terminate(member, ExitReason::value("done"));
    reactor.run()
}
