//! The room: who is present, in order of arrival, and every event told to
//! everyone in the one order the room handles them.
//!
//! The room never waits on a user: it writes into the users' sockets
//! (on the same reactor, an append to the socket's output queue, no
//! message), and a user who does not read fills its own queue until the
//! socket's backlog limit closes it; the room hears of it from the user's
//! agent.
//!
//! What everyone is told in a turn is written once, into the turn's log,
//! and each socket gets the log by reference at the end of the turn (one
//! handle per socket, whatever the number of lines): appending every line
//! to thousands of output buffers would touch as many cold cache lines per
//! line. A line for one user alone (a welcome, a reply, an error) first
//! hands that user the part of the log it has not had, so every user
//! still sees everything in the room's one order.
//!
//! Pacing: a user's socket hands its agent at most `window` lines ahead of
//! the room (its credit), and the room gives a line's unit of credit back
//! at the end of the reactor turn in which it handled the line. So at most
//! `window` lines per user wait in the room's mailbox, each user gets at
//! most `window` lines handled per turn, and between turns the reactor
//! polls, so a user whose line has just arrived is served in the next turn
//! beside a flooding one.
//! Past `rate` lines per second (on average, in bursts of `window`), a
//! line's credit comes back on a timer instead, when the user's next line
//! is due.
//!
//! Leaving goes through the room too: it hands the user what is still due
//! (its own last lines included), then tells the agent to close. Errors for
//! one user alone (bad commands, bad input) are told by the room, in its
//! order.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use log::info;
use slab::Slab;

use credit_actors::net::{CloseReason, Socket, Text};
use credit_actors::{Actor, ActorId, Addr, Ctx, ExitReason, MonitorRef, Reply};

use crate::agent::{AgentMsg, UserAgent};
use crate::protocol;
use crate::redis::RedisEvent;
use crate::relay::{Op, Relay, RelayMsg};

mod cluster;

use cluster::Cluster;
pub use cluster::{
    ClusterConfig, ClusterMsg, DEFAULT_PUBLISH_BUDGET, DEFAULT_ROSTER_TTL, ROOM_BACK,
    ROOM_UNAVAILABLE,
};

/// Why a user left, as the room announces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Departure {
    /// `/quit`.
    Quit,
    /// The connection ended.
    Closed(CloseReason),
    /// Silent for the idle timeout.
    Idle,
}

impl Departure {
    /// The reason in `<name> left (<reason>)`; `None` for an orderly leave.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Departure::Quit | Departure::Closed(CloseReason::Orderly) => None,
            Departure::Closed(CloseReason::Reset) => Some("reset"),
            Departure::Closed(
                CloseReason::Backlog | CloseReason::WriteTimeout | CloseReason::Overload,
            ) => Some("too slow"),
            Departure::Closed(_) => Some("error"),
            Departure::Idle => Some("idle"),
        }
    }
}

/// Messages to a [`ChatRoom`].
#[derive(Debug)]
pub enum RoomMsg {
    /// A user's agent, with the user's socket, enters.
    Join {
        /// The user's agent.
        agent: Addr<UserAgent>,
        /// The user's socket.
        sock: Addr<Socket>,
        /// The user's address, for the log.
        peer: Option<SocketAddr>,
    },
    /// A user says something (without the trailing CR).
    Say {
        /// The user's agent.
        from: ActorId,
        /// What was said.
        text: Text,
        /// Bytes of `text` to use (a trailing CR cut off).
        len: usize,
    },
    /// A user takes a new name (already checked for form).
    Nick {
        /// The user's agent.
        from: ActorId,
        /// The new name.
        name: String,
    },
    /// A user asks who is present.
    Who {
        /// The user's agent.
        from: ActorId,
    },
    /// A user leaves: the room hands the user everything said up to now
    /// (its own last lines included), announces the departure, and tells
    /// the agent to close the connection ([`AgentMsg::Close`]).
    Leave {
        /// The user's agent.
        agent: Addr<UserAgent>,
        /// Why.
        why: Departure,
    },
    /// An error for the user alone (a malformed command, bad input), in
    /// the room's order: after everything the user's earlier lines caused.
    Error {
        /// The user's agent.
        from: ActorId,
        /// The error line.
        line: String,
    },
    /// A paced user may send its next line (see [`ChatRoom::with_rate`]).
    Credit(Addr<Socket>),
    /// The server stops: everyone is told and let go. Answered with the
    /// number of users told.
    Shutdown(Reply<usize>),
    /// Answered with the users present, in order of arrival: each name and
    /// the user's agent.
    Users(Reply<Vec<(String, ActorId)>>),
    /// From the room's Redis connections (a room shared through Redis).
    /// Boxed, so that a room's message stays as small as without Redis.
    Redis(Box<RedisEvent>),
    /// The room's own Redis bookkeeping.
    Cluster(ClusterMsg),
}

