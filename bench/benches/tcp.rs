//! TCP benchmark of echo-line servers: ours (`echo-server`) against two
//! baselines, a raw-mio server (`src/bin/raw-mio-echo.rs`, the performance
//! floor) and a tokio current-thread server (`src/bin/tokio-echo.rs`).
//!
//! Run with `cargo bench --bench tcp`. It
//!
//! 1. builds the servers (`cargo build --release --bin echo-server --bin
//!    raw-mio-echo --bin tokio-echo`; a server whose binary cannot be built
//!    is skipped with a message);
//! 2. for every scenario and every round, starts each server in turn as a fresh
//!    child process on a free loopback port, waits until it accepts
//!    connections, runs `credit_bench::loadgen` against it on this thread, and
//!    stops it (round-robin, the starting server rotating from round to
//!    round, so slow drifts of the machine hit every server alike);
//! 3. prints one table with the median over rounds per server, the ratios of
//!    ours to each baseline, and the errors counted per server;
//! 4. writes the table as Markdown (`target/tcp-bench/results.md`), the
//!    servers' records (`runs.json`: the ping-pong latency of every round
//!    merged, throughput from the pipeline case) and their plot
//!    (`latency.svg`: the percentile spectrum, one curve per server, and
//!    throughput bars), as `echo-bench plot` draws it.
//!
//! With at least 2 CPUs the servers are pinned to CPU 0 and the load generator
//! thread to CPU 1 (`sched_setaffinity`). On a 2-core machine that keeps the
//! server and the load generator off each other's core, but nothing else is
//! isolated: kernel work (softirqs of loopback TCP), other processes and the
//! hypervisor still share both cores, so expect noise of several percent.
//!
//! Environment:
//! * `TCP_BENCH_SECS` (default 3): seconds per measured run;
//! * `TCP_BENCH_ROUNDS` (default 3): rounds per scenario;
//! * `TCP_BENCH_ONLY` (default all): comma-separated subset of `pipeline`,
//!   `pingpong` (= `pingpong1,pingpong50`), `pingpong1`, `pingpong50`, `churn`,
//!   `c10k`, `bigline`;
//! * `TCP_BENCH_SERVERS` (default `ours,raw,tokio`): servers to run;
//! * `TCP_BENCH_C10K_CONNS` (default 10000): connections of the c10k case;
//! * `TCP_BENCH_NO_BUILD=1`: use the binaries already in `target/release`;
//! * `TCP_BENCH_OUT` (default `target/tcp-bench`): where the Markdown, the
//!   records and the plot go.
//!
//! Cases: pipeline 50 conns x depth 64 x 32-byte lines; pingpong with 1 and
//! with 50 conns; churn with 8 workers; c10k with 10 000 conns (server RSS via
//! its pid); bigline with 64 KiB lines, 8 conns x depth 2.
//! Default total time is about 3-4 minutes plus the build.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credit_bench::loadgen::{self, Config, Report, Scenario};

// ------------------------------------------------------------------ servers

#[derive(Clone)]
struct Server {
    key: &'static str,
    label: &'static str,
    path: PathBuf,
    extra_args: &'static [&'static str],
    available: Result<(), String>,
}

/// A running server child; killed (and reaped) on drop, also during a panic.
struct ServerGuard {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0, ...) affects the
    // calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts a server on a free port; retries twice with another port in case
