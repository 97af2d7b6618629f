//! The admin endpoint over loopback: its routes, HTTP/1.1 keep-alive and
//! bodies, bad requests, its connection limit, readiness, and the metrics
//! of a group of reactors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use credit_actors::net::ListenSpec;
use credit_actors::{Config, Reactors};
use credit_ops::admin::REQUEST_DEADLINE;
use credit_ops::{Admin, AdminConfig, Readiness};
use credit_testkit::WAIT;

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Asserts the server closes the connection within `within`: end of
/// stream (or a reset), not a read that timed out.
fn assert_closed(r: &mut BufReader<TcpStream>, within: Duration, what: &str) {
    r.get_ref().set_read_timeout(Some(within)).unwrap();
    let mut rest = String::new();
    match r.read_line(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the connection closed, got {other:?} {rest:?}"),
    }
}

/// Reads one response (head, then `Content-Length` bytes unless `head`).
fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> Option<Response> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: String::new(),
    };
    if !head {
        let len: usize = resp.header("Content-Length")?.parse().ok()?;
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        resp.body = String::from_utf8(body).ok()?;
    }
    Some(resp)
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// One request on a fresh connection.
fn ask(addr: SocketAddr, request: &str) -> Response {
    let (mut s, mut r) = connect(addr);
    s.write_all(request.as_bytes()).unwrap();
    read_response(&mut r, request.starts_with("HEAD")).expect("a response")
}

fn get(addr: SocketAddr, path: &str) -> Response {
    ask(addr, &format!("GET {path} HTTP/1.0\r\n\r\n"))
}

struct Fixture {
    admin: Admin,
    readiness: Readiness,
    reactors: Reactors,
    drain: std::path::PathBuf,
}

fn start(reactors: usize, max_conns: usize) -> Fixture {
    let reactors = Reactors::start(reactors, Config::default(), |_| {}).unwrap();
    let drain = std::env::temp_dir().join(format!(
        "credit-admin-drain-{}-{reactors:p}",
        std::process::id(),
        reactors = &reactors as *const Reactors
    ));
    let _ = std::fs::remove_file(&drain);
    let readiness = Readiness::new(Some(drain.clone()));
    let mut config = AdminConfig::new(
        ListenSpec::host_port("127.0.0.1", 0),
        reactors.handles().to_vec(),
        readiness.clone(),
    );
    config.max_conns = max_conns;
    let admin = Admin::start(config).unwrap();
    Fixture {
        admin,
        readiness,
        reactors,
        drain,
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.drain);
        self.reactors.shutdown();
    }
}

