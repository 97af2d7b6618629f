//! The `echo-server` binary as a user runs it: flags, the log line with the
//! bound address, talking to it like `nc`, SIGTERM with a grace period, and
//! start-up failures.
//!
//! Every child is killed on drop if still running, every read has a timeout
//! and every wait a deadline.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::BIN;
use credit_testkit::{join_bounded, procfs, Peer, ServerProc, WAIT};

/// Repetitions of the start-then-SIGTERM race check.
const ROUNDS: usize = 60;

/// Runs the binary to completion with `args`, bounded.
fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, Vec<String>) {
    ServerProc::run_to_exit(BIN, args, timeout)
}

#[test]
fn binary_logs_its_address_echoes_lines_and_exits_zero_on_sigterm() {
    let mut server = ServerProc::start(BIN, &["--grace", "2"]);
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("hello"), "You said: hello");
    assert_eq!(peer.ask("héllo wörld ✓"), "You said: héllo wörld ✓");
    peer.write(b"one\ntwo\nthree\n");
    assert_eq!(peer.read_line(), "You said: one");
    assert_eq!(peer.read_line(), "You said: two");
    assert_eq!(peer.read_line(), "You said: three");
    peer.shutdown_write();
    peer.expect_eof();
    drop(peer);

    let signalled = Instant::now();
    server.sigterm_settled();
    let (status, output) = server.finish(Duration::from_secs(2) + WAIT);
    assert!(status.success(), "exit status {status}; output: {output:?}");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(2) + Duration::from_secs(3),
        "took {:?} to exit with no session left",
        signalled.elapsed()
    );
}

#[test]
fn binary_answers_in_flight_line_at_sigterm_and_exits_zero_after_grace() {
    let mut server = ServerProc::start(BIN, &["--grace", "2"]);
    let addr = server.addr();
    let mut peer = Peer::connect(addr);
    assert_eq!(peer.ask("first"), "You said: first");

    // A line in flight as the signal arrives.
    server.settle();
    peer.send_line("in flight");
    server.sigterm();
    let signalled = Instant::now();
    assert_eq!(peer.read_line(), "You said: in flight");

    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&addr, WAIT) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Completed in the backlog just as the listener closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(s) => {
                drop(s);
                assert!(Instant::now() < deadline, "still accepting after SIGTERM");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    // The session keeps being served during the grace period ...
    assert_eq!(peer.ask("during grace"), "You said: during grace");
    // ... and is closed when it ends.
    peer.expect_eof();
    let closed_after = signalled.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1500),
        "session closed after {closed_after:?}, before the 2 s grace period; output: {:?}",
        server.output()
    );
    let (status, output) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0), "output: {output:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(2) + WAIT,
        "exit took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn binary_exits_promptly_once_the_last_session_ends_after_sigterm() {
    // A long grace period: the exit must come from the session ending.
    let mut server = ServerProc::start(BIN, &["--grace", "60"]);
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("before"), "You said: before");
    server.sigterm_settled();
    assert_eq!(peer.ask("after signal"), "You said: after signal");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.exit_status().is_none(),
        "exited with a session still open; output: {:?}",
        server.output()
    );
    let closed = Instant::now();
    drop(peer);
    let (status, output) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0), "output: {output:?}");
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "took {:?} to exit after the last session ended",
        closed.elapsed()
    );
}

#[test]
fn binary_memory_stays_bounded_under_a_fifty_megabyte_line() {
    const TOTAL: usize = 50 * 1024 * 1024;
    let server = ServerProc::start(BIN, &["--max-line", "1024"]);
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("warm up"), "You said: warm up");
    let before = server.status_kb("VmRSS");
    let mut writer = peer.writer.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'q'; 64 * 1024];
        let mut sent = 0;
        while sent < TOTAL {
            writer.write_all(&chunk).expect("flood write");
            sent += chunk.len();
        }
        writer.write_all(b"\nafter\n").expect("write");
    });
    let err = peer.read_line();
    assert!(err.starts_with("error: "), "got {err:?}");
    assert_eq!(peer.read_line(), "You said: after");
    join_bounded(flood);
    let peak = server.status_kb("VmHWM");
    let after = server.status_kb("VmRSS");
    eprintln!("RSS before {before} kB, peak {peak} kB, after {after} kB");
    // 50 MB went through; the server must not have held on to it.
    assert!(
        peak < before + 16 * 1024,
        "peak RSS {peak} kB vs {before} kB before the flood"
    );
    assert!(after < before + 16 * 1024, "RSS {after} kB vs {before} kB");
    assert_eq!(peer.ask("still"), "You said: still");
}