/// somebody else grabbed the port between our probe and the server's bind.
fn start_server(s: &Server, pin: Option<usize>) -> Result<ServerGuard, String> {
    let mut last = String::new();
    for _ in 0..3 {
        match start_server_once(s, pin) {
            Ok(g) => return Ok(g),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn start_server_once(s: &Server, pin: Option<usize>) -> Result<ServerGuard, String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(&s.path);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(s.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(cpu) = pin {
        // SAFETY: only async-signal-safe work (one syscall) between fork and exec.
        unsafe {
            cmd.pre_exec(move || pin_to(cpu));
        }
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", s.path.display()))?;
    let mut guard = ServerGuard { child, addr };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = guard.child.try_wait() {
            return Err(format!("{} exited at start: {status}", s.label));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(guard);
        }
        if Instant::now() >= deadline {
            return Err(format!("{} did not accept connections within 5 s", s.label));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ build

fn target_release_dir() -> PathBuf {
    // This executable is target/release/deps/tcp-<hash>.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent().and_then(Path::parent) {
            if dir.join("deps").is_dir() {
                return dir.to_path_buf();
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release")
}

fn cargo_build(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("build failed")
            .to_string();
        Err(line)
    }
}

fn build_servers(servers: &mut [Server]) {
    if std::env::var_os("TCP_BENCH_NO_BUILD").is_some() {
        eprintln!("tcp bench: TCP_BENCH_NO_BUILD set, using existing binaries");
    } else {
        eprintln!(
            "tcp bench: building servers (cargo build --release --bin echo-server --bin raw-mio-echo --bin tokio-echo)"
        );
        // Try all at once (one cargo run); if that fails, build separately so
        // a missing or broken echo-server does not hide the baselines.
        if cargo_build(&[
            "--bin",
            "echo-server",
            "--bin",
            "raw-mio-echo",
            "--bin",
            "tokio-echo",
        ])
        .is_err()
        {
            for s in servers.iter_mut() {
                let r = match s.key {
                    "ours" => cargo_build(&["--bin", "echo-server"]),
                    "raw" => cargo_build(&["--bin", "raw-mio-echo"]),
                    _ => cargo_build(&["--bin", "tokio-echo"]),
                };
                if let Err(e) = r {
                    s.available = Err(format!("build failed: {e}"));
                }
            }
        }
    }
    for s in servers.iter_mut() {
        if s.available.is_ok() && !s.path.is_file() {
            s.available = Err(format!("no binary at {}", s.path.display()));
        }
        if let Err(e) = &s.available {
            eprintln!("tcp bench: skipping {} ({e})", s.label);
        }
    }
}

// ------------------------------------------------------------------ cases

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Pipeline,
    PingPong1,
    PingPong50,
    Churn,
    C10k,
    BigLine,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::Pipeline,
        Case::PingPong1,
        Case::PingPong50,
        Case::Churn,
        Case::C10k,
        Case::BigLine,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Pipeline => "pipeline",
            Case::PingPong1 => "pingpong1",
            Case::PingPong50 => "pingpong50",
            Case::Churn => "churn",
            Case::C10k => "c10k",
            Case::BigLine => "bigline",
        }
    }

    fn config(
        self,
        addr: SocketAddr,
        secs: f64,
        pid: u32,
        c10k_conns: usize,
    ) -> (Scenario, Config) {
        let scenario = match self {
            Case::Pipeline => Scenario::Pipeline,
            Case::PingPong1 | Case::PingPong50 => Scenario::PingPong,
            Case::Churn => Scenario::Churn,
            Case::C10k => Scenario::C10k,
            Case::BigLine => Scenario::BigLine,
        };
        let mut c = Config::for_scenario(scenario);
        c.addr = addr;
        c.duration = Duration::from_secs_f64(secs);
        c.progress = false;
        c.drain_timeout = Duration::from_secs(3);
        c.server_pid = Some(pid);
        match self {
            Case::Pipeline => {
                c.conns = 50;
                c.depth = 64;
                c.line_bytes = 32;
            }
            Case::PingPong1 => c.conns = 1,
            Case::PingPong50 => c.conns = 50,
            Case::Churn => c.workers = 8,
            Case::C10k => c.conns = c10k_conns,
            Case::BigLine => {
                c.conns = 8;
                c.depth = 2;
                c.line_bytes = 64 * 1024;
            }
        }
        (scenario, c)
    }

    /// One-line summary of a run, for the log.
    fn summary(self, r: &Report) -> String {
        let lat = |f: fn(&loadgen::Latency) -> f64| r.latency.as_ref().map(f).unwrap_or(f64::NAN);
        match self {
            Case::Pipeline => format!("{:.0} lines/s", r.lines_per_sec),
            Case::PingPong1 | Case::PingPong50 => format!(
                "{:.0} lines/s, p50 {:.1} us, p99 {:.1} us",
                r.lines_per_sec,
                lat(|l| l.p50_us),
                lat(|l| l.p99_us)
            ),
            Case::Churn => format!(
                "{:.0} conns/s, p99 {:.1} us",
                r.conns_per_sec.unwrap_or(0.0),
                lat(|l| l.p99_us)
            ),
            Case::C10k => {
                let c = r.c10k.clone().unwrap_or_default();
                format!(
                    "served {}/{}, rss/idle conn {:.0} B, rss/conn after line {:.0} B",
                    c.served,
                    c.target,
                    c.rss_per_idle_conn_bytes.unwrap_or(f64::NAN),
                    c.rss_per_conn_after_line_bytes.unwrap_or(f64::NAN)
                )
            }
            Case::BigLine => format!("{:.1} MB/s", r.mb_per_sec),
        }
    }
}

struct Metric {
    name: &'static str,
    case: Case,
    higher_is_better: bool,
    get: fn(&Report) -> Option<f64>,
}

fn metrics() -> Vec<Metric> {
    vec![
        Metric {
            name: "pipeline lines/s",
            case: Case::Pipeline,
            higher_is_better: true,
            get: |r| Some(r.lines_per_sec),
        },
        Metric {
            name: "pingpong-1 p50 us",
            case: Case::PingPong1,
            higher_is_better: false,
            get: |r| r.latency.as_ref().map(|l| l.p50_us),
        },
        Metric {
            name: "pingpong-1 p99 us",
            case: Case::PingPong1,
            higher_is_better: false,
            get: |r| r.latency.as_ref().map(|l| l.p99_us),
        },
        Metric {
            name: "pingpong-50 lines/s",
            case: Case::PingPong50,
            higher_is_better: true,
            get: |r| Some(r.lines_per_sec),
        },
        Metric {
            name: "pingpong-50 p99 us",
            case: Case::PingPong50,
            higher_is_better: false,
            get: |r| r.latency.as_ref().map(|l| l.p99_us),
        },
        Metric {
            name: "churn conns/s",
            case: Case::Churn,
            higher_is_better: true,
            get: |r| r.conns_per_sec,
        },
        Metric {
            name: "churn p99 us",
            case: Case::Churn,
            higher_is_better: false,
            get: |r| r.latency.as_ref().map(|l| l.p99_us),
        },
        Metric {
            name: "c10k RSS/idle conn B",
            case: Case::C10k,
            higher_is_better: false,
            get: |r| r.c10k.as_ref().and_then(|c| c.rss_per_idle_conn_bytes),
        },
        Metric {
            name: "c10k RSS/conn after line B",
            case: Case::C10k,
            higher_is_better: false,
            get: |r| {
                r.c10k
                    .as_ref()
                    .and_then(|c| c.rss_per_conn_after_line_bytes)
            },
        },
        Metric {
            name: "c10k served",
            case: Case::C10k,
            higher_is_better: true,
            get: |r| r.c10k.as_ref().map(|c| c.served as f64),
        },
        Metric {
            name: "bigline-64k MB/s",
            case: Case::BigLine,
            higher_is_better: true,
            get: |r| Some(r.mb_per_sec),
        },
    ]
}

// ------------------------------------------------------------------ main

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_val(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 1e6 => format!("{:.2}M", v / 1e6),
        Some(v) if v.abs() >= 1e4 => format!("{:.1}k", v / 1e3),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

struct Outcome {
    reports: Vec<Report>,
    errors: u64,
    notes: Vec<String>,
}

fn main() {
    let secs = env_f64("TCP_BENCH_SECS", 3.0);
    let rounds = env_f64("TCP_BENCH_ROUNDS", 3.0).round().max(1.0) as usize;
    let c10k_conns = env_f64("TCP_BENCH_C10K_CONNS", 10_000.0).round() as usize;
    let only: Vec<String> = std::env::var("TCP_BENCH_ONLY")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let cases: Vec<Case> = Case::ALL
        .into_iter()
        .filter(|c| {
            only.is_empty()
                || only
                    .iter()
                    .any(|o| o == c.name() || (o == "pingpong" && c.name().starts_with("pingpong")))
        })
        .collect();
    for o in &only {
        if o != "pingpong" && !Case::ALL.iter().any(|c| c.name() == o) {
            eprintln!("tcp bench: unknown case {o:?} in TCP_BENCH_ONLY (ignored)");
        }
    }
    let wanted_servers: Vec<String> = std::env::var("TCP_BENCH_SERVERS")
        .unwrap_or_else(|_| "ours,raw,tokio".into())
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();

    let rel = target_release_dir();
    let mut servers = vec![
        Server {
            key: "ours",
            label: "ours",
            path: rel.join("echo-server"),
            extra_args: &["--log-level", "warn"],
            available: Ok(()),
        },
        Server {
            key: "raw",
            label: "raw mio",
            path: rel.join("raw-mio-echo"),
            extra_args: &[],
            available: Ok(()),
        },
        Server {
            key: "tokio",
            label: "tokio",
            path: rel.join("tokio-echo"),
            extra_args: &[],
            available: Ok(()),
        },
    ];
    for s in servers.iter_mut() {
        if !wanted_servers.iter().any(|w| w == s.key) {
            s.available = Err("not in TCP_BENCH_SERVERS".into());
        }
    }
    build_servers(&mut servers);

    // Pin after building so cargo is not confined to one CPU.
    let ncpu = cpu_count();
    let server_cpu = if ncpu >= 2 {
        match pin_to(1) {
            Ok(()) => {
                eprintln!("tcp bench: {ncpu} CPUs: servers on CPU 0, load generator on CPU 1");
                Some(0)
            }
            Err(e) => {
                eprintln!("tcp bench: cannot pin ({e}); running unpinned");
                None
            }
        }
    } else {
        eprintln!("tcp bench: 1 CPU: server and load generator share it");
        None
    };
    let _ = loadgen::raise_nofile_limit();

    eprintln!(
        "tcp bench: {} case(s) x {} round(s) x {} s per run",
        cases.len(),
        rounds,
        secs
    );
    let started = Instant::now();
    // outcomes[case][server]
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    for &case in &cases {
        let mut per_server: Vec<Outcome> = servers
            .iter()
            .map(|_| Outcome {
                reports: Vec::new(),
                errors: 0,
                notes: Vec::new(),
            })
            .collect();
        for round in 0..rounds {
            // Rotate the order each round so drifts over time (TIME_WAIT
            // build-up, other load) do not always favour the same server.
            for k in 0..servers.len() {
                let si = (k + round) % servers.len();
                let s = &servers[si];
                if s.available.is_err() {
                    continue;
                }
                let out = &mut per_server[si];
                let guard = match start_server(s, server_cpu) {
                    Ok(g) => g,
                    Err(e) => {
                        eprintln!(
                            "[{} {}/{}] {}: {e}",
                            case.name(),
                            round + 1,
                            rounds,
                            s.label
                        );
                        out.errors += 1;
                        out.notes.push(e);
                        continue;
                    }
                };
                let (scenario, cfg) = case.config(guard.addr, secs, guard.child.id(), c10k_conns);
                let result = loadgen::run(scenario, &cfg);
                let mut guard = guard;
                if let Ok(Some(status)) = guard.child.try_wait() {
                    let note = format!("{}: server exited during the run ({status})", case.name());
                    eprintln!(
                        "[{} {}/{}] {}: {note}",
                        case.name(),
                        round + 1,
                        rounds,
                        s.label
                    );
                    out.notes.push(note);
                }
                match result {
                    Ok(r) => {
                        eprintln!(
                            "[{} {}/{}] {:<8} {}  errors {}",
                            case.name(),
                            round + 1,
                            rounds,
                            s.label,
                            case.summary(&r),
                            r.errors.total()
                        );
                        out.errors += r.errors.total();
                        if let Some(e) = &r.first_error {
                            out.notes.push(format!("{}: {e}", case.name()));
                        }
                        out.reports.push(r);
                    }
                    Err(e) => {
                        eprintln!(
                            "[{} {}/{}] {}: {e}",
                            case.name(),
                            round + 1,
                            rounds,
                            s.label
                        );
                        out.errors += 1;
                        out.notes.push(format!("{}: {e}", case.name()));
                    }
                }
                drop(guard);
            }
        }
        outcomes.push(per_server);
    }

    // ------------------------------------------------------------ table
    println!();
    println!(
        "TCP echo-line benchmark: median of {rounds} round(s), {secs} s per run, loopback, {} CPU(s){}",
        ncpu,
        if server_cpu.is_some() {
            ", server on CPU 0, load generator on CPU 1"
        } else {
            ""
        }
    );
    println!(
        "{:<28} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "metric", "better", "ours", "raw mio", "tokio", "ours/raw", "ours/tokio"
    );
    println!("{}", "-".repeat(90));
    let mut md = format!(
        "TCP echo-line benchmark: median of {rounds} round(s), {secs} s per run, loopback, {ncpu} CPU(s)\n\n\
| metric | better | ours | raw mio | tokio | ours/raw | ours/tokio |\n\
|---|---|---:|---:|---:|---:|---:|\n"
    );
    let idx = |key: &str| servers.iter().position(|s| s.key == key).unwrap();
    for m in metrics() {
        let Some(ci) = cases.iter().position(|c| *c == m.case) else {
            continue;
        };
        let val = |key: &str| -> Option<f64> {
            let si = idx(key);
            median(outcomes[ci][si].reports.iter().filter_map(m.get).collect())
        };
        let (o, r, t) = (val("ours"), val("raw"), val("tokio"));
        let better = if m.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        let cells = [fmt_val(o), fmt_val(r), fmt_val(t), ratio(o, r), ratio(o, t)];
        md.push_str(&format!(
            "| {} | {better} | {} |\n",
            m.name,
            cells.join(" | ")
        ));
        print!("{:<28} {better:>6}", m.name);
        for c in &cells {
            print!(" {c:>10}");
        }
        println!();
    }
    println!("{}", "-".repeat(90));
    let err_cell = |si: usize| -> String {
        if servers[si].available.is_err() {
            return "skipped".into();
        }
        outcomes
            .iter()
            .map(|o| o[si].errors)
            .sum::<u64>()
            .to_string()
    };
    println!(
        "{:<28} {:>6} {:>10} {:>10} {:>10}",
        "errors (all runs)",
        "lower",
        err_cell(idx("ours")),
        err_cell(idx("raw")),
        err_cell(idx("tokio"))
    );
    for (si, s) in servers.iter().enumerate() {
        if let Err(e) = &s.available {
            println!("{}: skipped ({e})", s.label);
            continue;
        }
        let notes: Vec<&String> = outcomes.iter().flat_map(|o| o[si].notes.iter()).collect();
        for n in notes.iter().take(5) {
            println!("{} error: {n}", s.label);
        }
        if notes.len() > 5 {
            println!("{}: {} more error notes", s.label, notes.len() - 5);
        }
    }
    write_outputs(&md, &cases, &servers, &outcomes);
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
}

/// Writes the Markdown table, one record per server and their plot.
fn write_outputs(md: &str, cases: &[Case], servers: &[Server], outcomes: &[Vec<Outcome>]) {
    let dir = std::env::var_os("TCP_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let release = target_release_dir();
            release.parent().unwrap_or(&release).join("tcp-bench")
        });
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("tcp bench: {}: {e}", dir.display());
        return;
    }
    let md_path = dir.join("results.md");
    match std::fs::write(&md_path, md) {
        Ok(()) => println!("table: {}", md_path.display()),
        Err(e) => eprintln!("tcp bench: {}: {e}", md_path.display()),
    }
    // The latency case with the most samples per run, and the pipeline
    // case for throughput.
    let latency_case = [Case::PingPong50, Case::PingPong1]
        .into_iter()
        .find(|c| cases.contains(c));
    let Some(lci) = latency_case.and_then(|c| cases.iter().position(|x| *x == c)) else {
        return;
    };
    let pci = cases.iter().position(|c| *c == Case::Pipeline);
    let runs = dir.join("runs.json");
    let _ = std::fs::remove_file(&runs);
    for (si, s) in servers.iter().enumerate() {
        let reports = &outcomes[lci][si].reports;
        if reports.is_empty() {
            continue;
        }
        // The rounds ran one after another: their latencies pool, while the
        // parameters are one round's (`Report::merge` is for threads side
        // by side, whose rates add up).
        let mut pooled = reports[0].clone();
        for r in &reports[1..] {
            if let (Some(h), Some(o)) = (&mut pooled.histogram, &r.histogram) {
                let _ = h.add(o);
            }
        }
        pooled.latency = pooled
            .histogram
            .as_ref()
            .and_then(loadgen::Latency::from_histogram);
        let mut record = pooled.to_record(&[]);
        record["label"] = s.label.into();
        if let Some(pci) = pci {
            let lines = median(
                outcomes[pci][si]
                    .reports
                    .iter()
                    .map(|r| r.lines_per_sec)
                    .collect(),
            );
            record["throughput_per_sec"] = lines.into();
            record["throughput_unit"] = "lines/s pipelined".into();
        }
        if let Err(e) = loadgen::record::append_json(&runs, &record) {
            eprintln!("tcp bench: {}: {e}", runs.display());
            return;
        }
    }
    let svg = dir.join("latency.svg");
    let opts = loadgen::plot::PlotOptions {
        title: Some(format!(
            "{} latency (all rounds) and pipelined throughput (median)",
            cases[lci].name()
        )),
        ..Default::default()
    };
    match loadgen::plot::plot_files(&[runs], &svg, &opts) {
        Ok(_) => println!("plot: {}", svg.display()),
        Err(e) => eprintln!("tcp bench: plot: {e}"),
    }
}
