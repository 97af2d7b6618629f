//! The deterministic simulator: the echo and chat services, unchanged, on
//! the runtime's simulated reactor and network ([`credit_actors::sim`]),
//! one seed per run.
//!
//! A seed draws everything: the reactor's run-queue policy, budget and
//! turn limit; the service's settings; the clients (how many, when they
//! connect, what they send, in what pieces, how they end: half-close,
//! close, a reset mid-line, or never reading); each connection's latency
//! and pipe sizes; the order of readiness events; the virtual time each
//! turn takes; and the faults (connects refused, accepts out of
//! descriptors, spurious events). [`run`] plays one seed and checks
//! the invariants:
//!
//! - from the clients' side, each workload's (every line answered exactly
//!   once and in order, the chat room's per-user order and one order);
//! - from the event trace ([`check`]): no unit without credit, `Closed`
//!   after the last unit, ids never reused, notices at most once;
//! - on every turn, the buffer memory within its bound (see
//!   [`memory_bound`]);
//! - the run ends: no client stuck once nothing more can happen.
//!
//! The same seed gives the same run and the same trace, byte for byte; a
//! failing seed's report ends with the command that replays it with the
//! trace kept.

pub mod chat;
pub mod check;
pub mod client;
pub mod echo;

use std::net::SocketAddr;
use std::time::Duration;

use credit_actors::net::{buffer_memory, open_sockets};
use credit_actors::sim::{plant, unplant, Bug, Sim, SimConfig};

use crate::check::{check_trace, TraceFacts};
use crate::client::Client;

/// Which service a run simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// The echo server.
    Echo,
    /// The chat room.
    Chat,
}

impl Service {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::Chat => "chat",
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Service, String> {
        match s {
            "echo" => Ok(Service::Echo),
            "chat" => Ok(Service::Chat),
            _ => Err(format!("unknown service {s:?} (expected echo or chat)")),
        }
    }
}

/// What a run needs besides its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The service.
    pub service: Service,
    /// Known bugs to plant.
    pub bugs: Vec<Bug>,
}

/// What one seed's run gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The invariants it broke (empty: it passed).
    pub violations: Vec<String>,
    /// The drawn settings, in a line.
    pub setting: String,
    /// The run-queue policy the seed drew (`None` if the run panicked
    /// before the end).
    pub policy: Option<credit_actors::Policy>,
    /// The event trace.
    pub trace: Vec<u8>,
    /// Reactor turns.
    pub turns: u64,
    /// Virtual time the run took.
    pub virtual_time: Duration,
    /// Lines the clients received.
    pub lines: u64,
    /// Each client's script and how it ended, a line each.
    pub clients: Vec<String>,
    /// The most the sockets' buffer memory came to, as a share of its
    /// bound ([`memory_bound`]), over the run's turns.
    pub memory_peak: f64,
}

impl Outcome {
    /// True if every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What a workload's final check reads.
#[derive(Debug)]
pub struct Run<'a> {
    /// The clients, as they ended.
    pub clients: &'a [Client],
    /// What the trace showed.
    pub facts: &'a TraceFacts,
    /// Every client ended and the reactor then went quiet (or ran its
    /// settling time): what they left behind should be gone.
    pub settled: bool,
    /// The socket actor that served each client (by client index), as
    /// printed in the trace.
    pub servers: &'a [Option<String>],
}

/// A service under simulation: its drawn settings and clients, how it
/// starts, and what it checks.
pub trait Workload: Sized {
    /// Draws the settings and the clients.
    fn draw(sim: &mut Sim) -> (Self, Vec<Client>);
    /// Spawns the service; returns the address clients connect to.
    fn start(&self, sim: &mut Sim) -> SocketAddr;
    /// Client `c` has every answer it waits for (it may close).
    fn satisfied(&self, c: &Client) -> bool;
    /// The settings, in a line.
    fn describe(&self) -> String;
    /// The output high-water mark and the longest unit, for the memory
    /// bound.
    fn memory_settings(&self) -> (usize, usize);
    /// The workload's own invariants, at the end.
    fn check(&self, run: &Run<'_>, v: &mut Vec<String>);
}

/// Virtual time after which clients not yet done are stuck.
const DEADLINE: Duration = Duration::from_secs(60);
/// Virtual time the reactor gets, once every client has ended, to let go
/// of what they left.
const SETTLE: Duration = Duration::from_secs(2);
/// Most turns a run may take.
const MAX_TURNS: u64 = 2_000_000;

/// The most buffer memory the open sockets may hold between them: per
/// socket, the output high-water mark, plus a read buffer and an output
/// buffer past the mark, each at most `max(read_size, max_unit)` rounded
/// up to a power of two (buffers grow by doubling). Over 100,000 seeds of
/// each service the sockets came to at most 81 % of it. The pools are
/// bounded apart (8 MiB each, by their own constant).
pub fn memory_bound(sockets: usize, high_water: usize, unit: usize) -> usize {
    let read = (16 * 1024usize).max(unit).next_power_of_two();
    sockets * (high_water + 2 * read)
}

/// What the two buffer pools may keep between them.
pub const POOLS_MAX: usize = 2 * (8 << 20);

/// The bugs planted for one run, removed when it ends, however it ends.
struct Planted<'a>(&'a [Bug]);

