//! The listening-socket actor.
//!
//! A [`Listener`] accepts connections only while its controller has issued
//! accept credit: each accepted connection uses one unit, and with none left
//! pending connections wait in the kernel backlog. Every accepted connection
//! becomes a [`Socket`] actor, announced to the controller, controlled by it
//! and linked to it until it is handed on.
//!
//! Invariants:
//! - `may_accept` is true whenever the backlog may hold connections that no
//!   readiness event will announce again (edge-triggered readiness), so
//!   accepting resumes by itself when credit arrives;
//! - a failing `accept` (out of file descriptors) never spins: accepting
//!   pauses on the timer queue and the rest of the reactor runs on, so the
//!   connections that would free descriptors keep being served.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::stream::{ListenSocket, Stream};
use mio::Interest;

use crate::actor::{Actor, Addr, Ctx, ExitReason, Recipient};
use crate::net::local::NetLocal;
use crate::net::socket::{Socket, SocketConfig, SocketEvent};
use crate::reactor::Ready;

/// Events a listener sends its controller, whose message type implements
/// `From<ListenerEvent>`.
#[derive(Debug)]
pub enum ListenerEvent {
    /// `Ok(address)`: listening (the tutorial's `ready: true`).
    /// `Err(reason)`: not listening, or not accepting for now (`ready:
    /// false`): the address could not be bound, accepting is paused for lack
    /// of file descriptors, or the listener stopped.
    Ready(Addr<Listener>, Result<SocketAddr, ListenError>),
    /// A new connection, and the peer's address. Hand it on with
    /// `Addr<Socket>::set_controller`.
    Accepted(Addr<Listener>, Addr<Socket>, SocketAddr),
}

/// Why a listener is not accepting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Binding or listening failed; retried every few seconds while there is
    /// accept credit.
    Bind {
        /// The address asked for.
        addr: String,
        /// The error's text.
        message: Arc<str>,
    },
    /// `accept` failed for lack of resources (file descriptors, memory);
    /// accepting resumes by itself after a pause.
    Exhausted(Arc<str>),
    /// The listener was stopped.
    Stopped,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Bind { addr, message } => write!(f, "cannot listen on {addr}: {message}"),
            ListenError::Exhausted(m) => write!(f, "accept paused: {m}"),
            ListenError::Stopped => f.write_str("listener stopped"),
        }
    }
}

impl std::error::Error for ListenError {}

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// An IP address, `localhost`, or `None` for every interface (IPv6 and
    /// IPv4 through one dual-stack socket, or IPv4 alone where IPv6 is off).
    pub host: Option<String>,
    /// The port; 0 picks a free one (see the `Ready` event for which).
    pub port: u16,
    /// The kernel's queue of connections not yet accepted. Default 128.
    pub backlog: u32,
    /// Set `SO_REUSEPORT`, so that several listeners (one per reactor of a
    /// group) share the port and the kernel spreads connections over them.
    pub reuse_port: bool,
    /// A listening socket handed over by the process's parent (systemd's
    /// socket activation): used instead of binding `host` and `port`.
    /// Each listener that uses it takes a duplicate, so a restarted one
    /// can take it again.
    pub inherited: Option<std::os::fd::RawFd>,
}

impl ListenSpec {
    /// Every interface, on `port`.
    pub fn port(port: u16) -> ListenSpec {
        ListenSpec {
            host: None,
            port,
            backlog: 128,
            reuse_port: false,
            inherited: None,
        }
    }

    /// One host (an IP address or `localhost`) and port.
    pub fn host_port(host: impl Into<String>, port: u16) -> ListenSpec {
        ListenSpec {
            host: Some(host.into()),
            port,
            backlog: 128,
            reuse_port: false,
            inherited: None,
        }
    }