impl From<RedisEvent> for RoomMsg {
    fn from(e: RedisEvent) -> Self {
        RoomMsg::Redis(Box::new(e))
    }
}

/// One user present.
#[derive(Debug)]
struct User {
    name: Rc<str>,
    agent: Addr<UserAgent>,
    sock: Addr<Socket>,
    /// Order of arrival.
    arrival: u64,
    /// Segments of this turn's log already handed to the user.
    given: usize,
    /// When the user's next line is due at the room's rate (the
    /// theoretical arrival time of the generic cell rate algorithm).
    due: Instant,
}

/// The chat room.
#[derive(Debug)]
pub struct ChatRoom {
    users: Slab<User>,
    /// Arrival number to user, for listing in order of arrival.
    order: BTreeMap<u64, usize>,
    by_agent: HashMap<ActorId, usize>,
    by_name: HashMap<Rc<str>, usize>,
    arrivals: u64,
    /// The next `user<N>` number, shared with later incarnations of the
    /// room so that names count up for the life of the server.
    numbers: Rc<Cell<u64>>,
    closing: bool,
    /// Sockets owed a unit of credit at the end of this turn: one per line
    /// handled.
    credit_due: Vec<Addr<Socket>>,
    /// Lines a user may have on their way to the room.
    window: u32,
    /// The least time between two of a user's lines, on average (`None`:
    /// no limit); bursts of `window` lines may come faster.
    interval: Option<Duration>,
    /// This turn's log: the lines for everyone, in order, as sealed
    /// segments and the segment being written.
    segments: Vec<Bytes>,
    open: BytesMut,
    /// The turn-end hook is asked for.
    hooked: bool,
    /// On a group of reactors: where the room records itself, each other
    /// reactor's relay (as of the last turn's end), and what the room did
    /// on each reactor this turn, for its relay (see `relay.rs`).
    directory: Option<crate::RoomDirectory>,
    relays: Vec<Option<Addr<Relay>>>,
    remote: Vec<Vec<Op>>,
    /// Shared with other servers through Redis (see `cluster.rs`).
    cluster: Option<Box<Cluster>>,
}

const AGENT_MONITOR: MonitorRef = 1;

/// Lines a user may have on their way to the room, by default.
pub const DEFAULT_WINDOW: u32 = 16;

/// Bytes of the turn's log past which it is handed out at once.
const HAND_OUT_AT: usize = 256 * 1024;

/// Lines a user may send per second, on average, by default.
pub const DEFAULT_RATE: u32 = 1000;

impl ChatRoom {
    /// An empty room; `numbers` holds the next user number (start it at
    /// 1). Each user may have [`DEFAULT_WINDOW`] lines on their way to it.
    pub fn new(numbers: Rc<Cell<u64>>) -> ChatRoom {
        ChatRoom {
            users: Slab::new(),
            order: BTreeMap::new(),
            by_agent: HashMap::new(),
            by_name: HashMap::new(),
            arrivals: 0,
            numbers,
            closing: false,
            credit_due: Vec::new(),
            window: DEFAULT_WINDOW,
            interval: Some(Duration::from_secs(1) / DEFAULT_RATE),
            segments: Vec::new(),
            open: BytesMut::new(),
            hooked: false,
            directory: None,
            relays: Vec::new(),
            remote: Vec::new(),
            cluster: None,
        }
    }

    /// Shares the room with other servers through Redis: every event goes
    /// through the room's channel there, and the roster lives there.
    pub fn with_cluster(mut self, config: Option<ClusterConfig>) -> ChatRoom {
        self.cluster = config.map(|c| Box::new(Cluster::new(c)));
        self
    }

    /// Records the room in `directory` when it starts, and sends what it
    /// does on other reactors of the group through their relays.
    pub fn with_directory(mut self, directory: Option<crate::RoomDirectory>) -> ChatRoom {
        self.directory = directory;
        self
    }

