//! The reactor's state: the slab of slots, the run queue, the turn-end
//! list, timers, the poll registry, reactor-local extensions, metrics and
//! the trace, and the layer above's own state.
//!
//! Invariants:
//! - a cell is in the run queue at most once (`Slot::scheduled`);
//! - a slot's generation changes when its cell is removed, so an
//!   [`ActorId`] never matches the slot's next tenant;
//! - the layer settles (`Layer::settle`) after every call into cell code,
//!   never during one, so no handler ever runs re-entrantly.

use std::any::{Any, TypeId};
use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::{Interest, Registry, Token};
use slab::Slab;

use std::collections::VecDeque;

use crate::reactor::group::Group;
use crate::reactor::id::{KEY_BITS, MAX_KEYS};
use crate::reactor::layer::Slot;
use crate::reactor::local::Locals;
use crate::reactor::remote::{Command, Remote};
use crate::reactor::run_queue::{Entry, RunQueue};
use crate::reactor::timer::{TimerId, Timers};
use crate::reactor::{ActorId, Config, Layer, Local, Metrics, ReactorHandle, Ready, Stats, VTable};

/// A closure a timer runs on the reactor when it fires.
pub type TimerFn<L> = Box<dyn FnOnce(&mut Core<L>)>;

/// What happens when a timer fires.
pub(crate) enum TimerAction<L: Layer> {
    /// Run this against the reactor (deliver a message, usually).
    Call(TimerFn<L>),
    /// One of the layer's own timers (a request timeout, ...).
    Layer(L::Timer),
}

/// The reactor's state, which handlers reach through their context. It is
/// public so that setup code and closures run on the reactor thread
/// (`ReactorHandle::call`) can name it; its actor-level operations (spawn,
/// send, link, ...) come from the actor layer.
pub struct Core<L: Layer> {
    slots: Slab<Slot<L>>,
    /// The current generation of each slab key, kept past removal.
    generations: Vec<u32>,
    run_queue: RunQueue,
    turn_end: Vec<ActorId>,
    timers: Timers<TimerAction<L>>,
    registry: Registry,
    pub(crate) remote: Arc<Remote<L>>,
    /// Unique per reactor in this process.
    id: u32,
    /// Read once per turn, after `poll`.
    now: Instant,
    shutdown: bool,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    /// The cell running now, if any.
    running: Option<ActorId>,
    locals: Locals,
    #[cfg(feature = "metrics")]
    pub(crate) m: crate::reactor::metrics::MetricsState,
    /// The event trace, if on.
    trace: Option<Box<crate::reactor::trace::Tracer>>,
    /// `trace.is_some()`, kept as a plain flag: every trace point tests it,
    /// and a byte compare is the cheapest test there is.
    tracing: bool,
    /// The layer's per-reactor state.
    pub(crate) layer: L,
    /// This reactor's number in its group (0 alone) ...
    peer: usize,
    /// ... shifted to where ids carry it: a slot number minus the base is
    /// the slab key, and a foreign id's lands outside the slab.
    base: u32,
    /// The group this reactor belongs to, with what waits to go to each
    /// peer (see `group.rs`).
    peers: Option<Box<Peers<L>>>,
}

/// A group member's side of the lanes.
struct Peers<L: Layer> {
    group: Arc<Group<L>>,
    /// What this turn sent to each peer, or what the lane had no room for.
    outbox: Vec<VecDeque<Command<L>>>,
    /// Peers whose outbox is not empty.
    dirty: Vec<usize>,
    /// Work to run once the lane to a peer has room: `(peer, work)`.
    room_waiters: Vec<(usize, Command<L>)>,
    /// What the lanes towards this reactor held, being run.
    inbox: VecDeque<Command<L>>,
    /// Each peer's heartbeat as last read here, and when it was first
    /// read with that value (see `Core::silent_for`).
    seen: Vec<(u64, Instant)>,
    /// The last turn that took work from a peer or gave some to one.
    active: Instant,
    /// The busy-share window: when it began; the metrics' busy and poll
    /// times then (with `metrics`), or the time outside `poll` in it and
    /// when the last `poll` returned (without).
    window: Instant,
    busy_ns: u64,
    #[cfg(feature = "metrics")]
    poll_ns: u64,
    #[cfg(not(feature = "metrics"))]
    polled: Instant,
}

