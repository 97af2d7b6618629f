//! The typed half of an actor's slot: behaviour plus mailbox, and the
//! monomorphised functions the reactor calls through its function table.
//!
//! An actor runs in place: its behaviour stays in the cell and the run
//! borrows it through the cell's raw pointer, while whatever the core does
//! to the cell meanwhile (a send, to itself included, a notice, a trim)
//! reaches the mailbox and flags through the same pointer, field by field.
//! No reference to a whole cell is ever made while it is in its slot, so
//! the run's borrow and those accesses never overlap; and a cell is freed
//! only once its slot is gone, which never happens during its run
//! (`Core::remove` refuses the running cell).

use std::any::{Any, TypeId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::Arc;

use crate::actor::mailbox::Mailbox;

use crate::actor::system::{ActorSlot, ActorVTable, Signal, System};
use crate::actor::{
    Actor, ActorId, Addr, Core, Ctx, Destination, ExitReason, LinkAction, SendError,
};
use crate::reactor::{Ready, VTable};

/// What a mailbox holds. Notices are boxed: they are rare, and the
/// envelope of every message is then no larger than the message.
pub(crate) enum Envelope<M> {
    Msg(M),
    Signal(Box<Signal>),
}

/// An actor's cell: one allocation holding its mailbox, its flags and its
/// behaviour. Reached only through a raw pointer while in its slot (see the
/// module's notes).
pub(crate) struct ActorCell<A: Actor> {
    /// Where senders push; a run pops the envelopes that were waiting when
    /// it began.
    mailbox: Mailbox<Envelope<A::Msg>>,
    /// `STARTED` once its `started` hook has run, plus `RUNNING` while a
    /// run or a hook borrows the behaviour: one byte, so that "started and
    /// idle" (what `Core::direct` needs) is one compare.
    state: u8,
    actor: A,
}

/// `ActorCell::state`: the `started` hook has run.
const STARTED: u8 = 1;
/// `ActorCell::state`: a run or a hook borrows the behaviour.
const RUNNING: u8 = 2;

impl<A: Actor> ActorCell<A> {
    pub(crate) fn new(actor: A) -> ActorCell<A> {
        ActorCell {
            mailbox: Mailbox::default(),
            state: 0,
            actor,
        }
    }
}

/// The mailbox of the cell at `p`, borrowed alone.
///
/// # Safety
///
/// `p` points to a live `ActorCell<A>`, and no other borrow of its mailbox
/// is alive while the returned one is used.
#[inline(always)]
unsafe fn mailbox<'a, A: Actor>(p: *mut ActorCell<A>) -> &'a mut Mailbox<Envelope<A::Msg>> {
    // SAFETY: as the caller guarantees; the borrow covers the mailbox field
    // only, not the behaviour a run may be borrowing.
    unsafe { &mut *addr_of_mut!((*p).mailbox) }
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
        drop_cell::<A>,
        std::any::type_name::<A>,
        TypeId::of::<ActorCell<A>>(),
        ActorVTable {
            push_signal: push_signal::<A>,
            stop: stop_actor::<A>,
            waiting: waiting::<A>,
            warning: warning::<A>,
        },
    );
}

/// Messages and notices waiting in the mailbox.
///
/// # Safety
///
/// `cell` is a live `ActorCell<A>`.
unsafe fn waiting<A: Actor>(cell: NonNull<u8>) -> usize {
    // SAFETY: as the caller guarantees; only the mailbox is read, as
    // senders reach it during a run.
    unsafe { &*addr_of!((*cell.as_ptr().cast::<ActorCell<A>>()).mailbox) }.len()
}

/// The behaviour's warning about its state: `None` while a run or hook
/// borrows it, and if `warning` panics (logged; the actor goes on).
///
/// # Safety
///
/// `cell` is a live `ActorCell<A>`.
unsafe fn warning<A: Actor>(cell: NonNull<u8>) -> Option<String> {
    let p = cell.as_ptr().cast::<ActorCell<A>>();
    // SAFETY: as the caller guarantees; the behaviour is read only while
    // no run or hook borrows it (`RUNNING`, as `trim` checks).
    let actor = unsafe {
        if (*p).state & RUNNING != 0 {
            return None;
        }
        &*addr_of!((*p).actor)
    };
    match catch_unwind(AssertUnwindSafe(|| actor.warning())) {
        Ok(w) => w,
        Err(payload) => {
            log::error!(
                "{} panicked in warning: {}",
                std::any::type_name::<A>(),
                panic_message(payload)
            );
            None
        }
    }
}

/// Queues a notice.
///
/// # Safety
///
/// `cell` is a live `ActorCell<A>` (the function is called through the
/// table of the slot holding it).
unsafe fn push_signal<A: Actor>(cell: NonNull<u8>, signal: Signal) {
    // SAFETY: as the caller guarantees; only the mailbox is borrowed.
    unsafe { mailbox(cell.as_ptr().cast::<ActorCell<A>>()) }
        .push_back(Envelope::Signal(Box::new(signal)));
}

