//! The reactor's state that handlers reach through [`Ctx`](crate::Ctx): the
//! slab of actor slots, the run queue, pending exits, timers and requests.
//!
//! Invariants:
//! - an actor is in the run queue at most once (`Slot::scheduled`);
//! - a slot's generation changes when its actor is removed, so an
//!   [`ActorId`] never matches the slot's next tenant;
//! - exits are queued and processed between actor turns, never inside a
//!   handler, so no handler ever runs re-entrantly.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::actor::{
    take_orphans, Actor, ActorId, Continuation, ExitReason, MonitorRef, RequestError, RequestId,
};
use crate::reactor::cell::{downcast, new_cell, ActorCell, ErasedCell, HasVTable, Signal, VTable};
use crate::reactor::remote::Remote;
use crate::reactor::timer::{TimerAction, TimerId, Timers};
use crate::reactor::{Config, Policy, ReactorHandle, Stats, RECEIVER_NEXT_MAX};

pub(crate) struct Slot {
    pub(crate) cell: Box<dyn ErasedCell>,
    /// The concrete type inside `cell`, for cheap downcasts.
    pub(crate) type_id: TypeId,
    pub(crate) vtable: &'static VTable,
    /// In the run queue now.
    pub(crate) scheduled: bool,
    /// An exit is queued; it receives nothing more.
    pub(crate) exiting: bool,
    /// Asked for its `turn_end` hook this turn.
    pub(crate) turn_end: bool,
    /// I/O readiness bits not yet handed to the actor.
    pub(crate) ready: u8,
    /// Linked peers (both sides record the link).
    pub(crate) links: Vec<ActorId>,
    /// Who monitors this actor, and with which reference.
    pub(crate) monitors: Vec<(ActorId, MonitorRef)>,
    /// Metrics clock when it was last queued.
    #[cfg(feature = "metrics")]
    pub(crate) enq: u64,
    /// Its behaviour type's index in the per-type metrics.
    #[cfg(feature = "metrics")]
    pub(crate) ty: u32,
}

struct PendingRequest {
    seq: u64,
    cont: Box<dyn Continuation>,
    timer: Option<TimerId>,
}

/// The reactor's shared state. Handlers use it through
/// [`Ctx`](crate::Ctx); it is public only so that closures run on the
/// reactor can name it.
pub struct Core {
    slots: Slab<Slot>,
    /// The current generation of each slab key, kept past removal.
    generations: Vec<u32>,
    run_queue: VecDeque<ActorId>,
    /// `Policy::ReceiverNext`: the actor to run before the queue's head.
    next: Option<ActorId>,
    /// Consecutive runs taken from `next`.
    next_streak: u32,
    pending_exits: VecDeque<(ActorId, ExitReason)>,
    turn_end: Vec<ActorId>,
    timers: Timers,
    requests: Slab<PendingRequest>,
    request_seq: u64,
    orphans: Vec<RequestId>,
    registry: Registry,
    pub(crate) remote: Arc<Remote>,
    pub(crate) reactor_id: u32,
    now: Instant,
    shutdown: bool,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    /// The actor whose turn it is, if any.
    running: Option<ActorId>,
    /// The running actor has an exit queued.
    running_exits: bool,
    /// Emptied I/O buffers for reuse, so a busy connection does not
    /// allocate per read and an idle one holds none.
    buffers: Vec<BytesMut>,
    #[cfg(feature = "metrics")]
    pub(crate) m: crate::reactor::metrics::MetricsState,
    /// The event trace, if on.
    #[cfg(feature = "trace")]
    pub(crate) trace: Option<Box<crate::reactor::trace::Tracer>>,
}

/// Most buffers kept in the pool.
const POOL_MAX: usize = 256;

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("live", &self.slots.len())
            .field("run_queue", &self.run_queue.len())
            .field("next", &self.next)
            .finish()
    }
}

impl Core {
    pub(crate) fn new(registry: Registry, remote: Arc<Remote>, config: Config) -> Core {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        Core {
            slots: Slab::new(),
            generations: Vec::new(),
            run_queue: VecDeque::new(),
            next: None,
            next_streak: 0,
            pending_exits: VecDeque::new(),
            turn_end: Vec::new(),
            timers: Timers::default(),
            requests: Slab::new(),
            request_seq: 0,
            orphans: Vec::new(),
            registry,
            remote,
            reactor_id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            now: Instant::now(),
            shutdown: false,
            config,
            stats: Stats::default(),
            buffers: Vec::new(),
            running: None,
            running_exits: false,
            #[cfg(feature = "metrics")]
            m: crate::reactor::metrics::MetricsState::new(config.slow_threshold),
            #[cfg(feature = "trace")]
            trace: None,
        }
    }

