//! `echo-bench`: load generator for echo-line servers (any server that answers
//! each line `L` with `You said: L\n`), and for chat servers (the `chat`
//! scenario). See `credit_bench::loadgen`.
//!
//! Exit status: 0 when the run counted no error, 1 when it counted any (or
//! could not run), 2 for bad command-line flags.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use credit_bench::loadgen::chat::ChatConfig;
use credit_bench::loadgen::flood::FloodConfig;
use credit_bench::loadgen::{self, Config, Scenario};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScenarioArg {
    /// CONNS connections each keep DEPTH lines in flight, new lines written
    /// (batched) as replies arrive. Reports lines/s and MB/s.
    Pipeline,
    /// CONNS connections with one line in flight each. Reports lines/s and
    /// round-trip latency p50/p99/p99.9/max.
    Pingpong,
    /// WORKERS concurrent loops of: connect, send one line, read the reply,
    /// close. Reports connections/s and connect-to-reply latency.
    Churn,
    /// Open CONNS (default 10000) idle connections, then send one line on each
    /// and await all replies. Reports served count and, with --pid, the
    /// server's RSS per idle connection and per connection after a line.
    C10k,
    /// Pipeline with big lines: LINE_BYTES default 65536 (try 1048576), DEPTH
    /// default 2. Reports MB/s.
    Bigline,
    /// A chat server (default port 5999): CONNS users (default 100) in one
    /// room, SENDERS of them each saying one line every INTERVAL_MS; every
    /// user checks every line and its order. Reports deliveries/s and the
    /// send-to-delivery latency p50/p99/max.
    Chat,
    /// CONNS hostile connections (default 1000) write lines as fast as they
    /// can (FLOOD_BYTES each) and never read, for SECS, beside one client
    /// that sends a line and reads its reply again and again. Reports the
    /// good client's replies and, with --pid, the server's RSS before, at
    /// its peak, and AFTER seconds after the hostile connections leave.
    Flood,
}

impl ScenarioArg {
    /// The echo scenario; `None` for chat.
    fn echo(self) -> Option<Scenario> {
        match self {
            ScenarioArg::Pipeline => Some(Scenario::Pipeline),
            ScenarioArg::Pingpong => Some(Scenario::PingPong),
            ScenarioArg::Churn => Some(Scenario::Churn),
            ScenarioArg::C10k => Some(Scenario::C10k),
            ScenarioArg::Bigline => Some(Scenario::BigLine),
            ScenarioArg::Chat | ScenarioArg::Flood => None,
        }
    }
}

