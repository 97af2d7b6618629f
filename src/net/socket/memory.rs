//! A socket's part in the buffer memory budget (see `net::budget`): its
//! charge, settling it, parking for memory, and closing for overload.

use bytes::BytesMut;

use crate::actor::{Actor, Ctx};
use crate::net::budget::Act;
use crate::net::local::NetLocal;
use crate::net::socket::flags::{BLOCKED, LISTED, PARKED};
use crate::net::socket::{CloseReason, Cmd, Socket, SocketMsg};

/// Spare room past which a parked socket's partial unit moves to a buffer
/// of its own size.
const PARK_SPARE_MAX: usize = 4096;

impl Socket {
    /// The buffer bytes this socket holds: its read buffer's capacity, its
    /// unsent output and its output buffer's spare room (capped at 4 GiB).
    pub(super) fn buffered(&self) -> usize {
        (self.rbuf.capacity() + self.out.held()).min(u32::MAX as usize)
    }

    /// Reports a change of the socket's charge to the budget, and of
    /// whether it holds memory without progress. The common case (no
    /// change) is a few loads and compares.
    #[inline]
    pub(super) fn settle(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = self.buffered();
        let holding = self.flags & (BLOCKED | PARKED) != 0 && now > 0;
        if now != self.charged as usize || holding != self.has(LISTED) {
            self.settle_change(ctx, now, holding);
        }
    }

    #[inline(never)]
    fn settle_change(&mut self, ctx: &mut Ctx<'_, Self>, now: usize, holding: bool) {
        let was = std::mem::replace(&mut self.charged, now as u32) as usize;
        let me = ctx.me();
        let net = ctx.local::<NetLocal>();
        if holding {
            net.budget.hold(me, now);
            self.set(LISTED);
        } else if self.has(LISTED) {
            net.budget.unhold(me.id());
            self.clear(LISTED);
        }
        let act = net.charge(was, now);
        act_on(ctx, act);
    }

    /// True if the socket must stop reading for memory now.
    #[inline]
    pub(super) fn must_park(&mut self, ctx: &mut Ctx<'_, Self>) -> bool {
        let net = ctx.local::<NetLocal>();
        if !net.budget.pressed() {
            return false;
        }
        let holding = self.has(BLOCKED) || self.rbuf.len() >= self.config.read_size;
        net.must_park(holding)
    }

    /// Stops reading until the budget is released (or the socket's output
    /// drains): bytes stay in the kernel and TCP pushes back. A partial
    /// unit keeps a buffer of its own size, not a large one.
    #[cold]
    pub(super) fn park(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.id();
        if !self.has(PARKED) {
            self.set(PARKED);
            ctx.local::<NetLocal>().budget.park(me);
            if ctx.tracing() {
                ctx.trace_id('P', me, Some(self.buffered() as u64));
            }
        }
        if !self.rbuf.is_empty() && self.rbuf.capacity() - self.rbuf.len() > PARK_SPARE_MAX {
            let small = BytesMut::from(&self.rbuf[..]);
            let big = std::mem::replace(&mut self.rbuf, small);
            ctx.local::<NetLocal>().give_read(big);
        }
    }

    /// Told to close because the budget is exhausted and this socket is
    /// among those holding the most: logs it once, with what it held.
    pub(super) fn overload(&mut self, ctx: &mut Ctx<'_, Self>, held: usize) {
        let limit = ctx.local::<NetLocal>().budget.limit().unwrap_or(0);
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

/// Does what a change of the total asks, from any actor's run: wakes the
/// parked, or tells the largest holders to close.
pub(crate) fn act_on<A: Actor>(ctx: &mut Ctx<'_, A>, act: Act) {
    match act {
        Act::None => {}
        Act::Release => {
            let list = ctx.local::<NetLocal>().budget.take_parked();
            for &id in &list {
                ctx.core().wake(id);
            }
            ctx.local::<NetLocal>().budget.parked_back(list);
        }
        Act::Overload => {
            let net = ctx.local::<NetLocal>();
            let total = net.total();
            for (sock, held) in net.budget.victims(total) {
                ctx.send(sock, SocketMsg(Cmd::Overload(held)));
            }
        }
    }
}
