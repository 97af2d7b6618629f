//! The chat room's protocol (see credit-chat) on a tokio current-thread
//! runtime, written the way tokio's own chat example is written: one task
//! per connection, the shared state behind a mutex, and a broadcast
//! channel carrying every line to every connection in one order.
//!
//! A connection that falls more than `--backlog-lines` lines behind the
//! channel is disconnected as `(too slow)`. Lines longer than `--max-line`
//! and invalid UTF-8 get an error reply.
//!
//! Usage: `tokio-chat [--bind ADDR] [--port N] [--max-line N]
//! [--backlog-lines N]` (defaults 127.0.0.1, 5999, 4096, 4096).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

struct Args {
    addr: SocketAddr,
    max_line: usize,
    backlog_lines: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut bind: IpAddr = [127, 0, 0, 1].into();
    let mut port: u16 = 5999;
    let mut max_line = 4096;
    let mut backlog_lines = 4096;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--bind" => {
                let v = value("--bind")?;
                bind = v.parse().map_err(|e| format!("--bind {v}: {e}"))?;
            }
            "--port" => {
                let v = value("--port")?;
                port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "--max-line" => {
                let v = value("--max-line")?;
                max_line = v.parse().map_err(|e| format!("--max-line {v}: {e}"))?;
            }
            "--backlog-lines" => {
                let v = value("--backlog-lines")?;
                backlog_lines = v.parse().map_err(|e| format!("--backlog-lines {v}: {e}"))?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: tokio-chat [--bind ADDR] [--port N] [--max-line N] [--backlog-lines N]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        addr: SocketAddr::new(bind, port),
        max_line,
        backlog_lines: backlog_lines.max(1),
    })
}

/// The room: who is present, and the channel every event goes through.
struct Room {
    /// Connection id to (name, arrival number).
    users: HashMap<u64, (Arc<str>, u64)>,
    next_user: u64,
    arrivals: u64,
    tx: broadcast::Sender<Arc<str>>,
}

impl Room {
    fn present(&self, except: Option<u64>) -> String {
        let mut users: Vec<&(Arc<str>, u64)> = self
            .users
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(_, u)| u)
            .collect();
        users.sort_by_key(|u| u.1);
        let mut line = String::from("present:");
        for (name, _) in users {
            line.push(' ');
            line.push_str(name);
        }
        line
    }

    fn taken(&self, name: &str) -> bool {
        self.users.values().any(|(n, _)| &**n == name)
    }

    fn announce(&self, line: String) {
        let _ = self.tx.send(Arc::from(line));
    }
}

