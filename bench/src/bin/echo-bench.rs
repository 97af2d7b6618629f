//! `echo-bench`: load generator for echo-line servers (any server that answers
//! each line `L` with a fixed prefix and `L`: `You said: L\n` by default), for
//! chat servers (the `chat` scenario), and the plot of its records
//! (`echo-bench plot`). See `credit_bench::loadgen`.
//!
//! Exit status: 0 when the run counted no error, 1 when it counted any (or
//! could not run), 2 for bad command-line flags.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use credit_bench::loadgen::chat::ChatConfig;
use credit_bench::loadgen::flood::FloodConfig;
use credit_bench::loadgen::plot::{self, PlotOptions};
use credit_bench::loadgen::{self, hdr, record, Config, Interval, Scenario};
use hdrhistogram::Histogram;
use serde_json::Value;

/// Load generator for echo-line servers: every LF-terminated line L sent must
/// be answered with the prefix and L ("You said: L\n" unless --expect-prefix
/// says otherwise), in order. Every reply is verified byte for byte;
/// mismatches, resets, timeouts and unanswered lines are counted as errors.
#[derive(Parser, Debug)]
#[command(
    name = "echo-bench",
    version,
    after_help = "Defaults depend on the scenario: conns 50 (c10k 10000, chat 100), depth 64 \
(pingpong 1, bigline 2), line bytes 32 (bigline 65536).\n\
Exit status: 0 no errors, 1 errors counted or run impossible, 2 bad flags."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// CONNS connections each keep DEPTH lines in flight, new lines written
    /// (batched) as replies arrive. Reports lines/s and MB/s.
    Pipeline(RunArgs),
    /// CONNS connections with one line in flight each. Reports lines/s and
    /// round-trip latency. With --rate, an open loop: latency counts from
    /// each line's due time.
    Pingpong(RunArgs),
    /// WORKERS concurrent loops of: connect, send one line, read the reply,
    /// close. Reports connections/s and connect-to-reply latency.
    Churn(RunArgs),
    /// Open CONNS (default 10000) idle connections, then send one line on each
    /// and await all replies. Reports served count and, with --pid, the
    /// server's RSS per idle connection and per connection after a line.
    C10k(RunArgs),
    /// Pipeline with big lines: LINE_BYTES default 65536 (try 1048576), DEPTH
    /// default 2. Reports MB/s.
    Bigline(RunArgs),
    /// A chat server (default port 5999): CONNS users (default 100) in one
    /// room, SENDERS of them each saying one line every INTERVAL_MS (or
    /// RATE lines/s in all); every user checks every line and its order.
    /// Reports deliveries/s and the latency from each line's due time to
    /// its delivery (and, uncorrected, from its send).
    Chat(RunArgs),
    /// CONNS hostile connections (default 1000) write lines as fast as they
    /// can (FLOOD_BYTES each) and never read, for SECS, beside one client
    /// that sends a line and reads its reply again and again. Reports the
    /// good client's replies and, with --pid, the server's RSS before, at
    /// its peak, and AFTER seconds after the hostile connections leave.
    Flood(RunArgs),
    /// Draws the records of runs (--json FILE) as one SVG: the latency
    /// percentile spectrum, one curve per run, and throughput bars.
    Plot(PlotArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Server address (default 127.0.0.1:4096; chat 127.0.0.1:5999).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Chat: another server sharing the room (repeatable); users connect
    /// to --addr and these in turn.
    #[arg(long, value_name = "ADDR")]
    also_addr: Vec<SocketAddr>,
    /// Connections (pipeline, pingpong, bigline), idle connections (c10k),
    /// users (chat) or hostile connections (flood).
    #[arg(long)]
    conns: Option<usize>,
    /// Lines in flight per connection (pipeline, bigline; pingpong with
    /// --rate).
    #[arg(long)]
    depth: Option<usize>,
    /// Bytes per line, excluding the LF.
    #[arg(long)]
    line_bytes: Option<usize>,
    /// Measurement window in seconds (c10k: each phase is bounded by max(S, 10)).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Seconds of load before the window, excluded from every figure.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    warmup: f64,
    /// Lines per second in all, sent on a fixed schedule whatever the
    /// replies do (pipeline, pingpong, bigline, chat). Latency counts from
    /// each line's due time; the uncorrected figure is reported beside it.
    #[arg(long, value_name = "LINES_PER_SEC")]
    rate: Option<f64>,
    /// Generator threads, one event loop each, sharing the connections and
    /// the rate (not c10k, chat or flood).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Percentiles the table shows (records carry these and a fixed set).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50,90,99,99.9,99.99",
        value_name = "LIST"
    )]
    percentiles: Vec<f64>,
    /// What each reply starts with before the line ("" for a plain echo).
    #[arg(long, default_value = DEFAULT_PREFIX, value_name = "TEXT")]
    expect_prefix: String,
    /// Begin every connection with a PROXY v2 header naming its own
    /// addresses, as HAProxy's send-proxy-v2 does.
    #[arg(long)]
    proxy_v2: bool,
    /// Concurrent churn workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Server process id, to sample its RSS (c10k, chat, flood).
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
    #[arg(long, conflicts_with = "rate")]
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
    /// The run's name in records and plots (default: scenario and address).
    #[arg(long)]
    label: Option<String>,
    /// Print the record as one JSON object instead of the table; with FILE,
    /// append it to FILE (JSON Lines) and print the table.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    json: Option<Option<PathBuf>>,
    /// Append the record to FILE as a CSV row (a header first if new).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write the latency histogram to FILE as an HdrHistogram percentile
    /// distribution (.hgrm, milliseconds), as wrk2 -L prints it.
    #[arg(long, value_name = "FILE")]
    hdr_out: Option<PathBuf>,
    /// Write the window's latency histograms, one per second, to FILE as an
    /// HdrHistogram interval log (.hlog).
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
    /// No progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// Files of records written with --json FILE (one record per line).
    #[arg(required = true, value_name = "RUN.json")]
    inputs: Vec<PathBuf>,
    /// The SVG to write.
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    output: PathBuf,
    /// A title above the plot.
    #[arg(long)]
    title: Option<String>,
    /// Also draw each fixed-rate run's uncorrected latency, dashed.
    #[arg(long)]
    uncorrected: bool,
}

