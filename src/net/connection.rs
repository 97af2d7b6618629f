//! The connected-socket actor.
//!
//! A [`Connection`] owns one TCP stream. It reads into a `BytesMut`, cuts
//! work units with a [`Framer`], and hands them to its *controlling actor*
//! one per unit of credit. With no credit it stops reading, so unread bytes
//! stay in the kernel and TCP pushes back on the peer. Output is queued and
//! flushed at the end of the reactor turn, so everything a connection
//! produces in one turn leaves in one (vectored) write.
//!
//! Invariants:
//! - no unit is delivered while credit is zero;
//! - `may_read` is true whenever the kernel may hold unread bytes that no
//!   future readiness event will announce (edge-triggered readiness: after
//!   stopping for lack of credit the socket resumes by itself when credit
//!   arrives);
//! - the read buffer never exceeds the framer's room (`max_unit` plus the
//!   delimiter), and input is held back while queued output is above the
//!   high-water mark, so memory stays bounded whatever the peer does;
//! - `closed` reaches the controller once, after every unit that preceded it.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::Interest;

use crate::actor::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, Recipient, Reply, RequestError,
};
use crate::net::framing::{Delimiter, Framer, Mode, Unit, UnitError};
use crate::net::output::{Flushed, Output};
use crate::reactor::Ready;

/// A handle to a connected-socket actor.
pub type Socket = Addr<Connection>;

/// Events a connection sends its controlling actor. The controller's message
/// type implements `From<SocketEvent>`.
#[derive(Debug)]
pub enum SocketEvent {
    /// An outgoing connection is up, to this peer address.
    Connected(Socket, SocketAddr),
    /// One work unit, or the typed reason one could not be delivered (the
    /// connection goes on with the next unit). Uses one unit of credit.
    Data(Socket, Result<Unit, UnitError>),
    /// The input side ended, or the connection failed. After an orderly
    /// close the socket still accepts output until it is stopped.
    Closed(Socket, CloseReason),
    /// Nothing was received for the idle timeout.
    Timeout(Socket),
}

/// Why a connection's input ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer finished sending (EOF) after every unit was delivered: the
    /// tutorial's empty reason. Output may still be sent.
    Orderly,
    /// The peer reset the connection.
    Reset,
    /// An I/O error (including a failed connect).
    Error {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's text.
        message: Arc<str>,
    },
    /// A limit was exceeded and the connection's policy is to close.
    LimitExceeded(Arc<str>),
    /// Output made no progress for the write timeout.
    WriteTimeout,
}

impl CloseReason {
    fn from_io(e: &io::Error) -> CloseReason {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => CloseReason::Reset,
            kind => CloseReason::Error {
                kind,
                message: e.to_string().into(),
            },
        }
    }

    /// True for [`CloseReason::Orderly`].
    pub fn is_orderly(&self) -> bool {
        matches!(self, CloseReason::Orderly)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Orderly => f.write_str("closed by peer"),
            CloseReason::Reset => f.write_str("connection reset by peer"),
            CloseReason::Error { message, .. } => write!(f, "I/O error: {message}"),
            CloseReason::LimitExceeded(what) => write!(f, "limit exceeded: {what}"),
            CloseReason::WriteTimeout => f.write_str("write timeout: output made no progress"),
        }
    }
}

/// What to do with a unit longer than `max_unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverlongPolicy {
    /// Deliver `Data(Err(TooLong))` in its place, discard through the next
    /// delimiter and go on (tokio's `LinesCodec`). The default.
    #[default]
    Skip,
    /// Close the connection with [`CloseReason::LimitExceeded`] (Akka's
    /// framing stages).
    Close,
}

