//! Test support shared by the workspace's test binaries.
//!
//! - [`TestReactor`]: a reactor on its own thread, shut down and joined
//!   (bounded) on drop.
//! - [`Probe`] and [`ProbeHandle`]: an actor that records everything it
//!   receives (socket and listener events, link and monitor notices) and runs
//!   closures the test thread sends it, so a test can call what needs an
//!   actor context.
//! - [`Observer`] and [`Downs`]: monitor notices as a test thread sees them.
//! - [`Peer`]: a raw TCP client with bounded reads and writes.
//! - [`ServerProc`]: a server binary as a child process, its output
//!   collected, killed on drop.
//! - [`procfs`]: descriptor counts, CPU time and memory of a process.
//! - [`CountingAlloc`]: a global allocator that counts allocations per
//!   thread.
//! - [`Busy`]: an actor that keeps its reactor busy.
//! - [`wait_until`], [`join_bounded`], [`recv`]: waits with a deadline.
//!
//! Every wait here has a deadline, so a misbehaving runtime fails a test
//! instead of hanging it.

use std::net::TcpListener;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod alloc;
mod busy;
mod observer;
mod peer;
mod probe;
mod process;
pub mod procfs;
mod reactor;

pub use alloc::CountingAlloc;
pub use busy::Busy;
pub use observer::{Downs, Observer, ObserverMsg};
pub use peer::{bound, Peer};
pub use probe::{Event, Job, Notice, Notices, Probe, ProbeHandle, ProbeMsg};
pub use process::ServerProc;
pub use reactor::TestReactor;

/// Upper bound for any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` until true; panics with `what` at the deadline.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `f` until it gives a value, at most [`WAIT`]; panics after.
pub fn wait_for_value<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} in vain");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Joins a thread, waiting at most [`WAIT`].
pub fn join_bounded<T>(join: JoinHandle<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while !join.is_finished() {
        assert!(Instant::now() < deadline, "thread did not finish in time");
        std::thread::sleep(Duration::from_millis(1));
    }
    join.join().expect("thread panicked")
}

/// The next value on `rx`, waiting at most [`WAIT`].
pub fn recv<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(WAIT).expect("nothing arrived in time")
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local address").port();
    drop(l);
    port
}

mod trace;
pub use trace::TraceSink;
