//! Addr<Socket> actor semantics: credit, back-pressure, accept credit, framing
//! modes, send promises, controller hand-over, connecting and timeouts.
//!
//! A `Probe` actor (from `credit-testkit`) controls the sockets: it records
//! every event it gets into a shared log the test thread polls (with
//! deadlines), and runs closures the test thread sends it, so the test can
//! call the `Addr<Socket>` methods that need an actor context.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use credit_actors::net::{
    CloseReason, Delimiter, ListenSpec, Listener, ListenerEvent, Mode, Socket, SocketConfig,
    SocketEvent, Unit,
};
use credit_actors::{Actor, Addr, Ctx, RequestError};
use credit_testkit::{
    bound, closed_port, join_bounded, wait_until, Event, Notice, ProbeHandle, ProbeMsg,
    TestReactor, WAIT,
};

/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);

// ----- fixtures ------------------------------------------------------------------

/// Makes the probe listen on 127.0.0.1:0 with `config` and `credit` units of
/// accept credit; returns the listener and its address.
fn listen(probe: &ProbeHandle, config: SocketConfig, credit: i64) -> (Addr<Listener>, SocketAddr) {
    let listener = probe.with(move |ctx| {
        let l = Listener::listen_with(ctx, ListenSpec::host_port("127.0.0.1", 0), config);
        if credit != 0 {
            l.issue_credit(ctx, credit);
        }
        l
    });
    let addr = probe.wait_for("Ready", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Listener(ListenerEvent::Ready(_, Ok(a))) => Some(*a),
            Event::Listener(ListenerEvent::Ready(_, Err(e))) => panic!("listen failed: {e}"),
            _ => None,
        })
    });
    (listener, addr)
}

/// A probe with one accepted connection from a raw peer: (probe, socket,
/// peer). The socket starts with zero credit in its default (raw) mode.
fn accepted_pair(
    rig: &TestReactor,
    config: SocketConfig,
) -> (ProbeHandle, Addr<Socket>, TcpStream) {
    let probe = ProbeHandle::spawn(&rig.handle);
    let (_listener, addr) = listen(&probe, config, 1);
    let peer = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    bound(&peer);
    let _ = peer.set_nodelay(true);
    let sock = probe.wait_for("Accepted", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Listener(ListenerEvent::Accepted(_, s, _)) => Some(*s),
            _ => None,
        })
    });
    (probe, sock, peer)
}

fn text_lines(units: &[Result<Unit, String>]) -> Vec<String> {
    units
        .iter()
        .map(|u| match u {
            Ok(Unit::Text(t)) => t.as_str().to_owned(),
            other => panic!("expected a text unit, got {other:?}"),
        })
        .collect()
}

// ----- credit ----------------------------------------------------------------------

#[test]
fn zero_credit_delivers_nothing_then_three_credits_deliver_exactly_three() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| sock.delimiter_mode(ctx, Delimiter::lf()));
    peer.write_all(b"l1\nl2\nl3\nl4\nl5\n").unwrap();
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 0, "data delivered without credit");

    probe.with(move |ctx| sock.issue_credit(ctx, 3));
    probe.wait_data_count(3);
    std::thread::sleep(QUIET);
    assert_eq!(text_lines(&probe.units()), ["l1", "l2", "l3"]);

    probe.with(move |ctx| sock.issue_credit(ctx, 1));
    probe.wait_data_count(4);
    std::thread::sleep(QUIET);
    assert_eq!(text_lines(&probe.units()), ["l1", "l2", "l3", "l4"]);
}

#[test]
fn negative_credit_clamps_at_zero_infinite_delivers_all_and_zero_stops() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    // Before any input: -5 clamps to 0, +3 gives 3, -1 leaves 2 (not -3).
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, -5);
        sock.issue_credit(ctx, 3);
        sock.issue_credit(ctx, -1);
    });
    probe.sync(sock);
    peer.write_all(b"a\nb\nc\nd\n").unwrap();
    probe.wait_data_count(2);
    std::thread::sleep(QUIET);
    assert_eq!(text_lines(&probe.units()), ["a", "b"]);

    probe.with(move |ctx| sock.infinite_credit(ctx));
    probe.wait_data_count(4);
    assert_eq!(text_lines(&probe.units()), ["a", "b", "c", "d"]);
    peer.write_all(b"e\nf\n").unwrap();
    probe.wait_data_count(6);

    probe.with(move |ctx| sock.zero_credit(ctx));
    probe.sync(sock);
    peer.write_all(b"g\nh\n").unwrap();
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 6, "delivered after zero_credit");

    probe.with(move |ctx| sock.issue_credit(ctx, 1));
    probe.wait_data_count(7);
    std::thread::sleep(QUIET);
    assert_eq!(
        text_lines(&probe.units()),
        ["a", "b", "c", "d", "e", "f", "g"]
    );
}