fn says(name: &str, text: &str) -> String {
    format!("{name} says '{}'", text.replace('\'', "''"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a connection ended: `None` for an orderly leave.
type Reason = Option<&'static str>;

async fn serve(stream: TcpStream, id: u64, room: Arc<Mutex<Room>>, max_line: usize) -> Reason {
    let (r, w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut writer = BufWriter::new(w);
    // Under the lock: the name, the list, the subscription and the arrival,
    // so the newcomer's list and the events it receives agree.
    let (name, present, mut rx) = {
        let mut room = room.lock().unwrap();
        let name: Arc<str> = loop {
            let n = room.next_user;
            room.next_user += 1;
            let name = format!("user{n}");
            if !room.taken(&name) {
                break Arc::from(name);
            }
        };
        let present = room.present(None);
        room.arrivals += 1;
        let arrival = room.arrivals;
        room.users.insert(id, (name.clone(), arrival));
        let rx = room.tx.subscribe();
        room.announce(format!("{name} arrived"));
        (name, present, rx)
    };
    let welcome = format!("you are {name}\n{present}\n");
    if writer.write_all(welcome.as_bytes()).await.is_err() {
        return Some("reset");
    }
    let mut name = name;
    let mut line = Vec::with_capacity(256);
    let reason: Reason = loop {
        tokio::select! {
            read = reader.read_until(b'\n', &mut line) => {
                match read {
                    Ok(0) => break None,
                    Ok(_) => {}
                    Err(_) => break Some("reset"),
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                } else {
                    // EOF inside a line.
                    break None;
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let reply = if line.len() > max_line {
                    Some(format!("error: line longer than {max_line} bytes"))
                } else {
                    match std::str::from_utf8(&line) {
                        Err(_) => Some("error: line is not valid UTF-8".to_string()),
                        Ok(text) => match handle(text, &mut name, id, &room) {
                            Handled::Done => None,
                            Handled::Reply(r) => Some(r),
                            Handled::Quit => break None,
                        },
                    }
                };
                line.clear();
                if let Some(r) = reply {
                    if writer.write_all(r.as_bytes()).await.is_err()
                        || writer.write_all(b"\n").await.is_err()
                    {
                        break Some("reset");
                    }
                }
                if reader.buffer().is_empty() && writer.flush().await.is_err() {
                    break Some("reset");
                }
            }
            event = rx.recv() => {
                let mut event = event;
                // Everything already waiting goes out in one write.
                loop {
                    match event {
                        Ok(l) => {
                            if writer.write_all(l.as_bytes()).await.is_err()
                                || writer.write_all(b"\n").await.is_err()
                            {
                                return leave(&room, id, Some("reset"));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return leave(&room, id, Some("too slow"));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                    event = match rx.try_recv() {
                        Ok(l) => Ok(l),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Err(broadcast::error::RecvError::Lagged(n))
                        }
                        Err(_) => break,
                    };
                }
                if writer.flush().await.is_err() {
                    break Some("reset");
                }
            }
        }
    };
    let _ = writer.flush().await;
    leave(&room, id, reason)
}

fn leave(room: &Mutex<Room>, id: u64, reason: Reason) -> Reason {
    let mut room = room.lock().unwrap();
    if let Some((name, _)) = room.users.remove(&id) {
        let line = match reason {
            Some(r) => format!("{name} left ({r})"),
            None => format!("{name} left"),
        };
        room.announce(line);
    }
    reason
}

enum Handled {
    Done,
    Reply(String),
    Quit,
}

fn handle(text: &str, name: &mut Arc<str>, id: u64, room: &Mutex<Room>) -> Handled {
    let Some(command) = text.strip_prefix('/') else {
        let _ = room.lock().unwrap().tx.send(Arc::from(says(name, text)));
        return Handled::Done;
    };
    if command.starts_with('/') {
        let _ = room.lock().unwrap().tx.send(Arc::from(says(name, command)));
        return Handled::Done;
    }
    let (word, rest) = match command.split_once(' ') {
        Some((w, r)) => (w, r.trim()),
        None => (command, ""),
    };
    match word {
        "who" => Handled::Reply(room.lock().unwrap().present(None)),
        "quit" => Handled::Quit,
        "nick" if rest.is_empty() => Handled::Reply("error: usage: /nick NAME".into()),
        "nick" if !valid_name(rest) => {
            Handled::Reply("error: a name is 1 to 32 letters, digits, '_' or '-'".into())
        }
        "nick" => {
            let mut room = room.lock().unwrap();
            if **name == *rest {
                return Handled::Reply(format!("error: you are already {rest}"));
            }
            if room.taken(rest) {
                return Handled::Reply(format!("error: the name {rest} is taken"));
            }
            let new: Arc<str> = Arc::from(rest);
            if let Some(u) = room.users.get_mut(&id) {
                u.0 = new.clone();
            }
            room.announce(format!("{name} is now known as {new}"));
            *name = new;
            Handled::Done
        }
        _ => Handled::Reply(format!("error: unknown command /{word}")),
    }
}

async fn accept_loop(listener: TcpListener, args: Args) {
    let (tx, _) = broadcast::channel(args.backlog_lines);
    let room = Arc::new(Mutex::new(Room {
        users: HashMap::new(),
        next_user: 1,
        arrivals: 0,
        tx,
    }));
    let mut next_id = 0u64;
    let mut warned = false;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                next_id += 1;
                let (room, id, max_line) = (room.clone(), next_id, args.max_line);
                tokio::spawn(async move {
                    serve(stream, id, room, max_line).await;
                });
            }
            Err(e) => {
                if !warned {
                    eprintln!("tokio-chat: accept: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() -> io::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tokio-chat: {e}");
            std::process::exit(2);
        }
    };
    let _ = credit_bench::loadgen::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = match TcpListener::bind(args.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokio-chat: cannot listen on {}: {e}", args.addr);
                std::process::exit(1);
            }
        };
        if let Ok(a) = listener.local_addr() {
            eprintln!("tokio-chat accepting connections on {a}");
        }
        accept_loop(listener, args).await;
    });
    Ok(())
}