/// Load generator for echo-line servers: every LF-terminated line L sent must
/// be answered with "You said: L\n", in order. Every reply is verified byte for
/// byte; mismatches, resets, timeouts and unanswered lines are counted as
/// errors. Runs single-threaded (one core).
#[derive(Parser, Debug)]
#[command(
    name = "echo-bench",
    version,
    after_help = "Defaults depend on the scenario: conns 50 (c10k 10000), depth 64 \
(pingpong 1, bigline 2), line bytes 32 (bigline 65536).\n\
Exit status: 0 no errors, 1 errors counted or run impossible, 2 bad flags."
)]
struct Cli {
    /// Load pattern to run.
    #[arg(value_enum)]
    scenario: ScenarioArg,
    /// Server address (default 127.0.0.1:4096; chat 127.0.0.1:5999).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Chat: another server sharing the room (repeatable); users connect
    /// to --addr and these in turn.
    #[arg(long, value_name = "ADDR")]
    also_addr: Vec<SocketAddr>,
    /// Connections (pipeline, pingpong, bigline) or idle connections (c10k).
    #[arg(long)]
    conns: Option<usize>,
    /// Lines in flight per connection (pipeline, bigline).
    #[arg(long)]
    depth: Option<usize>,
    /// Bytes per line, excluding the LF.
    #[arg(long)]
    line_bytes: Option<usize>,
    /// Measurement window in seconds (c10k: each phase is bounded by max(S, 10)).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Concurrent churn workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Server process id, to sample its RSS (c10k, chat).
    #[arg(long)]
    pid: Option<u32>,
    /// Local source addresses to spread connections over, comma-separated
    /// (c10k picks 127.0.0.x itself when one address is not enough).
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Connect timeout in seconds.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Users who speak (chat; default 10).
    #[arg(long)]
    senders: Option<usize>,
    /// Milliseconds between two lines of one sender (chat; default 10).
    #[arg(long)]
    interval_ms: Option<f64>,
    /// Users who stop reading once joined (chat): the server should drop
    /// them as too slow while the others go on.
    #[arg(long, default_value_t = 0)]
    silent: usize,
    /// Bytes each hostile connection writes (flood).
    #[arg(long, default_value_t = 1 << 20)]
    flood_bytes: usize,
    /// Seconds to watch the server's RSS once the hostile connections
    /// have left (flood).
    #[arg(long, default_value_t = 10.0)]
    after: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    no_progress: bool,
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what} must be a positive number of seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (window, connect) = match (
        secs(cli.secs, "--secs"),
        secs(cli.connect_timeout, "--connect-timeout"),
    ) {
        (Ok(d), Ok(c)) => (d, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("echo-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(scenario) = cli.scenario.echo() else {
        return match cli.scenario {
            ScenarioArg::Flood => flood(&cli, window),
            _ => chat(&cli, window, connect),
        };
    };
    let mut cfg = Config::for_scenario(scenario);
    if let Some(a) = cli.addr {
        cfg.addr = a;
    }
    if let Some(c) = cli.conns {
        cfg.conns = c;
    }
    if let Some(d) = cli.depth {
        cfg.depth = d;
    }
    if let Some(b) = cli.line_bytes {
        cfg.line_bytes = b;
    }
    cfg.workers = cli.workers;
    cfg.server_pid = cli.pid;
    cfg.source_ips = cli.source_ips;
    cfg.progress = !cli.no_progress;
    cfg.duration = window;
    cfg.connect_timeout = connect;
    finish(loadgen::run(scenario, &cfg), cli.json)
}

/// The flood scenario.
fn flood(cli: &Cli, window: Duration) -> ExitCode {
    let mut cfg = FloodConfig {
        duration: window,
        progress: !cli.no_progress,
        server_pid: cli.pid,
        bytes_per_conn: cli.flood_bytes,
        after: Duration::try_from_secs_f64(cli.after).unwrap_or_default(),
        ..FloodConfig::default()
    };
    if let Some(a) = cli.addr {
        cfg.addr = a;
    }
    if let Some(n) = cli.conns {
        cfg.conns = n;
    }
    if let Some(b) = cli.line_bytes {
        cfg.line_bytes = b.max(1);
    }
    finish(loadgen::flood::run(&cfg), cli.json)
}

/// The chat scenario.
fn chat(cli: &Cli, window: Duration, connect: Duration) -> ExitCode {
    let mut cfg = ChatConfig {
        duration: window,
        connect_timeout: connect,
        progress: !cli.no_progress,
        server_pid: cli.pid,
        silent: cli.silent,
        ..ChatConfig::default()
    };
    if let Some(a) = cli.addr {
        cfg.addr = a;
    }
    cfg.also = cli.also_addr.clone();
    if let Some(n) = cli.conns {
        cfg.users = n;
    }
    if let Some(m) = cli.senders {
        cfg.senders = m;
    }
    if let Some(b) = cli.line_bytes {
        cfg.line_bytes = b;
    }
    if let Some(ms) = cli.interval_ms {
        match secs(ms / 1e3, "--interval-ms") {
            Ok(d) => cfg.interval = d,
            Err(e) => {
                eprintln!("echo-bench: {e}");
                return ExitCode::from(2);
            }
        }
    }
    finish(loadgen::chat::run(&cfg), cli.json)
}

/// What every scenario's report offers.
trait Outcome: std::fmt::Display {
    fn json(&self) -> String;
    fn clean(&self) -> bool;
}

impl Outcome for loadgen::Report {
    fn json(&self) -> String {
        self.to_json()
    }
    fn clean(&self) -> bool {
        self.is_clean()
    }
}

impl Outcome for loadgen::chat::ChatReport {
    fn json(&self) -> String {
        self.to_json()
    }
    fn clean(&self) -> bool {
        self.is_clean()
    }
}

impl Outcome for loadgen::flood::FloodReport {
    fn json(&self) -> String {
        self.to_json()
    }
    fn clean(&self) -> bool {
        self.is_clean()
    }
}

/// Prints a run's report (JSON or the table) and gives the exit status:
/// 0 if it counted no error, 1 if it did or could not run.
fn finish<R: Outcome, E: std::fmt::Display>(result: Result<R, E>, json: bool) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                println!("{}", report.json());
            } else {
                print!("{report}");
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("echo-bench: {e}");
            ExitCode::from(1)
        }
    }
}
