//! Reading the runtime's event traces (`echo-server --trace FILE`, format in
//! `tools/TRACE_FORMAT.md`): [`Analysis`] takes the events of one or more
//! reactors' traces in one pass, gathering per-actor timelines, the lints
//! of [`Analysis::lints`], and, if asked, a Chrome trace-event file that
//! Perfetto and chrome://tracing open ([`Chrome`]).
//!
//! Every line is read with the runtime's own parser,
//! [`credit_actors::reactor::trace::parse_line`]. What is kept grows with
//! the actors and sockets alive, not with the events: a closed socket's
//! state is dropped at its exit, runs are summed per actor (the ten
//! slowest kept), and latencies go into a histogram.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Write};

use credit_actors::reactor::trace::{parse_line, Event, Header, Line, TRACE_VERSION};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// How many of the slowest runs [`Analysis::slowest`] keeps.
pub const SLOWEST: usize = 10;

/// Units delivered and not yet answered that a socket's line timing keeps;
/// a controller that does not answer each unit (a chat room) would grow it
/// without end.
const PENDING_LINES: usize = 4096;

/// What one actor did, as the trace tells it.
#[derive(Clone, Debug, Default)]
pub struct ActorInfo {
    /// The reactor (trace) it lived on.
    pub reactor: usize,
    /// Its behaviour's type, without the module path (empty if the trace
    /// began after its spawn).
    pub ty: String,
    /// When it was spawned, ns (`None`: before the trace began).
    pub spawned: Option<u64>,
    /// When it exited, and why.
    pub exited: Option<(u64, String)>,
    /// Runs.
    pub runs: u64,
    /// Messages handled over all runs.
    pub messages: u64,
    /// Time spent running, ns.
    pub busy_ns: u64,
    /// Times made runnable.
    pub queued: u64,
    /// Runs that handled the whole budget.
    pub full_runs: u64,
    /// Runs longer than the slow threshold.
    pub slow_runs: u64,
    /// The longest run, ns.
    pub longest_ns: u64,
    /// Messages waiting after its last run (traces since the `E` events
    /// carried it).
    pub waiting: u64,
    /// The most messages waiting at the end of a run that began a growing
    /// stretch's peak: reached after at least [`GROWING_RUNS`] runs in a
    /// row each leaving more waiting than the one before. 0 if none did.
    pub grown_to: u64,
    /// The longest such stretch, in runs.
    pub growing_runs: u64,
    /// Runs in a row, up to the last, that left more waiting than the run
    /// before (the first run with the figure is no rise).
    streak: u64,
    /// A run with the waiting figure was seen.
    waited: bool,
    begin: Option<u64>,
}

/// Runs in a row that must each leave more messages waiting for the
/// `mailbox` lint.
pub const GROWING_RUNS: u64 = 3;

/// A socket actor's credit, as the trace tells it.
#[derive(Clone, Debug, Default)]
struct Credit {
    /// Seen spawned in this trace (so its whole life is known).
    spawned: bool,
    /// Ever given credit.
    ever_given: bool,
    /// Bytes read so far.
    read: u64,
    /// Out of credit with input waiting since this time (`Z`).
    starved_since: Option<u64>,
    /// The longest stall seen, ns, and how many passed the threshold.
    longest_stall: u64,
    stalls: u64,
}

impl Credit {
    /// Whether a lint has something to say about this socket.
    fn notable(&self) -> bool {
        self.stalls > 0 || self.never_given()
    }

    /// Spawned within the trace, read input, and never given credit.
    fn never_given(&self) -> bool {
        self.spawned && self.read > 0 && !self.ever_given
    }
}

