//! The chat server: one room, every user on port 5999 (see the crate docs
//! for the protocol).
//!
//! SIGINT or SIGTERM tells every user `server shutting down`, stops
//! accepting, lets output drain within the grace period, then exits 0; a
//! second signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use credit_actors::actor::{Supervisor, SupervisorMsg};
use credit_actors::net::{AcceptMode, AcceptSlots, Handoff, ListenSpec, SocketConfig};
use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, Reactor, ReactorHandle, Reactors, RequestError,
};
use credit_chat::room::ClusterConfig;
use credit_chat::{
    ChatConfig, ChatGroup, ChatRoom, ChatService, RoomDirectory, RoomMsg, ServiceMsg, ROOM, SERVICE,
};
use credit_ops::{Ops, OpsArgs};
use log::{info, warn, LevelFilter};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A chat room server on a single-threaded actor reactor.
#[derive(Parser, Debug)]
#[command(name = "chat-server", version)]
struct Args {
    /// Address to listen on (an IP address; `::` for IPv6 and IPv4).
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Port to listen on (0 picks a free one; the log says which).
    #[arg(long, default_value_t = credit_chat::DEFAULT_PORT)]
    port: u16,
    /// Longest accepted line, in bytes; longer lines get an error reply.
    #[arg(long, default_value_t = credit_chat::DEFAULT_MAX_LINE as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    max_line: u64,
    /// Output a user may leave unread, in bytes, before being disconnected
    /// as too slow.
    #[arg(long, default_value_t = credit_chat::DEFAULT_MAX_BACKLOG as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
    max_backlog: u64,
    /// Most users at once; further connections wait in the backlog.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_users: Option<u64>,
    /// Lines a user may send per second, on average, in bursts of
    /// --window; past it their lines wait (0: no limit).
    #[arg(long, value_name = "LINES", default_value_t = credit_chat::room::DEFAULT_RATE)]
    max_rate: u32,
    /// Lines a user may have on their way to the room; each user gets at
    /// most this many handled per reactor turn.
    #[arg(long, default_value_t = credit_chat::room::DEFAULT_WINDOW, value_parser = clap::value_parser!(u32).range(1..=1024))]
    window: u32,
    /// Let users go who are silent for this many seconds.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<f64>,
    /// Let users go whose output makes no progress for this many seconds
    /// (announced as too slow).
    #[arg(long, value_name = "SECS")]
    write_timeout: Option<f64>,
    /// Seconds the users' output gets to drain after SIGINT/SIGTERM.
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
    /// Print one line of scheduler metrics (changes since the last line) to
    /// stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats: Option<f64>,
    /// Run-queue policy: fifo, receiver-next, or random:SEED (a seeded
    /// random order, for exploring schedules).
    #[arg(long, default_value = "fifo")]
    policy: credit_actors::Policy,
    /// Poll with a zero timeout for up to this many microseconds before
    /// blocking (0: block at once).
    #[arg(long, value_name = "MICROS", default_value_t = 0)]
    busy_poll: u64,
    /// Reactors (threads), each owning its users' connections for life: a
    /// number, or auto for one per core this process may run on. The room
    /// itself lives on reactor 0.
    #[arg(long, default_value = "1", value_parser = credit_actors::parse_reactors)]
    reactors: usize,
    /// How several reactors share the port: reuseport (a SO_REUSEPORT
    /// listener each) or handoff (one listener placing each connection on
    /// the least loaded reactor).
    #[arg(long, default_value = "reuseport")]
    accept: AcceptMode,
    /// Share one room with every chat-server using this Redis (HOST:PORT):
    /// every event goes through the room's channel there, and the roster
    /// lives there.
    #[arg(long, value_name = "HOST:PORT")]
    redis: Option<String>,
    /// The room's name in Redis (the prefix of its keys and channel).
    #[arg(long, value_name = "NAME", default_value = "chat", requires = "redis")]
    redis_room: String,
    /// Redis password (AUTH); also read from CHAT_REDIS_PASSWORD.
    #[arg(
        long,
        env = "CHAT_REDIS_PASSWORD",
        hide_env_values = true,
        requires = "redis"
    )]
    redis_password: Option<String>,
    /// Redis ACL user, with --redis-password.
    #[arg(long, requires = "redis_password")]
    redis_user: Option<String>,
    /// This server's name in the roster (default: host name and process id).
    #[arg(long, value_name = "NAME", requires = "redis")]
    server_name: Option<String>,
    /// Seconds a server's roster entries outlive it: after that the other
    /// servers announce its users as left.
    #[arg(long, value_name = "SECS", default_value_t = credit_chat::room::DEFAULT_ROSTER_TTL.as_secs_f64(), requires = "redis")]
    roster_ttl: f64,
    /// Bytes of lines being published at once; past it, senders are told
    /// `error: room busy`.
    #[arg(long, value_name = "BYTES", default_value_t = credit_chat::room::DEFAULT_PUBLISH_BUDGET as u64, value_parser = clap::value_parser!(u64).range(1..=1 << 32), requires = "redis")]
    publish_budget: u64,
    #[command(flatten)]
    ops: OpsArgs,
}

