//! A socket's part in the buffer memory budget (see `net::budget`): its
//! charge, settling it, parking for memory, and closing for overload.

use bytes::BytesMut;

use crate::actor::{Actor, Addr, Ctx};
use crate::net::budget::Act;
use crate::net::local::NetLocal;
use crate::net::socket::flags::{LISTED, PARKED, STALLED};
use crate::net::socket::{flags, CloseReason, Cmd, Socket, SocketMsg};

/// What the budget says before a read.
pub(super) enum BeforeRead {
    /// Read.
    Read,
    /// The socket parked: stop reading.
    Parked,
    /// The connection failed writing: it is closing.
    Failed,
}

/// Spare read buffer room past which a partial unit moves to a buffer of
/// its own size when memory is short.
const PARTIAL_SPARE_MAX: usize = 1024;

/// Output made within one turn past which a socket writes it before
/// reading more.
const EARLY_WRITE: usize = 64 * 1024;

impl Socket {
    /// The buffer bytes this socket holds: its read buffer's capacity, its
    /// unsent output and its output buffer's spare room (capped at 4 GiB).
    pub(super) fn buffered(&self) -> usize {
        (self.rbuf.capacity() + self.out.held()).min(u32::MAX as usize)
    }

    /// True if the budget has an out-of-date figure for this socket: its
    /// charge, or whether it holds memory without progress.
    #[inline(always)]
    fn unsettled(&self) -> (bool, usize, bool) {
        let now = self.buffered();
        // A holder is one whose last write left output behind (its peer is
        // not keeping up), or one parked with a long partial unit. Output
        // made in this turn and not yet written does not count: every
        // reader has some.
        let holding = (self.has(STALLED) || (self.has(PARKED) && self.out.is_empty())) && now > 0;
        (
            now != self.charged as usize || holding != self.has(LISTED),
            now,
            holding,
        )
    }

    /// Reports a change of the socket's charge to the budget, and of
    /// whether it holds memory without progress. The common case (no
    /// change) is a few loads and compares.
    #[inline]
    pub(super) fn settle(&mut self, ctx: &mut Ctx<'_, Self>) {
        // At rest with nothing reported (the common end of a turn: both
        // buffers went back): nothing to compute.
        if (self.charged == 0)
            & (self.rbuf.capacity() == 0)
            & self.out.needs_tail()
            & (self.flags & (PARKED | LISTED | STALLED) == 0)
            && self.out.is_empty()
        {
            return;
        }
        let (changed, now, holding) = self.unsettled();
        if changed {
            self.settle_change(ctx, now, holding);
        }
    }

    /// After a run: a socket whose figure changed settles at the end of
    /// the turn (its turn-end hook), so that buffers taken and given back
    /// within one turn (a read buffer, a reply's output buffer) cost the
    /// budget nothing.
    #[inline]
    pub(super) fn settle_at_turn_end(&mut self, ctx: &mut Ctx<'_, Self>) {
        if !self.has(flags::FLUSH_PENDING) && self.unsettled().0 {
            self.set(flags::FLUSH_PENDING);
            ctx.at_turn_end();
        }
    }

    #[inline(never)]
    fn settle_change(&mut self, ctx: &mut Ctx<'_, Self>, now: usize, holding: bool) {
        let me = ctx.me();
        let change = self.record(now, holding);
        report(ctx, me, change);
    }

    /// Records the new charge and holder state; returns what the budget
    /// must be told: `(was, now, holding, was listed)`.
    fn record(&mut self, now: usize, holding: bool) -> (usize, usize, bool, bool) {
        let was = std::mem::replace(&mut self.charged, now as u32) as usize;
        let listed = self.has(LISTED);
        if holding {
            self.set(LISTED);
        } else {
            self.clear(LISTED);
        }
        (was, now, holding, listed)
    }

    /// Before a read, for a socket that holds memory or was parked: writes
    /// output made in this turn if there is much of it, settles, and parks
    /// if the budget says so.
    #[inline(never)]
    pub(super) fn before_read(&mut self, ctx: &mut Ctx<'_, Self>) -> BeforeRead {
        if !self.out.is_empty() && self.out_made_in_turn(ctx) {
            return BeforeRead::Failed;
        }
        if self.must_park(ctx) {
            self.park(ctx);
            return BeforeRead::Parked;
        }
        // The peer caught up, or the budget allows it: reading again.
        self.clear(PARKED);
        BeforeRead::Read
    }

    /// Before reading more, with output made in this turn and not yet
    /// flushed: past [`EARLY_WRITE`] bytes it goes to the kernel now (a
    /// peer that sends fast and a controller that answers in place could
    /// otherwise pile a turn's worth of replies up), and the budget hears
    /// of what is left. True if the connection failed.
    fn out_made_in_turn(&mut self, ctx: &mut Ctx<'_, Self>) -> bool {
        if self.out.queued() >= EARLY_WRITE && !self.write_out(ctx) {
            return true;
        }
        self.settle(ctx);
        false
    }

