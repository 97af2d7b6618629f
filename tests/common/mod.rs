//! Helpers shared by the integration tests: an in-process echo server on
//! 127.0.0.1 port 0, bounded raw TCP peers, and bounded waits.
//!
//! Every wait here has a deadline, so a misbehaving server fails a test
//! instead of hanging it.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use credit_actors::echo::{EchoConfig, EchoService, ServiceMsg};
use credit_actors::net::{ConnConfig, ListenSpec};
use credit_actors::{Addr, Config, Reactor, ReactorHandle};

/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The reply prefix of the echo server.
pub const PREFIX: &str = "You said: ";

/// An echo service on its own reactor thread, listening on 127.0.0.1 with a
/// port the kernel picked. Shut down and joined (bounded) on drop.
pub struct Server {
    pub handle: ReactorHandle,
    pub service: Addr<EchoService>,
    pub addr: SocketAddr,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// A server with default connection settings.
    pub fn start() -> Server {
        Server::start_with(ConnConfig::default(), None)
    }

    /// A server whose accepted connections use `conn`.
    pub fn start_with(conn: ConnConfig, max_conns: Option<usize>) -> Server {
        Server::start_config(EchoConfig {
            conn,
            max_conns,
            ..EchoConfig::default()
        })
    }

    /// A server with these settings, except that it always listens on
    /// 127.0.0.1 with a port the kernel picks.
    pub fn start_config(config: EchoConfig) -> Server {
        let config = EchoConfig {
            listen: ListenSpec::host_port("127.0.0.1", 0),
            ..config
        };
        let (handle, join) = Reactor::start(Config::default(), |_| {}).expect("start reactor");
        let service = handle
            .spawn(move || EchoService::new(config))
            .expect("spawn the echo service");
        let addr = handle
            .request_wait(service, ServiceMsg::WhenReady, WAIT)
            .expect("the echo service did not report its address");
        assert!(addr.ip().is_loopback(), "bound to {addr}");
        assert_ne!(addr.port(), 0, "no port picked");
        Server {
            handle,
            service,
            addr,
            join: Some(join),
        }
    }

    /// The service's count of live sessions.
    pub fn sessions(&self) -> usize {
        self.handle
            .request_wait(self.service, ServiceMsg::Sessions, WAIT)
            .expect("Sessions request failed")
    }

    /// Polls the session count until it equals `n`; panics at the deadline.
    pub fn wait_sessions(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.sessions();
            if now == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "session count stayed at {now}, expected {n}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A raw client connected to this server.
    pub fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let deadline = Instant::now() + WAIT;
            while !join.is_finished() {
                if Instant::now() >= deadline {
                    // Do not hang the test binary; a panic here while
                    // already panicking would abort, so just report.
                    eprintln!("reactor thread did not stop within {WAIT:?}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let result = join.join();
            if !std::thread::panicking() {
                result
                    .expect("reactor thread panicked")
                    .expect("reactor failed");
            }
        }
    }
}

/// Sets read and write timeouts of `WAIT` on a stream.
pub fn bound(stream: &TcpStream) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
}

/// A raw TCP peer with a buffered reader and bounded reads and writes.
pub struct Peer {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        Peer::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Peer {
        bound(&stream);
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().expect("clone stream");
        Peer {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Writes `text` and a LF.
    pub fn send_line(&mut self, text: &str) {
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        self.write(&buf);
    }

    /// Reads one LF-terminated line (LF removed). Panics on EOF or timeout.
    pub fn read_line(&mut self) -> String {
        match self.try_read_line() {
            Ok(Some(line)) => line,
            Ok(None) => panic!("EOF where a line was expected"),
            Err(e) => panic!("reading a line failed: {e}"),
        }
    }

    /// One line (LF removed), `None` at EOF.
    pub fn try_read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        assert_eq!(
            buf.pop(),
            Some(b'\n'),
            "line without LF before EOF: {buf:?}"
        );
        Ok(Some(String::from_utf8(buf).expect("reply is not UTF-8")))
    }

    /// Sends a line and returns the reply line.
    pub fn ask(&mut self, text: &str) -> String {
        self.send_line(text);
        self.read_line()
    }

    /// Asserts the peer sees EOF next (within the read timeout).
    pub fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected bytes before EOF: {rest:?}"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    pub fn shutdown_write(&self) {
        self.writer
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }
}

/// Polls `cond` until true; panics with `what` at the deadline.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Joins a thread, waiting at most `WAIT`.
pub fn join_bounded<T>(join: JoinHandle<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while !join.is_finished() {
        assert!(Instant::now() < deadline, "thread did not finish in time");
        std::thread::sleep(Duration::from_millis(2));
    }
    join.join().expect("thread panicked")
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}
