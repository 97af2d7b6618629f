//! The echo tutorial end to end: an in-process `EchoService` on 127.0.0.1
//! port 0, spoken to by raw `std::net::TcpStream` peers and by `EchoClient`.
//!
//! Every read and write has a timeout and every wait a deadline.

use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::{Server, PREFIX};
use credit_actors::net::SocketConfig;
use credit_echo::{EchoClient, EchoConfig};
use credit_testkit::{closed_port, join_bounded, wait_until, Peer, WAIT};

fn small_lines() -> SocketConfig {
    SocketConfig {
        max_unit: 1024,
        ..SocketConfig::default()
    }
}

#[test]
fn hello_gets_you_said_hello() {
    let server = Server::start();
    let mut peer = server.connect();
    assert_eq!(peer.ask("hello"), "You said: hello");
    // And the session keeps going.
    assert_eq!(peer.ask("again"), "You said: again");
    assert_eq!(peer.ask(""), "You said: ");
}

#[test]
fn utf8_line_round_trips_unchanged() {
    let server = Server::start();
    let mut peer = server.connect();
    assert_eq!(peer.ask("héllo wörld ✓"), "You said: héllo wörld ✓");
    assert_eq!(peer.ask("日本語 🦀"), "You said: 日本語 🦀");
}

#[test]
fn ten_thousand_pipelined_lines_come_back_in_order() {
    const N: usize = 10_000;
    let server = Server::start();
    let mut peer = server.connect();
    let writer = peer.writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut w = BufWriter::new(writer);
        for i in 0..N {
            writeln!(w, "line {i}").expect("write");
        }
        w.flush().expect("flush");
    });
    for i in 0..N {
        let got = peer.read_line();
        assert_eq!(got, format!("You said: line {i}"), "reply {i} out of order");
    }
    join_bounded(sender);
    // Nothing extra came back.
    assert_eq!(peer.ask("end"), "You said: end");
}

#[test]
fn hundred_concurrent_clients_each_get_their_own_replies() {
    const CLIENTS: usize = 100;
    const LINES: usize = 20;
    let server = Server::start();
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut peer = Peer::connect(addr);
                barrier.wait();
                for l in 0..LINES {
                    let line = format!("client {c} line {l}");
                    assert_eq!(peer.ask(&line), format!("{PREFIX}{line}"));
                }
            })
        })
        .collect();
    for t in threads {
        join_bounded(t);
    }
    // Every session ends once its client is gone.
    server.wait_sessions(0);
}

#[test]
fn overlong_line_gets_one_error_and_neighbours_are_answered() {
    let server = Server::start_with(small_lines(), None);
    let mut peer = server.connect();
    let exact = "a".repeat(1024);
    let over = "x".repeat(2000);
    let just_over = "z".repeat(1025);
    // All in one write, so they are framed out of one buffer.
    peer.write(format!("before\n{over}\nafter\n{exact}\n{just_over}\nlast\n").as_bytes());
    assert_eq!(peer.read_line(), "You said: before");
    let err = peer.read_line();
    assert!(err.starts_with("error: "), "got {err:?}");
    assert!(err.contains("1024"), "error should name the limit: {err:?}");
    assert_eq!(peer.read_line(), "You said: after");
    // A line of exactly max_unit bytes is accepted.
    assert_eq!(peer.read_line(), format!("{PREFIX}{exact}"));
    let err = peer.read_line();
    assert!(
        err.starts_with("error: "),
        "1025 bytes must be rejected: {err:?}"
    );
    assert_eq!(peer.read_line(), "You said: last");
}

#[test]
fn fifty_megabyte_line_without_lf_gets_one_error_and_connection_still_answers() {
    const TOTAL: usize = 50 * 1024 * 1024;
    let server = Server::start_with(small_lines(), None);
    let mut peer = server.connect();
    assert_eq!(peer.ask("before"), "You said: before");
    let writer = peer.writer.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut w = writer;
        let chunk = vec![b'y'; 64 * 1024];
        let mut sent = 0;
        while sent < TOTAL {
            w.write_all(&chunk).expect("flood write");
            sent += chunk.len();
        }
        w.write_all(b"\nafter flood\n").expect("write");
    });
    let err = peer.read_line();
    assert!(err.starts_with("error: "), "got {err:?}");
    // Exactly one error for the whole 50 MB line, then the next line.
    assert_eq!(peer.read_line(), "You said: after flood");
    join_bounded(flood);
    assert_eq!(peer.ask("still here"), "You said: still here");
}