#[test]
fn out_of_credit_socket_stops_reading_so_the_peer_blocks() {
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    peer.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let limit: usize = 64 * 1024 * 1024;
    let mut written = 0usize;
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + WAIT;
    let mut w = &peer;
    // Blocked = WouldBlock for 500 ms straight (buffers may autotune).
    loop {
        assert!(Instant::now() < deadline, "peer never blocked");
        assert!(written < limit, "{written} bytes accepted without credit");
        match w.write(&chunk) {
            Ok(n) => {
                written += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(written > 0);
    assert_eq!(probe.data_count(), 0, "data delivered without credit");

    // Credit resumes delivery of everything the kernel held, unprompted.
    probe.with(move |ctx| {
        sock.set_mode(ctx, Mode::Raw);
        sock.infinite_credit(ctx);
    });
    wait_until("all stalled bytes delivered", WAIT, || {
        probe.data_bytes() >= written
    });
    assert_eq!(probe.data_bytes(), written);
    // And the peer can write again.
    peer.set_nonblocking(false).unwrap();
    (&peer).write_all(b"more").unwrap();
    wait_until("bytes after the stall", WAIT, || {
        probe.data_bytes() == written + 4
    });
}

#[test]
fn credit_after_a_stall_resumes_delivery_without_new_data() {
    const TOTAL: usize = 256 * 1024;
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    // Raw mode: one read's worth per unit, so one credit reads only part
    // of what the kernel holds, and no further readiness edge will come.
    let writer = peer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        (&writer).write_all(&data).unwrap();
    });
    join_bounded(sender);
    probe.with(move |ctx| sock.issue_credit(ctx, 1));
    probe.wait_data_count(1);
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 1);
    let first = probe.data_bytes();
    assert!(first > 0 && first < TOTAL, "first unit had {first} bytes");

    // No new bytes from the peer: credit alone must resume reading.
    probe.with(move |ctx| sock.infinite_credit(ctx));
    wait_until("the rest delivered", WAIT, || probe.data_bytes() >= TOTAL);
    let mut all = Vec::new();
    for u in probe.units() {
        all.extend_from_slice(u.unwrap().as_bytes());
    }
    assert_eq!(all.len(), TOTAL);
    assert!(all.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn credit_after_a_stall_resumes_buffered_lines_without_new_data() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 1);
    });
    // One write: the connection reads all of it into its buffer at once.
    let lines: String = (0..100).map(|i| format!("n{i}\n")).collect();
    peer.write_all(lines.as_bytes()).unwrap();
    probe.wait_data_count(1);
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 1);
    probe.with(move |ctx| sock.issue_credit(ctx, 99));
    probe.wait_data_count(100);
    let want: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
    assert_eq!(text_lines(&probe.units()), want);
}

// ----- accept credit ------------------------------------------------------------------

#[test]
fn zero_accept_credit_accepts_nothing_and_one_credit_accepts_exactly_one() {
    let rig = TestReactor::start();
    let probe = ProbeHandle::spawn(&rig.handle);
    let (listener, addr) = listen(&probe, SocketConfig::default(), 0);
    // The kernel completes the handshakes (backlog) ...
    let c1 = TcpStream::connect_timeout(&addr, WAIT).expect("connect 1");
    let c2 = TcpStream::connect_timeout(&addr, WAIT).expect("connect 2");
    std::thread::sleep(QUIET);
    // ... but nothing is accepted without credit.
    assert!(probe.accepted().is_empty(), "accepted without credit");

    probe.with(move |ctx| listener.issue_credit(ctx, 1));
    wait_until("one accept", WAIT, || probe.accepted().len() == 1);
    std::thread::sleep(QUIET);
    assert_eq!(
        probe.accepted().len(),
        1,
        "one credit accepted more than one"
    );

    // Negative accept credit clamps at zero too.
    probe.with(move |ctx| listener.issue_credit(ctx, -3));
    std::thread::sleep(QUIET);
    assert_eq!(probe.accepted().len(), 1);
    probe.with(move |ctx| listener.issue_credit(ctx, 2));
    wait_until("second accept", WAIT, || probe.accepted().len() == 2);
    // One credit left over and no one waiting: a new client takes it.
    let c3 = TcpStream::connect_timeout(&addr, WAIT).expect("connect 3");
    wait_until("third accept", WAIT, || probe.accepted().len() == 3);
    std::thread::sleep(QUIET);
    assert_eq!(probe.accepted().len(), 3);
    drop((c1, c2, c3));
}

