//! The chat room from the tutorial's library (`ChatRoom`, one
//! `ChatUserAgent` per user), on credit-actors' public API.
//!
//! - [`ChatRoom`] knows who is present, in order of arrival, and tells
//!   everyone every event in the one order it handles them, writing
//!   straight into each user's socket.
//! - [`UserAgent`] controls one user's socket: it reads the user's lines,
//!   answers what concerns the user alone, takes the rest to the room, and
//!   tells the room when the user goes.
//! - [`ChatService`] listens, and gives each connection an agent; accept
//!   credit keeps the users at `max_users` at most.
//! - [`start`] builds the server's tree: a supervisor over the room and the
//!   service, each registered under its name ([`ROOM`], [`SERVICE`]).
//!
//! The protocol is in [`protocol`]; the `chat-server` binary runs it, and
//! `socket-terminal` is a terminal for any line server (after the library's
//! `DemoSocketTerminal`).
//!
//! # Policies
//!
//! - **Pacing.** A user's socket hands its agent at most `window` lines
//!   (default 16) ahead of the room; the room gives each line's credit back
//!   at the end of the turn in which it handled it. Every user gets at
//!   most `window` lines handled per reactor turn, the reactor polls
//!   between turns, so a flooding user gets its share like the others and
//!   no more. Each user may also send at most `rate` lines per second on
//!   average (default 1,000, in bursts of `window`): past it, the room
//!   gives the credit back later, so a flooder slows down instead of
//!   filling everyone's output until the slower readers are dropped.
//! - **Slow users.** The room never waits on a socket: it appends to the
//!   socket's output queue. A user whose queue stays above `max_backlog`
//!   bytes after the end-of-turn flush is disconnected and announced as
//!   `left (too slow)`.
//! - **Across servers.** With [`ChatConfig::cluster`] (`--redis`), servers
//!   share one room through Redis: every event goes through the room's
//!   channel there and the roster lives there (see
//!   [`room::ClusterConfig`], and NOTES.md).
//! - **Failures.** An agent that fails removes its user alone, announced as
//!   `left (failed)`. If the room fails, every user is told
//!   [`protocol::ROOM_FAILED`] and disconnected; the supervisor starts a new,
//!   empty room, which newcomers join (names keep counting up).

pub mod agent;
pub mod protocol;
pub mod redis;
pub mod relay;
pub mod room;
pub mod service;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use credit_actors::actor::{ChildSpec, Restart, Supervisor};
use credit_actors::net::{Handoff, ListenSpec, SocketConfig};
use credit_actors::{Addr, Ctx};

pub use agent::{AgentMsg, UserAgent};
pub use relay::{Op, Relay, RelayMsg};
pub use room::{ChatRoom, Departure, RoomMsg};
pub use service::{ChatService, ServiceMsg};

/// The chat server's port.
pub const DEFAULT_PORT: u16 = 5999;

/// The longest line a user may send, by default.
pub const DEFAULT_MAX_LINE: usize = 4 * 1024;

/// Output a user may leave unread before being disconnected, by default.
pub const DEFAULT_MAX_BACKLOG: usize = 256 * 1024;

/// The name the room is registered under.
pub const ROOM: &str = "chat-room";

/// The name the service is registered under.
pub const SERVICE: &str = "chat-service";

/// Settings of a chat server.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Where to listen.
    pub listen: ListenSpec,
    /// Settings of every user's connection: `max_unit` is the longest
    /// line, `max_backlog` the unread output allowed, `idle_timeout` when
    /// a silent user is let go.
    pub conn: SocketConfig,
    /// Most users at once; further connections wait in the kernel
    /// backlog. `None`: no limit.
    pub max_users: Option<usize>,
    /// Lines a user may have on their way to the room
    /// ([`ChatRoom::with_window`]).
    pub window: u32,
    /// Lines a user may send per second, on average, in bursts of
    /// `window` ([`ChatRoom::with_rate`]). `None`: no limit.
    pub rate: Option<u32>,
    /// On a group of reactors: how this reactor's service shares the port
    /// and finds the room. `None`: one reactor.
    pub group: Option<ChatGroup>,
    /// One room across servers, through Redis. `None`: the room is this
    /// server's alone.
    pub cluster: Option<room::ClusterConfig>,
}

