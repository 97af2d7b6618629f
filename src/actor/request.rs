//! Requests and their reply slots.
//!
//! A request is an ordinary message that carries a [`Reply`]. The callee
//! answers at once (`reply.resolve(ctx, value)`), rejects it
//! (`reply.reject(ctx, err)`), or *detaches* it: keeps the `Reply` in its own
//! state and answers later, in any order. That is how the echo client answers
//! each waiting caller as reply lines arrive.
//!
//! Replies to an actor go through the table of pending requests kept here
//! (one per reactor, in the actor layer's state), so a request timeout and
//! a late answer cannot both reach the caller: whichever comes first
//! removes the entry. Replies to another thread go through a one-shot slot
//! the thread blocks on.
//!
//! A `Reply` dropped unanswered (its holder died, or forgot it) rejects the
//! request with [`RequestError::Dropped`], so no caller waits for ever.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::actor::{Actor, ActorId, Core, Ctx};
use crate::reactor::{on_reactor_thread, TimerId};

/// Why a request produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The callee was not alive when the request was sent.
    DeadActor(ActorId),
    /// Nobody answered within the request's timeout.
    Timeout,
    /// The reply slot was dropped unanswered (usually: the callee died).
    Dropped,
    /// The callee rejected the request with this message.
    Rejected(Arc<str>),
    /// The reactor is not running, so the request could not be delivered.
    ReactorGone,
    /// A blocking call was made on the reactor's own thread, which would
    /// deadlock it.
    WouldBlockReactor,
}

impl RequestError {
    /// A rejection carrying a message for the caller.
    pub fn rejected(msg: impl Into<Arc<str>>) -> RequestError {
        RequestError::Rejected(msg.into())
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::DeadActor(id) => write!(f, "request to dead actor {id}"),
            RequestError::Timeout => f.write_str("request timed out"),
            RequestError::Dropped => f.write_str("request dropped unanswered"),
            RequestError::Rejected(m) => write!(f, "request rejected: {m}"),
            RequestError::ReactorGone => f.write_str("reactor is not running"),
            RequestError::WouldBlockReactor => {
                f.write_str("blocking call on the reactor thread would deadlock it")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Identifies a pending request in its reactor's table. `seq` is unique per
/// reactor, so a stale id never matches a reused table slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId {
    pub(crate) key: u32,
    pub(crate) seq: u64,
    pub(crate) reactor: u32,
}

/// What the caller does with the outcome: monomorphised for the caller's
/// message type, erased here. The caller's id is kept beside it, so a
/// continuation whose map is a function or a closure that captures nothing
/// is zero-sized and boxing it allocates nothing.
pub(crate) trait Continuation {
    /// `outcome` is an `Option<Result<T, RequestError>>` holding the value.
    fn complete(self: Box<Self>, core: &mut Core, caller: ActorId, outcome: &mut dyn Any);
    fn reject(self: Box<Self>, core: &mut Core, caller: ActorId, err: RequestError);
}

pub(crate) struct MapInto<T, A: Actor, F> {
    pub(crate) map: F,
    pub(crate) _types: std::marker::PhantomData<fn(T) -> A>,
}

impl<T, A, F> Continuation for MapInto<T, A, F>
where
    T: 'static,
    A: Actor,
    F: FnOnce(Result<T, RequestError>) -> A::Msg,
{
    fn complete(self: Box<Self>, core: &mut Core, caller: ActorId, outcome: &mut dyn Any) {
        if let Some(result) = outcome
            .downcast_mut::<Option<Result<T, RequestError>>>()
            .and_then(Option::take)
        {
            let msg = (self.map)(result);
            core.send_to::<A>(caller, msg);
        }
    }

    fn reject(self: Box<Self>, core: &mut Core, caller: ActorId, err: RequestError) {
        let msg = (self.map)(Err(err));
        core.send_to::<A>(caller, msg);
    }
}

/// A one-shot slot another thread blocks on.
struct Oneshot<T> {
    value: Mutex<Option<Result<T, RequestError>>>,
    ready: Condvar,
}

impl<T> Oneshot<T> {
    fn fill(&self, result: Result<T, RequestError>) {
        let mut slot = self.value.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(result);
            self.ready.notify_all();
        }
    }
}

enum Target<T> {
    Actor(RequestId),
    Thread(Arc<Oneshot<T>>),
    Answered,
}

/// The reply slot of one request (the tutorial's `Actor caller`).
///
/// Keep it to answer later (detach); answer it exactly once.
pub struct Reply<T: Send + 'static> {
    target: Target<T>,
}

