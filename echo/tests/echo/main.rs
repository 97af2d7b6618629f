//! The echo crate's tests, in one binary: the service, session and client in
//! process, the `echo-server` binary as a user runs it, hostile peers, the
//! runtime's metrics and trace under echo traffic, and the service under a
//! supervisor, and the heap a connection costs. Shared scaffolding comes from
//! `credit-testkit`.

#[global_allocator]
static ALLOC: credit_testkit::CountingAlloc = credit_testkit::CountingAlloc;

mod binary;
mod hardening;
mod memory;
mod metrics;
mod ops;
mod overload;
mod proxy;
mod reactors;
mod service;
mod supervised;
mod support;
