//! A Redis connection made of the runtime's own socket actor: a
//! [`RedisClient`] controls one [`Socket`], reads RESP with the socket's
//! framing (CRLF-delimited lines, then raw reads of a bulk string's
//! length), and issues one unit of credit at a time, since each unit may
//! change how the next must be cut.
//!
//! - Commands ([`RedisMsg::Command`]) are pipelined; their replies come
//!   back in order, to each caller's `Reply`. At most [`MAX_PENDING`]
//!   wait at once; more are refused (`redis busy`).
//! - [`RedisMsg::Subscribe`] makes it a subscriber: messages on its
//!   channels go to its owner as [`RedisEvent::Message`], and it takes no
//!   more commands (RESP2 allows a subscribed connection almost none).
//! - Each connection first authenticates (`AUTH`, if configured), names
//!   itself (`CLIENT SETNAME`, if configured), subscribes again, and
//!   checks with `PING`; only once every one of those has succeeded is the
//!   owner told [`RedisEvent::Up`]. A refused step counts as a failed
//!   connection.
//! - A lost connection (closed, reset, refused, a failed handshake,
//!   unreadable RESP, output stuck for [`WRITE_TIMEOUT`], or no reply for
//!   [`REPLY_DEADLINE`] while one is due; an idle connection is sent a
//!   `PING` every [`PING_EVERY`], so a Redis that stops answering is found
//!   even when nothing else is asked of it) rejects the
//!   commands waiting for replies and is told to the owner once per
//!   outage ([`RedisEvent::Down`]); commands are refused while down, and
//!   it reconnects with capped exponential backoff, which only a
//!   connection that came up resets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{debug, info, warn};

use credit_actors::net::{Delimiter, Mode, Socket, SocketConfig, SocketEvent, Unit};
use credit_actors::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, Recipient, Reply, RequestError,
};

use super::resp::{command, Frame, Reader, Want};

/// Longest line (simple string, error, number, header) accepted.
const MAX_LINE: usize = 64 * 1024;

/// Most commands waiting for their replies.
pub const MAX_PENDING: usize = 4096;

/// A connection whose output makes no progress for this long is lost.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that owes a reply and sends none for this long is lost.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(5);

/// How often an idle connection is checked with `PING` (and the deadline
/// looked at).
pub const PING_EVERY: Duration = Duration::from_secs(2);

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Host name or address.
    pub host: String,
    /// Port (Redis's is 6379).
    pub port: u16,
    /// Sent with `CLIENT SETNAME` on each connection, if set.
    pub name: Option<String>,
    /// `AUTH` on each connection: a password, or a user and a password.
    pub auth: Option<(Option<String>, String)>,
    /// First wait before reconnecting; doubles per failure.
    pub backoff_min: Duration,
    /// Longest wait before reconnecting.
    pub backoff_max: Duration,
}

