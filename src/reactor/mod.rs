//! The reactor: one thread, one `mio::Poll`, a slab of cells, a run queue,
//! a timer queue, and a `Waker` for other threads.
//!
//! The reactor is a scheduler of type-erased cells and knows nothing of
//! messages, requests or sockets: the layer above it (the actor layer, see
//! [`Layer`]) owns those, and the reactor calls it through plain function
//! tables. Files, in the order a turn uses them:
//!
//! - `mod.rs`: [`Reactor`], its [`Config`] and the turn loop;
//! - `core.rs`: [`Core`], the slab of slots, scheduling, timers, I/O
//!   registration, extensions, metrics and trace;
//! - `run_queue.rs`: FIFO with an optional receiver-next slot ([`Policy`]);
//! - `timer.rs`: the timer heap;
//! - `remote.rs`: [`ReactorHandle`] and the command queue other threads
//!   post to;
//! - `local.rs`: reactor-local extensions ([`Local`]);
//! - `metrics.rs`, `trace.rs`: instruments.
//!
//! One *turn* of [`Reactor::run`]:
//! 1. poll for readiness, blocking only if nothing is runnable (until the
//!    next timer deadline, or for ever);
//! 2. map each event's token to its cell (slab key plus generation), record
//!    the readiness bits and queue the cell; run commands from other
//!    threads if the waker fired;
//! 3. fire expired timers;
//! 4. run queued cells, each for at most `budget` messages before it goes
//!    to the back of the queue; stop after `turn_limit` runs so I/O is
//!    polled again even while actors stay busy;
//! 5. call the turn-end hooks asked for during the turn (socket actors
//!    flush their output there, once per turn).

mod core;
mod group;
mod id;
pub(crate) mod layer;
mod lint;
mod local;
mod metrics;
mod ready;
mod remote;
pub(crate) mod rng;
mod run_queue;
mod timer;
pub mod trace;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

pub use self::core::{Core, TimerFn};
pub use group::{parse_reactors, Reactors};
pub use id::{ActorId, MAX_REACTORS};
pub use layer::{Layer, VTable};
pub use lint::{LintSample, LiveLints, MAILBOX_MIN};
pub use local::Local;
pub use metrics::{Counters, Hist, Metrics, TypeMetrics};
pub use ready::Ready;
pub use remote::{on_reactor_thread, ReactorHandle};
pub use run_queue::RECEIVER_NEXT_MAX;
pub use timer::TimerId;

use group::Group;
use remote::{Command, ReactorThreadGuard, Remote};

pub(crate) const WAKER: Token = Token(usize::MAX);

/// Reactor settings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Most messages one actor handles per turn before it yields to the
    /// others. Bounds how long a flooded actor can hold the thread.
    pub budget: usize,
    /// Most actor runs per reactor turn before polling I/O again.
    pub turn_limit: usize,
    /// Longest stretch of actor runs per turn before polling I/O again
    /// (checked after each run, so a turn may exceed it by one run): an
    /// actor that computes for long cannot keep the reactor's connections
    /// waiting for more than this plus its own run.
    pub turn_time: Duration,
    /// Capacity of the poll's event buffer.
    pub events_capacity: usize,
    /// Runs longer than this count as slow in the metrics.
    pub slow_threshold: Duration,
    /// The run-queue policy.
    pub policy: Policy,
    /// Before blocking in `poll`, poll with a zero timeout for up to this
    /// long (zero: block at once).
    pub busy_poll: Duration,
    /// Actor slots reserved when the reactor starts. Reserving costs
    /// address space only (the pages are touched as slots are used); past
    /// it the table grows by copying, and the allocator may keep the old
    /// copy resident.
    pub slots_reserved: usize,
    /// In a group of reactors ([`Reactors`]): most messages (and other
    /// work) waiting in the lane from one reactor to another. Past it,
    /// what a reactor sends to that peer waits on the sending side, in
    /// order, until the peer drains, and `Ctx::try_send` refuses.
    pub peer_queue: usize,
    /// In a group of reactors: how long a reactor that exchanged work with
    /// a peer within the last millisecond spins (polling its I/O with a
    /// zero timeout and watching for peers' work) before it blocks in
    /// `poll`. A conversation between reactors then costs no wake-up per
    /// message; a reactor with no peer traffic never spins. Zero: never.
    pub peer_spin: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            budget: 64,
            turn_limit: 4096,
            turn_time: Duration::from_millis(5),
            events_capacity: 1024,
            slow_threshold: Duration::from_micros(50),
            policy: Policy::Fifo,
            busy_poll: Duration::ZERO,
            slots_reserved: 1 << 16,
            peer_queue: 4096,
            peer_spin: Duration::from_micros(50),
        }
    }
}

