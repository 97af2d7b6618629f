//! Scheduler micro-benchmarks: ping-pong, fan-out, spawn+exit,
//! request/reply, and the same ping-pong over tokio for comparison.
//!
//! `cargo bench --bench scheduler`. Plain `main`: each case runs once to warm
//! up, then `REPS` times; the table shows the median (and min/max) per op.
//! A counting global allocator reports heap allocations per message in the
//! steady state of each ping-pong.

use std::time::{Duration, Instant};

use credit_actors::{Actor, Addr, Config, Ctx, Reactor, Reactors, Reply};
use credit_testkit::CountingAlloc;

// ----- counting allocator --------------------------------------------------------

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations so far on this thread (every case runs its reactor here).
fn allocs() -> u64 {
    CountingAlloc::thread()
}

// ----- sizes -----------------------------------------------------------------------

const REPS: usize = 5;
/// Round trips per measured ping-pong, unless `SCHED_ROUNDS` says.
const PING_PONG_ROUNDS: u64 = 1_000_000;
const PING_PONG_WARMUP: u64 = 10_000;
const FAN_OUT_ACTORS: usize = 1_000;
const FAN_OUT_ROUNDS: u64 = 1_000;
const SPAWN_ACTORS: u64 = 100_000;
const SPAWN_BATCH: u64 = 1_000;
/// Round trips per measured request/reply, unless `SCHED_ROUNDS` says.
const REQUEST_ROUNDS: u64 = 500_000;

/// `SCHED_ROUNDS`, if set: the round trips of every case (for callgrind).
fn rounds_override() -> Option<u64> {
    std::env::var("SCHED_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
}

fn rounds() -> u64 {
    static ROUNDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ROUNDS.get_or_init(|| rounds_override().unwrap_or(PING_PONG_ROUNDS))
}

fn request_rounds() -> u64 {
    static ROUNDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ROUNDS.get_or_init(|| rounds_override().unwrap_or(REQUEST_ROUNDS))
}

/// One measured stretch: elapsed time, operations, allocations.
#[derive(Clone, Copy)]
struct Sample {
    elapsed: Duration,
    ops: u64,
    allocs: u64,
}

impl Sample {
    fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops as f64
    }
    fn allocs_per_op(&self) -> f64 {
        self.allocs as f64 / self.ops as f64
    }
}

/// Runs `f` once to warm up and `REPS` times more; returns the measured
/// samples sorted by time per op.
fn measure(mut f: impl FnMut() -> Sample) -> Vec<Sample> {
    let _ = f();
    let mut samples: Vec<Sample> = (0..REPS).map(|_| f()).collect();
    samples.sort_by(|a, b| a.ns_per_op().total_cmp(&b.ns_per_op()));
    samples
}

fn median(samples: &[Sample]) -> Sample {
    samples[samples.len() / 2]
}

// ----- ping-pong ---------------------------------------------------------------------

/// The first player counts round trips and stamps the steady-state stretch
/// (after `warmup` round trips) with time and allocation count, then hands
/// the sample to `done`. The second only returns the ball.
struct Player {
    /// Round trips still to make (first player only), and how many of them
    /// are measured.
    left: Option<u64>,
    measured: u64,
    start: Option<(Instant, u64)>,
    done: Option<Box<dyn FnOnce(Sample)>>,
}

impl Player {
    /// The player that serves: `warmup` round trips, then `measured` ones.
    fn first(warmup: u64, measured: u64, done: impl FnOnce(Sample) + 'static) -> Player {
        Player {
            left: Some(warmup + measured),
            measured,
            start: None,
            done: Some(Box::new(done)),
        }
    }

    /// The player that returns the ball.
    fn second() -> Player {
        Player {
            left: None,
            measured: 0,
            start: None,
            done: None,
        }
    }
}

enum PingMsg {
    Serve(Addr<Player>),
    Ball(Addr<Player>),
}

impl Actor for Player {
    type Msg = PingMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: PingMsg) {
        let to = match msg {
            PingMsg::Serve(to) => to,
            PingMsg::Ball(from) => {
                if let Some(left) = self.left.as_mut() {
                    if *left == self.measured {
                        self.start = Some((Instant::now(), allocs()));
                    }
                    if *left == 0 {
                        let (t0, a0) = self.start.unwrap();
                        let sample = Sample {
                            elapsed: t0.elapsed(),
                            ops: 2 * self.measured,
                            allocs: allocs() - a0,
                        };
                        (self.done.take().unwrap())(sample);
                        ctx.kill(from.id());
                        ctx.stop();
                        return;
                    }
                    *left -= 1;
                }
                from
            }
        };
        let me = ctx.me();
        ctx.send(to, PingMsg::Ball(me));
    }
}