    /// A listening TCP socket the process inherited as descriptor `fd`
    /// (see [`ListenSpec::inherited`]); it must stay open for the life of
    /// the process. Its port, for messages, is unknown (0).
    pub fn inherited(fd: std::os::fd::RawFd) -> ListenSpec {
        ListenSpec {
            inherited: Some(fd),
            ..ListenSpec::port(0)
        }
    }

    /// Sets the backlog.
    pub fn backlog(mut self, backlog: u32) -> ListenSpec {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_REUSEPORT` (see [`ListenSpec::reuse_port`]).
    pub fn reuse_port(mut self, on: bool) -> ListenSpec {
        self.reuse_port = on;
        self
    }

    fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let port = self.port;
        match self.host.as_deref() {
            None => Ok(vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            ]),
            Some(h) if h.eq_ignore_ascii_case("localhost") => {
                Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)])
            }
            Some(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map(|ip| vec![SocketAddr::new(ip, port)])
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("bind address {h:?} is not an IP address or localhost"),
                    )
                }),
        }
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fd) = self.inherited {
            return write!(f, "inherited socket (fd {fd})");
        }
        match &self.host {
            Some(h) if h.contains(':') && !h.starts_with('[') => write!(f, "[{h}]:{}", self.port),
            Some(h) => write!(f, "{h}:{}", self.port),
            None => write!(f, "*:{}", self.port),
        }
    }
}

/// A message to a [`Listener`].
#[derive(Debug)]
pub struct ListenerMsg(Cmd);

#[derive(Debug)]
enum Cmd {
    Credit(i64),
    Stop,
    Retry,
    Resume,
    /// While parked for memory: see whether the budget has been pressed
    /// too long.
    MemoryCheck,
}

impl ListenerMsg {
    /// Adds accept credit (negative subtracts, clamped at zero).
    pub fn issue_credit(n: i64) -> ListenerMsg {
        ListenerMsg(Cmd::Credit(n))
    }
    /// Closes the listener and terminates it.
    pub fn stop() -> ListenerMsg {
        ListenerMsg(Cmd::Stop)
    }
}

/// How long to wait before retrying a failed bind.
const BIND_RETRY: Duration = Duration::from_secs(3);
/// First pause after `accept` runs out of resources; doubles per failure.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause after `accept` runs out of resources.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often a listener parked for memory looks at how long the budget
/// has been pressed.
const MEMORY_CHECK: Duration = Duration::from_secs(1);

/// The listening-socket actor. See the module docs.
pub struct Listener {
    spec: ListenSpec,
    socket: Option<ListenSocket>,
    controller: Recipient<ListenerEvent>,
    /// The same controller, as accepted connections see it: it controls
    /// them until it hands them on.
    conn_controller: Recipient<SocketEvent>,
    socket_config: Rc<SocketConfig>,
    credit: u64,
    may_accept: bool,
    retry_armed: bool,
    /// Accepting is paused after resource exhaustion.
    paused: bool,
    /// Parked by the buffer memory budget, until it is released.
    mem_parked: bool,
    backoff: Duration,
    /// Accept failures in the current exhaustion burst (logged once).
    burst_failures: u64,
    accepted: u64,
    /// Where connections go in a group of reactors, if not all here.
    handoff: Option<Box<Handoff>>,
    /// Stopping: place nothing on this reactor.
    leaving: bool,
}

/// How listeners place the connections they accept on the reactors of a
/// group: one controller per reactor (the actor that gets
/// `ListenerEvent::Accepted` and controls the socket, which is spawned on
/// that controller's reactor). Connections never move once placed.
///
/// Cloning shares the table of controllers: each reactor's controller
/// [`join`](Handoff::join)s it when it starts (a restarted one replaces
/// its predecessor), and every listener reads it when it places a
/// connection.
#[derive(Clone, Debug)]
pub struct Handoff {
    targets: Arc<Mutex<Vec<Option<Target>>>>,
    policy: Placement,
    /// The group's limit on connections, if any.
    slots: Option<AcceptSlots>,
    /// Where ties start, turning once per placement (ties go round).
    turn: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    events: Recipient<ListenerEvent>,
    conns: Recipient<SocketEvent>,
}

/// Which reactor gets an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The one with the fewest live connections (ties taken in turn),
    /// passing over reactors seen in one turn for [`STALL`] (stuck in a
    /// long run) or that were [`BUSY`] lately, while others are not: one
    /// listener for the group (`--accept handoff`), as HAProxy and Seastar
    /// do, but not blind to a reactor kept busy by a computation.
    LeastLoaded,
    /// The listener's own reactor, unless it has clearly more live
    /// connections than the least loaded (a quarter more, plus 16), or is
    /// [`BUSY`] while that one is not; the least loaded then gets it: one
    /// `SO_REUSEPORT` listener per reactor (`--accept reuseport`),
    /// correcting the kernel's hash, which is blind to load. Such a listener, when it stops while the group runs
    /// on, also hands what waits in its queue to the other reactors
    /// instead of letting the kernel reset it.
    Own,
}

/// The connections a group's listeners may have let in and not yet seen
/// end, so that a limit holds whichever reactor each connection lands on.
///
/// A listener takes a slot before each `accept` (and gives it back if
/// nothing was waiting); the connection keeps it until its controller says
/// it ended ([`AcceptSlots::free`]). A listener that finds no slot free
/// waits in line, its connections in its kernel queue; the next slot
/// freed, on any reactor, wakes the first listener in line. So a listener
/// with connections waiting gets the room as soon as there is some,
/// whichever listener the kernel's hash gave the connections to.
#[derive(Clone, Debug)]
pub struct AcceptSlots {
    inner: Arc<SlotsInner>,
}

#[derive(Debug)]
struct SlotsInner {
    max: Option<usize>,
    /// Slots in use, and the listeners waiting for one, first first.
    state: Mutex<(usize, std::collections::VecDeque<Addr<Listener>>)>,
}

impl AcceptSlots {
    /// Slots for at most `max` connections (`None`: no limit).
    pub fn new(max: Option<usize>) -> AcceptSlots {
        AcceptSlots {
            inner: Arc::new(SlotsInner {
                max,
                state: Mutex::new((0, std::collections::VecDeque::new())),
            }),
        }
    }

    fn state(
        &self,
    ) -> std::sync::MutexGuard<'_, (usize, std::collections::VecDeque<Addr<Listener>>)> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `listener`'s next accept; if none is free, puts the
    /// listener in line (once) and returns false.
    fn try_take(&self, listener: Addr<Listener>) -> bool {
        let mut st = self.state();
        match self.inner.max {
            Some(max) if st.0 >= max => {
                if !st.1.contains(&listener) {
                    st.1.push_back(listener);
                }
                false
            }
            _ => {
                st.0 += 1;
                true
            }
        }
    }

    /// A connection let in through these slots ended (or a slot taken for
    /// an accept found nothing): frees its slot, and returns the listeners
    /// waiting for one, to be woken
    /// (`Addr<Listener>::issue_credit(ctx, 0)`): the first to take it
    /// goes on, the others wait in line again. Waking them all, a
    /// listener that has stopped, or cannot accept for now (memory,
    /// descriptors), does not keep the slot from the others.
    fn release(&self) -> Vec<Addr<Listener>> {
        let mut st = self.state();
        st.0 = st.0.saturating_sub(1);
        st.1.drain(..).collect()
    }

    /// Frees a slot (see `release`) and wakes the listeners waiting for
    /// one, but the caller (a listener already in its accept loop).
    pub fn free<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        let me = ctx.id();
        for next in self.release() {
            if next.id() != me {
                next.issue_credit(ctx, 0);
            }
        }
    }

    /// Takes a slot whether or not one is free: for a connection already
    /// let in (a stopping listener's queue, handed to the others), which
    /// releases it when it ends like any other.
    fn take_anyway(&self) {
        self.state().0 += 1;
    }

    /// Takes `listener` out of the line (it has stopped).
    fn forget(&self, listener: Addr<Listener>) {
        self.state().1.retain(|l| *l != listener);
    }
}

/// How the reactors of a group share a port: `reuseport` or `handoff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcceptMode {
    /// One `SO_REUSEPORT` listener per reactor ([`Placement::Own`]).
    #[default]
    ReusePort,
    /// One listener, on reactor 0, placing each connection on the least
    /// loaded reactor ([`Placement::LeastLoaded`]).
    Handoff,
}

impl AcceptMode {
    /// The placement its listeners use.
    pub fn placement(self) -> Placement {
        match self {
            AcceptMode::ReusePort => Placement::Own,
            AcceptMode::Handoff => Placement::LeastLoaded,
        }
    }

    /// True if reactor `i`'s service listens.
    pub fn listens(self, i: usize) -> bool {
        self == AcceptMode::ReusePort || i == 0
    }
}

impl std::str::FromStr for AcceptMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AcceptMode, String> {
        match s {
            "reuseport" => Ok(AcceptMode::ReusePort),
            "handoff" => Ok(AcceptMode::Handoff),
            _ => Err(format!(
                "unknown accept mode {s:?} (expected reuseport or handoff)"
            )),
        }
    }
}

/// How long a reactor may be seen in one turn before a listener placing
/// connections passes it over as stalled.
pub const STALL: Duration = Duration::from_millis(20);

/// The busy share (thousandths of the last ~50 ms spent outside `poll`)
/// from which a listener placing connections passes a reactor over while
/// another is less busy: one kept busy by a long computation serves its
/// connections only between runs.
pub const BUSY: u32 = 900;

impl Handoff {
    /// A table for a group of `reactors`, with no controller yet.
    pub fn new(policy: Placement, reactors: usize) -> Handoff {
        Handoff {
            targets: Arc::new(Mutex::new(vec![None; reactors])),
            policy,
            slots: None,
            turn: Arc::default(),
        }
    }