#[test]
fn binary_rejects_a_bad_port_flag_with_code_2() {
    let (status, output) = run_to_exit(&["--port", "notanumber"], WAIT);
    assert_eq!(status.code(), Some(2), "output: {output:?}");
    let text = output.join("\n");
    assert!(
        text.contains("notanumber") || text.contains("--port"),
        "message should name the bad value: {text}"
    );
}

#[test]
fn binary_reports_bad_flag_on_stderr_not_stdout() {
    let out = Command::new(BIN)
        .args(["--port", "notanumber"])
        .stdin(Stdio::null())
        .output()
        .expect("run echo-server");
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty(), "no message on stderr");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
}

#[test]
fn binary_rejects_a_zero_idle_timeout_with_code_2() {
    let (status, output) = run_to_exit(
        &["--bind", "127.0.0.1", "--port", "0", "--idle-timeout", "0"],
        WAIT,
    );
    assert_eq!(status.code(), Some(2), "output: {output:?}");
    assert!(
        output.join("\n").contains("idle-timeout"),
        "output: {output:?}"
    );
}

#[test]
fn binary_exits_nonzero_naming_the_address_when_the_port_is_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, output) = run_to_exit(
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--log-level",
            "info",
        ],
        Duration::from_secs(20),
    );
    assert!(
        !status.success(),
        "exit status {status}; output: {output:?}"
    );
    let text = output.join("\n");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")),
        "message should name the address: {text}"
    );
    drop(taken);
}

#[test]
fn binary_holds_back_input_from_a_client_that_never_reads() {
    // The client writes lines without reading replies. The server must
    // stop reading (replies above the high-water mark), so the client's
    // writes block within bounded bytes and the server's memory stays
    // bounded; once the client reads, every reply arrives, in order.
    let server = ServerProc::start(BIN, &[]);
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("warm up"), "You said: warm up");
    let before = server.status_kb("VmRSS");

    const LINE: usize = 100; // 99 digits and LF
    let limit_bytes = 256 * 1024 * 1024;
    let mut chunk = Vec::with_capacity(LINE * 1000);
    peer.writer.set_nonblocking(true).unwrap();
    let mut lines_sent = 0usize;
    let mut pending: &[u8] = &[];
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "client never blocked");
        assert!(
            lines_sent * LINE < limit_bytes,
            "server read {lines_sent} lines without their replies being read"
        );
        if pending.is_empty() {
            chunk.clear();
            for i in lines_sent..lines_sent + 1000 {
                chunk.extend_from_slice(format!("{i:099}\n").as_bytes());
            }
            lines_sent += 1000;
            pending = &chunk[..];
        }
        match peer.writer.write(pending) {
            Ok(n) => {
                pending = &pending[n..];
                blocked_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    let peak = server.status_kb("VmHWM");
    eprintln!(
        "{lines_sent} lines ({} MB) written before blocking; RSS before {before} kB, peak {peak} kB",
        (lines_sent * LINE) >> 20
    );
    assert!(
        peak < before + 32 * 1024,
        "peak RSS {peak} kB vs {before} kB with {lines_sent} lines written"
    );
    // Finish the partial chunk, then read every reply.
    peer.writer.set_nonblocking(false).unwrap();
    let rest = pending.to_vec();
    let mut writer = peer.writer.try_clone().unwrap();
    let finisher = std::thread::spawn(move || writer.write_all(&rest).expect("write rest"));
    for i in 0..lines_sent {
        let got = peer.read_line();
        assert_eq!(got, format!("You said: {i:099}"), "reply {i}");
    }
    join_bounded(finisher);
    assert_eq!(peer.ask("done"), "You said: done");
}

#[test]
fn binary_sigterm_right_after_start_exits_zero() {
    // Whatever the server's start-up threads are doing, SIGTERM is an
    // orderly stop: status 0, not the bind-failure exit. Start-up races
    // are timing dependent, so try several times.
    // Busy threads make the server's threads wait for a CPU, as on a
    // loaded machine, which is when the race shows.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for _ in 0..ROUNDS {
        let mut server = ServerProc::start(BIN, &["--grace", "2"]);
        server.sigterm();
        let (status, output) = server.finish(WAIT);
        if status.code() != Some(0) || output.iter().any(|l| l.contains("cannot listen")) {
            failures.push((status, output));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in spinners {
        join_bounded(t);
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} stops right after start-up failed; first: {:?}",
        failures.len(),
        failures[0]
    );
}

#[test]
fn binary_second_sigterm_exits_at_once_with_failure() {
    let mut server = ServerProc::start(BIN, &["--grace", "60"]);
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("hold"), "You said: hold");
    server.sigterm_settled();
    // Wait until the first signal was handled, so the second is "second".
    let deadline = Instant::now() + WAIT;
    while !server.output().iter().any(|l| l.contains("signal")) {
        assert!(Instant::now() < deadline, "first signal not logged");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = Instant::now();
    server.sigterm();
    let (status, output) = server.finish(WAIT);
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "second signal did not exit at once"
    );
    assert!(!status.success(), "status {status}; output: {output:?}");
    drop(peer);
}

