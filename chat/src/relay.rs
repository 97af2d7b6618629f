//! On a group of reactors: one relay per reactor carries out, on that
//! reactor, what the room does to its users' sockets and agents there.
//!
//! The room is on reactor 0. Written straight into its remote users'
//! sockets, each turn's log would cross the lanes between reactors as one
//! message per user, and each would be a run of that user's socket. The
//! room instead collects, per other reactor, everything it does there in a
//! turn, in its order: log segments for a socket (the log itself is shared
//! by reference), lines for one user, credit, messages to agents (a
//! `Close` after the user's last lines). It sends each relay one batch at
//! the end of its turn (and when it hands out its log early), and the
//! relay replays the batch on its reactor, acting on the sockets in place
//! as the room does on its own. Everything the room does on a reactor goes
//! through that reactor's relay, in one message per turn, so the room's
//! order holds per user: a relay acts in place only on a socket with
//! nothing waiting in its mailbox (`Core::direct`), and sends a message
//! behind what waits otherwise; and an agent told to close gets the
//! message from the relay, after the relay has done everything before it.
//!
//! One order is not the room's: an agent learns that the room has gone
//! (its monitor) straight from the room's reactor. The room's last batch
//! leaves before that notice, through the same lane, and the relay is
//! queued before the agents, so the batch is carried out first unless the
//! relay has more than a run's budget (64) of batches waiting.

use std::sync::Arc;

use bytes::Bytes;

use credit_actors::net::Socket;
use credit_actors::{Actor, ActorId, Addr, Ctx, ExitReason, MonitorRef};

use crate::agent::{AgentMsg, UserAgent};

/// One thing the room does on a relay's reactor.
#[derive(Debug)]
pub enum Op {
    /// Hand the socket segments `from..to` of the batch's log.
    Segments(Addr<Socket>, u32, u32),
    /// Send the socket these bytes (a line, with its terminator).
    Bytes(Addr<Socket>, Bytes),
    /// Issue the socket this much credit.
    Credit(Addr<Socket>, u32),
    /// Send the agent this message.
    Agent(Addr<UserAgent>, AgentMsg),
}

/// Messages to a [`Relay`].
#[derive(Debug)]
pub enum RelayMsg {
    /// The room's log as of the batch, and what to do, in order.
    Batch(Arc<[Bytes]>, Vec<Op>),
}

/// Carries out the room's batches on its reactor.
///
/// It watches its reactor's service and stops when the service has gone,
/// after the batches that reached it before: the notice waits in its
/// mailbox behind them. Linked instead, it would die with the batches of
/// the room's last words unread.
#[derive(Debug)]
pub struct Relay {
    service: ActorId,
}

impl Relay {
    /// A relay that ends after `service`.
    pub fn watching(service: ActorId) -> Relay {
        Relay { service }
    }
}

impl Actor for Relay {
    type Msg = RelayMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.monitor(self.service, 0);
    }

    fn down(&mut self, ctx: &mut Ctx<'_, Self>, _: ActorId, _: MonitorRef, _: &ExitReason) {
        ctx.stop();
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, RelayMsg::Batch(log, ops): RelayMsg) {
        for op in ops {
            match op {
                Op::Segments(sock, from, to) => {
                    for seg in log.get(from as usize..to as usize).unwrap_or_default() {
                        sock.send_shared(ctx, seg.clone());
                    }
                }
                Op::Bytes(sock, bytes) => sock.send(ctx, bytes),
                Op::Credit(sock, n) => sock.issue_credit(ctx, i64::from(n)),
                Op::Agent(agent, msg) => {
                    ctx.send(agent, msg);
                }
            }
        }
    }
}
