//! One agent per connected user (the library's `ChatUserAgent`): the
//! controller of the user's socket. It reads the user's lines, answers
//! what concerns the user alone (malformed commands, bad input) and takes
//! the rest to the room; it tells the room when the user goes.

use std::net::SocketAddr;

use log::debug;

use credit_actors::net::{Delimiter, ProxyHeader, Socket, SocketEvent, Unit, UnitError};
use credit_actors::{Actor, ActorId, Addr, Ctx, ExitReason, MonitorRef};

use crate::protocol::{self, Input};
use crate::room::{ChatRoom, Departure, RoomMsg};

/// Messages to a [`UserAgent`].
#[derive(Debug)]
pub enum AgentMsg {
    /// The user's socket (the agent is made its controller).
    Connection(Addr<Socket>),
    /// The room lets the user go (the server stops): close the connection
    /// once what the room said is written.
    Close,
    /// From the socket.
    Socket(SocketEvent),
    /// The room is gone: sent by the agent to itself, behind what had
    /// already reached it, with the line to tell the user, if any.
    RoomGone(Option<&'static str>),
}

impl From<SocketEvent> for AgentMsg {
    fn from(e: SocketEvent) -> Self {
        AgentMsg::Socket(e)
    }
}

/// The agent of one user.
#[derive(Debug)]
pub struct UserAgent {
    room: Addr<ChatRoom>,
    sock: Option<Addr<Socket>>,
    peer: Option<SocketAddr>,
    /// The longest line, for the error message.
    max_line: usize,
    /// The user is leaving: the room was told and will say when to close.
    leaving: bool,
    /// The connection's PROXY header is awaited before the user joins.
    await_header: bool,
    /// The room was told of the user.
    joined: bool,
}

const ROOM_MONITOR: MonitorRef = 1;

impl UserAgent {
    /// An agent for a user of `room`, connected from `peer`.
    pub fn new(room: Addr<ChatRoom>, peer: Option<SocketAddr>, max_line: usize) -> UserAgent {
        UserAgent {
            room,
            sock: None,
            peer,
            max_line,
            leaving: false,
            await_header: false,
            joined: false,
        }
    }

    /// The same agent, for a connection that starts with a PROXY header
    /// (the socket's configuration has a policy): the user joins once the
    /// header names the client, so the room sees the client's address,
    /// and a `LOCAL` connection (the proxy's health check) does not join
    /// at all: it is told [`protocol::HEALTH_OK`] and closed.
    pub fn awaiting_proxy_header(mut self) -> UserAgent {
        self.await_header = true;
        self
    }

    fn connection(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>) {
        self.sock = Some(sock);
        sock.delimiter_mode(ctx, Delimiter::lf());
        if !self.await_header {
            self.join(ctx, sock);
        }
    }

    /// The connection's PROXY header.
    fn proxied(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>, header: &ProxyHeader) {
        if self.joined {
            return;
        }
        if header.is_local() {
            debug!("{sock}: the proxy's health check");
            sock.send_line(ctx, protocol::HEALTH_OK);
            sock.stop(ctx);
            ctx.stop();
            return;
        }
        if let Some(client) = header.source {
            self.peer = Some(client);
        }
        self.join(ctx, sock);
    }

    /// Takes the user to the room.
    fn join(&mut self, ctx: &mut Ctx<'_, Self>, sock: Addr<Socket>) {
        self.joined = true;
        // Credit comes from the room: once it has the user, and after each
        // line it handled.
        ctx.monitor(self.room.id(), ROOM_MONITOR);
        ctx.send(
            self.room,
            RoomMsg::Join {
                agent: ctx.me(),
                sock,
                peer: self.peer,
            },
        );
    }

    fn line(&mut self, ctx: &mut Ctx<'_, Self>, unit: Unit) {
        let from = ctx.id();
        let Unit::Text(text) = unit else {
            // The socket is in text mode: every unit is text.
            self.error(ctx, "line is not text".into());
            return;
        };
        match protocol::parse(text.as_str()) {
            Input::Say(said) => {
                // `said` is a slice of `text`: its start and length.
                let start = said.as_ptr() as usize - text.as_str().as_ptr() as usize;
                let len = said.len();
                let text = if start == 0 {
                    text
                } else {
                    // `//text`: the room gets the text after the first '/'.
                    match credit_actors::net::Text::try_from(text.into_bytes().slice(start..)) {
                        Ok(t) => t,
                        Err(_) => {
                            self.error(ctx, "line is not valid UTF-8".into());
                            return;
                        }
                    }
                };
                ctx.send(self.room, RoomMsg::Say { from, text, len });
            }
            Input::Nick(name) => {
                let name = name.to_string();
                ctx.send(self.room, RoomMsg::Nick { from, name });
            }
            Input::Who => {
                ctx.send(self.room, RoomMsg::Who { from });
            }
            Input::Quit => self.leave(ctx, Departure::Quit),
            Input::Error(why) => self.error(ctx, why),
        }
    }

