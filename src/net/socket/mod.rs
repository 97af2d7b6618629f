//! The connected-socket actor.
//!
//! A [`Socket`] owns one TCP stream. It reads into a `BytesMut`, cuts work
//! units with a [`Framer`], and hands them to its *controlling actor* one
//! per unit of credit. With no credit it stops reading, so unread bytes stay
//! in the kernel and TCP pushes back on the peer. Output is queued and
//! flushed at the end of the reactor turn, so everything a socket produces
//! in one turn leaves in one (vectored) write.
//!
//! The socket is split along the path of a line:
//! - `input.rs`: readiness, reads, credit, cutting units, delivering them;
//! - `output.rs`: the output queue, flushing it, send promises;
//! - `connect.rs`: outgoing connections (name resolution, fallback);
//! - `timers.rs`: idle and write timeouts, the linger of a closing socket;
//! - this file: the types, the messages, and closing.
//!
//! Invariants:
//! - no unit is delivered while credit is zero;
//! - `may_read` is true whenever the kernel may hold unread bytes that no
//!   future readiness event will announce (edge-triggered readiness: after
//!   stopping for lack of credit the socket resumes by itself when credit
//!   arrives);
//! - a read buffer grows only as far as the unit being cut may need
//!   (`max_unit` plus the delimiter, rounded up to a power of two), a
//!   pooled one handed out is at most four times the size asked for, and
//!   input is held back while queued output is above the high-water mark,
//!   so memory stays bounded whatever the peer does (reads do fill the
//!   room a buffer already has);
//! - `closed` reaches the controller once, after every unit that preceded it.

mod connect;
mod input;
pub(crate) mod memory;
mod proxy;
pub(crate) use memory::close_for_overload;
pub(crate) mod output;
mod timers;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::stream::Stream;
use bytes::{Bytes, BytesMut};
use input::ReadHint;
use mio::Interest;

use crate::actor::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, Recipient, Reply, RequestError,
};
use crate::net::framing::{Delimiter, Framer, Mode, Unit, UnitError};
use crate::net::local::NetLocal;
use crate::net::proxy::{ProxyError, ProxyHeader, ProxyPolicy};
use crate::reactor::Ready;

use output::Output;
pub(crate) use output::TAIL_MIN;

/// Events a socket sends its controlling actor. The controller's message
/// type implements `From<SocketEvent>`.
#[derive(Debug)]
pub enum SocketEvent {
    /// An outgoing connection is up, to this peer address.
    Connected(Addr<Socket>, SocketAddr),
    /// One work unit, or the typed reason one could not be delivered (the
    /// connection goes on with the next unit). Uses one unit of credit.
    Data(Addr<Socket>, Result<Unit, UnitError>),
    /// The input side ended, or the connection failed. Sent once, after
    /// every unit before it. After an orderly close the socket still
    /// accepts output until it is stopped; a failure after that is not
    /// told again (it rejects the promises of `flushed`).
    Closed(Addr<Socket>, CloseReason),
    /// Nothing was received for the idle timeout.
    Timeout(Addr<Socket>),
    /// The connection's PROXY header, read before anything else from a
    /// socket accepted under a [`ProxyPolicy`]
    /// ([`SocketConfig::proxy`]): sent once, before any unit. Its
    /// `source` is the client's address, unless it is the proxy's own
    /// connection (`LOCAL`, a health check) or names no address.
    Proxied(Addr<Socket>, Box<ProxyHeader>),
}

/// Why a socket's input ended.
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
    /// Output still queued after a flush passed `max_backlog`: the peer
    /// reads too slowly.
    Backlog,
    /// The reactor's buffer memory budget was exhausted and this
    /// connection was among those holding the most (see
    /// [`set_buffer_limit`](crate::net::set_buffer_limit)).
    Overload,
    /// The connection was refused under the PROXY policy: an untrusted
    /// source, or a header missing, malformed, cut short or late.
    Proxy(ProxyError),
}

