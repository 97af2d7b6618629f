//! A socket's timers: the idle timeout (no input), the write timeout (no
//! output progress), and the linger of a closing socket. Each is a message
//! to the socket itself, re-armed from the time of the last progress, so a
//! busy socket sets at most one timer per period.

use crate::actor::{Ctx, RequestError};
use crate::net::socket::{CloseReason, Cmd, Socket, SocketEvent, SocketMsg, State};

impl Socket {
    pub(super) fn arm_idle(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let (Some(t), false) = (self.idle_timeout, self.idle_armed) {
            self.idle_armed = true;
            self.last_input = ctx.now();
            let me = ctx.me();
            ctx.send_after(me, SocketMsg(Cmd::IdleCheck), t);
        }
    }

    pub(super) fn idle_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.idle_armed = false;
        let Some(t) = self.idle_timeout else {
            return;
        };
        if self.state != State::Open {
            return;
        }
        let idle = ctx.now().saturating_duration_since(self.last_input);
        let me = ctx.me();
        let next = if idle >= t {
            self.last_input = ctx.now();
            self.emit(ctx, SocketEvent::Timeout(me));
            t
        } else {
            t - idle
        };
        self.idle_armed = true;
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
        let t = self.write_timeout?;
        if self.write_check_armed || self.out.queued() == 0 {
            return None;
        }
        self.write_check_armed = true;
        self.last_output_progress = now;
        Some(t)
    }

    pub(super) fn write_check(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.write_check_armed = false;
        let Some(t) = self.write_timeout else {
            return;
        };
        if self.out.is_empty() {
            return;
        }
        let stalled = ctx
            .now()
            .saturating_duration_since(self.last_output_progress);
        if stalled >= t {
            self.fail(ctx, CloseReason::WriteTimeout);
        } else {
            self.write_check_armed = true;
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