/// Thresholds of the lints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// A run longer than this is slow, ns.
    pub slow_run_ns: u64,
    /// A socket out of credit with input waiting, longer than this, ns.
    pub stall_ns: u64,
    /// An actor spending its whole budget on more than this share of its
    /// runs (and on at least `min_runs`) is flagged.
    pub full_share: f64,
    /// Runs an actor needs before its share of full runs means anything.
    pub min_runs: u64,
    /// Messages waiting a growing mailbox must reach to be flagged.
    pub mailbox_min: u64,
}

impl Default for Thresholds {
    /// Slow runs past 1 ms, stalls past 100 ms, whole budget on more than
    /// half of at least 10 runs, a mailbox growing to 100 messages.
    fn default() -> Thresholds {
        Thresholds {
            slow_run_ns: 1_000_000,
            stall_ns: 100_000_000,
            full_share: 0.5,
            min_runs: 10,
            mailbox_min: 100,
        }
    }
}

/// One warning about the traced system, naming the actor, its behaviour
/// type and the figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lint {
    /// What kind: `budget`, `slow-run`, `dead-send`, `credit-stall`,
    /// `no-credit`.
    pub kind: &'static str,
    /// The actor, as printed (`<3.0>`), with its reactor (`@0`).
    pub actor: String,
    /// Its behaviour's type (`?` if the trace never saw it spawned).
    pub ty: String,
    /// The figure, in words.
    pub detail: String,
}

impl std::fmt::Display for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<13} {} {}: {}",
            self.kind, self.actor, self.ty, self.detail
        )
    }
}

/// The Chrome trace-event writer: one process per reactor (`pid` is the
/// reactor's index plus one: Perfetto treats pid 0 apart), one thread
/// (track) per actor, each run a complete event named by the behaviour's
/// type, socket reads, writes, units and credit as instant events, and
/// timers on the reactor's own track (`tid` 0). Times are microseconds.
#[derive(Debug)]
pub struct Chrome<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> Chrome<W> {
    /// Starts the file on `out`.
    pub fn new(mut out: W) -> io::Result<Chrome<W>> {
        out.write_all(
            b"{\"displayTimeUnit\":\"ns\",\"otherData\":{\"format\":\"credit-actors trace\"},\"traceEvents\":[\n",
        )?;
        Ok(Chrome { out, first: true })
    }

    fn event(&mut self, v: &Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, v)?;
        Ok(())
    }

    /// Ends the file.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// A Rust type name without its module path, generics kept readable:
/// `my::Session<my::Echo>` is `Session<Echo>`.
fn short_type(name: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(""));
    out
}

/// One pass over traces: feed each reactor's trace with
/// [`Analysis::read_trace`], then read the figures and the lints.
#[derive(Debug)]
pub struct Analysis<W: Write> {
    /// Thresholds of the lints.
    pub thresholds: Thresholds,
    /// Actors in the order they first appeared, as `(reactor, id)`.
    pub order: Vec<(usize, String)>,
    /// What each actor did, by `(reactor, id)`.
    pub actors: HashMap<(usize, String), ActorInfo>,
    /// Runs read.
    pub run_count: u64,
    /// The slowest runs, slowest first: `(duration ns, start ns, reactor,
    /// id, messages)`; at most [`SLOWEST`].
    pub slowest: Vec<(u64, u64, usize, String, u64)>,
    /// Events read.
    pub events: u64,
    /// Timers fired.
    pub timers: u64,
    /// Traces whose last line was cut short (a killed process), skipped.
    pub truncated: u64,
    /// Sends to dead actors: `(reactor, sender or "-", receiver)` and how
    /// many.
    pub dead_sends: HashMap<(usize, String, String), u64>,
    /// Read-to-reply-write latencies of lines, ns (each unit matched to the
    /// next output queued on its socket, then to the first write after).
    pub latencies: Histogram<u64>,
    credit: HashMap<(usize, String), Credit>,
    /// Sockets gone, kept only if a lint has something to say of them.
    closed: Vec<((usize, String), Credit)>,
    lines: HashMap<(usize, String), LineTimes>,
    tids: HashMap<(usize, String), u64>,
    chrome: Option<Chrome<W>>,
}

