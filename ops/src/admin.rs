//! The admin endpoint: a small HTTP/1.1 server made of the runtime's own
//! socket actors, on a reactor thread of its own so that a scrape never
//! takes time from the reactors that serve connections, and so that it
//! answers (`/readyz` 503) while they drain.
//!
//! - [`AdminService`] listens, and keeps at most `max_conns` connections
//!   (further ones wait in the kernel's backlog); each request must arrive
//!   whole within [`REQUEST_DEADLINE`], so slow clients cannot hold them;
//! - each [`AdminConn`] reads a request head with the `CRLFCRLF`
//!   delimiter, switches its socket to raw mode for a body (read and
//!   discarded), then back, and answers:
//!   - `/metrics`: the Prometheus exposition of every reactor's metrics
//!     (OpenMetrics when the `Accept` header asks for it, as Prometheus
//!     does, else Prometheus text),
//!     asked of each reactor by a closure posted to it, which sends its
//!     snapshot back; reactors that do not answer within [`SCRAPE_WAIT`]
//!     are left out and counted;
//!   - `/healthz`: 200 while the process serves: every reactor ran a
//!     closure posted to it within [`HEALTH_WAIT`]; else 503, naming the
//!     reactors that did not;
//!   - `/readyz`: 200, or 503 once the process is stopping or while the
//!     drain file exists ([`Readiness`]).
//!
//! A bad request gets 400 and the connection closes. HTTP/1.1
//! connections stay open between requests unless asked otherwise, for at
//! most [`REQUEST_DEADLINE`] each.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{info, warn};

use credit_actors::net::{
    Delimiter, ListenSpec, Listener, ListenerEvent, Mode, ProxyPolicy, Socket, SocketConfig,
    SocketEvent, Unit,
};
use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, MonitorRef, Reactor, ReactorHandle, Reply,
};

use crate::http::{self, Request};
use crate::prom::{self, ProcessSample, ReactorSample};

/// How long a scrape waits for the reactors' snapshots.
pub const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// How long `/healthz` waits for every reactor to run a no-op: a reactor
/// stuck longer is not serving.
pub const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// How long a request may take to arrive whole, head and body, from the
/// moment the connection is ready for it: a client that trickles bytes
/// (or holds a keep-alive connection idle) cannot keep one of the few
/// connections for longer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// How often the drain file is looked for, to log its comings and goings
/// (`/readyz` looks for it on every request).
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// Whether the process wants new connections: not once it is stopping
/// (the first SIGTERM), nor while its drain file exists. Cloning shares
/// it.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    stopping: Arc<AtomicBool>,
    drain_file: Option<Arc<PathBuf>>,
}

impl Readiness {
    /// Ready until [`stop`](Readiness::stop), and while `drain_file` (if
    /// any) does not exist.
    pub fn new(drain_file: Option<PathBuf>) -> Readiness {
        Readiness {
            stopping: Arc::default(),
            drain_file: drain_file.map(Arc::new),
        }
    }

    /// The process is stopping: not ready, for good.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready; else why not (`stopping` or `draining`).
    pub fn check(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::SeqCst) {
            Err("stopping")
        } else if self.drain_file.as_deref().is_some_and(|p| p.exists()) {
            Err("draining")
        } else {
            Ok(())
        }
    }
}

/// Settings of the admin endpoint.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Where to listen.
    pub listen: ListenSpec,
    /// What `/readyz` says.
    pub readiness: Readiness,
    /// The reactors `/metrics` reports, in group order.
    pub reactors: Vec<ReactorHandle>,
    /// Most connections at once. Default 32.
    pub max_conns: usize,
    /// Trusted proxies whose PROXY header, if they send one, is read (the
    /// load balancer's checks may carry one); anyone may connect.
    pub proxy: Option<Arc<ProxyPolicy>>,
}

impl AdminConfig {
    /// An endpoint on `listen` reporting `reactors`.
    pub fn new(listen: ListenSpec, reactors: Vec<ReactorHandle>, readiness: Readiness) -> Self {
        AdminConfig {
            listen,
            readiness,
            reactors,
            max_conns: 32,
            proxy: None,
        }
    }
}

/// A running admin endpoint: its reactor thread and its address.
#[derive(Debug)]
pub struct Admin {
    handle: ReactorHandle,
    join: Option<JoinHandle<io::Result<()>>>,
    addr: SocketAddr,
}