impl CloseReason {
    pub(crate) fn from_io(e: &io::Error) -> CloseReason {
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
            CloseReason::Backlog => {
                f.write_str("output backlog over the limit: the peer reads too slowly")
            }
            CloseReason::Overload => f.write_str(
                "overload: the server's buffer memory is exhausted and this connection held the most",
            ),
            CloseReason::Proxy(e) => write!(f, "refused: {e}"),
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
    /// Stop reading and tell the controller `Closed` with
    /// [`CloseReason::LimitExceeded`], after the units before it; the
    /// socket closes, its output flushed, when the controller lets it go
    /// (stops, or calls `stop`), as after the peer's EOF, or by itself
    /// after [`SocketConfig::linger`]. Input left unread makes the kernel
    /// reset the connection at the close, which drops what the kernel had
    /// not yet sent of the answers (over loopback, nothing).
    Close,
}

/// Settings of a socket, shared by all the sockets a listener accepts.
#[derive(Clone, Debug)]
pub struct SocketConfig {
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
    /// How long a stopping socket may take to flush its output before
    /// it is closed regardless. Default 10 s.
    pub linger: Duration,
    /// Closes the connection ([`CloseReason::Backlog`]) when more than this
    /// many bytes are still queued after the end-of-turn flush: for
    /// services that push output the peer did not ask for (a chat room's
    /// broadcast), where holding input back would not slow the sender. Off
    /// by default.
    pub max_backlog: Option<usize>,
    /// Accepted connections start with a PROXY header, read before
    /// anything else, from the sources this policy trusts (see
    /// [`crate::net::proxy`]). Off by default.
    pub proxy: Option<Arc<ProxyPolicy>>,
}

impl Default for SocketConfig {
    fn default() -> SocketConfig {
        SocketConfig {
            max_unit: Framer::DEFAULT_MAX_UNIT,
            overlong: OverlongPolicy::Skip,
            high_water: 1 << 20,
            read_size: 16 * 1024,
            line_terminator: Bytes::from_static(b"\n"),
            idle_timeout: None,
            write_timeout: None,
            linger: Duration::from_secs(10),
            max_backlog: None,
            proxy: None,
        }
    }
}

/// How a credit operation changes credit. Displayed as in the trace's
/// `C` events: `+n` (or `-n`), `inf`, `zero`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditOp {
    /// Adds `n` (negative subtracts; the result is clamped at zero).
    Issue(i64),
    /// No limit: every unit is delivered as it arrives.
    Infinite,
    /// Zero: nothing is delivered until more is issued.
    Zero,
}

impl fmt::Display for CreditOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreditOp::Issue(n) => write!(f, "{n:+}"),
            CreditOp::Infinite => f.write_str("inf"),
            CreditOp::Zero => f.write_str("zero"),
        }
    }
}

/// A message to a [`Socket`]. Build one with the constructors (for use from
/// other threads), or use the methods on `Addr<Socket>` from an actor.
#[derive(Debug)]
pub struct SocketMsg(pub(super) Cmd);

#[derive(Debug)]
pub(super) enum Cmd {
    SetController(Recipient<SocketEvent>),
    SetMode(Box<Mode>),
    SetMaxUnit(usize),
    Credit(CreditOp),
    Send(Box<SendCmd>),
    SendAll(Vec<Bytes>),
    SendShared(Box<Bytes>),
    Promise(Reply<()>),
    SetLineTerminator(Box<Bytes>),
    SetIdleTimeout(Option<Duration>),
    SetWriteTimeout(Option<Duration>),
    Stop,
    ShutdownWrite,
    Resolved(Box<Result<Vec<SocketAddr>, CloseReason>>),
    IdleCheck,
    WriteCheck,
    LingerExpired,
    /// The PROXY header's time is up.
    ProxyTimeout,
    /// Close for overload; the bytes held when chosen.
    Overload(usize),
}

/// What a send queues: pieces by handle, or a short slice to copy.
enum Payload<'a> {
    Parts(Bytes, Bytes),
    Copied(&'a [u8]),
}

impl Payload<'_> {
    /// The message that queues it, for the message path.
    fn into_msg(self, line: bool) -> SocketMsg {
        match self {
            Payload::Parts(head, body) => SocketMsg::send_cmd(head, body, line),
            Payload::Copied(text) => {
                SocketMsg::send_cmd(Bytes::new(), Bytes::copy_from_slice(text), line)
            }
        }
    }
}

/// A send that takes the message path (the direct one needs no box). Boxed
/// so that the socket's message, and the mailbox slot it sits in, stay
/// small: every connection holds one such slot.
#[derive(Debug)]
pub(super) struct SendCmd {
    head: Bytes,
    body: Bytes,
    line: bool,
}

