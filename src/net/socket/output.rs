//! The output side of a socket: the queue of bytes to write, and writing
//! it.
//!
//! Small pieces (replies, lines) are copied into one contiguous tail buffer,
//! so a turn's worth of replies leaves in one `write`; large pieces are kept
//! as `Bytes` and written without a copy. A flush writes the queue with
//! vectored writes until it is empty or the kernel pushes back, at the end
//! of the reactor turn.
//!
//! Invariants:
//! - the bytes on the wire are the pieces in the order they were queued:
//!   `chunks` always precede `tail`, and queuing a large piece first moves
//!   the tail into `chunks`;
//! - large pieces and promises live in a box that a socket sending only
//!   small pieces never allocates, so an idle connection stays small;
//! - a send promise resolves once every byte queued before it reached the
//!   kernel, never earlier.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes, BytesMut};

use crate::actor::{Actor, Addr, Ctx, Reply, RequestError};
use crate::net::local::NetLocal;
use crate::net::socket::{flags, memory, CloseReason, Cmd, Socket, SocketMsg, State};

/// Pieces at least this long are queued by reference, not copied.
const COPY_LIMIT: usize = 2048;

/// The least output buffer taken for a burst of replies. Small, because
/// thousands of sockets may each hold one until the turn ends; it grows as
/// needed, and pooled buffers are reused whatever their size.
pub(crate) const TAIL_MIN: usize = 512;

/// Output past which a full tail buffer is sealed rather than grown (see
/// [`Output::seal_tail`]).
const SEAL_AT: usize = 64 * 1024;

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// The outcome of a write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued reached the kernel.
    All,
    /// The kernel buffer is full; wait for writability.
    Blocked,
}

/// What queuing a send asks of the reactor.
#[derive(Debug, Default)]
#[must_use]
pub(super) struct Queued {
    /// Flush at the end of this turn (the first send since the last flush).
    turn_end: bool,
    /// Output just passed the high-water mark: count it.
    high_water: bool,
    /// Arm the write check to fire after this long.
    write_check: Option<std::time::Duration>,
    /// The queue's memory grew: settle the socket with the memory budget
    /// now rather than at the turn's end.
    grew: bool,
}

/// A socket's queue of bytes to write.
#[derive(Default)]
pub(crate) struct Output {
    tail: BytesMut,
    /// Bytes queued and not yet written.
    queued: usize,
    /// Bytes written since the socket opened.
    written: u64,
    /// Large pieces and promises, while there are any.
    rare: Option<Box<Rare>>,
}

/// What only a socket sending large pieces or keeping promises needs.
#[derive(Default)]
struct Rare {
    /// Large pieces, by reference; all queued before `tail`.
    chunks: VecDeque<Bytes>,
    /// For each chunk, whether it is shared with other sockets (a
    /// broadcast's buffer, queued with [`Output::push_shared`]).
    shared: VecDeque<bool>,
    /// Bytes of shared chunks still to write: not charged to this
    /// socket's memory (see `net::budget`).
    shared_bytes: usize,
    /// Send promises, each resolved once `written` reaches its offset.
    promises: VecDeque<(u64, Reply<()>)>,
}

/// Copies `src` to `dst`. Up to 32 bytes without a call to `memcpy` (whose
/// set-up costs more than a reply line's copy): two overlapping loads and
/// stores of the largest power of two that fits, the usual trick.
///
/// # Safety
///
/// `dst` must be valid for `src.len()` bytes of writes and must not overlap
/// `src`.
#[inline(always)]
unsafe fn copy_small(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: (every arm) each read is within `src` (offsets from 0 and up
    // to `n`), each write within `dst[..n]`, as the caller guarantees;
    // unaligned reads and writes are used throughout.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                dst.write(*s);
                dst.add(n / 2).write(*s.add(n / 2));
                dst.add(n - 1).write(*s.add(n - 1));
            }
            4..=7 => {
                let a = s.cast::<u32>().read_unaligned();
                let b = s.add(n - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(a);
                dst.add(n - 4).cast::<u32>().write_unaligned(b);
            }
            8..=16 => {
                let a = s.cast::<u64>().read_unaligned();
                let b = s.add(n - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(a);
                dst.add(n - 8).cast::<u64>().write_unaligned(b);
            }
            17..=32 => {
                let a = s.cast::<u128>().read_unaligned();
                let b = s.add(n - 16).cast::<u128>().read_unaligned();
                dst.cast::<u128>().write_unaligned(a);
                dst.add(n - 16).cast::<u128>().write_unaligned(b);
            }
            _ => std::ptr::copy_nonoverlapping(s, dst, n),
        }
    }
}

