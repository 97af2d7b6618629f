//! A Redis connection made of the runtime's own socket actor: a
//! [`RedisClient`] controls one [`Socket`], reads RESP with the socket's
//! framing (CRLF-delimited lines, then raw reads of a bulk string's
//! length), and issues one unit of credit at a time, since each unit may
//! change how the next must be cut.
//!
//! - Commands ([`RedisMsg::Command`]) are pipelined; their replies come
//!   back in order, to each caller's `Reply`.
//! - [`RedisMsg::Subscribe`] makes it a subscriber: messages on its
//!   channels go to its owner as [`RedisEvent::Message`].
//! - It tells its owner when the connection is up and when it is lost
//!   ([`RedisEvent::Up`], [`RedisEvent::Down`], once per outage), rejects
//!   the commands waiting for replies, refuses new ones while down, and
//!   reconnects with capped exponential backoff, naming itself (`CLIENT
//!   SETNAME`), authenticating (`AUTH`) and subscribing again first.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use log::{debug, info, warn};

use credit_actors::net::{Delimiter, Mode, Socket, SocketConfig, SocketEvent, Unit};
use credit_actors::{Actor, ActorId, Ctx, ExitReason, LinkAction, Recipient, Reply, RequestError};

use super::resp::{command, Frame, Reader, Want};

/// Longest line (simple string, error, number, header) accepted.
const MAX_LINE: usize = 64 * 1024;

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

    /// `HOST:PORT` (`[V6]:PORT` for IPv6), as `--redis` takes it.
    pub fn parse(addr: &str) -> Result<RedisConfig, String> {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{addr:?}: {port:?} is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{addr:?} has no host"));
        }
        Ok(RedisConfig::new(host, port))
    }
}

/// What a [`RedisClient`] tells its owner.
#[derive(Debug)]
pub enum RedisEvent {
    /// Connected (again): named, authenticated and subscribed.
    Up,
    /// The connection was lost or could not be made; the text says why.
    /// Told once per outage; reconnecting goes on.
    Down(String),
    /// A message on a subscribed channel.
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
    /// a reply too: [`Frame::Error`]). Refused at once while the
    /// connection is down.
    Command(Vec<Bytes>, Option<Reply<Frame>>),
    /// Subscribe to a channel, now and after every reconnection.
    Subscribe(Bytes),
    /// From the socket.
    Socket(SocketEvent),
    /// Time to reconnect.
    Retry,
}

impl From<SocketEvent> for RedisMsg {
    fn from(e: SocketEvent) -> Self {
        RedisMsg::Socket(e)
    }
}

