//! The simulated network: connections as pairs of in-memory pipes with a
//! latency each, listeners with a backlog, and edge-triggered readiness
//! reported to the simulated reactor, all on a virtual clock. No file
//! descriptor is opened for it and no thread runs it: it lives in a
//! thread-local, and the socket actors' streams are handles into it.
//!
//! Its fidelity is the kernel's where the socket actors depend on it:
//! - a read returns what has arrived, up to the room given; it returns
//!   less than the room only when it took everything that has arrived
//!   (a TCP socket's short read means the queue was drained);
//! - a write takes what the pipe has room for, and a writer refused for
//!   lack of room gets a writable edge when the reader frees some;
//! - readiness is edge-triggered: an event for each arrival, the FIN and
//!   the reset, plus the state at registration, as epoll reports it;
//! - a close with unread input sends a reset, otherwise a FIN behind the
//!   data; a write after the peer reset fails.
//!
//! What is seeded (from [`NetConfig`] and the one generator): each
//! connection's latency and pipe sizes, how a write is cut into
//! segments, arrival jitter, spurious events, refused connects and
//! accepts failing for lack of descriptors.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use mio::{Interest, Token};

use crate::reactor::Ready;
use crate::sim::Rng;

thread_local! {
    static NET: RefCell<Option<Net>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's simulated network, if there is one.
pub(crate) fn with<R>(f: impl FnOnce(&mut Net) -> R) -> Option<R> {
    NET.with(|n| n.borrow_mut().as_mut().map(f))
}

/// Installs `net` as this thread's network; false if there is one.
pub(crate) fn install(net: Net) -> bool {
    NET.with(|n| {
        let mut n = n.borrow_mut();
        if n.is_some() {
            return false;
        }
        *n = Some(net);
        true
    })
}

/// Removes this thread's network.
pub(crate) fn remove() -> Option<Net> {
    NET.with(|n| n.borrow_mut().take())
}

/// The virtual time, on a thread with a simulated network. Panics if the
/// network is in use (a clock read from inside one of its calls), rather
/// than let the machine's clock into a simulated run.
pub(crate) fn virtual_now() -> Option<Instant> {
    NET.with(|n| match n.try_borrow() {
        Ok(net) => net.as_ref().map(|n| n.now),
        Err(_) => panic!("the clock read inside a call of the simulated network"),
    })
}

/// The address the simulated server listens on.
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

/// The simulated network's settings: the ranges the seed draws from, and
/// how often each fault is injected (in parts per thousand).
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Each connection's one-way latency is drawn from zero to this.
    pub latency_max: Duration,
    /// Extra delay a segment may take on top of the latency (segments of
    /// one pipe still arrive in order).
    pub jitter_max: Duration,
    /// Each pipe's size (bytes in flight and unread) is drawn from this
    /// range: as small as one byte, so writes are cut down to one byte.
    pub pipe_min: usize,
    /// See `pipe_min`.
    pub pipe_max: usize,
    /// A write is cut into segments (arriving apart) this often.
    pub split_permille: u32,
    /// A spurious readiness event is added to a poll this often.
    pub spurious_permille: u32,
    /// A connect is refused this often.
    pub refuse_permille: u32,
    /// An accept fails with `EMFILE` (out of descriptors) this often.
    pub emfile_permille: u32,
    /// Most connections waiting in a listener's backlog; past it, connects
    /// are refused.
    pub backlog: usize,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            latency_max: Duration::from_micros(500),
            jitter_max: Duration::from_micros(100),
            pipe_min: 1,
            pipe_max: 4096,
            split_permille: 300,
            spurious_permille: 20,
            refuse_permille: 10,
            emfile_permille: 50,
            backlog: 64,
        }
    }
}

/// Counters of what the network did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Connections made.
    pub connects: u64,
    /// Connects refused.
    pub refused: u64,
    /// Accepts failed with `EMFILE`.
    pub emfile: u64,
    /// Bytes written, both ways.
    pub bytes: u64,
    /// Segments sent, both ways.
    pub segments: u64,
    /// Resets sent, both ways.
    pub resets: u64,
    /// Spurious events reported.
    pub spurious: u64,
    /// Readiness events reported.
    pub events: u64,
}

