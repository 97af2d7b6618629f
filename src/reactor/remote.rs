//! Reaching the reactor from other threads.
//!
//! Other threads never touch cells. They queue closures that the reactor
//! runs on its own thread, and wake it through a `mio::Waker`. This path
//! takes a mutex and a syscall, so it is for `main`, tests and tools, not
//! for traffic between actors, which never leaves the reactor thread.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::reactor::{Core, Layer};

/// A closure another thread queued for the reactor thread.
pub(crate) type Command<L> = Box<dyn FnOnce(&mut Core<L>) + Send>;

pub(crate) struct Remote<L: Layer> {
    queue: Mutex<Queue<L>>,
    waker: mio::Waker,
    /// Live `ReactorHandle`s. With none left and no cell alive, nothing can
    /// ever happen again, and `run` returns.
    handles: AtomicUsize,
}

struct Queue<L: Layer> {
    commands: Vec<Command<L>>,
    /// The reactor has stopped; new commands are refused.
    closed: bool,
}

impl<L: Layer> Remote<L> {
    pub(crate) fn new(waker: mio::Waker) -> Remote<L> {
        Remote {
            queue: Mutex::new(Queue {
                commands: Vec::new(),
                closed: false,
            }),
            waker,
            handles: AtomicUsize::new(0),
        }
    }

    pub(crate) fn post(&self, cmd: Command<L>) -> bool {
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
        // reports to a waiting thread.
        drop(cmd);
        false
    }

    /// Wakes the reactor's thread out of `poll`.
    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("waking the reactor failed: {e}");
        }
    }

    /// Takes the queued commands (into `into`, to reuse its allocation).
    pub(crate) fn take(&self, into: &mut Vec<Command<L>>) {
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

/// A handle to a reactor for other threads. Cheap to clone.
///
/// While any handle exists, `Reactor::run` keeps running even with no cell
/// alive, since the handle may bring more. The actor layer adds the
/// actor-level operations (spawn, send, request, kill, ...).
pub struct ReactorHandle<L: Layer> {
    remote: Arc<Remote<L>>,
}

impl<L: Layer> ReactorHandle<L> {
    pub(crate) fn new(remote: Arc<Remote<L>>) -> ReactorHandle<L> {
        remote.handles.fetch_add(1, Ordering::AcqRel);
        ReactorHandle { remote }
    }

    /// Runs `f` on the reactor thread, without waiting for it. False if the
    /// reactor has stopped (`f` is then dropped here).
    pub fn post(&self, f: impl FnOnce(&mut Core<L>) + Send + 'static) -> bool {
        self.remote.post(Box::new(f))
    }

    /// Asks the reactor to stop: every cell still alive is ended and `run`
    /// returns. False if it has stopped already.
    pub fn shutdown(&self) -> bool {
        self.post(|core| core.request_shutdown())
    }
}

impl<L: Layer> Clone for ReactorHandle<L> {
    fn clone(&self) -> Self {
        ReactorHandle::new(self.remote.clone())
    }
}

impl<L: Layer> Drop for ReactorHandle<L> {
    fn drop(&mut self) {
        if self.remote.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle is gone: let the reactor re-check whether
            // anything can still happen.
            let _ = self.remote.waker.wake();
        }
    }
}

impl<L: Layer> fmt::Debug for ReactorHandle<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReactorHandle")
    }
}