impl<L: Layer> fmt::Debug for Core<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("id", &self.id)
            .field("live", &self.slots.len())
            .field("run_queue", &self.run_queue.len())
            .finish_non_exhaustive()
    }
}

/// A reactor that took work from a peer or gave some to one this recently
/// spins before sleeping (see `Core::peer_spin`).
const PEER_ACTIVE: std::time::Duration = std::time::Duration::from_millis(1);

/// The window of the busy share peers read (see `Core::account_poll`).
const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_millis(50);

/// Rounds of turn-end hooks per turn (see `Core::end_turn`).
const TURN_END_ROUNDS: usize = 4;

impl<L: Layer> Core<L> {
    pub(crate) fn new(registry: Registry, remote: Arc<Remote<L>>, config: Config) -> Core<L> {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        Core {
            slots: Slab::with_capacity(config.slots_reserved),
            generations: Vec::with_capacity(config.slots_reserved),
            run_queue: RunQueue::new(config.policy),
            turn_end: Vec::new(),
            timers: Timers::default(),
            registry,
            remote,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            now: Instant::now(),
            shutdown: false,
            config,
            stats: Stats::default(),
            running: None,
            locals: Locals::default(),
            #[cfg(feature = "metrics")]
            m: crate::reactor::metrics::MetricsState::new(config.slow_threshold, config.turn_time),
            trace: None,
            tracing: false,
            layer: L::default(),
            peer: 0,
            base: 0,
            peers: None,
        }
    }

    // ----- slots -----------------------------------------------------------

    #[inline]
    pub(crate) fn slot_mut(&mut self, id: ActorId) -> Option<&mut Slot<L>> {
        let idx = id.raw().wrapping_sub(self.base) as usize;
        if self.generations.get(idx) != Some(&id.generation()) {
            return None;
        }
        self.slots.get_mut(idx)
    }

    /// The slot at `idx`, without a generation check: for a cell whose run
    /// is under way, whose slot cannot be removed before the run ends.
    #[inline(always)]
    pub(crate) fn slot_at(&mut self, idx: usize) -> Option<&mut Slot<L>> {
        self.slots.get_mut(idx)
    }

    #[inline]
    pub(crate) fn slot(&self, id: ActorId) -> Option<&Slot<L>> {
        let idx = id.raw().wrapping_sub(self.base) as usize;
        if self.generations.get(idx) != Some(&id.generation()) {
            return None;
        }
        self.slots.get(idx)
    }

    /// Puts a cell in a new slot and returns its id. It is not queued yet.
    pub(crate) fn insert<T: Any>(
        &mut self,
        cell: T,
        vtable: &'static VTable<L>,
        data: L::Slot,
    ) -> ActorId {
        assert!(
            vtable.type_id == TypeId::of::<T>(),
            "a cell inserted with another type's table"
        );
        let key = self.slots.vacant_key();
        assert!(key < MAX_KEYS, "more than {MAX_KEYS} cells on one reactor");
        if key >= self.generations.len() {
            self.generations.push(0);
        }
        let id = ActorId::new(self.base | key as u32, self.generations[key]);
        #[cfg(feature = "metrics")]
        let ty = self.m.type_index(TypeId::of::<T>(), (vtable.type_name)());
        self.slots.insert(Slot {
            cell: NonNull::from(Box::leak(Box::new(cell))).cast::<u8>(),
            vtable,
            scheduled: false,
            turn_end: false,
            ready: 0,
            #[cfg(feature = "metrics")]
            ty,
            data,
        });
        self.stats.spawned += 1;
        id
    }

    /// Removes a slot and retires its generation: no id of it matches
    /// again.
    ///
    /// Never the cell running now: its run borrows from the cell, which
    /// removal would free. Exits are processed between runs.
    pub(crate) fn remove(&mut self, id: ActorId) -> Option<Slot<L>> {
        self.slot(id)?;
        assert!(self.running != Some(id), "removing the running cell {id}");
        let idx = id.index() as usize;
        let slot = self.slots.remove(idx);
        self.generations[idx] = self.generations[idx].wrapping_add(1);
        self.stats.exited += 1;
        Some(slot)
    }