/// The chat server on a group of reactors.
///
/// One room, on reactor 0, holds the room's state and its one order; every
/// reactor has a service, which places connections as [`Handoff`] says
/// (`--accept`), and each user's agent and socket live on the reactor the
/// connection was placed on. The room writes into remote users' sockets
/// through the lanes between reactors, in its order (per pair of reactors,
/// in send order), and agents send it their users' lines the same way.
#[derive(Clone, Debug)]
pub struct ChatGroup {
    /// The group's table of services.
    pub handoff: Handoff,
    /// This reactor's service listens.
    pub listen: bool,
    /// Where services on any reactor find the current room.
    pub room: RoomDirectory,
}

/// Where the actors of a chat server on a group of reactors find each
/// other: the current room (it records itself when it starts, so a
/// restarted room gets the newcomers) and each reactor's [`Relay`].
#[derive(Clone, Debug, Default)]
pub struct RoomDirectory(Arc<Mutex<Directory>>);

#[derive(Debug, Default)]
struct Directory {
    room: Option<Addr<ChatRoom>>,
    relays: Vec<Option<Addr<Relay>>>,
}

impl RoomDirectory {
    /// The room's address, if one has started.
    pub fn get(&self) -> Option<Addr<ChatRoom>> {
        self.lock().room
    }

    pub(crate) fn set(&self, room: Addr<ChatRoom>) {
        self.lock().room = Some(room);
    }

    /// Records reactor `i`'s relay.
    pub(crate) fn set_relay(&self, i: usize, relay: Addr<Relay>) {
        let mut d = self.lock();
        if d.relays.len() <= i {
            d.relays.resize(i + 1, None);
        }
        d.relays[i] = Some(relay);
    }

    /// Each reactor's relay, by reactor number.
    pub(crate) fn relays(&self) -> Vec<Option<Addr<Relay>>> {
        self.lock().relays.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            listen: ListenSpec::port(DEFAULT_PORT),
            conn: SocketConfig {
                max_unit: DEFAULT_MAX_LINE,
                max_backlog: Some(DEFAULT_MAX_BACKLOG),
                ..SocketConfig::default()
            },
            max_users: None,
            window: room::DEFAULT_WINDOW,
            rate: Some(room::DEFAULT_RATE),
            group: None,
            cluster: None,
        }
    }
}

/// Starts a chat server from an actor's context: a one-for-one supervisor
/// over the room and the service, each registered under its name. Returns
/// the supervisor.
pub fn start<A: credit_actors::Actor>(
    ctx: &mut Ctx<'_, A>,
    config: ChatConfig,
) -> Addr<Supervisor> {
    ctx.spawn(supervisor(config))
}

/// The supervisor of a chat server (see [`start`]), for spawning from a
/// reactor or a handle.
///
/// A restarted room starts empty and keeps counting user numbers up; a
/// restarted service listens on the port the first one bound.
pub fn supervisor(config: ChatConfig) -> Supervisor {
    supervisor_of(config, true)
}

/// The supervisor of reactor `i`'s part of a chat server on a group: the
/// room (on reactor 0 only) and this reactor's service.
pub fn group_supervisor(config: ChatConfig, i: usize) -> Supervisor {
    supervisor_of(config, i == 0)
}

fn supervisor_of(config: ChatConfig, with_room: bool) -> Supervisor {
    let numbers = Rc::new(Cell::new(1));
    let port = Rc::new(Cell::new(config.listen.port));
    let (window, rate) = (config.window, config.rate);
    let directory = config.group.as_ref().map(|g| g.room.clone());
    // Events as long as this server's own lines are told.
    let cluster = config.cluster.clone().map(|mut c| {
        c.max_line = c.max_line.max(config.conn.max_unit);
        c
    });
    let lineage = Rc::new(std::cell::RefCell::new(None));
    let mut sup = Supervisor::new();
    if with_room {
        sup = sup.child(
            ChildSpec::new(ROOM, Restart::Permanent, move |ctx| {
                let room = ChatRoom::new(numbers.clone())
                    .with_window(window)
                    .with_rate(rate)
                    .with_directory(directory.clone())
                    .with_cluster(cluster.clone())
                    .succeeding(lineage.clone());
                ctx.spawn(room).id()
            })
            .registered(),
        );
    }
    sup.child(
        ChildSpec::new(SERVICE, Restart::Permanent, move |ctx| {
            let mut config = config.clone();
            config.listen.port = port.get();
            ctx.spawn(ChatService::new(config).remember_port(port.clone()))
                .id()
        })
        .registered(),
    )
}
