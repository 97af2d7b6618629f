//! Load for chat servers (the chat room's protocol, see credit-chat): N
//! users in one room, M of them each saying one line every T, every
//! receiver checking every line it is told.
//!
//! # How a run goes
//!
//! 1. **Join.** The users connect (blocking connects, bounded by the
//!    connect timeout; at most 64 waiting for their welcome at a time) and
//!    each reads its welcome (`you are <name>`, `present: ...`) and the
//!    arrivals from its own on. A user who found `p` users present must
//!    see `N - p` arrivals; the room is ready when every user has.
//! 2. **Chat.** Senders `0..M` say `m <sender> <seq> <due> <sent> <padding>`
//!    on a fixed schedule, staggered over the interval: one line every `T`
//!    each, whatever the deliveries do (an open loop). `due` is when the
//!    schedule wanted the line, `sent` when it was written, both in
//!    microseconds since the run started. A sender whose socket has not
//!    taken its last lines (the server is not reading) waits; its due lines
//!    go when there is room, so `sent` is late and `due` is not. An optional warm-up
//!    comes first; its lines are checked but counted in no figure.
//! 3. **Check.** Every user must be told every line, in each sender's
//!    order: `<sender's name> says '<line>'`. A line with another name or a
//!    garbled payload is a mismatch; a sequence number other than the next
//!    one expected from that sender is out of order; any other line (a
//!    user leaving, an error) is unexpected; a closed connection is
//!    counted. The latency of a delivery is its receive time minus its due
//!    time (corrected for coordinated omission: a generator that fell
//!    behind is charged too); the uncorrected latency counts from `sent`.
//! 4. **Drain.** After the window nothing more is said; the run waits (at
//!    most the drain timeout) until every line said was delivered to every
//!    user. What never arrived is `missing`.
//!
//! Deliveries per second count the deliveries received within the window;
//! latencies count every delivery.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream as MioStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

use crate::loadgen::progress::{si, Meter, Stage};
use crate::loadgen::report::{
    latency_histogram, latency_line, latency_record, num, Interval, Latency, RateStats, Recorder,
};
use crate::loadgen::sys::Timer;

/// The schedule timer's token (users are numbered from 0).
const TIMER: Token = Token(usize::MAX);
/// A line handed to its socket more than this after its due time was not
/// sent on time.
const LATE: Duration = Duration::from_millis(10);

/// Parameters of a chat run.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatConfig {
    /// Server address.
    pub addr: SocketAddr,
    /// Further servers sharing the room: user `i` connects to the `i`th
    /// of `addr` and these, in turn.
    pub also: Vec<SocketAddr>,
    /// Users in the room.
    pub users: usize,
    /// Users who speak (the first ones to join).
    pub senders: usize,
    /// Each sender says one line this often.
    pub interval: Duration,
    /// Bytes of each line said (at least what the payload's numbers need).
    pub line_bytes: usize,
    /// Length of the chat window.
    pub duration: Duration,
    /// Maximum time for one connect, and for the join phase per user.
    pub connect_timeout: Duration,
    /// Maximum time to collect deliveries after the window.
    pub drain_timeout: Duration,
    /// Draw a progress bar on stderr, if it is a terminal.
    pub progress: bool,
    /// Chatting before the window, checked but counted in no figure.
    pub warmup: Duration,
    /// The lines per second `interval` was derived from, reported beside
    /// the rate achieved.
    pub rate: Option<f64>,
    /// Keep the window's latencies second by second.
    pub interval_log: bool,
    /// The run's name in records and plots (empty: `chat`).
    pub label: String,
    /// Server process id: its RSS is sampled before the users join, once
    /// they have (idle), and during the chat (its peak).
    pub server_pid: Option<u32>,
    /// Users (the last ones to join) who stop reading once they have
    /// joined: the server should drop them as too slow while the others
    /// go on. Their deliveries are not expected, their closing is no
    /// error, and the room's `left (too slow)` for them is counted as
    /// `dropped`.
    pub silent: usize,
}