    // ----- slots -----------------------------------------------------------

    pub(crate) fn slot_mut(&mut self, id: ActorId) -> Option<&mut Slot> {
        let idx = id.index() as usize;
        if self.generations.get(idx) != Some(&id.generation()) {
            return None;
        }
        self.slots.get_mut(idx)
    }

    fn slot(&self, id: ActorId) -> Option<&Slot> {
        let idx = id.index() as usize;
        if self.generations.get(idx) != Some(&id.generation()) {
            return None;
        }
        self.slots.get(idx)
    }

    pub(crate) fn cell_mut<A: Actor>(&mut self, id: ActorId) -> Option<&mut ActorCell<A>> {
        let slot = self.slot_mut(id)?;
        downcast::<A>(&mut slot.cell, slot.type_id)
    }

    /// Marks `id` as the actor running now (for [`Core::running_exits`]).
    pub(crate) fn begin_run(&mut self, id: ActorId) {
        self.running = Some(id);
        self.running_exits = false;
    }

    /// Ends the current run; true if the actor asked to exit (or was told).
    pub(crate) fn end_run(&mut self) -> bool {
        self.running = None;
        std::mem::take(&mut self.running_exits)
    }

    /// True once the running actor has an exit queued: it handles nothing
    /// more this turn.
    pub(crate) fn running_exits(&self) -> bool {
        self.running_exits
    }

    /// True if `id` names a live actor that is not on its way out.
    pub fn is_alive(&self, id: ActorId) -> bool {
        self.slot(id).is_some_and(|s| !s.exiting)
    }

