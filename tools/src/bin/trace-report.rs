//! Reads event traces written by `echo-server --trace FILE` (one file per
//! reactor: FILE, FILE.1, ...) and prints per-actor timelines, the
//! read-to-reply-write latency of each line inside the server, the ten
//! slowest actor runs, and lints; with `--chrome OUT.json` it also writes
//! the traces as Chrome trace events, which Perfetto and chrome://tracing
//! open.
//!
//! The format is written down in `tools/TRACE_FORMAT.md`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::process::ExitCode;

use credit_actors::reactor::trace::{parse_line, Line};
use credit_tools::{Analysis, Chrome, Thresholds};

const USAGE: &str = "usage: trace-report FILE... [--chrome OUT.json] [--actor ID]... \
[--slow-us N] [--stall-ms N]";

struct Args {
    files: Vec<String>,
    chrome: Option<String>,
    detail: Vec<String>,
    thresholds: Thresholds,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        files: Vec::new(),
        chrome: None,
        detail: Vec::new(),
        thresholds: Thresholds::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--chrome" => a.chrome = Some(value("--chrome")?),
            "--actor" => a.detail.push(value("--actor")?),
            "--slow-us" => {
                let v: u64 = value("--slow-us")?
                    .parse()
                    .map_err(|_| "--slow-us needs a number")?;
                a.thresholds.slow_run_ns = v * 1000;
            }
            "--stall-ms" => {
                let v: u64 = value("--stall-ms")?
                    .parse()
                    .map_err(|_| "--stall-ms needs a number")?;
                a.thresholds.stall_ns = v * 1_000_000;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            f if f.starts_with("--") => return Err(format!("unknown flag {f}")),
            f => a.files.push(f.to_string()),
        }
    }
    if a.files.is_empty() {
        return Err("no trace file".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trace-report: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let chrome = match &a.chrome {
        Some(path) => match File::create(path).and_then(|f| Chrome::new(BufWriter::new(f))) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("trace-report: {path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut an = Analysis::new(a.thresholds, chrome);
    let mut budgets = Vec::new();
    for path in &a.files {
        let read = File::open(path).and_then(|f| an.read_trace(BufReader::new(f)));
        match read {
            Ok(h) => budgets.push((h.reactor, h.budget)),
            Err(e) => {
                eprintln!("trace-report: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = an.finish() {
        eprintln!("trace-report: {}: {e}", a.chrome.as_deref().unwrap_or(""));
        return ExitCode::FAILURE;
    }

    println!(
        "{} events, {} reactor(s), {} actors, {} timers fired",
        an.events,
        budgets.len(),
        an.order.len(),
        an.timers
    );
    println!();
    println!("per-actor timelines (ms since trace start):");
    println!(
        "{:>12} {:<16} {:>10} {:>10} {:>8} {:>9} {:>10}  exit",
        "actor", "type", "spawned", "exited", "runs", "messages", "busy us"
    );
    for key in &an.order {
        let x = &an.actors[key];
        let (ex, why) = match &x.exited {
            Some((t, r)) => (format!("{:.3}", *t as f64 / 1e6), r.as_str()),
            None => ("-".into(), ""),
        };
        println!(
            "{:>12} {:<16} {:>10.3} {:>10} {:>8} {:>9} {:>10.1}  {}",
            format!("{}@{}", key.1, key.0),
            x.ty,
            x.spawned.unwrap_or(0) as f64 / 1e6,
            ex,
            x.runs,
            x.messages,
            x.busy_ns as f64 / 1e3,
            why
        );
    }
    if !a.detail.is_empty() {
        for path in &a.files {
            let Ok(f) = File::open(path) else { continue };
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(Line::Event(e)) = parse_line(&line) {
                    if a.detail.iter().any(|d| d == e.id) {
                        println!("  {path}: {line}");
                    }
                }
            }
        }
    }

    println!();
    let lat = &an.latencies;
    let q = |p: f64| lat.value_at_quantile(p) as f64 / 1e3;
    println!(
        "read-to-reply-write latency per line (us): n {} p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        lat.max() as f64 / 1e3
    );
    if an.truncated > 0 {
        println!(
            "{} trace(s) ended in a line cut short (a killed process?): skipped",
            an.truncated
        );
    }

    println!();
    println!("ten slowest runs:");
    for (ns, start, r, id, msgs) in &an.slowest {
        let ty = an
            .actors
            .get(&(*r, id.clone()))
            .map_or("?", |x| x.ty.as_str());
        println!(
            "  {:>9.1} us  {id}@{r} {ty} at {:.3} ms, {msgs} messages",
            *ns as f64 / 1e3,
            *start as f64 / 1e6
        );
    }

    println!();
    let lints = an.lints();
    println!("lints: {}", lints.len());
    for l in &lints {
        println!("  {l}");
    }
    if let Some(path) = &a.chrome {
        println!();
        println!("chrome trace: {path} (open in ui.perfetto.dev or chrome://tracing)");
    }
    ExitCode::SUCCESS
}