#[test]
fn binary_out_of_file_descriptors_pauses_accepting_without_spinning_and_recovers() {
    const LIMIT: u64 = 24;
    let mut cmd = Command::new(BIN);
    procfs::limit_child_nofile(&mut cmd, LIMIT);
    let server = ServerProc::start_cmd(cmd, &[]);
    let addr = server.addr();
    // More clients than the server has descriptors for. Each connects (the
    // kernel backlog completes the handshake) and sends a line.
    let mut peers: Vec<Peer> = (0..40)
        .map(|i| {
            let mut p = Peer::connect(addr);
            p.send_line(&format!("client {i}"));
            p
        })
        .collect();
    // Some are served; the rest wait because accept fails with EMFILE.
    let mut served = Vec::new();
    for (i, p) in peers.iter_mut().enumerate() {
        p.writer
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(Some(line)) = p.try_read_line() {
            assert_eq!(line, format!("You said: client {i}"));
            served.push(i);
        }
        p.writer.set_read_timeout(Some(WAIT)).unwrap();
    }
    eprintln!(
        "{} of {} clients served before running out",
        served.len(),
        peers.len()
    );
    assert!(!served.is_empty(), "nobody was served");
    assert!(
        served.len() < peers.len(),
        "all {} served under a limit of {LIMIT} descriptors",
        served.len()
    );
    // Accepting is paused on a timer, not retried in a busy loop.
    let t0 = server.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let ticks = server.cpu_ticks() - t0;
    let hz = procfs::ticks_per_second();
    assert!(
        ticks * 2 < hz,
        "server used {ticks} ticks of {hz}/s CPU while out of descriptors"
    );
    // Closing the served clients frees descriptors; the rest get answers,
    // each leaving after its reply to make room for the next.
    let waiting: Vec<(usize, Peer)> = peers
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !served.contains(i))
        .collect();
    for (i, mut p) in waiting {
        assert_eq!(p.read_line(), format!("You said: client {i}"));
        assert_eq!(p.ask("again"), "You said: again");
    }
    // And a newcomer is accepted as usual.
    let mut late = Peer::connect(addr);
    assert_eq!(late.ask("late"), "You said: late");
    let output = server.output();
    assert!(
        output.iter().any(|l| l.contains("accept failed")),
        "the exhaustion should be logged: {output:?}"
    );
}