    /// Every live id.
    pub(crate) fn ids(&self) -> Vec<ActorId> {
        self.slots
            .iter()
            .map(|(k, _)| ActorId::new(self.base | k as u32, self.generations[k]))
            .collect()
    }

    /// Number of live cells.
    pub fn live(&self) -> usize {
        self.slots.len()
    }

    /// The cell running now, if any.
    pub fn running(&self) -> Option<ActorId> {
        self.running
    }

    /// The time read after the last `poll`: the same for every handler of
    /// a turn, and cheaper than `Instant::now()`.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// This reactor's number, unique in the process.
    pub fn reactor_id(&self) -> u32 {
        self.id
    }

    // ----- scheduling ------------------------------------------------------

    /// Puts `id` in the run queue, unless it is there already.
    #[inline]
    pub fn schedule(&mut self, id: ActorId) {
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        if slot.mark_scheduled() {
            self.push_runnable(id, false);
        }
    }

    /// The metrics counter's last reading (0 without metrics), to stamp an
    /// enqueue with.
    #[inline(always)]
    pub(crate) fn clock(&self) -> u64 {
        #[cfg(feature = "metrics")]
        {
            self.m.clock
        }
        #[cfg(not(feature = "metrics"))]
        {
            0
        }
    }

    /// Queues `id`, which the caller has just marked scheduled
    /// (`Slot::mark_scheduled`).
    #[inline(always)]
    pub(crate) fn push_runnable(&mut self, id: ActorId, sent: bool) {
        let entry = Entry::new(id, self.clock());
        if self.run_queue.is_fifo() {
            self.run_queue.push_back(entry);
        } else {
            let by_other = sent && self.running.is_some_and(|r| r != id);
            self.run_queue.push_other(entry, by_other);
        }
        if self.tracing {
            self.trace_id('Q', id, None);
        }
        metric! {
            let n = self.run_queue.len() as u64;
            if n > self.m.queue_depth_max {
                self.m.queue_depth_max = n;
            }
        }
    }

    /// Queues `id` for a run whose I/O hook sees [`Ready::is_wake`]: for a
    /// cell that has work of its own to resume, for instance after another
    /// actor acted on its state in place.
    pub fn wake(&mut self, id: ActorId) {
        self.set_ready(id, Ready::wake().0);
    }

    pub(crate) fn set_ready(&mut self, id: ActorId, bits: u8) {
        if let Some(slot) = self.slot_mut(id) {
            slot.ready |= bits;
            self.schedule(id);
        }
    }

    /// Asks for one call of `id`'s turn-end hook at the end of this turn.
    pub fn at_turn_end(&mut self, id: ActorId) {
        if let Some(slot) = self.slot_mut(id) {
            if !slot.turn_end {
                slot.turn_end = true;
                self.turn_end.push(id);
            }
        }
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.is_empty() || !self.turn_end.is_empty() || L::pending(self)
    }

    /// Runs queued cells until the queue is empty or `turn_limit` runs
    /// have happened, so that a busy set of actors cannot keep the reactor
    /// from polling.
    pub(crate) fn run_queue(&mut self) -> usize {
        let mut runs = 0;
        metric! {
            self.m.queue_depth.record(self.run_queue.len() as u64);
        }
        // Read once: a trace turned on by a handler starts with the next
        // turn's runs.
        let tracing = self.tracing;
        #[cfg(feature = "metrics")]
        let began = self.m.clock;
        while let Some(entry) = self.run_queue.pop() {
            let id = entry.id;
            let Some(slot) = self.slot_mut(id) else {
                continue;
            };
            slot.scheduled = false;
            let run = slot.vtable.run;
            #[cfg(feature = "metrics")]
            let (ty, enq, start) = (slot.ty, entry.enq, self.m.clock);
            let msgs = self.stats.messages;
            if tracing {
                self.trace_id('B', id, None);
            }
            self.running = Some(id);
            run(self, id);
            self.running = None;
            runs += 1;
            if tracing {
                self.trace_run_end(id, self.stats.messages - msgs);
            }
            L::settle(self);
            #[cfg(feature = "metrics")]
            let end = {
                let end = self.m.tick();
                let handled = self.stats.messages - msgs;
                self.m.record_run(ty, enq, start, end, handled);
                end
            };
            if runs >= self.config.turn_limit {
                break;
            }
            // Long runs end the turn early too, so that I/O is polled at
            // least every `turn_time` (plus one run) whatever the actors do.
            #[cfg(feature = "metrics")]
            let over = end.wrapping_sub(began) > self.m.turn_ticks;
            #[cfg(not(feature = "metrics"))]
            let over = runs % 16 == 0 && self.now.elapsed() > self.config.turn_time;
            if over && !self.run_queue.is_empty() {
                self.stats.cut_turns += 1;
                break;
            }
        }
        self.stats.actor_runs += runs as u64;
        metric! {
            self.m.runs_per_turn.record(runs as u64);
        }
        runs
    }

