//! The context a handler runs in: its own identity and the reactor's
//! services (send, spawn, link, monitor, timers, I/O registration).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::Interest;

use crate::actor::{Actor, ActorId, Addr, ExitReason, MapInto, MonitorRef, Reply, RequestError};
use crate::reactor::{Core, ReactorHandle, TimerId};

/// What a handler can do. Given to every [`Actor`] entry point.
pub struct Ctx<'a, A: Actor> {
    core: &'a mut Core,
    id: ActorId,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> std::fmt::Debug for Ctx<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

    pub(crate) fn core(&mut self) -> &mut Core {
        self.core
    }

    /// This actor's handle.
    pub fn me(&self) -> Addr<A> {
        Addr::new(self.id)
    }

    /// This actor's identity.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The time the current reactor turn started (cheaper than
    /// `Instant::now()`, and the same for every handler of the turn).
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// Sends a one-way message. Returns false, and drops the message, if the
    /// receiver is dead.
    pub fn send<B: Actor>(&mut self, to: Addr<B>, msg: B::Msg) -> bool {
        self.core.send::<B>(to.id(), msg)
    }

    /// Spawns an actor. It runs its `started` hook on its first turn.
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

    /// Terminates this actor normally after the current handler returns.
    pub fn stop(&mut self) {
        self.core.exit(self.id, ExitReason::Normal)
    }

    /// Terminates this actor with `reason` after the current handler returns.
    pub fn exit(&mut self, reason: ExitReason) {
        self.core.exit(self.id, reason)
    }

    /// Kills another actor (reason [`ExitReason::Killed`]). It cannot refuse.
    pub fn kill(&mut self, peer: ActorId) {
        self.core.exit(peer, ExitReason::Killed)
    }

    /// Terminates another actor with an explicit reason.
    pub fn exit_actor(&mut self, peer: ActorId, reason: ExitReason) {
        self.core.exit(peer, reason)
    }

    /// True if `peer` is alive.
    pub fn is_alive(&self, peer: ActorId) -> bool {
        self.core.is_alive(peer)
    }

    /// Sends a request: `make` builds the callee's message around the reply
    /// slot, and `map` turns the outcome into a message to this actor. A dead
    /// callee rejects at once with [`RequestError::DeadActor`].
    pub fn request<B, T, F>(&mut self, to: Addr<B>, make: impl FnOnce(Reply<T>) -> B::Msg, map: F)
    where
        B: Actor,
        T: 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        self.request_inner(to, make, map, None)
    }

    /// A request that is rejected with [`RequestError::Timeout`] if nobody
    /// answers within `timeout`. A late answer is dropped quietly.
    pub fn request_timeout<B, T, F>(
        &mut self,
        to: Addr<B>,
        make: impl FnOnce(Reply<T>) -> B::Msg,
        map: F,
        timeout: Duration,
    ) where
        B: Actor,
        T: 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        self.request_inner(to, make, map, Some(timeout))
    }

    fn request_inner<B, T, F>(
        &mut self,
        to: Addr<B>,
        make: impl FnOnce(Reply<T>) -> B::Msg,
        map: F,
        timeout: Option<Duration>,
    ) where
        B: Actor,
        T: 'static,
        F: FnOnce(Result<T, RequestError>) -> A::Msg + 'static,
    {
        let cont = Box::new(MapInto::<T, A, F> {
            caller: self.id,
            map,
            _types: PhantomData,
        });
        if !self.core.is_alive(to.id()) {
            self.core.dead_sends_inc();
            let msg = (cont.map)(Err(RequestError::DeadActor(to.id())));
            self.core.send::<A>(self.id, msg);
            return;
        }
        let req = self.core.open_request(cont, timeout);
        self.core.send::<B>(to.id(), make(Reply::to_actor(req)));
    }

    /// Delivers `msg` to `to` after `delay`. Cancel with
    /// [`Ctx::cancel_timer`].
    pub fn send_after<B: Actor>(&mut self, to: Addr<B>, msg: B::Msg, delay: Duration) -> TimerId {
        let id = to.id();
        let deadline = self.core.now() + delay;
        self.core.add_timer(
            deadline,
            Box::new(move |core: &mut Core| {
                core.send::<B>(id, msg);
            }),
        )
    }

    /// Cancels a timer. Returns false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }

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
    /// gets another turn (after the others queued now). Used by actors that
    /// yield in the middle of a long job.
    pub fn yield_now(&mut self) {
        self.core.schedule(self.id)
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        self.core.handle()
    }

    /// Asks the reactor to stop after this turn; every live actor is then
    /// terminated with [`ExitReason::Shutdown`].
    pub fn shutdown_reactor(&mut self) {
        self.core.request_shutdown()
    }

    /// Runtime counters (messages, sends to dead actors, ...).
    pub fn stats(&self) -> crate::reactor::Stats {
        self.core.stats()
    }

    /// A snapshot of the reactor's scheduler metrics.
    pub fn metrics(&self) -> crate::reactor::Metrics {
        self.core.metrics()
    }
}