impl SocketMsg {
    fn send_cmd(head: Bytes, body: Bytes, line: bool) -> SocketMsg {
        SocketMsg(Cmd::Send(Box::new(SendCmd { head, body, line })))
    }

    /// Adds `n` units of credit (negative `n` subtracts, clamped at zero).
    pub fn issue_credit(n: i64) -> SocketMsg {
        SocketMsg(Cmd::Credit(CreditOp::Issue(n)))
    }
    /// A credit operation.
    pub fn credit(op: CreditOp) -> SocketMsg {
        SocketMsg(Cmd::Credit(op))
    }
    /// Changes how input is cut into units.
    pub fn set_mode(mode: Mode) -> SocketMsg {
        SocketMsg(Cmd::SetMode(Box::new(mode)))
    }
    /// Sends bytes as they are.
    pub fn send(data: impl Into<Bytes>) -> SocketMsg {
        SocketMsg::send_cmd(Bytes::new(), data.into(), false)
    }
    /// Sends a line: the text, then the line terminator.
    pub fn send_line(text: impl Into<Bytes>) -> SocketMsg {
        SocketMsg::send_cmd(Bytes::new(), text.into(), true)
    }
    /// Hands the socket to another controlling actor.
    pub fn set_controller(to: Recipient<SocketEvent>) -> SocketMsg {
        SocketMsg(Cmd::SetController(to))
    }
    /// Closes the socket once queued output is flushed.
    pub fn stop() -> SocketMsg {
        SocketMsg(Cmd::Stop)
    }
    /// Sends the peer EOF once queued output is flushed; input goes on.
    pub fn shutdown_write() -> SocketMsg {
        SocketMsg(Cmd::ShutdownWrite)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Resolving the name or waiting for the connect to complete.
    Connecting,
    /// Accepted under a PROXY policy: reading the header, before any unit.
    Proxy,
    Open,
    /// Stopping: no more input; flushing output, then closing.
    Draining,
    /// Failed and stopping (after being open): nothing more is read,
    /// written or told, whatever else the run that failed goes on to do.
    Failed,
}

/// The connected-socket actor. See the module docs.
///
/// Its fields are what every socket uses on every line; what only some
/// sockets use (outgoing connections, timeouts, a line terminator of their
/// own) is in `Cold`, boxed and allocated on first use, so an idle
/// accepted socket stays small.
pub struct Socket {
    stream: Option<Stream>,
    state: State,
    controller: Recipient<SocketEvent>,
    framer: Framer,
    /// Units the controller has asked for; `u64::MAX` is infinite.
    credit: u64,
    /// Units delivered and not yet added to the reactor's counters.
    units_out: u32,
    /// The buffer size this connection's units have needed lately.
    read_hint: ReadHint,
    rbuf: BytesMut,
    out: Output,
    config: Rc<SocketConfig>,
    /// What only some sockets use.
    cold: Option<Box<Cold>>,
    /// The kernel may hold bytes no readiness event will announce again.
    may_read: bool,
    /// The buffer bytes last reported to the memory budget (at most
    /// `u32::MAX`: a socket's charge is capped there).
    charged: u32,
    /// State bits: see [`flags`].
    flags: u8,
}

/// The parts of a socket that only some sockets use: those that connect,
/// that have timeouts, or that change their line terminator.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Cold {
    /// The peer's address, for a socket that connected (an accepted one
    /// reports its peer in `ListenerEvent::Accepted`).
    peer: Option<SocketAddr>,
    /// Where to connect, until the connect starts.
    connect_target: Option<(String, u16)>,
    /// Addresses still to try while connecting.
    targets: Vec<SocketAddr>,
    /// Replaces the configuration's line terminator.
    line_terminator: Option<Bytes>,
    idle_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    last_input: Option<Instant>,
    last_output_progress: Option<Instant>,
    idle_armed: bool,
    write_check_armed: bool,
    /// Shut the write side down once the queued output is written.
    shutdown_write: bool,
    /// The PROXY header's deadline, until the header is read.
    proxy_timer: Option<crate::reactor::TimerId>,
    /// After an overlong unit under `OverlongPolicy::Close`: when the
    /// socket closes itself if its controller has not let it go.
    close_timer: Option<crate::reactor::TimerId>,
}