/// One direction of a connection: written by one end, read by the other.
#[derive(Debug)]
struct Pipe {
    segs: VecDeque<Seg>,
    /// Bytes in `segs`.
    queued: usize,
    cap: usize,
    /// When the writer's FIN arrives (behind all the data).
    fin: Option<Instant>,
    fin_told: bool,
    /// When the writer's reset arrives.
    rst: Option<Instant>,
    rst_told: bool,
    /// A call of the reader's end returned the reset: as on Linux, the
    /// error is reported once; reads after it see the end of input and
    /// writes a broken pipe.
    rst_reported: bool,
    /// The writer was refused for lack of room: it gets a writable edge
    /// when the reader frees some.
    blocked: bool,
    /// The writer shut its side (no more writes).
    shut: bool,
    /// The arrival time of the last segment: later ones never overtake.
    last: Instant,
}

#[derive(Debug)]
struct Seg {
    at: Instant,
    data: Vec<u8>,
    told: bool,
}

impl Pipe {
    fn new(cap: usize, now: Instant) -> Pipe {
        Pipe {
            segs: VecDeque::new(),
            queued: 0,
            cap,
            fin: None,
            fin_told: false,
            rst: None,
            rst_told: false,
            rst_reported: false,
            blocked: false,
            shut: false,
            last: now,
        }
    }

    fn arrived(&self, now: Instant) -> bool {
        self.segs.front().is_some_and(|s| s.at <= now)
    }

    fn reset_arrived(&self, now: Instant) -> bool {
        self.rst.is_some_and(|t| t <= now)
    }

    fn fin_arrived(&self, now: Instant) -> bool {
        self.segs.is_empty() && self.fin.is_some_and(|t| t <= now)
    }

    /// The earliest arrival not yet reported.
    fn next_arrival(&self) -> Option<Instant> {
        let seg = self.segs.iter().find(|s| !s.told).map(|s| s.at);
        let fin = self.fin.filter(|_| !self.fin_told);
        let rst = self.rst.filter(|_| !self.rst_told);
        [seg, fin, rst].into_iter().flatten().min()
    }

    /// Takes up to `max` arrived bytes into `out`.
    fn take(&mut self, now: Instant, max: usize, out: &mut impl BufMut) -> usize {
        let mut n = 0;
        while n < max {
            let Some(seg) = self.segs.front_mut() else {
                break;
            };
            if seg.at > now {
                break;
            }
            let k = (max - n).min(seg.data.len());
            out.put_slice(&seg.data[..k]);
            seg.data.drain(..k);
            n += k;
            if seg.data.is_empty() {
                self.segs.pop_front();
            }
        }
        self.queued -= n;
        n
    }
}

/// Which end of a connection: the one that connected, or the accepted.
const CONNECTOR: usize = 0;
const ACCEPTED: usize = 1;

#[derive(Debug)]
struct Conn {
    /// `addrs[e]` is end `e`'s address.
    addrs: [SocketAddr; 2],
    latency: Duration,
    /// `pipes[e]` is written by end `e` and read by the other.
    pipes: [Pipe; 2],
    /// Each end's registration, if its reactor registered it.
    tokens: [Option<Token>; 2],
    /// Each end is still open (its handle alive).
    open: [bool; 2],
    /// Each end's first registration, kept after it closes.
    first_token: [Option<Token>; 2],
}

#[derive(Debug)]
struct Listen {
    addr: SocketAddr,
    /// Connections waiting, with when their handshake completes.
    backlog: VecDeque<(usize, Instant)>,
    told: usize,
    token: Option<Token>,
    open: bool,
}

/// The network of one simulation.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) now: Instant,
    pub(crate) rng: Rng,
    pub(crate) config: NetConfig,
    conns: Vec<Conn>,
    listeners: Vec<Listen>,
    /// Readiness to report at the next poll (edges raised by reads and
    /// registrations).
    pending: Vec<(Token, u8)>,
    next_port: u16,
    pub(crate) stats: NetStats,
}

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;
const WRITE_CLOSED: u8 = 8;
const ERROR: u8 = 16;

