//! Soak driver for `echo-server`: many connections with a mix of
//! behaviours for a fixed time, then an account of every line.
//!
//! ```text
//! cargo run --release --bin soak -- --addr 127.0.0.1:4096 --pid PID [--secs 60] [--conns 1000]
//! ```
//!
//! `bench/scripts/soak.sh` builds the server and this driver, starts the server
//! on a free loopback port and runs it. Connection `i` behaves as:
//!
//! | share | behaviour | well-behaved |
//! |---|---|---|
//! | 40% | ping-pong: one line, wait for its reply, again | yes |
//! | 25% | pipelining: 32 lines at once, wait for all 32 replies, again | yes |
//! | 15% | churn: connect, one line, its reply, close, reconnect | yes |
//! | 10% | overlong: a line over the server's limit, then a normal line; expects `error: ...` then the echo | yes |
//! | 5% | never-reading: writes lines without reading until blocked, holds 3 s, resets, reconnects | no |
//! | 5% | reset: a few lines and half a line, then RST (SO_LINGER 0) without reading, reconnect | no |
//!
//! Every reply of a well-behaved connection is checked byte for byte, in
//! order. After `--secs` no new round starts; replies still due get up to
//! 15 s; then every connection is closed and the server's descriptor count
//! must come back to where it started.
//!
//! It prints lines sent and answered by well-behaved connections, errors by
//! kind, and the server's RSS and descriptor count (from /proc/PID) at the
//! start and the end. Exit status 1 if a well-behaved line went unanswered
//! or was answered wrongly, an overlong line got no error reply,
//! descriptors leaked, or the server died; 2 for bad arguments.
//!
//! One thread, one `mio::Poll`, every loop bounded in time.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Longest line the server accepts; the script starts it with this.
const DEFAULT_MAX_LINE: usize = 1024;
const PREFIX: &[u8] = b"You said: ";
const PIPELINE_DEPTH: usize = 32;
const NEVER_READ_HOLD: Duration = Duration::from_secs(3);
const DRAIN: Duration = Duration::from_secs(15);
const FD_SETTLE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    PingPong,
    Pipeline,
    Churn,
    Overlong,
    NeverRead,
    Reset,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 20 {
            0..=7 => Kind::PingPong,
            8..=12 => Kind::Pipeline,
            13..=15 => Kind::Churn,
            16..=17 => Kind::Overlong,
            18 => Kind::NeverRead,
            _ => Kind::Reset,
        }
    }

    fn well_behaved(self) -> bool {
        !matches!(self, Kind::NeverRead | Kind::Reset)
    }
}

enum Expect {
    Echo(Vec<u8>),
    Error,
}

struct Conn {
    kind: Kind,
    stream: Option<TcpStream>,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    expect: VecDeque<Expect>,
    seq: u64,
    /// Rounds completed on the current connection (churn closes after one).
    rounds: u32,
    /// A timed action: connect when `stream` is `None`, else the kind's
    /// action (never-read: end of hold; reset: send the RST).
    due: Option<Instant>,
}

#[derive(Default)]
struct Stats {
    /// Echo lines sent by well-behaved connections.
    sent: u64,
    /// Of those, answered with exactly the right reply, in order.
    answered: u64,
    /// Replies that did not match what was expected.
    mismatched: u64,
    overlong_sent: u64,
    overlong_errors: u64,
    connects: u64,
    never_read_bytes: u64,
    never_read_closed_by_server: u64,
    never_read_reset_by_us: u64,
    resets_sent: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_insert(0) += 1;
    }
}

