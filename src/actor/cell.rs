//! The typed half of an actor's slot: behaviour plus mailbox, and the
//! monomorphised functions the reactor calls through its function table.
//!
//! While an actor runs, its behaviour is moved out of the cell and its
//! mailbox stays in place, so anything sent during the run (to itself
//! included) lands in the mailbox by the ordinary path.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use std::any::TypeId;

use crate::actor::system::{ActorSlot, ActorVTable, Signal, System};
use crate::actor::{Actor, ActorId, Addr, Core, Ctx, Destination, ExitReason, LinkAction};
use crate::reactor::{Ready, VTable};

/// What a mailbox holds. Notices are boxed: they are rare, and the
/// envelope of every message is then no larger than the message.
pub(crate) enum Envelope<M> {
    Msg(M),
    Signal(Box<Signal>),
}

pub(crate) struct ActorCell<A: Actor> {
    /// `None` while the actor runs. Boxed so that taking it out for a run
    /// moves a pointer, not the whole behaviour (a socket is several
    /// hundred bytes).
    pub(crate) actor: Option<Box<A>>,
    pub(crate) started: bool,
    /// Where senders push. A run takes it as its batch (so it pops without
    /// looking the slot up) and gives it back afterwards with its capacity,
    /// so steady messaging allocates nothing. Only messages an actor sends
    /// itself during its own run find an empty queue.
    pub(crate) mailbox: VecDeque<Envelope<A::Msg>>,
}

impl<A: Actor> ActorCell<A> {
    pub(crate) fn new(actor: A) -> ActorCell<A> {
        ActorCell {
            actor: Some(Box::new(actor)),
            started: false,
            mailbox: VecDeque::new(),
        }
    }
}

/// The function table of an actor type.
pub(crate) trait HasVTable {
    const VTABLE: VTable<System>;
}

impl<A: Actor> HasVTable for A {
    const VTABLE: VTable<System> = VTable::new(
        run_actor::<A>,
        turn_end_actor::<A>,
        trim::<A>,
        std::any::type_name::<A>,
        ActorVTable {
            push_signal: push_signal::<A>,
            stop: stop_actor::<A>,
        },
    );
}

/// The cell behind `cell`, which the table's owner guarantees is an
/// `ActorCell<A>`.
fn cell_of<A: Actor>(cell: &mut dyn Any) -> Option<&mut ActorCell<A>> {
    cell.downcast_mut::<ActorCell<A>>()
}

fn push_signal<A: Actor>(cell: &mut dyn Any, signal: Signal) {
    if let Some(cell) = cell_of::<A>(cell) {
        cell.mailbox.push_back(Envelope::Signal(Box::new(signal)));
    }
}

