//! What a connection costs in heap memory, counted by the test binary's
//! allocator on the reactor's thread: at rest, after a line, and after it
//! closes (nothing may stay behind); and what an echoed line costs in
//! allocations once the server is warm (next to nothing).

use std::sync::mpsc::channel;

use credit_testkit::{recv, CountingAlloc, Peer};

use crate::support::{Server, PREFIX};

const CONNS: usize = 1000;

/// Allocations made so far on the reactor's thread.
fn allocations(server: &Server) -> u64 {
    let (tx, rx) = channel();
    assert!(server.handle.post(move |_| {
        let _ = tx.send(CountingAlloc::thread());
    }));
    recv(&rx)
}

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
    // Queues may keep more capacity than after the warm-up (how many
    // actors were runnable at once varies: up to 16 B per connection for
    // the run queue alone), but a connection that leaked anything would
    // leave at least a cell, 80 B or more.
    assert!(
        left.abs() < 64 * CONNS as i64,
        "{left} B stayed behind after every connection closed"
    );
}

/// Echoes `rounds` batches of `depth` lines on every peer, pipelined.
fn echo_batches(peers: &mut [Peer], rounds: usize, depth: usize) {
    for r in 0..rounds {
        for (i, p) in peers.iter_mut().enumerate() {
            let batch: String = (0..depth).map(|k| format!("c{i} r{r} k{k}\n")).collect();
            p.write(batch.as_bytes());
        }
        for (i, p) in peers.iter_mut().enumerate() {
            for k in 0..depth {
                assert_eq!(p.read_line(), format!("{PREFIX}c{i} r{r} k{k}"));
            }
        }
    }
}

#[test]
fn a_warm_server_echoes_lines_without_allocating() {
    const PEERS: usize = 10;
    const DEPTH: usize = 50;
    let server = Server::start();
    let mut peers: Vec<Peer> = (0..PEERS).map(|_| server.connect()).collect();
    server.wait_sessions(PEERS);
    // Warm-up: buffers reach the pools, queues their working size.
    echo_batches(&mut peers, 20, DEPTH);
    let before = allocations(&server);
    const ROUNDS: usize = 40;
    echo_batches(&mut peers, ROUNDS, DEPTH);
    let made = allocations(&server) - before;
    let lines = (ROUNDS * PEERS * DEPTH) as u64;
    eprintln!("{made} allocations for {lines} echoed lines");
    // The target is at most one allocation per thousand lines.
    assert!(made * 1000 <= lines, "{made} allocations for {lines} lines");
}

#[test]
fn long_lines_cycle_through_pooled_buffers() {
    const PEERS: usize = 4;
    const LINE: usize = 60_000;
    let server = Server::start();
    let mut peers: Vec<Peer> = (0..PEERS).map(|_| server.connect()).collect();
    server.wait_sessions(PEERS);
    let body: String = "x".repeat(LINE);
    let round = |peers: &mut [Peer]| {
        for p in peers.iter_mut() {
            p.write(format!("{body}\n{body}\n").as_bytes());
        }
        for p in peers.iter_mut() {
            for _ in 0..2 {
                let got = p.read_line();
                assert_eq!(got.len(), PREFIX.len() + LINE, "reply length");
            }
        }
    };
    for _ in 0..10 {
        round(&mut peers);
    }
    let before = allocations(&server);
    const ROUNDS: usize = 50;
    for _ in 0..ROUNDS {
        round(&mut peers);
    }
    let made = allocations(&server) - before;
    let lines = (ROUNDS * PEERS * 2) as u64;
    eprintln!("{made} allocations for {lines} lines of {LINE} bytes");
    // Each line is answered by reference to the buffer it was read into;
    // that buffer goes back to the pool and is reused once the reply is
    // written, instead of a new one being allocated per line.
    assert!(
        made * 10 <= lines,
        "{made} allocations for {lines} long lines"
    );
}