#[test]
fn invalid_utf8_line_gets_one_error_naming_utf8_and_next_line_is_served() {
    let server = Server::start();
    let mut peer = server.connect();
    peer.write(b"ok1\nbad \xff\xfe bytes\nok2\n");
    assert_eq!(peer.read_line(), "You said: ok1");
    let err = peer.read_line();
    assert!(err.starts_with("error: "), "got {err:?}");
    assert!(err.contains("UTF-8"), "error should name UTF-8: {err:?}");
    assert_eq!(peer.read_line(), "You said: ok2");
    assert_eq!(peer.ask("ok3"), "You said: ok3");
}

#[test]
fn peer_reset_mid_line_kills_only_its_own_session() {
    let server = Server::start();
    let mut keeper = server.connect();
    assert_eq!(keeper.ask("k1"), "You said: k1");
    let mut victim = server.connect();
    assert_eq!(victim.ask("v1"), "You said: v1");
    server.wait_sessions(2);

    // Half a line, then a reset (SO_LINGER 0 makes close send RST).
    victim.write(b"half a li");
    std::thread::sleep(Duration::from_millis(50));
    socket2::SockRef::from(&victim.writer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(victim);

    server.wait_sessions(1);
    assert_eq!(keeper.ask("k2"), "You said: k2");
    assert_eq!(server.sessions(), 1);
}

#[test]
fn half_close_still_gets_every_reply_then_eof() {
    const N: usize = 200;
    let server = Server::start();
    let mut peer = server.connect();
    let mut all = String::new();
    for i in 0..N {
        all.push_str(&format!("half {i}\n"));
    }
    peer.write(all.as_bytes());
    peer.shutdown_write();
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: half {i}"));
    }
    peer.expect_eof();
    server.wait_sessions(0);
}

#[test]
fn final_line_without_lf_before_eof_is_answered() {
    let server = Server::start();
    let mut peer = server.connect();
    peer.write(b"one\ntwo without lf");
    peer.shutdown_write();
    assert_eq!(peer.read_line(), "You said: one");
    assert_eq!(peer.read_line(), "You said: two without lf");
    peer.expect_eof();
}

#[test]
fn killed_service_leaves_sessions_answering_and_refuses_new_connections() {
    let server = Server::start();
    let mut old = server.connect();
    assert_eq!(old.ask("before kill"), "You said: before kill");

    assert!(server.handle.kill(server.service.id()));
    wait_until("the service to die", WAIT, || {
        !server.handle.is_alive(server.service.id())
    });

    // The listener closes through its link to the service.
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&server.addr, WAIT) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Completed in the backlog just as the listener closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(s) => {
                drop(s);
                assert!(
                    Instant::now() < deadline,
                    "connections still accepted after the service was killed"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    // The session was handed its socket, so it is not linked to the service.
    assert_eq!(old.ask("after kill"), "You said: after kill");
    assert_eq!(old.ask("and again"), "You said: and again");
}

#[test]
fn echo_client_send_line_gets_reply() {
    let server = Server::start();
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", server.addr.port()).unwrap();
    let peer = client.connected(WAIT).expect("client did not connect");
    assert_eq!(peer, server.addr);
    let reply = client.send_line("hello").wait_timeout(WAIT).unwrap();
    assert_eq!(reply, "You said: hello");
    client.stop();
}

#[test]
fn echo_client_requests_in_flight_are_answered_in_order() {
    let server = Server::start();
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", server.addr.port()).unwrap();
    client.connected(WAIT).expect("client did not connect");
    let pending: Vec<_> = (0..50)
        .map(|i| (i, client.send_line(format!("msg {i}"))))
        .collect();
    for (i, p) in pending {
        assert_eq!(p.wait_timeout(WAIT).unwrap(), format!("You said: msg {i}"));
    }
    client.stop();
}

#[test]
fn echo_client_stop_closes_its_session_on_the_server() {
    let server = Server::start();
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", server.addr.port()).unwrap();
    client.connected(WAIT).expect("client did not connect");
    assert_eq!(
        client.send_line("hi").wait_timeout(WAIT).unwrap(),
        "You said: hi"
    );
    assert_eq!(server.sessions(), 1);
    client.stop();
    server.wait_sessions(0);
    wait_until("the client actor to end", WAIT, || {
        !server.handle.is_alive(client.addr().id())
    });
    // A stopped client answers no more.
    assert!(client.send_line("late").wait_timeout(WAIT).is_err());
}

#[test]
fn echo_client_to_closed_port_reports_refused() {
    let server = Server::start();
    let port = closed_port();
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", port).unwrap();
    let err = client
        .connected(WAIT)
        .expect_err("connected to a port with nothing listening");
    let text = err.to_string();
    assert!(
        text.to_lowercase().contains("refused"),
        "error should say refused: {text}"
    );
    // Later requests learn the same reason rather than hanging.
    let err = client.send_line("x").wait_timeout(WAIT).unwrap_err();
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    client.stop();
}

#[test]
fn tutorial_window_of_one_answers_pipelined_lines_in_order() {
    const N: usize = 2_000;
    let server = Server::start_config(EchoConfig {
        window: 1,
        ..EchoConfig::default()
    });
    let mut peer = server.connect();
    let all: String = (0..N).map(|i| format!("w{i}\n")).collect();
    let mut writer = peer.writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(all.as_bytes()).expect("write"));
    for i in 0..N {
        assert_eq!(peer.read_line(), format!("You said: w{i}"));
    }
    join_bounded(sender);
    peer.shutdown_write();
    peer.expect_eof();
}