/// Settings for connections, shared by all the connections a listener
/// accepts.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Longest work unit, delimiter excluded. Default 64 KiB.
    pub max_unit: usize,
    /// What an overlong unit does.
    pub overlong: OverlongPolicy,
    /// Queued output above which input is held back from the controller.
    /// Default 1 MiB. Input resumes below half of it.
    pub high_water: usize,
    /// Bytes asked of the kernel per read. Default 16 KiB.
    pub read_size: usize,
    /// Appended by `send_line`. Default LF.
    pub line_terminator: Bytes,
    /// Sends `Timeout` after this long without input. Off by default.
    pub idle_timeout: Option<Duration>,
    /// Closes the connection when queued output makes no progress for this
    /// long. Off by default.
    pub write_timeout: Option<Duration>,
    /// How long a stopping connection may take to flush its output before
    /// it is closed regardless. Default 10 s.
    pub linger: Duration,
}

impl Default for ConnConfig {
    fn default() -> ConnConfig {
        ConnConfig {
            max_unit: Framer::DEFAULT_MAX_UNIT,
            overlong: OverlongPolicy::Skip,
            high_water: 1 << 20,
            read_size: 16 * 1024,
            line_terminator: Bytes::from_static(b"\n"),
            idle_timeout: None,
            write_timeout: None,
            linger: Duration::from_secs(10),
        }
    }
}

/// How a credit operation changes credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditOp {
    /// Adds `n` (negative subtracts; the result is clamped at zero).
    Issue(i64),
    /// No limit: every unit is delivered as it arrives.
    Infinite,
    /// Zero: nothing is delivered until more is issued.
    Zero,
}

/// A message to a [`Connection`]. Build one with the constructors (for use
/// from other threads), or use the methods on [`Socket`] from an actor.
#[derive(Debug)]
pub struct SocketMsg(Cmd);

#[derive(Debug)]
enum Cmd {
    SetController(Recipient<SocketEvent>),
    SetMode(Mode),
    SetMaxUnit(usize),
    Credit(CreditOp),
    Send {
        head: Bytes,
        body: Bytes,
        line: bool,
    },
    SendAll(Vec<Bytes>),
    Promise(Reply<()>),
    SetLineTerminator(Bytes),
    SetIdleTimeout(Option<Duration>),
    SetWriteTimeout(Option<Duration>),
    Stop,
    Resolved(Result<Vec<SocketAddr>, CloseReason>),
    IdleCheck,
    WriteCheck,
    LingerExpired,
}

impl SocketMsg {
    /// Adds one unit of credit.
    pub fn issue_credit(n: i64) -> SocketMsg {
        SocketMsg(Cmd::Credit(CreditOp::Issue(n)))
    }
    /// A credit operation.
    pub fn credit(op: CreditOp) -> SocketMsg {
        SocketMsg(Cmd::Credit(op))
    }
    /// Changes how input is cut into units.
    pub fn set_mode(mode: Mode) -> SocketMsg {
        SocketMsg(Cmd::SetMode(mode))
    }
    /// Sends bytes as they are.
    pub fn send(data: impl Into<Bytes>) -> SocketMsg {
        SocketMsg(Cmd::Send {
            head: Bytes::new(),
            body: data.into(),
            line: false,
        })
    }
    /// Sends a line: the text, then the line terminator.
    pub fn send_line(text: impl Into<Bytes>) -> SocketMsg {
        SocketMsg(Cmd::Send {
            head: Bytes::new(),
            body: text.into(),
            line: true,
        })
    }
    /// Hands the socket to another controlling actor.
    pub fn set_controller(to: Recipient<SocketEvent>) -> SocketMsg {
        SocketMsg(Cmd::SetController(to))
    }
    /// Closes the connection once queued output is flushed.
    pub fn stop() -> SocketMsg {
        SocketMsg(Cmd::Stop)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Resolving the name or waiting for the connect to complete.
    Connecting,
    Open,
    /// Stopping: no more input; flushing output, then closing.
    Draining,
}

/// Per-socket counters, summed over the reactor's connections (see
/// [`Metrics::sockets`](crate::reactor::Metrics::sockets)).
pub use crate::reactor::SocketStats;

/// The connected-socket actor. See the module docs.
pub struct Connection {
    stream: Option<TcpStream>,
    peer: Option<SocketAddr>,
    state: State,
    controller: Recipient<SocketEvent>,
    framer: Framer,
    /// Units the controller has asked for; `u64::MAX` is infinite.
    credit: u64,
    rbuf: BytesMut,
    out: Output,
    config: Rc<ConnConfig>,
    line_terminator: Bytes,
    idle_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The kernel may hold bytes no readiness event will announce again.
    may_read: bool,
    /// The peer finished sending.
    eof: bool,
    /// A readiness event reported the peer's FIN (EPOLLRDHUP): EOF is
    /// pending even after a short read, and no further edge will say so.
    read_closed: bool,
    closed_sent: bool,
    /// Input held back: output above the high-water mark.
    held: bool,
    flush_pending: bool,
    last_input: Instant,
    last_output_progress: Instant,
    idle_armed: bool,
    write_check_armed: bool,
    /// Addresses still to try while connecting.
    targets: Vec<SocketAddr>,
    connect_target: Option<(String, u16)>,
}

const INFINITE: u64 = u64::MAX;

impl Connection {
    fn new(
        stream: Option<TcpStream>,
        peer: Option<SocketAddr>,
        state: State,
        controller: Recipient<SocketEvent>,
        config: Rc<ConnConfig>,
    ) -> Connection {
        let now = Instant::now();
        Connection {
            stream,
            peer,
            state,
            controller,
            framer: Framer::new(Mode::Raw, config.max_unit),
            credit: 0,
            rbuf: BytesMut::new(),
            out: Output::default(),
            line_terminator: config.line_terminator.clone(),
            idle_timeout: config.idle_timeout,
            write_timeout: config.write_timeout,
            config,
            may_read: true,
            eof: false,
            read_closed: false,
            closed_sent: false,
            held: false,
            flush_pending: false,
            last_input: now,
            last_output_progress: now,
            idle_armed: false,
            write_check_armed: false,
            targets: Vec::new(),
            connect_target: None,
        }
    }

