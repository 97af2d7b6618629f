//! A socket's timers: the idle timeout (no input), the write timeout (no
//! output progress), and the linger of a closing socket. Each is a message
//! to the socket itself, re-armed from the time of the last progress, so a
//! busy socket sets at most one timer per period.

use crate::actor::{Ctx, RequestError};
use crate::net::socket::{CloseReason, Cmd, Socket, SocketEvent, SocketMsg, State};

impl Socket {
    pub(super) fn arm_idle(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let Some(c) = self.cold.as_deref_mut() else {
            return;
        };
        if let (Some(t), false) = (c.idle_timeout, c.idle_armed) {
            c.idle_armed = true;
            c.last_input = Some(now);
            let me = ctx.me();
            ctx.send_after(me, SocketMsg(Cmd::IdleCheck), t);
        }
    }

    pub(super) fn idle_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let open = self.state == State::Open;
        let Some(c) = self.cold.as_deref_mut() else {
            return;
        };
        c.idle_armed = false;
        let Some(t) = c.idle_timeout else {
            return;
        };
        if !open {
            return;
        }
        let idle = now.saturating_duration_since(c.last_input.unwrap_or(now));
        let next = if idle >= t {
            c.last_input = Some(now);
            t
        } else {
            t - idle
        };
        c.idle_armed = true;
        let me = ctx.me();
        if idle >= t {
            self.emit(ctx, SocketEvent::Timeout(me));
        }
        ctx.send_after(me, SocketMsg(Cmd::IdleCheck), next);
    }

    /// Arms the write check while output is queued and a write timeout is
    /// set.
    pub(super) fn arm_write_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(t) = self.write_check_due(ctx.now()) {
            let me = ctx.me();
            ctx.send_after(me, SocketMsg(Cmd::WriteCheck), t);
        }
    }

    /// Marks the write check armed and says after how long it fires, if
    /// output is queued, a write timeout is set, and it is not armed yet.
    #[inline(always)]
    pub(super) fn write_check_due(
        &mut self,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let queued = self.out.queued();
        let c = self.cold.as_deref_mut()?;
        let t = c.write_timeout?;
        if c.write_check_armed || queued == 0 {
            return None;
        }
        c.write_check_armed = true;
        c.last_output_progress = Some(now);
        Some(t)
    }

    pub(super) fn write_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        let now = ctx.now();
        let empty = self.out.is_empty();
        let Some(c) = self.cold.as_deref_mut() else {
            return;
        };
        c.write_check_armed = false;
        let Some(t) = c.write_timeout else {
            return;
        };
        if empty {
            return;
        }
        let stalled = now.saturating_duration_since(c.last_output_progress.unwrap_or(now));
        if stalled >= t {
            self.fail(ctx, CloseReason::WriteTimeout);
        } else {
            c.write_check_armed = true;
            let me = ctx.me();
            ctx.send_after(me, SocketMsg(Cmd::WriteCheck), t - stalled);
        }
    }

    /// A draining socket gets `linger` to flush, then closes regardless.
    pub(super) fn arm_linger(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = ctx.me();
        ctx.send_after(me, SocketMsg(Cmd::LingerExpired), self.config.linger);
    }

    pub(super) fn linger_expired(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Draining {
            self.fail_output(
                ctx,
                &RequestError::rejected("connection closed: linger expired"),
            );
            ctx.stop();
        }
    }
}