#[derive(Debug, Default)]
struct LineTimes {
    last_read: u64,
    delivered: VecDeque<u64>,
    queued: VecDeque<u64>,
}

impl<W: Write> Analysis<W> {
    /// An empty analysis; with `chrome`, every event read is also written
    /// there.
    pub fn new(thresholds: Thresholds, chrome: Option<Chrome<W>>) -> Analysis<W> {
        Analysis {
            thresholds,
            order: Vec::new(),
            actors: HashMap::new(),
            run_count: 0,
            slowest: Vec::new(),
            events: 0,
            timers: 0,
            truncated: 0,
            dead_sends: HashMap::new(),
            latencies: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds"),
            credit: HashMap::new(),
            closed: Vec::new(),
            lines: HashMap::new(),
            tids: HashMap::new(),
            chrome,
        }
    }

    /// Reads one reactor's trace, which must start with its header (a
    /// trace of this format's version). Returns the header. A last line cut
    /// short, as a killed process leaves it, is skipped and counted in
    /// [`Analysis::truncated`]; any other bad line is an error naming it.
    pub fn read_trace(&mut self, input: impl BufRead) -> io::Result<Header> {
        let bad = |n: usize, what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {what}", n + 1),
            )
        };
        let mut header: Option<Header> = None;
        let mut cut: Option<io::Error> = None;
        let mut end = 0u64;
        for (n, line) in input.lines().enumerate() {
            let line = line?;
            if let Some(e) = cut.take() {
                // The bad line was not the last one.
                return Err(e);
            }
            match parse_line(&line) {
                Ok(Line::Header(h)) if header.is_none() => {
                    header = Some(h);
                    self.name_reactor(h.reactor)?;
                }
                Ok(Line::Header(_)) => return Err(bad(n, "a second header".into())),
                Ok(Line::Event(e)) => {
                    let Some(h) = header else {
                        return Err(bad(
                            n,
                            format!("an event before the header (not a trace of version {TRACE_VERSION}?)"),
                        ));
                    };
                    end = end.max(e.ns);
                    self.event(&h, e)?;
                }
                Ok(Line::Blank) => {}
                Err(e) => cut = Some(bad(n, e.to_string())),
            }
        }
        if cut.is_some() {
            self.truncated += 1;
        }
        let Some(h) = header else {
            return Err(bad(0, "no header: not a trace".into()));
        };
        // Sockets still starved at the end of this trace were starved until
        // its end (times are this reactor's own).
        let stall = self.thresholds.stall_ns;
        for ((r, _), c) in self.credit.iter_mut() {
            if *r == h.reactor {
                c.end_stall(end, stall);
            }
        }
        Ok(h)
    }

    fn name_reactor(&mut self, reactor: usize) -> io::Result<()> {
        if let Some(c) = &mut self.chrome {
            c.event(
                &json!({"ph": "M", "name": "process_name", "pid": reactor + 1,
                "args": {"name": format!("reactor {reactor}")}}),
            )?;
            c.event(
                &json!({"ph": "M", "name": "thread_name", "pid": reactor + 1, "tid": 0,
                "args": {"name": "reactor (timers)"}}),
            )?;
        }
        Ok(())
    }

    /// The Chrome track of an actor (its name is written at the end, when
    /// its type is known even if its spawn was not traced).
    fn tid(&mut self, reactor: usize, id: &str) -> u64 {
        let next = self.tids.len() as u64 + 1;
        *self.tids.entry((reactor, id.to_string())).or_insert(next)
    }

    fn instant(
        &mut self,
        reactor: usize,
        id: &str,
        name: &str,
        ns: u64,
        args: Value,
    ) -> io::Result<()> {
        if self.chrome.is_none() {
            return Ok(());
        }
        let tid = self.tid(reactor, id);
        if let Some(c) = &mut self.chrome {
            c.event(
                &json!({"ph": "i", "s": "t", "name": name, "pid": reactor + 1, "tid": tid,
                "ts": us(ns), "args": args}),
            )?;
        }
        Ok(())
    }

    fn event(&mut self, h: &Header, e: Event<'_>) -> io::Result<()> {
        self.events += 1;
        let r = h.reactor;
        let key = (r, e.id.to_string());
        match e.kind {
            'S' => {
                let a = self.actor(key.clone());
                a.ty = short_type(e.rest);
                a.spawned = Some(e.ns);
                self.credit.entry(key).or_default().spawned = true;
                self.instant(r, e.id, "spawn", e.ns, json!({}))?;
            }
            'X' => {
                self.actor(key.clone()).exited = Some((e.ns, e.rest.to_string()));
                // A socket's state ends with it.
                if let Some(mut c) = self.credit.remove(&key) {
                    c.end_stall(e.ns, self.thresholds.stall_ns);
                    if c.notable() {
                        self.closed.push((key.clone(), c));
                    }
                }
                self.lines.remove(&key);
                self.instant(r, e.id, "exit", e.ns, json!({"reason": e.rest}))?;
            }
            'Q' => self.actor(key).queued += 1,
            'B' => self.actor(key).begin = Some(e.ns),
            'E' => {
                let msgs = e.value().unwrap_or(0);
                let (slow, full) = (self.thresholds.slow_run_ns, h.budget as u64);
                let a = self.actor(key);
                let Some(b) = a.begin.take() else {
                    return Ok(());
                };
                let dur = e.ns.saturating_sub(b);
                a.runs += 1;
                a.messages += msgs;
                a.busy_ns += dur;
                a.longest_ns = a.longest_ns.max(dur);
                a.slow_runs += u64::from(dur > slow);
                a.full_runs += u64::from(full > 0 && msgs >= full);
                if let Some(w) = e.rest.split(' ').nth(1).and_then(|w| w.parse::<u64>().ok()) {
                    a.streak = if a.waited && w > a.waiting {
                        a.streak + 1
                    } else {
                        0
                    };
                    a.waited = true;
                    a.waiting = w;
                    if a.streak >= GROWING_RUNS && w >= a.grown_to {
                        a.grown_to = w;
                        a.growing_runs = a.growing_runs.max(a.streak);
                    }
                }
                let ty = a.ty.clone();
                self.run_count += 1;
                if self.slowest.len() < SLOWEST || dur > self.slowest[SLOWEST - 1].0 {
                    let at = self.slowest.partition_point(|x| x.0 >= dur);
                    self.slowest.insert(at, (dur, b, r, e.id.to_string(), msgs));
                    self.slowest.truncate(SLOWEST);
                }
                if self.chrome.is_some() {
                    let tid = self.tid(r, e.id);
                    let name = if ty.is_empty() { "run" } else { ty.as_str() };
                    if let Some(c) = &mut self.chrome {
                        c.event(&json!({"ph": "X", "name": name, "cat": "run", "pid": r + 1,
                            "tid": tid, "ts": us(b), "dur": us(dur),
                            "args": {"actor": e.id, "messages": msgs}}))?;
                    }
                }
            }
            'T' => {
                self.timers += 1;
                if let Some(c) = &mut self.chrome {
                    c.event(
                        &json!({"ph": "i", "s": "t", "name": "timer", "pid": r + 1, "tid": 0,
                        "ts": us(e.ns)}),
                    )?;
                }
            }
            'D' => {
                *self
                    .dead_sends
                    .entry((r, e.id.to_string(), e.rest.to_string()))
                    .or_default() += 1;
                if e.id != "-" {
                    self.instant(r, e.id, "send to dead", e.ns, json!({"to": e.rest}))?;
                }
            }
            'R' => {
                let bytes = e.value().unwrap_or(0);
                self.credit.entry(key.clone()).or_default().read += bytes;
                self.lines.entry(key).or_default().last_read = e.ns;
                self.instant(r, e.id, "read", e.ns, json!({"bytes": bytes}))?;
            }
            'Z' => {
                let c = self.credit.entry(key).or_default();
                c.starved_since.get_or_insert(e.ns);
                self.instant(r, e.id, "out of credit, input waiting", e.ns, json!({}))?;
            }
            'C' => {
                let credit = e.value().unwrap_or(0);
                let stall = self.thresholds.stall_ns;
                let c = self.credit.entry(key).or_default();
                if credit > 0 {
                    c.ever_given = true;
                    c.end_stall(e.ns, stall);
                }
                self.instant(r, e.id, "credit", e.ns, json!({"credit": credit}))?;
            }
            'U' => {
                let l = self.lines.entry(key).or_default();
                let read = l.last_read;
                if l.delivered.len() == PENDING_LINES {
                    l.delivered.pop_front();
                }
                l.delivered.push_back(read);
                self.instant(r, e.id, "unit", e.ns, json!({}))?;
            }
            'O' => {
                let l = self.lines.entry(key).or_default();
                if let Some(t) = l.delivered.pop_front() {
                    l.queued.push_back(t);
                }
            }
            'W' => {
                let l = self.lines.entry(key).or_default();
                for t in l.queued.drain(..) {
                    self.latencies
                        .saturating_record(e.ns.saturating_sub(t).max(1));
                }
                let bytes = e.value().unwrap_or(0);
                self.instant(r, e.id, "write", e.ns, json!({"bytes": bytes}))?;
            }
            'P' => self.instant(r, e.id, "parked", e.ns, json!({"buffered": e.value()}))?,
            _ => {}
        }
        Ok(())
    }

    /// An actor's record, made (and put in the order) when first seen,
    /// whether or not its spawn was traced.
    fn actor(&mut self, key: (usize, String)) -> &mut ActorInfo {
        if !self.actors.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.actors
            .entry(key)
            .or_insert_with_key(|(r, _)| ActorInfo {
                reactor: *r,
                ..ActorInfo::default()
            })
    }

    fn type_of(&self, reactor: usize, id: &str) -> String {
        self.actors
            .get(&(reactor, id.to_string()))
            .map(|a| a.ty.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "?".into())
    }

    /// A lint about actor `id` of reactor `r`.
    fn lint(&self, kind: &'static str, r: usize, id: &str, detail: String) -> Lint {
        Lint {
            kind,
            actor: format!("{id}@{r}"),
            ty: if id == "-" {
                "(outside any actor, or from another reactor)".into()
            } else {
                self.type_of(r, id)
            },
            detail,
        }
    }

    /// The lints: per actor in order of appearance, then dead sends by
    /// sender (most first), then sockets.
    pub fn lints(&self) -> Vec<Lint> {
        let t = &self.thresholds;
        let mut out = Vec::new();
        for (r, id) in &self.order {
            let a = &self.actors[&(*r, id.clone())];
            if a.runs >= t.min_runs && a.full_runs as f64 > t.full_share * a.runs as f64 {
                let d = format!(
                    "spent its whole budget on {} of {} runs (it keeps a backlog)",
                    a.full_runs, a.runs
                );
                out.push(self.lint("budget", *r, id, d));
            }
            if a.grown_to >= t.mailbox_min {
                let d = format!(
                    "mailbox grew over {} runs in a row to {} messages waiting ({} after its last run)",
                    a.growing_runs, a.grown_to, a.waiting
                );
                out.push(self.lint("mailbox", *r, id, d));
            }
            if a.slow_runs > 0 {
                let d = format!(
                    "{} runs longer than {} us, the longest {:.1} us",
                    a.slow_runs,
                    t.slow_run_ns / 1000,
                    us(a.longest_ns)
                );
                out.push(self.lint("slow-run", *r, id, d));
            }
        }
        // Dead sends, by sender: how many, to how many receivers.
        let mut by_sender: HashMap<(usize, &str), (u64, u64, &str)> = HashMap::new();
        for ((r, from, to), n) in &self.dead_sends {
            let e = by_sender.entry((*r, from.as_str())).or_insert((0, 0, to));
            e.0 += n;
            e.1 += 1;
        }
        let mut dead: Vec<_> = by_sender.into_iter().collect();
        dead.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        for ((r, from), (n, receivers, one)) in dead {
            let d = if receivers == 1 {
                format!("{n} sends to {one}, which was dead")
            } else {
                format!("{n} sends to {receivers} dead actors")
            };
            out.push(self.lint("dead-send", r, from, d));
        }
        // Sockets, gone or still open, in id order: stalls, then credit
        // never given.
        let mut sockets: Vec<(&(usize, String), &Credit)> = self
            .closed
            .iter()
            .map(|(k, c)| (k, c))
            .chain(self.credit.iter().filter(|(_, c)| c.notable()))
            .collect();
        sockets.sort_by(|a, b| a.0.cmp(b.0));
        for ((r, id), c) in &sockets {
            if c.stalls > 0 {
                let d = format!(
                    "out of credit with input waiting for longer than {} ms, {} times, the longest {:.1} ms",
                    t.stall_ns / 1_000_000,
                    c.stalls,
                    c.longest_stall as f64 / 1e6
                );
                out.push(self.lint("credit-stall", *r, id, d));
            }
        }
        for ((r, id), c) in &sockets {
            if c.never_given() {
                let d = format!(
                    "read {} bytes and its controller never issued credit",
                    c.read
                );
                out.push(self.lint("no-credit", *r, id, d));
            }
        }
        out
    }

    /// Names every track (with the type, once known) and ends the Chrome
    /// file, if one was being written.
    pub fn finish(&mut self) -> io::Result<()> {
        self.finish_chrome()?;
        Ok(())
    }

    fn finish_chrome(&mut self) -> io::Result<Option<W>> {
        let Some(mut c) = self.chrome.take() else {
            return Ok(None);
        };
        let mut tracks: Vec<(&(usize, String), &u64)> = self.tids.iter().collect();
        tracks.sort_by_key(|(_, t)| **t);
        for ((r, id), tid) in tracks {
            let ty = self.type_of(*r, id);
            let label = if ty == "?" {
                id.clone()
            } else {
                format!("{id} {ty}")
            };
            c.event(
                &json!({"ph": "M", "name": "thread_name", "pid": r + 1, "tid": tid,
                "args": {"name": label}}),
            )?;
        }
        c.finish().map(Some)
    }
}