    /// A connection over an accepted stream. Used by the listener.
    pub(crate) fn accepted(
        stream: TcpStream,
        peer: SocketAddr,
        controller: Recipient<SocketEvent>,
        config: Rc<ConnConfig>,
    ) -> Connection {
        Connection::new(Some(stream), Some(peer), State::Open, controller, config)
    }

    /// Spawns a connection to `host:port` controlled by the calling actor
    /// (and linked to it). Names are resolved off the reactor thread; IPv4
    /// and IPv6 both work. The controller gets `Connected`, or `Closed` with
    /// the error.
    pub fn connect<A: Actor>(ctx: &mut Ctx<'_, A>, host: &str, port: u16) -> Socket
    where
        A::Msg: From<SocketEvent>,
    {
        Connection::connect_with(ctx, host, port, ConnConfig::default())
    }

    /// [`Connection::connect`] with settings.
    pub fn connect_with<A: Actor>(
        ctx: &mut Ctx<'_, A>,
        host: &str,
        port: u16,
        config: ConnConfig,
    ) -> Socket
    where
        A::Msg: From<SocketEvent>,
    {
        let mut conn = Connection::new(
            None,
            None,
            State::Connecting,
            ctx.me().recipient(),
            Rc::new(config),
        );
        conn.connect_target = Some((host.to_string(), port));
        ctx.spawn(conn)
    }

    /// The peer's address, once known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn me(ctx: &Ctx<'_, Self>) -> Socket {
        ctx.me()
    }

    fn emit(&mut self, ctx: &mut Ctx<'_, Self>, event: SocketEvent) {
        let to = self.controller;
        to.deliver(ctx.core(), event);
    }

    // ----- input -----------------------------------------------------------

