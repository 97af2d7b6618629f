//! One room across many chat-servers, through Redis (`--redis`).
//!
//! The room does not tell its users' events to its users itself: it
//! publishes each one (arrived, says, nick, left) on the room's channel,
//! and tells its users only what its subscription to that channel
//! delivers. Redis gives a channel's messages one order, so every user on
//! every server sees the same events in the same order.
//!
//! - **Two connections.** A [`RedisClient`] for commands and one
//!   subscribed to the channel (RESP2 lets a subscriber send almost
//!   nothing else). The room is up only while both are, and after it has
//!   synchronised its copy of the roster with the channel.
//! - **The roster** lives in Redis (`roster.lua` lists the keys), changed
//!   only by scripts that also publish the change, so a change and its
//!   announcement take one place in the channel's order. Every server
//!   keeps a copy (the *mirror*), built from a snapshot and then from the
//!   channel: `/who` and `present:` read it, and a `says` event names its
//!   sender by its owner (`server user`), so it reads with the name the
//!   sender had at that place in the order, whatever `/nick` raced with it.
//! - **Synchronising.** On (re)connection the room sends `SYNC`, which
//!   returns the roster and publishes a `sync` marker: events before the
//!   marker are in the snapshot, events after it are applied to it.
//! - **Names** are unique across servers: `JOIN` and `NICK` take a name
//!   with `HSETNX` on the names hash, inside the script.
//! - **Liveness.** Each server sets its `alive` key with a TTL (the roster
//!   TTL) every third of it; the same script reaps every server whose key
//!   has expired, announcing its users as `left (server lost)`. A server
//!   that finds its own key had expired (cut off for longer than the TTL)
//!   registers its users again.
//! - **Faults.** While the room is down every user has been told
//!   [`ROOM_UNAVAILABLE`] once, and a line gets `error: room unavailable`
//!   (refused before it is sent, so never half-delivered); once up again
//!   every user is told [`ROOM_BACK`] and who is present, and the server
//!   registers its users again (announced if Redis had lost them). Lines being published take
//!   at most `budget` bytes: past it, the sender is told `error: room
//!   busy`, so a Redis that reads slowly cannot grow the server's memory.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use log::{debug, info, warn};

use credit_actors::net::Socket;
use credit_actors::{ActorId, Addr, Ctx, RequestError};

use super::{ChatRoom, RoomMsg, User};
use crate::agent::{AgentMsg, UserAgent};
use crate::protocol;
use crate::redis::resp::put_decimal;
use crate::redis::{Frame, RedisClient, RedisConfig, RedisEvent, RedisMsg};

/// What every user is told, once, when the room's Redis is lost.
pub const ROOM_UNAVAILABLE: &str = "room unavailable: reconnecting";

/// What every user is told when the room is back.
pub const ROOM_BACK: &str = "room available again";

/// A line sent while the room is unavailable.
const UNAVAILABLE: &str = "room unavailable";

/// A line past the publish budget.
const BUSY: &str = "room busy";

/// Roster TTL by default.
pub const DEFAULT_ROSTER_TTL: Duration = Duration::from_secs(6);

/// Bytes of lines being published, by default.
pub const DEFAULT_PUBLISH_BUDGET: usize = 1024 * 1024;

/// Events held while a snapshot is on its way; past it, the room
/// synchronises again.
const MAX_HELD: usize = 65_536;

macro_rules! script {
    ($body:literal) => {
        Bytes::from_static(concat!(include_str!("roster.lua"), $body).as_bytes())
    };
}

/// Sets this server's `alive` key (ARGV[3]: TTL in ms), reaps the servers
/// whose key has expired; returns `{reaped, 1 if ours had expired}`.
fn beat_script() -> Bytes {
    script!(
        "
local was = redis.call('SET', p .. ':alive:' .. sid, '1', 'PX', ARGV[3], 'GET')
redis.call('SADD', p .. ':servers', sid)
local reaped = 0
for _, s in ipairs(redis.call('SMEMBERS', p .. ':servers')) do
  if s ~= sid and redis.call('EXISTS', p .. ':alive:' .. s) == 0 then
    reaped = reaped + depart(s, 'server lost')
  end
end
if was then return {reaped, 0} end
return {reaped, 1}
"
    )
}

/// Registers user ARGV[3] with the name ARGV[4] (or a fresh `user<N>`
/// if it is empty or taken); returns `{name, 1}`, having published its
/// arrival, or `{name, 0}` if it was registered already.
fn join_script() -> Bytes {
    script!(
        "
local uid, want = ARGV[3], ARGV[4]
local me = sid .. ' ' .. uid
if redis.call('EXISTS', p .. ':alive:' .. sid) == 0 then
  return redis.error_reply('NOTALIVE this server is not registered')
end
local cur = redis.call('HGET', p .. ':users:' .. sid, uid)
if cur and redis.call('HGET', names, cur) == me then return {cur, 0} end
local name = want
if name ~= '' and redis.call('HSETNX', names, name, me) == 0 then name = '' end
if name == '' then
  repeat name = 'user' .. redis.call('INCR', p .. ':numbers')
  until redis.call('HSETNX', names, name, me) == 1
end
redis.call('ZADD', order, redis.call('INCR', p .. ':arrivals'), name)
redis.call('HSET', p .. ':users:' .. sid, uid, name)
redis.call('PUBLISH', events, 'arrived ' .. me .. ' ' .. name)
return {name, 1}
"
    )
}

/// User ARGV[3] leaves (ARGV[4]: the reason, or '').
fn leave_script() -> Bytes {
    script!(
        "
local uid = ARGV[3]
local name = redis.call('HGET', p .. ':users:' .. sid, uid)
redis.call('HDEL', p .. ':users:' .. sid, uid)
return drop(sid, uid, name, ARGV[4])
"
    )
}

