//! Load generator for "echo-line" servers.
//!
//! An echo-line server answers every LF-terminated line `L` a client sends with
//! `You said: L\n`, in order, per connection. This module drives many client
//! connections against such a server, checks every reply byte for byte, and
//! measures throughput, latency and (for the c10k scenario) server memory.
//!
//! # Design
//!
//! * **One mio event loop per thread.** All connections of a generator
//!   thread are non-blocking sockets registered once, edge-triggered, for
//!   `READABLE | WRITABLE` in a single [`mio::Poll`]. By default there is one
//!   such thread, so the generator uses one core and, on a 2-core machine,
//!   the server under test gets the other; [`Config::threads`] runs several,
//!   each with its share of the connections and rate, their reports merged.
//!   Churn workers and c10k connections are just more state machines in the
//!   same loop.
//! * **Closed or open loop.** By default a connection sends its next lines
//!   as replies make room (closed loop). With [`Config::rate`] lines follow
//!   a fixed schedule instead, whatever the replies do, and latency counts
//!   from each line's due time, which corrects for coordinated omission;
//!   [`Report::uncorrected`] counts from the actual send.
//! * **No allocation per line.** Line content is a pure function of
//!   `(connection id, sequence number, length)` (see [`verify`]), so a
//!   connection stores no per-line data: it appends new lines straight into
//!   its output buffer and checks replies with a streaming verifier that only
//!   remembers which reply it is in and how far. All reads go into one shared
//!   256 KiB buffer. A reply split over several reads is reassembled
//!   implicitly.
//! * **Batched I/O.** After reading, a connection tops up its window of
//!   in-flight lines (`depth`) and issues one write for the whole batch; a
//!   short write waits for the WRITABLE edge. Reads stop at a short read.
//! * **Errors.** A wrong reply byte, bytes with no line outstanding, a reset or
//!   an unexpected EOF closes the connection and is counted by kind in
//!   [`ErrorCounts`]. In pipeline, pingpong and bigline the connection is then
//!   reopened (fresh id and sequence, after 10 ms) so the load stays
//!   constant; a churn worker starts its next cycle; a c10k connection is
//!   dropped (it will be missing from `served`). Lines that were in flight on
//!   a failed connection are not counted again (`lines_sent` may exceed
//!   answered + late + unanswered by those).
//! * **Time bounds.** Every connect has a timeout ([`Config::connect_timeout`]).
//!   Pipeline, pingpong and bigline first open all connections (bounded by the
//!   connect timeout) and then start the measurement window; churn starts the
//!   window at once. When the window (`duration`) ends nothing new is queued,
//!   connects in progress are abandoned, and the loop drains the replies to
//!   lines already queued for at most [`Config::drain_timeout`]. Replies
//!   received while draining are verified but counted separately
//!   ([`Report::lines_answered_late`]) and never enter rates; in a closed
//!   loop they do not enter latencies either, while at a fixed rate every
//!   window line's latency counts, whenever its reply comes (lines the
//!   schedule held that were never sent are counted in [`RateStats::unsent`]).
//!   Lines still unanswered after the drain are errors (`unanswered`). c10k
//!   has its own phases, each bounded by `max(duration, 10 s)`.
//! * **Source addresses.** Churn against an IPv4 loopback server spreads its
//!   connections over `127.0.0.1..=127.0.0.32` by default: every cycle leaves
//!   a TIME_WAIT socket on the client side, and with a single source address
//!   the kernel's ephemeral-port search in `connect()` costs milliseconds and
//!   becomes the bottleneck instead of the server. c10k uses several source
//!   addresses when one cannot hold `conns` connections. Sources are bound
//!   with `IP_BIND_ADDRESS_NO_PORT`.
//! * **c10k pacing.** At most 64 connects are in progress at once and, when
//!   the server pid is known, at most 64 connections may be established but
//!   not yet accepted (judged by the server's fd count), so a server with the
//!   common backlog of 128 does not overflow its accept queue (which would
//!   cost 1 s SYN retransmissions). The "idle" RSS is sampled once the
//!   server's fd count shows every connection accepted (bounded by 5 s).
//!
//! # Example
//!
//! ```no_run
//! use credit_bench::loadgen::{run, Config, Scenario};
//! let mut cfg = Config::for_scenario(Scenario::Pipeline);
//! cfg.addr = "127.0.0.1:4096".parse().unwrap();
//! cfg.duration = std::time::Duration::from_secs(2);
//! let report = run(Scenario::Pipeline, &cfg).unwrap();
//! println!("{report}");
//! println!("{}", report.to_json());
//! ```

