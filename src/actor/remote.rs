//! The actor-level operations of a [`ReactorHandle`], for other threads:
//! spawn, send, request, kill, and blocking calls.
//!
//! Every blocking call refuses to run on a reactor thread
//! ([`RequestError::WouldBlockReactor`]): it would deadlock it.

use std::time::{Duration, Instant};

use crate::actor::system::System;
use crate::actor::{Actor, ActorId, Addr, Core, ExitReason, PendingReply, Reply, RequestError};
use crate::reactor::{on_reactor_thread, LiveLints, Metrics, ReactorHandle, Reactors, Stats};

/// How long the convenience calls below wait for the reactor.
const CALL_WAIT: Duration = Duration::from_secs(30);

impl ReactorHandle<System> {
    /// Runs `f` on the reactor thread and waits for its result, at most
    /// `timeout`.
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
            core.send(to, msg);
        })
    }

    /// Spawns the actor `make` builds on the reactor thread, and waits for
    /// its address. (Actors need not be `Send`; the closure must be.)
    pub fn spawn<A: Actor>(
        &self,
        make: impl FnOnce() -> A + Send + 'static,
    ) -> Result<Addr<A>, RequestError> {
        self.call(move |core| core.spawn(make()), CALL_WAIT)
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
            if to.id().reactor() != core.reactor_index() || core.is_alive(to.id()) {
                core.send(to, make(reply));
            } else {
                core.count_dead_send(to.id());
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

    /// Kills an actor. False if the reactor has stopped.
    pub fn kill(&self, id: ActorId) -> bool {
        self.terminate(id, ExitReason::Killed)
    }

    /// Ends an actor with `reason`. False if the reactor has stopped.
    pub fn terminate(&self, id: ActorId, reason: ExitReason) -> bool {
        self.post(move |core| core.terminate(id, reason))
    }

    /// True if the actor is alive (asks the reactor and waits).
    pub fn is_alive(&self, id: ActorId) -> bool {
        self.call(move |core| core.is_alive(id), CALL_WAIT)
            .unwrap_or(false)
    }

    /// The actor registered under `name`, if any and if it is an `A` (asks
    /// the reactor and waits).
    pub fn whereis<A: Actor>(&self, name: &str) -> Result<Option<Addr<A>>, RequestError> {
        let name = name.to_string();
        self.call(move |core| core.whereis::<A>(&name), CALL_WAIT)
    }

    /// The reactor's counters (asks the reactor and waits).
    pub fn stats(&self) -> Result<Stats, RequestError> {
        self.call(|core| core.stats(), CALL_WAIT)
    }

    /// A snapshot of the reactor's scheduler metrics (asks the reactor and
    /// waits).
    pub fn metrics(&self) -> Result<Metrics, RequestError> {
        self.call(|core| core.metrics(), CALL_WAIT)
    }

    /// Waits until no actor is alive or `grace` has passed, then shuts the
    /// reactor down: the end of a server's orderly stop, once it has told
    /// its actors to finish. Returns the actors still alive at the
    /// deadline (0 if all finished).
    pub fn shutdown_when_idle(&self, grace: Duration) -> u64 {
        shutdown_group_when_idle(std::slice::from_ref(self), grace)
    }

    /// Starts a thread that writes to stderr, every `every`, one line of
    /// the changes of the reactor's metrics since the last line
    /// (`stats <Metrics::interval_line>`), and the live lints the first
    /// time each shows (`lint <kind> ...`, see [`LiveLints`]), until the
    /// reactor stops.
    pub fn print_stats_every(&self, every: Duration) -> std::io::Result<()> {
        print_stats_every(vec![self.clone()], every, false)
    }
}

impl Reactors<System> {
    /// Waits until no actor is alive on any reactor of the group, or
    /// `grace` has passed, then shuts every reactor down. Returns the
    /// actors still alive at the deadline (0 if all finished).
    pub fn shutdown_when_idle(&self, grace: Duration) -> u64 {
        shutdown_group_when_idle(self.handles(), grace)
    }

    /// Starts a thread that writes to stderr, every `every`, one line per
    /// reactor of the changes of its metrics since its last line (`stats
    /// r<i> <Metrics::interval_line>`), until the reactors stop.
    pub fn print_stats_every(&self, every: Duration) -> std::io::Result<()> {
        print_stats_every(self.handles().to_vec(), every, true)
    }

    /// Each reactor's metrics (asks each one and waits), in group order.
    pub fn metrics(&self) -> Result<Vec<Metrics>, RequestError> {
        self.handles()
            .iter()
            .map(ReactorHandle::<System>::metrics)
            .collect()
    }
}

/// [`Reactors::shutdown_when_idle`] for a set of handles (one reactor's
/// alone, or a group's).
pub fn shutdown_group_when_idle(handles: &[ReactorHandle<System>], grace: Duration) -> u64 {
    let deadline = Instant::now() + grace;
    let left = loop {
        let live: Option<u64> = handles
            .iter()
            .map(|h| h.stats().ok().map(|s| s.live_actors))
            .sum();
        match live {
            Some(0) => break 0,
            Some(n) if Instant::now() >= deadline => break n,
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
            None => break 0,
        }
    };
    for h in handles {
        h.shutdown();
    }
    left
}

/// Waiting messages from which an actor's mailbox is sampled for the live
/// lints (the `mailbox` lint needs three rises, to at least
/// [`MAILBOX_MIN`](crate::reactor::MAILBOX_MIN)).
const LINT_SAMPLE_MIN: usize = 16;

fn print_stats_every(
    handles: Vec<ReactorHandle<System>>,
    every: Duration,
    labelled: bool,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let Ok(mut last) = handles
                .iter()
                .map(ReactorHandle::<System>::metrics)
                .collect::<Result<Vec<_>, _>>()
            else {
                return;
            };
            let mut at = Instant::now();
            let mut lints: Vec<LiveLints> = handles.iter().map(|_| LiveLints::default()).collect();
            loop {
                std::thread::sleep(every);
                let Ok(now_m) = handles
                    .iter()
                    .map(ReactorHandle::<System>::metrics)
                    .collect::<Result<Vec<_>, _>>()
                else {
                    return;
                };
                let now = Instant::now();
                let secs = now.duration_since(at).as_secs_f64();
                for (i, (m, l)) in now_m.iter().zip(&last).enumerate() {
                    let line = m.interval_line(l, secs);
                    let sample = handles[i]
                        .call(|core| core.lint_sample(LINT_SAMPLE_MIN), CALL_WAIT)
                        .unwrap_or_default();
                    let found = lints[i].observe(l, m, &sample, secs);
                    if labelled {
                        eprintln!("stats r{i} {line}");
                        found.iter().for_each(|f| eprintln!("{f} (reactor {i})"));
                    } else {
                        eprintln!("stats {line}");
                        found.iter().for_each(|f| eprintln!("{f}"));
                    }
                }
                last = now_m;
                at = now;
            }
        })
        .map(drop)
}