impl Net {
    pub(crate) fn new(now: Instant, rng: Rng, config: NetConfig) -> Net {
        Net {
            now,
            rng,
            config,
            conns: Vec::new(),
            listeners: Vec::new(),
            pending: Vec::new(),
            next_port: 40_000,
            stats: NetStats::default(),
        }
    }

    fn roll(&mut self, permille: u32) -> bool {
        permille > 0 && self.rng.below(1000) < u64::from(permille)
    }

    // ----- listeners -------------------------------------------------------

    fn bind(&mut self, port: u16) -> io::Result<usize> {
        let port = if port == 0 {
            self.next_port += 1;
            self.next_port
        } else {
            port
        };
        let addr = SocketAddr::new(SERVER_IP, port);
        if self.listeners.iter().any(|l| l.open && l.addr == addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        self.listeners.push(Listen {
            addr,
            backlog: VecDeque::new(),
            told: 0,
            token: None,
            open: true,
        });
        Ok(self.listeners.len() - 1)
    }

    fn accept(&mut self, l: usize) -> io::Result<(usize, SocketAddr)> {
        let now = self.now;
        let ready = self.listeners[l]
            .backlog
            .front()
            .is_some_and(|&(_, at)| at <= now);
        if !ready {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.roll(self.config.emfile_permille) {
            self.stats.emfile += 1;
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let listen = &mut self.listeners[l];
        let (c, _) = listen.backlog.pop_front().expect("checked above");
        listen.told = listen.told.saturating_sub(1);
        Ok((c, self.conns[c].addrs[CONNECTOR]))
    }

    fn close_listener(&mut self, l: usize) {
        let listen = &mut self.listeners[l];
        listen.open = false;
        listen.token = None;
        let waiting: Vec<usize> = listen.backlog.drain(..).map(|(c, _)| c).collect();
        // As a kernel does with a listening socket's queue: reset.
        for c in waiting {
            self.reset(c, ACCEPTED);
        }
    }

    // ----- connections -----------------------------------------------------

    /// Connects to `addr`: a new connection in the listener's backlog, or
    /// refused (no listener, a full backlog, or the fault).
    pub(crate) fn connect(&mut self, addr: SocketAddr) -> io::Result<usize> {
        let l = self
            .listeners
            .iter()
            .position(|l| l.open && l.addr.port() == addr.port() && addr.ip() == SERVER_IP);
        let refused = match l {
            None => true,
            Some(l) => {
                self.listeners[l].backlog.len() >= self.config.backlog
                    || self.roll(self.config.refuse_permille)
            }
        };
        if refused {
            self.stats.refused += 1;
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        let l = l.expect("refused otherwise");
        let n = self.conns.len();
        let client = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 1, (n >> 8) as u8, n as u8)),
            20_000 + (n % 40_000) as u16,
        );
        let latency = self.draw_duration(self.config.latency_max);
        let pipe = |net: &mut Net| {
            let cap = net.config.pipe_min
                + net
                    .rng
                    .below((net.config.pipe_max - net.config.pipe_min + 1) as u64)
                    as usize;
            Pipe::new(cap.max(1), net.now)
        };
        let pipes = [pipe(self), pipe(self)];
        self.conns.push(Conn {
            addrs: [client, self.listeners[l].addr],
            latency,
            pipes,
            tokens: [None, None],
            open: [true, true],
            first_token: [None, None],
        });
        let at = self.now + latency;
        self.listeners[l].backlog.push_back((n, at));
        self.stats.connects += 1;
        Ok(n)
    }

    /// A duration from zero to `max`, drawn.
    pub(crate) fn draw_duration(&mut self, max: Duration) -> Duration {
        let ns = max.as_nanos() as u64;
        Duration::from_nanos(if ns == 0 { 0 } else { self.rng.below(ns + 1) })
    }

    /// Reads what has arrived at end `e`, up to `max` bytes. `Ok(0)` is
    /// the FIN.
    pub(crate) fn read(
        &mut self,
        c: usize,
        e: usize,
        max: usize,
        out: &mut impl BufMut,
    ) -> io::Result<usize> {
        let now = self.now;
        let conn = &mut self.conns[c];
        let pipe = &mut conn.pipes[1 - e];
        // As a kernel does: what arrived before the reset is read first.
        let n = pipe.take(now, max, out);
        if n > 0 {
            if pipe.blocked {
                pipe.blocked = false;
                if let Some(t) = conn.tokens[1 - e] {
                    self.pending.push((t, WRITABLE));
                }
            }
            return Ok(n);
        }
        // A FIN that came before the reset reads as the end of input, as
        // on Linux; a reset that came first is the error.
        let fin_first = pipe.fin_arrived(now) && pipe.fin <= pipe.rst.or(pipe.fin);
        if pipe.reset_arrived(now) && !fin_first {
            if pipe.rst_reported {
                return Ok(0);
            }
            pipe.rst_reported = true;
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if max == 0 || fin_first {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Writes from end `e`: what the pipe has room for, cut into
    /// segments.
    pub(crate) fn write(&mut self, c: usize, e: usize, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let now = self.now;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        {
            let conn = &mut self.conns[c];
            if conn.pipes[e].shut {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let incoming = &mut conn.pipes[1 - e];
            if incoming.reset_arrived(now) {
                if incoming.rst_reported {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                incoming.rst_reported = true;
                return Err(io::ErrorKind::ConnectionReset.into());
            }
        }
        if total == 0 {
            return Ok(0);
        }
        let room = {
            let p = &self.conns[c].pipes[e];
            p.cap - p.queued
        };
        if room == 0 {
            self.conns[c].pipes[e].blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = total.min(room);
        let mut data = Vec::with_capacity(n);
        for b in bufs {
            let k = (n - data.len()).min(b.len());
            data.extend_from_slice(&b[..k]);
            if data.len() == n {
                break;
            }
        }
        if !self.conns[c].open[1 - e] {
            // The reader is gone: the bytes go nowhere, and its reset
            // comes back.
            let latency = self.conns[c].latency;
            let back = &mut self.conns[c].pipes[1 - e];
            // In sequence, behind what the closed end sent.
            let at = (now + latency * 2).max(back.last);
            if back.rst.is_none() {
                back.rst = Some(at);
                self.stats.resets += 1;
            }
            return Ok(n);
        }
        // Cut into segments, each arriving no earlier than the one before.
        let mut rest = &data[..];
        while !rest.is_empty() {
            let k = if rest.len() > 1 && self.roll(self.config.split_permille) {
                1 + self.rng.below(rest.len() as u64 - 1) as usize
            } else {
                rest.len()
            };
            let jitter = self.draw_duration(self.config.jitter_max);
            let latency = self.conns[c].latency;
            let pipe = &mut self.conns[c].pipes[e];
            let at = (now + latency + jitter).max(pipe.last);
            pipe.last = at;
            pipe.segs.push_back(Seg {
                at,
                data: rest[..k].to_vec(),
                told: false,
            });
            rest = &rest[k..];
            self.stats.segments += 1;
        }
        self.conns[c].pipes[e].queued += n;
        self.stats.bytes += n as u64;
        Ok(n)
    }

    /// Shuts end `e`'s write side: its FIN follows the data.
    pub(crate) fn shutdown_write(&mut self, c: usize, e: usize) {
        let now = self.now;
        let latency = self.conns[c].latency;
        let pipe = &mut self.conns[c].pipes[e];
        if pipe.shut {
            return;
        }
        pipe.shut = true;
        pipe.fin = Some((now + latency).max(pipe.last));
    }

    /// Sends a reset from end `e`, and closes it.
    pub(crate) fn reset(&mut self, c: usize, e: usize) {
        let now = self.now;
        let conn = &mut self.conns[c];
        if !conn.open[e] {
            return;
        }
        let latency = conn.latency;
        let pipe = &mut conn.pipes[e];
        pipe.shut = true;
        // In sequence: behind everything this end sent before it.
        pipe.rst = Some((now + latency).max(pipe.last));
        conn.open[e] = false;
        conn.tokens[e] = None;
        self.stats.resets += 1;
    }

    /// Closes end `e`: a reset if input that arrived waits unread there
    /// (as a kernel does), else a FIN behind what it wrote; input still on
    /// its way draws a reset back when it arrives.
    pub(crate) fn close(&mut self, c: usize, e: usize) {
        let now = self.now;
        let conn = &mut self.conns[c];
        if !conn.open[e] {
            return;
        }
        let incoming = &conn.pipes[1 - e];
        if incoming.arrived(now) {
            self.reset(c, e);
            return;
        }
        let late = incoming.segs.back().map(|s| s.at);
        self.shutdown_write(c, e);
        let conn = &mut self.conns[c];
        conn.open[e] = false;
        conn.tokens[e] = None;
        if let Some(at) = late {
            let back = (at + conn.latency).max(conn.pipes[e].last);
            let pipe = &mut conn.pipes[e];
            if pipe.rst.is_none() {
                pipe.rst = Some(back);
                self.stats.resets += 1;
            }
        }
    }

    fn register(&mut self, c: usize, e: usize, token: Token) {
        let now = self.now;
        let conn = &mut self.conns[c];
        conn.tokens[e] = Some(token);
        conn.first_token[e].get_or_insert(token);
        // What epoll reports for a socket added in this state: data, the
        // peer's FIN (read-closed, as `EPOLLRDHUP`) and a reset.
        let incoming = &conn.pipes[1 - e];
        let mut bits = WRITABLE;
        if incoming.arrived(now) {
            bits |= READABLE;
        }
        if incoming.fin.is_some_and(|t| t <= now) {
            bits |= READABLE | READ_CLOSED;
        }
        if incoming.reset_arrived(now) {
            bits |= READABLE | READ_CLOSED | WRITE_CLOSED | ERROR;
        }
        self.pending.push((token, bits));
    }

    // ----- polling ---------------------------------------------------------

    /// The earliest arrival not yet reported, anywhere: what the clock
    /// may jump to when nothing else is due.
    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        let conns = self
            .conns
            .iter()
            .flat_map(|c| c.pipes.iter())
            .filter_map(Pipe::next_arrival);
        let listens = self
            .listeners
            .iter()
            .filter(|l| l.open)
            .filter_map(|l| l.backlog.get(l.told).map(|&(_, at)| at));
        conns.chain(listens).min()
    }

    /// True if an edge waits to be reported now.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The readiness events due at the virtual time now, in a seeded
    /// order, each token at most once. Marks what they report as told:
    /// later arrivals make new edges.
    pub(crate) fn poll(&mut self, out: &mut Vec<(Token, Ready)>) {
        let now = self.now;
        let mut raw = std::mem::take(&mut self.pending);
        for conn in self.conns.iter_mut() {
            for e in [CONNECTOR, ACCEPTED] {
                let pipe = &mut conn.pipes[e];
                // Arrivals mark the pipe's segments told whether or not
                // the reader is registered: a reader registered later sees
                // them through its registration's event.
                let mut bits = 0;
                for s in pipe.segs.iter_mut().filter(|s| !s.told && s.at <= now) {
                    s.told = true;
                    bits |= READABLE;
                }
                if !pipe.fin_told && pipe.fin.is_some_and(|t| t <= now) {
                    pipe.fin_told = true;
                    bits |= READABLE | READ_CLOSED;
                }
                if !pipe.rst_told && pipe.reset_arrived(now) {
                    pipe.rst_told = true;
                    bits |= READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED | ERROR;
                }
                if bits != 0 {
                    if let Some(t) = conn.tokens[1 - e] {
                        raw.push((t, bits));
                    }
                }
            }
        }
        for l in self.listeners.iter_mut().filter(|l| l.open) {
            let due = l
                .backlog
                .iter()
                .skip(l.told)
                .take_while(|&&(_, at)| at <= now)
                .count();
            if due > 0 {
                l.told += due;
                if let Some(t) = l.token {
                    raw.push((t, READABLE));
                }
            }
        }
        if self.roll(self.config.spurious_permille) {
            let tokens: Vec<Token> = self
                .conns
                .iter()
                .flat_map(|c| c.tokens.iter().flatten().copied())
                .chain(self.listeners.iter().filter_map(|l| l.token))
                .collect();
            if !tokens.is_empty() {
                let t = tokens[self.rng.below(tokens.len() as u64) as usize];
                let bits = [READABLE, WRITABLE, READABLE | WRITABLE][self.rng.below(3) as usize];
                raw.push((t, bits));
                self.stats.spurious += 1;
            }
        }
        // One event per token, as epoll reports it, in a seeded order.
        raw.sort_by_key(|&(t, _)| t.0);
        out.clear();
        for (t, bits) in raw {
            match out.last_mut() {
                Some((last, b)) if *last == t => b.0 |= bits,
                _ => out.push((t, Ready(bits))),
            }
        }
        self.rng.shuffle(out);
        self.stats.events += out.len() as u64;
    }
}

// ----- the handles the socket actors hold ------------------------------------

/// The simulated end of a connection a socket actor owns: closed (a FIN,
/// or a reset if input waits unread) when dropped.
#[derive(Debug)]
pub(crate) struct SimStream(SimConn);

/// A reference to one end of a simulated connection, for writing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SimConn {
    conn: usize,
    end: usize,
}

/// A simulated listening socket, closed when dropped.
#[derive(Debug)]
pub(crate) struct SimListener {
    index: usize,
    addr: SocketAddr,
}

fn no_net() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "no simulated network on this thread",
    )
}

/// Binds a listener, on a thread with a simulated network.
pub(crate) fn bind(port: u16) -> Option<io::Result<SimListener>> {
    with(|net| {
        let index = net.bind(port)?;
        Ok(SimListener {
            index,
            addr: net.listeners[index].addr,
        })
    })
}

/// Connects, on a thread with a simulated network.
pub(crate) fn connect(addr: SocketAddr) -> Option<io::Result<SimStream>> {
    with(|net| {
        net.connect(addr).map(|conn| {
            SimStream(SimConn {
                conn,
                end: CONNECTOR,
            })
        })
    })
}

impl SimStream {
    pub(crate) fn handle(&self) -> SimConn {
        self.0
    }

    pub(crate) fn read_into(&self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let SimConn { conn, end } = self.0;
        let max = max.min(buf.capacity() - buf.len());
        with(|net| net.read(conn, end, max, buf)).unwrap_or_else(|| Err(no_net()))
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let SimConn { conn, end } = self.0;
        if how != Shutdown::Read {
            with(|net| net.shutdown_write(conn, end));
        }
        Ok(())
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        let SimConn { conn, end } = self.0;
        with(|net| net.conns[conn].addrs[1 - end]).ok_or_else(no_net)
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }

    /// Bytes arrived for this end and not read.
    pub(crate) fn available(&self) -> usize {
        let SimConn { conn, end } = self.0;
        with(|net| {
            let now = net.now;
            let pipe = &net.conns[conn].pipes[1 - end];
            pipe.segs
                .iter()
                .filter(|s| s.at <= now)
                .map(|s| s.data.len())
                .sum()
        })
        .unwrap_or(0)
    }

    pub(crate) fn register(&mut self, token: Token, _interest: Interest) -> io::Result<()> {
        let SimConn { conn, end } = self.0;
        with(|net| net.register(conn, end, token)).ok_or_else(no_net)
    }

    pub(crate) fn deregister(&mut self) -> io::Result<()> {
        let SimConn { conn, end } = self.0;
        with(|net| net.conns[conn].tokens[end] = None);
        Ok(())
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let SimConn { conn, end } = self.0;
        with(|net| net.close(conn, end));
    }
}

impl SimConn {
    pub(crate) fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        with(|net| net.write(self.conn, self.end, bufs)).unwrap_or_else(|| Err(no_net()))
    }
}

impl SimListener {
    pub(crate) fn accept(&self) -> io::Result<(SimStream, SocketAddr)> {
        let (conn, peer) = with(|net| net.accept(self.index)).unwrap_or_else(|| Err(no_net()))?;
        Ok((
            SimStream(SimConn {
                conn,
                end: ACCEPTED,
            }),
            peer,
        ))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn register(&mut self, token: Token, _interest: Interest) -> io::Result<()> {
        let index = self.index;
        with(|net| {
            let now = net.now;
            let l = &mut net.listeners[index];
            l.token = Some(token);
            if l.backlog.front().is_some_and(|&(_, at)| at <= now) {
                net.pending.push((token, READABLE));
            }
        })
        .ok_or_else(no_net)
    }

    pub(crate) fn deregister(&mut self) -> io::Result<()> {
        let index = self.index;
        with(|net| net.listeners[index].token = None);
        Ok(())
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        let index = self.index;
        with(|net| net.close_listener(index));
    }
}

// ----- the clients' side, for the harness -------------------------------------

impl Net {
    /// A client's read: what has arrived, up to `max` bytes; empty at the
    /// FIN.
    pub(crate) fn client_read(&mut self, c: usize, max: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read(c, CONNECTOR, max, &mut out).map(|_| out)
    }

    pub(crate) fn client_write(&mut self, c: usize, data: &[u8]) -> io::Result<usize> {
        self.write(c, CONNECTOR, &[IoSlice::new(data)])
    }

    pub(crate) fn client_shutdown(&mut self, c: usize) {
        self.shutdown_write(c, CONNECTOR)
    }

    pub(crate) fn client_reset(&mut self, c: usize) {
        self.reset(c, CONNECTOR)
    }

    pub(crate) fn client_close(&mut self, c: usize) {
        self.close(c, CONNECTOR)
    }

    /// The token the server end of connection `c` was registered under.
    pub(crate) fn server_token(&self, c: usize) -> Option<Token> {
        self.conns[c].first_token[ACCEPTED]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network with no faults, no jitter, no splitting, and pipes of
    /// `pipe` bytes, with one listener and one connection to it.
    fn net(pipe: usize, latency: Duration) -> (Net, usize, usize) {
        let config = NetConfig {
            latency_max: Duration::ZERO,
            jitter_max: Duration::ZERO,
            pipe_min: pipe,
            pipe_max: pipe,
            split_permille: 0,
            spurious_permille: 0,
            refuse_permille: 0,
            emfile_permille: 0,
            backlog: 4,
        };
        let mut net = Net::new(Instant::now(), Rng::new(7), config);
        let l = net.bind(80).unwrap();
        let c = net.connect(SocketAddr::new(SERVER_IP, 80)).unwrap();
        net.conns[c].latency = latency;
        (net, l, c)
    }

    fn events(net: &mut Net) -> Vec<(Token, Ready)> {
        let mut out = Vec::new();
        net.poll(&mut out);
        out
    }

    #[test]
    fn reads_take_what_arrived_and_edges_come_with_arrivals() {
        let ms = Duration::from_millis(1);
        let (mut net, l, c) = net(64, ms);
        assert_eq!(net.accept(l).unwrap().0, c);
        assert_eq!(net.accept(l).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        net.register(c, ACCEPTED, Token(9));
        assert_eq!(events(&mut net), [(Token(9), Ready(WRITABLE))]);
        assert_eq!(net.client_write(c, b"hello").unwrap(), 5);
        let mut buf = Vec::new();
        // In flight: nothing to read, no edge yet.
        assert!(events(&mut net).is_empty());
        assert_eq!(
            net.read(c, ACCEPTED, 64, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        net.now += ms;
        assert_eq!(events(&mut net), [(Token(9), Ready(READABLE))]);
        // A read shorter than the room took everything that arrived.
        assert_eq!(net.read(c, ACCEPTED, 64, &mut buf).unwrap(), 5);
        assert_eq!(buf, b"hello");
        // The FIN follows the data, with its own edge.
        net.client_shutdown(c);
        net.now += ms;
        assert_eq!(
            events(&mut net),
            [(Token(9), Ready(READABLE | READ_CLOSED))]
        );
        assert_eq!(net.read(c, ACCEPTED, 64, &mut buf).unwrap(), 0);
    }

    #[test]
    fn a_full_pipe_refuses_and_the_reader_frees_it_with_an_edge() {
        let (mut net, l, c) = net(4, Duration::ZERO);
        net.accept(l).unwrap();
        net.register(c, ACCEPTED, Token(3));
        events(&mut net);
        let w = |net: &mut Net, d: &[u8]| net.write(c, ACCEPTED, &[IoSlice::new(d)]);
        assert_eq!(w(&mut net, b"abcdef").unwrap(), 4, "cut to the pipe");
        assert_eq!(
            w(&mut net, b"ef").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(net.client_read(c, 3).unwrap(), b"abc");
        assert_eq!(events(&mut net), [(Token(3), Ready(WRITABLE))]);
        assert_eq!(w(&mut net, b"ef").unwrap(), 2);
    }

    #[test]
    fn a_socket_registered_after_the_fin_is_told_of_it() {
        let (mut net, l, c) = net(64, Duration::ZERO);
        net.client_write(c, b"x\n").unwrap();
        net.client_shutdown(c);
        // Arrived and reported while nobody was registered.
        events(&mut net);
        net.accept(l).unwrap();
        net.register(c, ACCEPTED, Token(5));
        let e = events(&mut net);
        assert_eq!(e.len(), 1);
        assert!(e[0].1.is_read_closed() && e[0].1.is_readable(), "{e:?}");
    }

    #[test]
    fn a_reset_comes_after_the_data_before_it_and_fails_writes() {
        let (mut net, l, c) = net(64, Duration::ZERO);
        net.accept(l).unwrap();
        net.client_write(c, b"partial li").unwrap();
        net.client_reset(c);
        let mut buf = Vec::new();
        assert_eq!(net.read(c, ACCEPTED, 64, &mut buf).unwrap(), 10);
        let e = net.read(c, ACCEPTED, 64, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        // Reported once, as on Linux: then the end of input, a broken pipe.
        assert_eq!(net.read(c, ACCEPTED, 64, &mut buf).unwrap(), 0);
        let e = net.write(c, ACCEPTED, &[IoSlice::new(b"y")]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_reset_stays_behind_the_data_and_a_fin_before_it_reads_as_the_end() {
        let ms = Duration::from_millis(1);
        let (mut net, l, c) = net(64, ms);
        net.now += ms;
        net.accept(l).unwrap();
        // The data is late (jitter); the reset must not overtake it.
        net.write(c, ACCEPTED, &[IoSlice::new(b"late")]).unwrap();
        net.conns[c].pipes[ACCEPTED].segs[0].at += ms * 5;
        net.conns[c].pipes[ACCEPTED].last += ms * 5;
        net.reset(c, ACCEPTED);
        net.now += ms * 2;
        assert_eq!(
            net.client_read(c, 64).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        net.now += ms * 5;
        assert_eq!(net.client_read(c, 64).unwrap(), b"late");
        assert_eq!(
            net.client_read(c, 64).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn a_fin_then_a_reset_reads_as_the_end_of_input() {
        // A close with input still on its way: a FIN, then a reset.
        let (mut net, l, c) = net(64, Duration::ZERO);
        net.accept(l).unwrap();
        net.shutdown_write(c, ACCEPTED);
        net.conns[c].pipes[ACCEPTED].rst = Some(net.now);
        assert!(net.client_read(c, 64).unwrap().is_empty());
    }

    #[test]
    fn closing_a_listener_resets_the_connections_waiting_in_it() {
        let (mut net, l, c) = net(64, Duration::ZERO);
        net.close_listener(l);
        let e = net.client_read(c, 64).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn closing_with_input_unread_resets_the_peer() {
        let (mut net, l, c) = net(64, Duration::ZERO);
        net.accept(l).unwrap();
        net.write(c, ACCEPTED, &[IoSlice::new(b"answer\n")])
            .unwrap();
        net.client_write(c, b"unread").unwrap();
        net.close(c, ACCEPTED);
        // The answer first, then the reset.
        assert_eq!(net.client_read(c, 64).unwrap(), b"answer\n");
        let e = net.client_read(c, 64).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }
}
