//! The actor layer's per-reactor state, and the operations on the
//! reactor's [`Core`] that keep it: exits, links and monitors.
//!
//! Invariants:
//! - exits are queued and processed between runs (in [`Layer::settle`]),
//!   never inside a handler, so a kill from one actor takes effect before
//!   the next actor runs and no handler runs re-entrantly;
//! - a link is recorded on both sides, a monitor on the monitored side;
//!   processing an exit removes the slot, calls `stopped`, then queues a
//!   link notice to every linked actor and a monitor notice to every
//!   monitor, in the mailboxes, behind what was sent before.

use std::collections::{HashMap, VecDeque};
use std::ptr::NonNull;

use crate::actor::few::Few;
use crate::actor::registry::Names;
use crate::actor::request::{ActorTimer, Requests};
use crate::actor::{ActorId, Core, ExitReason, MonitorRef};
use crate::reactor::Layer;

/// A notice from the runtime about another actor's exit, queued in order
/// with messages.
pub(crate) enum Signal {
    Link {
        from: ActorId,
        reason: ExitReason,
    },
    Down {
        peer: ActorId,
        reference: MonitorRef,
        reason: ExitReason,
    },
}

/// The actor layer: its state in each reactor (exits queued, pending
/// requests, registered names). It is the `L` of the reactor's
/// `Core<L>`; users meet it only through the [`Core`] alias.
#[derive(Debug, Default)]
pub struct System {
    exits: VecDeque<(ActorId, ExitReason)>,
    /// The running actor has an exit queued: it handles nothing more.
    running_exits: bool,
    pub(crate) requests: Requests,
    pub(crate) names: Names,
    /// Monitors this reactor's actors hold on actors of other reactors:
    /// watcher to `(peer, reference)`. A `Down` from another reactor is
    /// delivered only if its entry is here, and takes it.
    remote_monitors: HashMap<ActorId, Few<(ActorId, MonitorRef)>>,
}

impl System {
    pub(crate) fn begin_run(&mut self) {
        self.running_exits = false;
    }

    /// Ends the current run; true if the actor asked to exit (or was told).
    pub(crate) fn end_run(&mut self) -> bool {
        std::mem::take(&mut self.running_exits)
    }

    /// True once the running actor has an exit queued.
    pub(crate) fn running_exits(&self) -> bool {
        self.running_exits
    }

    fn note_remote_monitor(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        self.remote_monitors
            .entry(watcher)
            .or_default()
            .push((peer, reference));
    }

    /// Removes the entry of a monitor on another reactor's actor; false if
    /// there was none.
    pub(crate) fn forget_remote_monitor(
        &mut self,
        watcher: ActorId,
        peer: ActorId,
        reference: MonitorRef,
    ) -> bool {
        let Some(list) = self.remote_monitors.get_mut(&watcher) else {
            return false;
        };
        let found = list.swap_remove_first(&(peer, reference));
        if list.as_slice().is_empty() {
            self.remote_monitors.remove(&watcher);
        }
        found
    }
}

/// What the actor layer keeps in each slot.
#[derive(Debug, Default)]
pub struct ActorSlot {
    /// An exit is queued; the actor receives nothing more.
    pub(crate) exiting: bool,
    /// Linked peers (both sides record the link).
    pub(crate) links: Few<ActorId>,
    /// Who monitors this actor, and with which reference.
    monitors: Few<(ActorId, MonitorRef)>,
}

/// The actor layer's functions for one actor type.
#[derive(Debug)]
pub struct ActorVTable {
    /// Queues a notice in the mailbox of a live cell of the type.
    pub(crate) push_signal: unsafe fn(NonNull<u8>, Signal),
    /// Ends a cell of the type that its slot no longer holds, taking
    /// ownership of it.
    pub(crate) stop: unsafe fn(&mut Core, NonNull<u8>, ActorId, &ExitReason),
    /// Messages waiting in the mailbox of a live cell of the type.
    pub(crate) waiting: unsafe fn(NonNull<u8>) -> usize,
    /// The behaviour's [`Actor::warning`](crate::Actor::warning), for a
    /// live cell of the type that is not running.
    pub(crate) warning: unsafe fn(NonNull<u8>) -> Option<String>,
}

impl Layer for System {
    type Slot = ActorSlot;
    type VTable = ActorVTable;
    type Timer = ActorTimer;