pub mod chat;
mod conn;
mod engine;
pub mod flood;
pub mod hdr;
pub mod plot;
pub mod progress;
pub mod record;
mod report;
mod sys;
pub mod verify;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Barrier};
use std::time::Duration;

pub use report::{
    latency_record, percentile_key, C10kStats, ErrorCounts, Interval, Latency, Params, RateStats,
    Report, Table, RECORDED_PERCENTILES, SHOWN_PERCENTILES,
};
pub use sys::{count_fds, raise_nofile_limit, read_rss_kib};

/// A load pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// `conns` connections each keep `depth` lines in flight; measures lines/s
    /// and MB/s.
    Pipeline,
    /// `conns` connections with one line in flight each; measures lines/s and
    /// the round-trip latency distribution.
    PingPong,
    /// `workers` concurrent loops of connect, send one line, read the reply,
    /// close; measures connections/s and the connect-to-reply latency.
    Churn,
    /// Opens `conns` idle connections, then sends one line on each; reports how
    /// many were served and the server's RSS per connection.
    C10k,
    /// Pipeline with big lines (64 KiB, 1 MiB, ...: `line_bytes`) and a small
    /// depth; measures MB/s.
    BigLine,
}

impl Scenario {
    /// Every scenario, in a fixed order.
    pub const ALL: [Scenario; 5] = [
        Scenario::Pipeline,
        Scenario::PingPong,
        Scenario::Churn,
        Scenario::C10k,
        Scenario::BigLine,
    ];

    /// The name used by [`fmt::Display`] and [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pipeline => "pipeline",
            Scenario::PingPong => "pingpong",
            Scenario::Churn => "churn",
            Scenario::C10k => "c10k",
            Scenario::BigLine => "bigline",
        }
    }

    /// One-line description.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::Pipeline => {
                "CONNS connections each keep DEPTH lines in flight (writes batched); lines/s, MB/s"
            }
            Scenario::PingPong => {
                "CONNS connections, one line in flight each; lines/s and round-trip p50/p99/p99.9/max"
            }
            Scenario::Churn => {
                "WORKERS concurrent connect/send one line/read reply/close loops; conns/s, p99 connect-to-reply"
            }
            Scenario::C10k => {
                "open CONNS idle connections, then one line on each; served count and server RSS per connection (--pid)"
            }
            Scenario::BigLine => {
                "pipeline with big lines (LINE_BYTES, default 64 KiB) and small DEPTH (default 2); MB/s"
            }
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error returned by `Scenario::from_str` for an unknown name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScenario(pub String);

impl fmt::Display for UnknownScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown scenario {:?} (expected pipeline, pingpong, churn, c10k or bigline)",
            self.0
        )
    }
}

impl std::error::Error for UnknownScenario {}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    /// Accepts the names printed by `Display`, case-insensitive (and the
    /// spellings `ping-pong` and `big-line`).
    fn from_str(s: &str) -> Result<Scenario, UnknownScenario> {
        match s.to_ascii_lowercase().as_str() {
            "pipeline" => Ok(Scenario::Pipeline),
            "pingpong" | "ping-pong" => Ok(Scenario::PingPong),
            "churn" => Ok(Scenario::Churn),
            "c10k" => Ok(Scenario::C10k),
            "bigline" | "big-line" => Ok(Scenario::BigLine),
            _ => Err(UnknownScenario(s.to_string())),
        }
    }
}

