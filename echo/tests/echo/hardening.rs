//! Hostile and unlucky peers: slowloris, silent clients, peers that never
//! read, connect floods, resets, and a session handler that panics.
//!
//! In-process servers (`support::Server`) where the reactor is enough; the
//! `echo-server` binary where process isolation matters (file descriptor
//! counts from /proc, SIGPIPE, surviving a reset). Loopback only, port 0,
//! every read with a timeout and every wait with a deadline; children are
//! killed on drop.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{Server, BIN};
use credit_actors::net::{
    Delimiter, ListenSpec, Listener, ListenerEvent, Socket, SocketConfig, SocketEvent, Unit,
};
use credit_actors::{
    Actor, ActorId, Addr, Config, Ctx, ExitReason, LinkAction, MonitorRef, Reactor, ReactorHandle,
    Reply,
};
use credit_testkit::{bound, join_bounded, procfs, wait_until, Peer, ServerProc, WAIT};

/// A client that keeps asking on its own connection until stopped, and
/// reports how many answers it got and the slowest round trip. Any wrong
/// or missing answer fails it.
struct Pinger {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<(usize, Duration)>>,
}

impl Pinger {
    fn start(addr: SocketAddr) -> Pinger {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut peer = Peer::connect(addr);
        assert_eq!(peer.ask("ping warm-up"), "You said: ping warm-up");
        let join = std::thread::spawn(move || {
            let (mut n, mut worst) = (0usize, Duration::ZERO);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let t0 = Instant::now();
                let line = format!("ping {n}");
                assert_eq!(peer.ask(&line), format!("You said: {line}"));
                worst = worst.max(t0.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (n, worst)
        });
        Pinger {
            stop,
            join: Some(join),
        }
    }

    /// Stops the pinger; (answers, slowest round trip).
    fn finish(mut self) -> (usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        join_bounded(self.join.take().unwrap())
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A blocking client socket with a small receive buffer (set before
/// connecting, so the window it advertises stays small).
fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> TcpStream {
    use socket2::{Domain, Protocol, Socket as RawSocket, Type};
    let s = RawSocket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_recv_buffer_size(rcvbuf).unwrap();
    s.connect_timeout(&addr.into(), WAIT).expect("connect");
    let stream: TcpStream = s.into();
    bound(&stream);
    stream
}

/// Writes numbered 100-byte lines without ever reading, until writes stay
/// blocked for `blocked_for` (the server stopped reading), a write fails
/// (returned as `Err`), or `max_bytes` were written. Returns the bytes
/// written.
fn write_until_blocked(
    stream: &mut TcpStream,
    blocked_for: Duration,
    max_bytes: usize,
) -> Result<usize, std::io::Error> {
    stream.set_nonblocking(true).unwrap();
    let mut chunk = Vec::with_capacity(100 * 1000);
    for i in 0..1000 {
        chunk.extend_from_slice(format!("{i:099}\n").as_bytes());
    }
    let (mut written, mut pos) = (0usize, 0usize);
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + WAIT;
    let result = loop {
        if written >= max_bytes || Instant::now() >= deadline {
            break Ok(written);
        }
        match stream.write(&chunk[pos..]) {
            Ok(n) => {
                written += n;
                pos = (pos + n) % chunk.len();
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if blocked_since.get_or_insert_with(Instant::now).elapsed() >= blocked_for {
                    break Ok(written);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => break Err(e),
        }
    };
    stream.set_nonblocking(false).unwrap();
    result
}

/// Reads until EOF or a reset, discarding; panics if neither comes in time.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> usize {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "connection not closed by the server"
        );
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("connection not closed by the server within {timeout:?}")
            }
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

// ----- slow and silent peers ---------------------------------------------------

#[test]
fn slowloris_is_not_idle_but_the_line_limit_ends_its_line_while_others_are_served_promptly() {
    const MAX: usize = 16;
    let idle = Duration::from_millis(400);
    let server = Server::start_with(
        SocketConfig {
            max_unit: MAX,
            idle_timeout: Some(idle),
            ..SocketConfig::default()
        },
        None,
    );
    let mut slow = server.connect();
    let mut other = server.connect();
    assert_eq!(other.ask("hello"), "You said: hello");

    // One byte per 100 ms, no delimiter: 2.2 s in all, five idle timeouts'
    // worth, and never 400 ms without a byte.
    let mut worst = Duration::ZERO;
    let mut error_after = None;
    for i in 1..=MAX + 6 {
        let tick = Instant::now();
        slow.write(b"z");
        let t0 = Instant::now();
        let line = format!("meanwhile {i}");
        assert_eq!(other.ask(&line), format!("You said: {line}"));
        worst = worst.max(t0.elapsed());
        if i == MAX + 1 {
            // The 17th byte makes the line overlong: one error, at once.
            slow.writer
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let reply = slow.read_line();
            assert!(reply.starts_with("error: "), "got {reply:?}");
            assert!(reply.contains(&format!("{MAX} bytes")), "{reply:?}");
            error_after = Some(i);
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }
    assert_eq!(error_after, Some(MAX + 1));
    assert!(
        worst < Duration::from_millis(200),
        "a round trip took {worst:?} while the slowloris ran"
    );
    // Still open: neither closed for idleness nor given a second error for
    // the bytes discarded after the first. The rest of the line and a next
    // line are handled as usual.
    slow.writer.set_read_timeout(Some(WAIT)).unwrap();
    slow.write(b"zz\n");
    assert_eq!(slow.ask("next"), "You said: next");
    assert_eq!(server.sessions(), 2);

    // Once it stops sending, the idle timeout closes it, while the other
    // client, still talking, stays.
    let quiet = Instant::now();
    slow.writer
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 64];
    loop {
        assert!(
            quiet.elapsed() < WAIT,
            "the quiet slowloris was never closed"
        );
        match slow.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("unexpected bytes: {:?}", &buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(e) => panic!("unexpected read error: {e}"),
        }
        assert_eq!(other.ask("still here"), "You said: still here");
    }
    let after = quiet.elapsed();
    assert!(
        after >= idle - Duration::from_millis(50) && after < idle + Duration::from_secs(2),
        "closed {after:?} after going quiet (idle timeout {idle:?})"
    );
    server.wait_sessions(1);
    assert_eq!(other.ask("last"), "You said: last");
}

#[test]
fn client_that_never_sends_a_byte_is_closed_by_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let server = Server::start_with(
        SocketConfig {
            idle_timeout: Some(idle),
            ..SocketConfig::default()
        },
        None,
    );
    let connected = Instant::now();
    let mut silent = server.connect();
    silent.expect_eof();
    let after = connected.elapsed();
    assert!(
        after >= idle - Duration::from_millis(50) && after < idle + Duration::from_secs(2),
        "closed after {after:?} (idle timeout {idle:?})"
    );
    server.wait_sessions(0);
}

// ----- peers that never read ---------------------------------------------------

#[test]
fn write_timeout_closes_a_peer_that_never_reads_and_others_are_still_served() {
    let write_timeout = Duration::from_millis(300);
    let server = Server::start_with(
        SocketConfig {
            write_timeout: Some(write_timeout),
            ..SocketConfig::default()
        },
        None,
    );
    let mut other = server.connect();
    assert_eq!(other.ask("before"), "You said: before");

    let mut stuck = connect_small_rcvbuf(server.addr, 4096);
    let started = Instant::now();
    // Lines go in until the server stops reading (its output for us is
    // stuck above the high-water mark) or it closes the connection, which
    // shows here as a failed write.
    let outcome = write_until_blocked(&mut stuck, Duration::from_millis(100), 64 << 20);
    eprintln!(
        "never-reading client: {outcome:?} after {:?}",
        started.elapsed()
    );
    // The server gives up on its output and closes (reading here would
    // unstick it, so watch the session count instead).
    server.wait_sessions(1);
    let closed_after = started.elapsed();
    assert!(
        closed_after >= write_timeout && closed_after < Duration::from_secs(8),
        "took {closed_after:?} to close a stuck connection"
    );
    // The client sees the close: EOF or reset, after what was in flight.
    read_until_closed(&mut stuck, WAIT);
    server.wait_sessions(1);
    assert_eq!(other.ask("after"), "You said: after");
    // A write after the close fails instead of hanging.
    stuck
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut failed = false;
    for _ in 0..100 {
        if stuck.write_all(&[b'x'; 4096]).is_err() {
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(failed, "the closed connection still accepts writes");
}

// ----- connect floods ------------------------------------------------------------

#[test]
fn flood_of_five_thousand_connects_is_served_and_leaks_no_descriptors() {
    const TOTAL: usize = 5000;
    const BATCH: usize = 500;
    let limit = procfs::raise_nofile_limit();
    assert!(limit as usize > BATCH * 2 + 100, "descriptor limit {limit}");
    let mut server = ServerProc::start(BIN, &["--backlog", "1024"]);
    let addr = server.addr();
    let base_fds = server.fds();
    let pinger = Pinger::start(addr);

    let started = Instant::now();
    let mut answered = 0;
    for batch in 0..TOTAL / BATCH {
        let conns: Vec<TcpStream> = (0..BATCH)
            .map(|_| TcpStream::connect_timeout(&addr, WAIT).expect("connect"))
            .collect();
        let mut keep = Vec::with_capacity(BATCH / 2);
        for (i, c) in conns.into_iter().enumerate() {
            if i % 2 == 0 {
                drop(c); // closed at once, maybe before it was even accepted
            } else {
                bound(&c);
                keep.push(c);
            }
        }
        for (i, c) in keep.iter_mut().enumerate() {
            c.write_all(format!("flood {batch} {i}\n").as_bytes())
                .expect("write");
        }
        for (i, c) in keep.iter_mut().enumerate() {
            let mut reader = BufReader::new(&*c);
            let mut line = String::new();
            reader.read_line(&mut line).expect("read reply");
            assert_eq!(line, format!("You said: flood {batch} {i}\n"));
            answered += 1;
        }
        drop(keep);
    }
    let flood_time = started.elapsed();
    server.assert_alive();
    let (pings, worst) = pinger.finish();
    eprintln!(
        "{TOTAL} connects, {answered} answered in {flood_time:?}; pinger: {pings} answers, worst {worst:?}"
    );
    assert_eq!(answered, TOTAL / 2);
    assert!(pings > 0, "the other client got no answer during the flood");
    // Every connection is gone: the server is back to where it started.
    server.wait_fds(base_fds, WAIT);
    let mut late = Peer::connect(addr);
    assert_eq!(late.ask("after the flood"), "You said: after the flood");
}

// ----- resets and closed peers ---------------------------------------------------

#[test]
fn reset_mid_write_closes_only_that_connection() {
    let mut server = ServerProc::start(BIN, &[]);
    let addr = server.addr();
    let mut other = Peer::connect(addr);
    assert_eq!(other.ask("before"), "You said: before");
    let base_fds = server.fds();

    // A client that sends a lot and reads nothing: the server's replies pile
    // up (the client's window is tiny), so it is mid-write.
    let mut victim = connect_small_rcvbuf(addr, 4096);
    let written = write_until_blocked(&mut victim, Duration::from_millis(200), 64 << 20)
        .expect("the server closed the connection by itself");
    assert!(written > 100_000, "only {written} bytes went in");
    assert_eq!(server.fds(), base_fds + 1, "the victim's connection");
    // SO_LINGER 0: close sends RST.
    socket2::SockRef::from(&victim)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(victim);

    server.wait_fds(base_fds, WAIT);
    server.assert_alive();
    assert_eq!(other.ask("after"), "You said: after");
    let mut late = Peer::connect(addr);
    assert_eq!(late.ask("late"), "You said: late");
}

#[test]
fn writing_to_closed_peers_never_kills_the_process_with_sigpipe() {
    let mut server = ServerProc::start(BIN, &[]);
    let addr = server.addr();
    let mut other = Peer::connect(addr);
    assert_eq!(other.ask("before"), "You said: before");
    let base_fds = server.fds();
    // Each client pipelines lines and closes without reading: the first
    // replies meet a closed socket (RST), the ones after get EPIPE, which
    // would raise SIGPIPE for a process that has not ignored it.
    let mut lines = Vec::new();
    for i in 0..2000 {
        lines.extend_from_slice(format!("line {i} of a client that will not wait\n").as_bytes());
    }
    for round in 0..50 {
        let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        bound(&s);
        s.write_all(&lines).expect("write");
        if round % 2 == 0 {
            // Some half-close first, so the server sees EOF before writing.
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    server.assert_alive();
    server.wait_fds(base_fds, WAIT);
    assert_eq!(other.ask("after"), "You said: after");
    let mut late = Peer::connect(addr);
    assert_eq!(late.ask("late"), "You said: late");
    server.assert_alive();
}

// ----- a session handler that panics ---------------------------------------------

/// A session like `EchoSession`, whose handler panics on the line "boom".
struct PanickySession {
    conn: Option<Addr<Socket>>,
}

enum PanickyMsg {
    Connection(Addr<Socket>),
    Socket(SocketEvent),
}

impl From<SocketEvent> for PanickyMsg {
    fn from(e: SocketEvent) -> Self {
        PanickyMsg::Socket(e)
    }
}

const PANIC_MESSAGE: &str = "session handler panicked on purpose";

impl Actor for PanickySession {
    type Msg = PanickyMsg;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: PanickyMsg) {
        match msg {
            PanickyMsg::Connection(conn) => {
                self.conn = Some(conn);
                conn.delimiter_mode(ctx, Delimiter::lf());
                conn.issue_credit(ctx, 8);
            }
            PanickyMsg::Socket(SocketEvent::Data(conn, Ok(line))) => {
                if line.as_bytes() == b"boom" {
                    panic!("{PANIC_MESSAGE}");
                }
                answer(ctx, conn, line);
            }
            PanickyMsg::Socket(SocketEvent::Data(conn, Err(e))) => {
                conn.send_line(ctx, format!("error: {e}"));
                conn.issue_credit(ctx, 1);
            }
            PanickyMsg::Socket(SocketEvent::Closed(..)) => ctx.stop(),
            PanickyMsg::Socket(_) => {}
        }
    }
}

fn answer(ctx: &mut Ctx<'_, PanickySession>, conn: Addr<Socket>, line: Unit) {
    conn.send_line_parts(
        ctx,
        bytes::Bytes::from_static(b"You said: "),
        line.into_bytes(),
    );
    conn.issue_credit(ctx, 1);
}

/// A service like `EchoService` that runs `PanickySession`s and records
/// every session's exit reason from its monitor.
struct PanickyService {
    listener: Option<Addr<Listener>>,
    addr: Option<SocketAddr>,
    live: Vec<ActorId>,
    ended: Vec<(ActorId, ExitReason)>,
}

/// Live sessions, and ended sessions with their exit reasons.
type Report = (Vec<ActorId>, Vec<(ActorId, ExitReason)>);

enum PanickyServiceMsg {
    Listener(ListenerEvent),
    Socket(SocketEvent),
    /// The listening address, once known.
    Addr(Reply<Option<SocketAddr>>),
    /// (live sessions, ended sessions with their reasons).
    Report(Reply<Report>),
}

impl From<ListenerEvent> for PanickyServiceMsg {
    fn from(e: ListenerEvent) -> Self {
        PanickyServiceMsg::Listener(e)
    }
}

impl From<SocketEvent> for PanickyServiceMsg {
    fn from(e: SocketEvent) -> Self {
        PanickyServiceMsg::Socket(e)
    }
}

impl Actor for PanickyService {
    type Msg = PanickyServiceMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let l = Listener::listen(ctx, ListenSpec::host_port("127.0.0.1", 0));
        l.issue_credit(ctx, 1000);
        self.listener = Some(l);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: PanickyServiceMsg) {
        match msg {
            PanickyServiceMsg::Listener(ListenerEvent::Ready(_, Ok(addr))) => {
                self.addr = Some(addr)
            }
            PanickyServiceMsg::Listener(ListenerEvent::Ready(_, Err(e))) => {
                panic!("cannot listen: {e}")
            }
            PanickyServiceMsg::Listener(ListenerEvent::Accepted(_, conn, ..)) => {
                let session = ctx.spawn(PanickySession { conn: None });
                ctx.monitor(session.id(), 1);
                ctx.send(session, PanickyMsg::Connection(conn));
                conn.set_controller(ctx, session);
                self.live.push(session.id());
            }
            PanickyServiceMsg::Socket(event) => drop(event),
            PanickyServiceMsg::Addr(r) => r.resolve(ctx, self.addr),
            PanickyServiceMsg::Report(r) => {
                let report = (self.live.clone(), self.ended.clone());
                r.resolve(ctx, report)
            }
        }
    }

    fn link_exit(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _r: &ExitReason,
    ) -> LinkAction {
        if self.listener.is_some_and(|l| l.id() == peer) {
            LinkAction::Exit
        } else {
            LinkAction::Stay
        }
    }

    fn down(
        &mut self,
        _ctx: &mut Ctx<'_, Self>,
        peer: ActorId,
        _r: MonitorRef,
        reason: &ExitReason,
    ) {
        self.live.retain(|s| *s != peer);
        self.ended.push((peer, reason.clone()));
    }
}

struct PanickyRig {
    handle: ReactorHandle,
    service: Addr<PanickyService>,
    addr: SocketAddr,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl PanickyRig {
    fn start() -> PanickyRig {
        let (handle, join) = Reactor::start(Config::default(), |_| {}).expect("start reactor");
        let service = handle
            .spawn(|| PanickyService {
                listener: None,
                addr: None,
                live: Vec::new(),
                ended: Vec::new(),
            })
            .unwrap();
        let mut addr = None;
        wait_until("the test service to listen", WAIT, || {
            addr = handle
                .request_wait(service, PanickyServiceMsg::Addr, WAIT)
                .unwrap();
            addr.is_some()
        });
        PanickyRig {
            handle,
            service,
            addr: addr.unwrap(),
            join: Some(join),
        }
    }

    fn report(&self) -> Report {
        self.handle
            .request_wait(self.service, PanickyServiceMsg::Report, WAIT)
            .unwrap()
    }
}

impl Drop for PanickyRig {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let deadline = Instant::now() + WAIT;
            while !join.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if join.is_finished() && !std::thread::panicking() {
                join.join().unwrap().unwrap();
            }
        }
    }
}

#[test]
fn panic_in_a_session_handler_kills_only_that_session_and_its_connection() {
    let rig = PanickyRig::start();
    let mut before = Peer::connect(rig.addr);
    assert_eq!(before.ask("one"), "You said: one");
    let mut victim = Peer::connect(rig.addr);
    assert_eq!(victim.ask("two"), "You said: two");
    let (live, ended) = rig.report();
    assert_eq!(live.len(), 2);
    assert!(ended.is_empty());
    let victim_session = live[1];

    // The line before "boom" is answered; "boom" kills the session; the
    // socket, linked to it, closes: the client sees EOF.
    victim.write(b"last words\nboom\nnever answered\n");
    assert_eq!(victim.read_line(), "You said: last words");
    victim.expect_eof();

    wait_until("the service to see the session end", WAIT, || {
        !rig.report().1.is_empty()
    });
    let (live, ended) = rig.report();
    assert_eq!(
        ended,
        vec![(victim_session, ExitReason::Failed(PANIC_MESSAGE.into()))],
        "the service's monitor should see the panic as the exit reason"
    );
    assert_eq!(live.len(), 1);

    // The other session, and new ones, go on.
    assert_eq!(before.ask("three"), "You said: three");
    let mut after = Peer::connect(rig.addr);
    assert_eq!(after.ask("four"), "You said: four");
    assert!(rig.handle.is_alive(rig.service.id()));
}