    /// The placement policy.
    pub fn policy(&self) -> Placement {
        self.policy
    }

    /// Bounds the connections the group's listeners let in (see
    /// [`AcceptSlots`]); the controllers must release each connection's
    /// slot when it ends.
    pub fn with_slots(mut self, slots: AcceptSlots) -> Handoff {
        self.slots = Some(slots);
        self
    }

    /// The group's slots, if it has a limit.
    pub fn slots(&self) -> Option<&AcceptSlots> {
        self.slots.as_ref()
    }

    /// Makes the calling actor its reactor's controller: connections placed
    /// on its reactor go to it.
    pub fn join<A: Actor>(&self, ctx: &Ctx<'_, A>)
    where
        A::Msg: From<ListenerEvent> + From<SocketEvent>,
    {
        let me = ctx.me();
        let mut t = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = t.get_mut(ctx.reactor()) {
            *slot = Some(Target {
                events: me.recipient(),
                conns: me.recipient(),
            });
        }
    }

    /// The controller for the next connection, or `None` for "here, to the
    /// listener's own controller" (no controller has joined).
    fn pick<A: Actor>(&self, ctx: &mut Ctx<'_, A>, leaving: bool) -> Option<Target> {
        let here = ctx.reactor();
        let core = ctx.core();
        let t = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.len();
        let start = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut least = None;
        for (r, target) in t.iter().enumerate() {
            if target.is_none() || (leaving && r == here) {
                continue;
            }
            let unfit = core.silent_for(r) > STALL || core.busy_of(r) >= BUSY;
            let key = (unfit, core.load_of(r), (r + n - start % n) % n, r);
            if least.is_none_or(|l| key < l) {
                least = Some(key);
            }
        }
        let least = least?.3;
        let chosen = match (self.policy, t.get(here).copied().flatten()) {
            (Placement::Own, Some(_)) if !leaving => {
                let (mine, low) = (core.load_of(here), core.load_of(least));
                let busy_here = core.busy_of(here) >= BUSY && core.busy_of(least) < BUSY;
                if busy_here || mine > low + low / 4 + 16 {
                    least
                } else {
                    here
                }
            }
            _ => least,
        };
        t[chosen]
    }
}

impl Listener {
    /// Spawns a listener controlled by (and linked to) the calling actor,
    /// with the default connection settings. The caller also controls the
    /// connections it accepts until it hands them on, so its messages
    /// include socket events too.
    pub fn listen<A: Actor>(ctx: &mut Ctx<'_, A>, spec: ListenSpec) -> Addr<Listener>
    where
        A::Msg: From<ListenerEvent> + From<SocketEvent>,
    {
        Listener::listen_with(ctx, spec, SocketConfig::default())
    }

    /// Like [`Listener::listen`], with the settings every accepted
    /// connection starts with.
    pub fn listen_with<A: Actor>(
        ctx: &mut Ctx<'_, A>,
        spec: ListenSpec,
        socket_config: SocketConfig,
    ) -> Addr<Listener>
    where
        A::Msg: From<ListenerEvent> + From<SocketEvent>,
    {
        ctx.spawn(Listener::new(ctx.me(), spec, socket_config, None))
    }

    /// Like [`Listener::listen_with`], placing accepted connections on the
    /// reactors of a group as `handoff` says (and within its slots, if it
    /// has some). The caller gets `Ready` events and gives accept credit.
    pub fn listen_handoff<A: Actor>(
        ctx: &mut Ctx<'_, A>,
        spec: ListenSpec,
        socket_config: SocketConfig,
        handoff: Handoff,
    ) -> Addr<Listener>
    where
        A::Msg: From<ListenerEvent> + From<SocketEvent>,
    {
        ctx.spawn(Listener::new(ctx.me(), spec, socket_config, Some(handoff)))
    }

    /// A listener controlled by `controller`, not yet listening.
    fn new<A: Actor>(
        controller: Addr<A>,
        spec: ListenSpec,
        socket_config: SocketConfig,
        handoff: Option<Handoff>,
    ) -> Listener
    where
        A::Msg: From<ListenerEvent> + From<SocketEvent>,
    {
        Listener {
            spec,
            socket: None,
            controller: controller.recipient(),
            conn_controller: controller.recipient(),
            socket_config: Rc::new(socket_config),
            credit: 0,
            may_accept: false,
            retry_armed: false,
            paused: false,
            mem_parked: false,
            backoff: ACCEPT_BACKOFF_MIN,
            burst_failures: 0,
            accepted: 0,
            handoff: handoff.map(Box::new),
            leaving: false,
        }
    }

    /// Spawns the socket of an accepted connection where its placement
    /// says, and tells its controller.
    fn place(&mut self, ctx: &mut Ctx<'_, Self>, stream: Stream, peer: SocketAddr) {
        let me = ctx.me();
        let leaving = self.leaving;
        let chosen = match self.handoff.as_deref() {
            None => None,
            Some(h) => h.pick(ctx, leaving).map(|t| (t.events, t.conns)),
        };
        // Trusted proxies send a header first (the untrusted were refused
        // at accept where one is required).
        let proxied = self
            .socket_config
            .proxy
            .as_deref()
            .is_some_and(|p| p.trusts(peer.ip()));
        let Some((events, conns)) = chosen else {
            ctx.core().add_load(1);
            let config = self.socket_config.clone();
            let sock = Socket::accepted(stream, self.conn_controller, config, proxied);
            let sock = ctx.spawn(sock);
            self.emit(ctx, ListenerEvent::Accepted(me, sock, peer));
            return;
        };
        let r = events.id().reactor();
        ctx.core().add_load_to(r, 1);
        if r == ctx.reactor() {
            let config = self.socket_config.clone();
            let sock = ctx.spawn(Socket::accepted(stream, conns, config, proxied));
            ctx.send(events, ListenerEvent::Accepted(me, sock, peer));
            return;
        }
        let config = SocketConfig::clone(&self.socket_config);
        let posted = ctx.core().post_to(r, move |core| {
            let sock = core.spawn(Socket::accepted(stream, conns, Rc::new(config), proxied));
            core.send(events, ListenerEvent::Accepted(me, sock, peer));
        });
        if !posted {
            // That reactor has stopped: the connection is closed (dropped
            // with the closure), uncounted, and its slot freed.
            ctx.core().add_load_to(r, -1);
            if let Some(slots) = self.handoff.as_deref().and_then(|h| h.slots.clone()) {
                slots.free(ctx);
            }
        }
    }

    fn emit(&mut self, ctx: &mut Ctx<'_, Self>, event: ListenerEvent) {
        ctx.send(self.controller, event);
    }

    fn bind(&mut self) -> io::Result<ListenSocket> {
        if let Some(l) = crate::net::stream::simulated_bind(self.spec.port) {
            return l;
        }
        if let Some(fd) = self.spec.inherited {
            return take_inherited(fd).map(crate::net::stream::real_listener);
        }
        let mut last = None;
        for addr in self.spec.addrs()? {
            match bind_one(addr, self.spec.backlog, self.spec.reuse_port) {
                Ok(l) => return Ok(crate::net::stream::real_listener(l)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address")))
    }

    fn try_listen(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.me();
        let bound = self.bind().and_then(|mut l| {
            let local = l.local_addr()?;
            ctx.register(&mut l, Interest::READABLE)?;
            Ok((l, local))
        });
        match bound {
            Ok((l, local)) => {
                self.socket = Some(l);
                self.may_accept = true;
                self.emit(ctx, ListenerEvent::Ready(me, Ok(local)));
                self.accept(ctx);
            }
            Err(e) => {
                log::warn!("cannot listen on {}: {e}", self.spec);
                let err = ListenError::Bind {
                    addr: self.spec.to_string(),
                    message: e.to_string().into(),
                };
                self.emit(ctx, ListenerEvent::Ready(me, Err(err)));
                self.arm_retry(ctx);
            }
        }
    }

    fn arm_retry(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.socket.is_none() && self.credit > 0 && !self.retry_armed {
            self.retry_armed = true;
            let me = ctx.me();
            ctx.send_after(me, ListenerMsg(Cmd::Retry), BIND_RETRY);
        }
    }

    /// Accepts while there is credit and the backlog may hold connections.
    fn accept(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.me();
        let slots = self.handoff.as_deref().and_then(|h| h.slots.clone());
        while self.credit > 0 && self.may_accept && !self.paused {
            if self.budget_pressed(ctx) {
                return;
            }
            let Some(socket) = self.socket.as_ref() else {
                return;
            };
            if let Some(slots) = &slots {
                if !slots.try_take(me) {
                    // In line: the next connection to end wakes us.
                    return;
                }
            }
            let accepted = socket.accept();
            let let_in = matches!(&accepted, Ok((_, peer)) if !self.untrusted(peer));
            if !let_in {
                if let Some(slots) = &slots {
                    // Nothing let in: the slot goes back (to whoever waits).
                    slots.free(ctx);
                }
            }
            match accepted {
                Ok((_, peer)) if !let_in => {
                    // Refused (closed, dropped here) before it costs a
                    // socket, a session or a unit of credit.
                    let e = crate::net::ProxyError::Untrusted(peer.ip());
                    let now = ctx.now();
                    ctx.local::<NetLocal>().proxy.refused(now, Some(peer), &e);
                }
                Ok((stream, peer)) => {
                    self.credit -= 1;
                    self.accepted += 1;
                    if self.burst_failures > 0 {
                        log::info!(
                            "{}: accepting again after {} failed accepts",
                            self.spec,
                            self.burst_failures
                        );
                        self.burst_failures = 0;
                        self.backoff = ACCEPT_BACKOFF_MIN;
                        let local = socket.local_addr();
                        if let Ok(local) = local {
                            self.emit(ctx, ListenerEvent::Ready(me, Ok(local)));
                        }
                    }
                    self.place(ctx, stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.may_accept = false,
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    self.pause(ctx, e);
                    return;
                }
            }
        }
    }

    /// True if the connections must come through a PROXY header and this
    /// peer is not among the trusted proxies.
    fn untrusted(&self, peer: &SocketAddr) -> bool {
        self.socket_config
            .proxy
            .as_deref()
            .is_some_and(|p| p.required && !p.trusts(peer.ip()))
    }

    /// True while the buffer memory budget is pressed: the listener parks
    /// (once) and is woken when the budget falls below its low mark;
    /// connections wait in the backlog meanwhile.
    #[inline]
    fn budget_pressed(&mut self, ctx: &mut Ctx<'_, Self>) -> bool {
        let me = ctx.id();
        let budget = &mut ctx.local::<NetLocal>().budget;
        if !budget.pressed() {
            self.mem_parked = false;
            return false;
        }
        if !self.mem_parked {
            self.mem_parked = true;
            budget.park(me);
            log::info!(
                "{}: accepting paused: buffer memory is over its high mark",
                self.spec
            );
            let me = ctx.me();
            ctx.send_after(me, ListenerMsg(Cmd::MemoryCheck), MEMORY_CHECK);
        }
        true
    }

    /// Stops accepting for a while after `accept` failed for lack of
    /// resources (or an unexpected error), instead of spinning on it.
    fn pause(&mut self, ctx: &mut Ctx<'_, Self>, e: io::Error) {
        self.paused = true;
        self.burst_failures += 1;
        if self.burst_failures == 1 {
            log::warn!(
                "{}: accept failed ({e}); pausing accepts, resuming by itself",
                self.spec
            );
            let me = ctx.me();
            self.emit(
                ctx,
                ListenerEvent::Ready(me, Err(ListenError::Exhausted(e.to_string().into()))),
            );
        }
        let me = ctx.me();
        ctx.send_after(me, ListenerMsg(Cmd::Resume), self.backoff);
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
    }

    /// A `SO_REUSEPORT` listener of a group about to close: the kernel
    /// would reset the connections waiting in its queue, so it accepts
    /// them first and hands them to the other reactors' controllers
    /// (credit or not: they were already let in). Other listeners close
    /// with their queue, as a lone listener must.
    fn hand_over_queue(&mut self, ctx: &mut Ctx<'_, Self>) {
        let here = ctx.reactor();
        let others = match self.handoff.as_deref() {
            Some(h) if self.spec.reuse_port && h.policy == Placement::Own => {
                let t = h.targets.lock().unwrap_or_else(|p| p.into_inner());
                t.iter().enumerate().any(|(r, t)| r != here && t.is_some())
            }
            _ => false,
        };
        if !others {
            return;
        }
        self.leaving = true;
        let slots = self.handoff.as_deref().and_then(|h| h.slots.clone());
        let mut handed = 0u64;
        while let Some(Ok((stream, peer))) = self.socket.as_ref().map(|s| s.accept()) {
            handed += 1;
            if let Some(slots) = &slots {
                slots.take_anyway();
            }
            self.place(ctx, stream, peer);
        }
        if handed > 0 {
            log::info!(
                "{}: handed {handed} queued connections to the other reactors before closing",
                self.spec
            );
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

fn bind_one(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket as RawSocket, Type};
    let socket = RawSocket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // One socket for both families when listening on every interface.
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// A duplicate of the inherited listening socket `fd`, non-blocking.
fn take_inherited(fd: std::os::fd::RawFd) -> io::Result<mio::net::TcpListener> {
    use std::os::fd::{BorrowedFd, OwnedFd};
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad descriptor",
        ));
    }
    // SAFETY: the descriptor is only borrowed for the duplication; the
    // caller of `ListenSpec::inherited` promised it stays open while
    // listeners use it, and a closed one makes the duplication fail
    // with EBADF rather than touch memory.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned: OwnedFd = borrowed.try_clone_to_owned()?;
    let socket = socket2::Socket::from(owned);
    let tcp = matches!(
        socket.domain()?,
        socket2::Domain::IPV4 | socket2::Domain::IPV6
    );
    if !tcp || socket.r#type()? != socket2::Type::STREAM || !socket.is_listener()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a listening TCP socket"),
        ));
    }
    socket.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Errors that concern one pending connection only: skip it and go on.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO) | Some(libc::EPERM))
}

impl Actor for Listener {
    type Msg = ListenerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.link(self.controller.id());
        self.try_listen(ctx);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, ListenerMsg(cmd): ListenerMsg) {
        match cmd {
            Cmd::Credit(n) => {
                self.credit = if n >= 0 {
                    self.credit.saturating_add(n as u64)
                } else {
                    self.credit.saturating_sub(n.unsigned_abs())
                };
                if self.socket.is_some() {
                    self.accept(ctx);
                } else {
                    self.arm_retry(ctx);
                }
            }
            Cmd::Retry => {
                self.retry_armed = false;
                if self.socket.is_none() && self.credit > 0 {
                    self.try_listen(ctx);
                }
            }
            Cmd::Resume => {
                self.paused = false;
                self.may_accept = true;
                self.accept(ctx);
            }
            Cmd::MemoryCheck => {
                if self.mem_parked && ctx.local::<NetLocal>().budget.pressed() {
                    let now = ctx.now();
                    let net = ctx.local::<NetLocal>();
                    let total = net.total();
                    for (sock, held) in net.budget.relief(total, now) {
                        crate::net::socket::close_for_overload(ctx, sock, held);
                    }
                    let me = ctx.me();
                    ctx.send_after(me, ListenerMsg(Cmd::MemoryCheck), MEMORY_CHECK);
                }
            }
            Cmd::Stop => {
                self.hand_over_queue(ctx);
                if let Some(mut s) = self.socket.take() {
                    let _ = ctx.deregister(&mut s);
                }
                let me = ctx.me();
                self.emit(ctx, ListenerEvent::Ready(me, Err(ListenError::Stopped)));
                ctx.stop();
            }
        }
    }