impl Admin {
    /// Starts the endpoint on a reactor thread of its own, and waits
    /// until it listens (or could not).
    pub fn start(config: AdminConfig) -> io::Result<Admin> {
        let (handle, join) = Reactor::start(Config::default(), |_| {})?;
        let service = handle
            .spawn(move || AdminService::new(config))
            .map_err(io::Error::other)?;
        let addr = handle
            .request_wait(service, AdminMsg::WhenReady, Duration::from_secs(10))
            .map_err(io::Error::other);
        let addr = match addr {
            Ok(a) => a,
            Err(e) => {
                handle.shutdown();
                let _ = join.join();
                return Err(e);
            }
        };
        Ok(Admin {
            handle,
            join: Some(join),
            addr,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the connections share.
#[derive(Debug)]
struct Shared {
    readiness: Readiness,
    reactors: Vec<ReactorHandle>,
}

/// Messages to an [`AdminService`].
#[derive(Debug)]
pub enum AdminMsg {
    /// From the listener.
    Listener(ListenerEvent),
    /// From a socket not yet handed on.
    Socket(SocketEvent),
    /// Answered with the address once listening.
    WhenReady(Reply<SocketAddr>),
    /// Look at the drain file.
    DrainCheck,
}

impl From<ListenerEvent> for AdminMsg {
    fn from(e: ListenerEvent) -> Self {
        AdminMsg::Listener(e)
    }
}

impl From<SocketEvent> for AdminMsg {
    fn from(e: SocketEvent) -> Self {
        AdminMsg::Socket(e)
    }
}

/// The admin endpoint's listening side. See the module docs.
#[derive(Debug)]
pub struct AdminService {
    config: AdminConfig,
    shared: Arc<Shared>,
    listener: Option<Addr<Listener>>,
    addr: Option<SocketAddr>,
    waiting: Vec<Reply<SocketAddr>>,
    /// The last readiness logged.
    ready: Result<(), &'static str>,
}

impl AdminService {
    /// A service with these settings.
    pub fn new(mut config: AdminConfig) -> AdminService {
        // The connections' share; the service keeps what it listens with.
        let shared = Arc::new(Shared {
            readiness: config.readiness.clone(),
            reactors: std::mem::take(&mut config.reactors),
        });
        AdminService {
            config,
            shared,
            listener: None,
            addr: None,
            waiting: Vec::new(),
            ready: Ok(()),
        }
    }
}

const CONN_MONITOR: MonitorRef = 1;

impl Actor for AdminService {
    type Msg = AdminMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let conn = SocketConfig {
            max_unit: http::MAX_HEAD,
            write_timeout: Some(Duration::from_secs(10)),
            proxy: self
                .config
                .proxy
                .as_deref()
                .map(|p| Arc::new(p.clone().optional())),
            ..SocketConfig::default()
        };
        let listener = Listener::listen_with(ctx, self.config.listen.clone(), conn);
        listener.issue_credit(ctx, self.config.max_conns.max(1) as i64);
        self.listener = Some(listener);
        self.ready = self.shared.readiness.check();
        let me = ctx.me();
        ctx.send_after(me, AdminMsg::DrainCheck, DRAIN_CHECK);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: AdminMsg) {
        match msg {
            AdminMsg::Listener(ListenerEvent::Ready(_, Ok(addr))) => {
                info!("admin endpoint on http://{addr}/ (/metrics, /healthz, /readyz)");
                self.addr = Some(addr);
                for r in self.waiting.drain(..) {
                    r.resolve(ctx, addr);
                }
            }
            AdminMsg::Listener(ListenerEvent::Ready(_, Err(e))) => {
                warn!("admin endpoint: {e}");
                if self.addr.is_none() {
                    for r in self.waiting.drain(..) {
                        r.reject(ctx, credit_actors::RequestError::rejected(e.to_string()));
                    }
                }
            }
            AdminMsg::Listener(ListenerEvent::Accepted(_, sock, _peer)) => {
                let conn = ctx.spawn(AdminConn::new(self.shared.clone()));
                ctx.monitor(conn.id(), CONN_MONITOR);
                ctx.send(conn, ConnMsg::Connection(sock));
                sock.set_controller(ctx, conn);
            }
            AdminMsg::Socket(_) => {}
            AdminMsg::WhenReady(reply) => match self.addr {
                Some(addr) => reply.resolve(ctx, addr),
                None => self.waiting.push(reply),
            },
            AdminMsg::DrainCheck => {
                let now = self.shared.readiness.check();
                if now != self.ready {
                    match now {
                        Ok(()) => info!("ready again: /readyz answers 200"),
                        Err(why) => info!("{why}: /readyz answers 503"),
                    }
                    self.ready = now;
                }
                let me = ctx.me();
                ctx.send_after(me, AdminMsg::DrainCheck, DRAIN_CHECK);
            }
        }
    }

    fn down(&mut self, ctx: &mut Ctx<'_, Self>, _peer: ActorId, _r: MonitorRef, _e: &ExitReason) {
        if let Some(l) = self.listener {
            l.issue_credit(ctx, 1);
        }
    }
}

/// Messages to an [`AdminConn`].
#[derive(Debug)]
pub enum ConnMsg {
    /// The connection to serve.
    Connection(Addr<Socket>),
    /// From the socket.
    Socket(SocketEvent),
    /// A reactor's snapshot for scrape number `.0`.
    Sample(u64, Box<ReactorSample>),
    /// Scrape number `.0` has waited long enough.
    ScrapeDue(u64),
    /// Request number `.0` has had [`REQUEST_DEADLINE`] to arrive.
    RequestDue(u64),
}

impl From<SocketEvent> for ConnMsg {
    fn from(e: SocketEvent) -> Self {
        ConnMsg::Socket(e)
    }
}

/// Where a connection is in its request.
#[derive(Debug)]
enum Phase {
    /// Waiting for a request head.
    Head,
    /// Reading (and discarding) this many more bytes of body.
    Body(usize, Request),
    /// Waiting for the reactors' snapshots.
    Scraping {
        request: Request,
        samples: Vec<ReactorSample>,
        /// Reactors asked (a stopped one cannot be).
        asked: usize,
    },
}

/// One admin connection. See the module docs.
#[derive(Debug)]
pub struct AdminConn {
    shared: Arc<Shared>,
    sock: Option<Addr<Socket>>,
    phase: Phase,
    /// The current scrape's number: late snapshots of an earlier one are
    /// dropped.
    scrape: u64,
    /// The current request's number, for its deadline.
    request: u64,
}

impl AdminConn {
    fn new(shared: Arc<Shared>) -> AdminConn {
        AdminConn {
            shared,
            sock: None,
            phase: Phase::Head,
            scrape: 0,
            request: 0,
        }
    }

    /// Ready for the next request: one unit of credit, and its deadline.
    fn next_request(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>) {
        self.request += 1;
        let me = ctx.me();
        ctx.send_after(me, ConnMsg::RequestDue(self.request), REQUEST_DEADLINE);
        sock.issue_credit(ctx, 1);
    }

    fn head_mode(ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>) {
        sock.set_max_unit(ctx, http::MAX_HEAD);
        sock.set_mode(ctx, Mode::Binary(Delimiter::crlf_crlf()));
    }

    fn unit(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, unit: Unit) {
        match std::mem::replace(&mut self.phase, Phase::Head) {
            Phase::Head => match http::parse_head(unit.as_bytes()) {
                Ok(request) if request.body > 0 => {
                    sock.set_max_unit(ctx, request.body);
                    sock.set_mode(ctx, Mode::Raw);
                    self.phase = Phase::Body(request.body, request);
                    sock.issue_credit(ctx, 1);
                }
                Ok(request) => self.route(ctx, sock, request),
                Err(why) => self.bad_request(ctx, sock, why),
            },
            Phase::Body(left, request) => {
                let left = left.saturating_sub(unit.len());
                if left == 0 {
                    Self::head_mode(ctx, sock);
                    self.route(ctx, sock, request);
                } else {
                    sock.set_max_unit(ctx, left);
                    self.phase = Phase::Body(left, request);
                    sock.issue_credit(ctx, 1);
                }
            }
            scraping @ Phase::Scraping { .. } => self.phase = scraping,
        }
    }

    fn route(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, request: Request) {
        let head_only = request.method == "HEAD";
        if request.method != "GET" && !head_only {
            let body = format!("{} is not allowed here: GET or HEAD\n", request.method);
            let r = http::response(
                405,
                TEXT,
                &body,
                request.keep_alive,
                false,
                &[("Allow", "GET, HEAD")],
            );
            self.answer(ctx, sock, r, request.keep_alive);
            return;
        }
        let (status, body) = match request.path.as_str() {
            "/metrics" | "/healthz" => {
                self.start_scrape(ctx, request);
                return;
            }
            "/readyz" => match self.shared.readiness.check() {
                Ok(()) => (200, "ready\n".to_string()),
                Err(why) => (503, format!("{why}\n")),
            },
            "/" => (200, "/metrics /healthz /readyz\n".to_string()),
            _ => (404, format!("no such path: {}\n", request.path)),
        };
        let r = http::response(status, TEXT, &body, request.keep_alive, head_only, &[]);
        self.answer(ctx, sock, r, request.keep_alive);
    }

    /// Asks every reactor for its snapshot (for `/metrics`), or for an
    /// empty one, just to see that each one runs (for `/healthz`: a
    /// balancer's probe costs the reactors no snapshot).
    fn start_scrape(&mut self, ctx: &mut Ctx<'_, Self>, request: Request) {
        self.scrape += 1;
        let scrape = self.scrape;
        let me = ctx.me();
        let here = ctx.core().handle();
        let health = request.path == "/healthz";
        let mut asked = 0;
        for (i, reactor) in self.shared.reactors.iter().enumerate() {
            let here = here.clone();
            asked += usize::from(reactor.post(move |core| {
                if health {
                    let sample = ReactorSample {
                        reactor: i,
                        metrics: Default::default(),
                        connections: 0,
                    };
                    here.send(me, ConnMsg::Sample(scrape, Box::new(sample)));
                    return;
                }
                // Makes the socket counters exist (zero) on a reactor no
                // socket has run on yet, so every scrape has the same
                // families.
                let _ = credit_actors::net::buffer_memory(core);
                let metrics = core.metrics();
                let connections = metrics
                    .group("sockets")
                    .and_then(|g| g.get("conns"))
                    .map_or_else(|| core.load_of(core.reactor_index()), |n| n as usize);
                let sample = ReactorSample {
                    reactor: i,
                    metrics,
                    connections,
                };
                here.send(me, ConnMsg::Sample(scrape, Box::new(sample)));
            }));
        }
        self.phase = Phase::Scraping {
            request,
            samples: Vec::with_capacity(asked),
            asked,
        };
        let wait = if health { HEALTH_WAIT } else { SCRAPE_WAIT };
        ctx.send_after(me, ConnMsg::ScrapeDue(scrape), wait);
        self.maybe_finish_scrape(ctx, false);
    }

    fn maybe_finish_scrape(&mut self, ctx: &mut Ctx<'_, Self>, due: bool) {
        let n = self.shared.reactors.len();
        let done = match &self.phase {
            Phase::Scraping { samples, asked, .. } => due || samples.len() >= *asked,
            _ => false,
        };
        if !done {
            return;
        }
        let Phase::Scraping {
            request,
            mut samples,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Head)
        else {
            return;
        };
        let Some(sock) = self.sock else {
            return;
        };
        samples.sort_by_key(|s| s.reactor);
        let head_only = request.method == "HEAD";
        if request.path == "/healthz" {
            let (status, body) = if samples.len() == n {
                (200, "ok\n".to_string())
            } else {
                let silent: Vec<String> = (0..n)
                    .filter(|i| !samples.iter().any(|s| s.reactor == *i))
                    .map(|i| i.to_string())
                    .collect();
                (
                    503,
                    format!("reactors not answering: {}\n", silent.join(", ")),
                )
            };
            let r = http::response(status, TEXT, &body, request.keep_alive, head_only, &[]);
            self.answer(ctx, sock, r, request.keep_alive);
            return;
        }
        let process = ProcessSample {
            ready: self.shared.readiness.check().is_ok(),
            reactors: n,
            missing: n - samples.len(),
        };
        let mut body = prom::render(samples, process);
        let mut content_type = prom::OPENMETRICS;
        if !request.openmetrics {
            body = prom::to_prometheus_text(&body);
            content_type = prom::PROMETHEUS_TEXT;
        }
        let r = http::response(200, content_type, &body, request.keep_alive, head_only, &[]);
        self.answer(ctx, sock, r, request.keep_alive);
    }

    fn bad_request(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, why: &str) {
        let r = http::response(
            400,
            TEXT,
            &format!("bad request: {why}\n"),
            false,
            false,
            &[],
        );
        self.answer(ctx, sock, r, false);
    }

    fn answer(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, r: String, keep: bool) {
        sock.send(ctx, r);
        if keep {
            self.next_request(ctx, sock);
        } else {
            sock.stop(ctx);
            ctx.stop();
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Actor for AdminConn {
    type Msg = ConnMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ConnMsg) {
        match msg {
            ConnMsg::Connection(sock) => {
                self.sock = Some(sock);
                Self::head_mode(ctx, sock);
                self.next_request(ctx, sock);
            }
            ConnMsg::Socket(SocketEvent::Data(sock, Ok(unit))) => self.unit(ctx, sock, unit),
            ConnMsg::Socket(SocketEvent::Data(sock, Err(e))) => {
                let why = format!("{e}");
                self.bad_request(ctx, sock, &why);
            }
            ConnMsg::Socket(SocketEvent::Closed(..)) => ctx.stop(),
            ConnMsg::Socket(_) => {}
            ConnMsg::Sample(scrape, sample) => {
                if scrape == self.scrape {
                    if let Phase::Scraping { samples, .. } = &mut self.phase {
                        samples.push(*sample);
                    }
                    self.maybe_finish_scrape(ctx, false);
                }
            }
            ConnMsg::RequestDue(n) => {
                // Still reading that request (not answering it): too slow.
                let reading = matches!(self.phase, Phase::Head | Phase::Body(..));
                if n == self.request && reading {
                    if let Some(sock) = self.sock {
                        sock.stop(ctx);
                    }
                    ctx.stop();
                }
            }
            ConnMsg::ScrapeDue(scrape) => {
                if scrape == self.scrape {
                    self.maybe_finish_scrape(ctx, true);
                }
            }
        }
    }
}