    /// True if the socket must stop reading for memory now: the budget is
    /// pressed and the socket holds memory that reading would add to:
    /// output not yet written, or a long partial unit (a quarter of the
    /// read size or more). A socket with neither reads on: what it reads
    /// is answered within the turn and its buffers go back at the end of
    /// it. Looks at the budget only for a holder, so the common read costs
    /// two tests.
    #[inline(always)]
    fn must_park(&mut self, ctx: &mut Ctx<'_, Self>) -> bool {
        // Output queued in this turn and not yet flushed counts too: such a
        // socket parks until its turn-end flush, which unparks it if the
        // output went.
        (!self.out.is_empty() || self.rbuf.len() >= self.config.read_size / 4)
            && ctx.local::<NetLocal>().budget.pressed()
    }

    /// Stops reading until the budget is released (or the socket's output
    /// drains): bytes stay in the kernel and TCP pushes back. A partial
    /// unit keeps a buffer of its own size, not a large one.
    #[cold]
    fn park(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.id();
        if !self.has(PARKED) {
            self.set(PARKED);
            ctx.local::<NetLocal>().budget.park(me);
            if ctx.tracing() {
                ctx.trace_id('P', me, Some(self.buffered() as u64));
            }
        }
        if !self.rbuf.is_empty() {
            self.move_partial_to_own_buffer(ctx.local::<NetLocal>());
        }
    }

    /// Moves the partial unit in the read buffer to a buffer of its own
    /// size; the large one goes back to the pool (reusable once the units
    /// cut from it are handled).
    fn move_partial_to_own_buffer(&mut self, net: &mut NetLocal) {
        let small = BytesMut::from(&self.rbuf[..]);
        let big = std::mem::replace(&mut self.rbuf, small);
        net.give_read(big);
    }

    /// At the end of a turn, with a partial unit in the read buffer: past
    /// the low mark the partial unit moves to a buffer of its own size, so
    /// thousands of connections each holding a few bytes of a line do not
    /// each hold a read buffer.
    #[inline(never)]
    pub(super) fn keep_partial_small(&mut self, ctx: &mut Ctx<'_, Self>) {
        let spare = self.rbuf.capacity() - self.rbuf.len();
        if spare <= PARTIAL_SPARE_MAX {
            return;
        }
        let net = ctx.local::<NetLocal>();
        if net.budget.warm() {
            self.move_partial_to_own_buffer(net);
        }
    }

    /// Told to close because the budget is exhausted and this socket is
    /// among those holding the most: logs it once, with what it held.
    pub(super) fn overload(&mut self, ctx: &mut Ctx<'_, Self>, held: usize) {
        let me = ctx.id();
        let budget = &mut ctx.local::<NetLocal>().budget;
        if !budget.still_over() {
            // Released since it was chosen: it stays.
            budget.ended(me);
            return;
        }
        let limit = budget.limit().unwrap_or(0);
        let peer = self
            .peer_addr()
            .map_or_else(String::new, |p| format!(" from {p}"));
        log::warn!(
            "closing the connection{peer}: the {limit} byte buffer memory budget is \
             exhausted and it held {held} bytes ({} of unsent output)",
            self.out.queued()
        );
        self.fail(ctx, CloseReason::Overload);
    }
}

/// Tells the budget of a socket's change (see [`Socket::record`]).
fn report<A: Actor>(
    ctx: &mut Ctx<'_, A>,
    sock: Addr<Socket>,
    (was, now, holding, listed): (usize, usize, bool, bool),
) {
    let net = ctx.local::<NetLocal>();
    if holding {
        net.budget.hold(sock, now);
    } else if listed {
        net.budget.unhold(sock.id());
    }
    let act = net.charge(was, now);
    act_on(ctx, act);
}

/// Settles `sock` from another actor's run, after a send in place grew
/// its output queue: the budget sees output as it is made, not only at
/// the turn's end.
#[inline(never)]
pub(super) fn settle_in_place<A: Actor>(ctx: &mut Ctx<'_, A>, sock: Addr<Socket>) {
    let Some(s) = ctx.direct(sock) else {
        return;
    };
    let (changed, now, holding) = s.unsettled();
    if changed {
        let change = s.record(now, holding);
        report(ctx, sock, change);
    }
}

/// Does what a change of the total asks, from any actor's run: wakes the
/// parked, or tells the largest holders to close.
pub(crate) fn act_on<A: Actor>(ctx: &mut Ctx<'_, A>, act: Act) {
    match act {
        Act::None => {}
        Act::Release => {
            let list = ctx.local::<NetLocal>().budget.take_parked();
            for id in list {
                ctx.core().wake(id);
            }
        }
        Act::Overload => {
            let net = ctx.local::<NetLocal>();
            let total = net.total();
            for (sock, held) in net.budget.victims(total) {
                close_for_overload(ctx, sock, held);
            }
        }
    }
}

/// Tells `sock` to close for overload (it held `held` bytes when chosen).
pub(crate) fn close_for_overload<A: Actor>(ctx: &mut Ctx<'_, A>, sock: Addr<Socket>, held: usize) {
    ctx.send(sock, SocketMsg(Cmd::Overload(held)));
}
