//! The event loop: opens connections, moves the scenario through its phases,
//! dispatches readiness events to [`Conn`]s and collects statistics.

use std::net::IpAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use credit_actors::net::ProxyHeader;
use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{Conn, ConnError, ConnState};
use super::progress::{Meter, Stage};
use super::report::{
    latency_histogram, C10kStats, ErrorCounts, Latency, Params, RateStats, Recorder, Report,
};
use super::sys::{self, Timer};
use super::verify::VerifyError;
use super::{Config, LoadgenError, Scenario};

/// The token of the rate timer (no connection's: slots stay far below).
const TIMER: Token = Token(usize::MAX);

/// Shared read buffer size.
const RBUF_LEN: usize = 256 * 1024;
/// Housekeeping period (connect timeouts, reconnects, c10k pacing).
const TICK: Duration = Duration::from_millis(50);
/// Delay before replacing a connection that failed.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// Churn against an IPv4 loopback server: source addresses used by default.
const CHURN_SOURCE_IPS: usize = 32;
/// c10k: connects in progress at once (keeps the server's accept queue short).
const C10K_CONNECT_CONCURRENCY: usize = 64;
/// c10k with a pid: connections established but not yet accepted by the
/// server (judged by its fd count) allowed at once, to keep its accept queue
/// from overflowing (an overflow costs a 1 s SYN retransmission).
const C10K_MAX_UNACCEPTED: usize = 64;
/// c10k with a pid: how often the server's fd count may be re-read while
/// pacing.
const C10K_FD_POLL: Duration = Duration::from_millis(5);
/// c10k with a pid: with no sign of accepts for this long, connect another
/// batch anyway.
const C10K_PACING_FALLBACK: Duration = Duration::from_millis(50);
/// c10k: lower bound of each phase's time limit.
const C10K_MIN_PHASE: Duration = Duration::from_secs(10);
/// c10k: longest wait for the server to have accepted every connection.
const C10K_SETTLE_MAX: Duration = Duration::from_secs(5);
/// c10k without a pid: fixed pause before sending.
const C10K_SETTLE_NO_PID: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Opening the initial connections (pipeline, pingpong, bigline).
    Setup,
    /// Load as in the window, counted nowhere.
    Warmup,
    /// Measurement window.
    Running,
    /// Window over: collecting replies to queued lines.
    Draining,
    C10kConnect,
    C10kSettle,
    C10kSend,
    Done,
}

#[derive(Clone, Copy, Debug)]
enum ErrKind {
    Mismatch,
    Unsolicited,
    ConnectFailed,
    ConnectTimeout,
    Io,
    Eof,
}

#[derive(Default)]
struct Stats {
    lines_sent: u64,
    lines_answered: u64,
    lines_late: u64,
    request_bytes: u64,
    reply_bytes: u64,
    conns_completed: u64,
    conns_opened: u64,
    errors: ErrorCounts,
    first_error: Option<String>,
}

/// One generator's part of a run: with `--threads N`, each thread's engine
/// has its share of the connections, workers and rate.
pub(crate) struct Share {
    /// Connections (or c10k's idle connections).
    pub conns: usize,
    /// Churn workers.
    pub workers: usize,
    /// Lines per second for this share (fixed-rate runs).
    pub rate: Option<f64>,
    /// The id of this share's first connection (ids stay distinct across
    /// threads, which makes a server's logs easier to read).
    pub first_id: u32,
    /// Live counters for the progress bar.
    pub meter: Option<Arc<Meter>>,
    /// Shared by every thread of a run: the windows start together.
    pub barrier: Option<Arc<Barrier>>,
}

/// The fixed-rate schedule. Line `i` of the run (over all lanes) is due
/// `i / rate` seconds after the origin, and lane `i % lanes` sends it; each
/// connection serves one lane, and its replacement after a failure carries
/// on from the same place. Line numbers are pure functions of time, so
/// nothing is stored per line but its send time.
struct Schedule {
    origin: Instant,
    /// Lines per second.
    rate: f64,
    lanes: usize,
    /// Lines released (due) so far: the next line's number.
    next: u64,
    /// Lines of the whole run: those due before the window ends.
    total: u64,
    /// Lines due before the window starts (the warm-up's).
    warm: u64,
    /// Per lane: lines due.
    due: Vec<u64>,
    /// Per lane: lines queued on a connection.
    sent: Vec<u64>,
    /// Per lane: the connection serving it, by slot.
    slot: Vec<Option<usize>>,
    /// Per lane: due lines were added since the lane was last fed; and
    /// those lanes, each once.
    touched: Vec<bool>,
    touched_lanes: Vec<usize>,
    /// The due time the timer is armed for, in ns after the origin.
    armed: Option<u64>,
}

impl Schedule {
    fn new(rate: f64, lanes: usize, warmup: Duration, window: Duration, now: Instant) -> Schedule {
        // Lines due before `d`: `i / rate < d`. Multiplying by the rate
        // (not dividing by a period) keeps whole counts whole.
        let count = |d: Duration| (d.as_nanos() as f64 * rate / 1e9).ceil() as u64;
        Schedule {
            origin: now,
            rate,
            lanes,
            next: 0,
            total: count(warmup + window),
            warm: count(warmup),
            due: vec![0; lanes],
            sent: vec![0; lanes],
            slot: vec![None; lanes],
            touched: vec![false; lanes],
            touched_lanes: Vec::new(),
            armed: None,
        }
    }

