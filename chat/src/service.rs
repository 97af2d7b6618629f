//! The accepting side: listens, and gives each accepted connection an
//! agent in the room. Accept credit keeps the users at `max_users` at most.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use log::{info, warn};

use credit_actors::net::{Listener, ListenerEvent, Socket, SocketEvent};
use credit_actors::{
    Actor, ActorId, Addr, Ctx, ExitReason, LinkAction, MonitorRef, Reply, RequestError,
};

use crate::agent::{AgentMsg, UserAgent};
use crate::protocol;
use crate::room::{ChatRoom, RoomMsg};
use crate::{ChatConfig, ROOM};

/// Messages to a [`ChatService`].
#[derive(Debug)]
pub enum ServiceMsg {
    /// From the listening socket.
    Listener(ListenerEvent),
    /// From an accepted socket not yet handed to its agent.
    Socket(SocketEvent),
    /// Answered with the listening address once listening, or rejected if
    /// listening failed.
    WhenReady(Reply<SocketAddr>),
    /// Answered with the number of connected users (agents alive).
    Users(Reply<usize>),
    /// Stops accepting: the listener closes; connected users stay.
    StopAccepting,
    /// The users already present when the service started (connected
    /// through an earlier incarnation of it): they count toward
    /// `max_users`.
    Present(Result<Vec<(String, ActorId)>, RequestError>),
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

/// The chat server's accepting side.
#[derive(Debug)]
pub struct ChatService {
    config: ChatConfig,
    listener: Option<Addr<Listener>>,
    local_addr: Option<SocketAddr>,
    waiting: Vec<Reply<SocketAddr>>,
    users: usize,
    accept_credit: usize,
    accepting: bool,
    /// Where to record the port bound, so that a restarted service binds
    /// the same one (when the configuration asked for port 0).
    bound_port: Option<Rc<Cell<u16>>>,
}

const AGENT_MONITOR: MonitorRef = 1;

impl ChatService {
    /// A service with these settings. It finds the room by its registered
    /// name ([`ROOM`]) at each connection, so a restarted room gets the
    /// newcomers.
    pub fn new(config: ChatConfig) -> ChatService {
        ChatService {
            config,
            listener: None,
            local_addr: None,
            waiting: Vec::new(),
            users: 0,
            accept_credit: 0,
            accepting: true,
            bound_port: None,
        }
    }

    /// The current room: found by name on one reactor, through the group's
    /// directory on several.
    fn room(&self, ctx: &Ctx<'_, Self>) -> Option<Addr<ChatRoom>> {
        match &self.config.group {
            Some(g) => g.room.get(),
            None => ctx.whereis::<ChatRoom>(ROOM),
        }
    }

    /// Records the port bound in `port` once listening.
    pub fn remember_port(mut self, port: Rc<Cell<u16>>) -> ChatService {
        self.bound_port = Some(port);
        self
    }

    fn issue_accept_credit(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(listener) = self.listener else {
            return;
        };
        if !self.accepting {
            return;
        }
        if let Some(max) = self.config.max_users {
            if self.users + self.accept_credit >= max {
                return;
            }
        }
        self.accept_credit += 1;
        listener.issue_credit(ctx, 1);
    }

    fn accepted(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, peer: SocketAddr) {
        if self.config.group.is_none() {
            self.accept_credit = self.accept_credit.saturating_sub(1);
        }
        let Some(room) = self.room(ctx) else {
            warn!("no chat room (restarting?): turning {peer} away");
            sock.send_line(
                ctx,
                protocol::error("the chat room is restarting; try again"),
            );
            sock.stop(ctx);
            self.next_accept(ctx);
            return;
        };
        let mut agent = UserAgent::new(room, Some(peer), self.config.conn.max_unit);
        if self.config.conn.proxy.is_some() {
            agent = agent.awaiting_proxy_header();
        }
        let agent = ctx.spawn(agent);
        ctx.monitor(agent.id(), AGENT_MONITOR);
        ctx.send(agent, AgentMsg::Connection(sock));
        sock.set_controller(ctx, agent);
        self.users += 1;
        if self.config.group.is_none() {
            self.issue_accept_credit(ctx);
        }
    }