impl Default for ChatConfig {
    /// `127.0.0.1:5999`, 100 users, 10 senders every 10 ms, 32-byte lines,
    /// 10 s, connect timeout 5 s, drain timeout 5 s, progress on.
    fn default() -> ChatConfig {
        ChatConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 5999)),
            also: Vec::new(),
            users: 100,
            senders: 10,
            interval: Duration::from_millis(10),
            line_bytes: 32,
            duration: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            progress: true,
            warmup: Duration::ZERO,
            rate: None,
            interval_log: false,
            label: String::new(),
            server_pid: None,
            silent: 0,
        }
    }
}

/// What went wrong in a chat run, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChatErrors {
    /// Connections that could not be opened or welcomed.
    pub join: u64,
    /// Lines with a wrong name or a garbled payload.
    pub mismatch: u64,
    /// Lines out of their sender's order (a gap or a repeat).
    pub out_of_order: u64,
    /// Lines that are not a line said (a user leaving, an error reply).
    pub unexpected: u64,
    /// Connections the server closed.
    pub closed: u64,
    /// Deliveries still missing after the drain.
    pub missing: u64,
}

impl ChatErrors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.join + self.mismatch + self.out_of_order + self.unexpected + self.closed + self.missing
    }
}

/// The outcome of a chat run.
#[derive(Clone, Debug)]
pub struct ChatReport {
    /// The parameters.
    pub config: ChatConfig,
    /// Lines said.
    pub said: u64,
    /// Deliveries received (one line to one user).
    pub delivered: u64,
    /// Deliveries received within the window.
    pub delivered_in_window: u64,
    /// The window as it ran.
    pub window: Duration,
    /// Time to join every user.
    pub join_time: Duration,
    /// Due-to-delivery latency.
    pub latency: Option<Latency>,
    /// The latencies behind `latency`, in nanoseconds (microsecond
    /// resolution).
    pub histogram: Option<Histogram<u64>>,
    /// Send-to-delivery latency, in nanoseconds.
    pub uncorrected_histogram: Option<Histogram<u64>>,
    /// The schedule as it went: lines sent within 10 ms of their due
    /// time are on time.
    pub rate: RateStats,
    /// With `interval_log`: the window's latencies, second by second.
    pub intervals: Vec<Interval>,
    /// Errors by kind.
    pub errors: ChatErrors,
    /// Server RSS before the users joined and once they had, in KiB (with
    /// `server_pid`).
    pub rss_kib: Option<(u64, u64)>,
    /// The server's largest RSS sampled during the chat, in KiB (with
    /// `server_pid`).
    pub rss_peak_kib: Option<u64>,
    /// Users the room announced as `left (too slow)` (with silent users).
    pub dropped: u64,
}

impl ChatReport {
    /// Server RSS per joined, idle user, in bytes (with `server_pid`).
    pub fn rss_per_user(&self) -> Option<f64> {
        let (before, idle) = self.rss_kib?;
        Some((idle.saturating_sub(before) * 1024) as f64 / self.config.users.max(1) as f64)
    }
    /// Deliveries per second within the window.
    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivered_in_window as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// True when the run counted no error.
    pub fn is_clean(&self) -> bool {
        self.errors.total() == 0
    }

    /// One JSON object: [`ChatReport::to_record`] printed.
    pub fn to_json(&self) -> String {
        self.to_record(&[]).to_string()
    }

    /// What a run should warn about: a schedule it did not keep.
    pub fn warnings(&self) -> Vec<String> {
        let r = &self.rate;
        if r.on_time_share() < 0.99 {
            vec![format!(
                "the schedule was not kept: {:.1}% of the window's lines went out within {} ms of their due time \
and {} never went; the generator, or senders' sockets the server did not drain, could not keep up. \
Latencies still count from each line's due time.",
                100.0 * r.on_time_share(),
                LATE.as_millis(),
                r.unsent
            )]
        } else {
            Vec::new()
        }
    }