    /// When line `i` of the run is due, in ns after the origin.
    #[inline]
    fn at(&self, i: u64) -> u64 {
        (i as f64 * 1e9 / self.rate) as u64
    }

    /// How many lines of the run are due by `t` ns after the origin.
    fn due_by(&self, t: u64) -> u64 {
        let mut n = ((t as f64 * self.rate / 1e9).floor() as u64)
            .saturating_add(1)
            .min(self.total);
        // Float edges: settle on the exact count.
        while n > 0 && self.at(n - 1) > t {
            n -= 1;
        }
        while n < self.total && self.at(n) <= t {
            n += 1;
        }
        n
    }

    /// Makes the run's first `upto` lines due: one step per line when few,
    /// else one per lane. Marks the lanes that gained lines.
    fn advance_to(&mut self, upto: u64) {
        let lanes = self.lanes as u64;
        if upto.saturating_sub(self.next) >= lanes {
            for lane in 0..self.lanes {
                let l = lane as u64;
                let due = if upto > l {
                    (upto - l - 1) / lanes + 1
                } else {
                    0
                };
                if due > self.due[lane] {
                    self.due[lane] = due;
                    self.touch(lane);
                }
            }
        } else {
            for i in self.next..upto {
                let lane = (i % lanes) as usize;
                self.due[lane] += 1;
                self.touch(lane);
            }
        }
        self.next = self.next.max(upto);
    }

    fn touch(&mut self, lane: usize) {
        if !std::mem::replace(&mut self.touched[lane], true) {
            self.touched_lanes.push(lane);
        }
    }

    /// The run's number of line `j` of `lane`.
    #[inline]
    fn line(&self, lane: usize, j: u64) -> u64 {
        j * self.lanes as u64 + lane as u64
    }
}

