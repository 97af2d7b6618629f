//! A single-threaded actor runtime for TCP services, over mio.
//!
//! Three layers, each using only the ones below it:
//!
//! - [`reactor`]: one thread owning a `mio::Poll`, a slab of type-erased
//!   cells with generations, a run queue, a timer heap, reactor-local
//!   extensions, and a `Waker` for other threads. It knows nothing of
//!   messages or sockets.
//! - [`actor`]: the [`Actor`] trait and everything actors need: typed
//!   addresses ([`Addr`]), contexts ([`Ctx`]), mailboxes, exit reasons,
//!   links, monitors, requests with replies that can be detached, names and
//!   supervision. It plugs into the reactor as its layer.
//! - [`net`]: socket actors. A [`Listener`](net::Listener) accepts while
//!   its controller has issued accept credit; a [`Socket`](net::Socket)
//!   hands its controller delimited *work units* only while it has issued
//!   credit, and flushes output once per reactor turn.
//!
//! # The path of one line
//!
//! An echo server's line, from the peer's bytes to the reply on the wire:
//!
//! 1. `reactor/mod.rs`: `poll` reports the socket's token; the reactor maps
//!    it to the socket actor's slot (`reactor/core.rs`), records the
//!    readiness and queues the actor (`reactor/run_queue.rs`).
//! 2. `actor/cell.rs`: the socket actor's run hands it the readiness
//!    (`Actor::io_ready`).
//! 3. `net/socket/input.rs`: `pump` reads into the socket's buffer
//!    (`net/sys.rs`), and `net/framing.rs` cuts the line off its front: a
//!    slice of the read buffer, no copy.
//! 4. `net/socket/input.rs`: one unit of credit lets the line out as
//!    `SocketEvent::Data`, a message to the controller
//!    (`actor/cell.rs`: `Core::send`, into its mailbox; the controller is
//!    queued).
//! 5. The controller (`echo/src/lib.rs`, `EchoSession`) handles it: it
//!    sends `You said: L` with `send_line` and issues one unit of credit.
//!    Both act on the socket in place (`Core::direct`, `net/socket/mod.rs`)
//!    when it is on this reactor, not running and has no message waiting:
//!    the reply is copied straight into its output queue
//!    (`net/socket/output.rs`) and the credit is added to its counter,
//!    which wakes it only if credit went from zero to positive with input
//!    waiting (and then lets buffered lines out on the spot). Otherwise
//!    each is a message, queued behind what waits.
//! 6. `reactor/core.rs`: at the end of the turn the socket's turn-end hook
//!    flushes every reply it got in that turn with one write.
//!
//! # Example
//!
//! ```
//! use credit_actors::{Actor, Ctx, Reactor};
//!
//! struct Greeter;
//!
//! impl Actor for Greeter {
//!     type Msg = String;
//!     fn handle(&mut self, ctx: &mut Ctx<'_, Self>, name: String) {
//!         println!("Hello, {name}!");
//!         ctx.stop();
//!     }
//! }
//!
//! let mut reactor = Reactor::new().unwrap();
//! let greeter = reactor.spawn(Greeter);
//! reactor.send(greeter, "world".to_string());
//! reactor.run().unwrap(); // returns once no actor is alive
//! ```
//!
//! More in `examples/` (numbered, each run by a test) and in the echo
//! tutorial's crate (`echo/`).

/// Writes a trace event if the trace is on: `trace_ev!(core_or_ctx, "fmt",
/// ..)`. While the trace is off: one test of a flag, and the event is never
/// formatted.
macro_rules! trace_ev {
    ($on:expr, $($arg:tt)*) => {
        if $on.tracing() {
            $on.trace(format_args!($($arg)*));
        }
    };
}

/// Code that runs only with the `metrics` feature (compiled out without it).
macro_rules! metric {
    ($($t:tt)*) => {
        #[cfg(feature = "metrics")]
        {
            $($t)*
        }
    };
}

pub mod actor;
mod hooks;
pub mod net;
pub mod reactor;
#[cfg(feature = "sim")]
pub mod sim;

pub use actor::{
    Actor, ActorId, Addr, Core, Ctx, Destination, ExitReason, LinkAction, MonitorRef, NameError,
    PendingReply, Reactor, ReactorHandle, Reactors, Recipient, Reply, RequestError, SendError,
};
pub use reactor::{
    parse_reactors, Config, Counters, Hist, Local, Metrics, Policy, Ready, Stats, TimerId,
    TypeMetrics,
};
/// What every connection holds, kept small on purpose: an idle echo
/// connection is two slots, a socket cell and a session cell, and its cost
/// (about 500 B of RSS at 10,000 connections) is mostly these sizes. A
/// field added to any of them shows here first.
#[cfg(all(test, target_pointer_width = "64"))]
mod layout_tests {
    use std::mem::size_of;

    use crate::actor::cell::ActorCell;
    use crate::actor::System;
    use crate::net::socket::output::Output;
    use crate::net::socket::SocketMsg;
    use crate::net::{Framer, Socket};
    use crate::reactor::layer::Slot;

    #[test]
    fn per_connection_structures_stay_within_their_budgets() {
        assert!(
            size_of::<Slot<System>>() <= 80,
            "slot {}",
            size_of::<Slot<System>>()
        );
        // In debug builds mio's stream carries a registration check (12
        // more bytes, 16 with alignment).
        let socket_budget = if cfg!(debug_assertions) { 216 } else { 200 };
        // With the simulator, the stream is an enum of the real one and a
        // simulated one's handle (16 bytes), and the socket follows.
        let socket_budget = socket_budget + if cfg!(feature = "sim") { 8 } else { 0 };
        assert!(
            size_of::<Socket>() <= socket_budget,
            "socket {}",
            size_of::<Socket>()
        );
        assert!(size_of::<Framer>() <= 56, "framer {}", size_of::<Framer>());
        assert!(size_of::<Output>() <= 56, "output {}", size_of::<Output>());
        // The socket's mailbox holds one message inline: keep it small.
        assert!(
            size_of::<SocketMsg>() <= 32,
            "socket message {}",
            size_of::<SocketMsg>()
        );
        let cell = size_of::<ActorCell<Socket>>();
        assert!(cell <= size_of::<Socket>() + 48, "socket cell {cell}");
    }
}