    /// The reactor whose relay carries out what the room does to `id`, if
    /// `id` is on another reactor that has one.
    #[inline]
    fn relay_for(&self, ctx: &Ctx<'_, Self>, id: ActorId) -> Option<usize> {
        relay_of(&self.relays, ctx, id)
    }

    fn push_op(&mut self, r: usize, op: Op) {
        push_op(&mut self.remote, r, op);
    }

    /// Hands `sock` segments `from..` of this turn's log.
    fn give(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, from: usize) {
        give(
            ctx,
            &self.segments,
            &self.relays,
            &mut self.remote,
            sock,
            from,
        );
    }

    /// Sends `sock` one line.
    fn line_to(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, line: &[u8]) {
        match self.relay_for(ctx, sock.id()) {
            Some(r) => {
                let mut b = BytesMut::with_capacity(line.len() + 1);
                b.extend_from_slice(line);
                b.extend_from_slice(b"\n");
                self.push_op(r, Op::Bytes(sock, b.freeze()));
                self.hook(ctx);
            }
            None => sock.send_line_copied(ctx, line),
        }
    }

    /// Issues `sock` `n` units of credit.
    fn credit_to(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, n: u32) {
        match self.relay_for(ctx, sock.id()) {
            Some(r) => {
                self.push_op(r, Op::Credit(sock, n));
                self.hook(ctx);
            }
            None => sock.issue_credit(ctx, i64::from(n)),
        }
    }

    /// Sends `agent` a message, after what the room did to the agent's
    /// socket: on another reactor, in the relay's batch, which the relay
    /// carries out in order, so the socket has it all before the agent
    /// acts.
    fn tell_agent(&mut self, ctx: &mut Ctx<'_, Self>, agent: Addr<UserAgent>, msg: AgentMsg) {
        match self.relay_for(ctx, agent.id()) {
            Some(r) => {
                self.push_op(r, Op::Agent(agent, msg));
                self.hook(ctx);
            }
            None => {
                ctx.send(agent, msg);
            }
        }
    }

    /// Sends each relay what the room did on its reactor since the last
    /// batch, with the log as it stands.
    fn flush_remote(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.remote.iter().all(Vec::is_empty) {
            return;
        }
        // The turn's log moves to the relays (`hand_out` clears it next).
        let log: Arc<[Bytes]> = self.segments.drain(..).collect();
        for r in 0..self.remote.len() {
            if self.remote[r].is_empty() {
                continue;
            }
            let ops = std::mem::take(&mut self.remote[r]);
            if let Some(Some(relay)) = self.relays.get(r) {
                ctx.send(*relay, RelayMsg::Batch(log.clone(), ops));
            }
        }
    }

    /// Refreshes the relays' addresses (a restarted service brings a new
    /// one): at the end of a turn, so that a turn uses one set throughout.
    fn refresh_relays(&mut self) {
        if let Some(d) = &self.directory {
            self.relays = d.relays();
        }
    }

    /// Asks for the turn-end hook, once per turn.
    fn hook(&mut self, ctx: &mut Ctx<'_, Self>) {
        if !self.hooked {
            self.hooked = true;
            ctx.at_turn_end();
        }
    }

    /// Lets each user have `window` lines (at least 1) on their way to the
    /// room: more lines handled per turn in a busy room, at the same
    /// fairness (every user gets the same number per turn).
    pub fn with_window(mut self, window: u32) -> ChatRoom {
        self.window = window.max(1);
        self
    }

    /// Lets each user send at most `rate` lines per second on average, in
    /// bursts of up to `window` lines (`None` or 0: no limit). A user
    /// over the rate gets its next unit of credit later, so its lines wait
    /// in its socket and then in the kernel, and TCP slows it down: one
    /// user cannot flood the others' screens (and have the slower ones
    /// dropped as too slow).
    pub fn with_rate(mut self, rate: Option<u32>) -> ChatRoom {
        self.interval = rate.filter(|&r| r > 0).map(|r| Duration::from_secs(1) / r);
        self
    }

    /// The user `key`'s line was handled: it may send its next one once
    /// this turn is over, or later if it is over the rate.
    fn next_line(&mut self, ctx: &mut Ctx<'_, Self>, key: usize) {
        let sock = self.users[key].sock;
        if let Some(interval) = self.interval {
            let now = ctx.now();
            let u = &mut self.users[key];
            u.due = u.due.max(now) + interval;
            let burst = interval * self.window;
            if u.due > now + burst {
                let me = ctx.me();
                ctx.send_after(me, RoomMsg::Credit(sock), u.due - now - burst);
                return;
            }
        }
        self.hook(ctx);
        self.credit_due.push(sock);
    }