impl Output {
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Bytes held: those queued and not yet written (less the shared
    /// pieces), and the spare room of the tail buffer.
    #[inline]
    pub(crate) fn held(&self) -> usize {
        let shared = self.rare.as_ref().map_or(0, |r| r.shared_bytes);
        self.queued - shared + (self.tail.capacity() - self.tail.len())
    }

    /// Queues `piece` by reference as shared with other sockets (a
    /// broadcast): it is written like any other piece, counts toward the
    /// backlog and the high-water mark, but not toward this socket's share
    /// of the memory budget, since one buffer serves them all.
    pub(crate) fn push_shared(&mut self, piece: &Bytes) {
        if piece.is_empty() {
            return;
        }
        let front = (!self.tail.is_empty()).then(|| self.tail.split().freeze());
        let rare = self.rare();
        if let Some(f) = front {
            rare.chunks.push_back(f);
            rare.shared.push_back(false);
        }
        rare.chunks.push_back(piece.clone());
        rare.shared.push_back(true);
        rare.shared_bytes += piece.len();
        self.queued += piece.len();
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// True while the tail has no buffer (before the first piece of a
    /// burst): give it one from the pool with [`Output::set_tail`].
    pub(crate) fn needs_tail(&self) -> bool {
        self.tail.capacity() == 0
    }

    pub(crate) fn set_tail(&mut self, buf: BytesMut) {
        debug_assert!(self.tail.is_empty());
        self.tail = buf;
    }

    /// The tail buffer, once everything is written, for the pool: an idle
    /// socket keeps no output buffer.
    pub(crate) fn take_idle_tail(&mut self) -> Option<BytesMut> {
        (self.queued == 0 && self.tail.capacity() > 0).then(|| std::mem::take(&mut self.tail))
    }

    /// Frees the large-piece box if it holds nothing (a socket at rest).
    /// Kept between turns otherwise: a socket sending large pieces reuses
    /// it.
    pub(crate) fn trim(&mut self) {
        if self
            .rare
            .as_ref()
            .is_some_and(|r| r.chunks.is_empty() && r.promises.is_empty())
        {
            self.rare = None;
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Queues `head`, `body` and `tail` in order: one capacity check and
    /// plain copies when all are small, as a reply line is. True if the
    /// queue's memory grew (a larger or another buffer, or a piece kept by
    /// reference), not only its use of the room it had.
    #[inline]
    pub(crate) fn push3(&mut self, head: &Bytes, body: &Bytes, tail: &Bytes) -> bool {
        if head.len() < COPY_LIMIT && body.len() < COPY_LIMIT {
            self.push_small(head, body, tail)
        } else if self.tail.is_empty() {
            // Nothing small waiting: all three pieces by reference, so
            // the tail buffer is not split off (which allocates) and the
            // pieces are not copied.
            let rare = self.rare();
            for piece in [head, body, tail] {
                if !piece.is_empty() {
                    rare.chunks.push_back(piece.clone());
                    rare.shared.push_back(false);
                }
            }
            self.queued += head.len() + body.len() + tail.len();
            true
        } else {
            self.push(head);
            self.push(body);
            self.push(tail);
            true
        }
    }

    /// Queues a copy of `body` then `tail`; `body` must be shorter than
    /// the copy limit ([`Output::copies`]).
    #[inline]
    pub(crate) fn push_copied(&mut self, body: &[u8], tail: &[u8]) -> bool {
        debug_assert!(Output::copies(body));
        self.push_small(&[], body, tail)
    }

    /// Moves a full tail buffer to the queue of pieces and starts a new
    /// one: a backlog grows as a chain of buffers instead of one buffer
    /// that growing (or reclaiming the room its written front left) would
    /// copy over and over.
    #[cold]
    fn seal_tail(&mut self) {
        let full = std::mem::take(&mut self.tail).freeze();
        let rare = self.rare();
        rare.chunks.push_back(full);
        rare.shared.push_back(false);
        self.tail = BytesMut::with_capacity(SEAL_AT);
    }

    /// True if a piece this long is copied into the output buffer (rather
    /// than queued by reference).
    #[inline(always)]
    pub(crate) fn copies(piece: &[u8]) -> bool {
        piece.len() < COPY_LIMIT
    }

    /// Copies three small pieces into the tail buffer; true if it needed
    /// more room.
    #[inline(always)]
    fn push_small(&mut self, head: &[u8], body: &[u8], tail: &[u8]) -> bool {
        let total = head.len() + body.len() + tail.len();
        let grew = self.tail.capacity() - self.tail.len() < total;
        {
            if grew && self.tail.len() >= SEAL_AT {
                self.seal_tail();
            }
            self.tail.reserve(total);
            let len = self.tail.len();
            // One capacity check for the three pieces, then plain copies
            // into the spare room (three `extend_from_slice` calls checked
            // and grew three times: about 30 instructions a reply).
            // SAFETY: `reserve(total)` made room for `total` bytes past
            // `len`; the three copies write exactly `head.len() +
            // body.len() + tail.len() == total` bytes there, from slices
            // that cannot overlap the buffer's spare room (they are other
            // allocations, or initialised parts of this one), and only then
            // is the length moved over them.
            unsafe {
                let dst = self.tail.as_mut_ptr().add(len);
                copy_small(head, dst);
                let dst = dst.add(head.len());
                copy_small(body, dst);
                let dst = dst.add(body.len());
                copy_small(tail, dst);
                self.tail.set_len(len + total);
            }
            self.queued += total;
        }
        grew
    }

    pub(crate) fn push(&mut self, piece: &Bytes) {
        if piece.is_empty() {
            return;
        }
        if piece.len() >= COPY_LIMIT {
            let front = (!self.tail.is_empty()).then(|| self.tail.split().freeze());
            let rare = self.rare();
            if let Some(f) = front {
                rare.chunks.push_back(f);
                rare.shared.push_back(false);
            }
            rare.chunks.push_back(piece.clone());
            rare.shared.push_back(false);
        } else {
            self.tail.extend_from_slice(piece);
        }
        self.queued += piece.len();
    }

    /// Queues `promise` to be resolved once everything queued so far is
    /// written; gives it back if nothing is queued (resolve it now).
    pub(crate) fn promise(&mut self, promise: Reply<()>) -> Option<Reply<()>> {
        if self.queued == 0 {
            return Some(promise);
        }
        let end = self.written + self.queued as u64;
        self.rare().promises.push_back((end, promise));
        None
    }

    /// The next promise whose bytes have all been written.
    pub(crate) fn pop_kept(&mut self) -> Option<Reply<()>> {
        let promises = &mut self.rare.as_mut()?.promises;
        if promises.front()?.0 <= self.written {
            promises.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }

    /// Writes as much as `w` takes.
    pub(crate) fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        while self.queued > 0 {
            let r = match self.rare.as_deref() {
                Some(rare) if !rare.chunks.is_empty() => {
                    let chunks = &rare.chunks;
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    let mut count = 0;
                    for c in chunks.iter().take(MAX_IOVECS - 1) {
                        slices[count] = IoSlice::new(c);
                        count += 1;
                    }
                    if chunks.len() == count && !self.tail.is_empty() {
                        slices[count] = IoSlice::new(&self.tail);
                        count += 1;
                    }
                    if count == 1 {
                        w.write(&slices[0])
                    } else {
                        w.write_vectored(&slices[..count])
                    }
                }
                // The usual case, replies only: one plain write.
                _ => w.write(&self.tail),
            };
            let n = match r {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(n);
        }
        Ok(Flushed::All)
    }

    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        self.written += n as u64;
        while n > 0 {
            match self.rare.as_deref_mut() {
                Some(r) if !r.chunks.is_empty() => {
                    let shared = r.shared.front() == Some(&true);
                    let len = r.chunks[0].len();
                    let take = len.min(n);
                    if shared {
                        r.shared_bytes -= take;
                    }
                    if take == len {
                        r.chunks.pop_front();
                        r.shared.pop_front();
                    } else {
                        r.chunks[0].advance(take);
                    }
                    n -= take;
                }
                _ => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Drops the queue and hands back every pending promise (the socket
    /// closed first: reject them).
    pub(crate) fn fail(&mut self) -> VecDeque<(u64, Reply<()>)> {
        self.tail = BytesMut::new();
        self.queued = 0;
        self.rare.take().map(|r| r.promises).unwrap_or_default()
    }
}

impl Socket {
    /// Rejects every pending send promise with `err` and drops the queue.
    pub(super) fn fail_output(&mut self, ctx: &mut Ctx<'_, Self>, err: &RequestError) {
        for (_, p) in self.out.fail() {
            p.reject(ctx, err.clone());
        }
    }

    /// Queues a send (`head`, `body`, then the line terminator if `line`)
    /// and says what the reactor must do about it; the tail buffer must be
    /// in place ([`Output::needs_tail`]). Shared by the message path and
    /// the direct one (`Core::direct`), so both behave the same.
    #[inline(always)]
    pub(super) fn queue_send(
        &mut self,
        head: &Bytes,
        body: &Bytes,
        line: bool,
        now: std::time::Instant,
    ) -> Queued {
        static NONE: Bytes = Bytes::new();
        let terminator = if line {
            super::terminator_of(&self.cold, &self.config)
        } else {
            &NONE
        };
        let grew = self.out.push3(head, body, terminator);
        let mut q = self.queued(now);
        q.grew = grew;
        q
    }

    /// Queues a piece shared with other sockets (see
    /// [`Output::push_shared`]).
    pub(super) fn queue_shared(&mut self, piece: &Bytes, now: std::time::Instant) -> Queued {
        self.out.push_shared(piece);
        self.queued(now)
    }

    /// [`Socket::queue_send`] for a copy of a short `body` (see
    /// [`Output::copies`]).
    #[inline(always)]
    pub(super) fn queue_copied(
        &mut self,
        body: &[u8],
        line: bool,
        now: std::time::Instant,
    ) -> Queued {
        let terminator: &[u8] = if line {
            super::terminator_of(&self.cold, &self.config)
        } else {
            &[]
        };
        let grew = self.out.push_copied(body, terminator);
        let mut q = self.queued(now);
        q.grew = grew;
        q
    }

    /// What the reactor must do after something was queued.
    #[inline(always)]
    fn queued(&mut self, now: std::time::Instant) -> Queued {
        let mut q = Queued::default();
        if self.out.queued() > 0 && !self.has(flags::FLUSH_PENDING) {
            self.set(flags::FLUSH_PENDING);
            q.turn_end = true;
        }
        if self.out.queued() > self.config.high_water && !self.has(flags::HELD) {
            self.set(flags::HELD);
            q.high_water = true;
        }
        q.write_check = self.write_check_due(now);
        q
    }

    /// Does for the reactor what queuing a send implied: the turn-end
    /// flush, the high-water counter, the write check. `ctx` is any
    /// actor's: the socket's own, or the controller's on the direct path.
    #[inline(always)]
    pub(super) fn apply_queued<A: Actor>(ctx: &mut Ctx<'_, A>, sock: Addr<Socket>, q: Queued) {
        if ctx.tracing() {
            ctx.trace_id('O', sock.id(), None);
        }
        if q.turn_end {
            ctx.core().at_turn_end(sock.id());
        }
        if q.high_water {
            metric! {
                ctx.local::<NetLocal>().stats.high_water += 1;
            }
        }
        if let Some(t) = q.write_check {
            ctx.send_after(sock, SocketMsg(Cmd::WriteCheck), t);
        }
        if q.grew {
            // From another actor's run (a send in place); the socket's own
            // run settles itself.
            memory::settle_in_place(ctx, sock);
        }
    }

    /// Gives the output queue a tail buffer from the pool if it has none.
    pub(super) fn ensure_tail(&mut self, net: &mut NetLocal) {
        if self.out.needs_tail() {
            self.out.set_tail(net.take_tail());
        }
    }

    /// True before the first send of a burst (see [`Socket::set_tail`]).
    pub(super) fn out_needs_tail(&self) -> bool {
        self.out.needs_tail()
    }

    /// Gives the output queue its tail buffer.
    pub(super) fn set_tail(&mut self, buf: BytesMut) {
        if self.out.needs_tail() {
            self.out.set_tail(buf);
        }
    }

    pub(super) fn push_send(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        head: &Bytes,
        body: &Bytes,
        line: bool,
    ) {
        self.ensure_tail(ctx.local::<NetLocal>());
        let q = self.queue_send(head, body, line, ctx.now());
        let grew = q.grew;
        let me = ctx.me();
        Socket::apply_queued(ctx, me, q);
        if grew {
            self.settle(ctx);
        }
    }

    pub(super) fn promise(&mut self, ctx: &mut Ctx<'_, Self>, reply: Reply<()>) {
        if let Some(now) = self.out.promise(reply) {
            now.resolve(ctx, ());
        }
    }

    /// Writes what is queued, resolves the promises it kept, and resumes
    /// input once output drained below half the high-water mark.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Connecting || self.out.is_empty() {
            return;
        }
        if !self.write_out(ctx) {
            return;
        }
        if self
            .config
            .max_backlog
            .is_some_and(|max| self.out.queued() > max)
        {
            self.fail(ctx, CloseReason::Backlog);
            return;
        }
        if self.has(flags::HELD) && self.out.queued() <= self.config.high_water / 2 {
            self.clear(flags::HELD);
            self.pump(ctx);
        } else if self.has(flags::PARKED) && self.out.is_empty() {
            // Parked for memory, and the peer has caught up: read if the
            // budget allows it now.
            self.pump(ctx);
        }
        if self.state == State::Draining && self.out.is_empty() {
            self.finish(ctx);
        } else if self.cold.is_some() {
            self.shutdown_write_if_flushed();
        }
    }

    /// Writes what the kernel takes of the queue, resolves the promises it
    /// kept, and gives an emptied buffer back. False if the connection
    /// failed (and is closing).
    #[inline]
    pub(super) fn write_out(&mut self, ctx: &mut Ctx<'_, Self>) -> bool {
        let Some(stream) = self.stream.as_ref() else {
            return true;
        };
        let before = self.out.written();
        let result = self.out.write_to(&mut crate::net::stream::writer(stream));
        while let Some(p) = self.out.pop_kept() {
            p.resolve(ctx, ());
        }
        let progressed = self.out.written() - before;
        if self.out.is_empty() {
            self.clear(flags::STALLED);
        } else {
            self.set(flags::STALLED);
        }
        metric! {
            let stats = &mut ctx.local::<NetLocal>().stats;
            stats.flushes += 1;
            stats.bytes_out += progressed;
        }
        if progressed > 0 {
            if ctx.tracing() {
                ctx.trace_id('W', ctx.id(), Some(progressed));
            }
            if let Some(c) = self.cold.as_deref_mut() {
                c.last_output_progress = Some(ctx.now());
            }
        }
        if let Some(tail) = self.out.take_idle_tail() {
            ctx.local::<NetLocal>().give_tail(tail);
        }
        if let Err(e) = result {
            self.fail(ctx, CloseReason::from_io(&e));
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `per_call` bytes a call, and
    /// `WouldBlock` once `budget` is spent.
    struct Pipe {
        got: Vec<u8>,
        per_call: usize,
        budget: usize,
        calls: usize,
    }

    impl Pipe {
        fn new(per_call: usize, budget: usize) -> Pipe {
            Pipe {
                got: Vec::new(),
                per_call,
                budget,
                calls: 0,
            }
        }
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut room = self.per_call.min(self.budget);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(room);
                self.got.extend_from_slice(&b[..take]);
                room -= take;
                n += take;
                if room == 0 {
                    break;
                }
            }
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn out() -> Output {
        let mut o = Output::default();
        o.set_tail(BytesMut::with_capacity(TAIL_MIN));
        o
    }

    #[test]
    fn small_copies_of_every_length_are_exact() {
        for n in 0..=40usize {
            let src: Vec<u8> = (0..n as u8)
                .map(|b| b.wrapping_mul(7).wrapping_add(1))
                .collect();
            let mut dst = vec![0xeeu8; n + 2];
            // SAFETY: `dst` has room for `n` bytes after offset 1, and is
            // another allocation than `src`.
            unsafe { copy_small(&src, dst.as_mut_ptr().add(1)) };
            assert_eq!(&dst[1..=n], &src[..], "length {n}");
            assert_eq!(
                (dst[0], dst[n + 1]),
                (0xee, 0xee),
                "length {n} wrote outside"
            );
        }
    }

    #[test]
    fn small_and_large_pieces_reach_the_wire_in_queue_order_in_one_write() {
        let mut o = out();
        let big = Bytes::from(vec![b'x'; COPY_LIMIT]);
        o.push3(
            &Bytes::from_static(b"You said: "),
            &Bytes::from_static(b"a"),
            &Bytes::from_static(b"\n"),
        );
        o.push(&big);
        o.push(&Bytes::from_static(b"tail"));
        assert_eq!(o.queued(), 12 + COPY_LIMIT + 4);
        let mut w = Pipe::new(usize::MAX, usize::MAX);
        assert_eq!(o.write_to(&mut w).unwrap(), Flushed::All);
        let mut want = b"You said: a\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"tail");
        assert_eq!(w.got, want);
        assert_eq!(w.calls, 1, "one vectored write for the whole queue");
        assert!(o.is_empty());
        assert_eq!(o.written(), want.len() as u64);
    }

    #[test]
    fn a_large_reply_is_queued_by_reference_behind_what_waits() {
        let mut o = out();
        let big = Bytes::from(vec![b'y'; COPY_LIMIT * 2]);
        let nl = Bytes::from_static(b"\n");
        // Nothing waiting: head, body and terminator by reference.
        o.push3(&Bytes::from_static(b"> "), &big, &nl);
        // Small pieces waiting first: they stay ahead of the large reply.
        o.push(&Bytes::from_static(b"small"));
        o.push3(&Bytes::from_static(b"> "), &big, &nl);
        o.push(&Bytes::from_static(b"end"));
        let mut w = Pipe::new(usize::MAX, usize::MAX);
        assert_eq!(o.write_to(&mut w).unwrap(), Flushed::All);
        let mut want = b"> ".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\nsmall> ");
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\nend");
        assert_eq!(w.got, want);
        assert_eq!(o.written(), want.len() as u64);
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut o = out();
        let big = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<_>>());
        o.push(&Bytes::from_static(b"head-"));
        o.push(&big);
        o.push(&Bytes::from_static(b"-end"));
        let mut w = Pipe::new(7, usize::MAX);
        assert_eq!(o.write_to(&mut w).unwrap(), Flushed::All);
        let mut want = b"head-".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"-end");
        assert_eq!(w.got, want);
    }

    #[test]
    fn a_full_kernel_buffer_blocks_and_keeps_the_rest_queued() {
        let mut o = out();
        o.push(&Bytes::from_static(b"0123456789"));
        let mut w = Pipe::new(usize::MAX, 4);
        assert_eq!(o.write_to(&mut w).unwrap(), Flushed::Blocked);
        assert_eq!(o.queued(), 6);
        assert_eq!(o.written(), 4);
        assert!(o.take_idle_tail().is_none(), "the tail still holds bytes");
        let mut w2 = Pipe::new(usize::MAX, usize::MAX);
        assert_eq!(o.write_to(&mut w2).unwrap(), Flushed::All);
        assert_eq!(w2.got, b"456789");
        assert!(
            o.take_idle_tail().is_some(),
            "an empty queue gives its buffer back"
        );
        assert!(o.needs_tail());
    }

    #[test]
    fn promises_resolve_only_once_their_bytes_are_written() {
        let mut o = out();
        let (first, _p1) = Reply::<()>::to_thread();
        let (second, _p2) = Reply::<()>::to_thread();
        let (now, _p3) = Reply::<()>::to_thread();
        assert!(o.promise(now).is_some(), "nothing queued: resolve at once");
        o.push(&Bytes::from_static(b"abc"));
        assert!(o.promise(first).is_none());
        o.push(&Bytes::from_static(b"def"));
        assert!(o.promise(second).is_none());
        let mut w = Pipe::new(usize::MAX, 4);
        let _ = o.write_to(&mut w).unwrap();
        assert!(o.pop_kept().is_some(), "the first three bytes are out");
        assert!(
            o.pop_kept().is_none(),
            "two bytes of the second still queued"
        );
        let mut w = Pipe::new(usize::MAX, usize::MAX);
        let _ = o.write_to(&mut w).unwrap();
        assert!(o.pop_kept().is_some());
        assert!(o.pop_kept().is_none());
    }

    #[test]
    fn failing_drops_the_queue_and_hands_back_every_pending_promise() {
        let mut o = out();
        o.push(&Bytes::from_static(b"abc"));
        let (p, _wait) = Reply::<()>::to_thread();
        assert!(o.promise(p).is_none());
        assert_eq!(o.fail().len(), 1);
        assert!(o.is_empty());
        assert_eq!(o.fail().len(), 0);
    }
}
