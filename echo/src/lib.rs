//! The echo tutorial: a TCP line echo service and a matching client.
//!
//! - [`EchoService`] listens, issues one unit of accept credit, and for each
//!   accepted connection spawns an [`EchoSession`], monitors it, hands it
//!   the socket, makes it the socket's controller and issues one more unit
//!   of accept credit.
//! - [`EchoSession`] sets its socket to LF-delimited text, issues one unit
//!   of credit, and answers each line `L` with `You said: L`, issuing one
//!   more unit per line. When the peer disconnects it terminates normally.
//! - [`EchoClient`] connects, and `send_line` *detaches* each caller's
//!   request into a FIFO; each reply line answers the oldest waiting caller.
//!   Stopping the client closes its socket through the link.
//!
//! Killing the service closes the listener (through the link) and leaves the
//! sessions running until their peers disconnect: the sockets were handed
//! to the sessions, so they are no longer linked to the service.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log::{debug, info, warn};

use credit_actors::net::{
    CloseReason, Delimiter, Handoff, ListenSpec, Listener, ListenerEvent, Socket, SocketConfig,
    SocketEvent, Unit,
};
use credit_actors::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, MonitorRef, PendingReply, ReactorHandle,
    Reply, RequestError,
};

/// The prefix of every reply.
pub const REPLY_PREFIX: &str = "You said: ";

/// Settings of an [`EchoService`].
#[derive(Clone, Debug)]
pub struct EchoConfig {
    /// Where to listen. The tutorial's port is 4096.
    pub listen: ListenSpec,
    /// Settings every accepted connection starts with (line limit, timeouts).
    pub conn: SocketConfig,
    /// Most sessions at once; beyond it no accept credit is issued and new
    /// connections wait in the kernel backlog. `None`: no limit.
    pub max_conns: Option<usize>,
    /// Credit each session issues up front (see [`EchoSession::with_window`]).
    pub window: u32,
    /// In a group of reactors: how connections are placed, and whether
    /// this reactor's service listens (see [`GroupAccept`]). `None`: one
    /// reactor, one listener, as in the tutorial.
    pub group: Option<GroupAccept>,
}

/// How the echo services of a group of reactors (one per reactor) share
/// the connections.
///
/// Every service joins the [`Handoff`] table, so that listeners can place
/// connections on its reactor. With `--accept reuseport` every service
/// listens (a `SO_REUSEPORT` listener of its own, placement
/// [`Own`](credit_actors::net::Placement::Own)); with `--accept handoff`
/// only reactor 0's does
/// ([`LeastLoaded`](credit_actors::net::Placement::LeastLoaded)). A
/// listening service gives its listener unbounded accept credit: what
/// bounds the connections of the group is the `Handoff`'s
/// [`AcceptSlots`](credit_actors::net::AcceptSlots) (make it with
/// `max_conns`), which every listener of the group takes a slot from
/// before each accept, and each service gives back as a session ends.
#[derive(Clone, Debug)]
pub struct GroupAccept {
    /// The group's table of services.
    pub handoff: Handoff,
    /// This reactor's service listens.
    pub listen: bool,
}

/// Accept credit a listening service of a group issues: unbounded (the
/// group's slots bound the connections).
const GROUP_ACCEPT_CREDIT: i64 = i64::MAX;

impl Default for EchoConfig {
    fn default() -> EchoConfig {
        EchoConfig {
            listen: ListenSpec::port(4096),
            conn: SocketConfig::default(),
            max_conns: None,
            window: DEFAULT_WINDOW,
            group: None,
        }
    }
}

/// Messages to an [`EchoService`].
#[derive(Debug)]
pub enum ServiceMsg {
    /// From the listening socket.
    Listener(ListenerEvent),
    /// From an accepted socket not yet handed to its session.
    Socket(SocketEvent),
    /// Answered with the listening address once listening (detached until
    /// then), or rejected if listening failed.
    WhenReady(Reply<SocketAddr>),
    /// Answered with the number of live sessions.
    Sessions(Reply<usize>),
}