    fn io_ready(&mut self, ctx: &mut Ctx<'_, Self>, _ready: Ready) {
        self.may_accept = true;
        // Woken by the budget (its list no longer has us) or by a
        // connection: park again if still pressed.
        self.mem_parked = false;
        self.accept(ctx);
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, Self>, reason: &ExitReason) {
        if !matches!(reason, ExitReason::Shutdown) {
            self.hand_over_queue(ctx);
        }
        // An inherited socket outlives this duplicate: its registration
        // would outlive it too (epoll keys on the open file), and the next
        // listener's could not be added.
        if let Some(mut l) = self.socket.take() {
            let _ = ctx.deregister(&mut l);
        }
        if let Some(slots) = self.handoff.as_deref().and_then(|h| h.slots.as_ref()) {
            slots.forget(ctx.me());
        }
        log::debug!("listener on {} closed: {reason}", self.spec);
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("spec", &self.spec)
            .field("credit", &self.credit)
            .field("listening", &self.socket.is_some())
            .finish()
    }
}

/// Operations on a listener, from inside an actor.
impl Addr<Listener> {
    /// Adds `n` units of accept credit (negative subtracts, clamped at zero).
    pub fn issue_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>, n: i64) {
        ctx.send(*self, ListenerMsg(Cmd::Credit(n)));
    }
    /// Closes the listener and terminates it (firing its links). Accepted
    /// connections carry on.
    pub fn stop<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, ListenerMsg(Cmd::Stop));
    }
}