    /// Calls the turn-end hooks asked for this turn.
    pub(crate) fn end_turn(&mut self) {
        // A hook may ask for other cells' hooks (a chat room handing its
        // turn's lines to sockets, which flush in theirs): they run in the
        // same turn end, for a few rounds; what is asked after that waits
        // for the next turn, so hooks asking for each other cannot loop.
        for _ in 0..TURN_END_ROUNDS {
            if self.turn_end.is_empty() {
                return;
            }
            let mut ids = std::mem::take(&mut self.turn_end);
            for id in ids.drain(..) {
                let Some(slot) = self.slot_mut(id) else {
                    continue;
                };
                slot.turn_end = false;
                let f = slot.vtable.turn_end;
                self.running = Some(id);
                f(self, id);
                self.running = None;
                L::settle(self);
            }
            // Keep the allocation; hooks may have queued new entries.
            ids.append(&mut self.turn_end);
            self.turn_end = ids;
        }
    }

    /// Ends every cell (through the layer) and forgets what was queued.
    pub(crate) fn stop_all(&mut self) {
        L::shutdown(self);
        self.run_queue.clear();
        self.turn_end.clear();
    }

    // ----- timers ----------------------------------------------------------

    /// Runs `f` on the reactor at `deadline` (or the first turn after it).
    pub fn add_timer(&mut self, deadline: Instant, f: TimerFn<L>) -> TimerId {
        self.timers.add(deadline, TimerAction::Call(f))
    }

