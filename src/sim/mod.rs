//! Deterministic simulation (the `sim` feature): the runtime's actors,
//! socket actors and services, unchanged, on a reactor whose clock is
//! virtual and whose network is in memory, with every choice drawn from
//! one seed.
//!
//! A [`Sim`] is a [`Reactor`] driven turn by turn: at each
//! [`step`](Sim::step) the virtual clock moves (by a drawn sliver while
//! actors are runnable; to the next arrival, timer or client wake-up,
//! plus a drawn slack, when they are not), the simulated network reports
//! the readiness due then in a drawn order, and the reactor runs its turn
//! as a real one would. The seed also draws the run-queue policy (FIFO,
//! receiver-next or the seeded random order), the budget and the turn
//! limit, each connection's latency and pipe sizes, how writes are cut,
//! and the faults (see [`NetConfig`]). Clients are the harness's: it
//! connects, writes, reads, half-closes and resets through the `Sim`.
//!
//! The same seed gives the same run: nothing the runtime does on a
//! simulated reactor reads the machine's clock or depends on a hash
//! order, so the event trace of two runs of one seed is the same, byte
//! for byte ([`Sim::finish`] returns it).
//!
//! [`plant`] switches on a known bug (see [`Bug`]) on this thread, to show
//! that an explorer finds it.

pub(crate) mod net;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::Token;

pub use crate::hooks::Bug;
pub use crate::reactor::rng::Rng;
pub use net::{NetConfig, NetStats, SERVER_IP};

use crate::reactor::{Config, Policy, Ready};
use crate::{Core, Reactor};

/// Plants `bug` on this thread (until [`unplant`]).
pub fn plant(bug: Bug) {
    crate::hooks::set_planted(bug, true)
}

/// Removes `bug` from this thread.
pub fn unplant(bug: Bug) {
    crate::hooks::set_planted(bug, false)
}

/// A simulation's settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed every choice is drawn from.
    pub seed: u64,
    /// The network's ranges and faults.
    pub net: NetConfig,
    /// The reactor's settings. With `draw_schedule`, the policy, budget
    /// and turn limit are drawn from the seed instead. The turn's time
    /// limit is always off: it would read the machine's clock.
    pub reactor: Config,
    /// Draw the run-queue policy, the budget and the turn limit.
    pub draw_schedule: bool,
    /// Virtual time a turn with runnable actors takes: drawn from zero to
    /// this.
    pub busy_step_max: Duration,
    /// When the clock jumps to the next arrival or timer, it may go
    /// further by up to this (a quarter of the jumps), so that timers and
    /// arrivals land in one turn in either order.
    pub slack_max: Duration,
    /// Keep the event trace (in memory; [`Sim::finish`] returns it).
    pub trace: bool,
}

impl SimConfig {
    /// The defaults, for `seed`.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            net: NetConfig::default(),
            reactor: Config {
                slots_reserved: 1024,
                ..Config::default()
            },
            draw_schedule: true,
            busy_step_max: Duration::from_micros(20),
            slack_max: Duration::from_millis(2),
            trace: true,
        }
    }
}

/// A client's end of a simulated connection, made with [`Sim::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientConn(usize);

/// The trace, shared between the reactor's writer and the simulation.
#[derive(Clone, Debug, Default)]
struct TraceBuf(Rc<RefCell<Vec<u8>>>);

impl io::Write for TraceBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A simulated reactor and its network. One per thread at a time.
pub struct Sim {
    reactor: Reactor,
    trace: Option<TraceBuf>,
    epoch: Instant,
    busy_step_max: Duration,
    slack_max: Duration,
    events: Vec<(Token, Ready)>,
    /// The reactor settings drawn for this run.
    drawn: Config,
    finished: bool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("elapsed", &self.elapsed())
            .field("config", &self.drawn)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A simulation of `config`. Panics if one already runs on this
    /// thread.
    pub fn new(config: SimConfig) -> Sim {
        let mut rng = Rng::new(config.seed);
        let mut reactor_config = config.reactor;
        if config.draw_schedule {
            reactor_config.policy = match rng.below(3) {
                0 => Policy::Fifo,
                1 => Policy::ReceiverNext,
                _ => Policy::Random(rng.next_u64()),
            };
            reactor_config.budget = rng.pick(&[1, 2, 3, 8, 64]);
            reactor_config.turn_limit = rng.pick(&[1, 2, 5, 4096]);
        }
        reactor_config.turn_time = Duration::from_secs(3600);
        reactor_config.busy_poll = Duration::ZERO;
        let epoch = Instant::now();
        let net = net::Net::new(epoch, rng, config.net);
        assert!(
            net::install(net),
            "a simulation already runs on this thread"
        );
        let mut reactor = Reactor::with_config(reactor_config).expect("a reactor");
        reactor.sim_start(epoch);
        let trace = config.trace.then(TraceBuf::default);
        if let Some(t) = &trace {
            reactor.core().set_trace(Box::new(t.clone()));
        }
        Sim {
            reactor,
            trace,
            epoch,
            busy_step_max: config.busy_step_max,
            slack_max: config.slack_max,
            events: Vec::new(),
            drawn: reactor_config,
            finished: false,
        }
    }

