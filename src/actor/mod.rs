//! Actors: the behaviour trait, handles, exit reasons, requests.
//!
//! An actor is a behaviour (a value implementing [`Actor`]) plus a mailbox.
//! It runs only on the reactor thread, one handler at a time. Everything it
//! receives (messages, link notices, monitor notices) goes through its one
//! mailbox, in the order it was sent, so a socket's `closed` event always
//! reaches its controller before the socket's own link notice.

mod addr;
mod context;
mod exit;
mod request;
mod supervisor;

pub use addr::{ActorId, Addr, Recipient};
pub use context::Ctx;
pub use exit::ExitReason;
pub(crate) use request::{take_orphans, Continuation, MapInto, RequestId};
pub use request::{PendingReply, Reply, RequestError};
pub use supervisor::{ChildInfo, ChildSpec, Restart, StartFn, Supervisor, SupervisorMsg};

use crate::reactor::Ready;

/// What an actor does when a linked peer terminates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    /// Terminate too, with [`ExitReason::Linked`]. The default.
    Exit,
    /// Stay alive; the notice has been handled.
    Stay,
}

/// A monitor's reference, chosen by the monitoring side.
pub type MonitorRef = u64;

/// A behaviour: state plus handlers, driven by the reactor.
///
/// Only [`Actor::handle`] is required. Handlers must not block: the reactor
/// runs every actor on one thread.
///
/// ```
/// use credit_actors::{Actor, Ctx, Reactor};
///
/// struct Counter(u64);
/// enum Msg { Add(u64), Done }
///
/// impl Actor for Counter {
///     type Msg = Msg;
///     fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Done => ctx.stop(),
///         }
///     }
/// }
///
/// let mut reactor = Reactor::new().unwrap();
/// let counter = reactor.spawn(Counter(0));
/// reactor.send(counter, Msg::Add(2));
/// reactor.send(counter, Msg::Done);
/// reactor.run().unwrap(); // returns once no actor is alive
/// ```
pub trait Actor: Sized + 'static {
    /// The messages this actor accepts.
    type Msg: 'static;

    /// Runs once, on the actor's first turn, before any message.
    fn started(&mut self, _ctx: &mut Ctx<'_, Self>) {}

    /// Handles one message.
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg);

    /// A linked peer terminated. By default this actor terminates too.
    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _reason: &ExitReason,
    ) -> LinkAction {
        LinkAction::Exit
    }

    /// A monitored peer terminated. Never terminates this actor.
    fn down(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        _peer: ActorId,
        _reference: MonitorRef,
        _reason: &ExitReason,
    ) {
    }

    /// An I/O source this actor registered is ready. Readiness is
    /// edge-triggered and may be spurious.
    fn io_ready(&mut self, _ctx: &mut Ctx<'_, Self>, _ready: Ready) {}

    /// Runs at the end of a reactor turn, once, if the actor asked with
    /// [`Ctx::at_turn_end`]. Socket actors flush their output here, so all
    /// the replies of one turn leave in one write.
    fn turn_end(&mut self, _ctx: &mut Ctx<'_, Self>) {}

    /// Runs when the actor terminates, for whatever reason, before its links
    /// and monitors are notified.
    fn stopped(&mut self, _ctx: &mut Ctx<'_, Self>, _reason: &ExitReason) {}
}