/// User ARGV[3] takes the name ARGV[4]: 1, or 0 if it is taken.
fn nick_script() -> Bytes {
    script!(
        "
local uid, new = ARGV[3], ARGV[4]
local me = sid .. ' ' .. uid
local old = redis.call('HGET', p .. ':users:' .. sid, uid)
if not old or redis.call('HGET', names, old) ~= me then
  return redis.error_reply('GONE not in the room')
end
if redis.call('HSETNX', names, new, me) == 0 then return 0 end
local score = redis.call('ZSCORE', order, old) or redis.call('INCR', p .. ':arrivals')
redis.call('HDEL', names, old)
redis.call('ZREM', order, old)
redis.call('ZADD', order, score, new)
redis.call('HSET', p .. ':users:' .. sid, uid, new)
redis.call('PUBLISH', events, 'nick ' .. me .. ' ' .. old .. ' ' .. new)
return 1
"
    )
}

/// The roster, in arrival order, as `name, owner` pairs, and the `sync`
/// marker (ARGV[3]: its token) published at its place in the order.
fn sync_script() -> Bytes {
    script!(
        "
local out = {}
for _, name in ipairs(redis.call('ZRANGE', order, 0, -1)) do
  out[#out + 1] = name
  out[#out + 1] = redis.call('HGET', names, name) or ''
end
redis.call('PUBLISH', events, 'sync ' .. sid .. ' ' .. ARGV[3])
return out
"
    )
}

/// Server ARGV[2] leaves: its users are announced as left (ARGV[3]: the
/// reason, or '').
fn depart_script() -> Bytes {
    script!(
        "
return depart(sid, ARGV[3])
"
    )
}

/// Settings of a room shared through Redis.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The Redis server (and its password, if any).
    pub redis: RedisConfig,
    /// The room's name: the prefix of its keys and channel in Redis.
    pub room: String,
    /// This server's name in the roster and in Redis's client list; a
    /// room adds a number of its own, so a restarted room is a new server.
    pub server: String,
    /// How long a server's roster entries outlive its last refresh; it
    /// refreshes them every third of it.
    pub roster_ttl: Duration,
    /// Bytes of lines being published at once; past it, senders are told
    /// `error: room busy`.
    pub publish_budget: usize,
    /// The longest line a user may send: events on the channel longer than
    /// it (and its framing) are not told.
    pub max_line: usize,
}

impl ClusterConfig {
    /// The room `chat` on the Redis at `host:port`, this server named by
    /// its host name and process id.
    pub fn new(host: impl Into<String>, port: u16) -> ClusterConfig {
        ClusterConfig {
            redis: RedisConfig::new(host, port),
            room: "chat".into(),
            server: default_server_name(),
            roster_ttl: DEFAULT_ROSTER_TTL,
            publish_budget: DEFAULT_PUBLISH_BUDGET,
            max_line: crate::DEFAULT_MAX_LINE,
        }
    }
}

/// `host-pid`: the host's name (without spaces) and the process id.
fn default_server_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(|c: char| !c.is_ascii_graphic(), "_"))
        .unwrap_or_default();
    let host = if host.is_empty() { "chat".into() } else { host };
    format!("{host}-{}", std::process::id())
}

/// Numbers the rooms of this process, so each is its own server in Redis.
static INCARNATION: AtomicU64 = AtomicU64::new(1);

/// A room's own Redis bookkeeping: replies to its commands, and its timer.
/// Boxed, so that a room's message stays as small as without Redis.
#[derive(Debug)]
pub struct ClusterMsg(Box<Inner>);

#[derive(Debug)]
enum Inner {
    /// Time to refresh the roster (and reap dead servers).
    Beat,
    Beaten(Result<Frame, RequestError>),
    Synced(u64, Result<Frame, RequestError>),
    Joined(u64, Result<Frame, RequestError>),
    Published {
        uid: u64,
        seq: u64,
        bytes: usize,
        result: Result<Frame, RequestError>,
    },
    Nicked {
        uid: u64,
        seq: u64,
        name: String,
        result: Result<Frame, RequestError>,
    },
    Left {
        uid: u64,
        why: String,
        result: Result<Frame, RequestError>,
    },
    Departed,
    /// The failed predecessor's users were taken out.
    Succeeded(Result<Frame, RequestError>),
}

/// Where the room stands with Redis.
#[derive(Debug)]
enum Link {
    /// A connection is down, or the room has not synchronised yet.
    Down,
    /// `SYNC` sent with this token: waiting for the snapshot and for the
    /// marker, holding the events that come after the marker.
    Syncing {
        token: u64,
        snapshot: Option<Mirror>,
        marker: bool,
        held: Vec<Bytes>,
    },
    /// The mirror follows the channel.
    Up,
}

/// The roster as the channel has told it: names in arrival order, and
/// each user's name by owner (`server uid`).
#[derive(Debug, Default)]
struct Mirror {
    order: BTreeMap<u64, Rc<str>>,
    by_owner: HashMap<Box<str>, (u64, Rc<str>)>,
    next: u64,
}

impl Mirror {
    fn insert(&mut self, owner: &str, name: &str) {
        self.remove(owner);
        self.next += 1;
        let name: Rc<str> = Rc::from(name);
        self.order.insert(self.next, name.clone());
        self.by_owner.insert(owner.into(), (self.next, name));
    }

    fn remove(&mut self, owner: &str) {
        if let Some((at, _)) = self.by_owner.remove(owner) {
            self.order.remove(&at);
        }
    }

    fn rename(&mut self, owner: &str, new: &str) {
        if let Some((at, name)) = self.by_owner.get_mut(owner) {
            *name = Rc::from(new);
            self.order.insert(*at, name.clone());
        }
    }

    fn name(&self, owner: &str) -> Option<&str> {
        self.by_owner.get(owner).map(|(_, n)| &**n)
    }

    /// `present:` with everyone but `except`.
    fn present(&self, except: &str) -> String {
        let skip = self.by_owner.get(except).map(|(at, _)| *at);
        protocol::present(
            self.order
                .iter()
                .filter(|(at, _)| Some(**at) != skip)
                .map(|(_, n)| &**n),
        )
    }