/// `--expect-prefix`'s default: what our servers answer.
const DEFAULT_PREFIX: &str = "You said: ";

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what} must be a positive number of seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (scenario, args) = match cli.command {
        Command::Plot(p) => return plot(&p),
        Command::Pipeline(a) => (Some(Scenario::Pipeline), a),
        Command::Pingpong(a) => (Some(Scenario::PingPong), a),
        Command::Churn(a) => (Some(Scenario::Churn), a),
        Command::C10k(a) => (Some(Scenario::C10k), a),
        Command::Bigline(a) => (Some(Scenario::BigLine), a),
        Command::Chat(a) => return chat(&a),
        Command::Flood(a) => return flood(&a),
    };
    let scenario = scenario.expect("an echo scenario");
    if let Err(e) = refuse(
        &scenario.to_string(),
        &[
            ("--senders", args.senders.is_some()),
            ("--interval-ms", args.interval_ms.is_some()),
            ("--silent", args.silent > 0),
            ("--also-addr", !args.also_addr.is_empty()),
            ("--warmup", scenario == Scenario::C10k && args.warmup > 0.0),
            (
                "--depth (without --rate)",
                scenario == Scenario::PingPong && args.rate.is_none() && args.depth.is_some(),
            ),
        ],
    ) {
        return bad_flags(&e);
    }
    let cfg = match echo_config(scenario, &args) {
        Ok(c) => c,
        Err(e) => return bad_flags(&e),
    };
    if args.hdr_out.is_some() || args.hdr_log.is_some() {
        let measured = matches!(scenario, Scenario::PingPong | Scenario::Churn)
            || cfg.rate.is_some()
            || (scenario == Scenario::BigLine && cfg.depth == 1);
        if !measured {
            return bad_flags(&format!(
                "{scenario} measures no latency: --hdr-out and --hdr-log need pingpong, churn, chat or --rate"
            ));
        }
    }
    match loadgen::run(scenario, &cfg) {
        Err(loadgen::LoadgenError::Config(e)) => bad_flags(&e),
        result => finish(result, &args),
    }
}

/// The echo scenarios' configuration from the flags.
fn echo_config(scenario: Scenario, a: &RunArgs) -> Result<Config, String> {
    let mut cfg = Config::for_scenario(scenario);
    if let Some(addr) = a.addr {
        cfg.addr = addr;
    }
    if let Some(c) = a.conns {
        cfg.conns = c;
    }
    if let Some(d) = a.depth {
        cfg.depth = d;
    }
    if let Some(b) = a.line_bytes {
        cfg.line_bytes = b;
    }
    cfg.workers = a.workers;
    cfg.server_pid = a.pid;
    cfg.source_ips = a.source_ips.clone();
    cfg.progress = progress(a);
    cfg.duration = secs(a.secs, "--secs")?;
    cfg.connect_timeout = secs(a.connect_timeout, "--connect-timeout")?;
    cfg.warmup = warmup(a)?;
    cfg.rate = a.rate;
    cfg.threads = a.threads;
    cfg.expect_prefix = a.expect_prefix.as_bytes().to_vec();
    cfg.proxy_v2 = a.proxy_v2;
    cfg.interval_log = a.hdr_log.is_some();
    cfg.label = a.label.clone().unwrap_or_default();
    check_percentiles(&a.percentiles)?;
    Ok(cfg)
}