impl RedisConfig {
    /// A connection to `host:port`, reconnecting after 100 ms doubling to
    /// 5 s.
    pub fn new(host: impl Into<String>, port: u16) -> RedisConfig {
        RedisConfig {
            host: host.into(),
            port,
            name: None,
            auth: None,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// What a [`RedisClient`] tells its owner.
#[derive(Debug)]
pub enum RedisEvent {
    /// Connected (again): authenticated, named, subscribed, and answering.
    /// The client's own identity, for an owner of several.
    Up(ActorId),
    /// The connection was lost or could not be made; the text says why.
    /// Told once per outage; reconnecting goes on. The client's own
    /// identity first.
    Down(ActorId, String),
    /// A message on a subscribed channel. The payload shares the socket's
    /// read buffer: copy what is kept for long.
    Message {
        /// The channel.
        channel: Bytes,
        /// What was published.
        payload: Bytes,
    },
}

/// Messages to a [`RedisClient`].
#[derive(Debug)]
pub enum RedisMsg {
    /// A command (its words), and where its reply goes (a Redis error is
    /// a reply too: [`Frame::Error`]; `None`: an error is logged).
    /// Refused at once while the connection is down, when [`MAX_PENDING`]
    /// wait already, on a subscriber, and for the subscription commands
    /// themselves (use [`RedisMsg::Subscribe`]).
    Command(Vec<Bytes>, Option<Reply<Frame>>),
    /// Subscribe to a channel, now and after every reconnection.
    Subscribe(Bytes),
    /// From the socket.
    Socket(SocketEvent),
    /// Time to reconnect.
    Retry,
    /// Time to check the connection (sent by the client to itself).
    Tick,
}

impl From<SocketEvent> for RedisMsg {
    fn from(e: SocketEvent) -> Self {
        RedisMsg::Socket(e)
    }
}

/// What a reply is for.
#[derive(Debug)]
enum Slot {
    /// A caller's command.
    Caller(Reply<Frame>),
    /// A command whose error is only logged.
    Quiet,
    /// A step of the connection's handshake.
    Handshake(&'static str),
    /// A `SUBSCRIBE` of this many channels: one confirmation each.
    Subscribe(usize),
}

/// One Redis connection. See the module docs.
#[derive(Debug)]
pub struct RedisClient {
    config: RedisConfig,
    owner: Recipient<RedisEvent>,
    sock: Option<Addr<Socket>>,
    /// The handshake succeeded on this connection.
    up: bool,
    /// The owner was told of this outage.
    told_down: bool,
    reader: Reader,
    /// How the socket cuts units now.
    cutting: Want,
    /// Replies due, in order.
    waiting: VecDeque<Slot>,
    /// Since when the front slot has waited (the last reply's time).
    front_since: Instant,
    /// Handshake replies still due.
    handshake: usize,
    channels: Vec<Bytes>,
    backoff: Duration,
}

impl RedisClient {
    /// A client that reports to `owner`; it connects when it starts.
    pub fn new(config: RedisConfig, owner: Recipient<RedisEvent>) -> RedisClient {
        let backoff = config.backoff_min;
        RedisClient {
            config,
            owner,
            sock: None,
            up: false,
            told_down: false,
            reader: Reader::with_lines_up_to(MAX_LINE - 2),
            cutting: Want::Line,
            waiting: VecDeque::new(),
            front_since: Instant::now(),
            handshake: 0,
            channels: Vec::new(),
            backoff,
        }
    }

    fn connect(&mut self, ctx: &mut Ctx<'_, Self>) {
        let config = SocketConfig {
            max_unit: MAX_LINE,
            write_timeout: Some(WRITE_TIMEOUT),
            ..SocketConfig::default()
        };
        let sock = Socket::connect_with(ctx, &self.config.host, self.config.port, config);
        self.sock = Some(sock);
        self.front_since = ctx.now();
    }

    /// The handshake: every step gets its reply slot, and the owner hears
    /// of the connection only once the last one has succeeded.
    fn connected(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>) {
        self.reader = Reader::with_lines_up_to(MAX_LINE - 2);
        self.cutting = Want::Line;
        self.waiting.clear();
        sock.set_mode(ctx, Mode::Binary(Delimiter::crlf()));
        sock.issue_credit(ctx, 1);
        if let Some((user, password)) = self.config.auth.clone() {
            let mut words = vec![Bytes::from_static(b"AUTH")];
            words.extend(user.map(Bytes::from));
            words.push(Bytes::from(password));
            self.write(ctx, sock, words, Slot::Handshake("AUTH"));
        }
        if let Some(name) = self.config.name.clone() {
            let words = vec![
                Bytes::from_static(b"CLIENT"),
                Bytes::from_static(b"SETNAME"),
                Bytes::from(name),
            ];
            self.write(ctx, sock, words, Slot::Handshake("CLIENT SETNAME"));
        }
        if !self.channels.is_empty() {
            let mut words = vec![Bytes::from_static(b"SUBSCRIBE")];
            words.extend(self.channels.iter().cloned());
            let n = self.channels.len();
            self.write(ctx, sock, words, Slot::Subscribe(n));
        }
        // The last step: a server that accepts and then closes, or
        // answers nothing, never counts as up.
        let ping = vec![Bytes::from_static(b"PING")];
        self.write(ctx, sock, ping, Slot::Handshake("PING"));
        self.handshake = self.waiting.len();
    }

    /// Sends a command; its reply goes where `slot` says.
    fn write(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        sock: Addr<Socket>,
        words: Vec<Bytes>,
        slot: Slot,
    ) {
        sock.send(ctx, command(&words));
        if self.waiting.is_empty() {
            self.front_since = ctx.now();
        }
        self.waiting.push_back(slot);
    }

    fn unit(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, unit: Unit) {
        let bytes = unit.into_bytes();
        let read = match self.cutting {
            Want::Line => self.reader.line(bytes),
            Want::Bytes(_) => self.reader.bytes(bytes),
        };
        match read {
            Ok(Some(frame)) => {
                self.frame(ctx, sock, frame);
                if self.sock != Some(sock) {
                    // That frame lost the connection.
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.fail_connection(ctx, sock, e.to_string());
                return;
            }
        }
        let want = self.reader.want();
        if want != self.cutting {
            match want {
                Want::Line => {
                    sock.set_max_unit(ctx, MAX_LINE);
                    sock.set_mode(ctx, Mode::Binary(Delimiter::crlf()));
                }
                Want::Bytes(n) => {
                    sock.set_max_unit(ctx, n);
                    sock.set_mode(ctx, Mode::Raw);
                }
            }
            self.cutting = want;
        } else if let Want::Bytes(n) = want {
            sock.set_max_unit(ctx, n);
        }
        sock.issue_credit(ctx, 1);
    }

    /// Redis answers in order, so a frame is the reply the front slot
    /// waits for; with no slot, or a subscription at the front, it is a
    /// push (a message, or a subscription's confirmation).
    fn frame(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, frame: Frame) {
        if !self.waiting.is_empty() {
            // A reply (or a confirmation): the connection answers.
            self.front_since = ctx.now();
        }
        // On a subscriber, a message may come before the reply to a
        // `PING` or a handshake step; a caller's command was sent before
        // the subscription, so its reply comes before any message.
        let caller_first = matches!(self.waiting.front(), Some(Slot::Caller(_)));
        if !caller_first && !self.channels.is_empty() && is_push(&frame, b"message") {
            self.push(ctx, frame);
            return;
        }
        match self.waiting.front_mut() {
            Some(Slot::Subscribe(left)) => {
                if is_push(&frame, b"subscribe") {
                    *left -= 1;
                    if *left == 0 {
                        self.waiting.pop_front();
                        self.handshake_reply(ctx, sock, None);
                    }
                } else if let Frame::Error(e) = &frame {
                    let why = format!("SUBSCRIBE refused: {}", String::from_utf8_lossy(e));
                    self.fail_connection(ctx, sock, why);
                } else {
                    self.push(ctx, frame);
                }
            }
            None => self.push(ctx, frame),
            Some(_) => match self.waiting.pop_front() {
                Some(Slot::Caller(reply)) => reply.resolve(ctx, frame),
                Some(Slot::Quiet) => {
                    if let Frame::Error(e) = &frame {
                        warn!("redis: {}", String::from_utf8_lossy(e));
                    }
                }
                Some(Slot::Handshake(what)) => {
                    let error = match &frame {
                        Frame::Error(e) => {
                            Some(format!("{what} refused: {}", String::from_utf8_lossy(e)))
                        }
                        _ => None,
                    };
                    self.handshake_reply(ctx, sock, error);
                }
                Some(Slot::Subscribe(_)) | None => {}
            },
        }
    }

    /// A handshake reply: an error loses the connection; the last one
    /// brings it up.
    fn handshake_reply(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        sock: Addr<Socket>,
        error: Option<String>,
    ) {
        if let Some(why) = error {
            self.fail_connection(ctx, sock, why);
            return;
        }
        self.handshake = self.handshake.saturating_sub(1);
        if self.handshake == 0 && !self.up {
            if self.told_down {
                info!(
                    "redis {}:{}: connected again",
                    self.config.host, self.config.port
                );
            }
            self.up = true;
            self.told_down = false;
            self.backoff = self.config.backoff_min;
            let me = ctx.id();
            ctx.send(self.owner, RedisEvent::Up(me));
        }
    }

    /// A push: a message goes to the owner; anything else is logged.
    fn push(&mut self, ctx: &mut Ctx<'_, Self>, frame: Frame) {
        if is_push(&frame, b"message") {
            if let Frame::Array(Some(items)) = frame {
                let mut items = items.into_iter().skip(1);
                if let (Some(Frame::Bulk(Some(channel))), Some(Frame::Bulk(Some(payload)))) =
                    (items.next(), items.next())
                {
                    ctx.send(self.owner, RedisEvent::Message { channel, payload });
                }
            }
            return;
        }
        debug!("redis: a frame nobody waits for: {frame:?}");
    }

    /// Closes the connection and handles it as lost.
    fn fail_connection(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, why: String) {
        sock.stop(ctx);
        self.lost(ctx, why);
    }

    /// The connection is gone: tells the owner (once per outage), rejects
    /// what waits, and reconnects after the backoff.
    fn lost(&mut self, ctx: &mut Ctx<'_, Self>, why: String) {
        self.sock = None;
        self.up = false;
        self.handshake = 0;
        let err = RequestError::rejected(format!("redis connection lost: {why}"));
        for slot in self.waiting.drain(..) {
            if let Slot::Caller(reply) = slot {
                reply.reject(ctx, err.clone());
            }
        }
        if !self.told_down {
            self.told_down = true;
            warn!(
                "redis {}:{}: {why}; reconnecting",
                self.config.host, self.config.port
            );
            let me = ctx.id();
            ctx.send(self.owner, RedisEvent::Down(me, why));
        } else {
            debug!("redis {}:{}: {why}", self.config.host, self.config.port);
        }
        let me = ctx.me();
        ctx.send_after(me, RedisMsg::Retry, self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }

    /// The liveness check: a reply overdue loses the connection; an idle
    /// one that is up gets a `PING` (allowed on a subscriber too).
    fn tick(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(sock) = self.sock else {
            return;
        };
        let now = ctx.now();
        if !self.waiting.is_empty() {
            if now.saturating_duration_since(self.front_since) >= REPLY_DEADLINE {
                let why = format!("no reply for {} s", REPLY_DEADLINE.as_secs());
                self.fail_connection(ctx, sock, why);
            }
        } else if self.up {
            self.write(ctx, sock, vec![Bytes::from_static(b"PING")], Slot::Quiet);
        } else if now.saturating_duration_since(self.front_since) >= REPLY_DEADLINE {
            let why = format!("not connected within {} s", REPLY_DEADLINE.as_secs());
            self.fail_connection(ctx, sock, why);
        }
    }

    fn command(&mut self, ctx: &mut Ctx<'_, Self>, words: Vec<Bytes>, reply: Option<Reply<Frame>>) {
        let refusal = if !self.channels.is_empty() {
            Some("a subscriber takes no commands")
        } else if words.first().is_some_and(|w| is_subscription_command(w)) {
            Some("subscribe with RedisMsg::Subscribe")
        } else if self.waiting.len() >= MAX_PENDING {
            Some("redis busy")
        } else {
            None
        };
        match (self.sock.filter(|_| self.up), refusal) {
            (Some(sock), None) => {
                let slot = match reply {
                    Some(reply) => Slot::Caller(reply),
                    None => Slot::Quiet,
                };
                self.write(ctx, sock, words, slot);
            }
            (_, refusal) => {
                if let Some(reply) = reply {
                    let why = refusal.unwrap_or("redis unavailable");
                    reply.reject(ctx, RequestError::rejected(why));
                }
            }
        }
    }
}

/// True for a push of this kind (`message`, `subscribe`).
fn is_push(frame: &Frame, kind: &[u8]) -> bool {
    match frame {
        Frame::Array(Some(items)) => {
            items.len() == 3 && items[0].as_bytes().is_some_and(|k| k.as_ref() == kind)
        }
        _ => false,
    }
}

/// The commands that change a connection's subscriptions.
fn is_subscription_command(word: &[u8]) -> bool {
    [
        &b"SUBSCRIBE"[..],
        b"UNSUBSCRIBE",
        b"PSUBSCRIBE",
        b"PUNSUBSCRIBE",
        b"SSUBSCRIBE",
        b"SUNSUBSCRIBE",
    ]
    .iter()
    .any(|c| c.eq_ignore_ascii_case(word))
}

impl Actor for RedisClient {
    type Msg = RedisMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.connect(ctx);
        let me = ctx.me();
        ctx.send_after(me, RedisMsg::Tick, PING_EVERY);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: RedisMsg) {
        match msg {
            RedisMsg::Command(words, reply) => self.command(ctx, words, reply),
            RedisMsg::Subscribe(channel) => {
                if !self.channels.contains(&channel) {
                    self.channels.push(channel.clone());
                    if let Some(sock) = self.sock.filter(|_| self.up) {
                        let words = vec![Bytes::from_static(b"SUBSCRIBE"), channel];
                        self.write(ctx, sock, words, Slot::Subscribe(1));
                        // Up already: the confirmation brings nothing up.
                        self.handshake += 1;
                    }
                }
            }
            RedisMsg::Socket(SocketEvent::Connected(sock, _)) => {
                if self.sock == Some(sock) {
                    self.connected(ctx, sock);
                }
            }
            RedisMsg::Socket(SocketEvent::Data(sock, Ok(unit))) => {
                if self.sock == Some(sock) {
                    self.unit(ctx, sock, unit);
                }
            }
            RedisMsg::Socket(SocketEvent::Data(sock, Err(e))) => {
                if self.sock == Some(sock) {
                    self.fail_connection(ctx, sock, format!("reply line too long ({e})"));
                }
            }
            RedisMsg::Socket(SocketEvent::Closed(sock, reason)) => {
                if self.sock == Some(sock) {
                    self.fail_connection(ctx, sock, reason.to_string());
                }
            }
            RedisMsg::Socket(SocketEvent::Timeout(_) | SocketEvent::Proxied(..)) => {}
            RedisMsg::Retry => {
                if self.sock.is_none() {
                    self.connect(ctx);
                }
            }
            RedisMsg::Tick => {
                self.tick(ctx);
                let me = ctx.me();
                ctx.send_after(me, RedisMsg::Tick, PING_EVERY);
            }
        }
    }

    /// The owner's end (when it spawned the client linked) ends the
    /// client; a socket's end is the connection's business only (handled
    /// through its `Closed` event).
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _r: &ExitReason,
    ) -> LinkAction {
        if peer == self.owner.id() {
            LinkAction::Exit
        } else {
            LinkAction::Stay
        }
    }
}