    /// Delivers buffered units while credit lasts, reading more when the
    /// buffer runs dry and the socket may hold data.
    fn pump(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state != State::Open {
            return;
        }
        loop {
            let mut exhausted = false;
            while self.credit > 0 && !self.held {
                match self.framer.next_unit(&mut self.rbuf, self.eof) {
                    Some(unit) => {
                        if self.credit != INFINITE {
                            self.credit -= 1;
                        }
                        metric! {
                            ctx.core().sock().units += 1;
                        }
                        #[cfg(feature = "trace")]
                        let me = ctx.id();
                        trace_ev!(ctx.core().trace, "U {me}");
                        if let (Err(UnitError::TooLong { limit }), OverlongPolicy::Close) =
                            (&unit, self.config.overlong)
                        {
                            let what = format!("work unit longer than {limit} bytes");
                            self.fail(ctx, CloseReason::LimitExceeded(what.into()));
                            return;
                        }
                        let me = Self::me(ctx);
                        self.emit(ctx, SocketEvent::Data(me, unit));
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if !exhausted {
                // Out of credit (or held) with input possibly waiting.
                if !self.rbuf.is_empty() || self.may_read {
                    metric! {
                        ctx.core().sock().credit_stalls += u64::from(!self.held);
                    }
                }
                break;
            }
            if self.eof || !self.may_read {
                break;
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = ctx.core().take_buffer(self.config.read_size);
            }
            match self.read(ctx) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.fail(ctx, CloseReason::from_io(&e));
                    return;
                }
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            // An idle connection keeps no read buffer.
            let buf = std::mem::take(&mut self.rbuf);
            ctx.core().give_buffer(buf);
        }
        if self.eof && !self.closed_sent && (self.rbuf.is_empty() || self.framer.is_discarding()) {
            self.closed_sent = true;
            let me = Self::me(ctx);
            self.emit(ctx, SocketEvent::Closed(me, CloseReason::Orderly));
        }
    }

    /// One read into the buffer's spare room. Ok(true) if bytes (or EOF)
    /// arrived and the framer should look again.
    fn read(&mut self, ctx: &mut Ctx<'_, Self>) -> io::Result<bool> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(false);
        };
        // Reads grow with a partial unit (doubling), so a long line takes a
        // few reads, not one per `read_size` bytes.
        let read_size = self.config.read_size.max(self.rbuf.len()).max(1);
        let room = self.framer.room(&self.rbuf).min(read_size);
        if room == 0 {
            return Ok(false);
        }
        if self.rbuf.capacity() - self.rbuf.len() < room {
            self.rbuf.reserve(room);
        }
        metric! {
            ctx.core().sock().reads += 1;
        }
        let spare = self.rbuf.chunk_mut();
        let want = spare.len().min(room);
        // SAFETY: `spare` is the buffer's uninitialised tail, valid for
        // `want <= spare.len()` bytes of writes; `read(2)` writes at most
        // `want` bytes and returns how many, and only that many are then
        // marked initialised with `advance_mut`. Reading straight into spare
        // capacity avoids zeroing 16 KiB per read on the hot path.
        let n = unsafe { libc::read(stream.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => {
                    metric! {
                        ctx.core().sock().empty_reads += 1;
                    }
                    self.may_read = false;
                    Ok(false)
                }
                io::ErrorKind::Interrupted => Ok(true),
                _ => Err(e),
            };
        }
        let n = n as usize;
        #[cfg(feature = "trace")]
        let me = ctx.id();
        trace_ev!(ctx.core().trace, "R {me} {n}");
        if n == 0 {
            self.eof = true;
            self.may_read = false;
            return Ok(true);
        }
        // SAFETY: the kernel initialised the first `n` bytes of `spare`.
        unsafe { self.rbuf.advance_mut(n) };
        metric! {
            ctx.core().sock().bytes_in += n as u64;
        }
        self.last_input = ctx.now();
        if n < want && !self.read_closed {
            // A short read drained the socket: the next arrival raises a new
            // edge, so there is no need to spend a syscall on WouldBlock.
            // Not so once the peer's FIN was reported: the EOF behind these
            // bytes raises no new edge.
            self.may_read = false;
        }
        Ok(true)
    }

    fn add_credit(&mut self, op: CreditOp) {
        self.credit = match op {
            CreditOp::Infinite => INFINITE,
            CreditOp::Zero => 0,
            CreditOp::Issue(_) if self.credit == INFINITE => INFINITE,
            CreditOp::Issue(n) if n >= 0 => self.credit.saturating_add(n as u64).min(INFINITE - 1),
            CreditOp::Issue(n) => self.credit.saturating_sub(n.unsigned_abs()),
        };
    }

    // ----- output ----------------------------------------------------------

    fn queue(&mut self, ctx: &mut Ctx<'_, Self>) {
        #[cfg(feature = "trace")]
        let me = ctx.id();
        trace_ev!(ctx.core().trace, "O {me}");
        if self.out.queued() > 0 && !self.flush_pending {
            self.flush_pending = true;
            ctx.at_turn_end();
        }
        if self.out.queued() > self.config.high_water && !self.held {
            self.held = true;
            metric! {
                ctx.core().sock().high_water += 1;
            }
        }
        if let Some(t) = self.write_timeout {
            if !self.write_check_armed && self.out.queued() > 0 {
                self.write_check_armed = true;
                self.last_output_progress = ctx.now();
                let me = Self::me(ctx);
                ctx.send_after(me, SocketMsg(Cmd::WriteCheck), t);
            }
        }
    }

    fn push_send(&mut self, ctx: &mut Ctx<'_, Self>, head: &Bytes, body: &Bytes, line: bool) {
        if self.out.is_empty() {
            self.out.reserve_tail(ctx.core());
        }
        let terminator: &[u8] = if line { &self.line_terminator } else { &[] };
        self.out.push3(head, body, terminator);
        self.queue(ctx);
    }

    fn flush(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Connecting || self.out.is_empty() {
            return;
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let before = self.out.written();
        metric! {
            ctx.core().sock().flushes += 1;
        }
        let result = self.out.flush(stream, ctx.core());
        let progressed = self.out.written() - before;
        if progressed > 0 {
            metric! {
                ctx.core().sock().bytes_out += progressed;
            }
            #[cfg(feature = "trace")]
            let me = ctx.id();
            trace_ev!(ctx.core().trace, "W {me} {progressed}");
            self.last_output_progress = ctx.now();
        }
        if let Some(tail) = self.out.take_idle_tail() {
            ctx.core().give_buffer(tail);
        }
        match result {
            Ok(Flushed::All) | Ok(Flushed::Blocked) => {}
            Err(e) => {
                self.fail(ctx, CloseReason::from_io(&e));
                return;
            }
        }
        if self.held && self.out.queued() <= self.config.high_water / 2 {
            self.held = false;
            self.pump(ctx);
        }
        if self.state == State::Draining && self.out.is_empty() {
            self.finish(ctx);
        }
    }

    // ----- closing ---------------------------------------------------------

    /// Stops input, flushes what is queued, then closes.
    fn drain(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Draining {
            return;
        }
        if self.state == State::Connecting {
            self.finish(ctx);
            return;
        }
        self.state = State::Draining;
        self.flush(ctx);
        if self.out.is_empty() {
            self.finish(ctx);
        } else {
            let me = Self::me(ctx);
            ctx.send_after(me, SocketMsg(Cmd::LingerExpired), self.config.linger);
        }
    }

    /// Closes after a clean drain.
    fn finish(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(s) = self.stream.as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        ctx.stop();
    }

    /// Closes at once after a failure: tells the controller (unless it
    /// already heard of the close), rejects pending send promises, exits.
    fn fail(&mut self, ctx: &mut Ctx<'_, Self>, reason: CloseReason) {
        let err = RequestError::rejected(format!("connection closed: {reason}"));
        self.out.fail(ctx.core(), &err);
        if !self.closed_sent || !reason.is_orderly() {
            self.closed_sent = true;
            let me = Self::me(ctx);
            self.emit(ctx, SocketEvent::Closed(me, reason));
        }
        ctx.stop();
    }

    // ----- connecting ------------------------------------------------------

    fn start_connect(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some((host, port)) = self.connect_target.take() else {
            return;
        };
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal {
            self.targets = vec![SocketAddr::new(ip, port)];
            self.next_target(ctx, None);
        } else if host.eq_ignore_ascii_case("localhost") {
            self.targets = vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            ];
            self.next_target(ctx, None);
        } else {
            // Name resolution blocks, so it runs on its own thread and
            // reports back as a message.
            let handle = ctx.handle();
            let me = Self::me(ctx);
            let spawned = std::thread::Builder::new()
                .name("resolve".into())
                .spawn(move || {
                    let result = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|a| a.collect::<Vec<_>>())
                        .map_err(|e| CloseReason::from_io(&e));
                    handle.send(me, SocketMsg(Cmd::Resolved(result)));
                });
            if let Err(e) = spawned {
                self.fail(ctx, CloseReason::from_io(&e));
            }
        }
    }