    /// The next free `user<N>` name.
    fn fresh_name(&mut self) -> Rc<str> {
        loop {
            let n = self.numbers.get().max(1);
            self.numbers.set(n + 1);
            let name: Rc<str> = Rc::from(format!("user{n}"));
            if !self.by_name.contains_key(&name) {
                return name;
            }
        }
    }

    /// Tells every user `line`, in the room's order: into this turn's
    /// log, handed out at the end of the turn.
    fn broadcast(&mut self, ctx: &mut Ctx<'_, Self>, line: &[u8]) {
        if self.users.is_empty() {
            return;
        }
        self.open.reserve(line.len() + 1);
        self.open.extend_from_slice(line);
        self.open.extend_from_slice(b"\n");
        if self.open.len() >= HAND_OUT_AT {
            // A busy turn: hand out now rather than hold it all until the
            // turn ends (every user may have `window` long lines in it).
            self.hand_out(ctx);
        }
        self.hook(ctx);
    }

    /// Seals the segment being written, if any.
    fn seal(&mut self) {
        if !self.open.is_empty() {
            self.segments.push(self.open.split().freeze());
        }
    }

    /// Hands user `key` the part of this turn's log it has not had.
    fn catch_up(&mut self, ctx: &mut Ctx<'_, Self>, key: usize) {
        self.seal();
        let (sock, given) = (self.users[key].sock, self.users[key].given);
        self.give(ctx, sock, given);
        self.users[key].given = self.segments.len();
    }

    /// Tells user `key` alone `line`, after what everyone was told before.
    fn tell(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, line: &[u8]) {
        self.catch_up(ctx, key);
        let sock = self.users[key].sock;
        self.line_to(ctx, sock, line);
    }

    fn present_line(&self) -> String {
        protocol::present(self.order.values().map(|&k| &*self.users[k].name))
    }

    fn join(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        agent: Addr<UserAgent>,
        sock: Addr<Socket>,
        peer: Option<SocketAddr>,
    ) {
        if self.closing {
            self.line_to(ctx, sock, protocol::SHUTTING_DOWN.as_bytes());
            self.tell_agent(ctx, agent, AgentMsg::Close);
            return;
        }
        if self.cluster.is_some() {
            self.cluster_join(ctx, agent, sock, peer);
            return;
        }
        let name = self.fresh_name();
        let present = self.present_line();
        self.arrivals += 1;
        self.admit(
            ctx,
            self.arrivals,
            (agent, sock, peer),
            name.clone(),
            &present,
        );
        ctx.monitor(agent.id(), AGENT_MONITOR);
        self.broadcast(ctx, protocol::arrived(&name).as_bytes());
        // The user's first lines may come now.
        self.credit_to(ctx, sock, self.window);
    }

    /// Takes user `arrival` into the room as `name`: it is told who it is
    /// and who is present (`present`), and hears nothing said before (its
    /// share of the log starts after what is already written).
    fn admit(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        arrival: u64,
        (agent, sock, peer): (Addr<UserAgent>, Addr<Socket>, Option<SocketAddr>),
        name: Rc<str>,
        present: &str,
    ) {
        self.seal();
        self.line_to(ctx, sock, protocol::you_are(&name).as_bytes());
        self.line_to(ctx, sock, present.as_bytes());
        let key = self.users.insert(User {
            name: name.clone(),
            agent,
            sock,
            arrival,
            given: self.segments.len(),
            due: ctx.now(),
        });
        self.order.insert(arrival, key);
        self.by_agent.insert(agent.id(), key);
        self.by_name.insert(name.clone(), key);
        match peer {
            Some(p) => info!("{name} arrived from {p}"),
            None => info!("{name} arrived"),
        }
    }

    /// User `key` is now known as `new`.
    fn renamed(&mut self, key: usize, new: &str) {
        let new: Rc<str> = Rc::from(new);
        let old = std::mem::replace(&mut self.users[key].name, new.clone());
        info!("{old} is now known as {new}");
        self.by_name.remove(&old);
        self.by_name.insert(new, key);
    }

