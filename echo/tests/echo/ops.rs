//! `echo-server` run as an operator runs it: under systemd (a listening
//! socket passed in `LISTEN_FDS`, `READY=1` and `STOPPING=1` sent to
//! `NOTIFY_SOCKET`), with an admin endpoint whose `/readyz` follows the
//! drain file and the stop signal, and behind a proxy that sends PROXY
//! headers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Command;

use credit_actors::net::ProxyHeader;
use credit_testkit::{wait_until, Peer, ServerProc, WAIT};

use crate::support::BIN;

fn temp_path(what: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("credit-echo-{what}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// The admin endpoint's address, from the log.
fn admin_addr(server: &ServerProc) -> SocketAddr {
    let mut found = None;
    wait_until("the admin endpoint's log line", WAIT, || {
        found = server.output().iter().find_map(|l| {
            let rest = l.split("admin endpoint on http://").nth(1)?;
            rest.split('/').next()?.parse().ok()
        });
        found.is_some()
    });
    found.unwrap()
}

/// `GET path` over HTTP/1.0: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn socket_activation_serves_the_passed_socket_and_notifies_ready_and_stopping() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let notify_path = temp_path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();

    // As systemd does: the socket as descriptor 3, LISTEN_PID naming the
    // server's own process (the shell execs it, keeping its pid).
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"",
        BIN,
    ])
    .env("LISTEN_FDS", "1")
    .env("LISTEN_FDNAMES", "echo")
    .env("NOTIFY_SOCKET", &notify_path);
    // SAFETY: dup2 and fcntl are async-signal-safe; the closure touches
    // nothing else between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = ServerProc::start_cmd(cmd, &["--grace", "2"]);
    assert_eq!(
        server.addr().port(),
        port,
        "serves the socket it was passed"
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within the wait");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(ready.contains(&format!("127.0.0.1:{port}")), "{ready:?}");

    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("activated"), "You said: activated");
    drop(peer);
    server.sigterm_settled();
    let n = notify.recv(&mut buf).expect("STOPPING=1 within the wait");
    assert!(buf[..n].starts_with(b"STOPPING=1"), "{:?}", &buf[..n]);
    let (status, output) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{output:?}");
    let _ = std::fs::remove_file(&notify_path);
}

#[test]
fn readyz_follows_the_drain_file_then_the_stop_while_sessions_finish() {
    let drain = temp_path("drain");
    let mut server = ServerProc::start(
        BIN,
        &[
            "--grace",
            "5",
            "--admin",
            "127.0.0.1:0",
            "--drain-file",
            drain.to_str().unwrap(),
        ],
    );
    let admin = admin_addr(&server);
    assert_eq!(get(admin, "/readyz"), (200, "ready\n".into()));
    std::fs::write(&drain, b"").unwrap();
    assert_eq!(get(admin, "/readyz"), (503, "draining\n".into()));
    // Draining turns no one away: the balancer does.
    let mut peer = Peer::connect(server.addr());
    assert_eq!(peer.ask("still served"), "You said: still served");
    let (_, metrics) = get(admin, "/metrics");
    assert!(
        metrics.contains("credit_connections{reactor=\"0\"} 1"),
        "{metrics}"
    );
    std::fs::remove_file(&drain).unwrap();
    assert_eq!(get(admin, "/readyz").0, 200);

    server.sigterm_settled();
    wait_until("/readyz turns 503 on SIGTERM", WAIT, || {
        get(admin, "/readyz") == (503, "stopping\n".into())
    });
    assert_eq!(get(admin, "/healthz").0, 200, "alive while draining");
    assert_eq!(peer.ask("finishing"), "You said: finishing");
    peer.shutdown_write();
    peer.expect_eof();
    let (status, output) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0), "{output:?}");
}