fn ping_pong() -> Sample {
    let result = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut reactor = Reactor::new().unwrap();
    let r = result.clone();
    let a = reactor.spawn(Player::first(PING_PONG_WARMUP, rounds(), move |s| {
        r.set(Some(s))
    }));
    let b = reactor.spawn(Player::second());
    reactor.send(a, PingMsg::Serve(b));
    reactor.run().unwrap();
    result.get().expect("ping-pong finished")
}

fn tokio_ping_pong() -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (to_b, a_rx, b) = tokio_second();
        let a = tokio::spawn(tokio_first(to_b, a_rx, PING_PONG_WARMUP, rounds()));
        let sample = a.await.unwrap();
        b.await.unwrap();
        sample
    })
}

/// The task that returns the ball, spawned; the channels to it and back.
fn tokio_second() -> (
    tokio::sync::mpsc::Sender<u64>,
    tokio::sync::mpsc::Receiver<u64>,
    tokio::task::JoinHandle<()>,
) {
    let (to_b, mut b_rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let (to_a, a_rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let b = tokio::spawn(async move {
        while let Some(v) = b_rx.recv().await {
            if to_a.send(v).await.is_err() {
                break;
            }
        }
    });
    (to_b, a_rx, b)
}

/// The serving side: `warmup` round trips, then `measured` ones, timed
/// (allocations counted on its thread). Returns once the ball is back for
/// the last time, closing the channel to the second task.
async fn tokio_first(
    to_b: tokio::sync::mpsc::Sender<u64>,
    mut a_rx: tokio::sync::mpsc::Receiver<u64>,
    warmup: u64,
    measured: u64,
) -> Sample {
    let mut start = (Instant::now(), allocs());
    for i in 0..warmup + measured {
        if i == warmup {
            start = (Instant::now(), allocs());
        }
        to_b.send(i).await.unwrap();
        let v = a_rx.recv().await.unwrap();
        debug_assert_eq!(v, i);
    }
    Sample {
        elapsed: start.0.elapsed(),
        ops: 2 * measured,
        allocs: allocs() - start.1,
    }
}

// ----- across reactors -------------------------------------------------------------

/// Round trips per measured cross-thread ping-pong (each message wakes a
/// thread that sleeps in the kernel), unless `SCHED_ROUNDS` says.
const CROSS_ROUNDS: u64 = 50_000;
const CROSS_WARMUP: u64 = 2_000;

fn cross_rounds() -> u64 {
    static ROUNDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ROUNDS.get_or_init(|| rounds_override().unwrap_or(CROSS_ROUNDS))
}

/// Two actors on two reactors of a group (two threads), one message in
/// flight: every message crosses a lane and wakes the other thread.
fn cross_ping_pong() -> Sample {
    cross_ping_pong_with(Config::default())
}

/// [`cross_ping_pong`] with `peer_spin` off: every message sleeps and
/// wakes a thread, through the kernel.
fn cross_ping_pong_no_spin() -> Sample {
    cross_ping_pong_with(Config {
        peer_spin: Duration::ZERO,
        ..Config::default()
    })
}

fn cross_ping_pong_with(config: Config) -> Sample {
    let reactors = Reactors::start(2, config, |_| {}).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // The allocation count is the first player's thread's alone: it says
    // nothing of the other reactor, so it is not reported.
    let a = reactors
        .handle(0)
        .spawn(move || {
            Player::first(CROSS_WARMUP, cross_rounds(), move |s| {
                let _ = tx.send(s);
            })
        })
        .unwrap();
    let b = reactors.handle(1).spawn(Player::second).unwrap();
    reactors.handle(0).send(a, PingMsg::Serve(b));
    let sample = rx.recv().expect("cross ping-pong finished");
    reactors.shutdown();
    reactors.join().unwrap();
    sample
}

/// The same over tokio's multi-thread runtime (2 workers): one task on a
/// worker, the other in `block_on` on the calling thread, so the two are
/// always on different threads (tokio places spawned tasks itself, and a
/// task woken by another on a worker may run on that same worker).
fn tokio_cross_ping_pong() -> Sample {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let (to_b, a_rx, b) = tokio_second();
        let sample = tokio_first(to_b, a_rx, CROSS_WARMUP, cross_rounds()).await;
        b.await.unwrap();
        sample
    })
}