// ----- framing modes ------------------------------------------------------------------

#[test]
fn switching_from_header_block_to_raw_delivers_buffered_body_raw() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| sock.set_mode(ctx, Mode::Binary(Delimiter::crlf_crlf())));
    let body = b"BODY\r\n\r\nwith a delimiter inside, and\nnewlines";
    let mut msg = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 44\r\n\r\n".to_vec();
    msg.extend_from_slice(body);
    // One write, so headers and body land in one buffer.
    peer.write_all(&msg).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    probe.with(move |ctx| sock.issue_credit(ctx, 1));
    probe.wait_data_count(1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(probe.data_count(), 1, "only the header block was asked for");
    match &probe.units()[0] {
        Ok(Unit::Bytes(b)) => {
            assert_eq!(&b[..], b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 44")
        }
        other => panic!("expected a binary unit, got {other:?}"),
    }

    probe.with(move |ctx| {
        sock.set_mode(ctx, Mode::Raw);
        sock.issue_credit(ctx, 1);
    });
    probe.wait_data_count(2);
    match &probe.units()[1] {
        Ok(Unit::Bytes(b)) => assert_eq!(&b[..], &body[..], "body not delivered raw"),
        other => panic!("expected a raw unit, got {other:?}"),
    }
}

#[test]
fn binary_mode_with_multibyte_delimiter_cuts_across_writes() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    let delim = Delimiter::new(Bytes::from_static(b"<|>")).unwrap();
    probe.with(move |ctx| {
        sock.set_mode(ctx, Mode::Binary(delim));
        sock.infinite_credit(ctx);
    });
    peer.write_all(b"a<|>bb<|><|>ccc<").unwrap();
    probe.wait_data_count(3);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        probe.data_count(),
        3,
        "cut before the delimiter was complete"
    );
    peer.write_all(b"|>\xff\x00<|").unwrap();
    probe.wait_data_count(4);
    peer.write_all(b">").unwrap();
    probe.wait_data_count(5);
    let units = probe.units();
    let got: Vec<Vec<u8>> = units
        .iter()
        .map(|u| match u {
            Ok(Unit::Bytes(b)) => b.to_vec(),
            other => panic!("expected a binary unit, got {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            b"a".to_vec(),
            b"bb".to_vec(),
            b"".to_vec(),
            b"ccc".to_vec(),
            b"\xff\x00".to_vec()
        ]
    );
}

#[test]
fn send_line_uses_a_custom_line_terminator() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| {
        sock.send_line(ctx, "default");
        sock.set_line_terminator(ctx, "\r\n");
        sock.send_line(ctx, "hi");
        sock.send_line_parts(ctx, Bytes::from_static(b"par"), Bytes::from_static(b"ts"));
        sock.send(ctx, "raw");
        sock.send_all(
            ctx,
            vec![Bytes::from_static(b"|x"), Bytes::from_static(b"y|")],
        );
    });
    let want = b"default\nhi\r\nparts\r\nraw|xy|";
    let mut got = vec![0u8; want.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], &want[..]);
}

#[test]
fn config_line_terminator_applies_to_accepted_connections() {
    let rig = TestReactor::start();
    let config = SocketConfig {
        line_terminator: Bytes::from_static(b"\r\n"),
        ..SocketConfig::default()
    };
    let (probe, sock, mut peer) = accepted_pair(&rig, config);
    probe.with(move |ctx| sock.send_line(ctx, "crlf"));
    let mut got = [0u8; 6];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"crlf\r\n");
}

// ----- send promises --------------------------------------------------------------------

#[test]
fn send_promise_resolves_once_bytes_are_written() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| {
        sock.send(ctx, "payload");
        sock.flushed(ctx, |r| ProbeMsg::Flushed(1, r));
    });
    let r = probe.wait_for("promise", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Flushed(1, r) => Some(r.clone()),
            _ => None,
        })
    });
    assert_eq!(r, Ok(()));
    let mut got = [0u8; 7];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"payload");
}

