//! The chat crate's tests, in one binary: the protocol line by line with
//! real sockets on port 0, the ways of leaving, failures of an agent and
//! of the room, shutdown, slow and flooding users, and the chat-server
//! binary as a user runs it.

#[global_allocator]
static ALLOC: credit_testkit::CountingAlloc = credit_testkit::CountingAlloc;

mod binary;
mod cluster;
mod conformance;
mod load;
mod proxy;
mod reactors;
mod redis;
mod support;