// ----- fan-out -------------------------------------------------------------------------

struct Sink(u64);

impl Actor for Sink {
    type Msg = u64;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, v: u64) {
        self.0 = self.0.wrapping_add(v);
    }
}

/// Sends one message to every sink, then a tick to itself, which the FIFO
/// run queue handles only after every sink has run: one round per tick.
struct Broadcaster {
    sinks: Vec<Addr<Sink>>,
    rounds: u64,
    start: Instant,
    result: std::rc::Rc<std::cell::Cell<Option<Sample>>>,
}

impl Actor for Broadcaster {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        for _ in 0..FAN_OUT_ACTORS {
            let s = ctx.spawn_link(Sink(0));
            self.sinks.push(s);
        }
        let me = ctx.me();
        ctx.send(me, ());
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
        if self.rounds == 0 {
            self.start = Instant::now();
        }
        if self.rounds == FAN_OUT_ROUNDS {
            self.result.set(Some(Sample {
                elapsed: self.start.elapsed(),
                ops: FAN_OUT_ROUNDS * FAN_OUT_ACTORS as u64,
                allocs: 0,
            }));
            ctx.stop(); // the linked sinks follow
            return;
        }
        self.rounds += 1;
        for &s in &self.sinks {
            ctx.send(s, self.rounds);
        }
        let me = ctx.me();
        ctx.send(me, ());
    }
}

fn fan_out() -> Sample {
    let result = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut reactor = Reactor::new().unwrap();
    reactor.spawn(Broadcaster {
        sinks: Vec::with_capacity(FAN_OUT_ACTORS),
        rounds: 0,
        start: Instant::now(),
        result: result.clone(),
    });
    reactor.run().unwrap();
    result.get().expect("fan-out finished")
}

// ----- spawn + exit ---------------------------------------------------------------------

struct Ephemeral;

impl Actor for Ephemeral {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.stop();
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _: ()) {}
}

/// Spawns a batch of short-lived actors, then ticks itself: the tick runs
/// after the whole batch has started and exited.
struct Spawner {
    spawned: u64,
}

impl Actor for Spawner {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.me();
        ctx.send(me, ());
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
        if self.spawned == SPAWN_ACTORS {
            ctx.stop();
            return;
        }
        for _ in 0..SPAWN_BATCH {
            ctx.spawn(Ephemeral);
        }
        self.spawned += SPAWN_BATCH;
        let me = ctx.me();
        ctx.send(me, ());
    }
}

fn spawn_exit() -> Sample {
    let mut reactor = Reactor::new().unwrap();
    reactor.spawn(Spawner { spawned: 0 });
    let t0 = Instant::now();
    reactor.run().unwrap();
    let elapsed = t0.elapsed();
    let stats = reactor.stats();
    assert_eq!(stats.exited, SPAWN_ACTORS + 1);
    Sample {
        elapsed,
        ops: SPAWN_ACTORS,
        allocs: 0,
    }
}

// ----- request / reply -------------------------------------------------------------------

struct Server;

enum ServerMsg {
    Ask(u64, Reply<u64>),
}

impl Actor for Server {
    type Msg = ServerMsg;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ServerMsg) {
        let ServerMsg::Ask(v, reply) = msg;
        reply.resolve(ctx, v + 1);
    }
}

struct Client {
    server: Addr<Server>,
    left: u64,
    start: Option<(Instant, u64)>,
    result: std::rc::Rc<std::cell::Cell<Option<Sample>>>,
}

enum ClientMsg {
    Got(Result<u64, credit_actors::RequestError>),
}

impl Client {
    fn ask(&mut self, ctx: &mut Ctx<'_, Self>, v: u64) {
        ctx.request(self.server, move |r| ServerMsg::Ask(v, r), ClientMsg::Got);
    }
}

impl Actor for Client {
    type Msg = ClientMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.ask(ctx, 0);
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ClientMsg) {
        let ClientMsg::Got(r) = msg;
        let v = r.expect("server answers");
        if self.left == request_rounds() {
            self.start = Some((Instant::now(), allocs()));
        }
        if self.left == 0 {
            let (t0, a0) = self.start.unwrap();
            self.result.set(Some(Sample {
                elapsed: t0.elapsed(),
                ops: request_rounds(),
                allocs: allocs() - a0,
            }));
            ctx.kill(self.server.id());
            ctx.stop();
            return;
        }
        self.left -= 1;
        self.ask(ctx, v);
    }
}

