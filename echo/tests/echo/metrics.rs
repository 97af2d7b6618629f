//! The runtime's metrics and trace under echo traffic: exact unit and byte
//! counts, credit stalls, the socket events of the trace, and the trace
//! switched on and off at run time.

use crate::support::{Server, PREFIX};
use credit_actors::net::{ListenSpec, SocketStats};
use credit_actors::{Config, Reactor};
use credit_echo::{EchoConfig, EchoService, ServiceMsg};
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
        // Each unit of credit lets the next buffered line out in place:
        // the socket runs per read, not once per line.
        let sock = m
            .types
            .iter()
            .find(|t| t.name.ends_with("::Socket"))
            .expect("socket metrics");
        assert!(
            sock.runs < N as u64 / 2,
            "the socket ran {} times for {N} lines",
            sock.runs
        );
    }
}

/// A traced echo server with `window`, sent a batch of `n` lines at once
/// and stopped once they are answered: its trace's events, the batch and
/// the first socket that delivered a unit.
fn traced_batch(window: u32, n: usize) -> (Vec<(String, String, String)>, String, String) {
    let sink = TraceSink::default();
    let s2 = sink.clone();
    let (handle, join) = Reactor::start(Config::default(), move |core| {
        core.set_trace(Box::new(s2));
    })
    .unwrap();
    let service = handle
        .spawn(move || {
            EchoService::new(EchoConfig {
                listen: ListenSpec::host_port("127.0.0.1", 0),
                window,
                ..EchoConfig::default()
            })
        })
        .unwrap();
    let addr = handle
        .request_wait(service, ServiceMsg::WhenReady, WAIT)
        .unwrap();
    let mut peer = Peer::connect(addr);
    let batch: String = (0..n).map(|i| format!("t{i}\n")).collect();
    peer.write(batch.as_bytes());
    for i in 0..n {
        assert_eq!(peer.read_line(), format!("You said: t{i}"));
    }
    drop(peer);
    handle.shutdown();
    drop(handle);
    join_bounded(join).unwrap();
    let ev = sink.events();
    assert_eq!(ev.iter().filter(|e| e.0 == "U").count(), n);
    let conn = ev.iter().find(|e| e.0 == "U").unwrap().1.clone();
    (ev, batch, conn)
}

#[test]
fn trace_records_socket_reads_units_and_writes() {
    const N: usize = 20;
    let (ev, batch, conn) = traced_batch(credit_echo::DEFAULT_WINDOW, N);
    let out_bytes: usize = (0..N).map(|i| format!("You said: t{i}\n").len()).sum();
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
    let w = credit_echo::DEFAULT_WINDOW;
    assert_eq!(
        first.2,
        format!("{w} +{w}"),
        "credit after the operation, and the operation"
    );
    // The window holds the whole batch: never out of credit.
    assert_eq!(TraceSink::count(&ev, "Z", &conn), 0);
}

/// With a window of one, a batch waits in the socket while each line is
/// answered: the socket is out of credit with input waiting (`Z`), and
/// each stall ends with the session's next unit of credit.
#[test]
fn trace_shows_a_socket_out_of_credit_with_input_waiting() {
    const N: usize = 20;
    let (ev, _, conn) = traced_batch(1, N);
    let z = TraceSink::count(&ev, "Z", &conn);
    assert!(z >= 1, "no Z among {} events", ev.len());
    assert!(TraceSink::count(&ev, "C", &conn) >= N);
}

/// Runs `f` on the server's reactor and waits for it.
fn on_reactor<R: Send + 'static>(
    server: &Server,
    f: impl FnOnce(&mut credit_actors::Core) -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    assert!(server.handle.post(move |core| {
        let _ = tx.send(f(core));
    }));
    credit_testkit::recv(&rx)
}

/// The trace is a switch thrown at run time, in the default build: it
/// records exactly the lines echoed while it is on.
#[test]
fn trace_turns_on_and_off_while_the_server_runs() {
    let server = Server::start();
    let mut peer = server.connect();
    assert_eq!(peer.ask("before"), format!("{PREFIX}before"));
    assert!(!on_reactor(&server, |core| core.tracing()));

    let sink = TraceSink::default();
    let s2 = sink.clone();
    on_reactor(&server, move |core| core.set_trace(Box::new(s2)));
    for i in 0..5 {
        assert_eq!(peer.ask(&format!("on {i}")), format!("{PREFIX}on {i}"));
    }
    assert!(on_reactor(&server, |core| {
        let was = core.tracing();
        core.stop_trace();
        was
    }));
    for i in 0..3 {
        assert_eq!(peer.ask(&format!("off {i}")), format!("{PREFIX}off {i}"));
    }
    assert!(!on_reactor(&server, |core| core.tracing()));

    let ev = sink.events();
    assert_eq!(ev.iter().filter(|e| e.0 == "U").count(), 5, "units traced");
    let written: usize = ev
        .iter()
        .filter(|e| e.0 == "W")
        .map(|e| e.2.parse::<usize>().unwrap())
        .sum();
    let want: usize = (0..5).map(|i| format!("{PREFIX}on {i}\n").len()).sum();
    assert_eq!(written, want, "bytes written while the trace was on");
}