#[test]
fn send_promise_is_rejected_when_the_connection_closes_first() {
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    // The peer never reads: 64 MiB cannot all reach the kernel, the write
    // timeout closes the connection, and the promise is rejected.
    let big = Bytes::from(vec![b'z'; 64 * 1024 * 1024]);
    probe.with(move |ctx| {
        sock.set_write_timeout(ctx, Some(Duration::from_millis(200)));
        sock.send(ctx, big);
        sock.flushed(ctx, |r| ProbeMsg::Flushed(2, r));
    });
    let r = probe.wait_for("promise", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Flushed(2, r) => Some(r.clone()),
            _ => None,
        })
    });
    assert!(
        matches!(r, Err(RequestError::Rejected(_))),
        "promise should be rejected, got {r:?}"
    );
    assert_eq!(probe.wait_closed(), CloseReason::WriteTimeout);
    drop(peer);
}

// ----- in-place operations -------------------------------------------------------

/// Envelopes the socket actors of the probe's reactor have handled so far;
/// `None` without the `metrics` feature.
fn socket_messages(probe: &ProbeHandle) -> Option<u64> {
    probe.with(|ctx| {
        let m = ctx.core().metrics();
        m.enabled.then(|| {
            m.types
                .iter()
                .filter(|t| t.name.ends_with("::Socket"))
                .map(|t| t.messages)
                .sum()
        })
    })
}

#[test]
fn controller_operations_act_in_place_and_never_overtake_a_waiting_message() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    let before = socket_messages(&probe);

    // Sends, credit and a mode change from the controller's handler reach
    // the socket's state directly: its mailbox sees none of them.
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        for i in 0..50 {
            sock.send_line(ctx, format!("line {i}"));
        }
        sock.issue_credit(ctx, 2);
    });
    let want: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let mut got = vec![0u8; want.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want);
    peer.write_all(b"a\nb\nc\n").unwrap();
    probe.wait_data_count(2);
    let after = socket_messages(&probe);
    if let (Some(b), Some(a)) = (before, after) {
        assert_eq!(a - b, 0, "in-place operations went through the mailbox");
    }

    // A message-only operation waits in the mailbox; what follows it must
    // queue behind it, not act in place ahead of it.
    probe.with(move |ctx| {
        sock.set_line_terminator(ctx, "\r\n");
        sock.send_line(ctx, "after");
        sock.issue_credit(ctx, 1);
        sock.send_line(ctx, "and after");
    });
    let want = b"after\r\nand after\r\n";
    let mut got = vec![0u8; want.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], &want[..]);
    probe.wait_data_count(3);
    assert_eq!(text_lines(&probe.units()), ["a", "b", "c"]);
    if let (Some(a), Some(last)) = (after, socket_messages(&probe)) {
        assert_eq!(
            last - a,
            4,
            "the operations behind the message did not queue"
        );
    }
}

#[test]
fn credit_in_place_wakes_a_stalled_socket_and_delivers_exactly_the_credit() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 1);
    });
    // One read brings all five lines; one unit of credit takes one, the
    // rest wait in the socket's buffer with no readiness left to come.
    peer.write_all(b"1\n2\n3\n4\n5\n").unwrap();
    probe.wait_data_count(1);
    let before = socket_messages(&probe);
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 1, "a unit without credit");

    // Credit going from zero to positive with input waiting wakes the
    // socket, by the counter alone.
    for n in 2..=5 {
        probe.with(move |ctx| sock.issue_credit(ctx, 1));
        probe.wait_data_count(n);
    }
    std::thread::sleep(QUIET);
    assert_eq!(text_lines(&probe.units()), ["1", "2", "3", "4", "5"]);
    if let (Some(b), Some(a)) = (before, socket_messages(&probe)) {
        assert_eq!(a - b, 0, "credit went through the mailbox");
    }
    // Credit with nothing waiting stays on the counter until input comes.
    probe.with(move |ctx| sock.issue_credit(ctx, 2));
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 5);
    peer.write_all(b"6\n7\n8\n").unwrap();
    probe.wait_data_count(7);
    std::thread::sleep(QUIET);
    assert_eq!(probe.data_count(), 7, "more units than credit");
}

// ----- backlog and half-close ------------------------------------------------------

#[test]
fn a_peer_that_never_reads_is_closed_once_the_backlog_passes_the_limit() {
    let rig = TestReactor::start();
    let config = SocketConfig {
        max_backlog: Some(256 * 1024),
        ..SocketConfig::default()
    };
    let (probe, sock, peer) = accepted_pair(&rig, config);
    // The peer never reads: once the kernel's buffers are full, output
    // stays queued after the flush, and past 256 KiB the socket closes.
    let chunk = Bytes::from(vec![b'q'; 64 * 1024]);
    for _ in 0..1024 {
        let c = chunk.clone();
        probe.with(move |ctx| sock.send(ctx, c));
        if probe.peek(|log| {
            log.iter()
                .any(|e| matches!(e, Event::Socket(SocketEvent::Closed(..))))
        }) {
            break;
        }
    }
    assert_eq!(probe.wait_closed(), CloseReason::Backlog);
    wait_until("socket gone", WAIT, || !rig.handle.is_alive(sock.id()));
    drop(peer);
}

