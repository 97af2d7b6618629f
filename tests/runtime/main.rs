//! The runtime's tests, in one binary: actors, supervision, run-queue
//! policies, metrics, socket actors, framing and allocation counts. Shared
//! scaffolding comes from `credit-testkit`.

mod actors;
mod alloc;
mod budget;
mod examples;
mod framing;
mod group;
mod metrics;
mod policies;
mod registry;
mod sockets;
mod supervisor;

/// Counts allocations per thread, for `alloc`.
#[global_allocator]
static ALLOC: credit_testkit::CountingAlloc = credit_testkit::CountingAlloc;