    /// Tries the next resolved address (the list is used back to front).
    fn next_target(&mut self, ctx: &mut Ctx<'_, Self>, last_error: Option<io::Error>) {
        if let Some(mut s) = self.stream.take() {
            let _ = ctx.deregister(&mut s);
        }
        let mut last_error = last_error;
        while let Some(addr) = self.targets.pop() {
            match TcpStream::connect(addr) {
                Ok(mut s) => match ctx.register(&mut s, Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => {
                        self.peer = Some(addr);
                        self.stream = Some(s);
                        return;
                    }
                    Err(e) => last_error = Some(e),
                },
                Err(e) => last_error = Some(e),
            }
        }
        let e = last_error
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
        self.fail(ctx, CloseReason::from_io(&e));
    }

    fn connect_ready(&mut self, ctx: &mut Ctx<'_, Self>, ready: Ready) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            self.next_target(ctx, Some(e));
            return;
        }
        match stream.peer_addr() {
            Ok(peer) => {
                self.peer = Some(peer);
                let _ = stream.set_nodelay(true);
                self.state = State::Open;
                self.targets.clear();
                let me = Self::me(ctx);
                self.emit(ctx, SocketEvent::Connected(me, peer));
                self.arm_idle(ctx);
                if !self.out.is_empty() {
                    self.flush_pending = true;
                    ctx.at_turn_end();
                }
                self.pump(ctx);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !ready.is_error() => {
                // Spurious readiness: still connecting.
            }
            Err(e) => self.next_target(ctx, Some(e)),
        }
    }