    /// Tells user `key` alone `line`, in the room's order, and lets its
    /// next line come.
    fn answer(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, line: &str) {
        self.tell(ctx, key, line.as_bytes());
        self.next_line(ctx, key);
    }

    /// Removes a user; announces it to the others unless the room is
    /// closing.
    fn remove(&mut self, ctx: &mut Ctx<'_, Self>, key: usize, reason: Option<&str>) {
        // Everything said so far, its own last lines included, still
        // reaches the user (if its connection can take it).
        self.catch_up(ctx, key);
        let user = self.users.remove(key);
        self.order.remove(&user.arrival);
        self.by_agent.remove(&user.agent.id());
        self.by_name.remove(&user.name);
        ctx.demonitor(user.agent.id(), AGENT_MONITOR);
        match reason {
            Some(r) => info!("{} left ({r})", user.name),
            None => info!("{} left", user.name),
        }
        if self.cluster.is_some() {
            self.cluster_remove(ctx, &user, reason.unwrap_or(""));
        } else if !self.closing {
            self.broadcast(ctx, protocol::left(&user.name, reason).as_bytes());
        }
    }

    fn say(&mut self, ctx: &mut Ctx<'_, Self>, from: ActorId, text: &Text, len: usize) {
        let Some(&key) = self.by_agent.get(&from) else {
            return;
        };
        if self.cluster.is_some() {
            self.cluster_say(ctx, key, &text.as_str()[..len]);
            return;
        }
        let line = protocol::says(&self.users[key].name, &text.as_str()[..len]);
        self.broadcast(ctx, line.as_bytes());
        self.next_line(ctx, key);
    }

    fn error(&mut self, ctx: &mut Ctx<'_, Self>, from: ActorId, line: &str) {
        let Some(&key) = self.by_agent.get(&from) else {
            return;
        };
        self.answer(ctx, key, line);
    }

    fn nick(&mut self, ctx: &mut Ctx<'_, Self>, from: ActorId, name: String) {
        let Some(&key) = self.by_agent.get(&from) else {
            return;
        };
        if *self.users[key].name == *name {
            self.tell(
                ctx,
                key,
                protocol::error(&format!("you are already {name}")).as_bytes(),
            );
        } else if self.cluster.is_some() {
            // Taken (or not) through Redis; its reply gives the credit.
            self.cluster_nick(ctx, key, name);
            return;
        } else if self.by_name.contains_key(name.as_str()) {
            self.tell(
                ctx,
                key,
                protocol::error(&format!("the name {name} is taken")).as_bytes(),
            );
        } else {
            let old = self.users[key].name.clone();
            self.renamed(key, &name);
            self.broadcast(ctx, protocol::now_known_as(&old, &name).as_bytes());
        }
        self.next_line(ctx, key);
    }

    fn who(&mut self, ctx: &mut Ctx<'_, Self>, from: ActorId) {
        let Some(&key) = self.by_agent.get(&from) else {
            return;
        };
        if self.cluster.is_some() {
            self.cluster_who(ctx, key);
            return;
        }
        let present = self.present_line();
        self.answer(ctx, key, &present);
    }

    fn shutdown(&mut self, ctx: &mut Ctx<'_, Self>) -> usize {
        self.closing = true;
        self.broadcast(ctx, protocol::SHUTTING_DOWN.as_bytes());
        let told = self.users.len();
        let keys: Vec<usize> = self.users.iter().map(|(k, _)| k).collect();
        for key in keys {
            // Everything, the shutdown included, before the close.
            self.catch_up(ctx, key);
            let agent = self.users[key].agent;
            self.tell_agent(ctx, agent, AgentMsg::Close);
            self.remove(ctx, key, None);
        }
        // Now, not at the turn's end: the room may be gone by then, and the
        // users of other reactors must still hear it and be let go.
        self.hand_out(ctx);
        told
    }

    /// Hands every user the rest of this turn's log (in place to the
    /// sockets of this reactor, through the relays to the others), and
    /// sends the relays their batches.
    fn hand_out(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.seal();
        if !self.segments.is_empty() {
            for (_, u) in &mut self.users {
                give(
                    ctx,
                    &self.segments,
                    &self.relays,
                    &mut self.remote,
                    u.sock,
                    u.given,
                );
                u.given = 0;
            }
        }
        self.flush_remote(ctx);
        self.segments.clear();
    }
}