impl From<ListenerEvent> for ServiceMsg {
    fn from(e: ListenerEvent) -> Self {
        ServiceMsg::Listener(e)
    }
}

impl From<SocketEvent> for ServiceMsg {
    fn from(e: SocketEvent) -> Self {
        ServiceMsg::Socket(e)
    }
}

/// The connection-accepting half of the echo server.
#[derive(Debug)]
pub struct EchoService {
    config: EchoConfig,
    sock: Option<Addr<Listener>>,
    local_addr: Option<SocketAddr>,
    waiting: Vec<Reply<SocketAddr>>,
    sessions: usize,
    /// Accept credit issued and not yet used.
    accept_credit: usize,
}

impl EchoService {
    /// A service with these settings.
    pub fn new(config: EchoConfig) -> EchoService {
        EchoService {
            config,
            sock: None,
            local_addr: None,
            waiting: Vec::new(),
            sessions: 0,
            accept_credit: 0,
        }
    }

    /// Issues one unit of accept credit, unless that would let the sessions
    /// exceed `max_conns`.
    fn issue_accept_credit(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(sock) = self.sock else {
            return;
        };
        if let Some(max) = self.config.max_conns {
            if self.sessions + self.accept_credit >= max {
                return;
            }
        }
        self.accept_credit += 1;
        sock.issue_credit(ctx, 1);
    }

    fn listener_event(&mut self, ctx: &mut Ctx<'_, Self>, event: ListenerEvent) {
        match event {
            ListenerEvent::Ready(_, result) => {
                info!(
                    "Echo server {} accepting connections{}",
                    if result.is_ok() { "is" } else { "is not" },
                    match &result {
                        Ok(addr) => format!(" on {addr}"),
                        Err(e) => format!(" ({e})"),
                    }
                );
                match result {
                    Ok(addr) => {
                        self.local_addr = Some(addr);
                        for r in self.waiting.drain(..) {
                            r.resolve(ctx, addr);
                        }
                    }
                    Err(e) => {
                        for r in self.waiting.drain(..) {
                            r.reject(ctx, RequestError::rejected(e.to_string()));
                        }
                    }
                }
            }
            ListenerEvent::Accepted(_, conn, peer) => self.accepted(ctx, conn, peer),
        }
    }

    /// The tutorial's `tcpServer:accepted:`, step by step.
    fn accepted(&mut self, ctx: &mut Ctx<'_, Self>, conn: Addr<Socket>, peer: SocketAddr) {
        if self.config.conn.proxy.is_some() {
            // The proxy's address: the session logs the client's, once the
            // PROXY header says it.
            debug!("Connection accepted: {conn} from the proxy at {peer}");
        } else {
            info!("Connection accepted: {conn} from {peer}");
        }
        let session = ctx.spawn(EchoSession::with_window(self.config.window));
        ctx.monitor(session.id(), SESSION_MONITOR);
        ctx.send(session, SessionMsg::Connection(conn));
        conn.set_controller(ctx, session);
        self.sessions += 1;
        if self.config.group.is_none() {
            self.accept_credit = self.accept_credit.saturating_sub(1);
            self.issue_accept_credit(ctx);
        }
    }
}

const SESSION_MONITOR: MonitorRef = 1;

impl Actor for EchoService {
    type Msg = ServiceMsg;

