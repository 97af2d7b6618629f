//! One reactor of two kept busy by a CPU-heavy actor: where each accept mode
//! places new connections, and what latency the connections see.
//!
//! `cargo bench -p credit-bench --bench busy_reactor`. For each mode
//! (`reuseport`, `handoff`) it starts the echo service on a group of two
//! reactors in this process, as `echo-server --reactors 2 --accept MODE`
//! does, and an actor on reactor 1 that computes for 2 ms per run, for
//! ever. Then one client thread connects 100 times (waiting for the first
//! reply each time) and makes 50 round trips on every connection in turn.
//! It prints, per mode: the connections each reactor holds (the servers'
//! own count), the round-trip percentiles of the connections on the free
//! reactor and of those on the busy one (a connection whose median round
//! trip exceeds 500 µs is counted as on the busy reactor; the split
//! matches the servers' count), and the first-reply latency.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use credit_actors::net::{AcceptMode, Handoff, ListenSpec};
use credit_actors::{Config, Reactors};
use credit_echo::{EchoConfig, EchoService, GroupAccept, ServiceMsg};
use credit_testkit::Busy;

const CONNS: usize = 100;
const ROUNDS: usize = 50;
const HOG_RUN: Duration = Duration::from_millis(2);
const WAIT: Duration = Duration::from_secs(10);

/// `None`: SO_REUSEPORT listeners that keep what the kernel gives them
/// (no placement at all), to show what the kernel's hash alone does.
fn start(mode: Option<AcceptMode>) -> (Reactors, SocketAddr) {
    let reactors = Reactors::start(2, Config::default(), |_| {}).expect("start reactors");
    let m = mode.unwrap_or(AcceptMode::ReusePort);
    let handoff = Handoff::new(m.placement(), 2);
    let mut port = 0;
    let mut first = None;
    for i in 0..2 {
        let config = EchoConfig {
            listen: ListenSpec::host_port("127.0.0.1", port).reuse_port(m == AcceptMode::ReusePort),
            group: mode.map(|_| GroupAccept {
                handoff: handoff.clone(),
                listen: m.listens(i),
            }),
            ..EchoConfig::default()
        };
        let h = reactors.handle(i);
        let service = h.spawn(move || EchoService::new(config)).unwrap();
        if m.listens(i) {
            let addr = h
                .request_wait(service, ServiceMsg::WhenReady, WAIT)
                .unwrap();
            port = addr.port();
            first.get_or_insert(addr);
        }
    }
    (reactors, first.unwrap())
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
    rtts: Vec<Duration>,
}

impl Conn {
    fn ask(&mut self, line: &str) -> Duration {
        let t = Instant::now();
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
        let mut reply = String::new();
        self.r.read_line(&mut reply).unwrap();
        assert_eq!(reply.trim_end(), format!("You said: {line}"));
        t.elapsed()
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1e6
}

fn run(mode: Option<AcceptMode>) {
    let (reactors, addr) = start(mode);
    let hog = reactors.handle(1).spawn(|| Busy::new(HOG_RUN)).unwrap();
    // Long enough for the busy share (a 50 ms window) to show it.
    std::thread::sleep(Duration::from_millis(200));
    if std::env::var_os("BUSY_DEBUG").is_some() {
        let shares = reactors
            .handle(0)
            .call(|core| (core.busy_of(0), core.busy_of(1)), WAIT)
            .unwrap();
        eprintln!("busy shares before connecting: {shares:?}");
    }
    let mut first = Vec::new();
    let mut conns: Vec<Conn> = (0..CONNS)
        .map(|i| {
            let t = Instant::now();
            let w = TcpStream::connect(addr).unwrap();
            w.set_nodelay(true).unwrap();
            w.set_read_timeout(Some(WAIT)).unwrap();
            let r = BufReader::new(w.try_clone().unwrap());
            let mut c = Conn {
                w,
                r,
                rtts: Vec::new(),
            };
            c.ask(&format!("hello {i}"));
            first.push(t.elapsed());
            c
        })
        .collect();
    for k in 0..ROUNDS {
        for c in conns.iter_mut() {
            let d = c.ask(&format!("round {k}"));
            c.rtts.push(d);
        }
    }
    let loads = reactors.handle(0).call(|core| core.loads(), WAIT).unwrap();
    let (mut free, mut busy) = (Vec::new(), Vec::new());
    let mut on_busy = 0;
    for c in &mut conns {
        let med = pct(&mut c.rtts, 50.0);
        if med > 500.0 {
            on_busy += 1;
            busy.extend_from_slice(&c.rtts);
        } else {
            free.extend_from_slice(&c.rtts);
        }
    }
    println!(
        "{:<10} {:>6} {:>6} {:>9} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>12.0}",
        match mode {
            None => "kernel",
            Some(AcceptMode::ReusePort) => "reuseport",
            Some(AcceptMode::Handoff) => "handoff",
        },
        loads[0],
        loads[1],
        on_busy,
        pct(&mut free, 50.0),
        pct(&mut free, 99.0),
        pct(&mut busy, 50.0),
        pct(&mut busy, 99.0),
        pct(&mut first, 99.0),
    );
    reactors.handle(1).kill(hog.id());
    drop(conns);
    reactors.shutdown();
    reactors.join().unwrap();
}

fn main() {
    println!(
        "reactor 1 computes {} ms per run; {CONNS} connections, {ROUNDS} round trips each (µs)",
        HOG_RUN.as_millis()
    );
    println!(
        "{:<10} {:>6} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "mode", "r0", "r1", "slow", "free p50", "free p99", "busy p50", "busy p99", "first p99"
    );
    println!("(kernel: SO_REUSEPORT listeners keeping what the kernel's hash gives them)");
    for mode in [None, Some(AcceptMode::ReusePort), Some(AcceptMode::Handoff)] {
        run(mode);
    }
}
