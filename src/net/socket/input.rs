//! The input side of a socket: readiness, reads, credit, and delivering
//! work units to the controller.
//!
//! A line's way in: the readiness event marks the socket readable
//! (`io_ready`), `pump` reads into the read buffer when it runs dry, the
//! framer cuts units off its front, and each unit of credit lets one unit
//! out to the controller as `SocketEvent::Data`.

use std::io;

use crate::actor::{Ctx, Recipient};
use crate::hooks::Bug;
use crate::net::framing::{Unit, UnitError};
use crate::net::local::NetLocal;
use crate::net::socket::memory::BeforeRead;
use crate::net::socket::{
    flags, CloseReason, Cmd, CreditOp, OverlongPolicy, Socket, SocketEvent, SocketMsg, State,
};
use crate::net::stream;

/// Credit that never runs out.
const INFINITE: u64 = u64::MAX;

/// The read buffer size a connection's units have needed lately, in one
/// byte (every connection holds it): a power of two (bits 0-5; 0 for
/// none), whether a unit longer than `read_size` was cut since the buffer
/// last went back to the pool (bit 6), and whether the previous such
/// stretch had none (bit 7). A buffer taken for a new burst asks the pool
/// for this much, so long lines do not grow a small buffer read after
/// read; two bursts in a row without a long unit forget it, so one long
/// line does not make every later buffer large.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ReadHint(u8);

impl ReadHint {
    const LOG2: u8 = 0x3f;
    const LONG: u8 = 0x40;
    const QUIET: u8 = 0x80;

    /// The size to ask for (0: none).
    fn size(self) -> usize {
        match self.0 & Self::LOG2 {
            0 => 0,
            k => 1usize.checked_shl(u32::from(k)).unwrap_or(usize::MAX),
        }
    }

    /// A unit needed a buffer of `need` bytes.
    fn grew(&mut self, need: usize) {
        let log2 = need
            .checked_next_power_of_two()
            .map_or(usize::BITS - 1, usize::trailing_zeros) as u8;
        self.0 = log2.min(Self::LOG2) | Self::LONG;
    }

    /// A unit longer than `read_size` was cut.
    #[inline(always)]
    fn saw_long(&mut self) {
        self.0 |= Self::LONG;
    }

    /// The buffer went back to the pool: a burst ended.
    #[inline(always)]
    pub(super) fn released(&mut self) {
        if self.0 == 0 {
            // No hint: the common case, one test.
        } else if self.0 & Self::LONG != 0 {
            self.0 &= !(Self::LONG | Self::QUIET);
        } else if self.0 & Self::QUIET != 0 {
            self.0 = 0;
        } else {
            self.0 |= Self::QUIET;
        }
    }
}

impl Socket {
    /// Applies a credit operation to the counter. True if that let input
    /// out that waits (credit went from zero to positive with units, or
    /// unread bytes, or the close, still to deliver): the socket must then
    /// run to deliver it. Shared by the message path and the direct one.
    #[inline]
    pub(super) fn apply_credit(&mut self, op: CreditOp) -> bool {
        let was = self.credit;
        self.credit = match op {
            CreditOp::Infinite => INFINITE,
            CreditOp::Zero => 0,
            CreditOp::Issue(_) if was == INFINITE => INFINITE,
            CreditOp::Issue(n) if n >= 0 => was.saturating_add(n as u64).min(INFINITE - 1),
            CreditOp::Issue(n) => was.saturating_sub(n.unsigned_abs()),
        };
        was == 0 && self.credit > 0 && self.input_waiting()
    }