impl Analysis<Vec<u8>> {
    /// Ends the Chrome file written to memory and hands it over.
    pub fn chrome_bytes(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.finish_chrome()?.unwrap_or_default())
    }
}

impl Credit {
    /// Ends a stall in progress at `now`, if there is one, and counts it
    /// if it lasted past `threshold`.
    fn end_stall(&mut self, now: u64, threshold: u64) {
        if let Some(since) = self.starved_since.take() {
            let took = now.saturating_sub(since);
            self.longest_stall = self.longest_stall.max(took);
            self.stalls += u64::from(took > threshold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(traces: &[&str]) -> Analysis<Vec<u8>> {
        let mut an = Analysis::<Vec<u8>>::new(Thresholds::default(), None);
        for t in traces {
            an.read_trace(t.as_bytes()).unwrap();
        }
        an
    }

    fn lints_of(trace: &str) -> Vec<Lint> {
        analysis(&[trace]).lints()
    }

    fn kinds(lints: &[Lint]) -> Vec<&'static str> {
        lints.iter().map(|l| l.kind).collect()
    }

    const HEADER: &str = "# credit-actors trace 2 reactor=0 budget=4\n";

    #[test]
    fn a_calm_trace_has_no_lints() {
        let t = format!(
            "{HEADER}1 S <1.0> a::Worker\n2 Q <1.0>\n3 B <1.0>\n10 E <1.0> 2\n\
             19 S <2.0> a::Socket\n20 R <2.0> 10\n21 C <2.0> 64\n22 U <2.0>\n30 X <1.0> normal\n"
        );
        assert_eq!(lints_of(&t), vec![]);
    }

    #[test]
    fn whole_budget_runs_and_slow_runs_are_flagged_with_the_type() {
        let mut t = format!("{HEADER}1 S <1.0> a::b::Busy<a::c::Echo, alloc::vec::Vec<u8>>\n");
        // 10 runs, 8 of them with the whole budget (4), one of 2 ms.
        for i in 0..10u64 {
            let b = 1000 + i * 10_000_000;
            let msgs = if i < 8 { 4 } else { 1 };
            let dur = if i == 9 { 2_000_000 } else { 1000 };
            t.push_str(&format!("{b} B <1.0>\n{} E <1.0> {msgs}\n", b + dur));
        }
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["budget", "slow-run"], "{l:?}");
        assert_eq!(l[0].ty, "Busy<Echo, Vec<u8>>");
        assert!(l[0].detail.contains("8 of 10 runs"), "{}", l[0].detail);
        assert!(
            l[1].detail.contains("1 runs longer than 1000 us"),
            "{}",
            l[1].detail
        );
        assert!(l[1].detail.contains("2000.0 us"), "{}", l[1].detail);
    }

    #[test]
    fn a_mailbox_growing_over_three_runs_past_the_mark_is_flagged() {
        let run = |t: &mut String, i: u64, waiting: u64| {
            let b = 1000 + i * 1000;
            t.push_str(&format!("{b} B <1.0>\n{} E <1.0> 4 {waiting}\n", b + 10));
        };
        let mut t = format!("{HEADER}1 S <1.0> a::Sink\n");
        for (i, w) in [5, 10, 60, 150, 400, 380].into_iter().enumerate() {
            run(&mut t, i as u64, w);
        }
        let l = lints_of(&t);
        let m: Vec<&Lint> = l.iter().filter(|l| l.kind == "mailbox").collect();
        assert_eq!(m.len(), 1, "{l:?}");
        assert_eq!(m[0].ty, "Sink");
        assert!(
            m[0].detail
                .contains("over 4 runs in a row to 400 messages waiting (380 after its last run)"),
            "{}",
            m[0].detail
        );
        // Below the mark, or rising only twice in a row (the first run is
        // no rise): nothing.
        for ws in [[10, 20, 30, 40, 50], [40, 80, 120, 50, 500]] {
            let mut t = format!("{HEADER}1 S <1.0> a::Sink\n");
            for (i, w) in ws.into_iter().enumerate() {
                run(&mut t, i as u64, w);
            }
            assert!(!kinds(&lints_of(&t)).contains(&"mailbox"), "{ws:?}");
        }
    }

    #[test]
    fn an_actor_spawned_before_the_trace_began_is_still_linted() {
        let mut t = HEADER.to_string();
        for i in 0..10u64 {
            let b = 1000 + i * 10_000;
            t.push_str(&format!("{b} B <7.0>\n{} E <7.0> 4\n", b + 100));
        }
        let an = analysis(&[&t]);
        assert_eq!(an.order, vec![(0, "<7.0>".to_string())]);
        let l = an.lints();
        assert_eq!(kinds(&l), vec!["budget"]);
        assert_eq!((l[0].actor.as_str(), l[0].ty.as_str()), ("<7.0>@0", "?"));
    }

    #[test]
    fn out_of_credit_with_input_waiting_is_a_stall_past_the_threshold() {
        // Out of credit with input waiting at 1 ms; credit again at 301 ms.
        let t = format!(
            "{HEADER}1 S <2.0> a::Socket\n10 C <2.0> 1\n500 R <2.0> 100\n\
             600 U <2.0>\n1000000 Z <2.0>\n301000000 C <2.0> 8\n"
        );
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["credit-stall"], "{l:?}");
        assert!(
            l[0].detail.contains("the longest 300.0 ms"),
            "{}",
            l[0].detail
        );
        // A short stall is no lint.
        let short = format!("{HEADER}10 C <2.0> 1\n1000000 Z <2.0>\n2000000 C <2.0> 8\n");
        assert_eq!(lints_of(&short), vec![]);
    }