    /// The tutorial's `initialize`: listen, then issue accept credit.
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(group) = self.config.group.clone() {
            group.handoff.join(ctx);
            if group.listen {
                let sock = Listener::listen_handoff(
                    ctx,
                    self.config.listen.clone(),
                    self.config.conn.clone(),
                    group.handoff,
                );
                self.sock = Some(sock);
                sock.issue_credit(ctx, GROUP_ACCEPT_CREDIT);
            }
            return;
        }
        self.sock = Some(Listener::listen_with(
            ctx,
            self.config.listen.clone(),
            self.config.conn.clone(),
        ));
        self.issue_accept_credit(ctx);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ServiceMsg) {
        match msg {
            ServiceMsg::Listener(event) => self.listener_event(ctx, event),
            ServiceMsg::Socket(event) => {
                debug!("event for a socket not yet handed on: {event:?}")
            }
            ServiceMsg::WhenReady(reply) => match self.local_addr {
                Some(addr) => reply.resolve(ctx, addr),
                None => self.waiting.push(reply),
            },
            ServiceMsg::Sessions(reply) => reply.resolve(ctx, self.sessions),
        }
    }

    /// The listener's link notice ends the service (by default); a socket
    /// not yet handed to its session is linked here too, and its end is
    /// that connection's business only.
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _reason: &ExitReason,
    ) -> LinkAction {
        if self.sock.is_some_and(|s| s.id() == peer) {
            LinkAction::Exit
        } else {
            LinkAction::Stay
        }
    }

    /// The tutorial's `peer:monitor:terminatedWith:`.
    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        session: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        if reason.is_normal() {
            info!("Session ended: {session}");
        } else {
            warn!("Session ended: {session} ({reason})");
        }
        self.sessions = self.sessions.saturating_sub(1);
        if let Some(group) = &self.config.group {
            // Its slot is free: the first listener waiting for one goes on.
            if let Some(slots) = group.handoff.slots() {
                slots.free(ctx);
            }
        } else {
            self.issue_accept_credit(ctx);
        }
    }
}

/// Messages to an [`EchoSession`].
#[derive(Debug)]
pub enum SessionMsg {
    /// The tutorial's `connection:`: the socket this session serves.
    Connection(Addr<Socket>),
    /// From the socket.
    Socket(SocketEvent),
}

impl From<SocketEvent> for SessionMsg {
    fn from(e: SocketEvent) -> Self {
        SessionMsg::Socket(e)
    }
}

/// One connected session of the echo server.
#[derive(Debug)]
pub struct EchoSession {
    conn: Option<Addr<Socket>>,
    /// Credit issued when the connection arrives. The tutorial issues one
    /// unit; a larger window lets the socket hand over every line of one
    /// read in one turn. Either way one more unit is issued per line
    /// answered, so at most `window` lines are ever waiting here.
    window: u32,
}

/// The default credit window of a session: enough for a pipelining client's
/// whole read (64 lines in flight) to be answered in one turn.
pub const DEFAULT_WINDOW: u32 = 64;

impl Default for EchoSession {
    fn default() -> Self {
        EchoSession::new()
    }
}

impl EchoSession {
    /// A session waiting for its connection, with the default window.
    pub fn new() -> EchoSession {
        EchoSession::with_window(DEFAULT_WINDOW)
    }

    /// A session that issues `window` units of credit up front (1 is the
    /// tutorial, line by line).
    pub fn with_window(window: u32) -> EchoSession {
        EchoSession {
            conn: None,
            window: window.max(1),
        }
    }

    /// The tutorial's `connection:`.
    fn connection(&mut self, ctx: &mut Ctx<'_, Self>, conn: Addr<Socket>) {
        self.conn = Some(conn);
        conn.delimiter_mode(ctx, Delimiter::lf());
        conn.issue_credit(ctx, i64::from(self.window));
    }

    /// The tutorial's `tcpSocket:data:`.
    fn data(&mut self, ctx: &mut Ctx<'_, Self>, conn: Addr<Socket>, line: Unit) {
        debug!(
            "Received line: {}",
            String::from_utf8_lossy(line.as_bytes())
        );
        conn.send_line_parts(
            ctx,
            Bytes::from_static(REPLY_PREFIX.as_bytes()),
            line.into_bytes(),
        );
        conn.issue_credit(ctx, 1);
    }
}