#[test]
fn shutdown_write_sends_eof_after_queued_output_and_keeps_reading() {
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.infinite_credit(ctx);
        sock.send_line(ctx, "last words");
        sock.shutdown_write(ctx);
    });
    let mut got = Vec::new();
    (&peer).read_to_end(&mut got).expect("EOF after the output");
    assert_eq!(got, b"last words\n");
    // The other direction is still open.
    peer.write_all(b"still here\n").unwrap();
    probe.wait_data_count(1);
    assert_eq!(text_lines(&probe.units()), ["still here"]);
    assert!(rig.handle.is_alive(sock.id()));
}

// ----- controller hand-over ---------------------------------------------------------------

#[test]
fn set_controller_moves_events_and_link_to_the_new_controller() {
    let rig = TestReactor::start();
    let (old, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    let new = ProbeHandle::spawn(&rig.handle);
    let new_addr = new.addr;
    old.with(move |ctx| {
        sock.set_controller(ctx, new_addr);
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.infinite_credit(ctx);
    });
    old.sync(sock);
    peer.write_all(b"for the new one\n").unwrap();
    new.wait_data_count(1);
    assert_eq!(text_lines(&new.units()), ["for the new one"]);
    assert_eq!(old.data_count(), 0, "old controller still gets events");

    // The old controller dying does not close the socket.
    assert!(rig.handle.kill(old.addr.id()));
    wait_until("old controller dead", WAIT, || {
        !rig.handle.is_alive(old.addr.id())
    });
    peer.write_all(b"still open\n").unwrap();
    new.wait_data_count(2);
    assert_eq!(text_lines(&new.units()), ["for the new one", "still open"]);
    assert!(rig.handle.is_alive(sock.id()));

    // The new controller dying does.
    new.with(move |ctx| sock.send_line(ctx, "last words"));
    assert!(rig.handle.kill(new.addr.id()));
    let mut got = Vec::new();
    match (&peer).read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => panic!("expected EOF after the controller died, got {e}"),
    }
    assert_eq!(
        got, b"last words\n",
        "output sent before dying still goes out"
    );
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
}

// ----- connecting ------------------------------------------------------------------------

fn connect_probe(rig: &TestReactor, host: &'static str, port: u16) -> (ProbeHandle, Addr<Socket>) {
    let probe = ProbeHandle::spawn(&rig.handle);
    let sock = probe.with(move |ctx| Socket::connect(ctx, host, port));
    (probe, sock)
}

fn wait_connected(probe: &ProbeHandle) -> Result<SocketAddr, CloseReason> {
    probe.wait_for("Connected or Closed", WAIT, |log| {
        log.iter().find_map(|e| match e {
            Event::Socket(SocketEvent::Connected(_, a)) => Some(Ok(*a)),
            Event::Socket(SocketEvent::Closed(_, r)) => Some(Err(r.clone())),
            _ => None,
        })
    })
}

fn check_connect_to(listener: TcpListener, host: &'static str) {
    let addr = listener.local_addr().unwrap();
    let rig = TestReactor::start();
    let (probe, sock) = connect_probe(&rig, host, addr.port());
    let got = wait_connected(&probe).expect("connect failed");
    assert_eq!(got, addr);
    listener.set_nonblocking(false).unwrap();
    let (mut server_side, _) = listener.accept().unwrap();
    bound(&server_side);
    // Data flows both ways.
    probe.with(move |ctx| {
        sock.send_line(ctx, "from the actor");
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 2);
    });
    let mut buf = [0u8; 15];
    server_side.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from the actor\n");
    server_side.write_all(b"from the peer\n").unwrap();
    probe.wait_data_count(1);
    assert_eq!(text_lines(&probe.units()), ["from the peer"]);
    // The peer closing is an orderly close (seen with credit left).
    drop(server_side);
    assert_eq!(probe.wait_closed(), CloseReason::Orderly);
}

#[test]
fn connect_to_ipv4_loopback_listener_gives_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    check_connect_to(listener, "127.0.0.1");
}

#[test]
fn connect_to_ipv6_loopback_listener_gives_connected_when_available() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping: IPv6 loopback unavailable ({e})");
            return;
        }
    };
    check_connect_to(listener, "::1");
}

