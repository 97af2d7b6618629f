//! The context a handler runs in: its own identity and the runtime's
//! services (send, spawn, link, monitor, requests, timers, I/O
//! registration, reactor-local state, the trace).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::Interest;

use crate::actor::request::MapInto;
use crate::actor::{
    Actor, ActorId, Addr, Core, Destination, ExitReason, MonitorRef, NameError, ReactorHandle,
    Reply, RequestError, SendError,
};
use crate::reactor::{Local, Metrics, Stats, TimerId};

/// What a handler can do. Given to every [`Actor`] entry point.
pub struct Ctx<'a, A: Actor> {
    core: &'a mut Core,
    id: ActorId,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> fmt::Debug for Ctx<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ctx({})", self.id)
    }
}

impl<'a, A: Actor> Ctx<'a, A> {
    pub(crate) fn new(core: &'a mut Core, id: ActorId) -> Ctx<'a, A> {
        Ctx {
            core,
            id,
            _actor: PhantomData,
        }
    }

    /// The reactor's state, for operations by id on other actors
    /// (`Core::at_turn_end`, `Core::wake`, `Core::direct`, ...).
    #[inline(always)]
    pub fn core(&mut self) -> &mut Core {
        self.core
    }

    /// This actor's address.
    pub fn me(&self) -> Addr<A> {
        Addr::new(self.id)
    }

    /// This actor's identity.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The time read after the reactor's last `poll`: the same for every
    /// handler of a turn, and cheaper than `Instant::now()`.
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    // ----- messages --------------------------------------------------------

    /// Sends a one-way message to an [`Addr`] or a
    /// [`Recipient`](crate::actor::Recipient). Returns false, and drops the
    /// message, if the receiver is dead.
    #[inline]
    pub fn send<M>(&mut self, to: impl Destination<M>, msg: M) -> bool {
        self.core.send(to, msg)
    }

    /// Sends a request: `make` builds the callee's message around the reply
    /// slot, and `map` turns the outcome into a message to this actor. A
    /// dead callee rejects at once with [`RequestError::DeadActor`].
    pub fn request<B, T, F>(
        &mut self,
        to: Addr<B>,
        make: impl FnOnce(Reply<T>) -> B::Msg + Send + 'static,
        map: F,
    ) where
        B: Actor,
        T: Send + 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        self.request_inner(to, make, map, None)
    }