/// One Redis connection. See the module docs.
#[derive(Debug)]
pub struct RedisClient {
    config: RedisConfig,
    owner: Recipient<RedisEvent>,
    sock: Option<credit_actors::Addr<Socket>>,
    up: bool,
    /// The owner was told of this outage.
    told_down: bool,
    reader: Reader,
    /// How the socket cuts units now.
    cutting: Want,
    /// Replies due, in order (`None`: the client's own command).
    waiting: VecDeque<Option<Reply<Frame>>>,
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
            reader: Reader::default(),
            cutting: Want::Line,
            waiting: VecDeque::new(),
            channels: Vec::new(),
            backoff,
        }
    }

    /// Commands sent and not yet answered.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    fn connect(&mut self, ctx: &mut Ctx<'_, Self>) {
        let config = SocketConfig {
            max_unit: MAX_LINE,
            ..SocketConfig::default()
        };
        let sock = Socket::connect_with(ctx, &self.config.host, self.config.port, config);
        self.sock = Some(sock);
    }

    fn connected(&mut self, ctx: &mut Ctx<'_, Self>, sock: credit_actors::Addr<Socket>) {
        self.reader = Reader::default();
        self.cutting = Want::Line;
        sock.set_mode(ctx, Mode::Binary(Delimiter::crlf()));
        sock.issue_credit(ctx, 1);
        if let Some((user, password)) = self.config.auth.clone() {
            let mut words = vec![Bytes::from_static(b"AUTH")];
            words.extend(user.map(Bytes::from));
            words.push(Bytes::from(password));
            self.write(ctx, sock, words, None);
        }
        if let Some(name) = self.config.name.clone() {
            let words = vec![
                Bytes::from_static(b"CLIENT"),
                Bytes::from_static(b"SETNAME"),
                Bytes::from(name),
            ];
            self.write(ctx, sock, words, None);
        }
        if !self.channels.is_empty() {
            let mut words = vec![Bytes::from_static(b"SUBSCRIBE")];
            words.extend(self.channels.iter().cloned());
            sock.send(ctx, command(words));
        }
        if self.told_down {
            info!(
                "redis {}:{}: connected again",
                self.config.host, self.config.port
            );
        }
        self.up = true;
        self.told_down = false;
        self.backoff = self.config.backoff_min;
        ctx.send(self.owner, RedisEvent::Up);
    }

    /// Sends a command; its reply goes to `reply` (or is checked here).
    fn write(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        sock: credit_actors::Addr<Socket>,
        words: Vec<Bytes>,
        reply: Option<Reply<Frame>>,
    ) {
        sock.send(ctx, command(words));
        self.waiting.push_back(reply);
    }

    fn unit(&mut self, ctx: &mut Ctx<'_, Self>, sock: credit_actors::Addr<Socket>, unit: Unit) {
        let bytes = unit.into_bytes();
        let read = match self.cutting {
            Want::Line => self.reader.line(bytes),
            Want::Bytes(_) => self.reader.bytes(bytes),
        };
        match read {
            Ok(Some(frame)) => self.frame(ctx, frame),
            Ok(None) => {}
            Err(e) => {
                warn!(
                    "redis {}:{}: {e}; reconnecting",
                    self.config.host, self.config.port
                );
                sock.stop(ctx);
                self.lost(ctx, e.to_string());
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

    fn frame(&mut self, ctx: &mut Ctx<'_, Self>, frame: Frame) {
        if let Frame::Array(Some(items)) = &frame {
            let kind = items.first().and_then(Frame::as_bytes).map(|b| b.as_ref());
            match (kind, items.len()) {
                (Some(b"message"), 3) if !self.channels.is_empty() => {
                    if let (Some(channel), Some(payload)) =
                        (items[1].as_bytes(), items[2].as_bytes())
                    {
                        let (channel, payload) = (channel.clone(), payload.clone());
                        ctx.send(self.owner, RedisEvent::Message { channel, payload });
                    }
                    return;
                }
                (Some(b"subscribe" | b"unsubscribe"), 3) if !self.channels.is_empty() => {
                    debug!("redis: {}", String::from_utf8_lossy(&command_echo(items)));
                    return;
                }
                _ => {}
            }
        }
        match self.waiting.pop_front() {
            Some(Some(reply)) => reply.resolve(ctx, frame),
            Some(None) => {
                if let Frame::Error(e) = frame {
                    warn!(
                        "redis {}:{}: {}",
                        self.config.host,
                        self.config.port,
                        String::from_utf8_lossy(&e)
                    );
                }
            }
            None => debug!("redis: a reply nobody waits for: {frame:?}"),
        }
    }

    /// The connection is gone: tells the owner (once per outage), rejects
    /// what waits, and reconnects after the backoff.
    fn lost(&mut self, ctx: &mut Ctx<'_, Self>, why: String) {
        self.sock = None;
        self.up = false;
        let err = RequestError::rejected(format!("redis connection lost: {why}"));
        for reply in self.waiting.drain(..).flatten() {
            reply.reject(ctx, err.clone());
        }
        if !self.told_down {
            self.told_down = true;
            warn!(
                "redis {}:{}: {why}; reconnecting",
                self.config.host, self.config.port
            );
            ctx.send(self.owner, RedisEvent::Down(why));
        }
        let me = ctx.me();
        ctx.send_after(me, RedisMsg::Retry, self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }
}

/// A subscription notice, for the log.
fn command_echo(items: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in items {
        match f {
            Frame::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
            f => out.extend_from_slice(f.as_bytes().map_or(&b"?"[..], |b| b.as_ref())),
        }
        out.push(b' ');
    }
    out
}

impl Actor for RedisClient {
    type Msg = RedisMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.connect(ctx);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: RedisMsg) {
        match msg {
            RedisMsg::Command(words, reply) => match self.sock.filter(|_| self.up) {
                Some(sock) => self.write(ctx, sock, words, reply),
                None => {
                    if let Some(reply) = reply {
                        reply.reject(ctx, RequestError::rejected("redis unavailable"));
                    }
                }
            },
            RedisMsg::Subscribe(channel) => {
                if !self.channels.contains(&channel) {
                    self.channels.push(channel.clone());
                    if let Some(sock) = self.sock.filter(|_| self.up) {
                        sock.send(ctx, command([Bytes::from_static(b"SUBSCRIBE"), channel]));
                    }
                }
            }
            RedisMsg::Socket(SocketEvent::Connected(sock, _)) => self.connected(ctx, sock),
            RedisMsg::Socket(SocketEvent::Data(sock, Ok(unit))) => {
                if self.sock == Some(sock) {
                    self.unit(ctx, sock, unit);
                }
            }
            RedisMsg::Socket(SocketEvent::Data(sock, Err(e))) => {
                if self.sock == Some(sock) {
                    sock.stop(ctx);
                    self.lost(ctx, format!("reply line too long ({e})"));
                }
            }
            RedisMsg::Socket(SocketEvent::Closed(sock, reason)) => {
                if self.sock == Some(sock) {
                    sock.stop(ctx);
                    self.lost(ctx, reason.to_string());
                }
            }
            RedisMsg::Socket(SocketEvent::Timeout(_) | SocketEvent::Proxied(..)) => {}
            RedisMsg::Retry => {
                if self.sock.is_none() {
                    self.connect(ctx);
                }
            }
        }
    }

    /// A socket's end is the connection's business only (handled through
    /// its `Closed` event).
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _r: &ExitReason,
    ) -> LinkAction {
        LinkAction::Stay
    }
}