#[test]
fn connect_to_closed_port_gives_closed_with_error_reason() {
    let rig = TestReactor::start();
    let (probe, sock) = connect_probe(&rig, "127.0.0.1", closed_port());
    match wait_connected(&probe) {
        Err(CloseReason::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::ConnectionRefused, "{message}");
        }
        other => panic!("expected Closed(Error), got {other:?}"),
    }
    // The socket's link notice comes after its Closed event.
    let sid = sock.id();
    let (closed_at, link_at) = probe.wait_for("link notice", WAIT, |log| {
        let closed = log
            .iter()
            .position(|e| matches!(e, Event::Socket(SocketEvent::Closed(..))));
        let link = log
            .iter()
            .position(|e| matches!(e, Event::Notice(Notice::Link { peer: p, reason: r, .. }) if *p == sid && r.is_normal()));
        closed.zip(link)
    });
    assert!(closed_at < link_at, "link notice before Closed");
    assert!(!rig.handle.is_alive(sid));
}

// ----- timeouts -------------------------------------------------------------------------

#[test]
fn idle_timeout_sends_timeout_when_the_peer_is_silent() {
    let rig = TestReactor::start();
    let config = SocketConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..SocketConfig::default()
    };
    let started = Instant::now();
    let (probe, sock, mut peer) = accepted_pair(&rig, config);
    probe.wait_for("Timeout", WAIT, |log| {
        log.iter()
            .any(|e| matches!(e, Event::Socket(SocketEvent::Timeout(s)) if *s == sock))
            .then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "timeout came too early: {:?}",
        started.elapsed()
    );
    // A timeout does not close the connection by itself.
    probe.with(move |ctx| sock.send_line(ctx, "still here"));
    let mut buf = [0u8; 11];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here\n");
}

#[test]
fn idle_timeout_is_not_sent_while_input_keeps_arriving() {
    let rig = TestReactor::start();
    let config = SocketConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..SocketConfig::default()
    };
    let (probe, sock, mut peer) = accepted_pair(&rig, config);
    probe.with(move |ctx| sock.infinite_credit(ctx));
    let timeouts = || {
        probe.peek(|log| {
            log.iter()
                .filter(|e| matches!(e, Event::Socket(SocketEvent::Timeout(_))))
                .count()
        })
    };
    for _ in 0..10 {
        peer.write_all(b"tick").unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(timeouts(), 0, "timeout while the peer was talking");
    wait_until("timeout after silence", WAIT, || timeouts() >= 1);
}

#[test]
fn set_idle_timeout_turns_on_timeouts_for_a_running_connection() {
    let rig = TestReactor::start();
    let (probe, sock, _peer) = accepted_pair(&rig, SocketConfig::default());
    std::thread::sleep(QUIET);
    assert!(probe.peek(|log| !log
        .iter()
        .any(|e| matches!(e, Event::Socket(SocketEvent::Timeout(_))))));
    probe.with(move |ctx| sock.set_idle_timeout(ctx, Some(Duration::from_millis(100))));
    probe.wait_for("Timeout", WAIT, |log| {
        log.iter()
            .any(|e| matches!(e, Event::Socket(SocketEvent::Timeout(_))))
            .then_some(())
    });
}

#[test]
fn connect_by_localhost_falls_back_to_ipv6_when_ipv4_is_refused() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping: IPv6 loopback unavailable ({e})");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        eprintln!("skipping: 127.0.0.1:{port} is in use, so IPv4 would not be refused");
        return;
    }
    let rig = TestReactor::start();
    let (probe, _sock) = connect_probe(&rig, "localhost", port);
    let got = wait_connected(&probe).expect("localhost did not reach the IPv6 listener");
    assert_eq!(got, listener.local_addr().unwrap());
}

#[test]
fn set_controller_to_a_dead_actor_closes_the_socket() {
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    let doomed = ProbeHandle::spawn(&rig.handle);
    let doomed_addr = doomed.addr;
    assert!(rig.handle.kill(doomed_addr.id()));
    wait_until("doomed probe dead", WAIT, || {
        !rig.handle.is_alive(doomed_addr.id())
    });
    probe.with(move |ctx| sock.set_controller(ctx, doomed_addr));
    let mut rest = Vec::new();
    (&peer).read_to_end(&mut rest).expect("EOF expected");
    assert!(rest.is_empty());
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
}

