//! Socket actors: the listener, the connected socket, work-unit framing,
//! and what they keep per reactor.
//!
//! A line of input travels, file by file:
//!
//! 1. `socket/input.rs`: the readiness event marks the [`Socket`] readable;
//!    `pump` reads into its buffer (`sys.rs`: `read(2)` into spare capacity);
//! 2. `framing.rs`: the [`Framer`] cuts a unit off the buffer's front
//!    (a `Bytes` slice, no copy), and one unit of credit lets it out to the
//!    controlling actor as [`SocketEvent::Data`];
//! 3. the controller (the echo session, say) sends its reply with
//!    `send_line` and issues credit: messages back to the socket;
//! 4. `socket/output.rs`: the reply is queued, and flushed with one
//!    vectored write at the end of the reactor turn.
//!
//! Accepting runs the same way one level up: `listener.rs` accepts only
//! while its controller has issued accept credit. `local.rs` holds the
//! buffer pool and the [`SocketStats`] counters, through the reactor's
//! public extension point ([`Local`](crate::reactor::Local)): nothing here
//! uses a private door into the runtime, so a socket actor could live in
//! another crate.
//!
//! # Vocabulary
//!
//! | concept | name |
//! |---|---|
//! | the actor owning a connected TCP stream | [`Socket`]; its address is `Addr<Socket>` |
//! | the actor owning a listening socket | [`Listener`]; its address is `Addr<Listener>` |
//! | the actor that receives a socket's events | its *controller* (`set_controller`) |
//! | a delimited piece of input | a *work unit* ([`Unit`]) |
//! | permission to deliver one unit (or accept one connection) | *credit* (`issue_credit(ctx, n)`, `infinite_credit`, `zero_credit`) |
//! | a socket's settings | [`SocketConfig`] |

mod budget;
pub mod framing;
pub mod listener;
mod local;
pub mod proxy;
pub mod socket;
mod stream;
mod sys;

pub use budget::{buffer_limit_arg, default_buffer_limit, parse_buffer_limit, BufferMemory};
pub use framing::{Delimiter, Framer, Mode, Text, Unit, UnitError};
pub use listener::{
    AcceptMode, AcceptSlots, Handoff, ListenError, ListenSpec, Listener, ListenerEvent,
    ListenerMsg, Placement, BUSY, STALL,
};
pub use local::SocketStats;
pub use proxy::{Cidr, ProxyCommand, ProxyError, ProxyHeader, ProxyPolicy};
pub use socket::{
    CloseReason, CreditOp, OverlongPolicy, Socket, SocketConfig, SocketEvent, SocketMsg,
};

/// Sets the reactor's buffer memory budget: the most bytes every socket's
/// read buffer and output queue, and the buffer pools, may hold together
/// (`None`, the default: no limit). Above half of it, sockets whose peers
/// do not read stop reading and listeners stop accepting, until it falls
/// below a quarter; at the limit (or after five seconds above half), the
/// connections holding the most without progress are closed with
/// [`CloseReason::Overload`]. The buffer pools keep at most a sixteenth
/// of it. Call it before the sockets start, from the reactor's thread
/// (`ctx.core()` in an actor).
pub fn set_buffer_limit(core: &mut crate::Core, limit: Option<usize>) {
    match limit {
        Some(b) => log::info!(
            "buffer memory budget: {b} bytes ({:.1} MiB)",
            b as f64 / 1048576.0
        ),
        None => log::info!("buffer memory budget: none"),
    }
    core.local::<local::NetLocal>().set_limit(limit);
}

/// The reactor's buffer memory now: its total, its parts and what the
/// budget did. Between turns the total is exactly the sum of the sockets'
/// `Addr::<Socket>::buffered` figures and the pools' bytes.
pub fn buffer_memory(core: &mut crate::Core) -> BufferMemory {
    let net = core.local::<local::NetLocal>();
    net.budget.snapshot(net.pool_bytes())
}

/// Socket actors alive on this reactor now.
pub fn open_sockets(core: &mut crate::Core) -> usize {
    core.local::<local::NetLocal>().live as usize
}