    /// From `SYNC`'s reply: `name, owner` pairs in arrival order.
    fn from_snapshot(frame: Frame) -> Option<Mirror> {
        let Frame::Array(Some(items)) = frame else {
            return None;
        };
        let mut m = Mirror::default();
        for pair in items.chunks(2) {
            let [name, owner] = pair else { return None };
            let (Some(name), Some(owner)) = (text(name), text(owner)) else {
                return None;
            };
            // A name whose owner is gone (not written by these scripts).
            if !owner.is_empty() {
                m.insert(owner, name);
            }
        }
        Some(m)
    }
}

fn text(f: &Frame) -> Option<&str> {
    f.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
}

/// A newcomer not yet in the room: it enters when its arrival comes
/// through the channel.
#[derive(Debug)]
struct Newcomer {
    agent: Addr<UserAgent>,
    sock: Addr<Socket>,
    peer: Option<SocketAddr>,
    /// Its `JOIN` went out (and may have been carried out).
    sent: bool,
}

/// A change to the roster waiting to be sent.
#[derive(Debug)]
enum RosterOp {
    Join(u64, Rc<str>),
    Leave(u64, String),
}

/// What a user's next line waits for: its own event on the channel, so
/// that what it is told next comes after what its line caused.
#[derive(Debug, PartialEq, Eq)]
enum Awaiting {
    Says,
    Nick(String),
}

/// A user's line on its way: what it waits for, and the line's number
/// (so that a late reply to an earlier line cannot release a later one).
#[derive(Debug)]
struct Pending {
    seq: u64,
    what: Awaiting,
}

/// Roster changes on their way at once: registering thousands of users
/// again after an outage stays well within what the Redis client queues
/// ([`crate::redis::client::MAX_PENDING`]).
const ROSTER_IN_FLIGHT: usize = 256;

/// Lines and `/nick`s on their way at once (same reason).
const MAX_PUBLISHING: usize = 2048;

/// The room's side of Redis. See the module docs.
#[derive(Debug)]
pub(super) struct Cluster {
    config: ClusterConfig,
    /// This room's id in the roster.
    sid: String,
    prefix: Bytes,
    sid_b: Bytes,
    channel: Bytes,
    publisher: Option<Addr<RedisClient>>,
    subscriber: Option<Addr<RedisClient>>,
    pub_up: bool,
    sub_up: bool,
    link: Link,
    /// The users were told the room is unavailable.
    told_down: bool,
    tokens: u64,
    mirror: Mirror,
    newcomers: HashMap<u64, Newcomer>,
    /// Users whose next line waits for their last one's event.
    awaiting: HashMap<u64, Pending>,
    /// Numbers the lines sent.
    seq: u64,
    /// A `BEAT` is on its way.
    beating: bool,
    /// Users and newcomers whose `JOIN` is on the wire: their lines,
    /// sent after it on the same connection, come after their arrival.
    registering: HashSet<u64>,
    /// Users and newcomers whose registration failed: again at the next
    /// refresh.
    retry: HashSet<u64>,
    /// Roster changes not sent yet, and how many are on their way.
    queue: VecDeque<RosterOp>,
    roster_busy: usize,
    /// Bytes of lines, and lines and `/nick`s, on their way.
    in_flight: usize,
    publishing: usize,
    /// Departures Redis has not taken yet (it was unreachable).
    departed: Vec<(u64, String)>,
    /// The server's shutdown, answered once this server has left Redis.
    leaving: Option<(credit_actors::Reply<usize>, usize)>,
    /// Where each room of this server records its id, for its successor
    /// (after a failure) to take the predecessor's users out at once.
    lineage: Option<Rc<RefCell<Option<String>>>>,
    /// The failed predecessor's id, until its users are taken out.
    predecessor: Option<String>,
}

impl Cluster {
    pub(super) fn new(config: ClusterConfig) -> Cluster {
        let n = INCARNATION.fetch_add(1, Ordering::Relaxed);
        // A random part too: two processes given one --server-name (or
        // pid 1 in two containers on one host) are still two servers.
        let nonce = RandomState::new().build_hasher().finish() & 0xff_ffff;
        let sid = format!("{}.{n}.{nonce:06x}", config.server);
        Cluster {
            prefix: Bytes::from(config.room.clone()),
            sid_b: Bytes::from(sid.clone()),
            channel: Bytes::from(format!("{}:events", config.room)),
            sid,
            config,
            publisher: None,
            subscriber: None,
            pub_up: false,
            sub_up: false,
            link: Link::Down,
            told_down: false,
            tokens: 0,
            mirror: Mirror::default(),
            newcomers: HashMap::new(),
            awaiting: HashMap::new(),
            seq: 0,
            beating: false,
            registering: HashSet::new(),
            retry: HashSet::new(),
            queue: VecDeque::new(),
            roster_busy: 0,
            in_flight: 0,
            publishing: 0,
            departed: Vec::new(),
            leaving: None,
            lineage: None,
            predecessor: None,
        }
    }

    /// The words of `EVAL script 0 prefix sid args...`.
    fn eval(&self, script: Bytes, args: &[&[u8]]) -> Vec<Bytes> {
        let mut words = vec![
            Bytes::from_static(b"EVAL"),
            script,
            Bytes::from_static(b"0"),
            self.prefix.clone(),
            self.sid_b.clone(),
        ];
        words.extend(args.iter().map(|a| Bytes::copy_from_slice(a)));
        words
    }

    fn is_up(&self) -> bool {
        matches!(self.link, Link::Up)
    }

    /// Why a line of `bytes` (0 for a `/nick`) cannot go out now, if it
    /// cannot.
    fn refusal_now(&self, bytes: usize) -> Option<&'static str> {
        if !self.is_up() {
            Some(UNAVAILABLE)
        } else if self.in_flight + bytes > self.config.publish_budget
            || self.publishing >= MAX_PUBLISHING
        {
            Some(BUSY)
        } else {
            None
        }
    }

    fn owner(&self, uid: u64) -> String {
        format!("{} {uid}", self.sid)
    }

    /// The longest event told: a line and its framing.
    fn max_event(&self) -> usize {
        self.config.max_line + self.sid.len() + 64
    }
}