impl<T: Send + 'static> Reply<T> {
    pub(crate) fn to_actor(id: RequestId) -> Reply<T> {
        Reply {
            target: Target::Actor(id),
        }
    }

    /// A reply slot and the handle another thread waits on.
    pub(crate) fn to_thread() -> (Reply<T>, PendingReply<T>) {
        let shot = Arc::new(Oneshot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        });
        (
            Reply {
                target: Target::Thread(shot.clone()),
            },
            PendingReply { shot },
        )
    }

    /// Answers the request with a value.
    pub fn resolve<A: Actor>(self, ctx: &mut Ctx<'_, A>, value: T) {
        self.answer(ctx.core(), Ok(value))
    }

    /// Rejects the request.
    pub fn reject<A: Actor>(self, ctx: &mut Ctx<'_, A>, err: RequestError) {
        self.answer(ctx.core(), Err(err))
    }

    /// Answers with a result: the "reply by returning a value" form.
    pub fn answer_with<A: Actor>(self, ctx: &mut Ctx<'_, A>, result: Result<T, RequestError>) {
        self.answer(ctx.core(), result)
    }

    #[inline]
    pub(crate) fn answer(mut self, core: &mut Core, result: Result<T, RequestError>) {
        match std::mem::replace(&mut self.target, Target::Answered) {
            Target::Actor(id) => core.complete_request(id, result),
            Target::Thread(shot) => shot.fill(result),
            Target::Answered => {}
        }
    }
}

impl<T: Send + 'static> Drop for Reply<T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.target, Target::Answered) {
            Target::Actor(id) => ORPHANS.with(|o| o.borrow_mut().push(id)),
            Target::Thread(shot) => shot.fill(Err(RequestError::Dropped)),
            Target::Answered => {}
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Actor(id) => write!(f, "Reply(request {})", id.seq),
            Target::Thread(_) => f.write_str("Reply(thread)"),
            Target::Answered => f.write_str("Reply(answered)"),
        }
    }
}

thread_local! {
    /// Actor-bound replies dropped unanswered on this thread. A `Drop` impl
    /// cannot reach the reactor, so it leaves the id here and the reactor
    /// rejects the request after the current actor's turn.
    static ORPHANS: RefCell<Vec<RequestId>> = const { RefCell::new(Vec::new()) };
}

/// Takes the ids of replies dropped unanswered on this thread.
pub(crate) fn take_orphans(into: &mut Vec<RequestId>) {
    ORPHANS.with(|o| {
        let mut o = o.borrow_mut();
        if !o.is_empty() {
            into.append(&mut o);
        }
    })
}

/// The answer to a request made from outside the reactor, to wait on.
pub struct PendingReply<T> {
    shot: Arc<Oneshot<T>>,
}

impl<T> PendingReply<T> {
    /// A reply that has already failed.
    pub(crate) fn failed(err: RequestError) -> PendingReply<T> {
        PendingReply {
            shot: Arc::new(Oneshot {
                value: Mutex::new(Some(Err(err))),
                ready: Condvar::new(),
            }),
        }
    }

    /// Blocks until the answer arrives. Never waits for ever: if the reactor
    /// stops, the reply slot is dropped and this returns
    /// [`RequestError::Dropped`].
    pub fn wait(self) -> Result<T, RequestError> {
        if on_reactor_thread() {
            return Err(RequestError::WouldBlockReactor);
        }
        let mut slot = self.shot.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(result) = slot.take() {
                return result;
            }
            slot = self
                .shot
                .ready
                .wait(slot)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the answer arrives or `timeout` passes
    /// ([`RequestError::Timeout`]).
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, RequestError> {
        if on_reactor_thread() {
            return Err(RequestError::WouldBlockReactor);
        }
        let deadline = Instant::now() + timeout;
        let mut slot = self.shot.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(result) = slot.take() {
                return result;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RequestError::Timeout);
            }
            slot = self
                .shot
                .ready
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The answer, if it has arrived.
    pub fn try_take(&self) -> Option<Result<T, RequestError>> {
        self.shot
            .value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl<T> fmt::Debug for PendingReply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingReply")
    }
}

/// The actor layer's timers.
#[derive(Debug)]
pub enum ActorTimer {
    /// Rejects a pending request with [`RequestError::Timeout`].
    RequestTimeout(RequestId),
}

struct PendingRequest {
    seq: u64,
    caller: ActorId,
    cont: Box<dyn Continuation>,
    timer: Option<TimerId>,
}

/// The requests of one reactor's actors that await an answer.
#[derive(Default)]
pub(crate) struct Requests {
    table: Slab<PendingRequest>,
    seq: u64,
    /// Replies dropped unanswered, taken from the thread-local list.
    orphans: Vec<RequestId>,
}

impl fmt::Debug for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Requests({} pending)", self.table.len())
    }
}

