//! Reaching the reactor from other threads.
//!
//! Other threads never touch actors. They queue closures that the reactor
//! runs on its own thread, and wake it through a `mio::Waker`. This path
//! takes a mutex and a syscall, so it is for `main`, tests and tools, not
//! for traffic between actors, which never leaves the reactor thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::actor::{Actor, ActorId, Addr, ExitReason, PendingReply, Reply, RequestError};
use crate::reactor::{Core, Stats};

/// A closure another thread queued for the reactor thread.
pub(crate) type Command = Box<dyn FnOnce(&mut Core) + Send>;

pub(crate) struct Remote {
    queue: Mutex<Queue>,
    waker: mio::Waker,
    /// Live `ReactorHandle`s. With none left and no actor alive, nothing can
    /// ever happen again, and `run` returns.
    handles: AtomicUsize,
}

struct Queue {
    commands: Vec<Command>,
    /// The reactor has stopped; new commands are refused.
    closed: bool,
}

impl Remote {
    pub(crate) fn new(waker: mio::Waker) -> Remote {
        Remote {
            queue: Mutex::new(Queue {
                commands: Vec::new(),
                closed: false,
            }),
            waker,
            handles: AtomicUsize::new(0),
        }
    }

    fn post(&self, cmd: Command) -> bool {
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if !q.closed {
                q.commands.push(cmd);
                drop(q);
                if let Err(e) = self.waker.wake() {
                    log::warn!("waking the reactor failed: {e}");
                }
                return true;
            }
        }
        // Dropped outside the lock: it may hold reply slots whose drop
        // reports `Dropped` to a waiting thread.
        drop(cmd);
        false
    }

    /// Takes the queued commands (into `into`, to reuse its allocation).
    pub(crate) fn take(&self, into: &mut Vec<Command>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut q.commands, into);
    }

    pub(crate) fn handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .commands
            .is_empty()
    }

    /// Refuses further commands and drops the queued ones.
    pub(crate) fn close(&self) {
        let pending = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.closed = true;
            std::mem::take(&mut q.commands)
        };
        drop(pending);
    }
}

thread_local! {
    static ON_REACTOR: Cell<bool> = const { Cell::new(false) };
}

/// True on a thread that is running a reactor.
pub fn on_reactor_thread() -> bool {
    ON_REACTOR.with(Cell::get)
}

/// Marks the current thread as a reactor thread while alive.
pub(crate) struct ReactorThreadGuard(bool);

impl ReactorThreadGuard {
    pub(crate) fn enter() -> ReactorThreadGuard {
        ReactorThreadGuard(ON_REACTOR.with(|c| c.replace(true)))
    }
}

impl Drop for ReactorThreadGuard {
    fn drop(&mut self) {
        ON_REACTOR.with(|c| c.set(self.0));
    }
}

/// A handle to a reactor for other threads: spawn, send, request, kill,
/// shut down. Cheap to clone.
///
/// While any handle exists, [`Reactor::run`](crate::Reactor::run) keeps
/// running even with no actor alive, since the handle may spawn more.
pub struct ReactorHandle {
    remote: Arc<Remote>,
}

impl ReactorHandle {
    pub(crate) fn new(remote: Arc<Remote>) -> ReactorHandle {
        remote.handles.fetch_add(1, Ordering::AcqRel);
        ReactorHandle { remote }
    }

    /// Runs `f` on the reactor thread. False if the reactor has stopped.
    pub(crate) fn post(&self, f: impl FnOnce(&mut Core) + Send + 'static) -> bool {
        self.remote.post(Box::new(f))
    }

    /// Runs `f` on the reactor thread and waits for its result.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
        timeout: Duration,
    ) -> Result<R, RequestError> {
        if on_reactor_thread() {
            return Err(RequestError::WouldBlockReactor);
        }
        let (reply, pending) = Reply::to_thread();
        if !self.post(move |core| {
            let r = f(core);
            reply.answer(core, Ok(r));
        }) {
            return Err(RequestError::ReactorGone);
        }
        pending.wait_timeout(timeout)
    }

    /// Sends a one-way message. False if the reactor has stopped; a message
    /// to a dead actor is dropped and counted there.
    pub fn send<A: Actor>(&self, to: Addr<A>, msg: A::Msg) -> bool
    where
        A::Msg: Send,
    {
        self.post(move |core| {
            core.send::<A>(to.id(), msg);
        })
    }

    /// Spawns an actor built by `make` on the reactor thread, and waits for
    /// its handle.
    pub fn spawn<A: Actor>(
        &self,
        make: impl FnOnce() -> A + Send + 'static,
    ) -> Result<Addr<A>, RequestError> {
        self.call(move |core| core.spawn(make()), Duration::from_secs(30))
    }

    /// Sends a request and returns the pending answer to wait on. A dead
    /// callee rejects with [`RequestError::DeadActor`].
    pub fn request<A: Actor, T: Send + 'static>(
        &self,
        to: Addr<A>,
        make: impl FnOnce(Reply<T>) -> A::Msg + Send + 'static,
    ) -> PendingReply<T> {
        let (reply, pending) = Reply::to_thread();
        let posted = self.post(move |core| {
            if core.is_alive(to.id()) {
                core.send::<A>(to.id(), make(reply));
            } else {
                core.dead_sends_inc();
                reply.answer(core, Err(RequestError::DeadActor(to.id())));
            }
        });
        if posted {
            pending
        } else {
            PendingReply::failed(RequestError::ReactorGone)
        }
    }

    /// Sends a request and blocks for the answer, at most `timeout`.
    pub fn request_wait<A: Actor, T: Send + 'static>(
        &self,
        to: Addr<A>,
        make: impl FnOnce(Reply<T>) -> A::Msg + Send + 'static,
        timeout: Duration,
    ) -> Result<T, RequestError> {
        if on_reactor_thread() {
            return Err(RequestError::WouldBlockReactor);
        }
        self.request(to, make).wait_timeout(timeout)
    }

    /// Kills an actor.
    pub fn kill(&self, id: ActorId) -> bool {
        self.exit(id, ExitReason::Killed)
    }

    /// Terminates an actor with `reason`.
    pub fn exit(&self, id: ActorId, reason: ExitReason) -> bool {
        self.post(move |core| core.exit(id, reason))
    }

    /// True if the actor is alive (asks the reactor and waits).
    pub fn is_alive(&self, id: ActorId) -> bool {
        self.call(move |core| core.is_alive(id), Duration::from_secs(30))
            .unwrap_or(false)
    }

    /// The reactor's counters (asks the reactor and waits).
    pub fn stats(&self) -> Result<Stats, RequestError> {
        self.call(|core| core.stats(), Duration::from_secs(30))
    }

    /// A snapshot of the reactor's scheduler metrics (blocks until the
    /// reactor answers).
    pub fn metrics(&self) -> Result<crate::reactor::Metrics, RequestError> {
        self.call(|core| core.metrics(), Duration::from_secs(30))
    }

    /// Asks the reactor to stop: every live actor is terminated with
    /// [`ExitReason::Shutdown`] and `run` returns.
    pub fn shutdown(&self) -> bool {
        self.post(|core| core.request_shutdown())
    }
}

impl Clone for ReactorHandle {
    fn clone(&self) -> Self {
        ReactorHandle::new(self.remote.clone())
    }
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        if self.remote.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle is gone: let the reactor re-check whether
            // anything can still happen.
            let _ = self.remote.waker.wake();
        }
    }
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReactorHandle")
    }
}
