//! Groups of reactors: one reactor per thread, and the bounded lanes that
//! carry work from one to another.
//!
//! Each reactor of a group stays exactly the single-threaded reactor of the
//! design; nothing is stolen and no cell ever moves. What the group adds:
//!
//! - a *lane* for each ordered pair of reactors: a FIFO of closures, bounded
//!   by `Config::peer_queue`, filled by the sending reactor and emptied by
//!   the receiving one. Everything reactor `i` sends to reactor `j` goes
//!   through lane `(i, j)`, so sends between two actors arrive in send
//!   order, as on one reactor;
//! - a per-reactor `notified` flag: a sender that queues on a lane sets it,
//!   and wakes the receiver through its `mio::Waker` only if it was clear
//!   and the receiver sleeps in `poll`, so a busy receiver costs its
//!   senders no syscall. The receiver clears it and then drains every lane
//!   towards it, in one batch per turn. A reactor that exchanged work with
//!   a peer lately spins for up to `Config::peer_spin` (polling its I/O
//!   with a zero timeout and watching the flag) before it sleeps, so a
//!   conversation between reactors does not pay a wake-up per message;
//! - back-pressure: a sender's reactor first collects what its actors send
//!   during a turn in an *outbox* per receiver, and moves it to the lane at
//!   the end of the turn, as far as the lane has room. What does not fit
//!   stays in the outbox, in order, and the lane's `sender_waits` flag asks
//!   the receiver to wake the sender once it has drained. Actors that must
//!   not add to a full lane ask first (`room_to`, `Ctx::try_send`) and can
//!   be told when there is room again (`when_room`);
//! - per-reactor gauges peers read without locks: live connections (the
//!   socket layer keeps it; a listener handing connections off picks the
//!   lowest), a heartbeat (the turn number, and whether the turn runs: a
//!   peer that sees one turn run for long sees a reactor stalled in a long
//!   run), and the share of the last ~50 ms spent
//!   outside `poll` (a reactor kept busy by a computation is seen as
//!   busy, though each of its turns is short).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::reactor::id::MAX_REACTORS;
use crate::reactor::remote::{Command, Remote};
use crate::reactor::{Config, Core, Layer, Metrics, Reactor, ReactorHandle, WAKER};

/// The state a group's reactors share.
pub(crate) struct Group<L: Layer> {
    members: Vec<Member<L>>,
    /// `lanes[from * n + to]`.
    lanes: Vec<Lane<L>>,
    /// Most closures one lane holds.
    pub(crate) capacity: usize,
}

struct Member<L: Layer> {
    remote: Arc<Remote<L>>,
    /// A peer queued on a lane towards this reactor, or drained one from
    /// it that was full, since this reactor last looked.
    notified: AtomicBool,
    /// Live connections (kept by the socket layer).
    load: AtomicUsize,
    /// The reactor's turn number, shifted left, with the low bit set while
    /// the turn runs: a peer that sees the same odd value for long sees a
    /// reactor stuck in a long run. One plain store per turn.
    heartbeat: AtomicU64,
    /// The reactor's process-unique number, once built.
    unique: AtomicU32,
    /// The reactor has stopped; lanes towards it refuse work.
    stopped: AtomicBool,
    /// Thousandths of the last window (about 50 ms) the reactor spent
    /// outside `poll`: 1000 for one kept busy by a long computation.
    busy: AtomicU32,
    /// The reactor is (about to be) blocked in `poll`: a peer that queues
    /// work for it must wake it. Otherwise it will see `notified` itself.
    sleeping: AtomicBool,
}

struct Lane<L: Layer> {
    queue: Mutex<LaneQueue<L>>,
    /// `queue.len()`, readable without the lock.
    len: AtomicUsize,
    /// The sender has work waiting for room (or actors waiting to be told
    /// of room): the receiver wakes it once it has drained.
    sender_waits: AtomicBool,
}

struct LaneQueue<L: Layer> {
    q: VecDeque<Command<L>>,
    /// The receiver has stopped: nothing more goes in. Set under the
    /// lock, so a push cannot slip in after the receiver emptied the lane.
    closed: bool,
}

