//! The typed half of an actor slot: behaviour plus mailbox, and the
//! monomorphised functions the reactor calls through a static table.
//!
//! While an actor runs, its behaviour is moved out of the cell and its
//! mailbox stays in place, so anything sent during the turn (to itself
//! included) lands in the mailbox by the ordinary path.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::actor::{Actor, ActorId, Ctx, ExitReason, LinkAction, MonitorRef};
use crate::reactor::{Core, Ready};

/// A notice from the runtime, queued in order with messages.
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

pub(crate) enum Envelope<M> {
    Msg(M),
    Signal(Signal),
}

pub(crate) struct ActorCell<A: Actor> {
    /// `None` while the actor runs. Boxed so that taking it out for a turn
    /// moves a pointer, not the whole behaviour (a connection is several
    /// hundred bytes).
    pub(crate) actor: Option<Box<A>>,
    pub(crate) started: bool,
    /// Where senders push. A turn takes it as its batch (so it pops
    /// without looking the slot up) and gives it back afterwards with its
    /// capacity, so steady messaging allocates nothing. Only messages an
    /// actor sends itself during its own turn find an empty queue.
    pub(crate) mailbox: VecDeque<Envelope<A::Msg>>,
}

/// The cell in `slot` as an `ActorCell<A>`, if that is its type.
///
/// The `TypeId` recorded at spawn is compared directly instead of asking the
/// trait object (`Any::type_id` is a virtual call, and this runs on every
/// send and every turn: about 65 instructions per echoed line, measured with
/// callgrind).
#[inline]
pub(crate) fn downcast<A: Actor>(
    cell: &mut Box<dyn ErasedCell>,
    type_id: TypeId,
) -> Option<&mut ActorCell<A>> {
    if type_id == TypeId::of::<ActorCell<A>>() {
        let ptr: *mut dyn ErasedCell = &mut **cell;
        // SAFETY: `type_id` is the `TypeId` of the value this box was
        // created with (recorded by `Core::spawn` from the same `A`), and the
        // box's contents are never replaced, so the pointee is an
        // `ActorCell<A>`. The returned borrow is tied to `cell`'s.
        Some(unsafe { &mut *ptr.cast::<ActorCell<A>>() })
    } else {
        None
    }
}

/// Type-erased access to a cell, for what the reactor does without knowing
/// the actor's type.
pub(crate) trait ErasedCell {
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn push_signal(&mut self, signal: Signal);
    /// Frees the mailbox's memory if it is empty (an idle actor).
    fn trim(&mut self);
}

impl<A: Actor> ErasedCell for ActorCell<A> {
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn push_signal(&mut self, signal: Signal) {
        self.mailbox.push_back(Envelope::Signal(signal));
    }
    fn trim(&mut self) {
        if self.mailbox.is_empty() && self.mailbox.capacity() > 0 {
            self.mailbox = VecDeque::new();
        }
    }
}

/// The functions the reactor calls for one actor type.
pub(crate) struct VTable {
    pub(crate) run: fn(&mut Core, ActorId),
    pub(crate) turn_end: fn(&mut Core, ActorId),
    pub(crate) stop: fn(&mut Core, Box<dyn ErasedCell>, ActorId, &ExitReason),
    pub(crate) type_name: fn() -> &'static str,
}

pub(crate) trait HasVTable {
    const VTABLE: VTable;
}

impl<A: Actor> HasVTable for A {
    const VTABLE: VTable = VTable {
        run: run_actor::<A>,
        turn_end: turn_end_actor::<A>,
        stop: stop_actor::<A>,
        type_name: std::any::type_name::<A>,
    };
}

pub(crate) fn new_cell<A: Actor>(actor: A) -> Box<dyn ErasedCell> {
    Box::new(ActorCell {
        actor: Some(Box::new(actor)),
        started: false,
        mailbox: VecDeque::new(),
    })
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

/// One turn of one actor: its `started` hook the first time, then up to
/// `budget` envelopes, then pending I/O readiness.
fn run_actor<A: Actor>(core: &mut Core, id: ActorId) {
    let Some(slot) = core.slot_mut(id) else {
        return;
    };
    let ready = std::mem::take(&mut slot.ready);
    let type_id = slot.type_id;
    let Some(cell) = downcast::<A>(&mut slot.cell, type_id) else {
        return;
    };
    let Some(mut actor) = cell.actor.take() else {
        return;
    };
    let first = !cell.started;
    cell.started = true;
    let mut batch = std::mem::take(&mut cell.mailbox);
    let budget = core.config.budget;
    core.begin_run(id);
    // Outside the closure, so a panic does not lose the count.
    let mut handled = 0usize;

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut ctx = Ctx::<A>::new(core, id);
        if first {
            actor.started(&mut ctx);
        }
        while handled < budget && !ctx.core().running_exits() {
            let Some(envelope) = batch.pop_front() else {
                break;
            };
            handled += 1;
            match envelope {
                Envelope::Msg(msg) => actor.handle(&mut ctx, msg),
                Envelope::Signal(Signal::Link { from, reason }) => {
                    if actor.link_exit(&mut ctx, from, &reason) == LinkAction::Exit {
                        ctx.exit(ExitReason::linked(from, &reason));
                    }
                }
                Envelope::Signal(Signal::Down {
                    peer,
                    reference,
                    reason,
                }) => actor.down(&mut ctx, peer, reference, &reason),
            }
        }
        if ready != 0 && !ctx.core().running_exits() {
            actor.io_ready(&mut ctx, Ready(ready));
        }
    }));

    if let Err(payload) = outcome {
        let msg = panic_message(payload);
        log::error!(
            "actor {id} ({}) panicked: {msg}",
            std::any::type_name::<A>()
        );
        core.exit(id, ExitReason::Failed(msg));
    }
    let exiting = core.end_run();
    core.stats.messages += handled as u64;
    let mut more = false;
    if let Some(cell) = core.cell_mut::<A>(id) {
        cell.actor = Some(actor);
        // Leftovers go before what arrived during the turn.
        batch.append(&mut cell.mailbox);
        more = !batch.is_empty();
        cell.mailbox = batch;
    }
    if more && !exiting {
        if handled >= budget {
            core.stats.forced_yields += 1;
        }
        core.schedule(id);
    }
}

fn turn_end_actor<A: Actor>(core: &mut Core, id: ActorId) {
    let Some(mut actor) = core.cell_mut::<A>(id).and_then(|c| c.actor.take()) else {
        return;
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        actor.turn_end(&mut Ctx::<A>::new(core, id));
    }));
    if let Err(payload) = outcome {
        core.exit(id, ExitReason::Failed(panic_message(payload)));
    }
    if let Some(cell) = core.cell_mut::<A>(id) {
        cell.actor = Some(actor);
    }
}

fn stop_actor<A: Actor>(
    core: &mut Core,
    cell: Box<dyn ErasedCell>,
    id: ActorId,
    reason: &ExitReason,
) {
    let Ok(mut cell) = cell.into_any().downcast::<ActorCell<A>>() else {
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
