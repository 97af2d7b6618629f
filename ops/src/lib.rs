//! Running `credit-actors` servers in production, behind a load balancer:
//!
//! - [`admin`]: an HTTP/1.1 endpoint of the runtime's own socket actors,
//!   on a reactor thread of its own: `/metrics` (Prometheus text, one
//!   `reactor` label per reactor), `/healthz`, and `/readyz`, which turns
//!   503 when the process stops or its drain file appears;
//! - [`prom`]: the metrics' exposition, encoded with `prometheus-client`;
//! - [`http`]: the request heads and responses the endpoint needs;
//! - [`cli`]: the options the servers share, and what they set up;
//! - [`systemd`]: socket activation (`LISTEN_FDS`) and readiness
//!   notification (`READY=1`, `STOPPING=1`), without libsystemd.
//!
//! The PROXY protocol, which carries the client's address through the
//! balancer, is the runtime's own: see `credit_actors::net::proxy`.

pub mod admin;
pub mod cli;
pub mod http;
pub mod prom;
pub mod systemd;

pub use admin::{Admin, AdminConfig, Readiness};
pub use cli::{Ops, OpsArgs};