    fn bad_line(&mut self, ctx: &mut Ctx<'_, Self>, e: &UnitError) {
        let why = match e {
            UnitError::TooLong { .. } => format!("line longer than {} bytes", self.max_line),
            UnitError::InvalidUtf8 { .. } => "line is not valid UTF-8".to_string(),
        };
        self.error(ctx, why);
    }

    /// An error for the user alone, through the room: it then comes after
    /// everything the user's earlier lines caused, and the room gives the
    /// line's credit back as for any other.
    fn error(&mut self, ctx: &mut Ctx<'_, Self>, why: String) {
        let from = ctx.id();
        let line = protocol::error(&why);
        ctx.send(self.room, RoomMsg::Error { from, line });
    }

    /// Tells the room, which hands the user what is still due and then
    /// answers [`AgentMsg::Close`]: the connection closes once that is
    /// written.
    fn leave(&mut self, ctx: &mut Ctx<'_, Self>, why: Departure) {
        if !self.leaving {
            self.leaving = true;
            let agent = ctx.me();
            ctx.send(self.room, RoomMsg::Leave { agent, why });
        }
    }
}

impl Actor for UserAgent {
    type Msg = AgentMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: AgentMsg) {
        match msg {
            AgentMsg::Connection(sock) => self.connection(ctx, sock),
            AgentMsg::Close => {
                if let Some(sock) = self.sock {
                    sock.stop(ctx);
                }
                ctx.stop();
            }
            // Once leaving, the user's further lines are not the room's
            // concern.
            AgentMsg::Socket(SocketEvent::Proxied(sock, header)) => {
                self.proxied(ctx, sock, &header)
            }
            // Not in the room yet (its PROXY header never came whole): the
            // room has nothing to be told.
            AgentMsg::Socket(SocketEvent::Closed(..) | SocketEvent::Timeout(..))
                if !self.joined =>
            {
                if let Some(sock) = self.sock {
                    sock.stop(ctx);
                }
                ctx.stop();
            }
            AgentMsg::Socket(SocketEvent::Data(..)) if self.leaving => {}
            AgentMsg::Socket(SocketEvent::Data(_, Ok(unit))) => self.line(ctx, unit),
            AgentMsg::Socket(SocketEvent::Data(_, Err(e))) => self.bad_line(ctx, &e),
            AgentMsg::Socket(SocketEvent::Closed(sock, reason)) => {
                debug!("{sock}: {reason}");
                self.leave(ctx, Departure::Closed(reason));
            }
            AgentMsg::Socket(SocketEvent::Timeout(_)) => self.leave(ctx, Departure::Idle),
            AgentMsg::Socket(SocketEvent::Connected(..)) => {}
            AgentMsg::RoomGone(line) => {
                if let Some(sock) = self.sock {
                    if let Some(line) = line {
                        sock.send_line(ctx, line);
                    }
                    sock.stop(ctx);
                }
                ctx.stop();
            }
        }
    }

    /// The room is gone. If it failed, the user is told so; either way the
    /// connection closes (a restarted room starts empty, and the user
    /// reconnects to it).
    ///
    /// Handled behind what has already reached the agent: on a group of
    /// reactors, the room's last word for this user (a `Close` after its
    /// last lines) comes through the reactor's relay, and may arrive
    /// just after the notice that the room has gone.
    fn down(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        _room: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        // A room that failed (a panic, or a chain that began with one) is
        // a failure; one killed or gone (the server stopping, with this
        // user just arriving) is the server shutting down.
        let failed = match reason {
            ExitReason::Failed(_) => true,
            ExitReason::Linked { reason, .. } => matches!(**reason, ExitReason::Failed(_)),
            _ => false,
        };
        let line = if failed {
            Some(protocol::ROOM_FAILED)
        } else if reason.is_normal() {
            None
        } else {
            Some(protocol::SHUTTING_DOWN)
        };
        let me = ctx.me();
        ctx.send(me, AgentMsg::RoomGone(line));
    }
}