/// Which runnable actor runs next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// First in, first out, each run at most `budget` messages.
    #[default]
    Fifo,
    /// Like `Fifo`, but the last actor made runnable by a send from the
    /// running actor runs next (a LIFO slot, like tokio's), at most
    /// [`RECEIVER_NEXT_MAX`] times in a row before the queue's head gets
    /// its turn.
    ReceiverNext,
    /// A seeded random order: each actor made runnable goes to a place in
    /// the queue drawn from a generator seeded with this value, so the
    /// same seed makes the same choices for the same sequence of events.
    /// For exploring schedules, not for speed.
    Random(u64),
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "fifo" => Ok(Policy::Fifo),
            "receiver-next" => Ok(Policy::ReceiverNext),
            "random" => Ok(Policy::Random(1)),
            _ => match s.strip_prefix("random:").map(str::parse) {
                Some(Ok(seed)) => Ok(Policy::Random(seed)),
                _ => Err(format!(
                    "unknown policy {s:?} (expected fifo, receiver-next, or random:SEED)"
                )),
            },
        }
    }
}

/// Runtime counters. Plain integers, updated on the reactor thread only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reactor turns (one poll each).
    pub turns: u64,
    /// Readiness events received.
    pub events: u64,
    /// Actor runs (one actor taken off the run queue and run).
    pub actor_runs: u64,
    /// Envelopes handled (messages and notices).
    pub messages: u64,
    /// Runs that ended with the budget spent and mail still waiting.
    pub forced_yields: u64,
    /// Sends (and requests) to dead actors, dropped.
    pub dead_sends: u64,
    /// Actors spawned.
    pub spawned: u64,
    /// Actors terminated.
    pub exited: u64,
    /// Live actors now.
    pub live_actors: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Waker wake-ups from other threads.
    pub wakeups: u64,
    /// Messages (and other work) sent to other reactors of the group.
    pub peer_sends: u64,
    /// Messages (and other work) received from other reactors, run here.
    pub peer_received: u64,
    /// `try_send`s refused because the lane to the peer was full.
    pub peer_full: u64,
    /// Turns ended by `Config::turn_time` with actors still runnable.
    pub cut_turns: u64,
}

/// The single-threaded reactor. Build it, spawn the first cells, then
/// [`run`](Reactor::run) it.
pub struct Reactor<L: Layer> {
    poll: Poll,
    events: Events,
    core: Core<L>,
    commands: Vec<Command<L>>,
    /// When idle actors' memory is next trimmed.
    next_trim: Instant,
    /// `Stats::actor_runs` at the last trim.
    runs_at_trim: u64,
}

/// How often idle actors' mailboxes and the buffer pool are freed.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

impl<L: Layer> Reactor<L> {
    /// A reactor with the default [`Config`].
    pub fn new() -> io::Result<Reactor<L>> {
        Reactor::with_config(Config::default())
    }