    /// For credit issued in place: the next unit, cut as the socket's own
    /// run would cut it, if credit allows and one is buffered whole, with
    /// the controller to hand it to. Leaves everything else (reading,
    /// the end of input, an overlong unit that closes the socket) to the
    /// run.
    #[inline(always)]
    pub(super) fn unit_in_place(
        &mut self,
    ) -> Option<(Recipient<SocketEvent>, Result<Unit, UnitError>)> {
        if self.state != State::Open
            || self.credit == 0
            || self.has(flags::HELD)
            || self.config.overlong == OverlongPolicy::Close
        {
            return None;
        }
        let unit = self.framer.next_unit(&mut self.rbuf, false)?;
        if self.credit != INFINITE {
            self.credit -= 1;
        }
        if unit.as_ref().map_or(0, Unit::len) > self.config.read_size {
            self.read_hint.saw_long();
        }
        Some((self.controller, unit))
    }

    /// After units were cut in place: true if the socket must run to go
    /// on (credit left and input that may make more units). If its buffer
    /// ran dry, asks for its turn-end hook, which gives the buffer back to
    /// the pool; the hook also settles the socket's figure with the memory
    /// budget (cutting units shrank the read buffer's view).
    pub(super) fn after_units_in_place(&mut self) -> (bool, bool) {
        let release = !self.has(flags::FLUSH_PENDING)
            && ((self.rbuf.is_empty() && self.rbuf.capacity() > 0)
                || self.buffered() != self.charged as usize);
        if release {
            self.set(flags::FLUSH_PENDING);
        }
        let closing = self.has(flags::EOF) && !self.has(flags::CLOSED_SENT);
        (
            (self.credit > 0 || closing) && self.input_waiting(),
            release,
        )
    }

    /// Out of credit with input waiting that credit would let out.
    pub(super) fn starved(&self) -> bool {
        self.credit == 0 && self.input_waiting()
    }

    /// The credit counter now (`u64::MAX`: infinite).
    pub(super) fn credit_now(&self) -> u64 {
        self.credit
    }

    /// Input that a unit of credit would let out may be waiting: bytes in
    /// the buffer, bytes the kernel may hold, or the close not yet told.
    fn input_waiting(&self) -> bool {
        self.state == State::Open
            && (!self.rbuf.is_empty()
                || self.may_read
                || (self.has(flags::EOF) && !self.has(flags::CLOSED_SENT)))
    }

    /// Changes how input is cut. True if buffered input may now make units
    /// that credit lets out: the socket must then run to re-cut it.
    pub(super) fn set_mode_in_place(&mut self, mode: crate::net::framing::Mode) -> bool {
        self.framer.set_mode(mode);
        self.credit > 0 && self.input_waiting()
    }

    /// Applies a credit operation and delivers what it lets out.
    pub(super) fn credit(&mut self, ctx: &mut Ctx<'_, Self>, op: CreditOp) {
        let _ = self.apply_credit(op);
        if ctx.tracing() {
            ctx.trace(format_args!("C {} {} {op}", ctx.id(), self.credit));
        }
        self.pump(ctx);
    }