impl Core {
    #[inline]
    pub(crate) fn open_request(
        &mut self,
        caller: ActorId,
        cont: Box<dyn Continuation>,
        timeout: Option<Duration>,
    ) -> RequestId {
        let requests = &mut self.layer.requests;
        requests.seq += 1;
        let seq = requests.seq;
        let key = requests.table.insert(PendingRequest {
            seq,
            caller,
            cont,
            timer: None,
        });
        let id = RequestId {
            key: key as u32,
            seq,
            reactor: self.reactor_id(),
        };
        if let Some(t) = timeout {
            let deadline = self.now() + t;
            let timer = self.add_layer_timer(deadline, ActorTimer::RequestTimeout(id));
            self.layer.requests.table[key].timer = Some(timer);
        }
        id
    }

    /// The pending request `id` of this reactor (callers check that it is
    /// this reactor's), taken out of the table.
    fn take_request(&mut self, id: RequestId) -> Option<(ActorId, Box<dyn Continuation>)> {
        let table = &mut self.layer.requests.table;
        match table.get(id.key as usize) {
            Some(p) if p.seq == id.seq => {}
            _ => return None,
        }
        let pending = table.remove(id.key as usize);
        if let Some(t) = pending.timer {
            self.cancel_timer(t);
        }
        Some((pending.caller, pending.cont))
    }

    #[inline]
    pub(crate) fn complete_request<T: Send + 'static>(
        &mut self,
        id: RequestId,
        result: Result<T, RequestError>,
    ) {
        if id.reactor != self.reactor_id() {
            return self.complete_elsewhere(id, result);
        }
        if let Some((caller, cont)) = self.take_request(id) {
            let mut outcome = Some(result);
            cont.complete(self, caller, &mut outcome as &mut dyn Any);
        }
    }

    /// Answered on another reactor of the group: the answer travels to the
    /// caller's, where the table (and the timeout) is.
    #[cold]
    #[inline(never)]
    fn complete_elsewhere<T: Send + 'static>(
        &mut self,
        id: RequestId,
        result: Result<T, RequestError>,
    ) {
        if let Some(peer) = self.peer_of(id.reactor) {
            self.post_to(peer, move |core: &mut Core| {
                core.complete_request(id, result)
            });
        }
    }

    fn reject_request(&mut self, id: RequestId, err: RequestError) {
        if let Some((caller, cont)) = self.take_request(id) {
            cont.reject(self, caller, err);
        }
    }

    pub(crate) fn request_timed_out(&mut self, id: RequestId) {
        self.reject_request(id, RequestError::Timeout);
    }

    /// Rejects, with `Dropped`, the requests whose reply slots were dropped
    /// unanswered on this thread. With no request pending there is nothing
    /// to reject (a dropped reply of an answered or timed-out request is
    /// ignored anyway), so the thread-local list waits for the next time one
    /// is, or for the once-a-second trim.
    #[inline]
    pub(crate) fn reap_orphans(&mut self) {
        if self.layer.requests.table.is_empty() {
            return;
        }
        take_orphans(&mut self.layer.requests.orphans);
        while let Some(id) = self.layer.requests.orphans.pop() {
            self.reject_orphan(id);
        }
    }

    /// Rejects a request whose reply slot was dropped here, on the
    /// caller's reactor.
    fn reject_orphan(&mut self, id: RequestId) {
        if id.reactor == self.reactor_id() {
            self.reject_request(id, RequestError::Dropped);
        } else if let Some(peer) = self.peer_of(id.reactor) {
            self.post_to(peer, move |core: &mut Core| {
                core.reject_request(id, RequestError::Dropped)
            });
        }
    }

    /// In a group, once per turn: rejects the requests whose reply slots
    /// were dropped on this thread, whether or not this reactor has
    /// requests of its own pending (the slots may be other reactors').
    pub(crate) fn route_orphans(&mut self) {
        take_orphans(&mut self.layer.requests.orphans);
        while let Some(id) = self.layer.requests.orphans.pop() {
            self.reject_orphan(id);
        }
    }

    /// Forgets the replies dropped on this thread while no request was
    /// pending (they can only name requests already settled).
    pub(crate) fn trim_orphans(&mut self) {
        if self.layer.requests.table.is_empty() {
            let mut stale = Vec::new();
            take_orphans(&mut stale);
        }
    }

    /// Requests awaiting an answer.
    pub fn pending_requests(&self) -> usize {
        self.layer.requests.table.len()
    }
}
