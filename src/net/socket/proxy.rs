//! A socket's PROXY stage: an accepted socket whose configuration has a
//! [`ProxyPolicy`](crate::net::ProxyPolicy) reads the connection's PROXY
//! header before anything else (state `Proxy`), whatever its credit, then
//! goes on as any socket (state `Open`), the bytes after the header still
//! in its buffer. The stage costs the common path nothing: `pump` only
//! looks at it when the state is not `Open`.

use bytes::Buf;

use crate::actor::Ctx;
use crate::net::local::NetLocal;
use crate::net::proxy::{self, Parsed, ProxyError};
use crate::net::socket::{flags, CloseReason, Cmd, Cold, Socket, SocketEvent, SocketMsg, State};

impl Socket {
    /// At start (the listener found the peer trusted): arms the header's
    /// timeout.
    pub(super) fn start_proxy(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some(timeout) = self.config.proxy.as_deref().map(|p| p.timeout) else {
            self.state = State::Open;
            return;
        };
        let me = ctx.me();
        let timer = ctx.send_after(me, SocketMsg(Cmd::ProxyTimeout), timeout);
        self.cold().proxy_timer = Some(timer);
    }

    /// The header stage is over: the socket is open, its timer cancelled,
    /// and the cold part that only held the timer let go (so the
    /// connection's lines cost what they cost without PROXY).
    fn end_proxy(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.state = State::Open;
        if let Some(cold) = self.cold.as_deref_mut() {
            if let Some(t) = cold.proxy_timer.take() {
                ctx.cancel_timer(t);
            }
            if *cold == Cold::default() {
                self.cold = None;
            }
        }
    }

    /// Reads until the header is whole, then hands on to the usual path.
    /// Out of line: `pump`, on every line's path, only tests the state.
    #[cold]
    #[inline(never)]
    pub(super) fn pump_proxy(&mut self, ctx: &mut Ctx<'_, Self>) {
        let required = self.config.proxy.as_ref().is_none_or(|p| p.required);
        loop {
            match proxy::parse(&self.rbuf) {
                Ok(Parsed::Done(header, used)) => {
                    self.rbuf.advance(used);
                    self.end_proxy(ctx);
                    let net = ctx.local::<NetLocal>();
                    net.proxy.headers += 1;
                    net.proxy.local += u64::from(header.is_local());
                    let me = ctx.me();
                    self.emit(ctx, SocketEvent::Proxied(me, Box::new(header)));
                    self.pump(ctx);
                    return;
                }
                Err(ProxyError::Missing) if !required => {
                    self.end_proxy(ctx);
                    self.pump(ctx);
                    return;
                }
                Err(e) => {
                    self.refuse(ctx, e);
                    return;
                }
                Ok(Parsed::Incomplete) => {}
            }
            if self.has(flags::EOF) {
                if self.rbuf.is_empty() {
                    // Connected and closed without a byte (a port probe):
                    // an orderly close, not a refusal.
                    log::debug!("connection closed before its PROXY header");
                    self.fail(ctx, CloseReason::Orderly);
                } else {
                    self.refuse(ctx, ProxyError::Truncated);
                }
                return;
            }
            if !self.may_read {
                return;
            }
            if self.rbuf.capacity() == 0 {
                self.rbuf = ctx.local::<NetLocal>().take_read(self.config.read_size);
            }
            match self.read(ctx) {
                Ok(true) => {}
                Ok(false) => {
                    if self.rbuf.is_empty() {
                        let buf = std::mem::take(&mut self.rbuf);
                        ctx.local::<NetLocal>().give_read(buf);
                    }
                    return;
                }
                Err(e) => {
                    self.fail(ctx, CloseReason::from_io(&e));
                    return;
                }
            }
        }
    }

    /// The header's time is up: refused, unless it came whole meanwhile.
    pub(super) fn proxy_timeout(&mut self, ctx: &mut Ctx<'_, Self>) {
        if self.state == State::Proxy {
            self.refuse(ctx, ProxyError::Timeout);
        }
    }

    /// Closes the connection for its header, says why in the log, and
    /// counts it.
    fn refuse(&mut self, ctx: &mut Ctx<'_, Self>, e: ProxyError) {
        let (now, peer) = (ctx.now(), self.peer_addr());
        ctx.local::<NetLocal>().proxy.refused(now, peer, &e);
        self.fail(ctx, CloseReason::Proxy(e));
    }
}