#[test]
fn stop_flushes_queued_output_then_closes() {
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    let big = Bytes::from(
        (0..4 * 1024 * 1024)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    );
    let expect = big.clone();
    probe.with(move |ctx| {
        sock.send(ctx, big);
        sock.send_line(ctx, "bye");
        sock.stop(ctx);
    });
    let mut got = Vec::new();
    (&peer).read_to_end(&mut got).expect("read to EOF");
    assert_eq!(got.len(), expect.len() + 4);
    assert!(got[..expect.len()] == expect[..], "payload corrupted");
    assert_eq!(&got[expect.len()..], b"bye\n");
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
}

#[test]
fn peer_reset_gives_closed_reset() {
    let rig = TestReactor::start();
    let (probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    probe.with(move |ctx| sock.infinite_credit(ctx));
    (&peer).write_all(b"x").unwrap();
    probe.wait_data_count(1);
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    assert_eq!(probe.wait_closed(), CloseReason::Reset);
}

#[test]
fn overlong_close_policy_closes_with_limit_exceeded() {
    let rig = TestReactor::start();
    let config = SocketConfig {
        max_unit: 16,
        overlong: credit_actors::net::OverlongPolicy::Close,
        linger: Duration::from_millis(400),
        ..SocketConfig::default()
    };
    let (probe, sock, peer) = accepted_pair(&rig, config);
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.infinite_credit(ctx);
    });
    (&peer).write_all(b"short\n0123456789abcdefXYZ\n").unwrap();
    match probe.wait_closed() {
        CloseReason::LimitExceeded(what) => assert!(what.contains("16"), "{what}"),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    assert_eq!(text_lines(&probe.units()[..1]), ["short"]);
    // Open until the controller lets it go, so its answers still go out.
    probe.with(move |ctx| sock.send_line(ctx, "answer"));
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        rig.handle.is_alive(sock.id()),
        "closed under the controller"
    );
    let dead_before = rig.handle.metrics().unwrap().stats.dead_sends;
    probe.with(move |ctx| sock.stop(ctx));
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
    // Its close timer went with it: nothing reaches the dead socket once
    // the linger is past.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(rig.handle.metrics().unwrap().stats.dead_sends, dead_before);
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = String::new();
    (&peer).read_to_string(&mut got).ok();
    assert!(got.starts_with("answer\n"), "{got:?}");
}

#[test]
fn listener_stop_reports_stopped_refuses_new_connections_and_keeps_accepted_ones() {
    let rig = TestReactor::start();
    let probe = ProbeHandle::spawn(&rig.handle);
    let (listener, addr) = listen(&probe, SocketConfig::default(), 1);
    let mut peer = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    bound(&peer);
    wait_until("accept", WAIT, || probe.accepted().len() == 1);
    let sock = probe.accepted()[0];
    probe.with(move |ctx| listener.stop(ctx));
    probe.wait_for("Ready(Err(Stopped))", WAIT, |log| {
        log.iter()
            .any(|e| {
                matches!(
                    e,
                    Event::Listener(ListenerEvent::Ready(
                        _,
                        Err(credit_actors::net::ListenError::Stopped)
                    ))
                )
            })
            .then_some(())
    });
    wait_until("listener dead", WAIT, || {
        !rig.handle.is_alive(listener.id())
    });
    match TcpStream::connect_timeout(&addr, WAIT) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("connected to a stopped listener"),
    }
    // The accepted connection carries on.
    probe.with(move |ctx| {
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 1);
        sock.send_line(ctx, "still connected");
    });
    let mut buf = [0u8; 16];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still connected\n");
    peer.write_all(b"yes\n").unwrap();
    probe.wait_data_count(1);
    assert_eq!(text_lines(&probe.units()), ["yes"]);
}

#[test]
fn socket_messages_work_from_another_thread() {
    use credit_actors::net::{CreditOp, SocketMsg};
    let rig = TestReactor::start();
    let (probe, sock, mut peer) = accepted_pair(&rig, SocketConfig::default());
    let h = &rig.handle;
    assert!(h.send(sock, SocketMsg::set_mode(Mode::Text(Delimiter::crlf()))));
    assert!(h.send(sock, SocketMsg::issue_credit(1)));
    assert!(h.send(sock, SocketMsg::send_line("from a thread")));
    assert!(h.send(sock, SocketMsg::send(Bytes::from_static(b"raw"))));
    let mut buf = [0u8; 17];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from a thread\nraw");
    peer.write_all(b"one\r\ntwo\r\n").unwrap();
    probe.wait_data_count(1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(text_lines(&probe.units()), ["one"]);
    assert!(h.send(sock, SocketMsg::credit(CreditOp::Infinite)));
    probe.wait_data_count(2);
    assert_eq!(text_lines(&probe.units()), ["one", "two"]);
    assert!(h.send(sock, SocketMsg::stop()));
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
}

/// Sleeps through its first run: keeps the reactor from polling.
struct Sleeper(Duration);

impl Actor for Sleeper {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        std::thread::sleep(self.0);
        ctx.stop();
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, (): ()) {}
}