    // ----- timers ----------------------------------------------------------

    fn arm_idle(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let (Some(t), false) = (self.idle_timeout, self.idle_armed) {
            self.idle_armed = true;
            self.last_input = ctx.now();
            let me = Self::me(ctx);
            ctx.send_after(me, SocketMsg(Cmd::IdleCheck), t);
        }
    }

    fn idle_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.idle_armed = false;
        let Some(t) = self.idle_timeout else {
            return;
        };
        if self.state != State::Open {
            return;
        }
        let idle = ctx.now().saturating_duration_since(self.last_input);
        let me = Self::me(ctx);
        let next = if idle >= t {
            self.last_input = ctx.now();
            self.emit(ctx, SocketEvent::Timeout(me));
            t
        } else {
            t - idle
        };
        self.idle_armed = true;
        ctx.send_after(me, SocketMsg(Cmd::IdleCheck), next);
    }

    fn write_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.write_check_armed = false;
        let Some(t) = self.write_timeout else {
            return;
        };
        if self.out.is_empty() {
            return;
        }
        let stalled = ctx
            .now()
            .saturating_duration_since(self.last_output_progress);
        if stalled >= t {
            self.fail(ctx, CloseReason::WriteTimeout);
        } else {
            self.write_check_armed = true;
            let me = Self::me(ctx);
            ctx.send_after(me, SocketMsg(Cmd::WriteCheck), t - stalled);
        }
    }
}

