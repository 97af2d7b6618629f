//! Actors: the behaviour trait, addresses, contexts, exit reasons, links,
//! monitors, requests, names and supervision.
//!
//! An actor is a behaviour (a value implementing [`Actor`]) plus a mailbox.
//! It runs only on the reactor thread, one handler at a time. Everything it
//! receives (messages, link notices, monitor notices) goes through its one
//! mailbox, in the order it was sent, so a socket's `closed` event always
//! reaches its controller before the socket's own link notice.
//!
//! This layer sits on the reactor: it builds the function table the reactor
//! calls for each actor type (`cell.rs`), keeps its own per-reactor state
//! (`system.rs`: exits, pending requests, names), and adds the actor-level
//! operations to the reactor's `Core`, `Reactor` and `ReactorHandle`, which
//! it names for its users as the aliases [`Core`], [`Reactor`] and
//! [`ReactorHandle`].
//!
//! # Vocabulary
//!
//! One name per concept, everywhere:
//!
//! | concept | name |
//! |---|---|
//! | an actor's identity (slot and generation) | [`ActorId`] |
//! | a typed way to reach an actor | *address*: [`Addr`], [`Recipient`] |
//! | a way for other threads to reach a reactor | *handle*: [`ReactorHandle`] |
//! | start an actor | `spawn`: [`Ctx::spawn`] in a handler, [`Core::spawn`] on the reactor thread (a [`Reactor`] derefs to its core), [`ReactorHandle::spawn`] from another thread (with a closure: actors need not be `Send`); [`Ctx::spawn_link`] spawns and links in one step |
//! | one-way message | `send`, to an [`Addr`] or a [`Recipient`] |
//! | message with a reply slot | `request`; the callee `resolve`s, `reject`s or keeps (*detaches*) the [`Reply`] |
//! | end oneself | [`Ctx::stop`] (normal), [`Ctx::exit`] (with a reason) |
//! | end another actor | `kill` ([`ExitReason::Killed`]), `terminate` (with a reason) |
//! | why an actor ended | [`ExitReason`] |
//! | bidirectional, fires on every exit | `link` |
//! | one-way, never kills the watcher | `monitor`, with a [`MonitorRef`] |
//! | a name for whichever actor holds it | `register_name`, `whereis` |

mod addr;
pub(crate) mod cell;
mod context;
mod exit;
mod few;
mod mailbox;
mod registry;
mod remote;
pub use remote::shutdown_group_when_idle;
mod request;
mod supervisor;
mod system;

pub use crate::reactor::ActorId;
pub use addr::{Addr, Destination, Recipient, SendError};
pub use context::Ctx;
pub use exit::ExitReason;
pub use registry::NameError;
pub use request::{ActorTimer, PendingReply, Reply, RequestError, RequestId};
pub use supervisor::{ChildInfo, ChildSpec, Restart, StartFn, Supervisor, SupervisorMsg};
pub use system::{ActorSlot, ActorVTable, System};

use crate::reactor::Ready;

/// The reactor's state as actors see it (see [`crate::reactor::Core`]).
pub type Core = crate::reactor::Core<System>;

/// A reactor running actors (see [`crate::reactor::Reactor`]). It derefs to
/// its [`Core`]: spawn and send before running.
pub type Reactor = crate::reactor::Reactor<System>;

/// A group of reactors running actors, one thread each, whose addresses are
/// valid from any of them (see [`crate::reactor::Reactors`]).
pub type Reactors = crate::reactor::Reactors<System>;

/// A handle to a reactor running actors, for other threads (see
/// [`crate::reactor::ReactorHandle`]).
pub type ReactorHandle = crate::reactor::ReactorHandle<System>;

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
    type Msg: Send + 'static;

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

    /// Frees memory kept for reuse. The reactor calls it about once a
    /// second, on actors that are neither running nor waiting to run, so
    /// an actor may keep buffers while busy and still cost little at rest.
    /// Socket actors drop their emptied large-send queue here.
    fn trim(&mut self) {}

    /// A warning about the actor's state while something is wrong that
    /// lasts, for the live lints of `--stats`
    /// ([`ReactorHandle::print_stats_every`]): sampled once per interval
    /// between runs, and reported when it persists across two samples.
    /// Socket actors warn while they are out of credit with input
    /// waiting. `None` (the default) when all is well.
    fn warning(&self) -> Option<String> {
        None
    }

    /// Runs when the actor terminates, for whatever reason, before its links
    /// and monitors are notified.
    fn stopped(&mut self, _ctx: &mut Ctx<'_, Self>, _reason: &ExitReason) {}
}