/// The line terminator in force: the socket's own, else the configuration's.
/// A free function so callers can borrow other fields of the socket.
#[inline]
fn terminator_of<'a>(cold: &'a Option<Box<Cold>>, config: &'a SocketConfig) -> &'a Bytes {
    match cold.as_deref().and_then(|c| c.line_terminator.as_ref()) {
        Some(t) => t,
        None => &config.line_terminator,
    }
}

/// The socket's state bits, in one byte (every connection holds them).
pub(super) mod flags {
    /// The peer finished sending.
    pub(crate) const EOF: u8 = 1;
    /// A readiness event reported the peer's FIN (EPOLLRDHUP): EOF is
    /// pending even after a short read, and no further edge will say so.
    pub(crate) const READ_CLOSED: u8 = 2;
    /// `closed` was sent to the controller.
    pub(crate) const CLOSED_SENT: u8 = 4;
    /// Input held back: output above the high-water mark.
    pub(crate) const HELD: u8 = 8;
    /// The turn-end hook is asked for (to flush output, and to give an
    /// emptied read buffer back to the pool).
    pub(crate) const FLUSH_PENDING: u8 = 16;
    /// Stopped reading for memory, until woken.
    pub(crate) const PARKED: u8 = 32;
    /// Among the memory budget's holders.
    pub(crate) const LISTED: u8 = 64;
    /// Output was left after the last write: the peer is not keeping up.
    pub(crate) const STALLED: u8 = 128;
}

impl Socket {
    #[inline(always)]
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    #[inline(always)]
    fn set(&mut self, flag: u8) {
        self.flags |= flag;
    }

    #[inline(always)]
    fn clear(&mut self, flag: u8) {
        self.flags &= !flag;
    }

    fn new(
        stream: Option<Stream>,
        state: State,
        controller: Recipient<SocketEvent>,
        config: Rc<SocketConfig>,
    ) -> Socket {
        let cold = (config.idle_timeout.is_some() || config.write_timeout.is_some()).then(|| {
            Box::new(Cold {
                idle_timeout: config.idle_timeout,
                write_timeout: config.write_timeout,
                ..Cold::default()
            })
        });
        Socket {
            stream,
            state,
            controller,
            framer: Framer::new(Mode::Raw, config.max_unit),
            credit: 0,
            units_out: 0,
            read_hint: ReadHint::default(),
            rbuf: BytesMut::new(),
            out: Output::default(),
            config,
            cold,
            may_read: true,
            charged: 0,
            flags: 0,
        }
    }