impl<L: Layer> Group<L> {
    fn new(remotes: Vec<Arc<Remote<L>>>, capacity: usize) -> Group<L> {
        let n = remotes.len();
        Group {
            members: remotes
                .into_iter()
                .map(|remote| Member {
                    remote,
                    notified: AtomicBool::new(false),
                    load: AtomicUsize::new(0),
                    heartbeat: AtomicU64::new(0),
                    unique: AtomicU32::new(0),
                    stopped: AtomicBool::new(false),
                    sleeping: AtomicBool::new(false),
                    busy: AtomicU32::new(0),
                })
                .collect(),
            lanes: (0..n * n)
                .map(|_| Lane {
                    queue: Mutex::new(LaneQueue {
                        q: VecDeque::new(),
                        closed: false,
                    }),
                    len: AtomicUsize::new(0),
                    sender_waits: AtomicBool::new(false),
                })
                .collect(),
            capacity: capacity.max(1),
        }
    }

    /// Reactors in the group.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    fn lane(&self, from: usize, to: usize) -> &Lane<L> {
        &self.lanes[from * self.members.len() + to]
    }

    /// Closures waiting in lane `(from, to)`.
    pub(crate) fn queued(&self, from: usize, to: usize) -> usize {
        self.lane(from, to).len.load(Ordering::Acquire)
    }

    /// True if reactor `to` exists and has not stopped.
    pub(crate) fn accepts(&self, to: usize) -> bool {
        self.members
            .get(to)
            .is_some_and(|m| !m.stopped.load(Ordering::Acquire))
    }

    /// Moves as much of `out` as lane `(from, to)` has room for, in order,
    /// and wakes the receiver if it was not told already. What stays in
    /// `out` waits for the receiver to make room (it wakes the sender).
    /// A stopped receiver takes nothing: `out` is dropped.
    pub(crate) fn push(&self, from: usize, to: usize, out: &mut VecDeque<Command<L>>) {
        let lane = self.lane(from, to);
        let moved = {
            let mut lq = lane.queue.lock().unwrap_or_else(|p| p.into_inner());
            if lq.closed {
                drop(lq);
                // Dropped outside the lock: closures may hold reply slots.
                out.clear();
                return;
            }
            let room = self.capacity.saturating_sub(lq.q.len());
            let k = room.min(out.len());
            lq.q.extend(out.drain(..k));
            lane.len.store(lq.q.len(), Ordering::SeqCst);
            if !out.is_empty() {
                lane.sender_waits.store(true, Ordering::SeqCst);
            }
            k
        };
        if moved > 0 {
            self.notify(to);
        }
    }

    /// Asks reactor `to`'s lane from `from` to wake `from` once drained.
    pub(crate) fn wait_for_room(&self, from: usize, to: usize) {
        let lane = self.lane(from, to);
        // Flag, then look (and the drainer empties, then looks at the
        // flag), both sequentially consistent: one of the two sees the
        // other, so the wake-up is not missed.
        lane.sender_waits.store(true, Ordering::SeqCst);
        if lane.len.load(Ordering::SeqCst) == 0 {
            self.notify(from);
        }
    }

    /// Tells reactor `to` it has work, waking it only if it sleeps (or is
    /// about to): with `sleeping` set before `notified` is read on its
    /// side, and `notified` set before `sleeping` is read here (both
    /// sequentially consistent), one of the two sides always sees the
    /// other's write.
    fn notify(&self, to: usize) {
        let m = &self.members[to];
        if !m.notified.swap(true, Ordering::SeqCst) && m.sleeping.load(Ordering::SeqCst) {
            m.remote.wake();
        }
    }

    /// True if a peer told reactor `me` it has work (without clearing it).
    pub(crate) fn notified(&self, me: usize) -> bool {
        self.members[me].notified.load(Ordering::SeqCst)
    }

    /// Reactor `me` is about to block in `poll` (`true`), or is back.
    pub(crate) fn set_sleeping(&self, me: usize, on: bool) {
        self.members[me].sleeping.store(on, Ordering::SeqCst);
    }

    /// True (once) if a peer queued work for `me` or made room for it since
    /// the last call.
    pub(crate) fn take_notified(&self, me: usize) -> bool {
        let flag = &self.members[me].notified;
        flag.load(Ordering::Acquire) && flag.swap(false, Ordering::AcqRel)
    }

    /// Appends everything queued towards `me` to `into`, lane by lane, and
    /// wakes the senders that wait for room.
    pub(crate) fn drain(&self, me: usize, into: &mut VecDeque<Command<L>>) {
        for from in 0..self.members.len() {
            let lane = self.lane(from, me);
            if lane.len.load(Ordering::Acquire) == 0 {
                continue;
            }
            {
                let mut lq = lane.queue.lock().unwrap_or_else(|p| p.into_inner());
                into.append(&mut lq.q);
                lane.len.store(0, Ordering::SeqCst);
            }
            if lane.sender_waits.swap(false, Ordering::SeqCst) {
                self.notify(from);
            }
        }
    }

    /// Reactor `i`'s live connections.
    pub(crate) fn load(&self, i: usize) -> usize {
        self.members[i].load.load(Ordering::Relaxed)
    }

    pub(crate) fn add_load(&self, i: usize, delta: isize) {
        let load = &self.members[i].load;
        if delta >= 0 {
            load.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            let d = delta.unsigned_abs();
            let _ = load.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(d))
            });
        }
    }

    /// Reactor `i`'s busy share of its last window, in thousandths.
    pub(crate) fn busy(&self, i: usize) -> u32 {
        self.members[i].busy.load(Ordering::Relaxed)
    }

    pub(crate) fn set_busy(&self, i: usize, permille: u32) {
        self.members[i].busy.store(permille, Ordering::Relaxed);
    }

    /// Reactor `i` begins its turn number `turn`.
    pub(crate) fn beat(&self, i: usize, turn: u64) {
        self.members[i]
            .heartbeat
            .store((turn << 1) | 1, Ordering::Relaxed);
    }

    /// Reactor `i`, at turn number `turn`, is about to wait in `poll`.
    pub(crate) fn idle(&self, i: usize, turn: u64) {
        self.members[i]
            .heartbeat
            .store(turn << 1, Ordering::Relaxed);
    }

    /// Reactor `i`'s heartbeat: its turn number, shifted left, with the low
    /// bit set while the turn runs (clear while it waits in `poll`).
    pub(crate) fn heartbeat(&self, i: usize) -> u64 {
        self.members[i].heartbeat.load(Ordering::Relaxed)
    }

    /// The group number of the reactor whose process-unique number is
    /// `unique`.
    pub(crate) fn index_of(&self, unique: u32) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.unique.load(Ordering::Relaxed) == unique)
    }

    pub(crate) fn set_unique(&self, i: usize, unique: u32) {
        self.members[i].unique.store(unique, Ordering::Relaxed);
    }

    /// Reactor `i` has stopped: the lanes towards it refuse work and drop
    /// what waits. Reply slots in what is dropped here are rejected as
    /// `Dropped` by the stopping reactor on its way out (see
    /// `Reactor::run`); those dropped by a sender later, by that sender.
    pub(crate) fn stopped(&self, i: usize) {
        self.members[i].stopped.store(true, Ordering::Release);
        for from in 0..self.members.len() {
            let lane = self.lane(from, i);
            let pending = {
                let mut lq = lane.queue.lock().unwrap_or_else(|p| p.into_inner());
                lq.closed = true;
                lane.len.store(0, Ordering::SeqCst);
                std::mem::take(&mut lq.q)
            };
            drop(pending);
            if lane.sender_waits.swap(false, Ordering::SeqCst) {
                self.notify(from);
            }
        }
    }
}