    /// Fires the layer's own timer action at `deadline`.
    pub(crate) fn add_layer_timer(&mut self, deadline: Instant, timer: L::Timer) -> TimerId {
        self.timers.add(deadline, TimerAction::Layer(timer))
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub(crate) fn fire_timers(&mut self) {
        while let Some(action) = self.timers.pop_expired(self.now) {
            self.stats.timers_fired += 1;
            trace_ev!(self, "T");
            match action {
                TimerAction::Call(f) => f(self),
                TimerAction::Layer(t) => L::fire(self, t),
            }
        }
        L::settle(self);
    }

    /// Timers set and not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    // ----- I/O -------------------------------------------------------------

    /// Registers an I/O source with the poll on behalf of `id`: its
    /// readiness is handed to that cell's next run.
    pub fn register<S: Source + ?Sized>(
        &mut self,
        id: ActorId,
        source: &mut S,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry
            .register(source, Token(id.to_u64() as usize), interest)
    }

    /// Removes an I/O source from the poll.
    pub fn deregister<S: Source + ?Sized>(&mut self, source: &mut S) -> io::Result<()> {
        self.registry.deregister(source)
    }

    /// Frees memory idle cells keep for reuse (mailboxes), and what the
    /// reactor-local extensions keep (buffer pools). Run about once a
    /// second while busy: a busy cell reallocates at most that often, and
    /// an idle one holds nothing. Callable at any time, for instance before
    /// measuring what connections cost at rest.
    pub fn trim_idle(&mut self) {
        for (_, slot) in self.slots.iter_mut() {
            if !slot.scheduled {
                // SAFETY: the cell is live and of the table's type; `trim`
                // touches only what no run borrows.
                unsafe { (slot.vtable.trim)(slot.cell) };
            }
        }
        for id in self.locals.trim() {
            self.wake(id);
        }
        L::trim(self);
    }

    // ----- extensions ------------------------------------------------------

    /// This reactor's `T`, created with `Default` on first use (see
    /// [`Local`]).
    #[inline]
    pub fn local<T: Local>(&mut self) -> &mut T {
        self.locals.get::<T>()
    }

    // ----- the group -------------------------------------------------------

    pub(crate) fn join_group(&mut self, group: Arc<Group<L>>, index: usize) {
        group.set_unique(index, self.id);
        let n = group.len();
        self.peer = index;
        self.base = (index as u32) << KEY_BITS;
        self.peers = Some(Box::new(Peers {
            group,
            outbox: (0..n).map(|_| VecDeque::new()).collect(),
            dirty: Vec::new(),
            room_waiters: Vec::new(),
            inbox: VecDeque::new(),
            seen: vec![(0, self.now); n],
            active: self.now,
            window: self.now,
            busy_ns: 0,
            #[cfg(feature = "metrics")]
            poll_ns: 0,
            #[cfg(not(feature = "metrics"))]
            polled: self.now,
        }));
    }

    /// The reactor has stopped: its peers' sends to it are refused from now
    /// on (what waited for it is dropped).
    pub(crate) fn close_lanes(&mut self) {
        if let Some(p) = self.peers.as_deref() {
            p.group.stopped(self.peer);
        }
    }

    /// The last of a stopping reactor: sends what it has for its peers
    /// (the notices and rejections of its actors' ends), as far as their
    /// lanes take it, and forgets the rest.
    pub(crate) fn leave_group(&mut self) {
        self.flush_peers();
        if let Some(p) = self.peers.as_deref_mut() {
            for out in &mut p.outbox {
                out.clear();
            }
            p.dirty.clear();
            p.room_waiters.clear();
        }
    }

    /// True in a group of reactors.
    #[inline(always)]
    pub fn in_group(&self) -> bool {
        self.peers.is_some()
    }

    /// This reactor's number in its group (0 for a reactor on its own).
    #[inline(always)]
    pub fn reactor_index(&self) -> usize {
        self.peer
    }

    /// Reactors in this reactor's group (1 for a reactor on its own).
    pub fn reactors(&self) -> usize {
        self.peers.as_ref().map_or(1, |p| p.group.len())
    }

    /// Runs `f` on reactor `to` of the group, after everything this reactor
    /// sent there before (per pair of reactors, work arrives in the order
    /// it was posted). It leaves at the end of this turn, or later if the
    /// lane to `to` is full (it then waits here, in order). False, and `f`
    /// is dropped, if there is no such reactor or it has stopped.
    pub fn post_to(&mut self, to: usize, f: impl FnOnce(&mut Core<L>) + Send + 'static) -> bool {
        self.post_boxed(to, Box::new(f))
    }

    pub(crate) fn post_boxed(&mut self, to: usize, f: Command<L>) -> bool {
        let Some(p) = self.peers.as_deref_mut() else {
            return false;
        };
        if !p.group.accepts(to) {
            return false;
        }
        let out = &mut p.outbox[to];
        if out.is_empty() {
            p.dirty.push(to);
        }
        out.push_back(f);
        self.stats.peer_sends += 1;
        true
    }

    /// How much more the lane to reactor `to` takes before it is full,
    /// counting what this reactor has queued for it and not sent yet (0 if
    /// there is no such reactor).
    pub fn room_to(&self, to: usize) -> usize {
        let Some(p) = self.peers.as_deref() else {
            return 0;
        };
        if to >= p.group.len() {
            return 0;
        }
        p.group
            .capacity
            .saturating_sub(p.group.queued(self.peer, to) + p.outbox[to].len())
    }

    /// Runs `f` here once the lane to reactor `to` has room for at least
    /// one more message (at the end of this turn if it has now).
    pub fn when_room(&mut self, to: usize, f: impl FnOnce(&mut Core<L>) + 'static + Send) {
        if let Some(p) = self.peers.as_deref_mut() {
            p.room_waiters.push((to, Box::new(f)));
            p.group.wait_for_room(self.peer, to);
        }
    }

    /// Counts a `try_send` the lane refused.
    pub(crate) fn count_peer_full(&mut self) {
        self.stats.peer_full += 1;
    }

    /// Tells the group this reactor is about to wait in `poll`.
    pub(crate) fn mark_idle(&self) {
        if let Some(p) = self.peers.as_deref() {
            p.group.idle(self.peer, self.stats.turns);
        }
    }

    /// Accounts the turn's `poll`, which returned at `now`, to the busy
    /// share peers read, published about every 50 ms. With the `metrics`
    /// feature the share comes from the metrics' own poll and busy times
    /// (no clock reading of its own); without it, `began` is when the poll
    /// began.
    pub(crate) fn account_poll(&mut self, began: Option<Instant>, now: Instant) {
        let peer = self.peer;
        #[cfg(feature = "metrics")]
        let (busy_ns, poll_ns) = (self.m.busy_ns, self.m.poll_ns);
        let Some(p) = self.peers.as_deref_mut() else {
            return;
        };
        #[cfg(not(feature = "metrics"))]
        if let Some(began) = began {
            p.busy_ns += began.saturating_duration_since(p.polled).as_nanos() as u64;
            p.polled = now;
        }
        #[cfg(feature = "metrics")]
        let _ = began;
        if now.saturating_duration_since(p.window) < BUSY_WINDOW {
            return;
        }
        #[cfg(feature = "metrics")]
        let (busy, total) = {
            let busy = busy_ns.wrapping_sub(p.busy_ns);
            let total = busy + poll_ns.wrapping_sub(p.poll_ns);
            p.busy_ns = busy_ns;
            p.poll_ns = poll_ns;
            (busy, total)
        };
        #[cfg(not(feature = "metrics"))]
        let (busy, total) = {
            let busy = std::mem::take(&mut p.busy_ns);
            (
                busy,
                now.saturating_duration_since(p.window).as_nanos() as u64,
            )
        };
        let permille = (u128::from(busy) * 1000 / u128::from(total.max(1))).min(1000);
        p.group.set_busy(peer, permille as u32);
        p.window = now;
    }

    /// Reactor `i`'s share of its last ~50 ms spent outside `poll`, in
    /// thousandths (0 outside a group).
    pub fn busy_of(&self, i: usize) -> u32 {
        match self.peers.as_deref() {
            Some(p) if i < p.group.len() => p.group.busy(i),
            _ => 0,
        }
    }

    /// True if a peer has queued work for this reactor since it last
    /// drained.
    pub(crate) fn peer_notified(&self) -> bool {
        self.peers
            .as_deref()
            .is_some_and(|p| p.group.notified(self.peer))
    }

    /// Marks this reactor as blocked in `poll` (peers must wake it), or
    /// back from it.
    pub(crate) fn set_sleeping(&self, on: bool) {
        if let Some(p) = self.peers.as_deref() {
            p.group.set_sleeping(self.peer, on);
        }
    }

    /// How long to spin before sleeping: `peer_spin` if this reactor
    /// exchanged work with a peer within the last millisecond, else zero.
    pub(crate) fn peer_spin(&self) -> std::time::Duration {
        match self.peers.as_deref() {
            Some(p) if self.now.saturating_duration_since(p.active) < PEER_ACTIVE => {
                self.config.peer_spin
            }
            _ => std::time::Duration::ZERO,
        }
    }

    /// Runs what peers queued for this reactor, in one batch, if they said
    /// they did.
    pub(crate) fn drain_peers(&mut self) {
        let peer = self.peer;
        let Some(p) = self.peers.as_deref_mut() else {
            return;
        };
        p.group.beat(peer, self.stats.turns);
        if !p.group.take_notified(peer) {
            return;
        }
        let mut inbox = std::mem::take(&mut p.inbox);
        p.group.drain(peer, &mut inbox);
        if !inbox.is_empty() {
            p.active = self.now;
        }
        // (Room that appeared in lanes this reactor waits on is used by
        // the turn's end, which flushes the outboxes.)
        self.stats.peer_received += inbox.len() as u64;
        while let Some(cmd) = inbox.pop_front() {
            cmd(self);
            L::settle(self);
        }
        if let Some(p) = self.peers.as_deref_mut() {
            p.inbox = inbox;
        }
    }

    /// Moves this turn's outboxes into their lanes (what fits), then runs
    /// the work that waited for room in a lane that has some.
    pub(crate) fn flush_peers(&mut self) {
        let peer = self.peer;
        let Some(p) = self.peers.as_deref_mut() else {
            return;
        };
        if !p.dirty.is_empty() {
            p.active = self.now;
        }
        let mut i = 0;
        while i < p.dirty.len() {
            let to = p.dirty[i];
            p.group.push(peer, to, &mut p.outbox[to]);
            if p.outbox[to].is_empty() {
                p.dirty.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if p.room_waiters.is_empty() {
            return;
        }
        let cap = p.group.capacity;
        let mut ready = Vec::new();
        let mut k = 0;
        while k < p.room_waiters.len() {
            let to = p.room_waiters[k].0;
            if p.group.queued(peer, to) + p.outbox[to].len() < cap {
                ready.push(p.room_waiters.remove(k).1);
            } else {
                k += 1;
            }
        }
        for f in ready {
            f(self);
            L::settle(self);
        }
    }

    /// Adds `delta` to this reactor's count of live connections, which
    /// peers read to place new ones (kept by the socket layer).
    pub fn add_load(&mut self, delta: isize) {
        self.add_load_to(self.peer, delta);
    }

    /// Adds `delta` to reactor `to`'s count of live connections: for a
    /// listener that hands one over to it, so that the next choice already
    /// counts it.
    pub fn add_load_to(&mut self, to: usize, delta: isize) {
        if let Some(p) = self.peers.as_deref() {
            if to < p.group.len() {
                p.group.add_load(to, delta);
            }
        }
    }

    /// Each reactor's live connections (see [`Core::add_load`]), in group
    /// order.
    pub fn loads(&self) -> Vec<usize> {
        match self.peers.as_deref() {
            Some(p) => (0..p.group.len()).map(|i| p.group.load(i)).collect(),
            None => vec![0],
        }
    }

    /// Reactor `i`'s live connections (see [`Core::add_load`]); 0 if there
    /// is no such reactor.
    pub fn load_of(&self, i: usize) -> usize {
        match self.peers.as_deref() {
            Some(p) if i < p.group.len() => p.group.load(i),
            _ => 0,
        }
    }

    /// How long reactor `i` of the group has been seen in one turn: from
    /// the first time this reactor read that turn's heartbeat, so at most
    /// the turn's length (zero while it waits in `poll`, for this one, and
    /// outside a group).
    pub fn silent_for(&mut self, i: usize) -> std::time::Duration {
        let me = self.peer;
        let Some(p) = self.peers.as_deref_mut() else {
            return std::time::Duration::ZERO;
        };
        if i >= p.group.len() || i == me {
            return std::time::Duration::ZERO;
        }
        let beat = p.group.heartbeat(i);
        if beat & 1 == 0 {
            return std::time::Duration::ZERO;
        }
        let now = Instant::now();
        let seen = &mut p.seen[i];
        if seen.0 != beat {
            *seen = (beat, now);
            return std::time::Duration::ZERO;
        }
        now.saturating_duration_since(seen.1)
    }

    /// The group number of the reactor whose process-unique number
    /// ([`Core::reactor_id`]) is `unique`, if it is in this group.
    pub(crate) fn peer_of(&self, unique: u32) -> Option<usize> {
        self.peers.as_deref()?.group.index_of(unique)
    }

    // ----- the reactor -----------------------------------------------------

    /// A handle for other threads.
    pub fn handle(&self) -> ReactorHandle<L> {
        ReactorHandle::new(self.remote.clone())
    }

    /// Asks the reactor to stop after this turn; every cell still alive is
    /// then ended by the layer.
    pub fn request_shutdown(&mut self) {
        self.shutdown = true;
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown
    }

    /// A snapshot of the scheduler metrics (only `stats` is filled in
    /// without the `metrics` feature).
    pub fn metrics(&self) -> Metrics {
        #[cfg(feature = "metrics")]
        {
            self.m
                .snapshot(self.stats(), self.locals.counters(), self.config.budget)
        }
        #[cfg(not(feature = "metrics"))]
        {
            Metrics {
                stats: self.stats(),
                counters: self.locals.counters(),
                budget: self.config.budget,
                ..Default::default()
            }
        }
    }

    /// A copy of the runtime counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.live_actors = self.slots.len() as u64;
        s
    }

    /// The configuration the reactor runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Turns the event trace on, writing to `out` (buffered; flushed when
    /// the reactor's run ends, and by [`Core::stop_trace`]). The format is
    /// in `tools/TRACE_FORMAT.md`.
    pub fn set_trace(&mut self, out: Box<dyn io::Write>) {
        let header = crate::reactor::trace::Header {
            version: crate::reactor::trace::TRACE_VERSION,
            reactor: self.reactor_index(),
            budget: self.config.budget,
        };
        self.trace = Some(Box::new(crate::reactor::trace::Tracer::new(out, header)));
        self.tracing = true;
    }

    /// Turns the event trace off, flushing what it buffered.
    pub fn stop_trace(&mut self) {
        self.flush_trace();
        self.trace = None;
        self.tracing = false;
    }

    /// Flushes the event trace, if on.
    pub fn flush_trace(&mut self) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.flush();
        }
    }