    #[test]
    fn a_stall_ends_at_the_exit_or_at_its_own_trace_s_end() {
        // Stalled 1 us, then closed; the trace goes on for a second.
        let closed = format!("{HEADER}1000 Z <2.0>\n2000 X <2.0> reset\n1000000000 T\n");
        assert_eq!(lints_of(&closed), vec![]);
        // Still stalled when its trace ends (200 ms in): counted to there.
        let open = format!("{HEADER}1000 Z <2.0>\n200001000 T\n");
        assert_eq!(kinds(&lints_of(&open)), vec!["credit-stall"]);
        // A 1 ms stall on reactor 1 read after a 10 s trace of reactor 0
        // ends with reactor 1's own trace, whatever the order.
        let long = format!("{HEADER}10000000000 T\n");
        let r1 = "# credit-actors trace 2 reactor=1 budget=4\n1000 Z <1:2.0>\n1001000 T\n";
        assert_eq!(analysis(&[&long, r1]).lints(), vec![]);
        assert_eq!(analysis(&[r1, &long]).lints(), vec![]);
    }

    #[test]
    fn a_socket_that_read_but_never_got_credit_is_flagged() {
        let t = format!("{HEADER}1 S <2.0> a::Socket\n5 R <2.0> 42\n6 C <2.0> 0\n");
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["no-credit"], "{l:?}");
        assert_eq!(
            (l[0].ty.as_str(), l[0].actor.as_str()),
            ("Socket", "<2.0>@0")
        );
        assert!(l[0].detail.contains("read 42 bytes"));
        // Not when its spawn was before the trace: credit may have been given.
        let late = format!("{HEADER}5 R <2.0> 42\n");
        assert_eq!(lints_of(&late), vec![]);
        // And still flagged once it has exited.
        let gone = format!("{t}9 X <2.0> normal\n");
        assert_eq!(kinds(&lints_of(&gone)), vec!["no-credit"]);
    }

    #[test]
    fn dead_sends_are_counted_by_sender() {
        let t = format!(
            "{HEADER}1 S <1.0> a::Broadcaster\n2 D <1.0> <5.0>\n3 D <1.0> <6.0>\n\
             4 D <1.0> <6.0>\n5 D - <9.0>\n"
        );
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["dead-send", "dead-send"], "{l:?}");
        assert_eq!(l[0].ty, "Broadcaster");
        assert_eq!(l[0].detail, "3 sends to 2 dead actors");
        assert_eq!(l[1].actor, "-@0");
        assert_eq!(l[1].detail, "1 sends to <9.0>, which was dead");
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_other_bad_lines_refused() {
        let mut an = Analysis::<Vec<u8>>::new(Thresholds::default(), None);
        an.read_trace(format!("{HEADER}1 B <1.0>\n2 E <1.0> 1\n12").as_bytes())
            .unwrap();
        assert_eq!((an.truncated, an.run_count), (1, 1));
        let err = an
            .read_trace(format!("{HEADER}nonsense\n1 B <1.0>\n").as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = an
            .read_trace("1 B <1.0>\n2 E <1.0> 1\n".as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("before the header"), "{err}");
        let err = an
            .read_trace("# credit-actors trace 1\n1 B <1.0>\n".as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
    }
}
