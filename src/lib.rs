//! A single-threaded actor runtime for TCP services, over mio.
//!
//! The layout follows the path of a line of input:
//!
//! - [`reactor`]: one thread owning a `mio::Poll`, a slab of actor slots, a
//!   FIFO run queue with a per-actor message budget, a timer queue, and a
//!   `Waker` for other threads ([`ReactorHandle`]).
//! - [`actor`]: the [`Actor`] trait, typed handles ([`Addr`]) that carry the
//!   slot's generation, requests with reply slots that can be detached,
//!   links, monitors and exit reasons.
//! - [`net`]: socket actors. A [`Listener`](net::Listener) accepts
//!   connections only while its controller has issued accept credit; a
//!   [`Connection`](net::Connection) reads into a `BytesMut`, cuts work units
//!   (lines, or any delimiter, or raw chunks) and hands them to its
//!   controlling actor only while it has issued credit; output is queued and
//!   flushed once per reactor turn with vectored writes.

/// Writes a trace event if the trace is on: `trace_ev!(core_or_ctx, "fmt",
/// ..)`. Compiled out without the `trace` feature; with it, one branch on
/// an `Option` while no trace is set.
macro_rules! trace_ev {
    ($on:expr, $($arg:tt)*) => {
        #[cfg(feature = "trace")]
        {
            if $on.tracing() {
                $on.trace(format_args!($($arg)*));
            }
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
pub mod net;
pub mod reactor;

pub use actor::{
    Actor, ActorId, Addr, Core, Ctx, Destination, ExitReason, LinkAction, MonitorRef, NameError,
    PendingReply, Reactor, ReactorHandle, Recipient, Reply, RequestError,
};
pub use reactor::{
    Config, Counters, Hist, Local, Metrics, Policy, Ready, Stats, TimerId, TypeMetrics,
};