/// `--redis` and its companions, as the room's settings.
/// The reactors' settings the flags ask for.
fn reactor_config(args: &Args) -> Config {
    Config {
        policy: args.policy,
        busy_poll: Duration::from_micros(args.busy_poll),
        ..Config::default()
    }
}

fn cluster_config(args: &Args) -> Result<Option<ClusterConfig>, String> {
    let Some(spec) = &args.redis else {
        return Ok(None);
    };
    let (host, port) = credit_ops::cli::split_host_port(spec)
        .ok()
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("--redis wants HOST:PORT, got {spec:?}"))?;
    let mut config = ClusterConfig::new(host, port);
    config.room = args.redis_room.clone();
    if config.room.is_empty() || config.room.contains(char::is_whitespace) {
        return Err(format!(
            "--redis-room must be a word, got {:?}",
            config.room
        ));
    }
    if let Some(name) = &args.server_name {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "--server-name must be a word of printable ASCII, at most 64 bytes, got {name:?}"
            ));
        }
        config.server = name.clone();
    }
    config.redis.auth = args
        .redis_password
        .clone()
        .map(|p| (args.redis_user.clone(), p));
    config.roster_ttl = secs("roster-ttl", Some(args.roster_ttl))?
        .unwrap_or(credit_chat::room::DEFAULT_ROSTER_TTL)
        .max(Duration::from_millis(300));
    config.publish_budget = args.publish_budget as usize;
    config.max_line = args.max_line as usize;
    if config.publish_budget < config.max_line + 256 {
        return Err(format!(
            "--publish-budget {} is less than a line (--max-line {}) and its framing (256)",
            config.publish_budget, config.max_line
        ));
    }
    Ok(Some(config))
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