impl Actor for EchoSession {
    type Msg = SessionMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SessionMsg) {
        match msg {
            SessionMsg::Connection(conn) => self.connection(ctx, conn),
            SessionMsg::Socket(SocketEvent::Data(conn, Ok(line))) => self.data(ctx, conn, line),
            SessionMsg::Socket(SocketEvent::Data(conn, Err(e))) => {
                // The unit was skipped; answer so every line gets one reply.
                debug!("Rejected line: {e}");
                conn.send_line(ctx, format!("error: {e}"));
                conn.issue_credit(ctx, 1);
            }
            SessionMsg::Socket(SocketEvent::Closed(_, reason)) => {
                debug!("Disconnected: {reason}");
                ctx.stop();
            }
            SessionMsg::Socket(SocketEvent::Timeout(conn)) => {
                debug!("Idle timeout: closing {conn}");
                conn.stop(ctx);
                ctx.stop();
            }
            SessionMsg::Socket(SocketEvent::Proxied(conn, header)) => match header.source {
                _ if header.is_local() => {
                    debug!("Connection {conn}: the proxy's own (health check)")
                }
                Some(client) => info!(
                    "Connection {conn} from {client} (PROXY v{})",
                    header.version
                ),
                None => info!(
                    "Connection {conn} through the proxy, no client address (PROXY v{})",
                    header.version
                ),
            },
            SessionMsg::Socket(SocketEvent::Connected(..)) => {}
        }
    }
}

/// Messages to an [`EchoClient`].
#[derive(Debug)]
pub enum ClientMsg {
    /// Send a line; the reply line answers the request.
    SendLine(String, Reply<String>),
    /// Answered with the peer address once connected (detached until then),
    /// or rejected with the reason the connection failed.
    WhenConnected(Reply<SocketAddr>),
    /// Terminate the client (its socket closes through the link).
    Stop,
    /// From the socket.
    Socket(SocketEvent),
}

impl From<SocketEvent> for ClientMsg {
    fn from(e: SocketEvent) -> Self {
        ClientMsg::Socket(e)
    }
}

/// The tutorial's echo client.
#[derive(Debug)]
pub struct EchoClient {
    host: String,
    port: u16,
    conn: Option<Addr<Socket>>,
    /// Callers waiting for a reply line, oldest first (the tutorial's
    /// `readers`).
    readers: VecDeque<Reply<String>>,
    connected: Option<SocketAddr>,
    waiting_connect: Vec<Reply<SocketAddr>>,
    /// Why the connection ended, once it has.
    closed: Option<CloseReason>,
}

impl EchoClient {
    /// A client that connects to `host:port` when it starts.
    pub fn new(host: impl Into<String>, port: u16) -> EchoClient {
        EchoClient {
            host: host.into(),
            port,
            conn: None,
            readers: VecDeque::new(),
            connected: None,
            waiting_connect: Vec::new(),
            closed: None,
        }
    }

    /// Spawns a client on a reactor from another thread.
    pub fn spawn(
        handle: &ReactorHandle,
        host: impl Into<String>,
        port: u16,
    ) -> Result<EchoClientHandle, RequestError> {
        let host = host.into();
        let addr = handle.spawn(move || EchoClient::new(host, port))?;
        Ok(EchoClientHandle {
            handle: handle.clone(),
            addr,
        })
    }

    fn closed_error(&self) -> RequestError {
        match &self.closed {
            Some(reason) => RequestError::rejected(format!("connection closed: {reason}")),
            None => RequestError::rejected("not connected"),
        }
    }

    /// The tutorial's `sendLine:`: detach the caller, send, issue credit.
    fn send_line(&mut self, ctx: &mut Ctx<'_, Self>, line: String, caller: Reply<String>) {
        let Some(conn) = self.conn.filter(|_| self.closed.is_none()) else {
            let err = self.closed_error();
            caller.reject(ctx, err);
            return;
        };
        self.readers.push_back(caller);
        conn.send_line(ctx, line);
        conn.issue_credit(ctx, 1);
    }