    /// The report as one record with every figure; latencies in
    /// microseconds, with the recorded percentiles, `extra` and the
    /// spectrum.
    pub fn to_record(&self, extra: &[f64]) -> Value {
        let c = &self.config;
        let e = &self.errors;
        json!({
            "label": if c.label.is_empty() { "chat".to_string() } else { c.label.clone() },
            "scenario": "chat",
            "addr": c.addr.to_string(),
            "users": c.users,
            "senders": c.senders,
            "interval_ms": num(c.interval.as_secs_f64() * 1e3),
            "line_bytes": c.line_bytes,
            "duration_secs": num(c.duration.as_secs_f64()),
            "warmup_secs": num(c.warmup.as_secs_f64()),
            "rate": self.rate.record(),
            "said": self.said,
            "delivered": self.delivered,
            "deliveries_per_sec": num(self.deliveries_per_sec()),
            "throughput_per_sec": num(self.deliveries_per_sec()),
            "throughput_unit": "deliveries/s",
            "window_s": num(self.window.as_secs_f64()),
            "join_s": num(self.join_time.as_secs_f64()),
            "errors": {
                "total": e.total(),
                "join": e.join,
                "mismatch": e.mismatch,
                "out_of_order": e.out_of_order,
                "unexpected": e.unexpected,
                "closed": e.closed,
                "missing": e.missing,
            },
            "latency_us": self.histogram.as_ref().map(|h| latency_record(h, extra)),
            "latency_uncorrected_us":
                self.uncorrected_histogram.as_ref().map(|h| latency_record(h, extra)),
            "rss_per_user": self.rss_per_user().map(|b| b.round()),
            "rss_peak_kib": self.rss_peak_kib,
            "silent": c.silent,
            "dropped": self.dropped,
        })
    }

    /// The human table, latencies at `percentiles` (and max).
    pub fn table<'a>(&'a self, percentiles: &'a [f64]) -> ChatTable<'a> {
        ChatTable {
            report: self,
            percentiles,
        }
    }
}

/// A chat report's human table ([`ChatReport::table`]).
#[derive(Debug)]
pub struct ChatTable<'a> {
    report: &'a ChatReport,
    percentiles: &'a [f64],
}

impl fmt::Display for ChatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table(&crate::loadgen::SHOWN_PERCENTILES).fmt(f)
    }
}

impl fmt::Display for ChatTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.report;
        let c = &r.config;
        writeln!(
            f,
            "chat         {} users, {} senders every {:.1} ms, {}-byte lines, joined in {:.2} s",
            c.users,
            c.senders,
            c.interval.as_secs_f64() * 1e3,
            c.line_bytes,
            r.join_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "rate         {} lines/s asked, {} said ({:.1}% within {} ms of their due time, {} never)",
            si(r.rate.target),
            si(r.rate.achieved),
            100.0 * r.rate.on_time_share(),
            LATE.as_millis(),
            r.rate.unsent
        )?;
        writeln!(
            f,
            "deliveries   said {}  delivered {} in the window ({} in all)  in {:.3} s  {:.0} deliveries/s",
            r.said,
            r.delivered_in_window,
            r.delivered,
            r.window.as_secs_f64(),
            r.deliveries_per_sec()
        )?;
        match &r.histogram {
            Some(h) => writeln!(f, "latency us*  {}", latency_line(h, self.percentiles))?,
            None => writeln!(f, "latency      -")?,
        }
        if let Some(h) = &r.uncorrected_histogram {
            writeln!(f, "uncorrected  {}", latency_line(h, self.percentiles))?;
            writeln!(
                f,
                "             * from each line's due time; uncorrected: from its send"
            )?;
        }
        if let (Some((before, idle)), Some(per)) = (r.rss_kib, r.rss_per_user()) {
            writeln!(
                f,
                "server rss   before {before} KiB  idle {idle} KiB  {per:.0} B per idle user  peak while chatting {} KiB",
                r.rss_peak_kib.unwrap_or(0)
            )?;
        }
        if c.silent > 0 {
            writeln!(
                f,
                "silent       {} users never read; {} dropped by the server",
                c.silent, r.dropped
            )?;
        }
        let e = &r.errors;
        writeln!(
            f,
            "errors       {} (join {}, mismatch {}, out of order {}, unexpected {}, closed {}, missing {})",
            e.total(),
            e.join,
            e.mismatch,
            e.out_of_order,
            e.unexpected,
            e.closed,
            e.missing
        )
    }
}