impl Planted<'_> {
    fn new(bugs: &[Bug]) -> Planted<'_> {
        bugs.iter().for_each(|&b| plant(b));
        Planted(bugs)
    }
}

impl Drop for Planted<'_> {
    fn drop(&mut self) {
        self.0.iter().for_each(|&b| unplant(b));
    }
}

/// Plays `seed` with `options`. A panic in the run (in the runtime, the
/// services or the harness) is a failure of the seed like any other: its
/// one violation says `panicked: ` and the message, and the simulation is
/// torn down (the thread can run the next seed).
pub fn run(seed: u64, options: &Options) -> Outcome {
    let _planted = Planted::new(&options.bugs);
    let played = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match options.service {
        Service::Echo => run_workload::<echo::Echo>(seed),
        Service::Chat => run_workload::<chat::Chat>(seed),
    }));
    played.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Outcome {
            seed,
            violations: vec![format!("panicked: {msg}")],
            setting: "(the run panicked)".into(),
            policy: None,
            trace: Vec::new(),
            turns: 0,
            virtual_time: Duration::ZERO,
            lines: 0,
            clients: Vec::new(),
            memory_peak: 0.0,
        }
    })
}

fn run_workload<W: Workload>(seed: u64) -> Outcome {
    let mut sim = Sim::new(SimConfig::new(seed));
    let (w, mut clients) = W::draw(&mut sim);
    let addr = w.start(&mut sim);
    let policy = sim.config().policy;
    let setting = format!("{}; reactor {:?}", w.describe(), sim.config().policy)
        + &format!(
            ", budget {}, turn_limit {}",
            sim.config().budget,
            sim.config().turn_limit
        );
    let mut v = Vec::new();
    let mut settle_until = None;
    let mut settled = false;
    let mut turns = 0u64;
    let mut peak = 0.0f64;
    let (high_water, unit) = w.memory_settings();
    loop {
        let now = sim.now();
        for c in clients.iter_mut() {
            c.act(&mut sim, now, addr, |c| w.satisfied(c));
        }
        let all_done = clients.iter().all(|c| c.end().is_some());
        if all_done && settle_until.is_none() {
            settle_until = Some(sim.elapsed() + SETTLE);
        }
        let wake = clients.iter().filter_map(Client::wake).min();
        if !sim.step(wake) {
            settled = all_done;
            break;
        }
        turns += 1;
        let mem = buffer_memory(sim.core());
        let sockets = open_sockets(sim.core());
        let bound = memory_bound(sockets, high_water, unit);
        if sockets > 0 {
            peak = peak.max(mem.sockets as f64 / bound as f64);
        }
        if mem.sockets > bound || mem.pools > POOLS_MAX {
            v.push(format!(
                "buffer memory {} bytes in {sockets} sockets (bound {bound}) and {} in the pools \
                 (bound {POOLS_MAX}), at {:?}",
                mem.sockets,
                mem.pools,
                sim.elapsed()
            ));
            break;
        }
        if settle_until.is_some_and(|t| sim.elapsed() >= t) {
            settled = true;
            break;
        }
        if sim.elapsed() > DEADLINE || turns > MAX_TURNS {
            break;
        }
    }
    let virtual_time = sim.elapsed();
    let servers: Vec<Option<String>> = clients
        .iter()
        .map(|c| {
            c.conn()
                .and_then(|c| sim.server_actor(c))
                .map(|a| a.to_string())
        })
        .collect();
    let client_lines = clients
        .iter()
        .map(|c| {
            format!(
                "client {}: {:?}, ended {:?}, sent {} of {} bytes, {} lines received, served by {}",
                c.index,
                c.ending,
                c.end(),
                c.sent,
                c.out.len(),
                c.lines.len(),
                servers[c.index].as_deref().unwrap_or("no socket")
            )
        })
        .collect();
    let trace = sim.finish();
    let (mut tv, facts) = check_trace(&trace);
    v.append(&mut tv);
    w.check(
        &Run {
            clients: &clients,
            facts: &facts,
            settled,
            servers: &servers,
        },
        &mut v,
    );
    Outcome {
        seed,
        violations: v,
        setting,
        policy: Some(policy),
        trace,
        turns,
        virtual_time,
        lines: clients.iter().map(|c| c.lines.len() as u64).sum(),
        clients: client_lines,
        memory_peak: peak,
    }
}

/// The command that replays `seed` with its trace kept.
pub fn replay_command(seed: u64, options: &Options) -> String {
    let mut cmd = format!(
        "cargo run --release -p credit-sim -- --service {} --seed {seed}",
        options.service.name()
    );
    for b in &options.bugs {
        cmd += &format!(" --bug {}", b.name());
    }
    cmd + &format!(" --trace sim-{seed}.trace")
}