    fn socket_event(&mut self, ctx: &mut Ctx<'_, Self>, event: SocketEvent) {
        match event {
            // The tutorial's `tcpSocketConnected:`.
            SocketEvent::Connected(conn, addr) => {
                conn.delimiter_mode(ctx, Delimiter::lf());
                self.connected = Some(addr);
                for r in self.waiting_connect.drain(..) {
                    r.resolve(ctx, addr);
                }
            }
            // The tutorial's `tcpSocket:data:`.
            SocketEvent::Data(_, Ok(line)) => {
                let text = match line.as_text() {
                    Some(t) => t.as_str().to_owned(),
                    None => String::from_utf8_lossy(line.as_bytes()).into_owned(),
                };
                if let Some(reader) = self.readers.pop_front() {
                    reader.resolve(ctx, text);
                }
            }
            SocketEvent::Data(_, Err(e)) => {
                if let Some(reader) = self.readers.pop_front() {
                    reader.reject(ctx, RequestError::rejected(e.to_string()));
                }
            }
            SocketEvent::Closed(_, reason) => {
                self.closed = Some(reason);
                let err = self.closed_error();
                for r in self.readers.drain(..) {
                    r.reject(ctx, err.clone());
                }
                for r in self.waiting_connect.drain(..) {
                    r.reject(ctx, err.clone());
                }
            }
            // Outgoing connections read no PROXY header.
            SocketEvent::Timeout(_) | SocketEvent::Proxied(..) => {}
        }
    }
}

impl Actor for EchoClient {
    type Msg = ClientMsg;

    /// The tutorial's `initialize`: connect (this actor becomes the
    /// socket's controller, linked to it).
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.conn = Some(Socket::connect(ctx, &self.host, self.port));
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ClientMsg) {
        match msg {
            ClientMsg::SendLine(line, caller) => self.send_line(ctx, line, caller),
            ClientMsg::WhenConnected(reply) => match (self.connected, &self.closed) {
                (Some(addr), None) => reply.resolve(ctx, addr),
                (_, Some(_)) => {
                    let err = self.closed_error();
                    reply.reject(ctx, err)
                }
                (None, None) => self.waiting_connect.push(reply),
            },
            // The tutorial's `stop`.
            ClientMsg::Stop => ctx.stop(),
            ClientMsg::Socket(event) => self.socket_event(ctx, event),
        }
    }

    fn link_exit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        reason: &ExitReason,
    ) -> LinkAction {
        // The socket actor ended, after reporting why if it could. Stay, so
        // later callers learn that reason rather than "dead actor".
        if self.closed.is_none() {
            self.closed = Some(CloseReason::Error {
                kind: std::io::ErrorKind::NotConnected,
                message: Arc::from(format!("socket actor ended: {reason}")),
            });
        }
        let err = self.closed_error();
        for r in self.readers.drain(..) {
            r.reject(ctx, err.clone());
        }
        for r in self.waiting_connect.drain(..) {
            r.reject(ctx, err.clone());
        }
        LinkAction::Stay
    }
}

/// An [`EchoClient`] seen from another thread.
#[derive(Debug, Clone)]
pub struct EchoClientHandle {
    handle: ReactorHandle,
    addr: Addr<EchoClient>,
}

impl EchoClientHandle {
    /// The client actor.
    pub fn addr(&self) -> Addr<EchoClient> {
        self.addr
    }

    /// Waits until connected; the error says why not (refused, ...).
    pub fn connected(&self, timeout: Duration) -> Result<SocketAddr, RequestError> {
        self.handle
            .request(self.addr, ClientMsg::WhenConnected)
            .wait_timeout(timeout)
    }

    /// Sends a line; `wait` on the result for the reply (the tutorial's
    /// `(c sendLine: 'hello') wait`). Several may be in flight.
    pub fn send_line(&self, line: impl Into<String>) -> PendingReply<String> {
        let line = line.into();
        self.handle
            .request(self.addr, move |r| ClientMsg::SendLine(line, r))
    }

    /// Terminates the client; its socket closes through the link.
    pub fn stop(&self) {
        self.handle.send(self.addr, ClientMsg::Stop);
    }
}