    /// A reactor with the given settings.
    pub fn with_config(config: Config) -> io::Result<Reactor<L>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Reactor::build(poll, Arc::new(Remote::new(waker)), config, None)
    }

    /// A reactor over `poll`, whose waker `remote` holds; in a group, with
    /// its number there.
    pub(crate) fn build(
        poll: Poll,
        remote: Arc<Remote<L>>,
        config: Config,
        group: Option<(Arc<Group<L>>, usize)>,
    ) -> io::Result<Reactor<L>> {
        let registry = poll.registry().try_clone()?;
        let mut config = config;
        config.budget = config.budget.max(1);
        config.turn_limit = config.turn_limit.max(1);
        let mut core = Core::new(registry, remote, config);
        if let Some((group, index)) = group {
            core.join_group(group, index);
        }
        Ok(Reactor {
            events: Events::with_capacity(config.events_capacity.max(16)),
            poll,
            core,
            commands: Vec::new(),
            next_trim: Instant::now() + TRIM_INTERVAL,
            runs_at_trim: 0,
        })
    }

    /// Starts a reactor on a new thread. `setup` runs there first (spawn the
    /// first actors in it). Returns a handle and the thread's join handle.
    pub fn start<F>(
        config: Config,
        setup: F,
    ) -> io::Result<(ReactorHandle<L>, JoinHandle<io::Result<()>>)>
    where
        F: FnOnce(&mut Core<L>) + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name("reactor".into())
            .spawn(move || {
                let mut reactor = match Reactor::with_config(config) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                setup(&mut reactor.core);
                let _ = tx.send(Ok(reactor.handle()));
                reactor.run()
            })?;
        match rx.recv() {
            Ok(Ok(handle)) => Ok((handle, join)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("reactor thread died during setup")),
        }
    }

    /// The reactor's state, to spawn and send before running (a `Reactor`
    /// also derefs to it).
    pub fn core(&mut self) -> &mut Core<L> {
        &mut self.core
    }

    /// Runs until shutdown is requested, or until no cell is alive and no
    /// [`ReactorHandle`] exists (nothing could ever happen again). Cells
    /// still alive at shutdown are ended by the layer (actors with
    /// [`ExitReason::Shutdown`](crate::ExitReason::Shutdown)).
    pub fn run(&mut self) -> io::Result<()> {
        let _guard = ReactorThreadGuard::enter();
        let result = self.run_turns();
        self.core.remote.close();
        // In a group: refuse peers' work first (what waited is dropped
        // here, so its reply slots are this thread's to reject), end every
        // cell, then send peers the notices and rejections that made.
        self.core.close_lanes();
        self.core.stop_all();
        if self.core.in_group() {
            L::turn_done(&mut self.core);
            self.core.leave_group();
        }
        self.core.flush_trace();
        result
    }

    fn run_turns(&mut self) -> io::Result<()> {
        self.core.set_now(Instant::now());
        metric! {
            self.core.m.tick();
        }
        loop {
            if self.core.shutdown_requested() {
                return Ok(());
            }
            if self.core.live() == 0
                && !self.core.in_group()
                && !self.core.has_runnable()
                && self.core.remote.handles() == 0
                && self.core.remote.is_empty()
            {
                return Ok(());
            }
            // The turn's clock is good enough for trimming, which is due
            // only if some actor ran since the last one (a server with
            // nothing to do sleeps undisturbed), and is checked busy or
            // not (a reactor that always has work still trims).
            let turn_now = self.core.now();
            self.trim_if_due(turn_now);
            let timeout = if self.core.has_runnable() {
                Some(Duration::ZERO)
            } else {
                let trim_at =
                    (self.core.stats.actor_runs != self.runs_at_trim).then_some(self.next_trim);
                match (self.core.next_deadline(), trim_at) {
                    (None, None) => None,
                    // Timers want the time now, not the turn's.
                    (Some(d), t) => {
                        let deadline = t.map_or(d, |t| d.min(t));
                        Some(deadline.saturating_duration_since(Instant::now()))
                    }
                    (None, Some(t)) => Some(t.saturating_duration_since(turn_now)),
                }
            };
            self.turn(timeout)?;
        }
    }

    /// One turn: poll with `timeout`, dispatch events, fire timers, run the
    /// run queue, call turn-end hooks.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let group = self.core.in_group();
        if group && timeout != Some(Duration::ZERO) {
            self.core.mark_idle();
        }
        // Without metrics, the busy share needs the time the poll began.
        #[cfg(not(feature = "metrics"))]
        let poll_began = group.then(Instant::now);
        #[cfg(feature = "metrics")]
        let poll_began = None;
        self.poll_events(timeout)?;
        let core = &mut self.core;
        // The one clock reading of the turn (two in a group without
        // `metrics`).
        core.set_now(Instant::now());
        #[cfg(feature = "metrics")]
        let polled = {
            let before = core.m.clock;
            let after = core.m.tick();
            core.m.add_poll(before, after);
            after
        };
        if group {
            core.account_poll(poll_began, core.now());
        }
        #[cfg(feature = "metrics")]
        let events_before = core.stats.events;
        core.stats.turns += 1;
        let mut woken = false;
        for event in self.events.iter() {
            core.stats.events += 1;
            if event.token() == WAKER {
                woken = true;
                continue;
            }
            let id = ActorId::from_u64(event.token().0 as u64);
            core.set_ready(id, Ready::from_event(event).0);
        }
        metric! {
            core.m.events_per_poll.record(core.stats.events - events_before);
        }
        if woken {
            core.stats.wakeups += 1;
            Self::run_commands(core, &mut self.commands);
        }
        if core.in_group() {
            core.drain_peers();
        }
        core.fire_timers();
        core.run_queue();
        core.end_turn();
        L::turn_done(core);
        if core.in_group() {
            core.flush_peers();
        }
        metric! {
            let end = core.m.tick();
            core.m.add_busy(polled, end);
        }
        Ok(())
    }
}