struct Args {
    addr: SocketAddr,
    pid: Option<u32>,
    secs: f64,
    conns: usize,
    max_line: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut pid = None;
    let mut secs = 60.0;
    let mut conns = 1000;
    let mut max_line = DEFAULT_MAX_LINE;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--addr" => addr = Some(val("--addr")?.parse().map_err(|e| format!("--addr: {e}"))?),
            "--pid" => pid = Some(val("--pid")?.parse().map_err(|e| format!("--pid: {e}"))?),
            "--secs" => secs = val("--secs")?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--conns" => {
                conns = val("--conns")?
                    .parse()
                    .map_err(|e| format!("--conns: {e}"))?
            }
            "--max-line" => {
                max_line = val("--max-line")?
                    .parse()
                    .map_err(|e| format!("--max-line: {e}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let addr: SocketAddr = addr.ok_or("--addr is required")?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    if !(secs > 0.0 && secs <= 24.0 * 3600.0) || conns == 0 || conns > 15_000 {
        return Err("--secs must be in (0, 86400] and --conns in [1, 15000]".into());
    }
    Ok(Args {
        addr,
        pid,
        secs,
        conns,
        max_line,
    })
}

// ----- /proc ---------------------------------------------------------------

fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn proc_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

// ----- the driver ------------------------------------------------------------

struct Driver {
    poll: Poll,
    addr: SocketAddr,
    max_line: usize,
    conns: Vec<Conn>,
    stats: Stats,
    stopping: bool,
}

fn connect(addr: SocketAddr, small_rcvbuf: bool) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    if small_rcvbuf {
        // A small window makes the server's output stall sooner.
        s.set_recv_buffer_size(16 * 1024)?;
    }
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std: std::net::TcpStream = s.into();
    Ok(TcpStream::from_std(std))
}

fn line_for(i: usize, seq: u64) -> Vec<u8> {
    let pad = (seq.wrapping_mul(7919) ^ i as u64) % 60;
    let mut l = format!("c{i} n{seq} ").into_bytes();
    l.extend(std::iter::repeat_n(b'p', pad as usize));
    l
}

