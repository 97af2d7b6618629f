//! The echo server: `You said: <line>` for every line, on port 4096.
//!
//! SIGINT or SIGTERM stops accepting (as killing the service does) and lets
//! sessions finish within the grace period; a second signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use credit_actors::actor::{ChildSpec, Restart, Supervisor, SupervisorMsg};
use credit_actors::net::{AcceptMode, AcceptSlots, Handoff, ListenSpec, SocketConfig};
use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, Metrics, Reactor, ReactorHandle, Reactors,
    RequestError,
};
use credit_echo::{EchoConfig, EchoService, GroupAccept, ServiceMsg};
use credit_ops::{Ops, OpsArgs};
use log::{info, warn, LevelFilter};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A low-latency line echo server on a single-threaded actor reactor.
#[derive(Parser, Debug)]
#[command(name = "echo-server", version)]
struct Args {
    /// Address to listen on (an IP address; `::` for IPv6 and IPv4).
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Port to listen on (0 picks a free one; the log says which).
    #[arg(long, default_value_t = 4096)]
    port: u16,
    /// Longest accepted line, in bytes; longer lines get an error reply.
    #[arg(long, default_value_t = 64 * 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    max_line: u64,
    /// Most concurrent sessions; further connections wait in the backlog.
    #[arg(long)]
    max_conns: Option<usize>,
    /// Close sessions silent for this many seconds.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<f64>,
    /// Close connections whose output makes no progress for this many seconds.
    #[arg(long, value_name = "SECS")]
    write_timeout: Option<f64>,
    /// Seconds sessions get to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    grace: f64,
    /// Listen backlog.
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
    /// Most bytes all connections' buffers may hold together (read
    /// buffers, unsent output, the buffer pools), like 64MiB or 1G, or
    /// `none`. Past half of it, connections whose peers do not read stop
    /// being read and accepting pauses; at the limit (or after 5 s past
    /// half), those holding the most are closed. Default: a quarter of the
    /// machine's memory (or of its cgroup's limit), at least 64MiB.
    #[arg(long, value_name = "BYTES")]
    max_buffer_memory: Option<String>,
    /// Log level: error, warn, info, debug, trace, off (default: RUST_LOG,
    /// else info).
    #[arg(long)]
    log_level: Option<LevelFilter>,
    /// Credit each session issues up front (1: line by line, as in the
    /// tutorial).
    #[arg(long, default_value_t = credit_echo::DEFAULT_WINDOW)]
    window: u32,
    /// Messages an actor may handle per turn before yielding.
    #[arg(long, default_value_t = 64)]
    budget: usize,
    /// Print one line of scheduler metrics (changes since the last line) to
    /// stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats: Option<f64>,
    /// Runs longer than this many microseconds count as slow.
    #[arg(long, value_name = "MICROS", default_value_t = 50)]
    slow_us: u64,
    /// Run-queue policy: fifo, receiver-next, or random:SEED (a seeded
    /// random order, for exploring schedules).
    #[arg(long, default_value = "fifo")]
    policy: credit_actors::Policy,
    /// Poll with a zero timeout for up to this many microseconds before
    /// blocking (0: block at once).
    #[arg(long, value_name = "MICROS", default_value_t = 0)]
    busy_poll: u64,
    /// Write an event trace to FILE (read it with `trace-report`); with
    /// several reactors, reactor i > 0 writes FILE.i.
    #[arg(long, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
    /// Reactors (threads), each owning its connections for life: a number,
    /// or auto for one per core this process may run on.
    #[arg(long, default_value = "1", value_parser = credit_actors::parse_reactors)]
    reactors: usize,
    /// How several reactors share the port: reuseport (a SO_REUSEPORT
    /// listener each) or handoff (one listener placing each connection on
    /// the least loaded reactor).
    #[arg(long, default_value = "reuseport")]
    accept: AcceptMode,
    #[command(flatten)]
    ops: OpsArgs,
}

fn secs(name: &str, v: Option<f64>) -> Result<Option<Duration>, String> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(format!(
            "--{name} must be a positive number of seconds, got {s}"
        )),
    }
}

