//! One client connection: connect, queue lines into an output buffer, write,
//! read and verify replies.
//!
//! A connection is a small state machine (`Connecting` -> `Open`, then removed
//! from the engine on close). It is registered once for `READABLE | WRITABLE`
//! (edge-triggered), so no re-registration syscalls are ever needed.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use super::verify::{LineWriter, ReplyVerifier, VerifyError};

/// Do not queue more lines while this many bytes are waiting to be written.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Compact the output buffer once this many bytes at its front were written.
const OUT_COMPACT: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Non-blocking connect in progress.
    Connecting,
    /// Established.
    Open,
}

/// Why a connection has to be closed.
#[derive(Debug)]
pub(crate) enum ConnError {
    Verify(VerifyError),
    Eof,
    Io(io::Error),
}

/// What one readable event produced.
pub(crate) struct ReadResult {
    /// Replies completed and verified.
    pub replies: u64,
    /// Reply bytes received (including those of a failing reply).
    pub bytes: u64,
    /// Set when the connection must be closed.
    pub err: Option<ConnError>,
}

/// A client connection.
pub(crate) struct Conn {
    pub stream: TcpStream,
    /// Token generation; events carrying another generation are stale.
    pub gen: u32,
    /// Connection id embedded in every line.
    pub id: u32,
    pub state: ConnState,
    /// When the connect was started.
    pub started: Instant,
    /// Lines this connection may still queue.
    pub budget: u64,
    /// Lines queued so far (= sequence number of the next line).
    pub queued: u64,
    pub verifier: ReplyVerifier,
    writer: LineWriter,
    out: Vec<u8>,
    out_pos: usize,
    /// When the oldest outstanding line was queued (exact for depth 1).
    pub line_at: Instant,
    /// At a fixed rate: the lane (share of the schedule) this connection
    /// serves.
    pub lane: usize,
    /// At a fixed rate: the lane's line number of this connection's line 0.
    pub lane_base: u64,
    /// At a fixed rate: when each outstanding line was queued, in
    /// nanoseconds since the run's origin, oldest first.
    pub sent_at: VecDeque<u64>,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        gen: u32,
        id: u32,
        line_bytes: usize,
        prefix: &Arc<[u8]>,
        now: Instant,
    ) -> Conn {
        Conn {
            stream,
            gen,
            id,
            state: ConnState::Connecting,
            started: now,
            budget: 0,
            queued: 0,
            verifier: ReplyVerifier::with_prefix(prefix, id, line_bytes),
            writer: LineWriter::new(id, line_bytes),
            out: Vec::new(),
            out_pos: 0,
            line_at: now,
            lane: 0,
            lane_base: 0,
            sent_at: VecDeque::new(),
        }
    }

    /// Puts `bytes` (a PROXY header) before anything else written.
    pub fn prepend(&mut self, bytes: &[u8]) {
        self.out
            .splice(self.out_pos..self.out_pos, bytes.iter().copied());
    }

    /// Whether one more line may be queued: fewer than `depth` outstanding
    /// and a small output backlog.
    #[inline]
    pub fn can_queue(&self, depth: u64) -> bool {
        self.inflight() < depth && self.out.len() - self.out_pos < OUT_HIGH_WATER
    }

    /// Queues the next line, noting when (`sent_ns`, for the uncorrected
    /// latency at a fixed rate).
    #[inline]
    pub fn queue_one(&mut self, sent_ns: u64) {
        if self.out_pos >= OUT_COMPACT {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.writer.append(self.queued, &mut self.out);
        self.queued += 1;
        self.sent_at.push_back(sent_ns);
    }

    /// Lines queued but not yet answered.
    #[inline]
    pub fn inflight(&self) -> u64 {
        self.queued - self.verifier.next_seq()
    }

    /// Whether the non-blocking connect has completed: `Ok(false)` while still
    /// in progress (spurious wake-up), `Err` if it failed.
    pub fn check_connected(&self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e)
                if e.kind() == io::ErrorKind::NotConnected
                    || e.raw_os_error() == Some(libc::ENOTCONN) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Queues new lines while fewer than `depth` are outstanding, the budget
    /// allows and the output backlog is small. Returns how many were queued.
    pub fn fill(&mut self, depth: u64, now: Instant) -> u64 {
        let mut n = 0;
        if self.budget == 0 || self.inflight() >= depth {
            return 0;
        }
        if self.out_pos >= OUT_COMPACT {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        while self.budget > 0
            && self.inflight() < depth
            && self.out.len() - self.out_pos < OUT_HIGH_WATER
        {
            if self.inflight() == 0 {
                self.line_at = now;
            }
            self.writer.append(self.queued, &mut self.out);
            self.queued += 1;
            self.budget -= 1;
            n += 1;
        }
        n
    }

    /// Bytes waiting to be written.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes as much of the output buffer as the socket takes. A short write
    /// means the send buffer is full: stop and wait for the WRITABLE edge.
    /// Returns the number of bytes written.
    pub fn flush(&mut self) -> io::Result<u64> {
        let mut total = 0u64;
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    total += n as u64;
                    if self.out_pos < self.out.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(total)
    }

    /// Reads until a short read / `WouldBlock`, verifying everything read.
    pub fn read_and_verify(&mut self, rbuf: &mut [u8]) -> ReadResult {
        let start_seq = self.verifier.next_seq();
        let mut bytes = 0u64;
        let err = loop {
            match self.stream.read(rbuf) {
                Ok(0) => break Some(ConnError::Eof),
                Ok(n) => {
                    bytes += n as u64;
                    if let Err(e) = self.verifier.feed(&rbuf[..n], self.queued) {
                        break Some(ConnError::Verify(e));
                    }
                    if n < rbuf.len() {
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(ConnError::Io(e)),
            }
        };
        ReadResult {
            replies: self.verifier.next_seq() - start_seq,
            bytes,
            err,
        }
    }
}