/// One user's connection.
struct User {
    stream: MioStream,
    name: Vec<u8>,
    /// A line cut by the end of a read.
    partial: Vec<u8>,
    /// Output the socket did not take yet.
    out: Vec<u8>,
    /// The `present:` line has been read (the welcome is complete).
    welcomed: bool,
    /// Arrivals still to see before the chat: `N - p` for a user who
    /// found `p` users present.
    arrivals_due: usize,
    /// Seen every arrival due.
    ready: bool,
    closed: bool,
}

/// The run's state, shared by the phases.
struct Run {
    poll: Poll,
    users: Vec<User>,
    /// `next[r * senders + s]`: the sequence number user `r` expects next
    /// from sender `s`.
    next: Vec<u64>,
    senders: usize,
    start: Instant,
    /// Users in the room when it is full.
    users_total: usize,
    /// Users from this index on stop reading once the chat starts.
    silent_from: usize,
    /// The chat has started.
    chatting: bool,
    /// Silent users the server closed.
    dropped: u64,
    ready: usize,
    delivered: u64,
    delivered_in_window: u64,
    /// The window, once the chat has started.
    window: Option<(Instant, Instant)>,
    /// Lines due before this (µs since `start`) are the warm-up's.
    warm_end_us: u64,
    latency: Recorder,
    uhist: Histogram<u64>,
    errors: ChatErrors,
    buf: Vec<u8>,
}

const SAYS: &[u8] = b" says '";

