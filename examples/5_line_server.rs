//! A line server: socket actors, work units and credit.
//!
//! The service listens, issues accept credit, and gives each accepted
//! socket to a session of its own. A session asks for LF-delimited text and
//! issues one unit of credit at a time: the socket hands it one line per
//! unit, and with no credit it stops reading, so TCP pushes back on a peer
//! that sends faster than the session answers. Each line is answered in
//! upper case.
//!
//! A client actor on the same reactor connects, sends three lines, prints
//! the answers, and stops the reactor. With `--serve`, the server keeps
//! running instead: try it with `nc 127.0.0.1 PORT`.
//!
//! `cargo run --example 5_line_server [-- --serve]`

use std::net::SocketAddr;

use credit_actors::net::{
    Delimiter, ListenSpec, Listener, ListenerEvent, Socket, SocketEvent, Unit,
};
use credit_actors::{Actor, Addr, Ctx, Reactor};

/// Accepts connections and hands each to a session.
struct Service {
    /// Also start the demo client once listening.
    demo: bool,
}

enum ServiceMsg {
    Listener(ListenerEvent),
    Socket(SocketEvent),
}

impl From<ListenerEvent> for ServiceMsg {
    fn from(e: ListenerEvent) -> Self {
        ServiceMsg::Listener(e)
    }
}

impl From<SocketEvent> for ServiceMsg {
    fn from(e: SocketEvent) -> Self {
        ServiceMsg::Socket(e)
    }
}

impl Actor for Service {
    type Msg = ServiceMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let listener = Listener::listen(ctx, ListenSpec::host_port("127.0.0.1", 0));
        listener.issue_credit(ctx, 16);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ServiceMsg) {
        match msg {
            ServiceMsg::Listener(ListenerEvent::Ready(_, Ok(addr))) => {
                println!("listening on {addr}");
                if self.demo {
                    ctx.spawn(Client::new(addr));
                }
            }
            ServiceMsg::Listener(ListenerEvent::Ready(_, Err(e))) => {
                eprintln!("cannot listen: {e}");
                ctx.shutdown_reactor();
            }
            ServiceMsg::Listener(ListenerEvent::Accepted(listener, sock, _peer)) => {
                let session = ctx.spawn(Session);
                sock.set_controller(ctx, session);
                sock.delimiter_mode(ctx, Delimiter::lf());
                sock.issue_credit(ctx, 1);
                listener.issue_credit(ctx, 1);
            }
            // A socket's events before it is handed on (a peer that closes
            // at once, say): its session never saw it, so close it here.
            ServiceMsg::Socket(event) => {
                if let SocketEvent::Closed(sock, _) = event {
                    sock.stop(ctx);
                }
            }
        }
    }
}

/// Answers each line in upper case, one unit of credit at a time.
struct Session;

impl Actor for Session {
    type Msg = SocketEvent;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, event: SocketEvent) {
        match event {
            SocketEvent::Data(sock, Ok(line)) => {
                sock.send_line(ctx, upper(&line));
                sock.issue_credit(ctx, 1);
            }
            SocketEvent::Data(sock, Err(e)) => {
                sock.send_line(ctx, format!("error: {e}"));
                sock.issue_credit(ctx, 1);
            }
            SocketEvent::Closed(..) => ctx.stop(),
            SocketEvent::Connected(..) | SocketEvent::Timeout(_) | SocketEvent::Proxied(..) => {}
        }
    }
}

fn upper(line: &Unit) -> String {
    String::from_utf8_lossy(line.as_bytes()).to_uppercase()
}

/// Sends three lines, prints the answers, then stops the reactor.
struct Client {
    addr: SocketAddr,
    sock: Option<Addr<Socket>>,
    answers: usize,
}

impl Client {
    const LINES: [&'static str; 3] = ["hello", "credit flows", "bye"];

    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            sock: None,
            answers: 0,
        }
    }
}

impl Actor for Client {
    type Msg = SocketEvent;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let sock = Socket::connect(ctx, &self.addr.ip().to_string(), self.addr.port());
        self.sock = Some(sock);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, event: SocketEvent) {
        match event {
            SocketEvent::Connected(sock, _) => {
                sock.delimiter_mode(ctx, Delimiter::lf());
                sock.infinite_credit(ctx);
                for line in Client::LINES {
                    println!("client sends: {line}");
                    sock.send_line(ctx, line);
                }
            }
            SocketEvent::Data(_, Ok(answer)) => {
                println!(
                    "client got:   {}",
                    String::from_utf8_lossy(answer.as_bytes())
                );
                self.answers += 1;
                if self.answers == Client::LINES.len() {
                    ctx.shutdown_reactor();
                }
            }
            SocketEvent::Closed(_, reason) => {
                eprintln!("client: connection closed: {reason}");
                ctx.shutdown_reactor();
            }
            SocketEvent::Data(_, Err(_)) | SocketEvent::Timeout(_) | SocketEvent::Proxied(..) => {}
        }
    }
}

fn main() -> std::io::Result<()> {
    let demo = !std::env::args().any(|a| a == "--serve");
    let mut reactor = Reactor::new()?;
    reactor.spawn(Service { demo });
    reactor.run()
}
