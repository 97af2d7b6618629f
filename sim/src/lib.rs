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

use credit_actors::net::buffer_memory;
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
    /// The run-queue policy the seed drew.
    pub policy: credit_actors::Policy,
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

/// The most buffer memory the reactor may hold with `sockets` sockets
/// open: per socket, the output high-water mark plus what a read and a
/// unit being cut may hold (two `max(read_size, max_unit)` buffers), and
/// the pools' share. Socket buffers grow by doubling, so a unit of
/// `max_unit` bytes may sit in a buffer of twice that.
pub fn memory_bound(sockets: usize, high_water: usize, unit: usize) -> usize {
    let read = (16 * 1024usize).max(unit).next_power_of_two();
    sockets * (high_water + 4 * read) + (1 << 20)
}

/// Plays `seed` with `options`.
pub fn run(seed: u64, options: &Options) -> Outcome {
    for &b in &options.bugs {
        plant(b);
    }
    let outcome = match options.service {
        Service::Echo => run_workload::<echo::Echo>(seed),
        Service::Chat => run_workload::<chat::Chat>(seed),
    };
    for &b in &options.bugs {
        unplant(b);
    }
    outcome
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
        let sockets = sim.core().live();
        let bound = memory_bound(sockets, high_water, unit);
        if mem.total > bound {
            v.push(format!(
                "buffer memory {} bytes with {sockets} actors alive, over its bound {bound}, at {:?}",
                mem.total,
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
    let client_lines = clients
        .iter()
        .map(|c| {
            format!(
                "client {}: {:?}, ended {:?}, sent {} of {} bytes, {} lines received",
                c.index,
                c.ending,
                c.end(),
                c.sent,
                c.out.len(),
                c.lines.len()
            )
        })
        .collect();
    let virtual_time = sim.elapsed();
    let servers: Vec<Option<String>> = clients
        .iter()
        .map(|c| {
            c.conn()
                .and_then(|c| sim.server_actor(c))
                .map(|a| a.to_string())
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
        policy,
        trace,
        turns,
        virtual_time,
        lines: clients.iter().map(|c| c.lines.len() as u64).sum(),
        clients: client_lines,
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
