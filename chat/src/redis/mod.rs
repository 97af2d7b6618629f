//! Redis, for one chat room across many servers: RESP read with the
//! socket's own framing ([`resp`]), and a connection actor ([`client`])
//! that pipelines commands, subscribes, and reconnects.

pub mod client;
pub mod resp;

pub use client::{RedisClient, RedisConfig, RedisEvent, RedisMsg};
pub use resp::{Frame, RespError};