/// Parameters of a run. See [`Config::default`] and [`Config::for_scenario`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections (pipeline, pingpong, bigline) or idle connections to open (c10k).
    pub conns: usize,
    /// Lines in flight per connection (pipeline, bigline; pingpong, churn and
    /// c10k always use 1).
    pub depth: usize,
    /// Bytes per line, excluding the LF.
    pub line_bytes: usize,
    /// Length of the measurement window (c10k: minimum bound of each phase,
    /// which is `max(duration, 10 s)`).
    pub duration: Duration,
    /// Concurrent churn workers.
    pub workers: usize,
    /// Server process id: enables RSS sampling (c10k) from `/proc/<pid>/status`.
    pub server_pid: Option<u32>,
    /// Local source addresses to spread connections over (round-robin). When
    /// empty, the kernel chooses, except against an IPv4 loopback server:
    /// churn then uses `127.0.0.1..=127.0.0.32`, and c10k picks
    /// `127.0.0.1..=127.0.0.k` if `conns` exceeds what one source address can
    /// do (90 % of the ephemeral port range).
    pub source_ips: Vec<IpAddr>,
    /// Draw a progress bar on stderr, if it is a terminal.
    pub progress: bool,
    /// Maximum time for one connect.
    pub connect_timeout: Duration,
    /// Maximum time to collect replies to lines in flight when the window ends.
    pub drain_timeout: Duration,
    /// Lines per second over all connections (pipeline, pingpong, bigline):
    /// an open loop, each line sent on schedule whatever the replies do, up
    /// to `depth` in flight per connection (pingpong: 1, as wrk2 does; a
    /// line due while the previous is unanswered goes when the reply comes).
    /// Latency counts from each line's due time. `None`: a closed loop.
    pub rate: Option<f64>,
    /// Load before the window, counted in no figure (errors excepted).
    pub warmup: Duration,
    /// What every reply starts with before the line: `You said: ` for our
    /// servers, empty for a plain echo.
    pub expect_prefix: Vec<u8>,
    /// Begin every connection with a PROXY v2 header naming its own
    /// addresses, as HAProxy's `send-proxy-v2` does.
    pub proxy_v2: bool,
    /// Generator threads, each its own event loop with its share of the
    /// connections, workers and rate (not c10k).
    pub threads: usize,
    /// Keep the window's latencies second by second ([`Report::intervals`]).
    pub interval_log: bool,
    /// The run's name in records and plots (empty: scenario and address).
    pub label: String,
}

impl Default for Config {
    /// `127.0.0.1:4096`, 50 connections, depth 64, 32-byte lines, 10 s,
    /// 8 workers, no pid, kernel-chosen sources, progress on, connect timeout
    /// 5 s, drain timeout 5 s.
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 4096)),
            conns: 50,
            depth: 64,
            line_bytes: 32,
            duration: Duration::from_secs(10),
            workers: 8,
            server_pid: None,
            source_ips: Vec::new(),
            progress: true,
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            rate: None,
            warmup: Duration::ZERO,
            expect_prefix: verify::REPLY_PREFIX.to_vec(),
            proxy_v2: false,
            threads: 1,
            interval_log: false,
            label: String::new(),
        }
    }
}

impl Config {
    /// [`Config::default`] adjusted to the scenario: pingpong depth 1; c10k
    /// 10 000 connections; bigline 64 KiB lines with depth 2.
    pub fn for_scenario(scenario: Scenario) -> Config {
        let mut c = Config::default();
        match scenario {
            Scenario::PingPong => c.depth = 1,
            Scenario::C10k => {
                c.conns = 10_000;
                c.depth = 1;
            }
            Scenario::BigLine => {
                c.line_bytes = 64 * 1024;
                c.depth = 2;
            }
            Scenario::Pipeline | Scenario::Churn => {}
        }
        c
    }
}

/// Why a run could not be made at all (errors during a run are counted in the
/// [`Report`] instead).
#[derive(Debug)]
pub enum LoadgenError {
    /// Invalid parameters.
    Config(String),
    /// The server could not be reached before starting.
    Connect(SocketAddr, std::io::Error),
    /// Setting up the event loop failed.
    Io(std::io::Error),
}

impl fmt::Display for LoadgenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadgenError::Config(s) => write!(f, "invalid configuration: {s}"),
            LoadgenError::Connect(a, e) => write!(f, "cannot connect to {a}: {e}"),
            LoadgenError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for LoadgenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadgenError::Connect(_, e) | LoadgenError::Io(e) => Some(e),
            LoadgenError::Config(_) => None,
        }
    }
}

impl From<std::io::Error> for LoadgenError {
    fn from(e: std::io::Error) -> LoadgenError {
        LoadgenError::Io(e)
    }
}

/// The highest rate a run may ask for, in lines per second: far above what
/// one machine can send, low enough that a run's schedule stays small.
pub const MAX_RATE: f64 = 1e9;

