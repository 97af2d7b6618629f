//! Outgoing connections: resolving the name off the reactor thread, trying
//! each address in turn, and reporting `Connected` or the error.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use mio::Interest;

use crate::actor::{Actor, Addr, Ctx};
use crate::net::socket::{
    flags, CloseReason, Cmd, Socket, SocketConfig, SocketEvent, SocketMsg, State,
};
use crate::reactor::Ready;

impl Socket {
    /// Spawns a socket connecting to `host:port`, controlled by the calling
    /// actor (and linked to it). Names are resolved off the reactor thread;
    /// IPv4 and IPv6 both work. The controller gets `Connected`, or
    /// `Closed` with the error.
    pub fn connect<A: Actor>(ctx: &mut Ctx<'_, A>, host: &str, port: u16) -> Addr<Socket>
    where
        A::Msg: From<SocketEvent>,
    {
        Socket::connect_with(ctx, host, port, SocketConfig::default())
    }

    /// [`Socket::connect`] with settings.
    pub fn connect_with<A: Actor>(
        ctx: &mut Ctx<'_, A>,
        host: &str,
        port: u16,
        config: SocketConfig,
    ) -> Addr<Socket>
    where
        A::Msg: From<SocketEvent>,
    {
        let mut sock = Socket::new(
            None,
            State::Connecting,
            ctx.me().recipient(),
            Rc::new(config),
        );
        sock.cold().connect_target = Some((host.to_string(), port));
        ctx.spawn(sock)
    }

    pub(super) fn start_connect(&mut self, ctx: &mut Ctx<'_, Self>) {
        let Some((host, port)) = self.cold().connect_target.take() else {
            return;
        };
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal {
            self.cold().targets = vec![SocketAddr::new(ip, port)];
            self.next_target(ctx, None);
        } else if host.eq_ignore_ascii_case("localhost") {
            self.cold().targets = vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            ];
            self.next_target(ctx, None);
        } else {
            // Name resolution blocks, so it runs on its own thread and
            // reports back as a message.
            let handle = ctx.handle();
            let me = ctx.me();
            let spawned = std::thread::Builder::new()
                .name("resolve".into())
                .spawn(move || {
                    let result = (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|a| a.collect::<Vec<_>>())
                        .map_err(|e| CloseReason::from_io(&e));
                    handle.send(me, SocketMsg(Cmd::Resolved(Box::new(result))));
                });
            if let Err(e) = spawned {
                self.fail(ctx, CloseReason::from_io(&e));
            }
        }
    }

    /// The resolver's answer.
    pub(super) fn resolved(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        result: Result<Vec<SocketAddr>, CloseReason>,
    ) {
        match result {
            Ok(mut addrs) => {
                // Tried back to front: keep the resolver's preference order.
                addrs.reverse();
                self.cold().targets = addrs;
                self.next_target(ctx, None);
            }
            Err(reason) => self.fail(ctx, reason),
        }
    }

    /// Tries the next resolved address (the list is used back to front).
    fn next_target(&mut self, ctx: &mut Ctx<'_, Self>, last_error: Option<io::Error>) {
        if let Some(mut s) = self.stream.take() {
            let _ = ctx.deregister(&mut s);
        }
        let mut last_error = last_error;
        while let Some(addr) = self.cold().targets.pop() {
            match crate::net::stream::connect(addr) {
                Ok(mut s) => match ctx.register(&mut s, Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => {
                        self.cold().peer = Some(addr);
                        self.stream = Some(s);
                        return;
                    }
                    Err(e) => last_error = Some(e),
                },
                Err(e) => last_error = Some(e),
            }
        }
        let e = last_error
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
        self.fail(ctx, CloseReason::from_io(&e));
    }

    /// Readiness while connecting: the connect completed or failed.
    pub(super) fn connect_ready(&mut self, ctx: &mut Ctx<'_, Self>, ready: Ready) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            self.next_target(ctx, Some(e));
            return;
        }
        match stream.peer_addr() {
            Ok(peer) => {
                let _ = stream.set_nodelay(true);
                let cold = self.cold();
                cold.peer = Some(peer);
                cold.targets = Vec::new();
                self.state = State::Open;
                let me = ctx.me();
                self.emit(ctx, SocketEvent::Connected(me, peer));
                self.arm_idle(ctx);
                if !self.out.is_empty() {
                    self.set(flags::FLUSH_PENDING);
                    ctx.at_turn_end();
                }
                // The peer's first bytes, and its FIN, may come with the
                // connect's own event: no later edge will say so.
                self.note_readable(ready);
                self.pump(ctx);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !ready.is_error() => {
                // Spurious readiness: still connecting.
            }
            Err(e) => self.next_target(ctx, Some(e)),
        }
    }
}