fn request_reply() -> Sample {
    let result = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut reactor = Reactor::new().unwrap();
    let server = reactor.spawn(Server);
    reactor.spawn(Client {
        server,
        left: PING_PONG_WARMUP + request_rounds(),
        start: None,
        result: result.clone(),
    });
    reactor.run().unwrap();
    result.get().expect("request/reply finished")
}

// ----- report -------------------------------------------------------------------------------

fn row(name: &str, unit: &str, samples: &[Sample], allocs: bool) {
    let m = median(samples);
    let (lo, hi) = (samples[0], samples[samples.len() - 1]);
    let a = if allocs {
        format!("{:.4}", m.allocs_per_op())
    } else {
        "-".to_string()
    };
    println!(
        "{:<34} {:>10} {:>12.1} {:>10.1} {:>10.1} {:>12}   {}",
        name,
        m.ops,
        m.ns_per_op(),
        lo.ns_per_op(),
        hi.ns_per_op(),
        a,
        unit
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse. `SCHED_CASE` runs
    // one case once, without warm-up (for `instructions-per-message.sh`).
    if let Ok(case) = std::env::var("SCHED_CASE") {
        let s = match case.as_str() {
            "pingpong" => ping_pong(),
            "tokio" => tokio_ping_pong(),
            "request" => request_reply(),
            "cross" => cross_ping_pong(),
            "cross-no-spin" => cross_ping_pong_no_spin(),
            "tokio-cross" => tokio_cross_ping_pong(),
            other => panic!(
                "unknown SCHED_CASE {other:?} (pingpong, tokio, request, cross, cross-no-spin, tokio-cross)"
            ),
        };
        println!(
            "{case}: {} ops, {:.1} ns/op, {:.4} allocs/op",
            s.ops,
            s.ns_per_op(),
            s.allocs_per_op()
        );
        return;
    }
    let t0 = Instant::now();
    let ours = measure(ping_pong);
    let tokio = measure(tokio_ping_pong);
    let fan = measure(fan_out);
    let spawn = measure(spawn_exit);
    let req = measure(request_reply);
    // Interleaved, so that the machine's drift hits both alike.
    let mut cross = Vec::new();
    let mut cross_no_spin = Vec::new();
    let mut tokio_cross = Vec::new();
    let _ = (cross_ping_pong(), tokio_cross_ping_pong());
    for _ in 0..REPS {
        cross.push(cross_ping_pong());
        cross_no_spin.push(cross_ping_pong_no_spin());
        tokio_cross.push(tokio_cross_ping_pong());
    }
    for v in [&mut cross, &mut cross_no_spin, &mut tokio_cross] {
        v.sort_by(|a, b| a.ns_per_op().total_cmp(&b.ns_per_op()));
    }

    println!(
        "scheduler benchmarks: median of {REPS} runs after 1 warm-up run (ns per op; min, max)"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>10} {:>12}   op",
        "case", "ops/run", "median ns", "min ns", "max ns", "allocs/op"
    );
    row("ping-pong, 2 actors", "message", &ours, true);
    row("ping-pong, 2 tokio tasks (mpsc)", "message", &tokio, true);
    row(
        "fan-out, 1 -> 1,000 actors",
        "delivered message",
        &fan,
        false,
    );
    row("spawn + exit", "actor", &spawn, false);
    row("request/reply, 2 actors", "round trip", &req, true);
    row("ping-pong, 2 reactors (threads)", "message", &cross, false);
    row("  the same, peer_spin 0", "message", &cross_no_spin, false);
    row(
        "ping-pong, tokio 2 workers (threads)",
        "message",
        &tokio_cross,
        false,
    );
    println!(
        "ratio tokio/ours (ping-pong, ns per message): {:.2}",
        median(&tokio).ns_per_op() / median(&ours).ns_per_op()
    );
    println!(
        "ratio tokio/ours (ping-pong across threads, ns per message): {:.2} (peer_spin 0: {:.2})",
        median(&tokio_cross).ns_per_op() / median(&cross).ns_per_op(),
        median(&tokio_cross).ns_per_op() / median(&cross_no_spin).ns_per_op()
    );
    println!(
        "allocations per message, ping-pong steady state: ours {:.4}, tokio {:.4}",
        median(&ours).allocs_per_op(),
        median(&tokio).allocs_per_op()
    );
    println!("total bench time: {:.1} s", t0.elapsed().as_secs_f64());
}