impl Actor for Connection {
    type Msg = SocketMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.link(self.controller.id());
        if self.state == State::Connecting {
            self.start_connect(ctx);
            return;
        }
        let registered = match self.stream.as_mut() {
            Some(s) => {
                let _ = s.set_nodelay(true);
                ctx.register(s, Interest::READABLE | Interest::WRITABLE)
            }
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "no stream")),
        };
        if let Err(e) = registered {
            self.fail(ctx, CloseReason::from_io(&e));
            return;
        }
        self.arm_idle(ctx);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, SocketMsg(cmd): SocketMsg) {
        match cmd {
            Cmd::Credit(op) => {
                self.add_credit(op);
                #[cfg(feature = "trace")]
                let me = ctx.id();
                trace_ev!(ctx.core().trace, "C {me} {}", self.credit);
                self.pump(ctx);
            }
            Cmd::Send { head, body, line } => self.push_send(ctx, &head, &body, line),
            Cmd::SendAll(items) => {
                for item in &items {
                    self.push_send(ctx, item, &Bytes::new(), false);
                }
            }
            Cmd::Promise(reply) => self.out.promise(ctx.core(), reply),
            Cmd::SetMode(mode) => {
                self.framer.set_mode(mode);
                self.pump(ctx);
            }
            Cmd::SetMaxUnit(n) => {
                self.framer.set_max_unit(n);
                self.pump(ctx);
            }
            Cmd::SetController(to) => {
                let old = self.controller.id();
                if old != to.id() {
                    ctx.unlink(old);
                    self.controller = to;
                    ctx.link(to.id());
                }
            }
            Cmd::SetLineTerminator(t) => self.line_terminator = t,
            Cmd::SetIdleTimeout(t) => {
                self.idle_timeout = t;
                self.arm_idle(ctx);
            }
            Cmd::SetWriteTimeout(t) => {
                self.write_timeout = t;
                self.queue(ctx);
            }
            Cmd::Stop => self.drain(ctx),
            Cmd::Resolved(Ok(mut addrs)) => {
                // Tried back to front: keep the resolver's preference order.
                addrs.reverse();
                self.targets = addrs;
                self.next_target(ctx, None);
            }
            Cmd::Resolved(Err(reason)) => self.fail(ctx, reason),
            Cmd::IdleCheck => self.idle_check(ctx),
            Cmd::WriteCheck => self.write_check(ctx),
            Cmd::LingerExpired => {
                if self.state == State::Draining {
                    self.out.fail(
                        ctx.core(),
                        &RequestError::rejected("connection closed: linger expired"),
                    );
                    ctx.stop();
                }
            }
        }
    }

    fn io_ready(&mut self, ctx: &mut Ctx<'_, Self>, ready: Ready) {
        if self.state == State::Connecting {
            self.connect_ready(ctx, ready);
            return;
        }
        if ready.is_writable() && !self.out.is_empty() {
            self.flush(ctx);
        }
        if ready.is_readable() && !self.eof {
            self.may_read = true;
            self.read_closed |= ready.is_read_closed() || ready.is_error();
            self.pump(ctx);
        }
    }

    fn turn_end(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.flush_pending = false;
        self.flush(ctx);
    }

    fn link_exit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _reason: &ExitReason,
    ) -> LinkAction {
        // The controller is gone: nobody will read our events, but what it
        // sent before dying still goes out.
        self.drain(ctx);
        LinkAction::Stay
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, Self>, _reason: &ExitReason) {
        self.out
            .fail(ctx.core(), &RequestError::rejected("connection closed"));
        let buf = std::mem::take(&mut self.rbuf);
        if buf.capacity() > 0 {
            ctx.core().give_buffer(buf);
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("state", &self.state)
            .field("credit", &self.credit)
            .finish()
    }
}