/// Runs `scenario` against `cfg.addr` on `cfg.threads` generator threads
/// (with a progress bar on this one, if asked) and returns the report.
///
/// Raises the soft `RLIMIT_NOFILE` to the hard limit first, then checks that
/// the server accepts one connection (within the connect timeout). Returns an
/// error only if the run could not be made; everything that goes wrong during
/// the run is counted in [`Report::errors`].
pub fn run(scenario: Scenario, cfg: &Config) -> Result<Report, LoadgenError> {
    let nofile = raise_nofile_limit().unwrap_or(1024);
    let need = match scenario {
        Scenario::Churn => cfg.workers,
        _ => cfg.conns,
    };
    if need == 0 {
        return Err(LoadgenError::Config(match scenario {
            Scenario::Churn => "workers must be at least 1".into(),
            _ => "conns must be at least 1".into(),
        }));
    }
    if matches!(scenario, Scenario::Pipeline | Scenario::BigLine) && cfg.depth == 0 {
        return Err(LoadgenError::Config("depth must be at least 1".into()));
    }
    if cfg.duration.is_zero() {
        return Err(LoadgenError::Config("duration must be positive".into()));
    }
    if need as u64 + 32 > nofile {
        return Err(LoadgenError::Config(format!(
            "{need} connections need more file descriptors than RLIMIT_NOFILE allows ({nofile})"
        )));
    }
    let threads = cfg.threads;
    if cfg.threads == 0 {
        return Err(LoadgenError::Config("threads must be at least 1".into()));
    }
    if let Some(rate) = cfg.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
            return Err(LoadgenError::Config(format!(
                "rate must be a positive number of lines per second, at most {MAX_RATE:e}"
            )));
        }
        if matches!(scenario, Scenario::Churn | Scenario::C10k) {
            return Err(LoadgenError::Config(format!(
                "a fixed rate applies to pipeline, pingpong and bigline, not {scenario}"
            )));
        }
    }
    if threads > 1 && scenario == Scenario::C10k {
        return Err(LoadgenError::Config(
            "c10k runs on one thread (its pacing reads the server's descriptors)".into(),
        ));
    }
    if threads > need {
        return Err(LoadgenError::Config(format!(
            "{threads} threads need at least as many connections or workers ({need})"
        )));
    }
    // Preflight: is anybody listening?
    std::net::TcpStream::connect_timeout(&cfg.addr, cfg.connect_timeout)
        .map_err(|e| LoadgenError::Connect(cfg.addr, e))?;
    let split = |n: usize, t: usize| n / threads + usize::from(t < n % threads);
    let barrier = (threads > 1).then(|| Arc::new(Barrier::new(threads)));
    let meters: Vec<Arc<progress::Meter>> = (0..threads).map(|_| progress::Meter::new()).collect();
    let shares: Vec<engine::Share> = (0..threads)
        .map(|t| {
            let conns = split(cfg.conns, t);
            engine::Share {
                conns,
                workers: split(cfg.workers, t),
                // Each lane keeps the same pace whatever the thread count.
                rate: cfg.rate.map(|r| r * conns as f64 / cfg.conns as f64),
                first_id: 1 + ((t as u32) << 24),
                meter: cfg.progress.then(|| meters[t].clone()),
                barrier: barrier.clone(),
            }
        })
        .collect();
    let planned = cfg.warmup + cfg.duration;
    // Every engine is made before any starts: one that cannot be made must
    // not leave the others waiting at the barrier.
    let engines = shares
        .into_iter()
        .map(|share| engine::Engine::new(scenario, cfg, share))
        .collect::<Result<Vec<_>, _>>()?;
    let unit = if scenario == Scenario::Churn {
        "conns"
    } else {
        "lines"
    };
    let jobs = engines.into_iter().map(|e| move || e.run()).collect();
    let parts = progress::run_watched(jobs, cfg.progress, &meters, unit, planned);
    let mut report = Report::merge(parts.into_iter().collect::<Result<_, _>>()?);
    report.params.label = cfg.label.clone();
    report.params.conns = cfg.conns;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// A thread-per-connection echo-line server for tests. With
    /// `corrupt_reply = Some(k)`, the k-th reply (0-based) of every connection
    /// has one byte changed.
    struct TestServer {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl TestServer {
        fn start(corrupt_reply: Option<u64>) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let handle = std::thread::spawn(move || {
                let limit = Instant::now() + Duration::from_secs(60);
                while !stop2.load(Ordering::Relaxed) && Instant::now() < limit {
                    match listener.accept() {
                        Ok((s, _)) => {
                            std::thread::spawn(move || serve(s, corrupt_reply));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            });
            TestServer {
                addr,
                stop,
                handle: Some(handle),
            }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn serve(s: std::net::TcpStream, corrupt_reply: Option<u64>) {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.set_nodelay(true);
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut writer = std::io::BufWriter::new(s);
        let mut line = Vec::new();
        let mut n = 0u64;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') {
                return;
            }
            let mut reply = b"You said: ".to_vec();
            reply.extend_from_slice(&line);
            if corrupt_reply == Some(n) {
                let i = reply.len() / 2;
                reply[i] ^= 0x01;
            }
            n += 1;
            if writer.write_all(&reply).is_err() {
                return;
            }
            if reader.buffer().is_empty() && writer.flush().is_err() {
                return;
            }
        }
    }

    fn cfg(addr: SocketAddr, scenario: Scenario) -> Config {
        let mut c = Config::for_scenario(scenario);
        c.addr = addr;
        c.duration = Duration::from_millis(300);
        c.progress = false;
        c.conns = 4;
        c.depth = 8;
        c.workers = 2;
        c
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.to_string().parse::<Scenario>(), Ok(s));
        }
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn pipeline_against_correct_server_is_clean() {
        let srv = TestServer::start(None);
        let r = run(Scenario::Pipeline, &cfg(srv.addr, Scenario::Pipeline)).unwrap();
        assert_eq!(r.errors, ErrorCounts::default(), "{r}");
        assert!(r.lines_answered > 100, "{r}");
        assert_eq!(r.lines_sent, r.lines_answered + r.lines_answered_late);
        assert!(r.lines_per_sec > 0.0 && r.mb_per_sec > 0.0);
        assert!(r.latency.is_none());
        let expect_bytes = (r.lines_answered + r.lines_answered_late) * 43;
        assert!(r.reply_bytes <= expect_bytes);
    }

    #[test]
    fn pingpong_measures_latency() {
        let srv = TestServer::start(None);
        let mut c = cfg(srv.addr, Scenario::PingPong);
        c.conns = 2;
        let r = run(Scenario::PingPong, &c).unwrap();
        assert!(r.is_clean(), "{r}");
        assert_eq!(r.params.depth, 1);
        let l = r.latency.expect("latency");
        assert_eq!(l.samples, r.lines_answered);
        assert!(l.p50_us > 0.0 && l.p50_us <= l.p99_us && l.p99_us <= l.max_us);
    }

    #[test]
    fn churn_completes_cycles() {
        let srv = TestServer::start(None);
        let r = run(Scenario::Churn, &cfg(srv.addr, Scenario::Churn)).unwrap();
        assert!(r.is_clean(), "{r}");
        assert!(r.conns_completed > 5, "{r}");
        assert!(r.conns_per_sec.unwrap() > 0.0);
        assert_eq!(r.latency.unwrap().samples, r.conns_completed);
    }

    #[test]
    fn c10k_small_serves_everyone_and_samples_rss() {
        let srv = TestServer::start(None);
        let mut c = cfg(srv.addr, Scenario::C10k);
        c.conns = 40;
        c.server_pid = Some(std::process::id());
        let r = run(Scenario::C10k, &c).unwrap();
        assert!(r.is_clean(), "{r}");
        let k = r.c10k.expect("c10k stats");
        assert_eq!(k.opened, 40);
        assert_eq!(k.served, 40);
        assert!(k.rss_before_kib.is_some() && k.rss_after_line_kib.is_some());
        assert!(k.rss_per_idle_conn_bytes.is_some());
    }

    #[test]
    fn bigline_is_clean() {
        let srv = TestServer::start(None);
        let mut c = cfg(srv.addr, Scenario::BigLine);
        c.conns = 2;
        c.depth = 2;
        c.line_bytes = 100_000;
        let r = run(Scenario::BigLine, &c).unwrap();
        assert!(r.is_clean(), "{r}");
        assert!(r.lines_answered > 0);
    }

    #[test]
    fn corrupted_replies_are_counted_and_connections_replaced() {
        let srv = TestServer::start(Some(5));
        let r = run(Scenario::Pipeline, &cfg(srv.addr, Scenario::Pipeline)).unwrap();
        assert!(r.errors.mismatch >= 4, "{r}");
        assert!(r.first_error.as_deref().unwrap().contains("differs"), "{r}");
        // Reopened connections keep going.
        assert!(r.conns_opened > 4, "{r}");
        assert!(!r.is_clean());
    }

    #[test]
    fn unreachable_server_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = cfg(SocketAddr::from(([127, 0, 0, 1], port)), Scenario::Pipeline);
        assert!(matches!(
            run(Scenario::Pipeline, &c),
            Err(LoadgenError::Connect(..))
        ));
    }

    #[test]
    fn bad_config_is_rejected() {
        let c = Config {
            conns: 0,
            ..Config::default()
        };
        assert!(matches!(
            run(Scenario::Pipeline, &c),
            Err(LoadgenError::Config(_))
        ));
    }
}