fn warmup(a: &RunArgs) -> Result<Duration, String> {
    Duration::try_from_secs_f64(a.warmup)
        .map_err(|_| "--warmup must be zero or a positive number of seconds".to_string())
}

fn check_percentiles(p: &[f64]) -> Result<(), String> {
    match p.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        Some(bad) => Err(format!("--percentiles: {bad} is not between 0 and 100")),
        None => Ok(()),
    }
}

/// A progress bar unless asked not to, and only on a terminal.
fn progress(a: &RunArgs) -> bool {
    !a.no_progress && std::io::stderr().is_terminal()
}

fn bad_flags(e: &str) -> ExitCode {
    eprintln!("echo-bench: {e}");
    ExitCode::from(2)
}

/// Flags that only some scenarios take.
fn refuse(scenario: &str, what: &[(&str, bool)]) -> Result<(), String> {
    match what.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(format!("{flag} does not apply to {scenario}")),
        None => Ok(()),
    }
}

/// The flood scenario.
fn flood(a: &RunArgs) -> ExitCode {
    if let Err(e) = refuse(
        "flood",
        &[
            ("--rate", a.rate.is_some()),
            ("--warmup", a.warmup > 0.0),
            ("--threads", a.threads > 1),
            ("--hdr-out", a.hdr_out.is_some()),
            ("--hdr-log", a.hdr_log.is_some()),
            ("--proxy-v2", a.proxy_v2),
            ("--expect-prefix", a.expect_prefix != DEFAULT_PREFIX),
            ("--label", a.label.is_some()),
            ("--depth", a.depth.is_some()),
        ],
    ) {
        return bad_flags(&e);
    }
    let window = match secs(a.secs, "--secs") {
        Ok(w) => w,
        Err(e) => return bad_flags(&e),
    };
    let mut cfg = FloodConfig {
        duration: window,
        progress: progress(a),
        server_pid: a.pid,
        bytes_per_conn: a.flood_bytes,
        after: Duration::try_from_secs_f64(a.after).unwrap_or_default(),
        ..FloodConfig::default()
    };
    if let Some(addr) = a.addr {
        cfg.addr = addr;
    }
    if let Some(n) = a.conns {
        cfg.conns = n;
    }
    if let Some(b) = a.line_bytes {
        cfg.line_bytes = b.max(1);
    }
    finish(loadgen::flood::run(&cfg), a)
}

/// The chat scenario.
fn chat(a: &RunArgs) -> ExitCode {
    if let Err(e) = refuse(
        "chat",
        &[
            ("--threads", a.threads > 1),
            ("--proxy-v2", a.proxy_v2),
            ("--depth", a.depth.is_some()),
            ("--expect-prefix", a.expect_prefix != DEFAULT_PREFIX),
        ],
    ) {
        return bad_flags(&e);
    }
    let built = (|| -> Result<ChatConfig, String> {
        let mut cfg = ChatConfig {
            duration: secs(a.secs, "--secs")?,
            connect_timeout: secs(a.connect_timeout, "--connect-timeout")?,
            warmup: warmup(a)?,
            progress: progress(a),
            server_pid: a.pid,
            silent: a.silent,
            interval_log: a.hdr_log.is_some(),
            label: a.label.clone().unwrap_or_default(),
            ..ChatConfig::default()
        };
        if let Some(addr) = a.addr {
            cfg.addr = addr;
        }
        cfg.also = a.also_addr.clone();
        if let Some(n) = a.conns {
            cfg.users = n;
        }
        if let Some(m) = a.senders {
            cfg.senders = m;
        }
        if let Some(b) = a.line_bytes {
            cfg.line_bytes = b;
        }
        if let Some(ms) = a.interval_ms {
            cfg.interval = secs(ms / 1e3, "--interval-ms")?;
        }
        if let Some(rate) = a.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number".into());
            }
            // Each sender keeps one line every `senders / rate` seconds.
            cfg.interval = secs(cfg.senders as f64 / rate, "--rate")?;
            cfg.rate = Some(rate);
        }
        check_percentiles(&a.percentiles)?;
        Ok(cfg)
    })();
    match built {
        Ok(cfg) => finish(loadgen::chat::run(&cfg), a),
        Err(e) => bad_flags(&e),
    }
}