#[test]
fn max_conns_one_makes_a_second_client_wait_until_the_first_leaves() {
    let server = Server::start_with(SocketConfig::default(), Some(1));
    let mut first = server.connect();
    assert_eq!(first.ask("first"), "You said: first");
    // The second handshake completes in the kernel backlog ...
    let mut second = server.connect();
    second.send_line("waiting");
    second
        .writer
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1];
    match std::io::Read::read(second.reader.get_mut(), &mut buf) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("second client served beyond max_conns: {other:?}"),
    }
    second.writer.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(server.sessions(), 1);
    // ... and is served once the first leaves.
    drop(first);
    assert_eq!(second.read_line(), "You said: waiting");
    assert_eq!(second.ask("now"), "You said: now");
    assert_eq!(server.sessions(), 1);
}

#[test]
fn idle_session_is_closed_after_the_idle_timeout() {
    let server = Server::start_with(
        SocketConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            ..SocketConfig::default()
        },
        None,
    );
    let mut peer = server.connect();
    assert_eq!(peer.ask("hi"), "You said: hi");
    let quiet_from = Instant::now();
    peer.expect_eof();
    assert!(
        quiet_from.elapsed() >= Duration::from_millis(150),
        "closed after {:?}",
        quiet_from.elapsed()
    );
    server.wait_sessions(0);
}

#[test]
fn echo_client_line_sent_before_connect_completes_is_answered() {
    let server = Server::start();
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", server.addr.port()).unwrap();
    // No wait for `connected`: the line is queued while connecting.
    let reply = client.send_line("early").wait_timeout(WAIT).unwrap();
    assert_eq!(reply, "You said: early");
    client.stop();
}

#[test]
fn echo_client_connects_by_the_name_localhost() {
    let server = Server::start();
    let client = EchoClient::spawn(&server.handle, "localhost", server.addr.port()).unwrap();
    let peer = client.connected(WAIT).expect("connect via localhost");
    assert_eq!(peer, server.addr);
    assert_eq!(
        client.send_line("by name").wait_timeout(WAIT).unwrap(),
        "You said: by name"
    );
    client.stop();
}

#[test]
fn echo_client_requests_are_rejected_when_the_server_closes_the_connection() {
    let server = Server::start_with(
        SocketConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            ..SocketConfig::default()
        },
        None,
    );
    let client = EchoClient::spawn(&server.handle, "127.0.0.1", server.addr.port()).unwrap();
    client.connected(WAIT).unwrap();
    assert_eq!(
        client.send_line("a").wait_timeout(WAIT).unwrap(),
        "You said: a"
    );
    // The idle session closes its end; the client learns why.
    server.wait_sessions(0);
    let deadline = Instant::now() + WAIT;
    let err = loop {
        match client.send_line("b").wait_timeout(WAIT) {
            Err(e) => break e,
            Ok(r) => {
                assert!(Instant::now() < deadline, "still answered: {r}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert!(
        err.to_string().contains("closed"),
        "error should say the connection closed: {err}"
    );
    client.stop();
}

// ----- a large reply backlog at half-close ------------------------------------------

#[test]
fn half_closed_echo_session_flushes_a_large_reply_backlog_before_closing() {
    // A session's replies go out even when its socket is stopped right
    // after: stop drains queued output first.
    let server = Server::start();
    let mut peer = server.connect();
    let mut lines = String::new();
    for i in 0..1000 {
        lines.push_str(&format!("{i:0>200}\n"));
    }
    peer.write(lines.as_bytes());
    peer.shutdown_write();
    for i in 0..1000 {
        assert_eq!(peer.read_line(), format!("You said: {i:0>200}"));
    }
    peer.expect_eof();
}