    /// True while the event trace is on: test it before building an event,
    /// so a trace point costs one predictable branch while it is off.
    #[inline(always)]
    pub fn tracing(&self) -> bool {
        self.tracing
    }

    /// Writes the trace event `<kind> <id>` or `<kind> <id> <value>`, if the
    /// trace is on. Everything is passed by value to a cold function, so a
    /// trace point adds only its test to the code around it (a formatted
    /// event borrows its arguments, which keeps them out of registers).
    #[cold]
    #[inline(never)]
    pub fn trace_id(&mut self, kind: char, id: ActorId, value: Option<u64>) {
        match value {
            Some(v) => self.trace(format_args!("{kind} {id} {v}")),
            None => self.trace(format_args!("{kind} {id}")),
        }
    }

    /// Traces the end of `id`'s run: the envelopes it handled, and those
    /// still waiting in its mailbox.
    #[cold]
    #[inline(never)]
    fn trace_run_end(&mut self, id: ActorId, handled: u64) {
        let waiting = self.waiting(id);
        self.trace(format_args!("E {id} {handled} {waiting}"));
    }

    /// Counts a forced yield of `id`'s run against its type (the run
    /// handled the whole budget and left mail waiting).
    #[cfg(feature = "metrics")]
    pub(crate) fn count_type_yield(&mut self, id: ActorId) {
        if let Some(ty) = self.slot(id).map(|s| s.ty) {
            if let Some(t) = self.m.types.get_mut(ty as usize) {
                t.yields += 1;
            }
        }
    }

