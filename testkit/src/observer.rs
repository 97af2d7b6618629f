//! A monitor observer: monitor notices as the test thread sees them.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Instant;

use credit_actors::{Actor, ActorId, Addr, Ctx, ExitReason, MonitorRef, ReactorHandle, Reply};

use crate::WAIT;

/// An actor that monitors what it is told to and reports each notice.
#[derive(Debug)]
pub struct Observer {
    tx: Sender<(ActorId, MonitorRef, ExitReason)>,
}

/// Messages to an [`Observer`].
#[derive(Debug)]
pub enum ObserverMsg {
    /// Monitors the actor with the reference, then answers.
    Watch(ActorId, MonitorRef, Reply<()>),
    /// Monitors the actor with the reference.
    WatchNow(ActorId, MonitorRef),
}

impl Actor for Observer {
    type Msg = ObserverMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ObserverMsg) {
        match msg {
            ObserverMsg::Watch(peer, reference, done) => {
                ctx.monitor(peer, reference);
                done.resolve(ctx, ());
            }
            ObserverMsg::WatchNow(peer, reference) => ctx.monitor(peer, reference),
        }
    }

    fn down(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        reference: MonitorRef,
        reason: &ExitReason,
    ) {
        let _ = self.tx.send((peer, reference, reason.clone()));
    }
}

/// Monitor notices as they arrive, kept until asked for.
#[derive(Debug)]
pub struct Downs {
    /// The observer.
    pub addr: Addr<Observer>,
    rx: Receiver<(ActorId, MonitorRef, ExitReason)>,
    seen: Vec<(ActorId, MonitorRef, ExitReason)>,
}

impl Downs {
    /// Spawns an observer monitoring each `(peer, reference)`; returns once
    /// every monitor is set.
    pub fn observe(handle: &ReactorHandle, peers: &[(ActorId, MonitorRef)]) -> Downs {
        let (tx, rx) = channel();
        let addr = handle
            .spawn(move || Observer { tx })
            .expect("spawn observer");
        for &(p, r) in peers {
            handle
                .request_wait(addr, move |done| ObserverMsg::Watch(p, r, done), WAIT)
                .expect("watch");
        }
        Downs {
            addr,
            rx,
            seen: Vec::new(),
        }
    }

    /// The next notice, whichever peer it is about (bounded wait).
    pub fn next_notice(&mut self) -> (ActorId, MonitorRef, ExitReason) {
        if !self.seen.is_empty() {
            return self.seen.remove(0);
        }
        self.rx
            .recv_timeout(WAIT)
            .expect("no monitor notice arrived in time")
    }

    /// The notice about `peer`: (reference, reason) (bounded wait).
    pub fn of(&mut self, peer: ActorId) -> (MonitorRef, ExitReason) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.seen.iter().position(|(p, ..)| *p == peer) {
                let (_, r, reason) = self.seen.remove(i);
                return (r, reason);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(notice) => self.seen.push(notice),
                Err(_) => panic!("no down notice for {peer}; others: {:?}", self.seen),
            }
        }
    }

    /// The exit reason of `peer` (bounded wait).
    pub fn reason_of(&mut self, peer: ActorId) -> ExitReason {
        self.of(peer).1
    }
}
