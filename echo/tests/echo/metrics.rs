//! The runtime's metrics and trace under echo traffic: exact unit and byte
//! counts, credit stalls, and the socket events of the trace.

use crate::support::{Server, PREFIX};
#[allow(unused_imports)]
use credit_actors::net::{ListenSpec, SocketStats};
#[allow(unused_imports)]
use credit_actors::{Config, Reactor};
#[allow(unused_imports)]
use credit_echo::{EchoConfig, EchoService, ServiceMsg};
#[allow(unused_imports)]
use credit_testkit::{join_bounded, Peer, TraceSink, WAIT};

/// N lines over one connection: N units delivered, every byte counted in
/// and out, and at least N session messages.
#[test]
fn n_lines_give_n_units_and_exact_byte_counts() {
    const N: usize = 500;
    let server = Server::start();
    let mut peer = server.connect();
    let mut bytes_in = 0;
    let mut bytes_out = 0;
    let mut batch = String::new();
    for i in 0..N {
        let line = format!("line {i}");
        bytes_in += line.len() + 1;
        bytes_out += PREFIX.len() + line.len() + 1;
        batch.push_str(&line);
        batch.push('\n');
    }
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: line {i}"));
    }
    drop(peer);
    server.wait_sessions(0);
    let m = server.handle.metrics().unwrap();
    if !m.enabled {
        return;
    }
    let k = SocketStats::of(&m);
    assert_eq!(k.units, N as u64);
    assert_eq!(k.bytes_in, bytes_in as u64);
    assert_eq!(k.bytes_out, bytes_out as u64);
    assert!(k.reads >= 1);
    assert!(k.flushes >= 1);
    assert_eq!(k.high_water, 0);
    let session = m
        .types
        .iter()
        .find(|t| t.name.ends_with("EchoSession"))
        .expect("EchoSession entry");
    assert_eq!(session.spawned, 1);
    // N Data events and the Closed event, at least.
    assert!(session.messages > N as u64, "{session:?}");
    let conn = m
        .types
        .iter()
        .find(|t| t.name.ends_with("net::socket::Socket"))
        .expect("Socket entry");
    // Replies and credit act on the socket in place (no mailbox round
    // trip): it handles its set-up messages (controller, mode, first
    // credit), not one per line.
    assert!(conn.messages < 10, "{conn:?}");
    assert_eq!(m.run_ns.count, m.stats.actor_runs);
    assert!(m.busy_ratio() > 0.0 && m.busy_ratio() < 1.0);
    let _ = WAIT;
}

/// With a window of one line, a pipelined batch stalls on credit.
#[test]
fn window_of_one_counts_credit_stalls() {
    const N: usize = 50;
    let server = Server::start_config(EchoConfig {
        window: 1,
        ..Default::default()
    });
    let mut peer = server.connect();
    let batch: String = (0..N).map(|i| format!("l{i}\n")).collect();
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: l{i}"));
    }
    let m = server.handle.metrics().unwrap();
    if m.enabled {
        let k = SocketStats::of(&m);
        assert_eq!(k.units, N as u64);
        assert!(k.credit_stalls >= 1, "{k:?}");
    }
}

#[test]
fn trace_records_socket_reads_units_and_writes() {
    const N: usize = 20;
    let sink = TraceSink::default();
    let s2 = sink.clone();
    let (handle, join) = Reactor::start(Config::default(), move |core| {
        core.set_trace(Box::new(s2));
    })
    .unwrap();
    let service = handle
        .spawn(|| {
            EchoService::new(EchoConfig {
                listen: ListenSpec::host_port("127.0.0.1", 0),
                ..EchoConfig::default()
            })
        })
        .unwrap();
    let addr = handle
        .request_wait(service, ServiceMsg::WhenReady, WAIT)
        .unwrap();
    let mut peer = Peer::connect(addr);
    let batch: String = (0..N).map(|i| format!("t{i}\n")).collect();
    peer.write(batch.as_bytes());
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: t{i}"));
    }
    let out_bytes: usize = (0..N).map(|i| format!("You said: t{i}\n").len()).sum();
    drop(peer);
    handle.shutdown();
    drop(handle);
    join_bounded(join).unwrap();
    let ev = sink.events();
    let units = ev.iter().filter(|e| e.0 == "U").count();
    assert_eq!(units, N);
    let conn = ev.iter().find(|e| e.0 == "U").unwrap().1.clone();
    let read: usize = ev
        .iter()
        .filter(|e| e.0 == "R" && e.1 == conn)
        .map(|e| e.2.parse::<usize>().unwrap())
        .sum();
    assert_eq!(read, batch.len());
    let written: usize = ev
        .iter()
        .filter(|e| e.0 == "W" && e.1 == conn)
        .map(|e| e.2.parse::<usize>().unwrap())
        .sum();
    assert_eq!(written, out_bytes);
    assert!(TraceSink::count(&ev, "O", &conn) >= N);
    // The session's window is the first credit operation.
    let first = ev.iter().find(|e| e.0 == "C" && e.1 == conn).unwrap();
    assert_eq!(first.2, credit_echo::DEFAULT_WINDOW.to_string());
}