fn init_logging(level: Option<LevelFilter>) {
    let mut logger = simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Info)
        .with_utc_timestamps()
        .env();
    if let Some(level) = level {
        logger = logger.with_level(level);
    }
    let _ = logger.init();
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_level);
    let (idle, write, grace) = match (
        secs("idle-timeout", args.idle_timeout),
        secs("write-timeout", args.write_timeout),
        secs("grace", Some(args.grace.max(0.001))),
    ) {
        (Ok(i), Ok(w), Ok(g)) => (i, w, g.unwrap_or_default()),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("echo-server: {e}");
            return ExitCode::from(2);
        }
    };
    let ops = match Ops::new(&args.ops) {
        Ok(ops) => Arc::new(ops),
        Err(e) => {
            eprintln!("echo-server: {e}");
            return ExitCode::from(2);
        }
    };
    let listen = ListenSpec::host_port(args.bind.clone(), args.port).backlog(args.backlog);
    let config = EchoConfig {
        listen: ops.service_listen(listen),
        conn: SocketConfig {
            max_unit: args.max_line as usize,
            idle_timeout: idle,
            write_timeout: write,
            proxy: ops.proxy.clone(),
            ..SocketConfig::default()
        },
        max_conns: args.max_conns,
        window: args.window,
        group: None,
    };

    let stats_every = match secs("stats", args.stats) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo-server: {e}");
            return ExitCode::from(2);
        }
    };
    let reactor_config = Config {
        budget: args.budget,
        slow_threshold: Duration::from_micros(args.slow_us),
        policy: args.policy,
        busy_poll: Duration::from_micros(args.busy_poll),
        ..Config::default()
    };
    let buffer_limit = match credit_actors::net::buffer_limit_arg(args.max_buffer_memory.as_deref())
    {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("echo-server: --max-buffer-memory {e}");
            return ExitCode::from(2);
        }
    };
    if args.reactors > 1 {
        return run_group(
            &args,
            config,
            reactor_config,
            buffer_limit,
            grace,
            stats_every,
            ops,
        );
    }
    let mut reactor = match Reactor::with_config(reactor_config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo-server: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    credit_actors::net::set_buffer_limit(&mut reactor, buffer_limit);
    if let Some(path) = &args.trace {
        match std::fs::File::create(path) {
            Ok(f) => reactor.set_trace(Box::new(f)),
            Err(e) => {
                eprintln!("echo-server: cannot create {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    // The listening side runs under a supervisor: if the service fails (and
    // its listener with it), a new one listens again on the port the first
    // one bound. Each incarnation is registered under SERVICE, so the
    // launcher finds the current one by name.
    let port = Arc::new(AtomicU16::new(args.port));
    let bound_port = port.clone();
    let spec = config.listen.to_string();
    let supervisor = reactor.spawn(supervised(config, port));
    let handle = reactor.handle();

    // Set by the first stop signal. After it, the service is gone on
    // purpose, and its absence says nothing about binding.
    let stopping = Arc::new(AtomicBool::new(false));

    // Fails fast if the address cannot be bound, remembers the bound port
    // for restarts, and ends the process if the supervisor gives up.
    reactor.spawn(Launcher {
        supervisor,
        port: bound_port,
        spec,
        stopping: stopping.clone(),
        ops: ops.clone(),
    });
    let admin = match ops.start_admin(vec![handle.clone()]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo-server: {e}");
            return ExitCode::from(1);
        }
    };

    if let Some(every) = stats_every {
        if let Err(e) = handle.print_stats_every(every) {
            warn!("cannot start the stats thread: {e}");
        }
    }
    if let Err(e) = watch_signals(vec![(handle, supervisor.id())], grace, stopping, ops) {
        eprintln!("echo-server: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }

    let result = reactor.run();
    drop(admin);
    log_summary(None, &reactor.metrics());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-server: reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs a reactor's final figures.
fn log_summary(reactor: Option<usize>, m: &Metrics) {
    let s = &m.stats;
    let mut summary = format!(
        "echo-server{} exiting: {} turns, {} messages, {} actors spawned",
        reactor.map_or(String::new(), |i| format!(" reactor {i}")),
        s.turns,
        s.messages,
        s.spawned
    );
    for line in m.summary().lines() {
        summary.push_str("\n  ");
        summary.push_str(line);
    }
    info!("{summary}");
}

/// The listening side under a supervisor: if the service fails (and its
/// listener with it), a new one listens again on the port the first one
/// bound. Each incarnation is registered under SERVICE, so the launcher
/// finds the current one by name.
fn supervised(config: EchoConfig, port: Arc<AtomicU16>) -> Supervisor {
    Supervisor::new().child(
        ChildSpec::new(SERVICE, Restart::Permanent, move |ctx| {
            let mut config = config.clone();
            config.listen.port = port.load(Ordering::SeqCst);
            ctx.spawn(EchoService::new(config)).id()
        })
        .registered(),
    )
}

/// `--reactors N` with N > 1: one echo service per reactor, under its own
/// supervisor, sharing the port as `--accept` says. Reactor 0's service
/// listens first; with reuseport the others then bind the port it got.
fn run_group(
    args: &Args,
    config: EchoConfig,
    reactor_config: Config,
    buffer_limit: Option<usize>,
    grace: Duration,
    stats_every: Option<Duration>,
    ops: Arc<Ops>,
) -> ExitCode {
    let n = args.reactors;
    // A socket systemd passed is one queue: one listener places its
    // connections.
    let accept = if config.listen.inherited.is_some() {
        AcceptMode::Handoff
    } else {
        args.accept
    };
    let share = buffer_limit.map(|b| (b / n).max(1));
    let trace = args.trace.clone();
    let reactors = match Reactors::start(n, reactor_config, move |core| {
        credit_actors::net::set_buffer_limit(core, share);
        if let Some(path) = &trace {
            let path = match core.reactor_index() {
                0 => path.clone(),
                i => path.with_extension(format!("{i}")),
            };
            match std::fs::File::create(&path) {
                Ok(f) => core.set_trace(Box::new(f)),
                Err(e) => warn!("cannot create {}: {e}", path.display()),
            }
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo-server: cannot start {n} reactors: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(
        "{n} reactors, accepting with {}",
        match accept {
            AcceptMode::ReusePort => "one SO_REUSEPORT listener each",
            AcceptMode::Handoff => "one listener handing connections off",
        }
    );
    let mut handoff = Handoff::new(accept.placement(), n);
    if config.max_conns.is_some() {
        handoff = handoff.with_slots(AcceptSlots::new(config.max_conns));
    }
    let port = Arc::new(AtomicU16::new(args.port));
    let stopping = Arc::new(AtomicBool::new(false));
    let mut supervisors = Vec::with_capacity(n);
    let spec_all = config.listen.to_string();
    for i in 0..n {
        let mut config = config.clone();
        config.listen.reuse_port = accept == AcceptMode::ReusePort;
        config.group = Some(GroupAccept {
            handoff: handoff.clone(),
            listen: accept.listens(i),
        });
        let handle = reactors.handle(i).clone();
        let p = port.clone();
        let supervisor = match handle.spawn(move || supervised(config, p)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("echo-server: cannot start reactor {i}'s service: {e}");
                return ExitCode::FAILURE;
            }
        };
        if i == 0 {
            let (spec, stop, bound, launcher_ops) = (
                spec_all.clone(),
                stopping.clone(),
                port.clone(),
                ops.clone(),
            );
            let launched = handle.spawn(move || Launcher {
                supervisor,
                port: bound,
                spec,
                stopping: stop,
                ops: launcher_ops,
            });
            if launched.is_err() {
                return ExitCode::FAILURE;
            }
            // Wait for the port reactor 0 bound: the other listeners share it.
            let service = handle.whereis::<EchoService>(SERVICE).ok().flatten();
            let ready = service.map(|s| handle.request_wait(s, ServiceMsg::WhenReady, READY_WAIT));
            match ready {
                Some(Ok(addr)) => port.store(addr.port(), Ordering::SeqCst),
                Some(Err(e)) => {
                    eprintln!(
                        "echo-server: cannot listen on {}:{}: {e}",
                        args.bind, args.port
                    );
                    return ExitCode::from(1);
                }
                None => {
                    eprintln!("echo-server: the echo service did not start");
                    return ExitCode::from(1);
                }
            }
        }
        supervisors.push((handle, supervisor.id()));
    }
    if let Some(every) = stats_every {
        if let Err(e) = reactors.print_stats_every(every) {
            warn!("cannot start the stats thread: {e}");
        }
    }
    let admin = match ops.start_admin(reactors.handles().to_vec()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo-server: {e}");
            reactors.shutdown();
            return ExitCode::from(1);
        }
    };
    if let Err(e) = watch_signals(supervisors, grace, stopping, ops) {
        eprintln!("echo-server: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let joined = reactors.join();
    drop(admin);
    match joined {
        Ok(metrics) => {
            for (i, m) in metrics.iter().enumerate() {
                log_summary(Some(i), m);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo-server: a reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The name each incarnation of the echo service is registered under.
const SERVICE: &str = "echo-service";

/// How long the service may take to report that it listens.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Watches the listening side from the reactor: once the supervisor has
/// started the service, asks it (by name) for the address it listens on,
/// records the port so restarts bind the same one, and exits 1 if it cannot
/// listen. Ends the process when the supervisor ends, unless a stop signal
/// ended it.
struct Launcher {
    supervisor: Addr<Supervisor>,
    /// The port restarts bind: the one the first service bound.
    port: Arc<AtomicU16>,
    /// What was asked for, for the error message.
    spec: String,
    stopping: Arc<AtomicBool>,
    /// Told when the service listens (systemd's `READY=1`).
    ops: Arc<Ops>,
}

enum LauncherMsg {
    /// The supervisor has started its children (or is gone: the monitor
    /// says why).
    Started,
    /// The service's answer: listening, or why not.
    Ready(Result<SocketAddr, RequestError>),
}

impl Launcher {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn cannot_listen(&self, why: &dyn std::fmt::Display) -> ! {
        eprintln!("echo-server: cannot listen on {}: {why}", self.spec);
        std::process::exit(1);
    }
}

impl Actor for Launcher {
    type Msg = LauncherMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.monitor(self.supervisor.id(), 0);
        // Answered once the supervisor's `started` hook has run, that is,
        // once the service exists and is registered.
        ctx.request(self.supervisor, SupervisorMsg::Children, |_| {
            LauncherMsg::Started
        });
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: LauncherMsg) {
        match msg {
            LauncherMsg::Started => match ctx.whereis::<EchoService>(SERVICE) {
                Some(service) => ctx.request_timeout(
                    service,
                    ServiceMsg::WhenReady,
                    LauncherMsg::Ready,
                    READY_WAIT,
                ),
                None if self.stopping() => {}
                None => self.cannot_listen(&"the echo service did not start"),
            },
            LauncherMsg::Ready(Ok(addr)) => {
                self.port.store(addr.port(), Ordering::SeqCst);
                self.ops.ready(&format!("accepting connections on {addr}"));
            }
            LauncherMsg::Ready(Err(_)) if self.stopping() => {}
            LauncherMsg::Ready(Err(e)) => self.cannot_listen(&e),
        }
    }

    fn down(&mut self, ctx: &mut Ctx<'_, Self>, _peer: ActorId, _r: u64, reason: &ExitReason) {
        if self.stopping() {
            ctx.stop();
            return;
        }
        eprintln!("echo-server: the listening side failed too often ({reason}); exiting");
        std::process::exit(1);
    }
}

/// First SIGINT/SIGTERM: kill every reactor's supervisor, which takes its
/// service down with it (listeners close through their links, on every
/// reactor, before anything else; sessions are linked to neither, so they
/// carry on), then shut down once every session has ended or the grace
/// period is over. Second signal: exit at once.
fn watch_signals(
    supervisors: Vec<(ReactorHandle, ActorId)>,
    grace: Duration,
    stopping: Arc<AtomicBool>,
    ops: Arc<Ops>,
) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if stopping.swap(true, Ordering::SeqCst) {
                    warn!("second signal ({sig}): exiting at once");
                    std::process::exit(1);
                }
                info!(
                    "signal {sig}: no longer accepting; sessions get {:.1}s to finish",
                    grace.as_secs_f64()
                );
                ops.stopping();
                for (handle, supervisor) in &supervisors {
                    handle.kill(*supervisor);
                }
                let handles: Vec<ReactorHandle> =
                    supervisors.iter().map(|(h, _)| h.clone()).collect();
                std::thread::spawn(move || {
                    let left = credit_actors::actor::shutdown_group_when_idle(&handles, grace);
                    if left > 0 {
                        warn!("grace period over: closing {left} remaining actors");
                    }
                });
            }
        })?;
    Ok(())
}