    /// Delivers buffered units while credit lasts, reading more when the
    /// buffer runs dry and the socket may hold data.
    pub(super) fn pump(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state != State::Open {
            if self.state == State::Proxy {
                self.pump_proxy(ctx);
            }
            return;
        }
        let me = ctx.me();
        let tracing = ctx.tracing();
        // A buffer taken from the pool for this pump that no byte has been
        // read into yet: nothing was cut from it, so if the read finds
        // nothing it goes straight back, for the next socket of this turn
        // (thousands of sockets opening in one turn share one buffer).
        let mut fresh = false;
        let mut overran = false;
        loop {
            let mut exhausted = false;
            while self.credit > 0 && !self.has(flags::HELD) {
                let eof = self.has(flags::EOF);
                match self.framer.next_unit(&mut self.rbuf, eof) {
                    Some(unit) => {
                        if self.credit != INFINITE {
                            self.credit -= 1;
                        }
                        self.units_out += 1;
                        if tracing {
                            ctx.trace_id('U', me.id(), None);
                        }
                        if let (Err(UnitError::TooLong { limit }), OverlongPolicy::Close) =
                            (&unit, self.config.overlong)
                        {
                            let what = format!("work unit longer than {limit} bytes");
                            self.count_units(ctx);
                            self.end_input(ctx, CloseReason::LimitExceeded(what.into()));
                            return;
                        }
                        if unit.as_ref().map_or(0, Unit::len) > self.config.read_size {
                            self.read_hint.saw_long();
                        }
                        self.emit(ctx, SocketEvent::Data(me, unit));
                        if crate::hooks::planted(Bug::CreditOverrun)
                            && self.credit == 0
                            && !self.rbuf.is_empty()
                            && !std::mem::replace(&mut overran, true)
                        {
                            // The planted bug: one more unit, past the credit.
                            self.credit = 1;
                        }
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if !exhausted {
                self.count_units(ctx);
                // Out of credit (or held) with input possibly waiting.
                if !self.rbuf.is_empty() || self.may_read {
                    metric! {
                        ctx.local::<NetLocal>().stats.credit_stalls += u64::from(!self.has(flags::HELD));
                    }
                    if tracing && self.credit == 0 {
                        ctx.trace_id('Z', me.id(), None);
                    }
                }
                break;
            }
            if self.has(flags::EOF) || !self.may_read {
                self.count_units(ctx);
                break;
            }
            // The memory budget's say, for a socket that holds memory (or
            // was parked): one test on the common path.
            if !self.out.is_empty() | !self.rbuf.is_empty() | self.has(flags::PARKED) {
                match self.before_read(ctx) {
                    BeforeRead::Read => {}
                    BeforeRead::Parked => {
                        self.count_units(ctx);
                        break;
                    }
                    BeforeRead::Failed => {
                        self.count_units(ctx);
                        return;
                    }
                }
            }
            if self.rbuf.capacity() == 0 {
                let want = self.config.read_size.max(self.read_hint.size());
                self.rbuf = ctx.local::<NetLocal>().take_read(want);
                fresh = true;
            }
            self.count_units(ctx);
            match self.read(ctx) {
                Ok(true) => fresh = false,
                Ok(false) => {
                    if fresh && self.rbuf.is_empty() {
                        let b = std::mem::take(&mut self.rbuf);
                        ctx.local::<NetLocal>().give_read(b);
                    }
                    break;
                }
                Err(e) => {
                    self.fail(ctx, CloseReason::from_io(&e));
                    return;
                }
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 && !self.has(flags::FLUSH_PENDING) {
            // An idle socket keeps no read buffer: it goes back to the pool
            // at the end of the turn, once the controller has handled the
            // units cut from it, so the next read can reuse it whole.
            self.set(flags::FLUSH_PENDING);
            ctx.at_turn_end();
        }
        if self.has(flags::EOF)
            && !self.has(flags::CLOSED_SENT)
            && (self.rbuf.is_empty() || self.framer.is_discarding())
        {
            self.tell_closed(ctx, CloseReason::Orderly);
        }
    }

    /// Ends input after an overlong unit under `OverlongPolicy::Close`:
    /// what is buffered after it is dropped, nothing more is read, and the
    /// controller is told `Closed(reason)` behind the units before it. As
    /// after the peer's EOF, the socket then closes, its output flushed,
    /// once the controller lets it go: the answers to the lines before the
    /// overlong one still go out. A controller that does not let it go
    /// within `linger` is not waited for: the socket closes itself then.
    fn end_input(&mut self, ctx: &mut Ctx<'_, Self>, reason: CloseReason) {
        self.rbuf.clear();
        self.may_read = false;
        self.set(flags::EOF);
        self.tell_closed(ctx, reason);
        let me = ctx.me();
        let t = ctx.send_after(me, SocketMsg(Cmd::Stop), self.config.linger);
        self.cold().close_timer = Some(t);
    }

    /// Adds the units delivered since the last call to the reactor's socket
    /// counters: once per batch, not per unit.
    #[inline]
    fn count_units(&mut self, _ctx: &mut Ctx<'_, Self>) {
        metric! {
            if self.units_out > 0 {
                _ctx.local::<NetLocal>().stats.units += u64::from(self.units_out);
            }
        }
        self.units_out = 0;
    }

    /// One read into the buffer's spare room. `Ok(true)` if bytes (or EOF)
    /// arrived and the framer should look again.
    pub(super) fn read(&mut self, ctx: &mut Ctx<'_, Self>) -> io::Result<bool> {
        if self.stream.is_none() {
            return Ok(false);
        }
        // The buffer grows with a partial unit (doubling), so a long line
        // takes a few reads, not one per `read_size` bytes, and it never
        // grows past what the unit being cut may still need. A read fills
        // all the room the buffer already has, though (a pooled buffer may
        // be large): that costs no memory, and brings what follows the
        // unit in the same call.
        let spare = self.rbuf.capacity() - self.rbuf.len();
        let read_size = self.config.read_size.max(self.rbuf.len()).max(1);
        let room = self.framer.room(&self.rbuf).min(read_size).max(spare);
        if room == 0 {
            return Ok(false);
        }
        if spare < room && !self.rbuf.try_reclaim(room) {
            // The buffer is shared with units still alive (or too small):
            // move the partial unit to a buffer from the pool rather than
            // to a fresh allocation, and leave this one to the pool, where
            // it becomes reusable once those units are dropped.
            let need = self.rbuf.len() + room;
            self.read_hint.grew(need);
            let net = ctx.local::<NetLocal>();
            let mut next = net.take_read_for(need);
            next.extend_from_slice(&self.rbuf);
            net.give_read(std::mem::replace(&mut self.rbuf, next));
        }
        let Some(stream) = self.stream.as_ref() else {
            return Ok(false);
        };
        metric! {
            ctx.local::<NetLocal>().stats.reads += 1;
        }
        let n = match stream::read_into(stream, &mut self.rbuf, room) {
            Ok(n) => n,
            Err(e) => {
                return match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        metric! {
                            ctx.local::<NetLocal>().stats.empty_reads += 1;
                        }
                        self.may_read = false;
                        Ok(false)
                    }
                    io::ErrorKind::Interrupted => Ok(true),
                    _ => Err(e),
                };
            }
        };
        if ctx.tracing() {
            ctx.trace_id('R', ctx.id(), Some(n as u64));
        }
        if n == 0 {
            self.set(flags::EOF);
            self.may_read = false;
            return Ok(true);
        }
        metric! {
            ctx.local::<NetLocal>().stats.bytes_in += n as u64;
        }
        self.input_at(ctx.now());
        if n < room && (!self.has(flags::READ_CLOSED) || crate::hooks::planted(Bug::LostFin)) {
            // A short read drained the socket: the next arrival raises a new
            // edge, so there is no need to spend a syscall on WouldBlock.
            // Not so once the peer's FIN was reported: the EOF behind these
            // bytes raises no new edge.
            self.may_read = false;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::ReadHint;

    #[test]
    fn the_read_hint_outlives_one_quiet_burst_but_not_two() {
        let mut h = ReadHint::default();
        assert_eq!(h.size(), 0);
        h.grew(65_537);
        assert_eq!(h.size(), 128 * 1024, "rounded up to a power of two");
        // A burst that grew (or cut a long unit) keeps it.
        h.released();
        assert_eq!(h.size(), 128 * 1024);
        // One burst of short units keeps it; a second forgets it.
        h.released();
        assert_eq!(h.size(), 128 * 1024);
        h.released();
        assert_eq!(h.size(), 0);
        // A long unit in between resets the count.
        h.grew(40_000);
        h.released();
        h.released();
        h.saw_long();
        h.released();
        h.released();
        assert_eq!(h.size(), 64 * 1024);
        h.released();
        assert_eq!(h.size(), 0);
    }
}
