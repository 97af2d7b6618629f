//! `credit-sim`: runs the deterministic simulator over many seeds, or
//! replays one.
//!
//! ```text
//! credit-sim --seeds 100000 --jobs 2              # explore echo and chat
//! credit-sim --service echo --bug fin --seeds 500 # find a planted bug
//! credit-sim --service chat --seed 42 --trace sim-42.trace   # replay one
//! ```
//!
//! Exploring keeps going past failures and collects them; it prints seeds
//! per second, how many seeds failed, the first failing seed (how many
//! seeds it took to find a failure), and for each failure listed its
//! first violation and the command that replays it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use credit_actors::sim::Bug;
use credit_sim::{replay_command, run, Options, Service};

/// The deterministic simulator of the echo and chat services.
#[derive(Debug, Parser)]
#[command(name = "credit-sim", version)]
struct Cli {
    /// The service to simulate: echo, chat, or all (each seed runs both).
    #[arg(long, default_value = "all")]
    service: String,
    /// Seeds to explore.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Threads, each with its own simulation.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Plant a known bug: credit, fin or monitor (repeatable).
    #[arg(long = "bug")]
    bugs: Vec<Bug>,
    /// Replay one seed (and print its settings and violations).
    #[arg(long, conflicts_with_all = ["seeds", "from", "jobs"])]
    seed: Option<u64>,
    /// With --seed: write the run's event trace here (read it with
    /// trace-report, or open it in Perfetto through `trace-report --chrome`).
    #[arg(long, requires = "seed")]
    trace: Option<std::path::PathBuf>,
    /// Failures to list in full (all are counted).
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// Stop at the first failure.
    #[arg(long)]
    stop_at_first: bool,
}

fn services(s: &str) -> Result<Vec<Service>, String> {
    if s == "all" {
        return Ok(vec![Service::Echo, Service::Chat]);
    }
    Ok(vec![s.parse()?])
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let services = match services(&cli.service) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("credit-sim: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.seed {
        Some(seed) => replay(&cli, &services, seed),
        None => explore(&cli, &services),
    }
}

fn replay(cli: &Cli, services: &[Service], seed: u64) -> ExitCode {
    let mut failed = false;
    for &service in services {
        let options = Options {
            service,
            bugs: cli.bugs.clone(),
        };
        let o = run(seed, &options);
        println!("seed {seed} ({}): {}", service.name(), o.setting);
        println!(
            "  {} turns, {:.3} ms of virtual time, {} lines received, trace {} bytes",
            o.turns,
            o.virtual_time.as_secs_f64() * 1e3,
            o.lines,
            o.trace.len()
        );
        for c in &o.clients {
            println!("  {c}");
        }
        if let Some(path) = &cli.trace {
            let path = if services.len() > 1 {
                path.with_extension(format!("{}.trace", service.name()))
            } else {
                path.clone()
            };
            if let Err(e) = std::fs::write(&path, &o.trace) {
                eprintln!("credit-sim: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            println!("  trace written to {}", path.display());
        }
        if o.passed() {
            println!("  every invariant held");
        } else {
            failed = true;
            for v in &o.violations {
                println!("  VIOLATION: {v}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A policy's kind, for the per-policy tally (3: unknown, the run
/// panicked).
fn kind(p: Option<credit_actors::Policy>) -> usize {
    match p {
        Some(credit_actors::Policy::Fifo) => 0,
        Some(credit_actors::Policy::ReceiverNext) => 1,
        Some(credit_actors::Policy::Random(_)) => 2,
        None => 3,
    }
}

const KINDS: [&str; 4] = ["fifo", "receiver-next", "random", "panicked"];

/// A failing seed, with its first violation.
#[derive(Debug)]
struct Failure {
    seed: u64,
    service: Service,
    first: String,
    count: usize,
}

fn explore(cli: &Cli, services: &[Service]) -> ExitCode {
    let jobs = cli.jobs.max(1);
    let failures = Mutex::new(Vec::new());
    // Runs and failing runs per policy kind.
    let tally = Mutex::new([(0u64, 0u64); 4]);
    // The largest share of its bound the sockets' memory came to.
    let memory = Mutex::new(0.0f64);
    let finished = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for job in 0..jobs as u64 {
            let (failures, done, stop, tally, memory) = (&failures, &done, &stop, &tally, &memory);
            workers.push(s.spawn(move || {
                let mut i = job;
                while i < cli.seeds && !stop.load(Ordering::Relaxed) {
                    let seed = cli.from + i;
                    for &service in services {
                        let options = Options {
                            service,
                            bugs: cli.bugs.clone(),
                        };
                        let o = run(seed, &options);
                        {
                            let mut m = memory.lock().unwrap();
                            *m = m.max(o.memory_peak);
                            let mut t = tally.lock().unwrap();
                            t[kind(o.policy)].0 += 1;
                            t[kind(o.policy)].1 += u64::from(!o.passed());
                        }
                        if !o.passed() {
                            failures.lock().unwrap().push(Failure {
                                seed,
                                service,
                                first: o.violations[0].clone(),
                                count: o.violations.len(),
                            });
                            if cli.stop_at_first {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += jobs as u64;
                }
            }));
        }
        // Progress, once in a while, on stderr, until the workers end.
        let (finished_ref, done, failures) = (&finished, &done, &failures);
        s.spawn(move || {
            let finished = finished_ref;
            let mut last = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if last.elapsed().as_secs() >= 10 {
                    last = Instant::now();
                    eprintln!(
                        "credit-sim: {} of {} seeds, {} failed",
                        done.load(Ordering::Relaxed),
                        cli.seeds,
                        failures.lock().unwrap().len()
                    );
                }
            }
        });
        for w in workers {
            let _ = w.join();
        }
        finished_ref.store(true, Ordering::Relaxed);
    });
    let secs = began.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| (f.seed, f.service.name()));
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    println!(
        "{n} seeds ({}) from {} in {secs:.1} s on {jobs} threads: {:.0} seeds/s; {} failed",
        names.join(" and "),
        cli.from,
        n as f64 / secs,
        failures.len()
    );
    let tally = tally.into_inner().unwrap();
    let by_policy: Vec<String> = KINDS
        .iter()
        .zip(tally)
        .filter(|(k, (runs, _))| **k != "panicked" || *runs > 0)
        .map(|(k, (runs, failed))| format!("{k} {failed} of {runs}"))
        .collect();
    println!("failing runs by run-queue policy: {}", by_policy.join(", "));
    println!(
        "sockets' buffer memory at most {:.1} % of its bound",
        memory.into_inner().unwrap() * 100.0
    );
    if let Some(f) = failures.first() {
        println!(
            "first failing seed: {} ({} seeds in)",
            f.seed,
            f.seed - cli.from + 1
        );
    }
    for f in failures.iter().take(cli.show) {
        let options = Options {
            service: f.service,
            bugs: cli.bugs.clone(),
        };
        println!(
            "seed {} ({}): {} violation(s); first: {}",
            f.seed,
            f.service.name(),
            f.count,
            f.first
        );
        println!("  replay: {}", replay_command(f.seed, &options));
    }
    if failures.len() > cli.show {
        println!("... and {} more", failures.len() - cli.show);
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