fn main() -> ExitCode {
    let args = Args::parse();
    let mut logger = simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Info)
        .with_utc_timestamps()
        .env();
    if let Some(level) = args.log_level {
        logger = logger.with_level(level);
    }
    let _ = logger.init();

    let (idle, write, grace, stats) = match (
        secs("idle-timeout", args.idle_timeout),
        secs("write-timeout", args.write_timeout),
        secs("grace", Some(args.grace.max(0.001))),
        secs("stats", args.stats),
    ) {
        (Ok(i), Ok(w), Ok(g), Ok(s)) => (i, w, g.unwrap_or_default(), s),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let ops = match Ops::new(&args.ops) {
        Ok(ops) => Arc::new(ops),
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let cluster = match cluster_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(2);
        }
    };
    let listen = ListenSpec::host_port(args.bind.clone(), args.port).backlog(args.backlog);
    let config = ChatConfig {
        listen: ops.service_listen(listen),
        conn: SocketConfig {
            proxy: ops.proxy.clone(),
            max_unit: args.max_line as usize,
            max_backlog: Some(args.max_backlog as usize),
            idle_timeout: idle,
            write_timeout: write,
            ..SocketConfig::default()
        },
        max_users: args.max_users.map(|n| n as usize),
        window: args.window,
        rate: (args.max_rate > 0).then_some(args.max_rate),
        group: None,
        cluster,
    };
    let buffer_limit = match credit_actors::net::buffer_limit_arg(args.max_buffer_memory.as_deref())
    {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("chat-server: --max-buffer-memory {e}");
            return ExitCode::from(2);
        }
    };
    if args.reactors > 1 {
        return run_group(&args, config, buffer_limit, grace, stats, ops);
    }

    let mut reactor = match Reactor::with_config(reactor_config(&args)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat-server: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    credit_actors::net::set_buffer_limit(&mut reactor, buffer_limit);
    let spec = config.listen.to_string();
    let supervisor = reactor.spawn(credit_chat::supervisor(config));
    let stopping = Arc::new(AtomicBool::new(false));
    let launcher = reactor.spawn(Launcher {
        supervisor,
        others: Vec::new(),
        spec,
        stopping: stopping.clone(),
        ops: ops.clone(),
    });
    let handle = reactor.handle();
    let admin = match ops.start_admin(vec![handle.clone()]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(every) = stats {
        if let Err(e) = handle.print_stats_every(every) {
            warn!("cannot start the stats thread: {e}");
        }
    }

    if let Err(e) = watch_signals(vec![handle], launcher, grace, stopping, ops) {
        eprintln!("chat-server: {e}");
        return ExitCode::FAILURE;
    }

    let result = reactor.run();
    drop(admin);
    let s = reactor.stats();
    info!(
        "chat-server exiting: {} turns, {} messages, {} actors spawned",
        s.turns, s.messages, s.spawned
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--reactors N` with N > 1: the room and a service on reactor 0, a
/// service on each other reactor, each under its own supervisor, sharing
/// the port as `--accept` says. Reactor 0's service listens first; with
/// reuseport the others then bind the port it got.
fn run_group(
    args: &Args,
    config: ChatConfig,
    buffer_limit: Option<usize>,
    grace: Duration,
    stats: Option<Duration>,
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
    let reactors = match Reactors::start(n, reactor_config(args), move |core| {
        credit_actors::net::set_buffer_limit(core, share);
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat-server: cannot start {n} reactors: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut handoff = Handoff::new(accept.placement(), n);
    if config.max_users.is_some() {
        handoff = handoff.with_slots(AcceptSlots::new(config.max_users));
    }
    let directory = RoomDirectory::default();
    let stopping = Arc::new(AtomicBool::new(false));
    let mut port = args.port;
    let mut supervisors = Vec::with_capacity(n);
    let mut launcher = None;
    let spec_all = config.listen.to_string();
    for i in 0..n {
        let mut config = config.clone();
        config.listen.port = port;
        config.listen.reuse_port = accept == AcceptMode::ReusePort;
        config.group = Some(ChatGroup {
            handoff: handoff.clone(),
            listen: accept.listens(i),
            room: directory.clone(),
        });
        let handle = reactors.handle(i).clone();
        let supervisor = match handle.spawn(move || credit_chat::group_supervisor(config, i)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("chat-server: cannot start reactor {i}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if i == 0 {
            let (spec, stop) = (spec_all.clone(), stopping.clone());
            let launcher_ops = ops.clone();
            match handle.spawn(move || Launcher {
                supervisor,
                others: Vec::new(),
                spec,
                stopping: stop,
                ops: launcher_ops,
            }) {
                Ok(l) => launcher = Some(l),
                Err(_) => return ExitCode::FAILURE,
            }
            let service = handle.whereis::<ChatService>(SERVICE).ok().flatten();
            match service.map(|s| handle.request_wait(s, ServiceMsg::WhenReady, READY_WAIT)) {
                Some(Ok(addr)) => port = addr.port(),
                Some(Err(e)) => {
                    eprintln!(
                        "chat-server: cannot listen on {}:{}: {e}",
                        args.bind, args.port
                    );
                    return ExitCode::from(1);
                }
                None => {
                    eprintln!("chat-server: the chat service did not start");
                    return ExitCode::from(1);
                }
            }
        }
        supervisors.push((handle, supervisor.id()));
    }
    info!("{n} reactors; the room is on reactor 0");
    if let Some(every) = stats {
        if let Err(e) = reactors.print_stats_every(every) {
            warn!("cannot start the stats thread: {e}");
        }
    }
    let Some(launcher) = launcher else {
        return ExitCode::FAILURE;
    };
    let others = supervisors[1..].iter().map(|(_, s)| *s).collect();
    supervisors[0].0.send(launcher, LauncherMsg::Others(others));
    let handles: Vec<ReactorHandle> = supervisors.iter().map(|(h, _)| h.clone()).collect();
    let admin = match ops.start_admin(handles.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat-server: {e}");
            reactors.shutdown();
            return ExitCode::from(1);
        }
    };
    if let Err(e) = watch_signals(handles, launcher, grace, stopping, ops) {
        eprintln!("chat-server: {e}");
        return ExitCode::FAILURE;
    }
    let joined = reactors.join();
    drop(admin);
    match joined {
        Ok(metrics) => {
            for (i, m) in metrics.iter().enumerate() {
                let s = &m.stats;
                info!(
                    "chat-server reactor {i} exiting: {} turns, {} messages, {} actors spawned",
                    s.turns, s.messages, s.spawned
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-server: a reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// First SIGINT/SIGTERM: every reactor but the first stops accepting (its
/// listener closes; its users stay), then the launcher, on the first,
/// stops accepting there and has the room tell everyone, and only then
/// ends the services; the process stops once no actor is left on any
/// reactor, or the grace period is over. Second signal: exit at once.
fn watch_signals(
    handles: Vec<ReactorHandle>,
    launcher: Addr<Launcher>,
    grace: Duration,
    stopping: Arc<AtomicBool>,
    ops: Arc<Ops>,
) -> Result<(), String> {
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if stopping.swap(true, Ordering::SeqCst) {
                    warn!("second signal ({sig}): exiting at once");
                    std::process::exit(1);
                }
                info!(
                    "signal {sig}: telling every user; output gets {:.1}s to drain",
                    grace.as_secs_f64()
                );
                ops.stopping();
                for handle in &handles[1..] {
                    handle.post(|core| {
                        if let Some(s) = core.whereis::<ChatService>(SERVICE) {
                            core.send(s, ServiceMsg::StopAccepting);
                        }
                    });
                }
                handles[0].send(launcher, LauncherMsg::Stop);
                let handles = handles.clone();
                std::thread::spawn(move || {
                    let left = credit_actors::actor::shutdown_group_when_idle(&handles, grace);
                    if left > 0 {
                        warn!("grace period over: closing {left} remaining actors");
                    }
                });
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// How long the service may take to report that it listens.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Watches the server from the reactor: exits 1 if the service cannot
/// listen or the supervisor gives up; on a stop signal, tells every user,
/// stops accepting and ends the supervisor.
struct Launcher {
    supervisor: Addr<Supervisor>,
    /// On a group: the other reactors' supervisors, ended with this one.
    others: Vec<ActorId>,
    spec: String,
    stopping: Arc<AtomicBool>,
    /// Told when the service listens (systemd's `READY=1`).
    ops: Arc<Ops>,
}

enum LauncherMsg {
    /// The supervisor has started the room and the service.
    Started,
    /// The service's answer: listening, or why not.
    Ready(Result<SocketAddr, RequestError>),
    /// A stop signal arrived.
    Stop,
    /// The room has told its users (or is gone).
    Told,
    /// On a group: the other reactors' supervisors.
    Others(Vec<ActorId>),
}

impl Launcher {
    fn cannot_listen(&self, why: &dyn std::fmt::Display) -> ! {
        eprintln!("chat-server: cannot listen on {}: {why}", self.spec);
        std::process::exit(1);
    }
}

impl Actor for Launcher {
    type Msg = LauncherMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.monitor(self.supervisor.id(), 0);
        ctx.request(self.supervisor, SupervisorMsg::Children, |_| {
            LauncherMsg::Started
        });
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: LauncherMsg) {
        let stopping = self.stopping.load(Ordering::SeqCst);
        match msg {
            LauncherMsg::Started => match ctx.whereis::<ChatService>(SERVICE) {
                Some(service) => ctx.request_timeout(
                    service,
                    ServiceMsg::WhenReady,
                    LauncherMsg::Ready,
                    READY_WAIT,
                ),
                None if stopping => {}
                None => self.cannot_listen(&"the chat service did not start"),
            },
            LauncherMsg::Ready(Ok(addr)) => self.ops.ready(&format!("accepting users on {addr}")),
            LauncherMsg::Ready(Err(_)) if stopping => {}
            LauncherMsg::Ready(Err(e)) => self.cannot_listen(&e),
            LauncherMsg::Stop => {
                if let Some(service) = ctx.whereis::<ChatService>(SERVICE) {
                    ctx.send(service, ServiceMsg::StopAccepting);
                }
                match ctx.whereis::<ChatRoom>(ROOM) {
                    Some(room) => ctx.request(room, RoomMsg::Shutdown, |_| LauncherMsg::Told),
                    None => {
                        ctx.send(ctx.me(), LauncherMsg::Told);
                    }
                }
            }
            LauncherMsg::Told => {
                // The users' agents are closing their connections; the
                // supervisors, the room and the services go now (after
                // what the room sent, on every reactor).
                ctx.kill(self.supervisor.id());
                for s in std::mem::take(&mut self.others) {
                    ctx.kill(s);
                }
                ctx.stop();
            }
            LauncherMsg::Others(others) => self.others = others,
        }
    }

    fn down(&mut self, ctx: &mut Ctx<'_, Self>, _peer: ActorId, _r: u64, reason: &ExitReason) {
        if self.stopping.load(Ordering::SeqCst) {
            ctx.stop();
            return;
        }
        eprintln!("chat-server: the server failed too often ({reason}); exiting");
        std::process::exit(1);
    }
}