    /// Number of live actors.
    pub fn live(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    // ----- spawn, send, schedule ------------------------------------------

    /// Spawns an actor; it runs on its first turn.
    pub fn spawn<A: Actor>(&mut self, actor: A) -> Addr<A> {
        let key = self.slots.vacant_key();
        if key >= self.generations.len() {
            self.generations.push(0);
        }
        let id = ActorId::new(key as u32, self.generations[key]);
        #[cfg(feature = "metrics")]
        let ty = self
            .m
            .type_index(TypeId::of::<A>(), std::any::type_name::<A>());
        self.slots.insert(Slot {
            cell: new_cell(actor),
            type_id: TypeId::of::<ActorCell<A>>(),
            vtable: &<A as HasVTable>::VTABLE,
            scheduled: false,
            exiting: false,
            turn_end: false,
            ready: 0,
            links: Vec::new(),
            monitors: Vec::new(),
            #[cfg(feature = "metrics")]
            enq: 0,
            #[cfg(feature = "metrics")]
            ty,
        });
        self.stats.spawned += 1;
        trace_ev!(self.trace, "S {id} {}", std::any::type_name::<A>());
        self.schedule(id);
        Addr::new(id)
    }

    /// Sends `msg` to the actor `to`, of type `A`. False (and the message is
    /// dropped and counted) if it is dead.
    pub fn send<A: Actor>(&mut self, to: ActorId, msg: A::Msg) -> bool {
        let idx = to.index() as usize;
        #[cfg(feature = "metrics")]
        let clock = self.m.clock;
        // `Some(newly queued)` once delivered.
        let delivered = match self.slots.get_mut(idx) {
            Some(slot) if self.generations[idx] == to.generation() && !slot.exiting => {
                downcast::<A>(&mut slot.cell, slot.type_id).map(|cell| {
                    cell.mailbox
                        .push_back(crate::reactor::cell::Envelope::Msg(msg));
                    let newly = !slot.scheduled;
                    if newly {
                        slot.scheduled = true;
                        metric! {
                            slot.enq = clock;
                        }
                    }
                    newly
                })
            }
            _ => None,
        };
        match delivered {
            Some(newly) => {
                if newly {
                    self.push_runnable(to, true);
                }
                true
            }
            None => {
                self.stats.dead_sends += 1;
                false
            }
        }
    }

    pub(crate) fn dead_sends_inc(&mut self) {
        self.stats.dead_sends += 1;
    }

    fn push_signal(&mut self, to: ActorId, signal: Signal) {
        if let Some(slot) = self.slot_mut(to) {
            if !slot.exiting {
                slot.cell.push_signal(signal);
                self.schedule(to);
            }
        }
    }

    /// Puts the actor in the run queue, unless it is there already.
    pub(crate) fn schedule(&mut self, id: ActorId) {
        #[cfg(feature = "metrics")]
        let clock = self.m.clock;
        if let Some(slot) = self.slot_mut(id) {
            if !slot.scheduled {
                slot.scheduled = true;
                metric! {
                    slot.enq = clock;
                }
                self.push_runnable(id, false);
            }
        }
    }

    /// Queues an actor just marked `scheduled`. Under
    /// [`Policy::ReceiverNext`] a message sent by the running actor to
    /// another puts the receiver in the run-next slot, and the slot's
    /// previous tenant goes to the back of the queue.
    fn push_runnable(&mut self, id: ActorId, by_send: bool) {
        if by_send
            && self.config.policy == Policy::ReceiverNext
            && self.running.is_some()
            && self.running != Some(id)
        {
            if let Some(old) = self.next.replace(id) {
                self.run_queue.push_back(old);
            }
        } else {
            self.run_queue.push_back(id);
        }
        trace_ev!(self.trace, "Q {id}");
        metric! {
            let n = self.run_queue.len() as u64;
            if n > self.m.queue_depth_max {
                self.m.queue_depth_max = n;
            }
        }
    }

    pub(crate) fn set_ready(&mut self, id: ActorId, bits: u8) {
        if let Some(slot) = self.slot_mut(id) {
            slot.ready |= bits;
            self.schedule(id);
        }
    }

    pub(crate) fn at_turn_end(&mut self, id: ActorId) {
        if let Some(slot) = self.slot_mut(id) {
            if !slot.turn_end {
                slot.turn_end = true;
                self.turn_end.push(id);
            }
        }
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.is_empty()
            || self.next.is_some()
            || !self.turn_end.is_empty()
            || !self.pending_exits.is_empty()
    }

    /// Runs queued actors until the queue is empty or `turn_limit` turns
    /// have run, so that a busy set of actors cannot keep the reactor from
    /// polling.
    pub(crate) fn run_queue(&mut self) -> usize {
        let mut runs = 0;
        metric! {
            self.m.queue_depth.record(self.run_queue.len() as u64);
        }
        while let Some(id) = self.pop_runnable() {
            let Some(slot) = self.slot_mut(id) else {
                continue;
            };
            slot.scheduled = false;
            let run = slot.vtable.run;
            #[cfg(feature = "metrics")]
            let (ty, enq, start) = (slot.ty, slot.enq, self.m.clock);
            #[cfg(any(feature = "metrics", feature = "trace"))]
            let msgs = self.stats.messages;
            trace_ev!(self.trace, "B {id}");
            run(self, id);
            runs += 1;
            trace_ev!(self.trace, "E {id} {}", self.stats.messages - msgs);
            self.after_run();
            metric! {
                let end = self.m.tick();
                let handled = self.stats.messages - msgs;
                self.m.record_run(ty, enq, start, end, handled);
            }
            if runs >= self.config.turn_limit {
                break;
            }
        }
        self.stats.actor_runs += runs as u64;
        metric! {
            self.m.runs_per_turn.record(runs as u64);
        }
        runs
    }

    /// The next actor to run: the receiver-next slot (at most
    /// `RECEIVER_NEXT_MAX` times in a row), else the queue's head.
    #[inline]
    fn pop_runnable(&mut self) -> Option<ActorId> {
        if let Some(id) = self.next.take() {
            if self.next_streak < RECEIVER_NEXT_MAX || self.run_queue.is_empty() {
                self.next_streak += 1;
                return Some(id);
            }
            self.run_queue.push_back(id);
        }
        self.next_streak = 0;
        self.run_queue.pop_front()
    }

    /// Calls the `turn_end` hooks asked for this turn.
    pub(crate) fn end_turn(&mut self) {
        let mut ids = std::mem::take(&mut self.turn_end);
        for id in ids.drain(..) {
            let Some(slot) = self.slot_mut(id) else {
                continue;
            };
            slot.turn_end = false;
            let f = slot.vtable.turn_end;
            f(self, id);
            self.after_run();
        }
        // Keep the allocation; hooks may have queued new entries meanwhile.
        ids.append(&mut self.turn_end);
        self.turn_end = ids;
    }

    pub(crate) fn after_run(&mut self) {
        self.process_exits();
        self.reap_orphans();
    }

    // ----- exits, links, monitors ------------------------------------------

    /// Queues the termination of `id` with `reason`. The first reason wins.
    pub(crate) fn exit(&mut self, id: ActorId, reason: ExitReason) {
        if let Some(slot) = self.slot_mut(id) {
            if !slot.exiting {
                slot.exiting = true;
                self.pending_exits.push_back((id, reason));
                if self.running == Some(id) {
                    self.running_exits = true;
                }
            }
        }
    }

    fn process_exits(&mut self) {
        while let Some((id, reason)) = self.pending_exits.pop_front() {
            let idx = id.index() as usize;
            if self.slot(id).is_none() {
                continue;
            }
            let slot = self.slots.remove(idx);
            self.generations[idx] = self.generations[idx].wrapping_add(1);
            self.stats.exited += 1;
            trace_ev!(self.trace, "X {id} {reason}");
            log::trace!(
                "actor {id} ({}) exited: {reason}",
                (slot.vtable.type_name)()
            );
            (slot.vtable.stop)(self, slot.cell, id, &reason);
            for peer in slot.links {
                trace_ev!(self.trace, "L {id} {peer}");
                if let Some(p) = self.slot_mut(peer) {
                    p.links.retain(|l| *l != id);
                }
                self.push_signal(
                    peer,
                    Signal::Link {
                        from: id,
                        reason: reason.clone(),
                    },
                );
            }
            for (watcher, reference) in slot.monitors {
                trace_ev!(self.trace, "M {id} {watcher}");
                self.push_signal(
                    watcher,
                    Signal::Down {
                        peer: id,
                        reference,
                        reason: reason.clone(),
                    },
                );
            }
            self.reap_orphans();
        }
    }

    pub(crate) fn link(&mut self, a: ActorId, b: ActorId) {
        if a == b {
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
                if !slot.links.contains(&y) {
                    slot.links.push(y);
                }
            }
        }
    }