    #[inline]
    fn settle(core: &mut Core) {
        if !core.layer.exits.is_empty() {
            core.process_exits();
        }
        core.reap_orphans();
    }

    fn pending(core: &Core) -> bool {
        !core.layer.exits.is_empty()
    }

    fn fire(core: &mut Core, timer: ActorTimer) {
        match timer {
            ActorTimer::RequestTimeout(id) => core.request_timed_out(id),
        }
    }

    fn trim(core: &mut Core) {
        core.trim_orphans();
    }

    fn turn_done(core: &mut Core) {
        if core.in_group() {
            core.route_orphans();
        }
    }

    fn shutdown(core: &mut Core) {
        for id in core.ids() {
            core.terminate(id, ExitReason::Shutdown);
        }
        Self::settle(core);
    }

    unsafe fn waiting(cell: NonNull<u8>, table: &ActorVTable) -> usize {
        // SAFETY: as the caller guarantees.
        unsafe { (table.waiting)(cell) }
    }

    unsafe fn warning(cell: NonNull<u8>, table: &ActorVTable) -> Option<String> {
        // SAFETY: as the caller guarantees.
        unsafe { (table.warning)(cell) }
    }
}

impl Core {
    // ----- exits -----------------------------------------------------------

    /// Ends `id` with `reason` once the current handler returns. The first
    /// reason given wins.
    pub fn terminate(&mut self, id: ActorId, reason: ExitReason) {
        if id.reactor() != self.reactor_index() {
            self.post_to(id.reactor(), move |core: &mut Core| {
                core.terminate(id, reason)
            });
            return;
        }
        let running = self.running() == Some(id);
        if let Some(slot) = self.slot_mut(id) {
            if !slot.data.exiting {
                slot.data.exiting = true;
                self.layer.exits.push_back((id, reason));
                if running {
                    self.layer.running_exits = true;
                }
            }
        }
    }

    /// Kills `id` ([`ExitReason::Killed`]). It cannot refuse.
    pub fn kill(&mut self, id: ActorId) {
        self.terminate(id, ExitReason::Killed)
    }

    fn process_exits(&mut self) {
        while let Some((id, reason)) = self.layer.exits.pop_front() {
            let Some(slot) = self.remove(id) else {
                continue;
            };
            // Before the slot is taken apart: should any of this panic, the
            // slot still frees its cell.
            trace_ev!(self, "X {id} {reason}");
            log::trace!("actor {id} ({}) exited: {reason}", slot.vtable.type_name());
            self.layer.names.forget(id);
            if !self.layer.remote_monitors.is_empty() {
                self.layer.remote_monitors.remove(&id);
            }
            let (cell, vtable, data) = slot.into_parts();
            // SAFETY: `cell` came out of its slot just now, as a cell of the
            // table's type, and is handed over once.
            unsafe { (vtable.layer().stop)(self, cell, id, &reason) };
            for peer in data.links {
                trace_ev!(self, "L {id} {peer}");
                if let Some(p) = self.slot_mut(peer) {
                    p.data.links.remove_all(&id);
                }
                self.push_signal(
                    peer,
                    Signal::Link {
                        from: id,
                        reason: reason.clone(),
                    },
                );
            }
            for (watcher, reference) in data.monitors {
                // The planted bug: a second notice to a watcher already in
                // the run queue.
                let twice = crate::hooks::planted(crate::hooks::Bug::DoubleMonitor)
                    && self.slot(watcher).is_some_and(|s| s.scheduled);
                for _ in 0..1 + usize::from(twice) {
                    trace_ev!(self, "M {id} {watcher}");
                    self.push_signal(
                        watcher,
                        Signal::Down {
                            peer: id,
                            reference,
                            reason: reason.clone(),
                        },
                    );
                }
            }
            self.reap_orphans();
        }
    }

    // ----- links and monitors ----------------------------------------------

