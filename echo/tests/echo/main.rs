//! The echo crate's tests, in one binary: the service, session and client in
//! process, the `echo-server` binary as a user runs it, hostile peers, the
//! runtime's metrics and trace under echo traffic, and the service under a
//! supervisor. Shared scaffolding comes from `credit-testkit`.

mod binary;
mod hardening;
mod metrics;
mod service;
mod supervised;
mod support;
