//! An in-process chat server on 127.0.0.1 with a port the kernel picks,
//! and a user: a raw peer that has read its welcome.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use credit_actors::net::ListenSpec;
use credit_actors::{ActorId, Addr, Config, Reactor, ReactorHandle};
use credit_chat::{ChatConfig, ChatRoom, ChatService, RoomMsg, ServiceMsg, ROOM, SERVICE};
use credit_testkit::{wait_for_value as wait_for, Peer, WAIT};

/// The chat-server binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_chat-server");

/// A chat server on its own reactor thread. Shut down and joined
/// (bounded) on drop.
pub struct Server {
    pub handle: ReactorHandle,
    pub addr: SocketAddr,
    join: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// A server with default settings.
    pub fn start() -> Server {
        Server::start_config(ChatConfig::default())
    }

    /// A server with these settings, on 127.0.0.1 and a port the kernel
    /// picks.
    pub fn start_config(config: ChatConfig) -> Server {
        let config = ChatConfig {
            listen: ListenSpec::host_port("127.0.0.1", 0),
            ..config
        };
        let (handle, join) = Reactor::start(Config::default(), |_| {}).expect("start reactor");
        handle
            .spawn(move || credit_chat::supervisor(config))
            .expect("spawn the supervisor");
        let service = wait_for(|| handle.whereis::<ChatService>(SERVICE).ok().flatten());
        let addr = handle
            .request_wait(service, ServiceMsg::WhenReady, WAIT)
            .expect("the chat service did not report its address");
        Server {
            handle,
            addr,
            join: Some(join),
        }
    }

    /// The room now (after a restart, the new one).
    pub fn room(&self) -> Addr<ChatRoom> {
        wait_for(|| self.handle.whereis::<ChatRoom>(ROOM).ok().flatten())
    }

    /// The current accepting service.
    pub fn service(&self) -> Addr<ChatService> {
        wait_for(|| self.handle.whereis::<ChatService>(SERVICE).ok().flatten())
    }

    /// The users present: name and agent, in order of arrival.
    pub fn users(&self) -> Vec<(String, ActorId)> {
        self.handle
            .request_wait(self.room(), RoomMsg::Users, WAIT)
            .expect("Users request")
    }

    /// Waits until exactly `names` are present, in this order.
    pub fn wait_users(&self, names: &[&str]) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now: Vec<String> = self.users().into_iter().map(|(n, _)| n).collect();
            if now == names {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "users {now:?}, expected {names:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A user's agent, by name.
    pub fn agent_of(&self, name: &str) -> ActorId {
        self.users()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    /// A new user: connects and reads its welcome (`you are`, `present:`
    /// and its own arrival). Returns the user and the `present:` line.
    pub fn join(&self) -> (User, String) {
        join_at(self.addr)
    }
}

/// A new user of the server at `addr`: connects and reads its welcome
/// (`you are`, `present:` and its own arrival). Returns the user and the
/// `present:` line.
pub fn join_at(addr: SocketAddr) -> (User, String) {
    let mut peer = Peer::connect(addr);
    let you = peer.read_line();
    let name = you
        .strip_prefix("you are ")
        .unwrap_or_else(|| panic!("expected 'you are', got {you:?}"))
        .to_string();
    let present = peer.read_line();
    assert!(present.starts_with("present:"), "{present:?}");
    assert_eq!(peer.read_line(), format!("{name} arrived"));
    (User { peer, name }, present)
}

/// `a` says 1,000-byte lines until `c` hears that `slow` (who never reads)
/// left as too slow; `c` must hear every line before that. Calls `each`
/// with the count of lines sent after each one. Returns that count.
pub fn flood_until_dropped(
    a: &mut User,
    c: &mut User,
    slow: &str,
    mut each: impl FnMut(usize),
) -> usize {
    let line = "y".repeat(1000);
    let mut sent = 0;
    let mut dropped = false;
    while !dropped {
        assert!(sent < 100_000, "the slow user was never dropped");
        a.say(&line);
        sent += 1;
        loop {
            let l = c.line();
            if l == format!("{slow} left (too slow)") {
                dropped = true;
            } else {
                assert_eq!(l, format!("{} says '{line}'", a.name));
                break;
            }
        }
        each(sent);
    }
    sent
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(join) = self.join.take() {
            let deadline = Instant::now() + WAIT;
            while !join.is_finished() {
                if Instant::now() >= deadline {
                    eprintln!("reactor thread did not stop within {WAIT:?}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let result = join.join();
            if !std::thread::panicking() {
                result
                    .expect("reactor thread panicked")
                    .expect("reactor failed");
            }
        }
    }
}

/// A connected user.
pub struct User {
    pub peer: Peer,
    pub name: String,
}

impl User {
    /// Sends a line.
    pub fn say(&mut self, text: &str) {
        self.peer.send_line(text);
    }

    /// The next line.
    pub fn line(&mut self) -> String {
        self.peer.read_line()
    }

    /// Asserts the next lines are `want`, in order.
    pub fn expect(&mut self, want: &[&str]) {
        for w in want {
            assert_eq!(self.line(), *w, "{} expected {w:?}", self.name);
        }
    }
}

/// A `redis-server` on 127.0.0.1, killed on drop.
pub struct RedisServer {
    pub port: u16,
    pub child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, or says why not and returns `None`.
    pub fn start() -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .ok()?;
        let mut server = RedisServer { port, child: None };
        if !server.spawn() {
            eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        Some(server)
    }

    pub fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts");
    }

    /// Runs `redis-cli` against the server; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Sends the server a signal (`-STOP`, `-CONT`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