impl Run {
    /// Reads everything `r` has; handles every complete line.
    fn read(&mut self, r: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        loop {
            let n = match self.users[r].stream.read(&mut buf) {
                Ok(0) => {
                    self.close(r);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(r);
                    break;
                }
            };
            let now = Instant::now();
            let mut data = &buf[..n];
            // Complete the line a previous read cut.
            if !self.users[r].partial.is_empty() {
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        let mut line = std::mem::take(&mut self.users[r].partial);
                        line.extend_from_slice(&data[..i]);
                        self.line(r, &line, now);
                        data = &data[i + 1..];
                    }
                    None => {
                        self.users[r].partial.extend_from_slice(data);
                        continue;
                    }
                }
            }
            while let Some(i) = memchr::memchr(b'\n', data) {
                self.line(r, &data[..i], now);
                data = &data[i + 1..];
            }
            self.users[r].partial.extend_from_slice(data);
            if n < buf.len() {
                break;
            }
        }
        self.buf = buf;
    }

    fn close(&mut self, r: usize) {
        if !self.users[r].closed {
            self.users[r].closed = true;
            // A silent user's closing is expected; the room's announcement
            // counts it (`dropped`).
            if r < self.silent_from {
                self.errors.closed += 1;
            }
        }
    }

    fn line(&mut self, r: usize, line: &[u8], now: Instant) {
        let u = &mut self.users[r];
        if u.name.is_empty() {
            match line.strip_prefix(b"you are ") {
                Some(name) => u.name = name.to_vec(),
                None => self.errors.unexpected += 1,
            }
            return;
        }
        if !u.welcomed {
            match line.strip_prefix(b"present:") {
                Some(names) => {
                    u.welcomed = true;
                    let present = names.iter().filter(|&&b| b == b' ').count();
                    u.arrivals_due = self.users_total.saturating_sub(present);
                }
                None => self.errors.unexpected += 1,
            }
            return;
        }
        if !u.ready {
            // Arrivals, its own and those after it.
            if line.ends_with(b" arrived") {
                u.arrivals_due = u.arrivals_due.saturating_sub(1);
                if u.arrivals_due == 0 {
                    u.ready = true;
                    self.ready += 1;
                }
            } else {
                self.errors.unexpected += 1;
            }
            return;
        }
        let Some(at) = memchr::memmem::find(line, SAYS) else {
            // Silent users leave as too slow, which is the point of them;
            // the first user (never silent) counts the announcements.
            if self.silent_from < self.users_total && line.ends_with(b" left (too slow)") {
                if r == 0 {
                    self.dropped += 1;
                }
            } else {
                self.errors.unexpected += 1;
            }
            return;
        };
        let (name, said) = (&line[..at], &line[at + SAYS.len()..]);
        let Some((s, seq, due, sent)) = parse_payload(said) else {
            self.errors.mismatch += 1;
            return;
        };
        if s >= self.senders || name != &self.users[s].name[..] {
            self.errors.mismatch += 1;
            return;
        }
        let next = &mut self.next[r * self.senders + s];
        if seq != *next {
            self.errors.out_of_order += 1;
        }
        *next = seq + 1;
        self.delivered += 1;
        if self
            .window
            .is_some_and(|(start, end)| start <= now && now < end)
        {
            self.delivered_in_window += 1;
        }
        if due < self.warm_end_us {
            return;
        }
        let at = now.saturating_duration_since(self.start).as_micros() as u64;
        self.latency.record(at.saturating_sub(due).max(1) * 1000);
        self.uhist
            .saturating_record(at.saturating_sub(sent).max(1) * 1000);
    }

    /// Writes what `r` has queued, as far as the socket takes it.
    fn flush(&mut self, r: usize) {
        let u = &mut self.users[r];
        while !u.out.is_empty() {
            match u.stream.write(&u.out) {
                Ok(0) => break,
                Ok(n) => {
                    u.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// One round of events, waiting at most `timeout`.
    fn turn(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = events
            .iter()
            .filter(|e| e.token() != TIMER)
            .map(|e| (e.token().0, e.is_readable(), e.is_writable()))
            .collect();
        for (r, readable, writable) in ready {
            if writable {
                self.flush(r);
            }
            if self.chatting && r >= self.silent_from {
                // A silent user reads nothing while the others chat.
                continue;
            }
            if readable {
                self.read(r);
            }
        }
        Ok(())
    }
}

/// Asks the kernel for a small receive buffer on `stream` (a silent user),
/// so what the server sends it stays mostly in the server's queue.
fn shrink_receive_buffer(stream: &MioStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket this run owns, with a pointer to a
    // live `c_int` and its size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `m <sender> <seq> <due> <sent> ...'`: the four numbers.
fn parse_payload(said: &[u8]) -> Option<(usize, u64, u64, u64)> {
    let said = said.strip_prefix(b"m ")?;
    let mut fields = said.split(|&b| b == b' ' || b == b'\'');
    let num = |f: Option<&[u8]>| -> Option<u64> {
        let f = f?;
        if f.is_empty() || f.len() > 19 {
            return None;
        }
        f.iter().try_fold(0u64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
        })
    };
    let s = num(fields.next())? as usize;
    let seq = num(fields.next())?;
    let due = num(fields.next())?;
    let sent = num(fields.next())?;
    Some((s, seq, due, sent))
}

/// Runs the chat scenario against `cfg.addr` (and `cfg.also`), with a
/// progress bar if `cfg.progress` asks and stderr is a terminal.
pub fn run(cfg: &ChatConfig) -> io::Result<ChatReport> {
    if !cfg.progress {
        return run_on(cfg, None);
    }
    let meter = Meter::new();
    let job = || {
        let r = run_on(cfg, Some(&meter));
        meter.finish();
        r
    };
    let meters = [meter.clone()];
    let planned = cfg.warmup + cfg.duration;
    let mut results =
        crate::loadgen::progress::run_watched(vec![job], true, &meters, "deliveries", planned);
    results.pop().expect("one job, one result")
}

fn run_on(cfg: &ChatConfig, meter: Option<&Meter>) -> io::Result<ChatReport> {
    if cfg.users == 0 || cfg.senders == 0 || cfg.senders + cfg.silent > cfg.users {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need 1 <= senders and senders + silent <= users",
        ));
    }
    let _ = crate::loadgen::raise_nofile_limit();
    let start = Instant::now();
    let mut run = Run {
        poll: Poll::new()?,
        users: Vec::with_capacity(cfg.users),
        next: vec![0; cfg.users * cfg.senders],
        senders: cfg.senders,
        start,
        users_total: cfg.users,
        silent_from: cfg.users.saturating_sub(cfg.silent),
        chatting: false,
        dropped: 0,
        ready: 0,
        delivered: 0,
        delivered_in_window: 0,
        window: None,
        warm_end_us: 0,
        latency: Recorder::new(cfg.interval_log),
        uhist: latency_histogram(),
        errors: ChatErrors::default(),
        buf: vec![0; 256 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    let rss_before = cfg.server_pid.and_then(crate::loadgen::read_rss_kib);

    // 1. Join, reading as we go so early users' arrivals do not pile up.
    for i in 0..cfg.users {
        let addr = match i % (1 + cfg.also.len()) {
            0 => &cfg.addr,
            k => &cfg.also[k - 1],
        };
        let stream = match TcpStream::connect_timeout(addr, cfg.connect_timeout) {
            Ok(s) => s,
            Err(e) => {
                if i == 0 {
                    return Err(e);
                }
                run.errors.join += (cfg.users - i) as u64;
                break;
            }
        };
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = MioStream::from_std(stream);
        run.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        run.users.push(User {
            stream,
            name: Vec::new(),
            partial: Vec::new(),
            out: Vec::new(),
            welcomed: false,
            arrivals_due: 0,
            ready: false,
            closed: false,
        });
        // At most 64 users waiting for their welcome.
        let deadline = Instant::now() + cfg.connect_timeout;
        while run
            .users
            .iter()
            .filter(|u| !u.welcomed && !u.closed)
            .count()
            >= 64
        {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no welcome from the server",
                ));
            }
            run.turn(&mut events, Duration::from_millis(10))?;
        }
    }
    let joined = run.users.len();
    if joined < cfg.users {
        // The room will not fill: the arrivals still due never come.
        run.users_total = joined;
    }
    let deadline = Instant::now() + cfg.connect_timeout.max(Duration::from_secs(10));
    while run.ready < joined {
        if Instant::now() >= deadline {
            run.errors.join += (joined - run.ready) as u64;
            break;
        }
        run.turn(&mut events, Duration::from_millis(10))?;
    }
    let join_time = start.elapsed();
    // With the server's pid: let it settle (its idle memory is trimmed
    // about once a second), then sample its RSS.
    let rss_idle = match cfg.server_pid {
        Some(pid) => {
            let settle = Instant::now() + Duration::from_secs(2);
            while Instant::now() < settle {
                run.turn(&mut events, Duration::from_millis(50))?;
            }
            crate::loadgen::read_rss_kib(pid)
        }
        None => None,
    };

    // 2. Chat on schedule; the silent users stop reading, with a small
    // receive buffer so that the server's backlog for them builds up.
    run.chatting = true;
    for r in run.silent_from.min(joined)..joined {
        shrink_receive_buffer(&run.users[r].stream);
    }
    let senders = cfg.senders.min(joined);
    let mut seq = vec![0u64; senders];
    let step = cfg.interval / senders as u32;
    let timer = Timer::new()?;
    run.poll
        .registry()
        .register(&mut SourceFd(&timer.raw_fd()), TIMER, Interest::READABLE)?;
    let t0 = Instant::now();
    let mut due: Vec<Instant> = (0..senders).map(|s| t0 + step * s as u32).collect();
    let window_start = t0 + cfg.warmup;
    let end = window_start + cfg.duration;
    run.window = Some((window_start, end));
    run.warm_end_us = window_start.saturating_duration_since(start).as_micros() as u64;
    let us = |t: Instant| t.saturating_duration_since(start).as_micros();
    // Lines of the window: said, and said within `LATE` of their time.
    let (mut said, mut on_time, mut said_total) = (0u64, 0u64, 0u64);
    let mut rss_peak_kib: Option<u64> = None;
    let mut last_rss = t0;
    run.latency.begin(window_start);
    let mut line = Vec::with_capacity(cfg.line_bytes + 1);
    loop {
        let now = Instant::now();
        // At the end, every line due before it still goes.
        let until = if now >= end { end } else { now };
        for (s, at) in due.iter_mut().enumerate() {
            // A sender whose socket has not taken its last lines waits: its
            // due lines go when there is room, stamped with that time.
            if !run.users[s].out.is_empty() {
                run.flush(s);
                if !run.users[s].out.is_empty() {
                    continue;
                }
            }
            while *at <= until && *at < end {
                line.clear();
                let _ = write!(line, "m {s} {} {} {} ", seq[s], us(*at), us(now));
                while line.len() < cfg.line_bytes {
                    line.push(b'x');
                }
                line.push(b'\n');
                run.users[s].out.extend_from_slice(&line);
                seq[s] += 1;
                said_total += 1;
                if *at >= window_start {
                    said += 1;
                    if now.saturating_duration_since(*at) <= LATE {
                        on_time += 1;
                    }
                }
                *at += cfg.interval;
            }
        }
        for s in 0..senders {
            if !run.users[s].out.is_empty() {
                run.flush(s);
            }
        }
        if now >= end {
            break;
        }
        if let Some(pid) = cfg.server_pid {
            if now.duration_since(last_rss) >= Duration::from_millis(250) {
                last_rss = now;
                if let Some(k) = crate::loadgen::read_rss_kib(pid) {
                    rss_peak_kib = Some(rss_peak_kib.map_or(k, |p| p.max(k)));
                }
            }
        }
        run.latency.tick(now);
        let next = due.iter().min().copied().unwrap_or(end).min(end);
        timer.arm(next.saturating_duration_since(Instant::now()));
        run.turn(
            &mut events,
            next.saturating_duration_since(Instant::now()) + Duration::from_millis(1),
        )?;
        timer.clear();
        if let Some(m) = meter {
            let stage = if now < window_start {
                Stage::Warmup
            } else {
                Stage::Running
            };
            m.set(stage, run.delivered, run.errors.total(), joined as u64);
        }
    }
    let window = end - window_start;
    // Lines of the window still waiting for their sender's socket.
    let mut unsent = 0u64;
    for &at in &due {
        let mut t = at;
        while t < end {
            unsent += u64::from(t >= window_start);
            t += cfg.interval;
        }
    }

    // 3. Drain.
    let listening = joined.min(run.silent_from) as u64;
    let expected = said_total * listening;
    let deadline = Instant::now() + cfg.drain_timeout;
    while run.delivered < expected && Instant::now() < deadline {
        for s in 0..senders {
            if !run.users[s].out.is_empty() {
                run.flush(s);
            }
        }
        run.turn(&mut events, Duration::from_millis(10))?;
    }
    run.errors.missing = expected.saturating_sub(run.delivered);
    let rate = RateStats {
        target: cfg
            .rate
            .unwrap_or(senders as f64 / cfg.interval.as_secs_f64()),
        achieved: said as f64 / window.as_secs_f64(),
        scheduled: said + unsent,
        on_time,
        unsent,
    };
    Ok(ChatReport {
        config: cfg.clone(),
        said,
        delivered: run.delivered,
        delivered_in_window: run.delivered_in_window,
        window,
        join_time,
        latency: Latency::from_histogram(&run.latency.all),
        histogram: run.latency.histogram(),
        uncorrected_histogram: (!run.uhist.is_empty()).then(|| run.uhist.clone()),
        rate,
        intervals: run.latency.take_intervals(),
        errors: run.errors,
        rss_kib: rss_before.zip(rss_idle),
        rss_peak_kib,
        dropped: run.dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_payload;

    #[test]
    fn payloads_parse_and_garbage_does_not() {
        assert_eq!(
            parse_payload(b"m 3 17 123456 123460 xxxx'"),
            Some((3, 17, 123456, 123460))
        );
        assert_eq!(
            parse_payload(b"m 3 17 123456 123456'"),
            Some((3, 17, 123456, 123456))
        );
        assert_eq!(parse_payload(b"m 3 x7 1 1'"), None);
        assert_eq!(parse_payload(b"hello'"), None);
        assert_eq!(parse_payload(b"m 3 17 5'"), None);
    }
}