#[test]
fn health_and_readiness_follow_the_drain_file_and_the_stop() {
    let f = start(1, 8);
    let addr = f.admin.addr();
    let h = get(addr, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    assert_eq!(get(addr, "/readyz").status, 200);
    std::fs::write(&f.drain, b"").unwrap();
    let r = get(addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (503, "draining\n"));
    assert_eq!(
        get(addr, "/healthz").status,
        200,
        "draining is still healthy"
    );
    std::fs::remove_file(&f.drain).unwrap();
    assert_eq!(get(addr, "/readyz").status, 200, "ready again");
    f.readiness.stop();
    std::fs::write(&f.drain, b"").unwrap();
    let r = get(addr, "/readyz");
    assert_eq!((r.status, r.body.as_str()), (503, "stopping\n"));
    std::fs::remove_file(&f.drain).unwrap();
    assert_eq!(get(addr, "/readyz").status, 503, "a stop is for good");
}

#[test]
fn metrics_cover_every_reactor_in_prometheus_text_or_openmetrics() {
    let f = start(2, 8);
    let addr = f.admin.addr();
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "# TYPE credit_turns_total counter",
        "# TYPE credit_scheduling_delay_seconds histogram",
        "# TYPE credit_run_seconds histogram",
        "# TYPE credit_connections gauge",
        "# TYPE credit_sockets_credit_stalls_total counter",
        "# TYPE credit_sockets_proxy_refused_total counter",
        "credit_reactors 2",
        "credit_reactors_unanswered 0",
        "credit_ready 1",
    ] {
        assert!(m.body.contains(line), "no {line:?} in\n{}", m.body);
    }
    for r in ["0", "1"] {
        let sample = format!("credit_turns_total{{reactor=\"{r}\"}} ");
        assert!(m.body.contains(&sample), "no {sample:?}");
        let inf = format!("credit_run_seconds_bucket{{le=\"+Inf\",reactor=\"{r}\"}} ");
        assert!(m.body.contains(&inf), "no {inf:?}");
    }
    assert!(!m.body.contains("# EOF"));
    let om = ask(
        addr,
        "GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert!(om
        .header("Content-Type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.body.contains("# TYPE credit_turns counter"));
    assert!(om.body.ends_with("# EOF\n"));
    // HEAD: the same head, no body.
    let h = ask(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(h.status, 200);
    assert!(
        h.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 1000
    );
}

#[test]
fn a_stopped_reactor_is_left_out_and_counted_and_the_process_is_unhealthy() {
    let f = start(2, 8);
    let addr = f.admin.addr();
    f.reactors.handle(1).shutdown();
    std::thread::sleep(Duration::from_millis(100));
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("credit_reactors_unanswered 1"),
        "{}",
        m.body
    );
    let h = get(addr, "/healthz");
    assert_eq!(
        (h.status, h.body.as_str()),
        (503, "reactors not answering: 1\n")
    );
    assert!(m.body.contains("credit_turns_total{reactor=\"0\"}"));
    assert!(!m.body.contains("credit_turns_total{reactor=\"1\"}"));
}

#[test]
fn keep_alive_serves_requests_in_turn_and_skips_bodies() {
    let f = start(1, 8);
    let (mut s, mut r) = connect(f.admin.addr());
    // Three pipelined requests, the second with a body to skip.
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world\
          GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let a = read_response(&mut r, false).unwrap();
    assert_eq!(
        (a.status, a.header("Connection")),
        (200, Some("keep-alive"))
    );
    let b = read_response(&mut r, false).unwrap();
    assert_eq!((b.status, b.header("Allow")), (405, Some("GET, HEAD")));
    let c = read_response(&mut r, false).unwrap();
    assert_eq!((c.status, c.body.as_str()), (200, "ready\n"));
    // Asked to close: answered, then closed.
    s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let d = read_response(&mut r, false).unwrap();
    assert_eq!((d.status, d.header("Connection")), (404, Some("close")));
    // At once: well before the request deadline would close it.
    assert_closed(&mut r, REQUEST_DEADLINE / 2, "after Connection: close");
}

#[test]
fn bad_requests_get_400_and_a_closed_connection() {
    let f = start(1, 8);
    let addr = f.admin.addr();
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    for request in [
        "GARBAGE\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/2\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET healthz HTTP/1.0\r\n\r\n",
        long.as_str(),
    ] {
        let (mut s, mut r) = connect(addr);
        s.write_all(request.as_bytes()).unwrap();
        let resp = read_response(&mut r, false).expect("a 400");
        assert_eq!(resp.status, 400, "{:?}", &request[..request.len().min(40)]);
        assert!(resp.body.starts_with("bad request: "), "{}", resp.body);
        assert_closed(&mut r, REQUEST_DEADLINE / 2, "after a 400");
    }
    assert_eq!(get(addr, "/healthz").status, 200, "still serving");
}

#[test]
fn connections_past_the_limit_wait_until_one_closes() {
    let f = start(1, 2);
    let addr = f.admin.addr();
    let (mut a, mut ra) = connect(addr);
    let (mut b, mut rb) = connect(addr);
    for (s, r) in [(&mut a, &mut ra), (&mut b, &mut rb)] {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(r, false).unwrap().status, 200);
    }
    // A third: its request waits in the kernel's backlog.
    let (mut c, mut rc) = connect(addr);
    c.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = rc.get_mut().read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "answered past the limit: {early:?}"
    );
    drop((a, ra));
    c.set_read_timeout(Some(WAIT)).unwrap();
    let resp = read_response(&mut rc, false).expect("answered once a slot is free");
    assert_eq!(resp.status, 200);
    drop((b, rb));
}

#[test]
fn a_client_trickling_its_request_loses_its_slot_at_the_deadline() {
    let f = start(1, 1);
    let addr = f.admin.addr();
    let (mut slow, mut rs) = connect(addr);
    slow.write_all(b"GET /hea").unwrap();
    let started = std::time::Instant::now();
    // One byte a second: each resets an idle timer, not the deadline.
    let trickle = std::thread::spawn(move || {
        for b in b"lthz HTTP/1.1\r\n" {
            std::thread::sleep(Duration::from_millis(1000));
            if slow.write_all(&[*b]).is_err() {
                break;
            }
        }
    });
    assert_closed(&mut rs, WAIT, "a trickled request at its deadline");
    let took = started.elapsed();
    // Not before the deadline, and before the trickle would have ended
    // the head (15 s).
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(14),
        "closed after {took:?}"
    );
    // The one slot is free again.
    assert_eq!(get(addr, "/healthz").status, 200);
    let _ = trickle.join();
}