    /// A user's connection ended (or was turned away): on a group its
    /// slot is free, and the listeners waiting for one try again; alone,
    /// one more unit of accept credit.
    fn next_accept(&mut self, ctx: &mut Ctx<'_, Self>) {
        match self.config.group.as_ref().map(|g| g.handoff.slots()) {
            Some(Some(slots)) => slots.clone().free(ctx),
            Some(None) => {}
            None => self.issue_accept_credit(ctx),
        }
    }
}

impl Actor for ChatService {
    type Msg = ServiceMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(group) = self.config.group.clone() {
            group.handoff.join(ctx);
            // This reactor's relay for the room's output: it ends after
            // the service (and its successor's replaces it).
            let relay = ctx.spawn(crate::Relay::watching(ctx.id()));
            group.room.set_relay(ctx.reactor(), relay);
            if group.listen {
                let l = Listener::listen_handoff(
                    ctx,
                    self.config.listen.clone(),
                    self.config.conn.clone(),
                    group.handoff,
                );
                self.listener = Some(l);
                // Unbounded: the group's slots bound the users.
                l.issue_credit(ctx, i64::MAX);
            }
            return;
        }
        self.listener = Some(Listener::listen_with(
            ctx,
            self.config.listen.clone(),
            self.config.conn.clone(),
        ));
        // A restarted service counts the users its predecessor let in
        // before it accepts anyone, so `max_users` holds across restarts.
        match ctx.whereis::<ChatRoom>(ROOM) {
            Some(room) if self.config.max_users.is_some() => {
                ctx.request(room, RoomMsg::Users, ServiceMsg::Present);
            }
            _ => self.issue_accept_credit(ctx),
        }
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ServiceMsg) {
        match msg {
            ServiceMsg::Listener(ListenerEvent::Ready(_, result)) => match result {
                Ok(addr) => {
                    info!("Chat server accepting connections on {addr}");
                    self.local_addr = Some(addr);
                    if let Some(p) = &self.bound_port {
                        p.set(addr.port());
                    }
                    for r in self.waiting.drain(..) {
                        r.resolve(ctx, addr);
                    }
                }
                Err(e) => {
                    warn!("Chat server is not accepting connections: {e}");
                    for r in self.waiting.drain(..) {
                        r.reject(ctx, RequestError::rejected(e.to_string()));
                    }
                }
            },
            ServiceMsg::Listener(ListenerEvent::Accepted(_, sock, peer)) => {
                self.accepted(ctx, sock, peer)
            }
            ServiceMsg::Socket(_) => {}
            ServiceMsg::WhenReady(reply) => match self.local_addr {
                Some(addr) => reply.resolve(ctx, addr),
                None => self.waiting.push(reply),
            },
            ServiceMsg::Users(reply) => reply.resolve(ctx, self.users),
            ServiceMsg::Present(result) => {
                for (_, agent) in result.unwrap_or_default() {
                    if ctx.is_alive(agent) {
                        ctx.monitor(agent, AGENT_MONITOR);
                        self.users += 1;
                    }
                }
                self.issue_accept_credit(ctx);
            }
            ServiceMsg::StopAccepting => {
                self.accepting = false;
                if let Some(l) = self.listener.take() {
                    l.stop(ctx);
                }
            }
        }
    }

    /// The listener's end ends the service, unless the service stopped it;
    /// a socket's end before its hand-over concerns that connection only.
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _r: &ExitReason,
    ) -> LinkAction {
        if self.listener.is_some_and(|l| l.id() == peer) {
            LinkAction::Exit
        } else {
            LinkAction::Stay
        }
    }

    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        _agent: ActorId,
        _r: MonitorRef,
        _why: &ExitReason,
    ) {
        self.users = self.users.saturating_sub(1);
        self.next_accept(ctx);
    }
}