/// A reply as an outcome: a Redis error is an error too.
fn outcome(result: Result<Frame, RequestError>) -> Result<Frame, String> {
    match result {
        Ok(Frame::Error(e)) => Err(String::from_utf8_lossy(&e).into_owned()),
        Ok(f) => Ok(f),
        Err(e) => Err(e.to_string()),
    }
}

/// What a user is told when its line could not go out.
fn refusal(why: &str) -> String {
    // The client's own queue full is a busy room, not a lost one.
    protocol::error(if why.contains("busy") {
        BUSY
    } else {
        UNAVAILABLE
    })
}

/// `{name, flag}` from `JOIN`.
fn joined(frame: &Frame) -> Option<(&str, bool)> {
    match frame {
        Frame::Array(Some(items)) => match items.as_slice() {
            [name, Frame::Integer(flag)] => Some((text(name)?, *flag == 1)),
            _ => None,
        },
        _ => None,
    }
}

impl ChatRoom {
    /// Records the room's id in `lineage` when it starts, and takes the
    /// users of the room recorded there before (one that failed) out of
    /// the roster at once.
    pub(crate) fn succeeding(mut self, lineage: Rc<RefCell<Option<String>>>) -> ChatRoom {
        if let Some(c) = &mut self.cluster {
            c.lineage = Some(lineage);
        }
        self
    }

    fn cluster(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("a room shared through Redis")
    }

    /// Sends a command on the room's command connection; `then` makes the
    /// room's message of its reply.
    fn redis_call(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        words: Vec<Bytes>,
        then: impl FnOnce(Result<Frame, RequestError>) -> Inner + 'static,
    ) {
        let Some(publisher) = self.cluster().publisher else {
            return;
        };
        ctx.request(
            publisher,
            move |r| RedisMsg::Command(words, Some(r)),
            move |result| RoomMsg::Cluster(ClusterMsg(Box::new(then(result)))),
        );
    }

