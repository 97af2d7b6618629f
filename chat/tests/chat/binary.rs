//! The chat-server binary as a user runs it, and the terminal client
//! against it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use credit_chat::protocol::SHUTTING_DOWN;
use credit_testkit::{Peer, ServerProc, WAIT};

use crate::support::BIN;

/// The terminal client.
const TERMINAL: &str = env!("CARGO_BIN_EXE_socket-terminal");

fn welcome(peer: &mut Peer) -> String {
    let you = peer.read_line();
    let name = you.strip_prefix("you are ").expect("you are").to_string();
    assert!(peer.read_line().starts_with("present:"));
    assert_eq!(peer.read_line(), format!("{name} arrived"));
    name
}

#[test]
fn sigterm_tells_every_user_lets_output_drain_and_exits_zero() {
    let mut server = ServerProc::start(BIN, &[]);
    let mut a = Peer::connect(server.addr());
    let mut b = Peer::connect(server.addr());
    assert_eq!(welcome(&mut a), "user1");
    assert_eq!(welcome(&mut b), "user2");
    assert_eq!(a.read_line(), "user2 arrived");
    server.sigterm_settled();
    for p in [&mut a, &mut b] {
        assert_eq!(p.read_line(), SHUTTING_DOWN);
        p.expect_eof();
    }
    let (status, output) = server.finish(WAIT);
    assert!(status.success(), "{status}; {output:?}");
    assert!(
        output
            .iter()
            .any(|l| l.contains("user1 arrived from 127.0.0.1")),
        "{output:?}"
    );
    assert!(
        output.iter().any(|l| l.contains("user2 left")),
        "{output:?}"
    );
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let (status, output) =
        ServerProc::run_to_exit(BIN, &["--idle-timeout", "0"], Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{output:?}");
    assert!(
        output.iter().any(|l| l.contains("--idle-timeout")),
        "{output:?}"
    );
}

#[test]
fn the_terminal_shows_what_arrives_and_sends_what_is_typed_through_a_pipe() {
    let server = ServerProc::start(BIN, &[]);
    let addr = server.addr();
    let mut watcher = Peer::connect(addr);
    assert_eq!(welcome(&mut watcher), "user1");
    let mut term = Command::new(TERMINAL)
        .args([addr.ip().to_string(), addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the terminal");
    {
        let mut stdin = term.stdin.take().unwrap();
        assert_eq!(watcher.read_line(), "user2 arrived");
        stdin.write_all(b"hello from the terminal\n").unwrap();
        assert_eq!(watcher.read_line(), "user2 says 'hello from the terminal'");
        // Dropping stdin ends the terminal's input: it sends EOF, the user
        // leaves, the server closes, the terminal exits.
    }
    assert_eq!(watcher.read_line(), "user2 left");
    let out = term.wait_with_output().expect("terminal output");
    assert!(out.status.success(), "{:?}", out);
    let shown = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "---------------- connected to {} port {}",
                addr.ip(),
                addr.port()
            )
            .as_str(),
            "you are user2",
            "present: user1",
            "user2 arrived",
            "user2 says 'hello from the terminal'",
            "---------------- disconnected",
        ]
    );
}

#[test]
fn the_terminal_reports_a_refused_connection() {
    let port = credit_testkit::closed_port();
    let out = Command::new(TERMINAL)
        .args(["127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run the terminal");
    assert_eq!(out.status.code(), Some(1));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        [
            "---------------- disconnected",
            "---------------- disconnection reason: connection refused"
        ]
    );
}