/// Frees the mailbox's memory if it is empty, and lets the behaviour free
/// what it keeps ([`Actor::trim`]), unless it is running.
///
/// # Safety
///
/// As for [`push_signal`].
unsafe fn trim<A: Actor>(cell: NonNull<u8>) {
    let p = cell.as_ptr().cast::<ActorCell<A>>();
    // SAFETY: as the caller guarantees; the mailbox is borrowed alone, and
    // the behaviour only while no run or hook borrows it (`running`).
    unsafe {
        mailbox(p).trim();
        if (*p).state & RUNNING == 0 {
            let actor = &mut *addr_of_mut!((*p).actor);
            // A panicking `trim` frees nothing more; the actor goes on.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| actor.trim())) {
                log::error!(
                    "{} panicked in trim: {}",
                    std::any::type_name::<A>(),
                    panic_message(payload)
                );
            }
        }
    }
}

/// Drops and frees a cell.
///
/// # Safety
///
/// `cell` was made from a `Box<ActorCell<A>>` and is owned by the caller,
/// which hands it over.
unsafe fn drop_cell<A: Actor>(cell: NonNull<u8>) {
    // SAFETY: as the caller guarantees.
    drop(unsafe { Box::from_raw(cell.as_ptr().cast::<ActorCell<A>>()) });
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
fn own_cell<A: Actor>(core: &mut Core, idx: usize) -> Option<*mut ActorCell<A>> {
    let slot = core.slot_at(idx)?;
    // SAFETY: see above: the slot's table is `A`'s, so its cell is an
    // `ActorCell<A>`.
    Some(unsafe { slot.cell_unchecked::<ActorCell<A>>() })
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
    let Some(p) = own_cell::<A>(core, idx) else {
        return;
    };
    // SAFETY: `p` is the live cell of slot `idx`; the flags are read and
    // written in place and the mailbox is borrowed alone, briefly.
    let (first, waiting) = unsafe {
        let state = (*p).state;
        if state & RUNNING != 0 {
            return;
        }
        (*p).state = STARTED | RUNNING;
        let first = state & STARTED == 0;
        (first, mailbox(p).len().min(budget))
    };
    // SAFETY: the behaviour is borrowed by this run alone until `running`
    // is cleared below: `running` keeps `Core::direct` and other runs away
    // from it, and everything else reaching the cell during the run goes
    // through `p`'s fields other than `actor` (see the module's notes).
    // The cell neither moves (it is boxed) nor is freed (its slot is not
    // removed while it runs) before the borrow ends.
    let actor = unsafe { &mut *addr_of_mut!((*p).actor) };
    core.layer.begin_run();
    // Outside the closure, so a panic does not lose the count.
    let mut handled = 0usize;

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut ctx = Ctx::<A>::new(core, id);
        if first {
            actor.started(&mut ctx);
        }
        while handled < waiting && !ctx.core().layer.running_exits() {
            // SAFETY: `p` is live for the whole run (above); the mailbox
            // borrow ends with the statement.
            let Some(envelope) = (unsafe { mailbox(p) }).pop_front() else {
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
    // SAFETY: `p` is still live (above); the run's borrow has ended.
    let more = unsafe {
        (*p).state = STARTED;
        !mailbox(p).is_empty()
    };
    if more && !exiting {
        if handled >= budget {
            core.stats.forced_yields += 1;
            #[cfg(feature = "metrics")]
            core.count_type_yield(id);
        }
        core.schedule(id);
    }
}

fn turn_end_actor<A: Actor>(core: &mut Core, id: ActorId) {
    let idx = id.index() as usize;
    let Some(p) = own_cell::<A>(core, idx) else {
        return;
    };
    // SAFETY: as in `run_actor`: `p` is the live cell of slot `idx`, and
    // while `running` is set the behaviour is borrowed by this hook alone.
    let actor = unsafe {
        let state = (*p).state;
        if state & RUNNING != 0 {
            return;
        }
        (*p).state = state | RUNNING;
        &mut *addr_of_mut!((*p).actor)
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        actor.turn_end(&mut Ctx::<A>::new(core, id));
    }));
    if let Err(payload) = outcome {
        core.terminate(id, ExitReason::Failed(panic_message(payload)));
    }
    // SAFETY: `p` is still live; the hook's borrow has ended.
    unsafe { (*p).state &= !RUNNING };
}

/// Ends an actor already removed from its slot: its `stopped` hook, then
/// the drop of its behaviour and mailbox.
///
/// # Safety
///
/// As for [`drop_cell`]: the caller hands over a cell it owns.
unsafe fn stop_actor<A: Actor>(
    core: &mut Core,
    cell: NonNull<u8>,
    id: ActorId,
    reason: &ExitReason,
) {
    // SAFETY: as the caller guarantees.
    let mut cell = unsafe { Box::from_raw(cell.as_ptr().cast::<ActorCell<A>>()) };
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        cell.actor.stopped(&mut Ctx::<A>::new(core, id), reason);
        // Dropping the mailbox drops any unanswered reply slots in it,
        // which rejects those requests.
        drop(cell);
    }));
    if let Err(payload) = outcome {
        log::error!(
            "actor {id} panicked while stopping: {}",
            panic_message(payload)
        );
    }
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
        let newly = match self.slot_mut(to) {
            Some(slot) if !slot.data.exiting => match slot.cell_ptr::<ActorCell<A>>() {
                Some(p) => {
                    // SAFETY: the slot's live cell, checked to be an
                    // `ActorCell<A>`; only its mailbox is borrowed, for
                    // this statement.
                    unsafe { mailbox(p) }.push_back(Envelope::Msg(msg));
                    slot.mark_scheduled()
                }
                None => return self.dead_send(to),
            },
            _ => return self.send_missed::<A>(to, msg),
        };
        if newly {
            self.push_runnable(to, true);
        }
        true
    }

    /// Sends to an actor on another reactor of the group: the message goes
    /// through the lane to that reactor, which delivers it (or drops and
    /// counts it, if the actor is dead there). True if the reactor exists.
    #[cold]
    #[inline(never)]
    fn send_missed<A: Actor>(&mut self, to: ActorId, msg: A::Msg) -> bool {
        if to.reactor() != self.reactor_index()
            && self.post_to(to.reactor(), move |core: &mut Core| {
                core.send_to::<A>(to, msg);
            })
        {
            true
        } else {
            self.dead_send(to)
        }
    }

    /// Like `send`, but refuses a message to another reactor whose lane is
    /// full, handing it back: see [`Ctx::try_send`].
    pub fn try_send<M>(&mut self, to: impl Destination<M>, msg: M) -> Result<(), SendError<M>> {
        let r = to.actor_id().reactor();
        if r != self.reactor_index() && self.room_to(r) == 0 && self.reactors() > r {
            self.count_peer_full();
            return Err(SendError::Full(msg));
        }
        if to.deliver(self, msg) {
            Ok(())
        } else {
            Err(SendError::Dead)
        }
    }

    #[cold]
    #[inline(never)]
    fn dead_send(&mut self, to: ActorId) -> bool {
        self.count_dead_send(to);
        false
    }

    /// Counts a send (or request) to `to`, a dead actor, and traces it
    /// (`D <sender or -> <to>`).
    #[cold]
    #[inline(never)]
    pub(crate) fn count_dead_send(&mut self, to: ActorId) {
        self.stats.dead_sends += 1;
        if self.tracing() {
            match self.running() {
                Some(from) => self.trace(format_args!("D {from} {to}")),
                None => self.trace(format_args!("D - {to}")),
            }
        }
    }

    /// True if `id` names a live actor of this reactor that is not on its
    /// way out. (Whether an actor of another reactor is alive cannot be
    /// known here without asking it: false.)
    pub fn is_alive(&self, id: ActorId) -> bool {
        self.slot(id).is_some_and(|s| !s.data.exiting)
    }

    /// The state of the actor `to`, in place, when acting on it now cannot
    /// be told apart from sending it a message that it handles next: it is
    /// on this reactor, alive, started, not running, and has no envelope
    /// waiting (so nothing sent to it earlier is overtaken). Otherwise
    /// `None`, and the caller sends the message instead.
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
        let p = slot.cell_ptr::<ActorCell<A>>()?;
        // SAFETY: the slot's live cell, checked to be an `ActorCell<A>`.
        // The behaviour is handed out only while no run or hook borrows it
        // (`running`), for as long as the core is borrowed, so nothing else
        // reaches the cell meanwhile.
        unsafe {
            if (*p).state != STARTED || !mailbox(p).is_empty() {
                return None;
            }
            Some(&mut *addr_of_mut!((*p).actor))
        }
    }

    /// True if `id` is a live actor of type `A`.
    pub(crate) fn is_a<A: Actor>(&self, id: ActorId) -> bool {
        self.slot(id)
            .is_some_and(|s| s.vtable.type_id == TypeId::of::<ActorCell<A>>())
    }

    /// Queues a notice for `to`, on whichever reactor it lives.
    pub(crate) fn push_signal(&mut self, to: ActorId, signal: Signal) {
        if to.reactor() != self.reactor_index() {
            self.post_to(to.reactor(), move |core: &mut Core| {
                core.push_signal(to, signal)
            });
            return;
        }
        if let Signal::Down {
            peer, reference, ..
        } = &signal
        {
            // A monitor of an actor of another reactor fires only while it
            // is on (once, and never after `demonitor`).
            if peer.reactor() != self.reactor_index()
                && !self.layer.forget_remote_monitor(to, *peer, *reference)
            {
                return;
            }
        }
        if let Some(slot) = self.slot_mut(to) {
            if !slot.data.exiting {
                if let Signal::Link { from, .. } = &signal {
                    slot.data.links.remove_all(from);
                }
                // SAFETY: the slot's live cell, through its own table.
                unsafe { (slot.vtable.layer().push_signal)(slot.cell, signal) };
                self.schedule(to);
            }
        }
    }
}
