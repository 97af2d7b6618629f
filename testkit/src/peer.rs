//! A raw TCP client for tests.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use crate::WAIT;

/// Sets read and write timeouts of [`WAIT`] on a stream.
pub fn bound(stream: &TcpStream) {
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
}

/// A raw TCP peer with a buffered reader and bounded reads and writes.
#[derive(Debug)]
pub struct Peer {
    /// The reading half, buffered.
    pub reader: BufReader<TcpStream>,
    /// The writing half.
    pub writer: TcpStream,
}

impl Peer {
    /// Connects to `addr` (bounded).
    pub fn connect(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        Peer::from_stream(stream)
    }

    /// A peer over a connected stream.
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

    /// Shuts down the writing half (the server sees EOF).
    pub fn shutdown_write(&self) {
        self.writer
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }
}