/// Draws records as one SVG.
fn plot(p: &PlotArgs) -> ExitCode {
    let opts = PlotOptions {
        title: p.title.clone(),
        uncorrected: p.uncorrected,
        ..PlotOptions::default()
    };
    match plot::plot_files(&p.inputs, &p.output, &opts) {
        Ok(s) => {
            eprintln!(
                "echo-bench: wrote {} ({} runs, {} curves)",
                p.output.display(),
                s.runs,
                s.curves
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo-bench: plot: {e}");
            ExitCode::from(1)
        }
    }
}

/// What every scenario's report offers.
trait Outcome {
    fn table(&self, percentiles: &[f64]) -> String;
    fn record(&self, percentiles: &[f64]) -> Value;
    fn warnings(&self) -> Vec<String>;
    fn histogram(&self) -> Option<&Histogram<u64>>;
    fn intervals(&self) -> &[Interval];
    fn clean(&self) -> bool;
}

/// The echo and chat reports offer the same, under the same names.
macro_rules! outcome {
    ($report:ty) => {
        impl Outcome for $report {
            fn table(&self, percentiles: &[f64]) -> String {
                self.table(percentiles).to_string()
            }
            fn record(&self, percentiles: &[f64]) -> Value {
                self.to_record(percentiles)
            }
            fn warnings(&self) -> Vec<String> {
                self.warnings()
            }
            fn histogram(&self) -> Option<&Histogram<u64>> {
                self.histogram.as_ref()
            }
            fn intervals(&self) -> &[Interval] {
                &self.intervals
            }
            fn clean(&self) -> bool {
                self.is_clean()
            }
        }
    };
}

outcome!(loadgen::Report);
outcome!(loadgen::chat::ChatReport);

impl Outcome for loadgen::flood::FloodReport {
    fn table(&self, _: &[f64]) -> String {
        self.to_string()
    }
    fn record(&self, _: &[f64]) -> Value {
        serde_json::from_str(&self.to_json()).expect("the flood report is JSON")
    }
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    fn histogram(&self) -> Option<&Histogram<u64>> {
        None
    }
    fn intervals(&self) -> &[Interval] {
        &[]
    }
    fn clean(&self) -> bool {
        self.is_clean()
    }
}

/// Prints a run's report (JSON or the table), writes the files asked for,
/// and gives the exit status: 0 if it counted no error, 1 if it did or
/// could not run (or a file could not be written).
fn finish<R: Outcome, E: std::fmt::Display>(result: Result<R, E>, a: &RunArgs) -> ExitCode {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo-bench: {e}");
            return ExitCode::from(1);
        }
    };
    for w in report.warnings() {
        eprintln!("echo-bench: warning: {w}");
    }
    let record = report.record(&a.percentiles);
    match &a.json {
        Some(None) => println!("{record}"),
        _ => print!("{}", report.table(&a.percentiles)),
    }
    let written = write_files(&report, &record, a);
    if let Err(e) = &written {
        eprintln!("echo-bench: {e}");
    }
    if report.clean() && written.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn write_files<R: Outcome>(report: &R, record: &Value, a: &RunArgs) -> Result<(), String> {
    let at = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if let Some(Some(path)) = &a.json {
        record::append_json(path, record).map_err(|e| at(path, e))?;
    }
    if let Some(path) = &a.csv {
        record::append_csv(path, record).map_err(|e| at(path, e))?;
    }
    if let Some(path) = &a.hdr_out {
        let Some(h) = report.histogram() else {
            return Err(format!("{}: no latency was measured", path.display()));
        };
        let f = std::fs::File::create(path).map_err(|e| at(path, e))?;
        hdr::write_hgrm(h, std::io::BufWriter::new(f)).map_err(|e| at(path, e))?;
    }
    if let Some(path) = &a.hdr_log {
        let started = SystemTime::now()
            - report
                .intervals()
                .last()
                .map_or(Duration::ZERO, |i| i.start + i.length);
        let mut log = hdr::IntervalLog::create(path, started).map_err(|e| at(path, e))?;
        for i in report.intervals() {
            log.write(i.start, i.length, &i.histogram)
                .map_err(|e| at(path, e))?;
        }
        log.finish().map_err(|e| at(path, e))?;
    }
    Ok(())
}
