//! Benchmark tools for echo-line servers: the load generator behind
//! `echo-bench`, used by the side-by-side `tcp` benchmark too.
//!
//! The crate's binaries: `echo-bench` (the load generator), `raw-mio-echo`
//! and `tokio-echo` (the baseline servers), and `soak` (the mixed-load
//! driver of `scripts/soak.sh`).

pub mod loadgen;