#[cfg(feature = "sim")]
impl<L: Layer> Reactor<L> {
    /// One turn of a simulated reactor: the time is `now` (virtual) and
    /// the readiness events are `events`, in their order; then timers, the
    /// run queue and the turn-end hooks as in [`Reactor::turn`]. Commands
    /// posted through a [`ReactorHandle`] run first.
    pub(crate) fn sim_turn(&mut self, now: Instant, events: &[(Token, Ready)]) {
        let _guard = ReactorThreadGuard::enter();
        let core = &mut self.core;
        core.set_now(now);
        core.stats.turns += 1;
        for &(token, ready) in events {
            core.stats.events += 1;
            core.set_ready(ActorId::from_u64(token.0 as u64), ready.0);
        }
        if !core.remote.is_empty() {
            Self::run_commands(core, &mut self.commands);
        }
        core.fire_timers();
        core.run_queue();
        core.end_turn();
        L::turn_done(core);
        self.trim_if_due(now);
    }

    /// True if the simulated reactor has work now: an actor runnable or
    /// a command waiting.
    pub(crate) fn sim_busy(&self) -> bool {
        self.core.has_runnable() || !self.core.remote.is_empty()
    }

    /// The simulated reactor's next timer.
    pub(crate) fn sim_deadline(&mut self) -> Option<Instant> {
        self.core.next_deadline()
    }

    /// Ends the simulated run as [`Reactor::run`] ends a real one.
    pub(crate) fn sim_finish(&mut self) {
        let _guard = ReactorThreadGuard::enter();
        self.core.remote.close();
        self.core.stop_all();
        self.core.flush_trace();
    }

    /// Starts the trim clock at the virtual time `now`.
    pub(crate) fn sim_start(&mut self, now: Instant) {
        self.core.set_now(now);
        self.next_trim = now + TRIM_INTERVAL;
    }
}

impl<L: Layer> Reactor<L> {
    /// Runs the commands other threads queued, settling after each.
    fn run_commands(core: &mut Core<L>, commands: &mut Vec<Command<L>>) {
        core.remote.take(commands);
        for cmd in commands.drain(..) {
            cmd(core);
            L::settle(core);
        }
    }

    /// Frees what idle cells keep, once a `TRIM_INTERVAL` at most, and
    /// only if some actor ran since the last time.
    fn trim_if_due(&mut self, now: Instant) {
        let dirty = self.core.stats.actor_runs != self.runs_at_trim;
        if dirty && now >= self.next_trim {
            self.core.trim_idle();
            self.runs_at_trim = self.core.stats.actor_runs;
            self.next_trim = now + TRIM_INTERVAL;
        }
    }

    /// Polls for events. With `busy_poll` set and a timeout that is not
    /// zero, polls with a zero timeout until events arrive or the spin
    /// (bounded by `timeout`) is over, then blocks for what is left.
    fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut timeout = timeout;
        let group = self.core.in_group();
        let mut spin = self.core.config.busy_poll;
        if group {
            spin = spin.max(self.core.peer_spin());
        }
        if !spin.is_zero() && timeout != Some(Duration::ZERO) {
            let limit = timeout.map_or(spin, |t| t.min(spin));
            let start = Instant::now();
            loop {
                match self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                if !self.events.is_empty() || (group && self.core.peer_notified()) {
                    return Ok(());
                }
                let spent = start.elapsed();
                if spent >= limit {
                    timeout = timeout.map(|t| t.saturating_sub(spent));
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let sleeps = group && timeout != Some(Duration::ZERO);
        if sleeps {
            self.core.set_sleeping(true);
            if self.core.peer_notified() {
                timeout = Some(Duration::ZERO);
            }
        }
        let polled = self.poll.poll(&mut self.events, timeout);
        if sleeps {
            self.core.set_sleeping(false);
        }
        match polled {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl<L: Layer> std::ops::Deref for Reactor<L> {
    type Target = Core<L>;

    fn deref(&self) -> &Core<L> {
        &self.core
    }
}

impl<L: Layer> std::ops::DerefMut for Reactor<L> {
    fn deref_mut(&mut self) -> &mut Core<L> {
        &mut self.core
    }
}

impl<L: Layer> std::fmt::Debug for Reactor<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("live", &self.core.live())
            .finish()
    }
}