/// Frees the mailbox's memory if it is empty (an idle actor).
fn trim<A: Actor>(cell: &mut dyn Any) {
    if let Some(cell) = cell_of::<A>(cell) {
        if cell.mailbox.is_empty() && cell.mailbox.capacity() > 0 {
            cell.mailbox = VecDeque::new();
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("panic with a non-string payload")
    }
}

/// The cell of slot `idx`, from a function of the slot's own table.
///
/// The reactor calls `run_actor::<A>` and `turn_end_actor::<A>` only through
/// the table `Core::spawn` stored beside an `ActorCell<A>`, and a slot's
/// cell and table never change, so the type check a send makes is not
/// needed here (it cost about 15 instructions per message).
#[inline(always)]
fn own_cell<A: Actor>(core: &mut Core, idx: usize) -> Option<&mut ActorCell<A>> {
    let slot = core.slot_at(idx)?;
    // SAFETY: see above: the slot's table is `A`'s, so its cell is an
    // `ActorCell<A>`.
    Some(unsafe { slot.cell_unchecked::<ActorCell<A>>() })
}

/// The next envelope of the actor in slot `idx`, whose run is under way.
#[inline(always)]
fn pop<A: Actor>(core: &mut Core, idx: usize) -> Option<Envelope<A::Msg>> {
    own_cell::<A>(core, idx)?.mailbox.pop_front()
}

/// Puts a behaviour back in its cell after a run or a hook.
#[inline(always)]
fn put_back<A: Actor>(cell: &mut ActorCell<A>, actor: Box<A>) {
    debug_assert!(cell.actor.is_none());
    // The slot was empty: nothing to drop.
    std::mem::forget(cell.actor.replace(actor));
}

/// One run of one actor: its `started` hook the first time, then the
/// envelopes waiting when the run began (at most `budget`), then pending
/// I/O readiness. What the actor sends itself during the run waits for the
/// next run, as what others send does.
fn run_actor<A: Actor>(core: &mut Core, id: ActorId) {
    let idx = id.index() as usize;
    let budget = core.config.budget;
    let Some(slot) = core.slot_at(idx) else {
        return;
    };
    let ready = std::mem::take(&mut slot.ready);
    let Some(cell) = own_cell::<A>(core, idx) else {
        return;
    };
    let Some(mut actor) = cell.actor.take() else {
        return;
    };
    let first = !cell.started;
    cell.started = true;
    let waiting = cell.mailbox.len().min(budget);
    core.layer.begin_run();
    // Outside the closure, so a panic does not lose the count.
    let mut handled = 0usize;

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut ctx = Ctx::<A>::new(core, id);
        if first {
            actor.started(&mut ctx);
        }
        while handled < waiting && !ctx.core().layer.running_exits() {
            let Some(envelope) = pop::<A>(ctx.core(), idx) else {
                break;
            };
            handled += 1;
            match envelope {
                Envelope::Msg(msg) => actor.handle(&mut ctx, msg),
                Envelope::Signal(signal) => match *signal {
                    Signal::Link { from, reason } => {
                        if actor.link_exit(&mut ctx, from, &reason) == LinkAction::Exit {
                            ctx.exit(ExitReason::linked(from, &reason));
                        }
                    }
                    Signal::Down {
                        peer,
                        reference,
                        reason,
                    } => actor.down(&mut ctx, peer, reference, &reason),
                },
            }
        }
        if ready != 0 && !ctx.core().layer.running_exits() {
            actor.io_ready(&mut ctx, Ready(ready));
        }
    }));

    if let Err(payload) = outcome {
        let msg = panic_message(payload);
        log::error!(
            "actor {id} ({}) panicked: {msg}",
            std::any::type_name::<A>()
        );
        core.terminate(id, ExitReason::Failed(msg));
    }
    let exiting = core.layer.end_run();
    core.stats.messages += handled as u64;
    let Some(cell) = own_cell::<A>(core, idx) else {
        return;
    };
    put_back(cell, actor);
    if !cell.mailbox.is_empty() && !exiting {
        if handled >= budget {
            core.stats.forced_yields += 1;
        }
        core.schedule(id);
    }
}

fn turn_end_actor<A: Actor>(core: &mut Core, id: ActorId) {
    let idx = id.index() as usize;
    let Some(mut actor) = own_cell::<A>(core, idx).and_then(|c| c.actor.take()) else {
        return;
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        actor.turn_end(&mut Ctx::<A>::new(core, id));
    }));
    if let Err(payload) = outcome {
        core.terminate(id, ExitReason::Failed(panic_message(payload)));
    }
    if let Some(cell) = own_cell::<A>(core, idx) {
        put_back(cell, actor);
    }
}

/// Ends an actor already removed from its slot: its `stopped` hook, then
/// the drop of its behaviour and mailbox.
fn stop_actor<A: Actor>(core: &mut Core, cell: Box<dyn Any>, id: ActorId, reason: &ExitReason) {
    let Ok(mut cell) = cell.downcast::<ActorCell<A>>() else {
        return;
    };
    if let Some(mut actor) = cell.actor.take() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            actor.stopped(&mut Ctx::<A>::new(core, id), reason);
            drop(actor);
        }));
        if let Err(payload) = outcome {
            log::error!(
                "actor {id} panicked while stopping: {}",
                panic_message(payload)
            );
        }
    }
    // Dropping the mailbox drops any unanswered reply slots in it, which
    // rejects those requests.
    drop(cell);
}