    /// A request that is rejected with [`RequestError::Timeout`] if nobody
    /// answers within `timeout`. A late answer is dropped quietly.
    pub fn request_timeout<B, T, F>(
        &mut self,
        to: Addr<B>,
        make: impl FnOnce(Reply<T>) -> B::Msg + Send + 'static,
        map: F,
        timeout: Duration,
    ) where
        B: Actor,
        T: Send + 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        self.request_inner(to, make, map, Some(timeout))
    }

    fn request_inner<B, T, F>(
        &mut self,
        to: Addr<B>,
        make: impl FnOnce(Reply<T>) -> B::Msg + Send + 'static,
        map: F,
        timeout: Option<Duration>,
    ) where
        B: Actor,
        T: Send + 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        let cont = Box::new(MapInto::<T, A, F> {
            map,
            _types: PhantomData,
        });
        let local = to.id().reactor() == self.core.reactor_index();
        if local && !self.core.is_alive(to.id()) {
            self.core.count_dead_send(to.id());
            let msg = (cont.map)(Err(RequestError::DeadActor(to.id())));
            self.core.send(self.me(), msg);
            return;
        }
        let req = self.core.open_request(self.id, cont, timeout);
        let reply = Reply::to_actor(req);
        if local {
            self.core.send(to, make(reply));
        } else {
            request_elsewhere(self.core, to, make, reply);
        }
    }

    /// Like [`Ctx::send`], for a receiver that may live on another reactor
    /// of the group: if the lane to that reactor is full (`Config::peer_queue`
    /// messages wait in it, counting what this reactor has not sent yet),
    /// the message comes back as [`SendError::Full`] instead of waiting on
    /// this side. That is the group's back-pressure: the sender keeps the
    /// message, and can ask with [`Ctx::when_room`] to be told when to try
    /// again. A send to an actor of this reactor never comes back full.
    pub fn try_send<M>(&mut self, to: impl Destination<M>, msg: M) -> Result<(), SendError<M>> {
        self.core.try_send(to, msg)
    }

    /// Sends `msg` to this actor once the lane to reactor `to` has room
    /// again (at the end of this turn if it has room now): what an actor
    /// refused by [`Ctx::try_send`] waits for.
    pub fn when_room(&mut self, to: usize, msg: A::Msg) {
        let me = self.me();
        self.core.when_room(to, move |core: &mut Core| {
            core.send(me, msg);
        });
    }

    /// This actor's reactor: its number in the group (0 for a reactor on
    /// its own).
    pub fn reactor(&self) -> usize {
        self.core.reactor_index()
    }

    /// Reactors in the group (1 for a reactor on its own).
    pub fn reactors(&self) -> usize {
        self.core.reactors()
    }

    /// Spawns the actor `make` builds on reactor `reactor` of the group,
    /// and sends this actor `then(address)` once it exists. On this
    /// reactor, at once; with no such reactor (or a stopped one), nothing
    /// is spawned and `then` is never called (false).
    pub fn spawn_on<B, F, G>(&mut self, reactor: usize, make: F, then: G) -> bool
    where
        B: Actor,
        F: FnOnce() -> B + Send + 'static,
        G: FnOnce(Addr<B>) -> A::Msg + Send + 'static,
    {
        let me = self.me();
        if reactor == self.core.reactor_index() {
            let addr = self.core.spawn(make());
            self.core.send(me, then(addr));
            return true;
        }
        self.core.post_to(reactor, move |core: &mut Core| {
            let addr = core.spawn(make());
            core.send(me, then(addr));
        })
    }

    /// Delivers `msg` to `to` after `delay`. Cancel with
    /// [`Ctx::cancel_timer`].
    pub fn send_after<M: 'static>(
        &mut self,
        to: impl Destination<M> + 'static,
        msg: M,
        delay: Duration,
    ) -> TimerId {
        let deadline = self.core.now() + delay;
        self.core.add_timer(
            deadline,
            Box::new(move |core: &mut Core| {
                core.send(to, msg);
            }),
        )
    }

    /// Cancels a timer. Returns false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }

    // ----- actors ----------------------------------------------------------

    /// Spawns an actor. It runs its `started` hook on its first run.
    pub fn spawn<B: Actor>(&mut self, actor: B) -> Addr<B> {
        self.core.spawn(actor)
    }

    /// Spawns an actor already linked to this one.
    pub fn spawn_link<B: Actor>(&mut self, actor: B) -> Addr<B> {
        let addr = self.core.spawn(actor);
        self.core.link(self.id, addr.id());
        addr
    }

    /// Links this actor and `peer` both ways. Linking a dead actor delivers
    /// the link notice at once, with [`ExitReason::NoSuchActor`].
    pub fn link(&mut self, peer: ActorId) {
        self.core.link(self.id, peer)
    }

    /// Removes a link, if there is one. Idempotent.
    pub fn unlink(&mut self, peer: ActorId) {
        self.core.unlink(self.id, peer)
    }

    /// Monitors `peer`: when it terminates, this actor's [`Actor::down`]
    /// receives `(peer, reference, reason)`. Monitoring a dead actor
    /// notifies at once.
    pub fn monitor(&mut self, peer: ActorId, reference: MonitorRef) {
        self.core.monitor(self.id, peer, reference)
    }

    /// Removes a monitor set with this reference, if there is one.
    /// Idempotent.
    pub fn demonitor(&mut self, peer: ActorId, reference: MonitorRef) {
        self.core.demonitor(self.id, peer, reference)
    }

    /// Ends this actor normally once the current handler returns.
    pub fn stop(&mut self) {
        self.core.terminate(self.id, ExitReason::Normal)
    }

    /// Ends this actor with `reason` once the current handler returns.
    pub fn exit(&mut self, reason: ExitReason) {
        self.core.terminate(self.id, reason)
    }

    /// Kills another actor ([`ExitReason::Killed`]). It cannot refuse.
    pub fn kill(&mut self, peer: ActorId) {
        self.core.kill(peer)
    }

    /// Ends another actor with an explicit reason.
    pub fn terminate(&mut self, peer: ActorId, reason: ExitReason) {
        self.core.terminate(peer, reason)
    }

    /// Another actor's state, in place, when acting on it now is the same
    /// as sending it a message: see [`Core::direct`]. `None` means send the
    /// message instead.
    #[inline(always)]
    pub fn direct<B: Actor>(&mut self, to: Addr<B>) -> Option<&mut B> {
        self.core.direct(to)
    }

    /// True if `peer` is alive.
    pub fn is_alive(&self, peer: ActorId) -> bool {
        self.core.is_alive(peer)
    }

    /// Registers this actor under `name` on its reactor, until it exits.
    pub fn register_name(&mut self, name: impl Into<Arc<str>>) -> Result<(), NameError> {
        self.core.register_name(name, self.id)
    }

    /// The actor registered under `name`, if there is one and it is a `B`.
    pub fn whereis<B: Actor>(&self, name: &str) -> Option<Addr<B>> {
        self.core.whereis(name)
    }

    // ----- the reactor -----------------------------------------------------

    /// Registers an I/O source with the reactor's poll, on behalf of this
    /// actor: its readiness arrives through [`Actor::io_ready`].
    pub fn register<S: Source + ?Sized>(
        &mut self,
        source: &mut S,
        interest: Interest,
    ) -> std::io::Result<()> {
        self.core.register(self.id, source, interest)
    }

    /// Removes an I/O source from the poll.
    pub fn deregister<S: Source + ?Sized>(&mut self, source: &mut S) -> std::io::Result<()> {
        self.core.deregister(source)
    }

    /// Asks for one call of [`Actor::turn_end`] at the end of this turn.
    pub fn at_turn_end(&mut self) {
        self.core.at_turn_end(self.id)
    }

    /// Makes this actor runnable again even without a new message, so it
    /// gets another run (after the others queued now). Used by actors that
    /// yield in the middle of a long job.
    pub fn yield_now(&mut self) {
        self.core.schedule(self.id)
    }

    /// This reactor's `T` (see [`Local`]): state shared by every actor of
    /// the reactor, created with `Default` on first use.
    #[inline]
    pub fn local<T: Local>(&mut self) -> &mut T {
        self.core.local::<T>()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        self.core.handle()
    }

    /// Asks the reactor to stop after this turn; every live actor is then
    /// ended with [`ExitReason::Shutdown`].
    pub fn shutdown_reactor(&mut self) {
        self.core.request_shutdown()
    }

    /// Runtime counters (messages, sends to dead actors, ...).
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// A snapshot of the reactor's scheduler metrics.
    pub fn metrics(&self) -> Metrics {
        self.core.metrics()
    }

    /// True while the event trace is on: test it before building an event.
    #[inline]
    pub fn tracing(&self) -> bool {
        self.core.tracing()
    }

    /// Writes the trace event `<kind> <id>` or `<kind> <id> <value>` if the
    /// trace is on: the cheapest kind of trace point (see
    /// [`Core::trace_id`]).
    #[inline(always)]
    pub fn trace_id(&mut self, kind: char, id: ActorId, value: Option<u64>) {
        self.core.trace_id(kind, id, value)
    }

    /// Writes one trace event (`<kind> <fields>`) if the trace is on. The
    /// trace format is in `tools/TRACE_FORMAT.md`.
    #[cold]
    #[inline(never)]
    pub fn trace(&mut self, event: fmt::Arguments<'_>) {
        self.core.trace(event)
    }
}

/// A request to an actor of another reactor: made there, where it is known
/// whether the callee is alive (a dead one rejects with `DeadActor`, as on
/// one reactor).
#[cold]
#[inline(never)]
fn request_elsewhere<B: Actor, T: Send + 'static>(
    core: &mut Core,
    to: Addr<B>,
    make: impl FnOnce(Reply<T>) -> B::Msg + Send + 'static,
    reply: Reply<T>,
) {
    let sent = core.post_to(to.id().reactor(), move |core: &mut Core| {
        if core.is_alive(to.id()) {
            core.send(to, make(reply));
        } else {
            core.count_dead_send(to.id());
            reply.answer(core, Err(RequestError::DeadActor(to.id())));
        }
    });
    if !sent {
        core.count_dead_send(to.id());
    }
}