    /// Each live cell's id, type name and waiting messages, and the
    /// warnings of those that have one (the layer's
    /// [`Layer::warning`]): what the live lints sample. Walks every slot:
    /// called once per `--stats` interval, not per turn.
    pub fn lint_sample(&self, min_waiting: usize) -> crate::reactor::LintSample {
        let mut sample = crate::reactor::LintSample::default();
        for (k, slot) in self.slots.iter() {
            let id = ActorId::new(self.base | k as u32, self.generations[k]);
            let ty = slot.vtable.type_name();
            // SAFETY: the slot holds a live cell of its table's type (the
            // layer reads a behaviour only while no run or hook of it is in
            // progress: a handler calling this is skipped).
            let (waiting, warning) = unsafe {
                (
                    L::waiting(slot.cell, &slot.vtable.layer),
                    L::warning(slot.cell, &slot.vtable.layer),
                )
            };
            if waiting >= min_waiting {
                sample.mailboxes.push((id, ty, waiting));
            }
            if let Some(w) = warning {
                sample.warnings.push((id, ty, w));
            }
        }
        sample
    }

    /// Messages waiting for `id` (0 for an id not alive here).
    pub(crate) fn waiting(&self, id: ActorId) -> usize {
        match self.slot(id) {
            // SAFETY: the slot holds a live cell of its table's type.
            Some(slot) => unsafe { L::waiting(slot.cell, &slot.vtable.layer) },
            None => 0,
        }
    }

    /// Writes one trace event (`<kind> <fields>`), stamped with the time,
    /// if the trace is on. Out of line and marked cold, so a trace point
    /// adds only its test to the code around it.
    #[cold]
    #[inline(never)]
    pub fn trace(&mut self, event: fmt::Arguments<'_>) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.event(event);
        }
    }
}