impl Core {
    // ----- spawn and send --------------------------------------------------

    /// Spawns an actor; it runs its `started` hook on its first run.
    pub fn spawn<A: Actor>(&mut self, actor: A) -> Addr<A> {
        let id = self.insert(
            ActorCell::new(actor),
            &<A as HasVTable>::VTABLE,
            ActorSlot::default(),
        );
        trace_ev!(self, "S {id} {}", std::any::type_name::<A>());
        self.schedule(id);
        Addr::new(id)
    }

    /// Sends `msg` to `to` (an [`Addr`] or a
    /// [`Recipient`](crate::actor::Recipient)). False, and the message is
    /// dropped and counted in `Stats::dead_sends`, if the actor is dead.
    #[inline]
    pub fn send<M>(&mut self, to: impl Destination<M>, msg: M) -> bool {
        to.deliver(self, msg)
    }

    /// Sends `msg` to the actor `to`, of type `A`.
    #[inline]
    pub(crate) fn send_to<A: Actor>(&mut self, to: ActorId, msg: A::Msg) -> bool {
        let clock = self.clock();
        let newly = match self.slot_mut(to) {
            Some(slot) if !slot.data.exiting => match slot.cell_mut::<ActorCell<A>>() {
                Some(cell) => {
                    cell.mailbox.push_back(Envelope::Msg(msg));
                    slot.mark_scheduled(clock)
                }
                None => return self.dead_send(),
            },
            _ => return self.dead_send(),
        };
        if newly {
            self.push_runnable(to, true);
        }
        true
    }

    fn dead_send(&mut self) -> bool {
        self.stats.dead_sends += 1;
        false
    }

    /// Counts a send (or request) to a dead actor.
    pub(crate) fn count_dead_send(&mut self) {
        self.stats.dead_sends += 1;
    }

    /// True if `id` names a live actor that is not on its way out.
    pub fn is_alive(&self, id: ActorId) -> bool {
        self.slot(id).is_some_and(|s| !s.data.exiting)
    }

    /// The state of the actor `to`, in place, when acting on it now cannot
    /// be told apart from sending it a message that it handles next: it is
    /// on this reactor, alive, not running, and has no envelope waiting
    /// (so nothing sent to it earlier is overtaken). Otherwise `None`, and
    /// the caller sends the message instead.
    ///
    /// Socket actors use it so that a controller's `send_line` and
    /// `issue_credit` act on the socket's output queue and credit counter
    /// without a mailbox round trip. The borrow ends before the caller uses
    /// the core again, so what the operation implies for the reactor
    /// (a turn-end flush, a wake-up) is done afterwards, by id.
    #[inline]
    pub fn direct<A: Actor>(&mut self, to: Addr<A>) -> Option<&mut A> {
        let slot = self.slot_mut(to.id())?;
        if slot.data.exiting {
            return None;
        }
        let cell = slot.cell_mut::<ActorCell<A>>()?;
        if !cell.mailbox.is_empty() {
            return None;
        }
        cell.actor.as_deref_mut()
    }

    /// True if `id` is a live actor of type `A`.
    pub(crate) fn is_a<A: Actor>(&self, id: ActorId) -> bool {
        self.slot(id)
            .is_some_and(|s| s.type_id == TypeId::of::<ActorCell<A>>())
    }

    pub(crate) fn push_signal(&mut self, to: ActorId, signal: Signal) {
        if let Some(slot) = self.slot_mut(to) {
            if !slot.data.exiting {
                (slot.vtable.layer().push_signal)(&mut *slot.cell, signal);
                self.schedule(to);
            }
        }
    }
}
