//! A terminal for any line server (after the library's
//! `DemoSocketTerminal`): connects to HOST PORT, shows every line that
//! arrives, and sends every line typed. Status lines are marked off with
//! dashes. Works interactively and through a pipe: at the end of its input
//! it tells the server so (EOF on the connection) and shows what still
//! arrives until the server closes.
//!
//! ```text
//! $ socket-terminal localhost 5999
//! ---------------- connected to localhost port 5999
//! you are user1
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{channel, Sender};

use clap::Parser;
use credit_actors::net::{CloseReason, Delimiter, Socket, SocketEvent, Unit};
use credit_actors::{Actor, Addr, Ctx, Reactor};

/// A terminal for line servers: shows what arrives, sends what you type.
#[derive(Parser, Debug)]
#[command(name = "socket-terminal", version)]
struct Args {
    /// Host to connect to (a name or an address).
    host: String,
    /// Port to connect to.
    port: u16,
    /// Longest line shown whole; longer ones are reported, not shown.
    #[arg(long, default_value_t = 1 << 20)]
    max_line: usize,
}

/// The marker of status lines.
const MARK: &str = "----------------";

/// Lines the terminal may have waiting for the screen: the socket's
/// credit. Past it the socket stops reading and the server is pushed back.
const WINDOW: i64 = 256;

/// What the printing thread is given.
enum Print {
    Line(String),
    Status(String),
}

/// The terminal's actor: the socket's controller.
struct Terminal {
    host: String,
    port: u16,
    max_line: usize,
    sock: Option<Addr<Socket>>,
    screen: Sender<(Print, Option<Addr<Socket>>)>,
    /// Whether the connection came up (for the exit code).
    connected: bool,
    ok: std::rc::Rc<std::cell::Cell<bool>>,
}

/// Messages to the terminal.
enum TermMsg {
    /// A typed line, as typed (it need not be UTF-8: the server judges).
    Typed(Vec<u8>),
    /// The input ended.
    InputEnded,
    /// From the socket.
    Socket(SocketEvent),
}

impl From<SocketEvent> for TermMsg {
    fn from(e: SocketEvent) -> Self {
        TermMsg::Socket(e)
    }
}

impl Terminal {
    fn show(&self, p: Print, credit_back: Option<Addr<Socket>>) {
        let _ = self.screen.send((p, credit_back));
    }
}

impl Actor for Terminal {
    type Msg = TermMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        let config = credit_actors::net::SocketConfig {
            max_unit: self.max_line,
            ..Default::default()
        };
        self.sock = Some(Socket::connect_with(ctx, &self.host, self.port, config));
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: TermMsg) {
        match msg {
            TermMsg::Typed(line) => {
                if let Some(sock) = self.sock {
                    sock.send_line(ctx, line);
                }
            }
            TermMsg::InputEnded => {
                if let Some(sock) = self.sock {
                    sock.shutdown_write(ctx);
                }
            }
            TermMsg::Socket(SocketEvent::Connected(sock, _)) => {
                self.connected = true;
                self.ok.set(true);
                sock.delimiter_mode(ctx, Delimiter::lf());
                sock.issue_credit(ctx, WINDOW);
                self.show(
                    Print::Status(format!("connected to {} port {}", self.host, self.port)),
                    None,
                );
            }
            TermMsg::Socket(SocketEvent::Data(sock, unit)) => {
                let text = match unit {
                    Ok(Unit::Text(t)) => t.as_str().strip_suffix('\r').unwrap_or(&t).to_string(),
                    Ok(other) => String::from_utf8_lossy(other.as_bytes()).into_owned(),
                    Err(e) => format!("{MARK} {e}"),
                };
                // The printing thread gives the unit of credit back once
                // the line is on the screen.
                self.show(Print::Line(text), Some(sock));
            }
            TermMsg::Socket(SocketEvent::Closed(_, reason)) => {
                self.show(Print::Status("disconnected".into()), None);
                if reason != CloseReason::Orderly {
                    let why = match &reason {
                        // The kind's short text ("connection refused"),
                        // unless it says nothing ("uncategorized error",
                        // for a name that does not resolve): then the
                        // error's own.
                        CloseReason::Error { kind, message }
                            if matches!(kind, std::io::ErrorKind::Other)
                                || kind.to_string().contains("uncategorized") =>
                        {
                            message.to_string()
                        }
                        CloseReason::Error { kind, .. } => kind.to_string(),
                        other => other.to_string(),
                    };
                    self.show(Print::Status(format!("disconnection reason: {why}")), None);
                }
                if !self.connected {
                    self.ok.set(false);
                }
                // The keyboard thread may be blocked reading: the reactor
                // stops here rather than waiting for it.
                ctx.shutdown_reactor();
            }
            TermMsg::Socket(SocketEvent::Timeout(_) | SocketEvent::Proxied(..)) => {}
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("socket-terminal: cannot create the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = reactor.handle();

    // The screen: a thread of its own, so a slow terminal never blocks the
    // reactor; each line shown gives its unit of credit back.
    let (screen, lines) = channel::<(Print, Option<Addr<Socket>>)>();
    let credit = handle.clone();
    let printer = std::thread::spawn(move || {
        let stdout = std::io::stdout();
        while let Ok(first) = lines.recv() {
            // What has arrived meanwhile goes out with it: one flush, and
            // one message of credit, per batch.
            let mut out = stdout.lock();
            let mut shown: Option<(Addr<Socket>, i64)> = None;
            for (p, sock) in std::iter::once(first).chain(lines.try_iter().take(255)) {
                let _ = match p {
                    Print::Line(l) => writeln!(out, "{l}"),
                    Print::Status(s) => writeln!(out, "{MARK} {s}"),
                };
                if let Some(sock) = sock {
                    match &mut shown {
                        Some((s, n)) if *s == sock => *n += 1,
                        _ => {
                            if let Some((s, n)) = shown.take() {
                                credit.send(s, credit_actors::net::SocketMsg::issue_credit(n));
                            }
                            shown = Some((sock, 1));
                        }
                    }
                }
            }
            let _ = out.flush();
            if let Some((s, n)) = shown {
                credit.send(s, credit_actors::net::SocketMsg::issue_credit(n));
            }
        }
    });

    let ok = std::rc::Rc::new(std::cell::Cell::new(true));
    let term = reactor.spawn(Terminal {
        host: args.host,
        port: args.port,
        max_line: args.max_line,
        sock: None,
        screen,
        connected: false,
        ok: ok.clone(),
    });

    // The keyboard (or the pipe): a thread of its own, blocking on stdin.
    let keys = handle.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if !keys.send(term, TermMsg::Typed(line)) {
                        return;
                    }
                }
            }
        }
        keys.send(term, TermMsg::InputEnded);
    });
    drop(handle);

    let result = reactor.run();
    // Everything shown before exiting.
    drop(reactor);
    let _ = printer.join();
    match result {
        Ok(()) if ok.get() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("socket-terminal: reactor failed: {e}");
            ExitCode::FAILURE
        }
    }
}