    /// Starts the two connections and the roster's timer.
    pub(super) fn cluster_started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.me();
        let c = self.cluster();
        let mut redis = c.config.redis.clone();
        redis.name = Some(format!("chat:{}:pub", c.sid));
        let publisher = ctx.spawn_link(RedisClient::new(redis.clone(), me.recipient()));
        redis.name = Some(format!("chat:{}:sub", c.sid));
        let subscriber = ctx.spawn_link(RedisClient::new(redis, me.recipient()));
        let c = self.cluster();
        if let Some(lineage) = &c.lineage {
            c.predecessor = lineage.replace(Some(c.sid.clone()));
        }
        ctx.send(subscriber, RedisMsg::Subscribe(c.channel.clone()));
        c.publisher = Some(publisher);
        c.subscriber = Some(subscriber);
        info!(
            "room {} shared through redis {}:{} as server {}",
            c.config.room, c.config.redis.host, c.config.redis.port, c.sid
        );
        let every = c.config.roster_ttl / 3;
        ctx.send_after(
            me,
            RoomMsg::Cluster(ClusterMsg(Box::new(Inner::Beat))),
            every,
        );
    }

    pub(super) fn redis_event(&mut self, ctx: &mut Ctx<'_, Self>, event: RedisEvent) {
        match event {
            RedisEvent::Up(client) => {
                let c = self.cluster();
                if c.publisher.is_some_and(|a| a.id() == client) {
                    c.pub_up = true;
                } else {
                    c.sub_up = true;
                }
                if c.pub_up && c.sub_up && matches!(c.link, Link::Down) {
                    self.synchronise(ctx);
                }
            }
            RedisEvent::Down(client, why) => {
                let c = self.cluster();
                if c.publisher.is_some_and(|a| a.id() == client) {
                    c.pub_up = false;
                } else {
                    c.sub_up = false;
                }
                self.room_down(ctx, &why);
            }
            RedisEvent::Message { payload, .. } => self.channel_event(ctx, payload),
        }
    }

    pub(super) fn cluster_msg(&mut self, ctx: &mut Ctx<'_, Self>, msg: ClusterMsg) {
        match *msg.0 {
            Inner::Beat => {
                let c = self.cluster();
                let every = c.config.roster_ttl / 3;
                // Refreshed whenever it can be, so that a subscription lost
                // alone does not get this server reaped.
                if c.pub_up {
                    self.beat(ctx);
                    self.pump(ctx);
                }
                let c = self.cluster();
                if c.pub_up && c.sub_up && matches!(c.link, Link::Down) {
                    self.synchronise(ctx);
                } else if c.is_up() {
                    self.retry_roster(ctx);
                }
                let me = ctx.me();
                ctx.send_after(
                    me,
                    RoomMsg::Cluster(ClusterMsg(Box::new(Inner::Beat))),
                    every,
                );
            }
            Inner::Beaten(result) => {
                self.cluster().beating = false;
                self.beaten(ctx, result);
            }

            Inner::Synced(token, result) => self.synced(ctx, token, result),
            Inner::Joined(uid, result) => {
                self.joined(ctx, uid, result);
                self.roster_done(ctx);
            }
            Inner::Published {
                uid,
                seq,
                bytes,
                result,
            } => {
                let c = self.cluster();
                c.in_flight -= bytes;
                c.publishing -= 1;
                if let Err(e) = outcome(result) {
                    // Told now; when it went out, its event gives the
                    // credit instead.
                    debug!("user {uid}'s line not published: {e}");
                    self.line_refused(ctx, uid, seq, &refusal(&e));
                }
            }
            Inner::Nicked {
                uid,
                seq,
                name,
                result,
            } => {
                let c = self.cluster();
                c.publishing -= 1;
                let line = match outcome(result) {
                    // Renamed when the channel says so.
                    Ok(Frame::Integer(1)) => return,
                    Ok(Frame::Integer(0)) => protocol::error(&format!("the name {name} is taken")),
                    Ok(f) => {
                        warn!("/nick: unexpected reply {f:?}");
                        protocol::error(UNAVAILABLE)
                    }
                    Err(e) => {
                        debug!("/nick {name} failed: {e}");
                        refusal(&e)
                    }
                };
                self.line_refused(ctx, uid, seq, &line);
            }
            Inner::Left { uid, why, result } => {
                if let Err(e) = outcome(result) {
                    debug!("departure of user {uid} not taken yet: {e}");
                    self.cluster().departed.push((uid, why));
                }
                self.roster_done(ctx);
            }
            Inner::Departed => {
                if let Some((reply, told)) = self.cluster().leaving.take() {
                    reply.resolve(ctx, told);
                }
            }
            Inner::Succeeded(result) => match outcome(result) {
                Ok(Frame::Integer(n)) => {
                    info!("the failed room's {n} users taken out of the roster")
                }
                Ok(f) => warn!("taking the failed room's users out: unexpected reply {f:?}"),
                Err(e) => warn!("taking the failed room's users out: {e}"),
            },
        }
    }

    /// A refresh's reply: reaped servers logged; this server's users
    /// registered again if its entries had expired.
    fn beaten(&mut self, ctx: &mut Ctx<'_, Self>, result: Result<Frame, RequestError>) {
        match outcome(result) {
            Ok(Frame::Array(Some(items))) => {
                if let [Frame::Integer(reaped), Frame::Integer(expired)] = items.as_slice() {
                    if *reaped > 0 {
                        info!("{reaped} users of lost servers taken out of the roster");
                    }
                    if *expired == 1 && self.cluster().is_up() {
                        warn!(
                            "this server's roster entries had expired: registering its users again"
                        );
                        self.register_all(ctx);
                    }
                }
            }
            Ok(f) => warn!("roster refresh: unexpected reply {f:?}"),
            Err(e) => debug!("roster refresh failed: {e}"),
        }
    }

    /// Refreshes this server's roster entries and reaps dead servers'
    /// (unless a refresh is on its way already).
    fn beat(&mut self, ctx: &mut Ctx<'_, Self>) {
        let c = self.cluster();
        if std::mem::replace(&mut c.beating, true) {
            return;
        }
        let ttl = c.config.roster_ttl.as_millis().max(1).to_string();
        let words = c.eval(beat_script(), &[ttl.as_bytes()]);
        self.redis_call(ctx, words, Inner::Beaten);
    }

    /// Both connections are up: registers this server and asks for the
    /// roster with its marker.
    fn synchronise(&mut self, ctx: &mut Ctx<'_, Self>) {
        // On this connection, whatever was on its way on an earlier one.
        self.cluster().beating = false;
        self.beat(ctx);
        let c = self.cluster();
        if let Some(old) = c.predecessor.take() {
            // The failed room's users were disconnected: announced now
            // rather than when its entries expire.
            let mut words = c.eval(depart_script(), &[b"failed"]);
            words[4] = Bytes::from(old);
            self.redis_call(ctx, words, Inner::Succeeded);
        }
        let c = self.cluster();
        c.tokens += 1;
        let token = c.tokens;
        c.link = Link::Syncing {
            token,
            snapshot: None,
            marker: false,
            held: Vec::new(),
        };
        let words = c.eval(sync_script(), &[token.to_string().as_bytes()]);
        self.redis_call(ctx, words, move |r| Inner::Synced(token, r));
    }

    fn synced(&mut self, ctx: &mut Ctx<'_, Self>, token: u64, result: Result<Frame, RequestError>) {
        let c = self.cluster();
        let Link::Syncing {
            token: t, snapshot, ..
        } = &mut c.link
        else {
            return;
        };
        if *t != token {
            return;
        }
        match outcome(result).map(Mirror::from_snapshot) {
            Ok(Some(m)) => *snapshot = Some(m),
            Ok(None) => {
                warn!("room synchronisation: unreadable roster");
                c.link = Link::Down;
                return;
            }
            Err(e) => {
                // The connection's loss brings the room down; a script
                // error leaves it down until the next beat tries again.
                debug!("room synchronisation failed: {e}");
                c.link = Link::Down;
                return;
            }
        }
        self.finish_sync(ctx);
    }

    /// Once both the snapshot and the marker are in: the room is up.
    fn finish_sync(&mut self, ctx: &mut Ctx<'_, Self>) {
        let c = self.cluster();
        let Link::Syncing {
            snapshot: snapshot @ Some(_),
            marker: true,
            held,
            ..
        } = &mut c.link
        else {
            return;
        };
        let mirror = snapshot.take().unwrap_or_default();
        let held = std::mem::take(held);
        c.mirror = mirror;
        c.link = Link::Up;
        info!(
            "room {} is up ({} present)",
            c.config.room,
            c.mirror.by_owner.len()
        );
        if std::mem::take(&mut c.told_down) {
            self.broadcast(ctx, ROOM_BACK.as_bytes());
            let socks: Vec<Addr<Socket>> =
                self.cluster().newcomers.values().map(|n| n.sock).collect();
            for sock in socks {
                self.line_to(ctx, sock, ROOM_BACK.as_bytes());
            }
            // Who is here now: arrivals and departures while the room was
            // down were not told (after a Redis that lost the roster,
            // servers are still registering their users again; their
            // arrivals follow).
            let present = self.cluster().mirror.present("");
            self.broadcast(ctx, present.as_bytes());
        }
        // Departures that failed meanwhile, then every registration.
        self.retry_roster(ctx);
        self.register_all(ctx);
        // Departures kept while the command connection was down.
        self.pump(ctx);
        for payload in held {
            self.channel_event(ctx, payload);
        }
    }

    /// Registers every user and newcomer of this server (again): those
    /// Redis still has are left as they are; the others are announced.
    fn register_all(&mut self, ctx: &mut Ctx<'_, Self>) {
        let users: Vec<(u64, Rc<str>)> = self
            .users
            .iter()
            .map(|(_, u)| (u.arrival, u.name.clone()))
            .collect();
        for (uid, name) in users {
            self.send_join(ctx, uid, name);
        }
        let newcomers: Vec<u64> = self.cluster().newcomers.keys().copied().collect();
        for uid in newcomers {
            self.send_join(ctx, uid, Rc::from(""));
        }
    }

    /// Registrations and departures that failed, tried again.
    fn retry_roster(&mut self, ctx: &mut Ctx<'_, Self>) {
        let c = self.cluster();
        let departed = std::mem::take(&mut c.departed);
        let retry: Vec<u64> = c.retry.drain().collect();
        for (uid, why) in departed {
            self.send_leave(ctx, uid, why);
        }
        for uid in retry {
            if self.cluster().newcomers.contains_key(&uid) {
                self.send_join(ctx, uid, Rc::from(""));
            } else if let Some(&key) = self.order.get(&uid) {
                let name = self.users[key].name.clone();
                self.send_join(ctx, uid, name);
            }
        }
    }

    fn send_join(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, name: Rc<str>) {
        let c = self.cluster();
        if let Some(n) = c.newcomers.get_mut(&uid) {
            n.sent = true;
        }
        c.queue.push_back(RosterOp::Join(uid, name));
        self.pump(ctx);
    }

    fn send_leave(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, why: String) {
        self.cluster().queue.push_back(RosterOp::Leave(uid, why));
        self.pump(ctx);
    }

    /// Sends queued roster changes, up to [`ROSTER_IN_FLIGHT`] at once.
    fn pump(&mut self, ctx: &mut Ctx<'_, Self>) {
        loop {
            let c = self.cluster();
            if !c.pub_up || c.roster_busy >= ROSTER_IN_FLIGHT {
                return;
            }
            let Some(op) = c.queue.pop_front() else {
                return;
            };
            c.roster_busy += 1;
            match op {
                RosterOp::Join(uid, name) => {
                    c.registering.insert(uid);
                    let words = c.eval(
                        join_script(),
                        &[uid.to_string().as_bytes(), name.as_bytes()],
                    );
                    self.redis_call(ctx, words, move |r| Inner::Joined(uid, r));
                }
                RosterOp::Leave(uid, why) => {
                    let words = c.eval(
                        leave_script(),
                        &[uid.to_string().as_bytes(), why.as_bytes()],
                    );
                    self.redis_call(ctx, words, move |result| Inner::Left { uid, why, result });
                }
            }
        }
    }

    /// A roster change was answered: the next may go.
    fn roster_done(&mut self, ctx: &mut Ctx<'_, Self>) {
        let c = self.cluster();
        c.roster_busy = c.roster_busy.saturating_sub(1);
        self.pump(ctx);
    }

    fn joined(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, result: Result<Frame, RequestError>) {
        let here = self.order.get(&uid).copied();
        let c = self.cluster();
        let reply = match outcome(result) {
            Ok(frame) => joined(&frame).map(|(n, fresh)| (n.to_owned(), fresh)),
            Err(e) => {
                debug!("registering user {uid} failed: {e}");
                None
            }
        };
        if !reply.as_ref().is_some_and(|(_, fresh)| *fresh) {
            // A fresh registration is still waiting for its arrival (and
            // the user's lines may go: Redis has carried it out).
            c.registering.remove(&uid);
        }
        let Some((name, fresh)) = reply else {
            // Tried again at the next refresh (or once the room is back).
            if c.is_up() && (c.newcomers.contains_key(&uid) || here.is_some()) {
                c.retry.insert(uid);
            }
            return;
        };
        if fresh || !c.is_up() {
            // Enters, or is renamed, when the channel tells its arrival;
            // or, while the room is down, when it is registered again.
            return;
        }
        // Registered before: the roster has it already (the mirror is
        // mended if an event said otherwise).
        let owner = c.owner(uid);
        if c.mirror.name(&owner).is_none() {
            c.mirror.insert(&owner, &name);
        }
        self.registered(ctx, uid, here, &name);
    }

    /// User or newcomer `uid` (the room's user `here`, if any) is in the
    /// roster as `name`: a newcomer enters; a user registered again under
    /// another name (its own was taken meanwhile) is told its new one.
    fn registered(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, here: Option<usize>, name: &str) {
        if self.cluster().newcomers.contains_key(&uid) {
            self.enter(ctx, uid, name);
        } else if let Some(key) = here {
            if *self.users[key].name != *name {
                self.renamed(key, name);
                self.tell(ctx, key, protocol::you_are(name).as_bytes());
            }
        }
    }

    /// A user's agent came: it enters once the channel tells its arrival.
    pub(super) fn cluster_join(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        agent: Addr<UserAgent>,
        sock: Addr<Socket>,
        peer: Option<SocketAddr>,
    ) {
        self.arrivals += 1;
        let uid = self.arrivals;
        ctx.monitor(agent.id(), super::AGENT_MONITOR);
        let c = self.cluster();
        let newcomer = Newcomer {
            agent,
            sock,
            peer,
            sent: false,
        };
        c.newcomers.insert(uid, newcomer);
        if c.is_up() {
            self.send_join(ctx, uid, Rc::from(""));
        } else if c.told_down {
            self.line_to(ctx, sock, ROOM_UNAVAILABLE.as_bytes());
        }
    }

    /// The newcomer `uid` enters as `name`: it is told who it is and who
    /// is present, and gets its first credit.
    fn enter(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, name: &str) {
        let Some(n) = self.cluster().newcomers.remove(&uid) else {
            return;
        };
        let c = self.cluster();
        let present = c.mirror.present(&c.owner(uid));
        self.admit(
            ctx,
            uid,
            (n.agent, n.sock, n.peer),
            Rc::from(name),
            &present,
        );
        // One line at a time: the next is handled once this one's event
        // has come back through the channel, so what the user is told (an
        // error, `/who`) keeps the order of its lines.
        self.credit_to(ctx, n.sock, 1);
    }

    /// The user `user` left this server: Redis announces it.
    pub(super) fn cluster_remove(&mut self, ctx: &mut Ctx<'_, Self>, user: &User, why: &str) {
        let uid = user.arrival;
        let c = self.cluster();
        c.awaiting.remove(&uid);
        c.retry.remove(&uid);
        if !self.closing {
            self.send_leave(ctx, uid, why.to_owned());
        }
    }

    /// A newcomer's agent left or ended before it entered.
    pub(super) fn newcomer_gone(&mut self, ctx: &mut Ctx<'_, Self>, agent: ActorId) {
        let c = self.cluster();
        let Some(uid) = c
            .newcomers
            .iter()
            .find(|(_, n)| n.agent.id() == agent)
            .map(|(&uid, _)| uid)
        else {
            return;
        };
        let sent = c.newcomers.remove(&uid).is_some_and(|n| n.sent);
        c.retry.remove(&uid);
        ctx.demonitor(agent, super::AGENT_MONITOR);
        if sent {
            // Its registration may have been carried out: taken back
            // after it (the two go out in order).
            self.send_leave(ctx, uid, String::new());
        }
    }

    /// A user's line: published, or refused.
    pub(super) fn cluster_say(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, text: &str) {
        let uid = self.users[key].arrival;
        let c = self.cluster();
        // `says <owner> <text>`, the owner being `<sid> <uid>`.
        let mut payload = BytesMut::with_capacity(32 + c.sid.len() + text.len());
        payload.put_slice(b"says ");
        payload.put_slice(c.sid.as_bytes());
        payload.put_u8(b' ');
        put_decimal(&mut payload, uid);
        // Not in the roster (taken out while this server was thought
        // lost, or its registration not sent yet): its line would not be
        // told. One whose registration is on the wire goes after it.
        let absent = !c.registering.contains(&uid)
            && std::str::from_utf8(&payload[5..])
                .ok()
                .and_then(|owner| c.mirror.name(owner))
                .is_none();
        payload.put_u8(b' ');
        payload.put_slice(text.as_bytes());
        let len = payload.len();
        if let Some(why) = c.refusal_now(len).or(absent.then_some(UNAVAILABLE)) {
            self.refuse(ctx, key, why);
            return;
        }
        c.in_flight += len;
        c.publishing += 1;
        c.seq += 1;
        let seq = c.seq;
        let what = Awaiting::Says;
        c.awaiting.insert(uid, Pending { seq, what });
        let words = vec![
            Bytes::from_static(b"PUBLISH"),
            c.channel.clone(),
            payload.freeze(),
        ];
        self.redis_call(ctx, words, move |result| Inner::Published {
            uid,
            seq,
            bytes: len,
            result,
        });
    }

    /// `/nick`: taken through Redis, renamed when the channel says so.
    pub(super) fn cluster_nick(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, name: String) {
        let uid = self.users[key].arrival;
        let c = self.cluster();
        if let Some(why) = c.refusal_now(0) {
            self.refuse(ctx, key, why);
            return;
        }
        c.publishing += 1;
        c.seq += 1;
        let seq = c.seq;
        let what = Awaiting::Nick(name.clone());
        c.awaiting.insert(uid, Pending { seq, what });
        let words = c.eval(
            nick_script(),
            &[uid.to_string().as_bytes(), name.as_bytes()],
        );
        self.redis_call(ctx, words, move |result| Inner::Nicked {
            uid,
            seq,
            name,
            result,
        });
    }

    /// Tells user `key` why its line did not go out; its next may come.
    fn refuse(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, why: &str) {
        self.answer(ctx, key, &protocol::error(why));
    }

    /// `/who`: from the mirror, at this place in the channel's order.
    pub(super) fn cluster_who(&mut self, ctx: &mut Ctx<'_, Self>, key: usize) {
        let c = self.cluster();
        if !c.is_up() {
            self.refuse(ctx, key, UNAVAILABLE);
            return;
        }
        let line = c.mirror.present("");
        self.answer(ctx, key, &line);
    }

    /// The server stops: it leaves Redis (its users announced as left),
    /// and `reply` is answered once Redis has taken that, or at once if
    /// it is unreachable.
    pub(super) fn cluster_shutdown(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        reply: credit_actors::Reply<usize>,
        told: usize,
    ) {
        let newcomers: Vec<Newcomer> = self.cluster().newcomers.drain().map(|(_, n)| n).collect();
        for n in newcomers {
            self.line_to(ctx, n.sock, protocol::SHUTTING_DOWN.as_bytes());
            self.tell_agent(ctx, n.agent, AgentMsg::Close);
        }
        let c = self.cluster();
        let Some(publisher) = c.publisher.filter(|_| c.pub_up) else {
            reply.resolve(ctx, told);
            return;
        };
        c.leaving = Some((reply, told));
        let words = c.eval(depart_script(), &[b""]);
        ctx.request_timeout(
            publisher,
            move |r| RedisMsg::Command(words, Some(r)),
            |_| RoomMsg::Cluster(ClusterMsg(Box::new(Inner::Departed))),
            Duration::from_secs(1),
        );
    }

    /// Redis is lost: every user (and newcomer) is told once; users
    /// waiting for their line's event may send again (their next lines are
    /// refused until the room is back).
    fn room_down(&mut self, ctx: &mut Ctx<'_, Self>, why: &str) {
        let closing = self.closing;
        let c = self.cluster();
        if !matches!(c.link, Link::Down) {
            warn!("room {} unavailable: {why}", c.config.room);
        }
        c.link = Link::Down;
        // Registrations go again once the room is back; departures stay.
        c.queue.retain(|op| matches!(op, RosterOp::Leave(..)));
        c.registering.clear();
        c.retry.clear();
        let waiting: Vec<u64> = c.awaiting.drain().map(|(uid, _)| uid).collect();
        for uid in waiting {
            if let Some(&key) = self.order.get(&uid) {
                self.next_line(ctx, key);
            }
        }
        let c = self.cluster();
        if c.told_down || closing {
            return;
        }
        c.told_down = true;
        let socks: Vec<Addr<Socket>> = c.newcomers.values().map(|n| n.sock).collect();
        self.broadcast(ctx, ROOM_UNAVAILABLE.as_bytes());
        for sock in socks {
            self.line_to(ctx, sock, ROOM_UNAVAILABLE.as_bytes());
        }
    }

    /// An event from the room's channel.
    fn channel_event(&mut self, ctx: &mut Ctx<'_, Self>, payload: Bytes) {
        let c = self.cluster();
        match &mut c.link {
            Link::Down => return,
            Link::Syncing { marker, held, .. } => {
                if *marker {
                    if held.len() >= MAX_HELD {
                        warn!("room synchronisation: too many events held; again");
                        c.link = Link::Down;
                        self.synchronise(ctx);
                    } else {
                        held.push(payload);
                    }
                    return;
                }
                // Before the marker: in the snapshot already, unless it is
                // the marker.
                let marker = format!("sync {} ", c.sid);
                if let Some(token) = payload.strip_prefix(marker.as_bytes()) {
                    if let Link::Syncing {
                        token: t, marker, ..
                    } = &mut c.link
                    {
                        if token == t.to_string().as_bytes() {
                            *marker = true;
                            self.finish_sync(ctx);
                        }
                    }
                }
                return;
            }
            Link::Up => {}
        }
        if payload.len() > c.max_event() {
            warn!(
                "room channel: an event of {} bytes, not told",
                payload.len()
            );
            return;
        }
        let Some(event) = Event::parse(&payload) else {
            warn!(
                "room channel: an unreadable event, not told: {:?}",
                String::from_utf8_lossy(&payload[..payload.len().min(80)])
            );
            return;
        };
        let ours = event.sid == c.sid;
        let uid = event.uid;
        let owner = event.owner;
        match event.kind {
            Kind::Says(text) => {
                let mine = ours
                    && matches!(
                        c.awaiting.get(&uid),
                        Some(Pending {
                            what: Awaiting::Says,
                            ..
                        })
                    );
                match c.mirror.name(owner) {
                    Some(name) => {
                        let line = protocol::says(name, text);
                        self.broadcast(ctx, line.as_bytes());
                    }
                    None => debug!("room channel: a line from {owner}, who is not present"),
                }
                if mine {
                    self.own_event_done(ctx, uid);
                }
            }
            Kind::Arrived(name) => {
                if ours {
                    c.registering.remove(&uid);
                    let here = self.order.get(&uid).copied();
                    self.registered(ctx, uid, here, name);
                }
                self.cluster().mirror.insert(owner, name);
                self.broadcast(ctx, protocol::arrived(name).as_bytes());
            }
            Kind::Nick(old, new) => {
                c.mirror.rename(owner, new);
                let mine = ours
                    && matches!(c.awaiting.get(&uid),
                        Some(Pending { what: Awaiting::Nick(n), .. }) if n == new);
                if mine {
                    if let Some(&key) = self.order.get(&uid) {
                        self.renamed(key, new);
                    }
                }
                self.broadcast(ctx, protocol::now_known_as(old, new).as_bytes());
                if mine {
                    self.own_event_done(ctx, uid);
                }
            }
            Kind::Left(name, why) => {
                c.mirror.remove(owner);
                if ours {
                    if let Some(&key) = self.order.get(&uid) {
                        // Taken out while still here (this server was
                        // thought lost): registered again, after a
                        // refresh that makes this server alive again.
                        let name = self.users[key].name.clone();
                        self.beat(ctx);
                        self.send_join(ctx, uid, name);
                    }
                }
                self.broadcast(ctx, protocol::left(name, why).as_bytes());
            }
            Kind::Sync => {}
        }
    }

    /// Line `seq` of user `uid` was refused by Redis: if the user still
    /// waits for that line, it is told `line` and may send its next.
    fn line_refused(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64, seq: u64, line: &str) {
        let c = self.cluster();
        if c.awaiting.get(&uid).is_none_or(|p| p.seq != seq) {
            return;
        }
        c.awaiting.remove(&uid);
        if let Some(&key) = self.order.get(&uid) {
            self.answer(ctx, key, line);
        }
    }

    /// The user `uid`'s own event came back: its next line may come.
    fn own_event_done(&mut self, ctx: &mut Ctx<'_, Self>, uid: u64) {
        self.cluster().awaiting.remove(&uid);
        if let Some(&key) = self.order.get(&uid) {
            self.next_line(ctx, key);
        }
    }
}