#[test]
fn data_and_fin_that_come_with_the_connect_are_both_seen() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hello\n").unwrap();
        // Dropped: the FIN follows the line at once.
    });
    let rig = TestReactor::start();
    let probe = ProbeHandle::spawn(&rig.handle);
    probe.with(move |ctx| {
        let sock = Socket::connect(ctx, "127.0.0.1", port);
        sock.delimiter_mode(ctx, Delimiter::lf());
        sock.issue_credit(ctx, 10);
        // Runs after the socket has called connect, and keeps the reactor
        // from polling until the line and the FIN have both arrived: the
        // connect's readiness then reports all three at once.
        ctx.spawn(Sleeper(Duration::from_millis(300)));
    });
    server.join().unwrap();
    probe.wait_data_count(1);
    assert_eq!(text_lines(&probe.units()), ["hello"]);
    assert_eq!(probe.wait_closed(), CloseReason::Orderly);
}

/// Does nothing with its messages.
struct Sink;

impl Actor for Sink {
    type Msg = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) {}
}

#[test]
fn the_live_lints_see_a_growing_mailbox_and_a_socket_left_without_credit() {
    use credit_actors::reactor::LiveLints;
    let rig = TestReactor::start();
    // The probe controls the socket and never issues credit.
    let (_probe, sock, peer) = accepted_pair(&rig, SocketConfig::default());
    let warning = || {
        let s = rig.handle.call(|core| core.lint_sample(16), WAIT).unwrap();
        s.warnings
            .into_iter()
            .find(|(id, _, _)| *id == sock.id())
            .map(|(_, _, w)| w)
    };
    // No byte yet: out of credit, but nothing waits.
    assert_eq!(warning(), None);
    (&peer).write_all(b"waiting\n").unwrap();
    wait_until("the socket out of credit with input", WAIT, || {
        warning().is_some_and(|w| w.contains("(8 bytes buffered, 8 of them in the kernel)"))
    });
    let sink = rig.handle.spawn(|| Sink).unwrap();
    let m = rig.handle.metrics().unwrap();
    let mut lints = LiveLints::default();
    let mut lines = Vec::new();
    // Each sample sees what was just sent: 20, 40, 80, 160 waiting.
    for n in [20, 40, 80, 160] {
        let sample = rig
            .handle
            .call(
                move |core| {
                    for _ in 0..n {
                        core.send(sink, ());
                    }
                    core.lint_sample(16)
                },
                WAIT,
            )
            .unwrap();
        assert!(sample
            .mailboxes
            .contains(&(sink.id(), std::any::type_name::<Sink>(), n)));
        lines.extend(lints.observe(&m, &m, &sample, 1.0));
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("lint credit-stall")
            && lines[0].contains(&format!(
                "{} Socket: out of credit with input waiting (8 bytes",
                sock.id()
            )),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("lint mailbox")
            && lines[1].contains(&format!(
                "{} Sink: mailbox growing, 20 → 40 → 80 → 160",
                sink.id()
            )),
        "{}",
        lines[1]
    );
}

#[test]
fn a_failure_after_the_peers_eof_is_not_told_again() {
    let rig = TestReactor::start();
    // Output below the high-water mark, so input is not held back.
    let config = SocketConfig {
        high_water: 64 << 20,
        ..SocketConfig::default()
    };
    let (probe, sock, peer) = accepted_pair(&rig, config);
    probe.with(move |ctx| sock.infinite_credit(ctx));
    (&peer).write_all(b"in\n").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(probe.wait_closed(), CloseReason::Orderly);
    // The controller keeps writing: more than the kernel's buffers hold,
    // then the peer resets, and the flush fails.
    let big = Bytes::from(vec![b'x'; 32 << 20]);
    probe.with(move |ctx| sock.send(ctx, big));
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    wait_until("socket dead", WAIT, || !rig.handle.is_alive(sock.id()));
    let closed = probe.wait_for("the log", WAIT, |log| {
        Some(
            log.iter()
                .filter(|e| matches!(e, Event::Socket(SocketEvent::Closed(..))))
                .count(),
        )
    });
    assert_eq!(closed, 1, "Closed told more than once");
}