impl Driver {
    fn open(&mut self, i: usize) {
        let small = self.conns[i].kind == Kind::NeverRead;
        match connect(self.addr, small) {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.stats.error(format!("register: {e}"));
                    self.conns[i].due = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                self.stats.connects += 1;
                let c = &mut self.conns[i];
                c.stream = Some(s);
                c.connected = false;
                c.out.clear();
                c.out_pos = 0;
                c.inbuf.clear();
                c.expect.clear();
                c.rounds = 0;
                c.due = None;
            }
            Err(e) => {
                self.stats.error(format!("connect: {}", e.kind()));
                self.conns[i].due = Some(Instant::now() + Duration::from_millis(100));
            }
        }
    }

    /// Closes connection `i` (with RST if `reset`), and schedules a new one
    /// after `again` unless stopping.
    fn close(&mut self, i: usize, reset: bool, again: Option<Duration>) {
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            if reset {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.connected = false;
        c.expect.clear();
        c.out.clear();
        c.out_pos = 0;
        c.due = match again {
            Some(d) if !self.stopping => Some(Instant::now() + d),
            _ => None,
        };
    }

    fn queue_line(&mut self, i: usize, expect_error: bool) {
        let max_line = self.max_line;
        let c = &mut self.conns[i];
        c.seq += 1;
        if expect_error {
            c.out.extend(std::iter::repeat_n(b'o', max_line + 100));
            c.out.push(b'\n');
            c.expect.push_back(Expect::Error);
            self.stats.overlong_sent += 1;
        } else {
            let line = line_for(i, c.seq);
            c.out.extend_from_slice(&line);
            c.out.push(b'\n');
            c.expect.push_back(Expect::Echo(line));
            self.stats.sent += 1;
        }
    }

    /// Starts the next round of a well-behaved connection.
    fn next_round(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        match self.conns[i].kind {
            Kind::PingPong => self.queue_line(i, false),
            Kind::Pipeline => {
                for _ in 0..PIPELINE_DEPTH {
                    self.queue_line(i, false);
                }
            }
            Kind::Churn => {
                if self.conns[i].rounds >= 1 {
                    self.close(i, false, Some(Duration::from_millis(50)));
                    return;
                }
                self.queue_line(i, false);
            }
            Kind::Overlong => {
                self.queue_line(i, true);
                self.queue_line(i, false);
            }
            Kind::NeverRead | Kind::Reset => return,
        }
        self.flush(i);
    }

    fn connected(&mut self, i: usize) {
        self.conns[i].connected = true;
        match self.conns[i].kind {
            Kind::NeverRead => self.flood(i),
            Kind::Reset => {
                let c = &mut self.conns[i];
                for _ in 0..5 {
                    c.seq += 1;
                    c.out.extend_from_slice(&line_for(i, c.seq));
                    c.out.push(b'\n');
                }
                c.out.extend_from_slice(b"half a li");
                self.flush(i);
                self.conns[i].due = Some(Instant::now() + Duration::from_millis(20));
            }
            _ => self.next_round(i),
        }
    }

    /// Writes queued output until done or blocked. False if the connection
    /// failed (and was handled).
    fn flush(&mut self, i: usize) -> bool {
        loop {
            let c = &mut self.conns[i];
            if c.out_pos >= c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                return true;
            }
            let Some(s) = c.stream.as_mut() else {
                return false;
            };
            if !c.connected {
                return true;
            }
            match s.write(&c.out[c.out_pos..]) {
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed(i, "write", &e);
                    return false;
                }
            }
        }
    }

    /// Never-reading: write lines until the socket blocks.
    fn flood(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        for _ in 0..1000 {
            if self.conns[i].out.is_empty() {
                let c = &mut self.conns[i];
                for _ in 0..100 {
                    c.seq += 1;
                    c.out.extend_from_slice(&line_for(i, c.seq));
                    c.out.push(b'\n');
                }
            }
            let before = self.conns[i].out_pos;
            let len = self.conns[i].out.len();
            if !self.flush(i) {
                return;
            }
            let c = &mut self.conns[i];
            let wrote = if c.out.is_empty() {
                len - before
            } else {
                c.out_pos - before
            };
            self.stats.never_read_bytes += wrote as u64;
            if !c.out.is_empty() {
                // Blocked: hold from the first block on.
                if c.due.is_none() {
                    c.due = Some(Instant::now() + NEVER_READ_HOLD);
                }
                return;
            }
        }
    }

    /// A connection failed on its own (reset, EOF, error).
    fn failed(&mut self, i: usize, op: &str, e: &io::Error) {
        let kind = self.conns[i].kind;
        match kind {
            Kind::NeverRead => {
                // The server gave up on it (write timeout): expected.
                self.stats.never_read_closed_by_server += 1;
                self.close(i, true, Some(Duration::from_millis(50)));
            }
            Kind::Reset => self.close(i, true, Some(Duration::from_millis(50))),
            _ => {
                let pending = self.conns[i].expect.len();
                self.stats.error(format!(
                    "{kind:?} {op}: {} ({pending} replies pending)",
                    e.kind()
                ));
                self.close(i, false, Some(Duration::from_millis(100)));
            }
        }
    }

    fn readable(&mut self, i: usize) {
        if matches!(self.conns[i].kind, Kind::NeverRead | Kind::Reset) {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(s) = self.conns[i].stream.as_mut() else {
                return;
            };
            match s.read(&mut buf) {
                Ok(0) => {
                    let e = io::Error::new(ErrorKind::UnexpectedEof, "closed by server");
                    self.failed(i, "read", &e);
                    return;
                }
                Ok(n) => {
                    self.conns[i].inbuf.extend_from_slice(&buf[..n]);
                    self.replies(i);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed(i, "read", &e);
                    return;
                }
            }
        }
    }

    fn replies(&mut self, i: usize) {
        let mut start = 0;
        let mut round_done = false;
        {
            let c = &mut self.conns[i];
            while let Some(off) = memchr::memchr(b'\n', &c.inbuf[start..]) {
                let line = &c.inbuf[start..start + off];
                start += off + 1;
                match c.expect.pop_front() {
                    Some(Expect::Echo(sent))
                        if line.len() == PREFIX.len() + sent.len()
                            && line.starts_with(PREFIX)
                            && line[PREFIX.len()..] == sent[..] =>
                    {
                        self.stats.answered += 1
                    }
                    Some(Expect::Error) if line.starts_with(b"error: ") => {
                        self.stats.overlong_errors += 1
                    }
                    Some(_) => {
                        self.stats.mismatched += 1;
                        let s = String::from_utf8_lossy(&line[..line.len().min(60)]).into_owned();
                        *self
                            .stats
                            .errors
                            .entry(format!("wrong reply: {s}"))
                            .or_insert(0) += 1;
                    }
                    None => {
                        self.stats.mismatched += 1;
                        *self
                            .stats
                            .errors
                            .entry("reply nobody asked for".into())
                            .or_insert(0) += 1;
                    }
                }
                if c.expect.is_empty() {
                    round_done = true;
                }
            }
            c.inbuf.drain(..start);
        }
        if round_done && self.conns[i].expect.is_empty() {
            self.conns[i].rounds += 1;
            self.next_round(i);
        }
    }

    fn event(&mut self, i: usize, ev: &mio::event::Event) {
        if self.conns[i].stream.is_none() {
            return;
        }
        if !self.conns[i].connected {
            let s = self.conns[i].stream.as_ref().unwrap();
            match s.take_error() {
                Ok(Some(e)) | Err(e) => {
                    self.stats.error(format!("connect: {}", e.kind()));
                    self.close(i, false, Some(Duration::from_millis(100)));
                    return;
                }
                Ok(None) => {}
            }
            match s.peer_addr() {
                Ok(_) => self.connected(i),
                Err(e) if e.kind() == ErrorKind::NotConnected && !ev.is_error() => return,
                Err(e) => {
                    self.stats.error(format!("connect: {}", e.kind()));
                    self.close(i, false, Some(Duration::from_millis(100)));
                    return;
                }
            }
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable(i);
        }
        if self.conns[i].stream.is_some() && ev.is_writable() {
            if self.conns[i].kind == Kind::NeverRead {
                self.flood(i);
            } else {
                self.flush(i);
            }
        }
    }

    fn timed(&mut self, i: usize, now: Instant) {
        let Some(due) = self.conns[i].due else {
            return;
        };
        if due > now {
            return;
        }
        self.conns[i].due = None;
        if self.conns[i].stream.is_none() {
            if !self.stopping {
                self.open(i);
            }
            return;
        }
        match self.conns[i].kind {
            Kind::NeverRead => {
                // End of the hold: did the server already close it (write
                // timeout)? A pending error or a failing write says so.
                let closed = match self.conns[i].stream.as_mut() {
                    Some(s) => match s.take_error() {
                        Ok(Some(_)) | Err(_) => true,
                        Ok(None) => matches!(
                            s.write(b"x\n"),
                            Err(e) if e.kind() != ErrorKind::WouldBlock
                        ),
                    },
                    None => true,
                };
                if closed {
                    self.stats.never_read_closed_by_server += 1;
                } else {
                    self.stats.never_read_reset_by_us += 1;
                }
                self.close(i, true, Some(Duration::from_millis(50)));
            }
            Kind::Reset => {
                self.stats.resets_sent += 1;
                self.close(i, true, Some(Duration::from_millis(50)));
            }
            _ => {}
        }
    }

    /// True once every well-behaved connection has no reply due.
    fn drained(&self) -> bool {
        self.conns
            .iter()
            .all(|c| !c.kind.well_behaved() || c.stream.is_none() || c.expect.is_empty())
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let _ = credit_bench::loadgen::raise_nofile_limit();
    let pid = args.pid;
    if let Some(p) = pid {
        match std::fs::read_to_string(format!("/proc/{p}/comm")) {
            Ok(name) => println!("soak: server process {p} ({})", name.trim()),
            Err(e) => {
                eprintln!("soak: no process {p}: {e}");
                std::process::exit(2);
            }
        }
    }
    let start_rss = pid.and_then(|p| proc_kb(p, "VmRSS"));
    let start_fds = pid.and_then(proc_fds);

    let mut d = Driver {
        poll: Poll::new().expect("poll"),
        addr: args.addr,
        max_line: args.max_line,
        conns: (0..args.conns)
            .map(|i| Conn {
                kind: Kind::of(i),
                stream: None,
                connected: false,
                out: Vec::new(),
                out_pos: 0,
                inbuf: Vec::new(),
                expect: VecDeque::new(),
                seq: 0,
                rounds: 0,
                due: None,
            })
            .collect(),
        stats: Stats::default(),
        stopping: false,
    };
    let mut mix: BTreeMap<Kind, usize> = BTreeMap::new();
    for c in &d.conns {
        *mix.entry(c.kind).or_insert(0) += 1;
    }
    println!(
        "soak: {} s, {} connections to {} (mix: {mix:?})",
        args.secs, args.conns, args.addr
    );
    for i in 0..args.conns {
        d.open(i);
    }

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.secs);
    let mut drain_deadline = None;
    let mut events = Events::with_capacity(4096);
    let mut next_report = started + Duration::from_secs(10);
    let mut next_scan = started;
    let mut next_sample = started;
    let mut last_fds = start_fds;
    let (mut peak_fds, mut last_answered) = (start_fds.unwrap_or(0), 0u64);
    let mut server_died = false;
    loop {
        let now = Instant::now();
        if !d.stopping && now >= end {
            d.stopping = true;
            drain_deadline = Some(now + DRAIN);
            for i in 0..d.conns.len() {
                if !d.conns[i].kind.well_behaved() {
                    d.close(i, true, None);
                }
                d.conns[i].due = None;
            }
        }
        if d.stopping && (d.drained() || now >= drain_deadline.unwrap()) {
            break;
        }
        if let Err(e) = d.poll.poll(&mut events, Some(Duration::from_millis(10))) {
            if e.kind() != ErrorKind::Interrupted {
                panic!("poll: {e}");
            }
        }
        for ev in events.iter() {
            d.event(ev.token().0, ev);
        }
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + Duration::from_millis(10);
            for i in 0..d.conns.len() {
                d.timed(i, now);
            }
        }
        if now >= next_sample {
            next_sample = now + Duration::from_secs(1);
            let fds = pid.and_then(proc_fds);
            if pid.is_some() && fds.is_none() {
                server_died = true;
                eprintln!("soak: the server process is gone");
                break;
            }
            peak_fds = peak_fds.max(fds.unwrap_or(0));
            last_fds = fds;
        }
        if now >= next_report {
            next_report = now + Duration::from_secs(10);
            let fds = last_fds;
            println!(
                "  {:>5.0} s: {} answered (+{}/s), {} connects, server fds {}, RSS {} kB",
                now.duration_since(started).as_secs_f64(),
                d.stats.answered,
                (d.stats.answered - last_answered) / 10,
                d.stats.connects,
                fds.map_or("?".into(), |f| f.to_string()),
                pid.and_then(|p| proc_kb(p, "VmRSS"))
                    .map_or("?".into(), |r| r.to_string()),
            );
            last_answered = d.stats.answered;
        }
    }
    let ran = started.elapsed();
    // Close everything, then let the server catch up.
    for i in 0..d.conns.len() {
        d.close(i, false, None);
    }
    let mut end_fds = pid.and_then(proc_fds);
    if let (Some(p), Some(start)) = (pid, start_fds) {
        let deadline = Instant::now() + FD_SETTLE;
        while let Some(n) = proc_fds(p) {
            end_fds = Some(n);
            if n <= start || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if proc_fds(p).is_none() {
            server_died = true;
        }
    }
    let end_rss = pid.and_then(|p| proc_kb(p, "VmRSS"));
    let peak_rss = pid.and_then(|p| proc_kb(p, "VmHWM"));

    let s = &d.stats;
    let unanswered = s.sent.saturating_sub(s.answered + s.mismatched);
    println!("soak: ran {:.1} s", ran.as_secs_f64());
    println!(
        "well-behaved lines: sent {}, answered {}, unanswered {}, wrong {} ({:.0} answered/s)",
        s.sent,
        s.answered,
        unanswered,
        s.mismatched,
        s.answered as f64 / ran.as_secs_f64()
    );
    println!(
        "overlong lines: sent {}, error replies {}",
        s.overlong_sent, s.overlong_errors
    );
    println!(
        "connections: {} opened; never-reading: {} bytes written, {} closed by the server, {} reset by us; {} resets sent",
        s.connects,
        s.never_read_bytes,
        s.never_read_closed_by_server,
        s.never_read_reset_by_us,
        s.resets_sent
    );
    if s.errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors by kind:");
        for (k, n) in &s.errors {
            println!("  {n:>8}  {k}");
        }
    }
    let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    println!(
        "server RSS: start {} kB, end {} kB, peak {} kB",
        show(start_rss),
        show(end_rss),
        show(peak_rss)
    );
    println!(
        "server fds: start {}, end {}, peak sampled {}",
        show(start_fds.map(|v| v as u64)),
        show(end_fds.map(|v| v as u64)),
        peak_fds
    );

    let mut failures = Vec::new();
    if unanswered > 0 || s.answered != s.sent {
        failures.push(format!(
            "{} well-behaved lines not answered",
            s.sent - s.answered
        ));
    }
    if s.mismatched > 0 {
        failures.push(format!("{} wrong replies", s.mismatched));
    }
    if s.overlong_errors != s.overlong_sent {
        failures.push(format!(
            "{} overlong lines without an error reply",
            s.overlong_sent - s.overlong_errors
        ));
    }
    if let (Some(a), Some(b)) = (start_fds, end_fds) {
        if b > a {
            failures.push(format!(
                "server descriptors leaked: {a} at the start, {b} at the end"
            ));
        }
    }
    if server_died {
        failures.push("the server process died".into());
    }
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        println!("soak: FAIL: {}", failures.join("; "));
        std::process::exit(1);
    }
}