    /// Links `a` and `b` both ways. Linking a dead actor delivers the link
    /// notice at once, with [`ExitReason::NoSuchActor`].
    pub fn link(&mut self, a: ActorId, b: ActorId) {
        if a == b {
            return;
        }
        let me = self.reactor_index();
        if a.reactor() != me && b.reactor() != me {
            // From a third reactor: done from `a`'s, so that both halves
            // leave from one reactor, in order.
            self.post_to(a.reactor(), move |core: &mut Core| core.link(a, b));
            return;
        }
        if a.reactor() != me || b.reactor() != me {
            // Each side records the link on its own reactor, `a`'s first;
            // a side whose actor is dead tells the other one instead.
            self.link_half(a, b);
            self.link_half(b, a);
            return;
        }
        if !self.is_alive(b) {
            self.push_signal(
                a,
                Signal::Link {
                    from: b,
                    reason: ExitReason::NoSuchActor,
                },
            );
            return;
        }
        if !self.is_alive(a) {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            if let Some(slot) = self.slot_mut(x) {
                if !slot.data.links.contains(&y) {
                    slot.data.links.push(y);
                }
            }
        }
    }

    /// `x`'s side of a link with `y`, on `x`'s reactor: recorded if `x` is
    /// alive, else `y` is told that `x` is gone.
    fn link_half(&mut self, x: ActorId, y: ActorId) {
        if x.reactor() != self.reactor_index() {
            self.post_to(x.reactor(), move |core: &mut Core| core.link_half(x, y));
            return;
        }
        match self.slot_mut(x) {
            Some(slot) if !slot.data.exiting => {
                if !slot.data.links.contains(&y) {
                    slot.data.links.push(y);
                }
            }
            _ => self.push_signal(
                y,
                Signal::Link {
                    from: x,
                    reason: ExitReason::NoSuchActor,
                },
            ),
        }
    }

    /// Removes the link between `a` and `b`, if there is one (each side on
    /// its own reactor).
    pub fn unlink(&mut self, a: ActorId, b: ActorId) {
        for (x, y) in [(a, b), (b, a)] {
            if x.reactor() != self.reactor_index() {
                self.post_to(x.reactor(), move |core: &mut Core| {
                    if let Some(slot) = core.slot_mut(x) {
                        slot.data.links.remove_all(&y);
                    }
                });
            } else if let Some(slot) = self.slot_mut(x) {
                slot.data.links.remove_all(&y);
            }
        }
    }

    /// `watcher` monitors `peer` with `reference`. Monitoring a dead actor
    /// notifies at once, with [`ExitReason::NoSuchActor`].
    pub fn monitor(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        let me = self.reactor_index();
        if watcher.reactor() != me && peer.reactor() != watcher.reactor() {
            // Done from the watcher's reactor: its note must be made
            // before the `Down` can arrive, which a note sent from here
            // through another lane would not ensure.
            self.post_to(watcher.reactor(), move |core: &mut Core| {
                core.monitor(watcher, peer, reference)
            });
            return;
        }
        if watcher.reactor() != peer.reactor() {
            // The watcher's reactor (this one) notes the monitor, so that
            // its `Down` fires once and never after `demonitor`.
            self.layer.note_remote_monitor(watcher, peer, reference);
        }
        if peer.reactor() != me {
            self.post_to(peer.reactor(), move |core: &mut Core| {
                core.watch(watcher, peer, reference)
            });
            return;
        }
        self.watch(watcher, peer, reference);
    }

    /// The monitored side of `monitor`, on `peer`'s reactor.
    fn watch(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        match self.slot_mut(peer) {
            Some(slot) if !slot.data.exiting => slot.data.monitors.push((watcher, reference)),
            _ => self.push_signal(
                watcher,
                Signal::Down {
                    peer,
                    reference,
                    reason: ExitReason::NoSuchActor,
                },
            ),
        }
    }

    /// Removes a monitor, if there is one.
    pub fn demonitor(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        let me = self.reactor_index();
        if watcher.reactor() != me && peer.reactor() != watcher.reactor() {
            self.post_to(watcher.reactor(), move |core: &mut Core| {
                core.demonitor(watcher, peer, reference)
            });
            return;
        }
        if watcher.reactor() != peer.reactor() {
            self.layer.forget_remote_monitor(watcher, peer, reference);
        }
        if peer.reactor() != me {
            self.post_to(peer.reactor(), move |core: &mut Core| {
                if let Some(slot) = core.slot_mut(peer) {
                    slot.data.monitors.swap_remove_first(&(watcher, reference));
                }
            });
        } else if let Some(slot) = self.slot_mut(peer) {
            slot.data.monitors.swap_remove_first(&(watcher, reference));
        }
    }
}