/// An event from the room's channel, checked: names of the protocol's
/// form, text without control characters.
#[derive(Debug)]
struct Event<'a> {
    sid: &'a str,
    uid: u64,
    /// `sid uid`.
    owner: &'a str,
    kind: Kind<'a>,
}

#[derive(Debug)]
enum Kind<'a> {
    Says(&'a str),
    Arrived(&'a str),
    Nick(&'a str, &'a str),
    Left(&'a str, Option<&'a str>),
    Sync,
}

impl<'a> Event<'a> {
    fn parse(payload: &'a [u8]) -> Option<Event<'a>> {
        let event = std::str::from_utf8(payload).ok()?;
        let (kind, rest) = event.split_once(' ')?;
        let (sid, rest) = rest.split_once(' ')?;
        let (uid_s, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let owner = &event[kind.len() + 1..kind.len() + 1 + sid.len() + 1 + uid_s.len()];
        let uid = uid_s.parse().ok()?;
        let name = |n: &'a str| protocol::valid_name(n).is_ok().then_some(n);
        let kind = match kind {
            "says" => Kind::Says(Some(rest).filter(|t| protocol::is_clean(t))?),
            "arrived" => Kind::Arrived(name(rest)?),
            "nick" => {
                let (old, new) = rest.split_once(' ')?;
                Kind::Nick(name(old)?, name(new)?)
            }
            "left" => {
                let (who, why) = match rest.split_once(' ') {
                    Some((n, w)) => (n, Some(w).filter(|w| protocol::is_clean(w))?),
                    None => (rest, ""),
                };
                Kind::Left(name(who)?, Some(why).filter(|w| !w.is_empty()))
            }
            "sync" => Kind::Sync,
            _ => return None,
        };
        Some(Event {
            sid,
            uid,
            owner,
            kind,
        })
    }
}