/// The reactor whose relay (in `relays`) carries out what the room does to
/// `id`, if `id` is on another reactor that has one.
#[inline]
fn relay_of(relays: &[Option<Addr<Relay>>], ctx: &Ctx<'_, ChatRoom>, id: ActorId) -> Option<usize> {
    let r = id.reactor();
    (r != ctx.reactor() && relays.get(r).is_some_and(Option::is_some)).then_some(r)
}

/// Adds `op` to what the room sends reactor `r`'s relay.
fn push_op(remote: &mut Vec<Vec<Op>>, r: usize, op: Op) {
    if remote.len() <= r {
        remote.resize_with(r + 1, Vec::new);
    }
    remote[r].push(op);
}

/// Hands `sock` segments `from..` of the turn's log: in place on this
/// reactor, through its reactor's relay elsewhere. A function of the
/// room's fields, not of the room, so that `hand_out` can call it while it
/// walks the users.
fn give(
    ctx: &mut Ctx<'_, ChatRoom>,
    segments: &[Bytes],
    relays: &[Option<Addr<Relay>>],
    remote: &mut Vec<Vec<Op>>,
    sock: Addr<Socket>,
    from: usize,
) {
    let to = segments.len();
    if from >= to {
        return;
    }
    match relay_of(relays, ctx, sock.id()) {
        Some(r) => push_op(remote, r, Op::Segments(sock, from as u32, to as u32)),
        None => {
            for seg in &segments[from..] {
                sock.send_shared(ctx, seg.clone());
            }
        }
    }
}

impl Actor for ChatRoom {
    type Msg = RoomMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(d) = &self.directory {
            d.set(ctx.me());
        }
        self.refresh_relays();
        if self.cluster.is_some() {
            self.cluster_started(ctx);
        }
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: RoomMsg) {
        match msg {
            RoomMsg::Join { agent, sock, peer } => self.join(ctx, agent, sock, peer),
            RoomMsg::Say { from, text, len } => self.say(ctx, from, &text, len),
            RoomMsg::Nick { from, name } => self.nick(ctx, from, name),
            RoomMsg::Who { from } => self.who(ctx, from),
            RoomMsg::Leave { agent, why } => {
                if let Some(&key) = self.by_agent.get(&agent.id()) {
                    self.remove(ctx, key, why.reason());
                } else if self.cluster.is_some() {
                    self.newcomer_gone(ctx, agent.id());
                }
                // The agent closes once what the room queued is written.
                self.tell_agent(ctx, agent, AgentMsg::Close);
            }
            RoomMsg::Error { from, line } => self.error(ctx, from, &line),
            RoomMsg::Credit(sock) => {
                self.credit_to(ctx, sock, 1);
                self.hook(ctx);
            }
            RoomMsg::Shutdown(reply) => {
                let told = self.shutdown(ctx);
                if self.cluster.is_some() {
                    self.cluster_shutdown(ctx, reply, told);
                } else {
                    reply.resolve(ctx, told);
                }
            }
            RoomMsg::Redis(event) => {
                if self.cluster.is_some() {
                    self.redis_event(ctx, *event);
                }
            }
            RoomMsg::Cluster(msg) => {
                if self.cluster.is_some() {
                    self.cluster_msg(ctx, msg);
                }
            }
            RoomMsg::Users(reply) => {
                let users = self
                    .order
                    .values()
                    .map(|&k| (self.users[k].name.to_string(), self.users[k].agent.id()))
                    .collect();
                reply.resolve(ctx, users);
            }
        }
    }

    fn turn_end(&mut self, ctx: &mut Ctx<'_, Self>) {
        // What this hook queues for the relays, it sends itself (below):
        // no further round of the hook is needed for it.
        self.hooked = true;
        let mut due = std::mem::take(&mut self.credit_due);
        for sock in due.drain(..) {
            self.credit_to(ctx, sock, 1);
        }
        // Keeps its capacity for the next turn.
        self.credit_due = due;
        self.hand_out(ctx);
        self.refresh_relays();
        self.hooked = false;
    }

    /// An agent ended without leaving (it failed): its user leaves as
    /// `(failed)`. Its socket closes through their link.
    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        agent: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        if let Some(&key) = self.by_agent.get(&agent) {
            let why = if reason.is_normal() {
                None
            } else {
                Some("failed")
            };
            self.remove(ctx, key, why);
        } else if self.cluster.is_some() {
            self.newcomer_gone(ctx, agent);
        }
    }
}
