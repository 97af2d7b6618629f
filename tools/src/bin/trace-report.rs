//! Reads an event trace written by `echo-server --trace FILE` and prints
//! per-actor timelines, the read-to-reply-write latency of each line inside
//! the server, and the ten slowest actor runs.
//!
//! Usage: `trace-report FILE [--actor ID]...` (an ID as printed, e.g.
//! `<3.0>`, prints that actor's full timeline). The format is written down
//! in `tools/TRACE_FORMAT.md`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::ExitCode;

#[derive(Default)]
struct ActorInfo {
    ty: String,
    spawned: Option<u64>,
    exited: Option<(u64, String)>,
    runs: u64,
    messages: u64,
    busy_ns: u64,
    queued: u64,
    begin: Option<u64>,
}

#[derive(Default)]
struct ConnInfo {
    /// Time of the last read.
    last_read: u64,
    /// Read times of units delivered and not yet answered.
    delivered: VecDeque<u64>,
    /// Read times of lines whose reply is queued and not yet written.
    queued: VecDeque<u64>,
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: trace-report FILE [--actor ID]...");
        return ExitCode::from(2);
    };
    let mut detail: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--actor", Some(id)) => detail.push(id),
            _ => {
                eprintln!("usage: trace-report FILE [--actor ID]...");
                return ExitCode::from(2);
            }
        }
    }
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("trace-report: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut actors: HashMap<String, ActorInfo> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut conns: HashMap<String, ConnInfo> = HashMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let mut runs: Vec<(u64, u64, String, u64)> = Vec::new(); // (ns, start, id, msgs)
    let mut timelines: HashMap<String, Vec<String>> = HashMap::new();
    let mut events = 0u64;
    let mut timers = 0u64;
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let mut f = line.splitn(4, ' ');
        let (Some(t), Some(kind)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(t) = t.parse::<u64>() else { continue };
        events += 1;
        let id = f.next().unwrap_or("").to_string();
        let rest = f.next().unwrap_or("");
        if detail.contains(&id) {
            timelines.entry(id.clone()).or_default().push(line.clone());
        }
        match kind {
            "S" => {
                order.push(id.clone());
                let a = actors.entry(id).or_default();
                *a = ActorInfo {
                    ty: rest.rsplit("::").next().unwrap_or(rest).to_string(),
                    spawned: Some(t),
                    ..ActorInfo::default()
                };
            }
            "X" => actors.entry(id).or_default().exited = Some((t, rest.to_string())),
            "Q" => actors.entry(id).or_default().queued += 1,
            "B" => actors.entry(id).or_default().begin = Some(t),
            "E" => {
                let msgs = rest.parse().unwrap_or(0);
                let a = actors.entry(id.clone()).or_default();
                if let Some(b) = a.begin.take() {
                    a.runs += 1;
                    a.messages += msgs;
                    a.busy_ns += t - b;
                    runs.push((t - b, b, id, msgs));
                }
            }
            "T" => timers += 1,
            "R" => conns.entry(id).or_default().last_read = t,
            "U" => {
                let c = conns.entry(id).or_default();
                let r = c.last_read;
                c.delivered.push_back(r);
            }
            "O" => {
                let c = conns.entry(id).or_default();
                if let Some(r) = c.delivered.pop_front() {
                    c.queued.push_back(r);
                }
            }
            "W" => {
                let c = conns.entry(id).or_default();
                for r in c.queued.drain(..) {
                    latencies.push(t.saturating_sub(r));
                }
            }
            _ => {}
        }
    }

    println!(
        "{events} events, {} actors, {timers} timers fired",
        order.len()
    );
    println!();
    println!("per-actor timelines (ms since trace start):");
    println!(
        "{:>10} {:<16} {:>10} {:>10} {:>8} {:>9} {:>10}  exit",
        "actor", "type", "spawned", "exited", "runs", "messages", "busy us"
    );
    for id in &order {
        let a = &actors[id];
        let (ex, why) = match &a.exited {
            Some((t, r)) => (format!("{:.3}", *t as f64 / 1e6), r.as_str()),
            None => ("-".into(), ""),
        };
        println!(
            "{:>10} {:<16} {:>10.3} {:>10} {:>8} {:>9} {:>10.1}  {}",
            id,
            a.ty,
            a.spawned.unwrap_or(0) as f64 / 1e6,
            ex,
            a.runs,
            a.messages,
            a.busy_ns as f64 / 1e3,
            why
        );
    }
    for (id, lines) in &timelines {
        println!();
        println!("timeline of {id}:");
        for l in lines {
            println!("  {l}");
        }
    }

    println!();
    latencies.sort_unstable();
    println!(
        "read-to-reply-write latency per line (us): n {} p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        latencies.len(),
        pct(&latencies, 50.0) as f64 / 1e3,
        pct(&latencies, 90.0) as f64 / 1e3,
        pct(&latencies, 99.0) as f64 / 1e3,
        latencies.last().copied().unwrap_or(0) as f64 / 1e3
    );

    println!();
    println!("ten slowest runs:");
    runs.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    for (ns, start, id, msgs) in runs.iter().take(10) {
        let ty = actors.get(id).map_or("?", |a| a.ty.as_str());
        println!(
            "  {:>9.1} us  {id} {ty} at {:.3} ms, {msgs} messages",
            *ns as f64 / 1e3,
            *start as f64 / 1e6
        );
    }
    ExitCode::SUCCESS
}
