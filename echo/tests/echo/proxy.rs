//! The PROXY protocol in front of the echo service: headers of both
//! versions are read before the first line, whatever way they are cut;
//! `LOCAL` (a health check) is served as a plain connection; untrusted
//! sources, malformed, truncated and late headers close the connection,
//! and the counters say how many of each.

use std::sync::Arc;
use std::time::Duration;

use credit_actors::net::proxy::{parse_cidrs, ProxyPolicy};
use credit_actors::net::{ProxyHeader, SocketConfig};
use credit_echo::EchoConfig;
use credit_testkit::wait_until;

use crate::support::{Server, PREFIX};

fn server(trusted: &str, timeout: Duration) -> Server {
    server_max(trusted, timeout, None)
}

fn server_max(trusted: &str, timeout: Duration, max_conns: Option<usize>) -> Server {
    let policy = ProxyPolicy {
        timeout,
        ..ProxyPolicy::new(parse_cidrs(trusted).unwrap())
    };
    Server::start_config(EchoConfig {
        conn: SocketConfig {
            proxy: Some(Arc::new(policy)),
            ..SocketConfig::default()
        },
        max_conns,
        ..EchoConfig::default()
    })
}

fn client() -> ProxyHeader {
    ProxyHeader::proxy(
        "192.0.2.7:40001".parse().unwrap(),
        "198.51.100.1:4096".parse().unwrap(),
    )
}

/// The reactor's PROXY counters: (headers read, of them LOCAL, refused).
fn counts(s: &Server) -> (u64, u64, u64) {
    let m = s.handle.metrics().unwrap();
    let g = m.group("sockets").expect("socket counters");
    let v = |n| g.get(n).unwrap();
    (v("proxied"), v("proxy_local"), v("proxy_refused"))
}

#[test]
fn v1_and_v2_headers_come_first_and_the_lines_behind_them_are_answered() {
    let s = server("127.0.0.0/8", Duration::from_secs(5));
    for header in [client().encode_v1(), client().encode_v2()] {
        // The header and two lines in one write.
        let mut p = s.connect();
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"one\ntwo\n");
        p.write(&bytes);
        assert_eq!(p.read_line(), format!("{PREFIX}one"));
        assert_eq!(p.read_line(), format!("{PREFIX}two"));
        // The header a byte at a time, then a line.
        let mut p = s.connect();
        for b in &header {
            p.write(std::slice::from_ref(b));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(p.ask("three"), format!("{PREFIX}three"));
    }
    assert_eq!(counts(&s), (4, 0, 0));
}

#[test]
fn a_local_header_is_a_health_check_served_as_a_plain_connection() {
    let s = server("127.0.0.1", Duration::from_secs(5));
    let mut p = s.connect();
    p.write(&ProxyHeader::local().encode_v2());
    assert_eq!(p.ask("ping"), format!("{PREFIX}ping"));
    assert_eq!(counts(&s), (1, 1, 0));
}

#[test]
fn untrusted_malformed_missing_and_truncated_headers_close_the_connection() {
    // Nothing on loopback is trusted: even a good header is refused, as
    // the listener accepts it, and it costs no session and no credit: a
    // server taking two at a time refuses five in a row and then serves.
    let s = server_max("10.0.0.0/8", Duration::from_secs(5), Some(2));
    for _ in 0..5 {
        let mut p = s.connect();
        let mut bytes = client().encode_v2();
        bytes.extend_from_slice(b"hello\n");
        // The refusal may reset the connection before the write.
        let _ = std::io::Write::write_all(&mut p.writer, &bytes);
        p.expect_eof();
    }
    wait_until("five refusals", Duration::from_secs(5), || {
        counts(&s) == (0, 0, 5)
    });
    assert_eq!(s.sessions(), 0, "no session for a refused connection");
    let m = s.handle.metrics().unwrap();
    assert_eq!(m.group("sockets").unwrap().get("conns"), Some(0));
    drop(s);

    let s = server("127.0.0.0/8", Duration::from_secs(5));
    let bad: [&[u8]; 4] = [
        b"hello\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhello\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nhello\n",
        b"\r\n\r\n\0\r\nQUIT\n\x13\x11\x00\x0chello\n",
    ];
    for bytes in bad {
        let mut p = s.connect();
        p.write(bytes);
        p.expect_eof();
    }
    // Half a header, then the peer's EOF.
    let mut p = s.connect();
    p.write(&client().encode_v2()[..20]);
    p.shutdown_write();
    p.expect_eof();
    wait_until("the refusals are counted", Duration::from_secs(5), || {
        counts(&s) == (0, 0, 5)
    });
    assert_eq!(s.sessions(), 0, "every refused session ended");
    // The service still serves a good one.
    let mut p = s.connect();
    p.write(&client().encode_v1());
    assert_eq!(p.ask("still here"), format!("{PREFIX}still here"));
}

#[test]
fn a_connection_closed_before_any_byte_is_no_refusal() {
    let s = server("127.0.0.1", Duration::from_secs(5));
    let p = s.connect();
    p.shutdown_write();
    let mut p = p;
    p.expect_eof();
    wait_until("the session ends", Duration::from_secs(5), || {
        s.sessions() == 0
    });
    assert_eq!(counts(&s), (0, 0, 0));
}

#[test]
fn a_header_that_never_comes_is_refused_after_the_timeout() {
    let s = server("127.0.0.1", Duration::from_millis(200));
    let mut silent = s.connect();
    let mut partial = s.connect();
    partial.write(b"PROXY TCP4 ");
    silent.expect_eof();
    partial.expect_eof();
    assert_eq!(counts(&s), (0, 0, 2));
}