#[test]
fn behind_a_proxy_the_log_names_the_client_and_refusals_say_why() {
    let mut server = ServerProc::start(
        BIN,
        &[
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1",
            "--proxy-timeout",
            "1",
        ],
    );
    let mut peer = Peer::connect(server.addr());
    let header = ProxyHeader::proxy(
        "203.0.113.50:61000".parse().unwrap(),
        "198.51.100.1:4096".parse().unwrap(),
    );
    peer.write(&header.encode_v2());
    assert_eq!(peer.ask("via proxy"), "You said: via proxy");
    let mut raw = Peer::connect(server.addr());
    raw.send_line("no header");
    raw.expect_eof();
    wait_until("both log lines", WAIT, || {
        let out = server.output();
        out.iter()
            .any(|l| l.contains("from 203.0.113.50:61000 (PROXY v2)"))
            && out
                .iter()
                .any(|l| l.contains("refused: PROXY protocol: the connection sent no header"))
    });
    assert!(
        !server
            .output()
            .iter()
            .any(|l| l.contains("INFO") && l.contains("Connection accepted")),
        "the proxy's address is not logged as a client's"
    );
    drop((peer, raw));
    server.sigterm_settled();
    let (status, _) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn proxy_protocol_without_trusted_sources_is_refused_at_start() {
    let (status, output) = ServerProc::run_to_exit(BIN, &["--proxy-protocol"], WAIT);
    assert_eq!(status.code(), Some(2), "{output:?}");
    assert!(
        output.iter().any(|l| l.contains("--proxy-from")),
        "{output:?}"
    );
    let (status, output) = ServerProc::run_to_exit(BIN, &["--proxy-from", "10.0.0.0/33"], WAIT);
    assert_eq!(status.code(), Some(2), "{output:?}");
    assert!(output.iter().any(|l| l.contains("prefix")), "{output:?}");
}

#[test]
fn an_inherited_socket_is_listened_on_again_after_its_service_ends() {
    use credit_actors::net::ListenSpec;
    use credit_actors::{Config, Reactor};
    use credit_echo::{EchoConfig, EchoService, ServiceMsg};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handle, join) = Reactor::start(Config::default(), |_| {}).unwrap();
    for round in 0..3 {
        let config = EchoConfig {
            listen: ListenSpec::inherited(listener.as_raw_fd()),
            ..EchoConfig::default()
        };
        let service = handle.spawn(move || EchoService::new(config)).unwrap();
        let addr = handle
            .request_wait(service, ServiceMsg::WhenReady, WAIT)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(addr.port(), port);
        let mut peer = Peer::connect(addr);
        assert_eq!(peer.ask("again"), "You said: again");
        handle.kill(service.id());
        drop(peer);
    }
    // Not a socket at all, and a socket that is not a TCP listener: refused
    // with a reason.
    let unix = UnixDatagram::unbound().unwrap();
    let config = EchoConfig {
        listen: ListenSpec::inherited(unix.as_raw_fd()),
        ..EchoConfig::default()
    };
    let service = handle.spawn(move || EchoService::new(config)).unwrap();
    let err = handle
        .request_wait(service, ServiceMsg::WhenReady, WAIT)
        .unwrap_err();
    assert!(
        err.to_string().contains("not a listening TCP socket"),
        "{err}"
    );
    handle.shutdown();
    credit_testkit::join_bounded(join).unwrap();
}

#[test]
fn a_flood_of_refusals_is_logged_ten_a_second_and_summed_up() {
    let mut server = ServerProc::start(BIN, &["--proxy-protocol", "--proxy-from", "10.0.0.1"]);
    let refuse = |n: usize| {
        for _ in 0..n {
            let mut p = Peer::connect(server.addr());
            p.expect_eof();
        }
    };
    refuse(30);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    refuse(1);
    let count = |server: &ServerProc| {
        let out = server.output();
        let one_by_one = out
            .iter()
            .filter(|l| l.contains("refused: PROXY protocol: 127.0.0.1 is not a trusted proxy"))
            .count();
        let summed: u64 = out
            .iter()
            .filter_map(|l| {
                let (n, _) = l
                    .split("INFO")
                    .nth(1)?
                    .split_once(" more connections refused")?;
                n.rsplit(' ').next()?.parse::<u64>().ok()
            })
            .sum();
        (one_by_one, summed)
    };
    wait_until("every refusal logged or summed", WAIT, || {
        let (one, summed) = count(&server);
        one as u64 + summed == 31
    });
    let (one, _) = count(&server);
    // Ten a second: the burst and the one after it span two windows.
    assert!(one <= 20, "{one} refusals logged one by one");
    server.sigterm_settled();
    let (status, _) = server.finish(WAIT);
    assert_eq!(status.code(), Some(0));
}