    pub(crate) fn unlink(&mut self, a: ActorId, b: ActorId) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(slot) = self.slot_mut(x) {
                slot.links.retain(|l| *l != y);
            }
        }
    }

    pub(crate) fn monitor(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        match self.slot_mut(peer) {
            Some(slot) if !slot.exiting => slot.monitors.push((watcher, reference)),
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

    pub(crate) fn demonitor(&mut self, watcher: ActorId, peer: ActorId, reference: MonitorRef) {
        if let Some(slot) = self.slot_mut(peer) {
            if let Some(pos) = slot
                .monitors
                .iter()
                .position(|m| *m == (watcher, reference))
            {
                slot.monitors.swap_remove(pos);
            }
        }
    }

    /// Terminates every live actor with [`ExitReason::Shutdown`].
    pub(crate) fn terminate_all(&mut self) {
        let ids: Vec<ActorId> = self
            .slots
            .iter()
            .map(|(k, _)| ActorId::new(k as u32, self.generations[k]))
            .collect();
        for id in ids {
            self.exit(id, ExitReason::Shutdown);
        }
        self.after_run();
        self.run_queue.clear();
        self.next = None;
        self.turn_end.clear();
    }

    // ----- requests --------------------------------------------------------

    pub(crate) fn open_request(
        &mut self,
        cont: Box<dyn Continuation>,
        timeout: Option<Duration>,
    ) -> RequestId {
        self.request_seq += 1;
        let seq = self.request_seq;
        let key = self.requests.insert(PendingRequest {
            seq,
            cont,
            timer: None,
        });
        let id = RequestId {
            key: key as u32,
            seq,
            reactor: self.reactor_id,
        };
        if let Some(t) = timeout {
            let timer = self
                .timers
                .add(self.now + t, TimerAction::RequestTimeout(id));
            self.requests[key].timer = Some(timer);
        }
        id
    }

    fn take_request(&mut self, id: RequestId) -> Option<Box<dyn Continuation>> {
        if id.reactor != self.reactor_id {
            return None;
        }
        match self.requests.get(id.key as usize) {
            Some(p) if p.seq == id.seq => {}
            _ => return None,
        }
        let pending = self.requests.remove(id.key as usize);
        if let Some(t) = pending.timer {
            self.timers.cancel(t);
        }
        Some(pending.cont)
    }

    pub(crate) fn complete_request<T: 'static>(
        &mut self,
        id: RequestId,
        result: Result<T, RequestError>,
    ) {
        if let Some(cont) = self.take_request(id) {
            let mut outcome = Some(result);
            cont.complete(self, &mut outcome as &mut dyn Any);
        }
    }

    fn reject_request(&mut self, id: RequestId, err: RequestError) {
        if let Some(cont) = self.take_request(id) {
            cont.reject(self, err);
        }
    }

    fn reap_orphans(&mut self) {
        take_orphans(&mut self.orphans);
        while let Some(id) = self.orphans.pop() {
            self.reject_request(id, RequestError::Dropped);
        }
    }

    /// Requests awaiting an answer.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    // ----- timers ----------------------------------------------------------

    pub(crate) fn add_timer(
        &mut self,
        deadline: Instant,
        f: Box<dyn FnOnce(&mut Core)>,
    ) -> TimerId {
        self.timers.add(deadline, TimerAction::Call(f))
    }

    pub(crate) fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub(crate) fn fire_timers(&mut self) {
        while let Some(action) = self.timers.pop_expired(self.now) {
            self.stats.timers_fired += 1;
            trace_ev!(self.trace, "T");
            match action {
                TimerAction::Call(f) => f(self),
                TimerAction::RequestTimeout(id) => self.reject_request(id, RequestError::Timeout),
            }
        }
        self.after_run();
    }

    /// Timers set and not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    // ----- I/O -------------------------------------------------------------

    pub(crate) fn register<S: Source + ?Sized>(
        &mut self,
        id: ActorId,
        source: &mut S,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry
            .register(source, Token(id.to_u64() as usize), interest)
    }

    pub(crate) fn deregister<S: Source + ?Sized>(&mut self, source: &mut S) -> io::Result<()> {
        self.registry.deregister(source)
    }

    /// Frees the mailbox memory of actors that are not runnable. Run about
    /// once a second: an actor that stays busy reallocates its mailbox at
    /// most that often, and an idle connection holds no mailbox memory.
    pub(crate) fn trim_idle(&mut self) {
        for (_, slot) in self.slots.iter_mut() {
            if !slot.scheduled {
                slot.cell.trim();
            }
        }
        self.buffers.clear();
    }

    // ----- buffers ---------------------------------------------------------

    /// An empty buffer with room for at least `min` bytes, from the pool when
    /// one is there.
    pub(crate) fn take_buffer(&mut self, min: usize) -> BytesMut {
        let mut b = self.buffers.pop().unwrap_or_default();
        b.clear();
        b.reserve(min);
        b
    }

    /// Returns a buffer to the pool.
    pub(crate) fn give_buffer(&mut self, b: BytesMut) {
        if self.buffers.len() < POOL_MAX && b.capacity() > 0 {
            self.buffers.push(b);
        }
    }

    // ----- reactor ---------------------------------------------------------

    /// A handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle::new(self.remote.clone())
    }

    pub(crate) fn request_shutdown(&mut self) {
        self.shutdown = true;
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown
    }

    /// A snapshot of the scheduler metrics (only `stats` is filled in
    /// without the `metrics` feature).
    pub fn metrics(&self) -> crate::reactor::Metrics {
        #[cfg(feature = "metrics")]
        {
            self.m.snapshot(self.stats())
        }
        #[cfg(not(feature = "metrics"))]
        {
            crate::reactor::Metrics {
                stats: self.stats(),
                ..Default::default()
            }
        }
    }

    /// The reactor-wide socket counters, for socket actors to add to.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn sock(&mut self) -> &mut crate::reactor::SocketStats {
        &mut self.m.sockets
    }

    /// Turns the event trace on, writing to `out` (buffered; flushed when
    /// the reactor's run ends). See `reactor::trace` for the format.
    /// Only with the `trace` cargo feature.
    #[cfg(feature = "trace")]
    pub fn set_trace(&mut self, out: Box<dyn std::io::Write>) {
        self.trace = Some(Box::new(crate::reactor::trace::Tracer::new(out)));
    }

    /// Flushes the event trace, if on.
    pub fn flush_trace(&mut self) {
        #[cfg(feature = "trace")]
        if let Some(t) = self.trace.as_deref_mut() {
            t.flush();
        }
    }

    /// A copy of the runtime counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.live_actors = self.slots.len() as u64;
        s
    }
}

use crate::actor::Addr;