    /// The reactor settings this run drew.
    pub fn config(&self) -> &Config {
        &self.drawn
    }

    /// The reactor's state, to spawn the first actors and inspect.
    pub fn core(&mut self) -> &mut Core {
        self.reactor.core()
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        net::virtual_now().unwrap_or(self.epoch)
    }

    /// Virtual time since the simulation began.
    pub fn elapsed(&self) -> Duration {
        self.now() - self.epoch
    }

    fn net<R>(&mut self, f: impl FnOnce(&mut net::Net) -> R) -> R {
        net::with(f).expect("the simulation's network")
    }

    /// A number below `n`, from the simulation's one generator: for the
    /// harness's own choices, so that the seed decides them too.
    pub fn below(&mut self, n: u64) -> u64 {
        self.net(|n_| n_.rng.below(n))
    }

    /// True `permille` times in a thousand (the one generator).
    pub fn chance(&mut self, permille: u32) -> bool {
        self.net(|n| n.rng.chance(permille))
    }

    /// One turn. The clock moves first: by a drawn sliver if the reactor
    /// has work, else to the earliest of the next arrival, the reactor's
    /// next timer and `wake` (the harness's own next action), plus a
    /// drawn slack a quarter of the time. False, with nothing done, if
    /// nothing at all is due: the simulation is quiescent.
    pub fn step(&mut self, wake: Option<Instant>) -> bool {
        let now = self.now();
        let pending = self.net(|n| n.has_pending());
        let next = if self.reactor.sim_busy() || pending {
            let step = self.draw(self.busy_step_max);
            now + step
        } else {
            let deadline = self.reactor.sim_deadline();
            let arrival = self.net(|n| n.next_arrival());
            match [deadline, arrival, wake].into_iter().flatten().min() {
                None => return false,
                Some(t) => {
                    let t = t.max(now);
                    if self.chance(250) {
                        t + self.draw(self.slack_max)
                    } else {
                        t
                    }
                }
            }
        };
        let mut events = std::mem::take(&mut self.events);
        self.net(|n| {
            n.now = next;
            n.poll(&mut events);
        });
        self.reactor.sim_turn(next, &events);
        self.events = events;
        true
    }

    fn draw(&mut self, max: Duration) -> Duration {
        self.net(|n| n.draw_duration(max))
    }

    /// What the network did so far.
    pub fn net_stats(&mut self) -> NetStats {
        self.net(|n| n.stats)
    }

    // ----- clients ---------------------------------------------------------

    /// Connects a client to `addr` (a listener of this simulation).
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<ClientConn> {
        self.net(|n| n.connect(addr)).map(ClientConn)
    }

    /// Writes what the client's pipe has room for.
    pub fn write(&mut self, c: ClientConn, data: &[u8]) -> io::Result<usize> {
        self.net(|n| n.client_write(c.0, data))
    }

    /// Reads what has arrived for the client, up to `max` bytes: empty at
    /// the server's FIN, `WouldBlock` if nothing has arrived, an error
    /// once the server's reset arrived.
    pub fn read(&mut self, c: ClientConn, max: usize) -> io::Result<Vec<u8>> {
        self.net(|n| n.client_read(c.0, max))
    }

    /// Half-closes the client's side: its FIN follows what it wrote.
    pub fn shutdown_write(&mut self, c: ClientConn) {
        self.net(|n| n.client_shutdown(c.0))
    }

    /// Resets the connection from the client's side.
    pub fn reset(&mut self, c: ClientConn) {
        self.net(|n| n.client_reset(c.0))
    }

    /// Closes the client's side (a reset if it left input unread).
    pub fn close(&mut self, c: ClientConn) {
        self.net(|n| n.client_close(c.0))
    }

    /// The actor that owns the server's end of the client's connection
    /// (a socket actor), once one registered it.
    pub fn server_actor(&mut self, c: ClientConn) -> Option<crate::ActorId> {
        self.net(|n| n.server_token(c.0))
            .map(|t| crate::ActorId::from_u64(t.0 as u64))
    }

    /// Ends the run as a real reactor's ends (every actor stopped, with
    /// [`ExitReason::Shutdown`](crate::ExitReason::Shutdown)), and returns
    /// the trace (empty if it was off).
    pub fn finish(mut self) -> Vec<u8> {
        self.end();
        self.trace
            .as_ref()
            .map(|t| std::mem::take(&mut *t.0.borrow_mut()))
            .unwrap_or_default()
    }

    /// The trace written so far (flushed first).
    pub fn trace_so_far(&mut self) -> Vec<u8> {
        self.reactor.core().flush_trace();
        self.trace
            .as_ref()
            .map(|t| t.0.borrow().clone())
            .unwrap_or_default()
    }

    fn end(&mut self) {
        if !self.finished {
            self.finished = true;
            self.reactor.sim_finish();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.end();
        net::remove();
    }
}