impl<L: Layer> fmt::Debug for Group<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Group({} reactors)", self.members.len())
    }
}

/// A group's reactors, each running on a thread of its own (see the
/// module's notes). Built by [`Reactors::start`].
///
/// The reactors run until they are shut down ([`Reactors::shutdown`], or
/// each handle's `shutdown`), even with no cell alive: a peer may spawn
/// on them at any time.
pub struct Reactors<L: Layer> {
    handles: Vec<ReactorHandle<L>>,
    joins: Vec<JoinHandle<io::Result<Metrics>>>,
}

impl<L: Layer> Reactors<L> {
    /// Starts `n` reactors (1 to 256) with `config`, each on its own thread
    /// named `reactor-<i>`. `setup` runs first on each, with its core
    /// (`Core::reactor_index` says which one it is); the call returns once
    /// every setup has run.
    pub fn start<F>(n: usize, config: Config, setup: F) -> io::Result<Reactors<L>>
    where
        F: Fn(&mut Core<L>) + Send + Sync + 'static,
    {
        if n == 0 || n > MAX_REACTORS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a group has 1 to {MAX_REACTORS} reactors, not {n}"),
            ));
        }
        let mut polls = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            remotes.push(Arc::new(Remote::new(waker)));
            polls.push(poll);
        }
        let group = Arc::new(Group::new(remotes.clone(), config.peer_queue));
        let setup = Arc::new(setup);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut joins = Vec::with_capacity(n);
        for (i, poll) in polls.into_iter().enumerate() {
            let (remote, group, setup, tx) =
                (remotes[i].clone(), group.clone(), setup.clone(), tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || {
                    let mut reactor = match Reactor::build(poll, remote, config, Some((group, i))) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send((i, Err(io::Error::new(e.kind(), e.to_string()))));
                            return Err(e);
                        }
                    };
                    setup(&mut reactor.core);
                    let _ = tx.send((i, Ok(reactor.handle())));
                    drop(tx);
                    reactor.run()?;
                    Ok(reactor.metrics())
                });
            match spawned {
                Ok(j) => joins.push(j),
                Err(e) => {
                    for r in &remotes[..i] {
                        r.post(Box::new(|core: &mut Core<L>| core.request_shutdown()));
                    }
                    return Err(e);
                }
            }
        }
        drop(tx);
        let mut handles: Vec<Option<ReactorHandle<L>>> = (0..n).map(|_| None).collect();
        let mut failed = None;
        for _ in 0..n {
            match rx.recv() {
                Ok((i, Ok(h))) => handles[i] = Some(h),
                Ok((_, Err(e))) => failed = Some(e),
                Err(_) => {
                    failed.get_or_insert(io::Error::other("a reactor thread died during setup"));
                    break;
                }
            }
        }
        let handles: Vec<ReactorHandle<L>> = handles.into_iter().flatten().collect();
        if let Some(e) = failed {
            for h in &handles {
                h.shutdown();
            }
            drop(handles);
            for j in joins {
                let _ = j.join();
            }
            return Err(e);
        }
        Ok(Reactors { handles, joins })
    }

    /// Reactors in the group.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// False: a group has at least one reactor.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The handle of reactor `i`.
    pub fn handle(&self, i: usize) -> &ReactorHandle<L> {
        &self.handles[i]
    }

    /// Every reactor's handle, in order.
    pub fn handles(&self) -> &[ReactorHandle<L>] {
        &self.handles
    }

    /// Asks every reactor to stop.
    pub fn shutdown(&self) {
        for h in &self.handles {
            h.shutdown();
        }
    }

    /// Waits for every reactor to stop (after [`Reactors::shutdown`], or a
    /// shutdown from a handle). Returns each reactor's final metrics, in
    /// order, or the first error one of them stopped with.
    pub fn join(self) -> io::Result<Vec<Metrics>> {
        let Reactors { handles, joins } = self;
        drop(handles);
        let mut out = Vec::with_capacity(joins.len());
        let mut first_err = None;
        for j in joins {
            match j.join() {
                Ok(Ok(m)) => out.push(m),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(io::Error::other("a reactor thread panicked"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl<L: Layer> fmt::Debug for Reactors<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reactors({})", self.handles.len())
    }
}

/// Parses a number of reactors: `auto` (one per core this process may run
/// on: the CPU affinity mask and the cgroup's quota count) or 1 to 256.
pub fn parse_reactors(s: &str) -> Result<usize, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_REACTORS));
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_REACTORS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number of reactors (1 to {MAX_REACTORS}, or auto)"
        )),
    }
}
