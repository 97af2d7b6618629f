//! What a connection costs in heap memory, counted by the test binary's
//! allocator on the reactor's thread: at rest, after a line, and after it
//! closes (nothing may stay behind).

use std::sync::mpsc::channel;

use credit_testkit::{recv, CountingAlloc, Peer};

use crate::support::{Server, PREFIX};

const CONNS: usize = 1000;

/// Live heap bytes on the reactor's thread, after idle memory is trimmed.
fn live(server: &Server) -> i64 {
    let (tx, rx) = channel();
    assert!(server.handle.post(move |core| {
        core.trim_idle();
        let _ = tx.send(CountingAlloc::thread_live());
    }));
    recv(&rx)
}

#[test]
fn a_connection_at_rest_costs_a_bounded_few_hundred_bytes_and_leaves_nothing() {
    let server = Server::start();
    // Warm the slab, the queues and the pools with one round like the
    // measured one, so that round sees steady-state capacity rather than
    // first growth.
    let mut warm: Vec<Peer> = (0..CONNS).map(|_| server.connect()).collect();
    server.wait_sessions(CONNS);
    for p in &mut warm {
        assert_eq!(p.ask("warm"), format!("{PREFIX}warm"));
    }
    drop(warm);
    server.wait_sessions(0);
    let base = live(&server);

    let mut peers: Vec<Peer> = (0..CONNS).map(|_| server.connect()).collect();
    server.wait_sessions(CONNS);
    let idle = (live(&server) - base) / CONNS as i64;

    for (i, p) in peers.iter_mut().enumerate() {
        assert_eq!(p.ask(&format!("line {i}")), format!("{PREFIX}line {i}"));
    }
    let after_line = (live(&server) - base) / CONNS as i64;

    drop(peers);
    server.wait_sessions(0);
    let left = live(&server) - base;
    eprintln!("heap per connection: idle {idle} B, after a line {after_line} B; left after close {left} B");

    assert!(
        idle > 0,
        "connections cost nothing: the counter is not counting"
    );
    assert!(idle <= 384, "an idle connection holds {idle} B of heap");
    assert!(
        after_line <= idle + 64,
        "a connection that echoed a line holds {after_line} B, at rest {idle} B"
    );
    // Queues may keep a little more capacity than after the warm-up (how
    // many actors were runnable at once varies), but anything a connection
    // leaked would be at least one allocation, 16 B or more, per connection.
    assert!(
        left.abs() < 16 * CONNS as i64,
        "{left} B stayed behind after every connection closed"
    );
}