    /// The cold part, allocated on first use.
    fn cold(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// Notes input at `now`, for the idle timeout (if it is on).
    #[inline]
    fn input_at(&mut self, now: Instant) {
        if let Some(c) = self.cold.as_deref_mut() {
            c.last_input = Some(now);
        }
    }

    /// A socket over an accepted stream. Used by the listener, which
    /// reports the peer's address in `ListenerEvent::Accepted`.
    /// `proxied`: the listener found the peer among the trusted proxies
    /// of the configuration's PROXY policy, so a header comes first.
    pub(crate) fn accepted(
        stream: Stream,
        controller: Recipient<SocketEvent>,
        config: Rc<SocketConfig>,
        proxied: bool,
    ) -> Socket {
        let state = if proxied { State::Proxy } else { State::Open };
        Socket::new(Some(stream), state, controller, config)
    }

    /// Input may be read; a reported read-close is noted (no later edge
    /// will say it).
    #[inline]
    fn note_readable(&mut self, ready: Ready) {
        self.may_read = true;
        if ready.is_read_closed() || ready.is_error() {
            self.set(flags::READ_CLOSED);
        }
    }

    /// True for a socket that connects (or connected) out, rather than one
    /// a listener accepted.
    fn is_outgoing(&self) -> bool {
        self.cold.as_deref().is_some_and(|c| {
            c.peer.is_some() || c.connect_target.is_some() || !c.targets.is_empty()
        }) || self.state == State::Connecting
    }

    /// The peer's address, once known: for an outgoing connection once it
    /// is up; for an accepted one, the kernel's answer.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self.cold.as_ref().and_then(|c| c.peer) {
            Some(p) => Some(p),
            None => self.stream.as_ref()?.peer_addr().ok(),
        }
    }

    fn emit(&mut self, ctx: &mut Ctx<'_, Self>, event: SocketEvent) {
        ctx.send(self.controller, event);
    }

    // ----- closing ---------------------------------------------------------

    /// Stops input, flushes what is queued, then closes.
    fn drain(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Draining || self.state == State::Failed {
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
            self.arm_linger(ctx);
        }
    }

    /// Sends the peer EOF (shuts the write side down) if that was asked
    /// for and everything queued is written. Input goes on.
    fn shutdown_write_if_flushed(&mut self) {
        if !self.out.is_empty() || !self.cold.as_ref().is_some_and(|c| c.shutdown_write) {
            return;
        }
        self.cold().shutdown_write = false;
        if let Some(s) = self.stream.as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Closes after a clean drain.
    fn finish(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(s) = self.stream.as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        ctx.stop();
    }

    /// Tells the controller `Closed(reason)` (traced as `K`), the one time
    /// it is told.
    fn tell_closed(&mut self, ctx: &mut Ctx<'_, Self>, reason: CloseReason) {
        self.set(flags::CLOSED_SENT);
        let me = ctx.me();
        if ctx.tracing() {
            ctx.trace(format_args!("K {} {reason}", me.id()));
        }
        self.emit(ctx, SocketEvent::Closed(me, reason));
    }

    /// Closes at once after a failure: tells the controller (unless it
    /// already heard of the close: `closed` reaches it once, and a failure
    /// after the peer's EOF shows in the rejected send promises), rejects
    /// pending send promises, exits.
    fn fail(&mut self, ctx: &mut Ctx<'_, Self>, reason: CloseReason) {
        if self.state == State::Failed {
            return;
        }
        // A connect that failed stays `Connecting`: that is how its end
        // knows it was outgoing (and never counted as a reactor's load).
        // It reads nothing more either way.
        if self.state != State::Connecting {
            self.state = State::Failed;
        }
        let err = RequestError::rejected(format!("connection closed: {reason}"));
        self.fail_output(ctx, &err);
        if !self.has(flags::CLOSED_SENT) {
            self.tell_closed(ctx, reason);
        }
        ctx.stop();
    }
}

impl Actor for Socket {
    type Msg = SocketMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.link(self.controller.id());
        ctx.local::<NetLocal>().live += 1;
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
        if self.state == State::Proxy {
            self.start_proxy(ctx);
        }
        self.arm_idle(ctx);
    }

    fn warning(&self) -> Option<String> {
        if self.credit != 0 || self.state != State::Open {
            return None;
        }
        // Bytes held here or in the kernel, not just an edge that may
        // bring some: a socket no byte has reached is not stalled. (A
        // socket out of credit reads nothing, so what waits is mostly the
        // kernel's.) The figure is in the text, so that a socket whose
        // controller lets units out between two samples reads differently
        // at each.
        let kernel = self
            .stream
            .as_ref()
            .map_or(0, crate::net::stream::available);
        let held = self.rbuf.len() + kernel;
        (held > 0).then(|| {
            format!(
                "out of credit with input waiting ({} bytes buffered, {kernel} of them in the kernel)",
                held
            )
        })
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SocketMsg) {
        self.command(ctx, msg);
        self.settle_at_turn_end(ctx);
    }

    fn io_ready(&mut self, ctx: &mut Ctx<'_, Self>, ready: Ready) {
        self.ready(ctx, ready);
        self.settle_at_turn_end(ctx);
    }

    fn trim(&mut self) {
        self.out.trim();
    }

    fn turn_end(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.clear(flags::FLUSH_PENDING);
        self.flush(ctx);
        if self.rbuf.is_empty() {
            if self.rbuf.capacity() > 0 {
                let buf = std::mem::take(&mut self.rbuf);
                ctx.local::<NetLocal>().give_read(buf);
                self.read_hint.released();
            }
        } else {
            self.keep_partial_small(ctx);
        }
        self.settle(ctx);
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
        self.settle_at_turn_end(ctx);
        LinkAction::Stay
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, Self>, _reason: &ExitReason) {
        self.fail_output(ctx, &RequestError::rejected("connection closed"));
        let buf = std::mem::take(&mut self.rbuf);
        if buf.capacity() > 0 {
            ctx.local::<NetLocal>().give_read(buf);
        }
        self.settle(ctx);
        let me = ctx.id();
        if let Some(t) = self.cold.as_deref_mut().and_then(|c| c.proxy_timer.take()) {
            ctx.cancel_timer(t);
        }
        if let Some(t) = self.cold.as_deref_mut().and_then(|c| c.close_timer.take()) {
            ctx.cancel_timer(t);
        }
        let net = ctx.local::<NetLocal>();
        // Saturating: a socket ended before its first run (only at the
        // reactor's shutdown, or killed by id: it is linked to nothing
        // yet) was never counted.
        net.live = net.live.saturating_sub(1);
        net.budget.ended(me);
        if !self.is_outgoing() {
            // The listener counted it when it accepted it.
            ctx.core().add_load(-1);
        }
    }
}