/// Operations on a socket, from inside an actor. Each is one message to the
/// connection actor, handled in the order sent.
impl Addr<Connection> {
    /// Adds one unit of credit.
    pub fn issue_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::Credit(CreditOp::Issue(1))));
    }
    /// Adds `n` units of credit (negative `n` subtracts, clamped at zero).
    pub fn issue_credit_n<A: Actor>(&self, ctx: &mut Ctx<'_, A>, n: i64) {
        ctx.send(*self, SocketMsg(Cmd::Credit(CreditOp::Issue(n))));
    }
    /// Delivers every unit as it arrives.
    pub fn infinite_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::Credit(CreditOp::Infinite)));
    }
    /// Stops delivery until credit is issued again.
    pub fn zero_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::Credit(CreditOp::Zero)));
    }
    /// Sets how input is cut into units. Buffered input is re-cut.
    pub fn set_mode<A: Actor>(&self, ctx: &mut Ctx<'_, A>, mode: Mode) {
        ctx.send(*self, SocketMsg(Cmd::SetMode(mode)));
    }
    /// Text units ending at `delimiter` (the tutorial's `delimiterMode:`).
    pub fn delimiter_mode<A: Actor>(&self, ctx: &mut Ctx<'_, A>, delimiter: Delimiter) {
        self.set_mode(ctx, Mode::Text(delimiter));
    }
    /// Sets the longest accepted unit.
    pub fn set_max_unit<A: Actor>(&self, ctx: &mut Ctx<'_, A>, max_unit: usize) {
        ctx.send(*self, SocketMsg(Cmd::SetMaxUnit(max_unit)));
    }
    /// Sends bytes (or text) as they are.
    pub fn send<A: Actor>(&self, ctx: &mut Ctx<'_, A>, data: impl Into<Bytes>) {
        ctx.send(*self, SocketMsg::send(data));
    }
    /// Sends several pieces, in order.
    pub fn send_all<A: Actor>(&self, ctx: &mut Ctx<'_, A>, items: Vec<Bytes>) {
        ctx.send(*self, SocketMsg(Cmd::SendAll(items)));
    }
    /// Sends a line: the text, then the line terminator.
    pub fn send_line<A: Actor>(&self, ctx: &mut Ctx<'_, A>, text: impl Into<Bytes>) {
        ctx.send(*self, SocketMsg::send_line(text));
    }
    /// Sends `head` then `body` then the line terminator, without joining
    /// them first (no allocation for `"You said: "` + line).
    pub fn send_line_parts<A: Actor>(&self, ctx: &mut Ctx<'_, A>, head: Bytes, body: Bytes) {
        ctx.send(
            *self,
            SocketMsg(Cmd::Send {
                head,
                body,
                line: true,
            }),
        );
    }
    /// A promise for everything sent so far: `map` receives `Ok(())` once
    /// those bytes are handed to the kernel, or the rejection if the
    /// connection closes first.
    pub fn flushed<A, F>(&self, ctx: &mut Ctx<'_, A>, map: F)
    where
        A: Actor,
        F: FnOnce(Result<(), RequestError>) -> A::Msg + 'static,
    {
        ctx.request(*self, |r| SocketMsg(Cmd::Promise(r)), map);
    }
    /// Sets the line terminator `send_line` appends.
    pub fn set_line_terminator<A: Actor>(&self, ctx: &mut Ctx<'_, A>, t: impl Into<Bytes>) {
        ctx.send(*self, SocketMsg(Cmd::SetLineTerminator(t.into())));
    }
    /// Sends `Timeout` to the controller after this long without input.
    pub fn set_idle_timeout<A: Actor>(&self, ctx: &mut Ctx<'_, A>, t: Option<Duration>) {
        ctx.send(*self, SocketMsg(Cmd::SetIdleTimeout(t)));
    }
    /// Closes when output makes no progress for this long.
    pub fn set_write_timeout<A: Actor>(&self, ctx: &mut Ctx<'_, A>, t: Option<Duration>) {
        ctx.send(*self, SocketMsg(Cmd::SetWriteTimeout(t)));
    }
    /// Makes another actor the controller: it receives the events from now
    /// on, and the socket is linked to it instead.
    pub fn set_controller<A: Actor, B: Actor>(&self, ctx: &mut Ctx<'_, A>, to: Addr<B>)
    where
        B::Msg: From<SocketEvent>,
    {
        ctx.send(*self, SocketMsg(Cmd::SetController(to.recipient())));
    }
    /// Closes the connection once queued output is flushed.
    pub fn stop<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::Stop));
    }
}