pub(crate) struct Engine<'a> {
    cfg: &'a Config,
    share: Share,
    scenario: Scenario,
    poll: Poll,
    conns: Slab<Conn>,
    rbuf: Vec<u8>,
    next_gen: u32,
    next_id: u32,
    sources: Vec<IpAddr>,
    next_source: usize,
    depth: u64,
    line_bytes: usize,
    record_rtt: bool,
    prefix: Arc<[u8]>,
    phase: Phase,
    t0: Instant,
    /// When the counting window begins: the warm-up's end.
    window_start: Instant,
    window_end: Option<Instant>,
    deadline: Instant,
    phase_deadline: Instant,
    stats: Stats,
    /// Latencies (at a fixed rate, from each line's due time).
    latency: Recorder,
    /// At a fixed rate: latency from the actual send, not the due time.
    uhist: Histogram<u64>,
    sched: Option<Schedule>,
    timer: Option<Timer>,

    /// Lines queued and not answered, over all live connections.
    inflight: u64,
    /// Connections in `ConnState::Connecting`.
    connecting: usize,
    /// Times at which to open a replacement connection, and its lane.
    reopen_at: Vec<(Instant, usize)>,
    next_tick: Instant,
    // c10k
    c10k_started: usize,
    c10k: C10kStats,
    c10k_fd_base: Option<usize>,
    /// Server fds above `c10k_fd_base` at the last sample.
    c10k_accepted: usize,
    c10k_next_fd_poll: Instant,
    c10k_last_start: Instant,
    c10k_phase_start: Instant,
    /// Replies and churn cycles since the start, for the progress bar.
    done_total: u64,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl<'a> Engine<'a> {
    pub(crate) fn new(
        scenario: Scenario,
        cfg: &'a Config,
        share: Share,
    ) -> Result<Engine<'a>, LoadgenError> {
        let mut sources: Vec<IpAddr> = cfg
            .source_ips
            .iter()
            .copied()
            .filter(|ip| ip.is_ipv4() == cfg.addr.is_ipv4())
            .collect();
        if !cfg.source_ips.is_empty() && sources.is_empty() {
            return Err(LoadgenError::Config(format!(
                "no source address of the same family as {}",
                cfg.addr
            )));
        }
        let v4_loopback = matches!(cfg.addr.ip(), IpAddr::V4(v4) if v4.is_loopback());
        if sources.is_empty() && scenario == Scenario::Churn && v4_loopback {
            // Every churn cycle leaves a TIME_WAIT socket on our side; with one
            // source address the kernel's ephemeral-port search in connect()
            // becomes the bottleneck (milliseconds per connect). Spreading
            // over several loopback addresses keeps that search short.
            sources = sys::loopback_sources(CHURN_SOURCE_IPS);
        }
        if sources.is_empty() && scenario == Scenario::C10k {
            let per_ip = sys::ports_per_source_ip().max(1);
            if share.conns > per_ip {
                match cfg.addr.ip() {
                    IpAddr::V4(v4) if v4.is_loopback() => {
                        sources = sys::loopback_sources(share.conns.div_ceil(per_ip));
                    }
                    _ => {
                        return Err(LoadgenError::Config(format!(
                            "{} connections exceed one source address ({} ports); pass source_ips",
                            share.conns, per_ip
                        )))
                    }
                }
            }
        }
        let depth = match scenario {
            Scenario::Pipeline | Scenario::BigLine => cfg.depth.max(1) as u64,
            Scenario::PingPong if share.rate.is_some() => cfg.depth.max(1) as u64,
            _ => 1,
        };
        let now = Instant::now();
        let poll = Poll::new()?;
        let timer = match share.rate {
            Some(_) => {
                let timer = Timer::new()?;
                poll.registry().register(
                    &mut SourceFd(&timer.raw_fd()),
                    TIMER,
                    Interest::READABLE,
                )?;
                Some(timer)
            }
            None => None,
        };
        Ok(Engine {
            cfg,
            scenario,
            poll,
            conns: Slab::with_capacity(match scenario {
                Scenario::Churn => share.workers,
                _ => share.conns,
            }),
            rbuf: vec![0u8; RBUF_LEN],
            next_gen: 1,
            next_id: share.first_id,
            sources,
            next_source: 0,
            depth,
            line_bytes: cfg.line_bytes,
            record_rtt: share.rate.is_none()
                && (scenario == Scenario::PingPong
                    || (scenario == Scenario::BigLine && depth == 1)),
            prefix: Arc::from(&cfg.expect_prefix[..]),
            phase: Phase::Setup,
            t0: now,
            window_start: now,
            window_end: None,
            deadline: now + cfg.duration,
            phase_deadline: now + cfg.connect_timeout,
            stats: Stats::default(),
            latency: Recorder::new(cfg.interval_log),
            uhist: latency_histogram(),
            sched: None,
            timer,
            inflight: 0,
            connecting: 0,
            reopen_at: Vec::new(),
            next_tick: now + TICK,
            c10k_started: 0,
            c10k: C10kStats {
                target: share.conns,
                ..Default::default()
            },
            c10k_fd_base: None,
            c10k_accepted: 0,
            c10k_next_fd_poll: now,
            c10k_last_start: now,
            c10k_phase_start: now,
            done_total: 0,
            share,
        })
    }

    fn in_window(&self) -> bool {
        !matches!(self.phase, Phase::Draining | Phase::Done)
    }

    /// Whether the connections are loaded (warm-up or window).
    fn loading(&self) -> bool {
        matches!(self.phase, Phase::Warmup | Phase::Running)
    }

    fn reopens(&self) -> bool {
        self.scenario != Scenario::C10k
            && matches!(self.phase, Phase::Setup | Phase::Warmup | Phase::Running)
    }

    // ---------------------------------------------------------------- errors

    fn count_error(&mut self, kind: ErrKind, what: impl FnOnce() -> String) {
        let e = &mut self.stats.errors;
        match kind {
            ErrKind::Mismatch => e.mismatch += 1,
            ErrKind::Unsolicited => e.unsolicited += 1,
            ErrKind::ConnectFailed => e.connect_failed += 1,
            ErrKind::ConnectTimeout => e.connect_timeout += 1,
            ErrKind::Io => e.io += 1,
            ErrKind::Eof => e.eof += 1,
        }
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(what());
        }
    }

    /// Removes a connection from the loop (closing its socket).
    fn remove(&mut self, slot: usize) -> Conn {
        let conn = self.conns.remove(slot);
        self.inflight -= conn.inflight();
        if conn.state == ConnState::Connecting {
            self.connecting -= 1;
        }
        if let Some(s) = &mut self.sched {
            if s.slot[conn.lane] == Some(slot) {
                s.slot[conn.lane] = None;
            }
        }
        conn
    }

    /// Counts an error, closes the connection and schedules a replacement.
    fn fail(&mut self, slot: usize, kind: ErrKind, what: String, now: Instant) {
        let conn = self.remove(slot);
        let (id, lane) = (conn.id, conn.lane);
        drop(conn);
        self.count_error(kind, || format!("connection {id}: {what}"));
        if self.reopens() {
            self.reopen_at.push((now + RECONNECT_BACKOFF, lane));
        }
        if self.phase == Phase::C10kConnect {
            self.c10k_top_up(now);
        }
    }

    // ---------------------------------------------------------------- connections

    /// Starts one connect, for `lane` at a fixed rate. On failure the error
    /// is counted and `false` returned.
    fn open_one(&mut self, now: Instant, lane: usize) -> bool {
        let src = if self.sources.is_empty() {
            None
        } else {
            let ip = self.sources[self.next_source % self.sources.len()];
            self.next_source += 1;
            Some(ip)
        };
        let addr = self.cfg.addr;
        let mut stream = match sys::start_connect(addr, src) {
            Ok(s) => s,
            Err(e) => {
                self.count_error(ErrKind::ConnectFailed, || format!("connect to {addr}: {e}"));
                return false;
            }
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let token = Token(((gen as usize) << 32) | slot);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.count_error(ErrKind::ConnectFailed, || format!("register: {e}"));
            return false;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut conn = Conn::new(stream, gen, id, self.line_bytes, &self.prefix, now);
        if self.scenario == Scenario::Churn {
            conn.budget = 1;
        }
        if let Some(s) = &mut self.sched {
            conn.lane = lane;
            conn.lane_base = s.sent[lane];
            s.slot[lane] = Some(slot);
        }
        entry.insert(conn);
        self.connecting += 1;
        true
    }

    fn open_or_retry(&mut self, now: Instant, lane: usize) {
        if !self.open_one(now, lane) && self.reopens() {
            self.reopen_at.push((now + RECONNECT_BACKOFF, lane));
        }
    }

    /// Whether the server has accepted all but a few of our connections
    /// (always true without a pid).
    fn c10k_accept_queue_ok(&mut self, now: Instant) -> bool {
        let (Some(pid), Some(base)) = (self.cfg.server_pid, self.c10k_fd_base) else {
            return true;
        };
        let ours = self.c10k.opened as usize + self.connecting;
        if ours < self.c10k_accepted + C10K_MAX_UNACCEPTED {
            self.c10k_last_start = now;
            return true;
        }
        if now >= self.c10k_next_fd_poll {
            self.c10k_next_fd_poll = now + C10K_FD_POLL;
            if let Some(n) = sys::count_fds(pid) {
                if n < base {
                    // Connections of an earlier run were still being closed
                    // when `base` was sampled.
                    self.c10k_fd_base = Some(n);
                }
                self.c10k_accepted = n.saturating_sub(base.min(n));
            }
        }
        // Fallback if the fd count is no guide: another batch every 50 ms.
        if ours < self.c10k_accepted + C10K_MAX_UNACCEPTED
            || now - self.c10k_last_start >= C10K_PACING_FALLBACK
        {
            if ours >= self.c10k_accepted + C10K_MAX_UNACCEPTED {
                // Pretend everything was accepted: allows one more batch.
                self.c10k_accepted = ours;
            }
            self.c10k_last_start = now;
            return true;
        }
        false
    }

    fn c10k_top_up(&mut self, now: Instant) {
        while self.phase == Phase::C10kConnect
            && self.connecting < C10K_CONNECT_CONCURRENCY
            && self.c10k_started < self.cfg.conns
            && self.c10k_accept_queue_ok(now)
        {
            self.c10k_started += 1;
            self.open_one(now, 0);
        }
    }

    /// A connect completed.
    fn on_open(&mut self, slot: usize, now: Instant) {
        self.connecting -= 1;
        self.stats.conns_opened += 1;
        let conn = &mut self.conns[slot];
        conn.state = ConnState::Open;
        if self.cfg.proxy_v2 {
            if let Ok(local) = conn.stream.local_addr() {
                conn.prepend(&ProxyHeader::proxy(local, self.cfg.addr).encode_v2());
            }
        }
        match self.phase {
            Phase::Warmup | Phase::Running if self.scenario != Scenario::Churn => {
                conn.budget = u64::MAX
            }
            Phase::C10kConnect => {
                self.c10k.opened += 1;
                self.c10k_top_up(now);
            }
            _ => {}
        }
    }

    /// At a fixed rate: queues the lines due on the lane `slot` serves,
    /// as far as its depth allows. Returns how many.
    fn feed_lane(&mut self, slot: usize, now: Instant) -> u64 {
        let (Some(s), Some(conn)) = (&mut self.sched, self.conns.get_mut(slot)) else {
            return 0;
        };
        // Once the window has closed, lines still waiting stay unsent: the
        // drain only collects replies.
        if conn.state != ConnState::Open || self.phase == Phase::Draining {
            return 0;
        }
        let lane = conn.lane;
        let sent_ns = ns(now.saturating_duration_since(s.origin));
        let mut n = 0;
        // Nothing is queued once the window has closed, so the window's
        // lines counted as sent are those sent on time.
        while s.sent[lane] < s.due[lane] && conn.can_queue(self.depth) {
            if s.line(lane, s.sent[lane]) >= s.warm {
                self.stats.lines_sent += 1;
            }
            conn.queue_one(sent_ns);
            s.sent[lane] += 1;
            n += 1;
        }
        self.inflight += n;
        n
    }

    /// At a fixed rate: records the latencies of the `replies` replies
    /// `slot` completed, the first being its line `first`.
    fn record_scheduled(&mut self, slot: usize, first: u64, replies: u64, now: Instant) {
        let (Some(s), Some(conn)) = (&self.sched, self.conns.get_mut(slot)) else {
            return;
        };
        let now_ns = ns(now.saturating_duration_since(s.origin));
        for k in 0..replies {
            let sent = conn.sent_at.pop_front().unwrap_or(now_ns);
            let i = s.line(conn.lane, conn.lane_base + first + k);
            if i < s.warm {
                continue;
            }
            if now < self.deadline {
                self.stats.lines_answered += 1;
            } else {
                self.stats.lines_late += 1;
            }
            self.latency.record(now_ns.saturating_sub(s.at(i)));
            self.uhist.saturating_record(now_ns.saturating_sub(sent));
        }
    }

    /// At a fixed rate: makes due every line whose time has come (and, at
    /// the window's end, every line of the window), queues them and arms
    /// the timer for the next.
    fn release(&mut self, now: Instant) {
        let Some(s) = &mut self.sched else {
            return;
        };
        let now_ns = ns(now.saturating_duration_since(s.origin));
        // At the window's end, the rest of the window's lines too.
        let upto = if now >= self.deadline {
            s.total
        } else {
            s.due_by(now_ns)
        };
        s.advance_to(upto);
        if s.next < s.total {
            let at = s.at(s.next);
            if s.armed != Some(at) {
                s.armed = Some(at);
                if let Some(t) = &self.timer {
                    t.arm(Duration::from_nanos(at.saturating_sub(now_ns)));
                }
            }
        }
        // The touched lanes become the slots serving them (a lane whose
        // connection is being replaced is fed when the new one opens).
        let mut slots = std::mem::take(&mut s.touched_lanes);
        slots.retain_mut(|lane| {
            s.touched[*lane] = false;
            s.slot[*lane].map(|slot| *lane = slot).is_some()
        });
        for &slot in &slots {
            if self.feed_lane(slot, now) > 0 {
                self.flush_conn(slot, now);
            }
        }
        slots.clear();
        if let Some(s) = &mut self.sched {
            s.touched_lanes = slots;
        }
    }

    /// Writes what `slot` has queued.
    fn flush_conn(&mut self, slot: usize, now: Instant) {
        let in_window = self.in_window();
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.pending_out() > 0 {
            match conn.flush() {
                Ok(b) => {
                    if in_window {
                        self.stats.request_bytes += b;
                    }
                }
                Err(e) => self.fail(slot, ErrKind::Io, format!("write: {e}"), now),
            }
        }
    }

    /// Queues what the window (or the schedule) allows and writes.
    fn pump(&mut self, slot: usize, now: Instant) {
        if self.sched.is_some() {
            self.feed_lane(slot, now);
        } else {
            let conn = &mut self.conns[slot];
            let t = if self.record_rtt && conn.inflight() == 0 {
                Instant::now()
            } else {
                now
            };
            let n = conn.fill(self.depth, t);
            self.inflight += n;
            self.stats.lines_sent += n;
        }
        self.flush_conn(slot, now);
    }

    fn handle_event(&mut self, token: Token, readable: bool, now: Instant) {
        let slot = token.0 & 0xffff_ffff;
        let gen = (token.0 >> 32) as u32;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.gen != gen {
            return;
        }
        if conn.state == ConnState::Connecting {
            match conn.check_connected() {
                Ok(false) => return,
                Ok(true) => self.on_open(slot, now),
                Err(e) => {
                    self.fail(slot, ErrKind::ConnectFailed, format!("connect: {e}"), now);
                    return;
                }
            }
        }
        if !readable {
            self.pump(slot, now);
            return;
        }
        let in_window = self.in_window();
        let conn = &mut self.conns[slot];
        let first = conn.verifier.next_seq();
        let res = conn.read_and_verify(&mut self.rbuf);
        if res.replies > 0 || res.bytes > 0 {
            self.inflight -= res.replies;
            self.done_total += res.replies;
            if in_window {
                self.stats.reply_bytes += res.bytes;
            }
            if self.sched.is_some() {
                // Answered, late and latency go by the line's place in
                // the schedule.
                self.record_scheduled(slot, first, res.replies, now);
            } else if in_window {
                self.stats.lines_answered += res.replies;
                if self.record_rtt && res.replies > 0 {
                    self.latency.record(ns(now - conn.line_at));
                }
            } else {
                self.stats.lines_late += res.replies;
            }
        }
        let conn = &mut self.conns[slot];
        if let Some(err) = res.err {
            let (kind, what) = match err {
                ConnError::Verify(e @ VerifyError::Mismatch { .. }) => {
                    (ErrKind::Mismatch, e.to_string())
                }
                ConnError::Verify(e @ VerifyError::Unsolicited { .. }) => {
                    (ErrKind::Unsolicited, e.to_string())
                }
                ConnError::Eof => (
                    ErrKind::Eof,
                    format!(
                        "server closed the connection ({} lines outstanding)",
                        conn.inflight()
                    ),
                ),
                ConnError::Io(e) => (ErrKind::Io, format!("read: {e}")),
            };
            self.fail(slot, kind, what, now);
            return;
        }
        if self.scenario == Scenario::Churn
            && conn.budget == 0
            && conn.queued > 0
            && conn.inflight() == 0
        {
            let conn = self.remove(slot);
            self.done_total += 1;
            if self.phase == Phase::Running {
                self.stats.conns_completed += 1;
                self.latency.record(ns(now - conn.started));
            }
            drop(conn);
            if self.loading() {
                self.open_or_retry(now, 0);
            }
            return;
        }
        self.pump(slot, now);
    }

    // ---------------------------------------------------------------- phases

    fn begin(&mut self, now: Instant) {
        match self.scenario {
            Scenario::Pipeline | Scenario::PingPong | Scenario::BigLine => {
                self.phase = Phase::Setup;
                self.phase_deadline = now + self.cfg.connect_timeout;
                if let Some(rate) = self.share.rate {
                    let (warmup, window) = (self.cfg.warmup, self.cfg.duration);
                    self.sched = Some(Schedule::new(rate, self.share.conns, warmup, window, now));
                }
                for lane in 0..self.share.conns {
                    self.open_or_retry(now, lane);
                }
            }
            Scenario::Churn => {
                self.start_running(now);
                for _ in 0..self.share.workers {
                    self.open_or_retry(now, 0);
                }
            }
            Scenario::C10k => {
                if let Some(pid) = self.cfg.server_pid {
                    // Connections of an earlier run may still be closing on
                    // the server: wait (at most 3 s) until its fd count stops
                    // falling, so `base` is a fair baseline.
                    let mut prev = sys::count_fds(pid);
                    let limit = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < limit {
                        std::thread::sleep(Duration::from_millis(50));
                        let n = sys::count_fds(pid);
                        if n >= prev {
                            break;
                        }
                        prev = n;
                    }
                    self.c10k.rss_before_kib = sys::read_rss_kib(pid);
                    self.c10k_fd_base = sys::count_fds(pid);
                }
                self.c10k.source_ips = self.sources.len();
                self.phase = Phase::C10kConnect;
                self.c10k_phase_start = now;
                self.phase_deadline = now + self.cfg.duration.max(C10K_MIN_PHASE);
                self.c10k_top_up(now);
            }
        }
    }

    fn slots(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    /// Starts the load: the warm-up if there is one, else the window.
    fn start_running(&mut self, now: Instant) {
        if let Some(b) = &self.share.barrier {
            b.wait();
        }
        let now = Instant::now().max(now);
        self.phase = if self.cfg.warmup.is_zero() {
            Phase::Running
        } else {
            Phase::Warmup
        };
        self.window_start = now + self.cfg.warmup;
        self.latency.begin(self.window_start);
        self.deadline = self.window_start + self.cfg.duration;
        if let Some(s) = &mut self.sched {
            s.origin = now;
        }
        if self.scenario == Scenario::Churn {
            return;
        }
        for slot in self.slots() {
            if self.conns[slot].state == ConnState::Open {
                self.conns[slot].budget = u64::MAX;
                self.pump(slot, now);
            }
        }
    }

    /// The warm-up is over: everything counted so far but the errors is
    /// forgotten.
    fn start_window(&mut self) {
        self.phase = Phase::Running;
        let s = &mut self.stats;
        if self.sched.is_none() {
            // The lines in flight will be answered in the window: they count
            // as sent in it. (At a fixed rate only the window's own lines
            // were counted.)
            s.lines_sent = self.inflight;
        }
        s.lines_answered = 0;
        s.lines_late = 0;
        s.request_bytes = 0;
        s.reply_bytes = 0;
        s.conns_completed = 0;
        self.latency.begin(self.window_start);
        self.uhist.reset();
    }

    fn start_drain(&mut self, now: Instant) {
        self.release(now);
        self.phase = Phase::Draining;
        self.window_end = Some(now.min(self.deadline).max(self.window_start));
        self.phase_deadline = now + self.cfg.drain_timeout;
        self.reopen_at.clear();
        for slot in self.slots() {
            if self.conns[slot].state == ConnState::Connecting {
                // Abandoned, not an error: nothing was sent on it.
                self.remove(slot);
            } else {
                self.conns[slot].budget = 0;
            }
        }
    }

    fn timeout_connecting(&mut self, now: Instant, all: bool) {
        if self.connecting == 0 {
            return;
        }
        let limit = self.cfg.connect_timeout;
        for slot in self.slots() {
            let c = &self.conns[slot];
            if c.state == ConnState::Connecting && (all || now - c.started >= limit) {
                let waited = now - c.started;
                self.fail(
                    slot,
                    ErrKind::ConnectTimeout,
                    format!("connect not completed after {waited:?}"),
                    now,
                );
            }
        }
    }

    fn c10k_start_send(&mut self, now: Instant) {
        if let Some(pid) = self.cfg.server_pid {
            self.c10k.rss_idle_kib = sys::read_rss_kib(pid);
        }
        self.phase = Phase::C10kSend;
        self.c10k_phase_start = now;
        self.phase_deadline = now + self.cfg.duration.max(C10K_MIN_PHASE);
        for slot in self.slots() {
            if let Some(c) = self.conns.get_mut(slot) {
                c.budget = 1;
                self.pump(slot, now);
            }
        }
    }

    fn c10k_settled(&self, now: Instant) -> bool {
        match (self.cfg.server_pid, self.c10k_fd_base) {
            (Some(pid), Some(base)) => {
                // One fd of slack: the preflight connection may not have been
                // closed by the server yet when `base` was sampled.
                let want = base + self.c10k.opened as usize;
                sys::count_fds(pid).is_some_and(|n| n + 1 >= want)
            }
            _ => now - self.c10k_phase_start >= C10K_SETTLE_NO_PID,
        }
    }

    /// Moves between phases; called once per loop iteration.
    fn advance(&mut self, now: Instant) {
        match self.phase {
            Phase::Setup => {
                if (self.connecting == 0 && self.reopen_at.is_empty()) || now >= self.phase_deadline
                {
                    self.start_running(now);
                }
            }
            Phase::Warmup => {
                if now >= self.window_start {
                    self.start_window();
                }
            }
            Phase::Running => {
                self.latency.tick(now);
                if now >= self.deadline {
                    self.start_drain(now);
                }
            }
            Phase::Draining => {
                if self.inflight == 0 || now >= self.phase_deadline {
                    self.phase = Phase::Done;
                }
            }
            Phase::C10kConnect => {
                let all_started = self.c10k_started >= self.cfg.conns;
                if (all_started && self.connecting == 0) || now >= self.phase_deadline {
                    // Leave the phase first so failures start no new connects.
                    self.phase = Phase::C10kSettle;
                    self.timeout_connecting(now, true);
                    let skipped = self.cfg.conns.saturating_sub(self.c10k_started);
                    if skipped > 0 {
                        self.count_error(ErrKind::ConnectTimeout, || {
                            format!("c10k: {skipped} connections not even attempted in time")
                        });
                        self.stats.errors.connect_timeout += skipped as u64 - 1;
                    }
                    self.c10k.connect_secs = (now - self.t0).as_secs_f64();
                    self.c10k_phase_start = now;
                    self.phase_deadline = now + C10K_SETTLE_MAX;
                }
            }
            Phase::C10kSettle => {
                if now >= self.phase_deadline {
                    self.c10k_start_send(now);
                }
                // Otherwise checked on the housekeeping tick.
            }
            Phase::C10kSend => {
                if self.inflight == 0 || now >= self.phase_deadline {
                    self.c10k.reply_secs = (now - self.c10k_phase_start).as_secs_f64();
                    if let Some(pid) = self.cfg.server_pid {
                        self.c10k.rss_after_line_kib = sys::read_rss_kib(pid);
                    }
                    self.window_end = Some(now);
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.timeout_connecting(now, false);
        if !self.reopen_at.is_empty() {
            let due: Vec<usize> = self
                .reopen_at
                .iter()
                .filter(|(t, _)| *t <= now)
                .map(|&(_, lane)| lane)
                .collect();
            self.reopen_at.retain(|(t, _)| *t > now);
            if self.reopens() {
                for lane in due {
                    self.open_or_retry(now, lane);
                }
            }
        }
        match self.phase {
            Phase::C10kConnect => {}
            Phase::C10kSettle if self.c10k_settled(now) => self.c10k_start_send(now),
            _ => {}
        }
    }

    // ---------------------------------------------------------------- progress

    fn show_progress(&self) {
        let Some(m) = &self.share.meter else {
            return;
        };
        let stage = match self.phase {
            Phase::Setup | Phase::C10kConnect | Phase::C10kSettle => Stage::Setup,
            Phase::Warmup => Stage::Warmup,
            Phase::Running | Phase::C10kSend => Stage::Running,
            Phase::Draining => Stage::Draining,
            Phase::Done => Stage::Done,
        };
        m.set(
            stage,
            self.done_total,
            self.stats.errors.total(),
            self.conns.len() as u64,
        );
    }

    // ---------------------------------------------------------------- loop

    pub(crate) fn run(mut self) -> Result<Report, LoadgenError> {
        let mut events = Events::with_capacity(1024);
        let start = Instant::now();
        self.t0 = start;
        self.next_tick = start + TICK;
        self.begin(start);
        loop {
            let now = Instant::now();
            self.advance(now);
            if self.phase == Phase::Done {
                break;
            }
            if self.loading() {
                self.release(now);
            }
            let mut wake = self.next_tick;
            if self.phase == Phase::C10kConnect && self.cfg.server_pid.is_some() {
                wake = wake.min(now + C10K_FD_POLL);
            }
            match self.phase {
                Phase::Warmup => wake = wake.min(self.window_start),
                Phase::Running => wake = wake.min(self.deadline),
                Phase::Setup
                | Phase::Draining
                | Phase::C10kConnect
                | Phase::C10kSettle
                | Phase::C10kSend => wake = wake.min(self.phase_deadline),
                Phase::Done => {}
            }
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(LoadgenError::Io(e));
                }
            }
            // Per-event timestamps only where latency is measured.
            let precise =
                self.record_rtt || self.sched.is_some() || self.scenario == Scenario::Churn;
            let batch_now = Instant::now();
            for ev in events.iter() {
                if ev.token() == TIMER {
                    if let Some(t) = &self.timer {
                        t.clear();
                    }
                    continue;
                }
                let t = if precise { Instant::now() } else { batch_now };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                self.handle_event(ev.token(), readable, t);
            }
            let now = Instant::now();
            if self.phase == Phase::C10kConnect {
                self.c10k_top_up(now);
            }
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.housekeeping(now);
            }
            self.show_progress();
        }
        if let Some(m) = &self.share.meter {
            m.finish();
        }
        Ok(self.finish())
    }

    fn finish(mut self) -> Report {
        let now = Instant::now();
        self.stats.errors.unanswered += self.inflight;
        let rate = self.sched.as_ref().map(|s| {
            let on_time = self.stats.lines_sent;
            RateStats {
                target: self.share.rate.unwrap_or(0.0),
                achieved: on_time as f64 / self.cfg.duration.as_secs_f64(),
                scheduled: s.total - s.warm,
                on_time,
                unsent: (s.total - s.warm).saturating_sub(on_time),
            }
        });
        let elapsed = match self.scenario {
            Scenario::C10k => self.window_end.unwrap_or(now) - self.t0,
            _ => self.window_end.unwrap_or(now) - self.window_start,
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        let s = &self.stats;
        let c10k = if self.scenario == Scenario::C10k {
            let mut c = self.c10k.clone();
            c.served = s.lines_answered;
            let per = |after: Option<u64>| match (c.rss_before_kib, after) {
                (Some(b), Some(a)) if c.opened > 0 => {
                    Some((a as f64 - b as f64) * 1024.0 / c.opened as f64)
                }
                _ => None,
            };
            c.rss_per_idle_conn_bytes = per(c.rss_idle_kib);
            c.rss_per_conn_after_line_bytes = per(c.rss_after_line_kib);
            Some(c)
        } else {
            None
        };
        let cfg = self.cfg;
        let fixed_rate = self.sched.is_some();
        Report {
            scenario: self.scenario,
            params: Params {
                addr: cfg.addr,
                conns: self.share.conns,
                depth: self.depth as usize,
                line_bytes: cfg.line_bytes,
                duration: cfg.duration,
                workers: self.share.workers,
                server_pid: cfg.server_pid,
                source_ips: self.sources.len(),
                rate: self.share.rate,
                warmup: cfg.warmup,
                threads: 1,
                proxy_v2: cfg.proxy_v2,
                expect_prefix: String::from_utf8_lossy(&cfg.expect_prefix).into_owned(),
                label: cfg.label.clone(),
            },
            lines_sent: s.lines_sent,
            lines_answered: s.lines_answered,
            lines_answered_late: s.lines_late,
            request_bytes: s.request_bytes,
            reply_bytes: s.reply_bytes,
            errors: s.errors.clone(),
            first_error: s.first_error.clone(),
            elapsed,
            lines_per_sec: s.lines_answered as f64 / secs,
            mb_per_sec: (s.request_bytes + s.reply_bytes) as f64 / secs / 1e6,
            conns_completed: s.conns_completed,
            conns_per_sec: (self.scenario == Scenario::Churn)
                .then(|| s.conns_completed as f64 / secs),
            latency: Latency::from_histogram(&self.latency.all),
            histogram: self.latency.histogram(),
            uncorrected_histogram: (fixed_rate && !self.uhist.is_empty())
                .then(|| self.uhist.clone()),
            rate,
            intervals: self.latency.take_intervals(),
            c10k,
            conns_opened: s.conns_opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_holds_rate_times_window_lines_for_whole_counts() {
        let now = Instant::now();
        for rate in (1..=200).map(|k| k as f64 * 1000.0).chain([1.0, 3.0, 7.0]) {
            for secs in [1u64, 2, 3, 10] {
                let s = Schedule::new(rate, 7, Duration::ZERO, Duration::from_secs(secs), now);
                assert_eq!(s.total, rate as u64 * secs, "rate {rate}, {secs} s");
                // The last line is due inside the window, the next would not be.
                assert!(s.at(s.total - 1) < secs * 1_000_000_000);
                assert!(s.at(s.total) >= secs * 1_000_000_000);
            }
        }
        let s = Schedule::new(
            1000.0,
            1,
            Duration::from_millis(500),
            Duration::from_secs(1),
            now,
        );
        assert_eq!((s.warm, s.total), (500, 1500));
    }

    #[test]
    fn lines_become_due_on_time_and_each_lane_gets_its_share() {
        let now = Instant::now();
        let mut s = Schedule::new(1000.0, 3, Duration::ZERO, Duration::from_secs(1), now);
        // Line i is due at i ms: by 0 ns one line, by 10 ms eleven.
        assert_eq!(s.due_by(0), 1);
        assert_eq!(s.due_by(999_999), 1);
        assert_eq!(s.due_by(10_000_000), 11);
        assert_eq!(s.due_by(u64::MAX / 2), 1000);
        // Line by line (fewer than the lanes at a time) ...
        s.advance_to(2);
        assert_eq!(s.due, vec![1, 1, 0]);
        assert_eq!(s.touched_lanes, vec![0, 1]);
        // ... or all lanes at once: the same shares.
        s.advance_to(11);
        assert_eq!(s.due, vec![4, 4, 3]);
        assert_eq!(s.touched_lanes, vec![0, 1, 2]);
        s.advance_to(1000);
        assert_eq!(s.due.iter().sum::<u64>(), 1000);
        assert_eq!(s.due, vec![334, 333, 333]);
        // Lane 1's line 5 is the run's line 16.
        assert_eq!(s.line(1, 5), 16);
    }
}