impl Socket {
    fn command(&mut self, ctx: &mut Ctx<'_, Self>, SocketMsg(cmd): SocketMsg) {
        match cmd {
            Cmd::Credit(op) => self.credit(ctx, op),
            Cmd::Send(cmd) => self.push_send(ctx, &cmd.head, &cmd.body, cmd.line),
            Cmd::SendShared(piece) => {
                let q = self.queue_shared(&piece, ctx.now());
                let me = ctx.me();
                Socket::apply_queued(ctx, me, q);
            }
            Cmd::SendAll(items) => {
                for item in &items {
                    self.push_send(ctx, item, &Bytes::new(), false);
                }
            }
            Cmd::Promise(reply) => self.promise(ctx, reply),
            Cmd::SetMode(mode) => {
                self.framer.set_mode(*mode);
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
            Cmd::SetLineTerminator(t) => self.cold().line_terminator = Some(*t),
            Cmd::SetIdleTimeout(t) => {
                self.cold().idle_timeout = t;
                self.arm_idle(ctx);
            }
            Cmd::SetWriteTimeout(t) => {
                self.cold().write_timeout = t;
                self.arm_write_check(ctx);
            }
            Cmd::Stop => self.drain(ctx),
            Cmd::ShutdownWrite => {
                self.cold().shutdown_write = true;
                if matches!(self.state, State::Open | State::Proxy) {
                    self.flush(ctx);
                    self.shutdown_write_if_flushed();
                }
            }
            Cmd::Resolved(result) => self.resolved(ctx, *result),
            Cmd::IdleCheck => self.idle_check(ctx),
            Cmd::WriteCheck => self.write_check(ctx),
            Cmd::LingerExpired => self.linger_expired(ctx),
            Cmd::ProxyTimeout => self.proxy_timeout(ctx),
            Cmd::Overload(held) => self.overload(ctx, held),
        }
    }

    fn ready(&mut self, ctx: &mut Ctx<'_, Self>, ready: Ready) {
        if ready.is_wake() {
            // The budget's list of the parked no longer has this socket:
            // it parks (and is listed) again if it must.
            self.clear(flags::PARKED);
        }
        if self.state == State::Connecting {
            self.connect_ready(ctx, ready);
            return;
        }
        if ready.is_writable() && !self.out.is_empty() {
            self.flush(ctx);
        }
        if ready.is_readable() && !self.has(flags::EOF) {
            self.note_readable(ready);
            self.pump(ctx);
        } else if ready.is_wake() {
            // Credit arrived in place (`Core::direct`) while input waited,
            // or the memory budget released the parked.
            self.pump(ctx);
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("peer", &self.cold.as_ref().and_then(|c| c.peer))
            .field("state", &self.state)
            .field("credit", &self.credit)
            .finish()
    }
}

/// Operations on a socket, from inside an actor. Each acts as one message
/// to the socket actor, handled in the order sent.
///
/// Credit, sends and mode changes are made in place when the socket is on
/// the caller's reactor and nothing sent to it earlier waits in its mailbox
/// (`Core::direct`): the credit counter is added to, the reply is copied
/// straight into the output queue, and the socket is woken only when credit
/// went from zero to positive while input waits. That is what a message
/// would have done, without the mailbox round trip. Otherwise they are sent
/// as messages.
impl Addr<Socket> {
    /// Adds `n` units of credit (the tutorial's `issueCredit` is `n = 1`);
    /// negative `n` subtracts, and credit is clamped at zero.
    #[inline]
    pub fn issue_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>, n: i64) {
        self.credit(ctx, CreditOp::Issue(n));
    }
    /// Delivers every unit as it arrives.
    pub fn infinite_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        self.credit(ctx, CreditOp::Infinite);
    }
    /// Stops delivery until credit is issued again.
    pub fn zero_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        self.credit(ctx, CreditOp::Zero);
    }

    #[inline]
    fn credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>, op: CreditOp) {
        let Some(sock) = ctx.direct(*self) else {
            ctx.send(*self, SocketMsg(Cmd::Credit(op)));
            return;
        };
        let wake = sock.apply_credit(op);
        // One test on the common path (no wake, no trace): the rest is out
        // of line, so the operation itself stays a small leaf.
        if wake | ctx.tracing() {
            self.after_credit(ctx, op, wake);
        }
    }

    /// What follows a credit operation in place when the socket must be
    /// woken or the trace is on.
    #[inline(never)]
    fn after_credit<A: Actor>(&self, ctx: &mut Ctx<'_, A>, op: CreditOp, wake: bool) {
        if ctx.tracing() {
            let credit = ctx.direct(*self).map_or(0, |s| s.credit_now());
            ctx.trace(format_args!("C {} {credit} {op}", self.id()));
        }
        if wake {
            self.units_in_place(ctx);
        }
    }

    /// Credit went from zero to positive with input waiting: hands over
    /// the units already buffered whole right here, as the socket's run
    /// would (a controller issuing one unit at a time then costs the
    /// socket no run per unit), and wakes the socket only if it must read
    /// or close. Kept out of line: the common credit operation does not
    /// wake.
    #[inline(never)]
    fn units_in_place<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        let me = *self;
        #[cfg(feature = "metrics")]
        let mut units = 0u64;
        let mut next = (true, false);
        let tracing = ctx.tracing();
        while let Some(sock) = ctx.direct(me) {
            let Some((to, unit)) = sock.unit_in_place() else {
                next = sock.after_units_in_place();
                if tracing && sock.starved() {
                    ctx.trace_id('Z', me.id(), None);
                }
                break;
            };
            metric! {
                units += 1;
            }
            if tracing {
                ctx.trace_id('U', me.id(), None);
            }
            ctx.send(to, SocketEvent::Data(me, unit));
        }
        metric! {
            if units > 0 {
                ctx.local::<NetLocal>().stats.units += units;
            }
        }
        let (wake, release) = next;
        if release {
            ctx.core().at_turn_end(me.id());
        }
        if wake {
            ctx.core().wake(me.id());
        }
    }

    /// Sets how input is cut into units. Buffered input is re-cut.
    pub fn set_mode<A: Actor>(&self, ctx: &mut Ctx<'_, A>, mode: Mode) {
        let Some(sock) = ctx.direct(*self) else {
            ctx.send(*self, SocketMsg(Cmd::SetMode(Box::new(mode))));
            return;
        };
        if sock.set_mode_in_place(mode) {
            ctx.core().wake(self.id());
        }
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
        self.send_parts(ctx, Bytes::new(), data.into(), false);
    }
    /// Sends `piece` by reference as a buffer shared with other sockets (a
    /// broadcast: one buffer sent to many). It is written and bounded like
    /// any output (`max_backlog`, the high-water mark) but not charged to
    /// this socket in the memory budget: the buffer is one, whatever the
    /// number of sockets holding it.
    pub fn send_shared<A: Actor>(&self, ctx: &mut Ctx<'_, A>, piece: Bytes) {
        let now = ctx.now();
        match ctx.direct(*self) {
            Some(sock) => {
                let q = sock.queue_shared(&piece, now);
                Socket::apply_queued(ctx, *self, q);
            }
            None => {
                ctx.send(*self, SocketMsg(Cmd::SendShared(Box::new(piece))));
            }
        }
    }
    /// Sends several pieces, in order.
    pub fn send_all<A: Actor>(&self, ctx: &mut Ctx<'_, A>, items: Vec<Bytes>) {
        ctx.send(*self, SocketMsg(Cmd::SendAll(items)));
    }
    /// Sends a line: the text, then the line terminator.
    pub fn send_line<A: Actor>(&self, ctx: &mut Ctx<'_, A>, text: impl Into<Bytes>) {
        self.send_parts(ctx, Bytes::new(), text.into(), true);
    }
    /// Sends `head` then `body` then the line terminator, without joining
    /// them first (no allocation for `"You said: "` + line).
    #[inline]
    pub fn send_line_parts<A: Actor>(&self, ctx: &mut Ctx<'_, A>, head: Bytes, body: Bytes) {
        self.send_parts(ctx, head, body, true);
    }

    #[inline]
    fn send_parts<A: Actor>(&self, ctx: &mut Ctx<'_, A>, head: Bytes, body: Bytes, line: bool) {
        self.send_payload(ctx, Payload::Parts(head, body), line);
    }

    /// Sends a copy of `text` and the line terminator. For one line sent
    /// to many sockets (a broadcast): sharing one `Bytes` among them would
    /// cost two atomic reference-count operations per socket, where a
    /// short line is copied into each output buffer anyway.
    pub fn send_line_copied<A: Actor>(&self, ctx: &mut Ctx<'_, A>, text: &[u8]) {
        if Output::copies(text) {
            self.send_payload(ctx, Payload::Copied(text), true);
        } else {
            self.send_parts(ctx, Bytes::new(), Bytes::copy_from_slice(text), true);
        }
    }

    /// Queues `payload` in place if the socket can be acted on directly,
    /// else sends it as a message.
    #[inline]
    fn send_payload<A: Actor>(&self, ctx: &mut Ctx<'_, A>, payload: Payload<'_>, line: bool) {
        let now = ctx.now();
        let queue = |sock: &mut Socket, payload: &Payload<'_>| match payload {
            Payload::Parts(head, body) => sock.queue_send(head, body, line, now),
            Payload::Copied(text) => sock.queue_copied(text, line, now),
        };
        let queued = match ctx.direct(*self) {
            Some(sock) if !sock.out_needs_tail() => queue(sock, &payload),
            Some(_) => {
                // The first send of a burst: a buffer from the pool first.
                let buf = ctx.local::<NetLocal>().take_tail();
                match ctx.direct(*self) {
                    Some(sock) => {
                        sock.set_tail(buf);
                        queue(sock, &payload)
                    }
                    // Taking the buffer cannot change the socket's state,
                    // but should it: the message path, buffer returned.
                    None => {
                        ctx.local::<NetLocal>().give_tail(buf);
                        ctx.send(*self, payload.into_msg(line));
                        return;
                    }
                }
            }
            None => {
                ctx.send(*self, payload.into_msg(line));
                return;
            }
        };
        Socket::apply_queued(ctx, *self, queued);
    }
    /// A promise for everything sent so far: `map` receives `Ok(())` once
    /// those bytes are handed to the kernel, or the rejection if the socket
    /// closes first.
    pub fn flushed<A, F>(&self, ctx: &mut Ctx<'_, A>, map: F)
    where
        A: Actor,
        F: FnOnce(Result<(), RequestError>) -> A::Msg + 'static,
    {
        ctx.request(*self, |r| SocketMsg(Cmd::Promise(r)), map);
    }
    /// Sets the line terminator `send_line` appends.
    pub fn set_line_terminator<A: Actor>(&self, ctx: &mut Ctx<'_, A>, t: impl Into<Bytes>) {
        ctx.send(*self, SocketMsg(Cmd::SetLineTerminator(Box::new(t.into()))));
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
        let to = to.recipient();
        let Some(sock) = ctx.direct(*self) else {
            ctx.send(*self, SocketMsg(Cmd::SetController(to)));
            return;
        };
        let old = std::mem::replace(&mut sock.controller, to).id();
        if old != to.id() {
            let me = self.id();
            let core = ctx.core();
            core.unlink(me, old);
            core.link(me, to.id());
        }
    }
    /// Closes the socket once queued output is flushed.
    pub fn stop<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::Stop));
    }
    /// The buffer bytes the socket holds now (its read buffer's capacity,
    /// its unsent output and its output buffer's spare room), if it can be
    /// looked at from here: on this reactor, not running, and with no mail
    /// waiting. What it reports to the memory budget at each turn's end.
    pub fn buffered<A: Actor>(&self, ctx: &mut Ctx<'_, A>) -> Option<usize> {
        ctx.direct(*self).map(|s| s.buffered())
    }
    /// Sends the peer EOF once queued output is flushed (shuts the write
    /// side down), and goes on reading: the peer may still answer.
    pub fn shutdown_write<A: Actor>(&self, ctx: &mut Ctx<'_, A>) {
        ctx.send(*self, SocketMsg(Cmd::ShutdownWrite));
    }
}
