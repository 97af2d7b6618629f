//! A connection's output queue.
//!
//! Small pieces (replies, lines) are copied into one contiguous tail buffer,
//! so a turn's worth of replies leaves in one `write`; large pieces are kept
//! as `Bytes` and written without a copy. A flush writes the queue with
//! vectored writes until it is empty or the kernel pushes back.
//!
//! Invariant: the bytes on the wire are the pieces in the order they were
//! queued. `chunks` always precede `tail`: queuing a large piece first
//! moves the tail into `chunks`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes, BytesMut};

use crate::actor::{Reply, RequestError};
use crate::reactor::Core;

/// Pieces at least this long are queued by reference, not copied.
const COPY_LIMIT: usize = 2048;

/// The least output buffer taken for a burst of replies. Small, because
/// thousands of connections may each hold one until the turn ends; it grows
/// as needed, and pooled buffers are reused whatever their size.
const TAIL_MIN: usize = 512;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// The outcome of a flush.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued reached the kernel.
    All,
    /// The kernel buffer is full; wait for writability.
    Blocked,
}

#[derive(Default)]
pub(crate) struct Output {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    /// Bytes queued and not yet written.
    queued: usize,
    /// Bytes written since the connection opened.
    written: u64,
    /// Send promises, each resolved once `written` reaches its offset.
    promises: VecDeque<(u64, Reply<()>)>,
}

impl Output {
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Gives the tail a pooled buffer before the first piece of a burst.
    pub(crate) fn reserve_tail(&mut self, core: &mut Core) {
        if self.tail.capacity() == 0 {
            self.tail = core.take_buffer(TAIL_MIN);
        }
    }

    /// The tail buffer, once everything is written, for the pool: an idle
    /// connection keeps no output buffer.
    pub(crate) fn take_idle_tail(&mut self) -> Option<BytesMut> {
        (self.queued == 0 && self.tail.capacity() > 0).then(|| std::mem::take(&mut self.tail))
    }

    /// Queues `head`, `body` and `tail` in order: one capacity check and
    /// plain copies when all are small, as a reply line is.
    pub(crate) fn push3(&mut self, head: &Bytes, body: &Bytes, tail: &[u8]) {
        let total = head.len() + body.len() + tail.len();
        if head.len() < COPY_LIMIT && body.len() < COPY_LIMIT {
            self.tail.reserve(total);
            self.tail.extend_from_slice(head);
            self.tail.extend_from_slice(body);
            self.tail.extend_from_slice(tail);
            self.queued += total;
        } else {
            self.push(head);
            self.push(body);
            self.push(&Bytes::copy_from_slice(tail));
        }
    }

    pub(crate) fn push(&mut self, piece: &Bytes) {
        if piece.is_empty() {
            return;
        }
        if piece.len() >= COPY_LIMIT {
            if !self.tail.is_empty() {
                self.chunks.push_back(self.tail.split().freeze());
            }
            self.chunks.push_back(piece.clone());
        } else {
            self.tail.extend_from_slice(piece);
        }
        self.queued += piece.len();
    }

    /// Resolves `promise` once everything queued so far is written.
    pub(crate) fn promise(&mut self, core: &mut Core, promise: Reply<()>) {
        let end = self.written + self.queued as u64;
        if self.queued == 0 {
            promise.answer(core, Ok(()));
        } else {
            self.promises.push_back((end, promise));
        }
    }

    /// Writes as much as the kernel takes.
    pub(crate) fn flush<W: Write>(&mut self, w: &mut W, core: &mut Core) -> io::Result<Flushed> {
        let result = self.write_all(w);
        while self
            .promises
            .front()
            .is_some_and(|(end, _)| *end <= self.written)
        {
            if let Some((_, p)) = self.promises.pop_front() {
                p.answer(core, Ok(()));
            }
        }
        result
    }

    fn write_all<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        while self.queued > 0 {
            let n = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for c in self.chunks.iter().take(MAX_IOVECS - 1) {
                    slices[count] = IoSlice::new(c);
                    count += 1;
                }
                if (count < MAX_IOVECS - 1 || self.chunks.len() == count) && !self.tail.is_empty() {
                    slices[count] = IoSlice::new(&self.tail);
                    count += 1;
                }
                let r = if count == 1 {
                    w.write(&slices[0])
                } else {
                    w.write_vectored(&slices[..count])
                };
                match r {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.consume(n);
        }
        Ok(Flushed::All)
    }

    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        self.written += n as u64;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Rejects every pending promise (the connection closed first) and drops
    /// the queue.
    pub(crate) fn fail(&mut self, core: &mut Core, err: &RequestError) {
        for (_, p) in self.promises.drain(..) {
            p.answer(core, Err(err.clone()));
        }
        self.chunks.clear();
        self.tail = BytesMut::new();
        self.queued = 0;
    }
}
