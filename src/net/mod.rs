//! Socket actors: the listener, the connection, work-unit framing and the
//! output queue.
//!
//! A line of input travels: readiness event (reactor) → [`Connection`]
//! `io_ready` → `read` into its `BytesMut` → [`framing::Framer`] cuts a unit →
//! `SocketEvent::Data` to the controlling actor (one per unit of credit) →
//! the controller sends its reply (`send_line`) and issues credit → the
//! reply is queued in the connection's output → flushed with one vectored
//! write at the end of the reactor turn.

pub mod connection;
pub mod framing;
pub mod listener;
mod output;

pub use connection::{
    CloseReason, ConnConfig, Connection, CreditOp, OverlongPolicy, Socket, SocketEvent, SocketMsg,
    SocketStats,
};
pub use framing::{Delimiter, Framer, Mode, Text, Unit, UnitError};
pub use listener::{ListenError, ListenSpec, Listener, ListenerEvent, ListenerHandle, ListenerMsg};
