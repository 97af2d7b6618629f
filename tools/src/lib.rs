//! Reading the runtime's event traces (`echo-server --trace FILE`, format in
//! `tools/TRACE_FORMAT.md`): [`Analysis`] takes the events of one or more
//! reactors' traces in one pass, gathering per-actor timelines, the lints
//! of [`Analysis::lints`], and, if asked, a Chrome trace-event file that
//! Perfetto and chrome://tracing open ([`Chrome`]).
//!
//! Every line is read with the runtime's own parser,
//! [`credit_actors::reactor::trace::parse_line`].

use std::collections::HashMap;
use std::io::{self, BufRead, Write};

use credit_actors::reactor::trace::{parse_line, Event, Header, Line};
use serde_json::{json, Value};

/// How many of the slowest runs [`Analysis::slowest`] keeps.
pub const SLOWEST: usize = 10;

/// What one actor did, as the trace tells it.
#[derive(Clone, Debug, Default)]
pub struct ActorInfo {
    /// The reactor (trace) it lived on.
    pub reactor: usize,
    /// Its behaviour's type, without the module path.
    pub ty: String,
    /// When it was spawned, ns.
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
    /// Runs longer than the slow threshold, and the longest run, ns.
    pub slow_runs: u64,
    /// The longest run, ns.
    pub longest_ns: u64,
    begin: Option<u64>,
}

/// A socket actor's credit, as the trace tells it.
#[derive(Clone, Debug, Default)]
struct Credit {
    /// Credit after the last credit operation (none seen: `None`).
    now: Option<u64>,
    /// Ever above zero.
    ever_given: bool,
    /// Bytes read so far.
    read: u64,
    /// Read input since the last credit operation.
    read_since_credit: bool,
    /// Credit went to zero at this time, with input read.
    stalled_since: Option<u64>,
    /// The longest stall seen, ns, and how many passed the threshold.
    longest_stall: u64,
    stalls: u64,
}

/// Thresholds of the lints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// A run longer than this is slow, ns.
    pub slow_run_ns: u64,
    /// A socket at zero credit with input read, longer than this, ns.
    pub stall_ns: u64,
    /// An actor spending its whole budget on more than this share of its
    /// runs (and on at least `min_runs`) is flagged.
    pub full_share: f64,
    /// Runs an actor needs before its share of full runs means anything.
    pub min_runs: u64,
}

impl Default for Thresholds {
    /// Slow runs past 1 ms, stalls past 100 ms, whole budget on more than
    /// half of at least 10 runs.
    fn default() -> Thresholds {
        Thresholds {
            slow_run_ns: 1_000_000,
            stall_ns: 100_000_000,
            full_share: 0.5,
            min_runs: 10,
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
    /// The actor, as printed (`<3.0>`), with its reactor.
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

/// The Chrome trace-event writer: one process per reactor, one thread
/// (track) per actor, each run a complete event named by the behaviour's
/// type, socket reads, writes, units and credit as instant events, and
/// timers on the reactor's own track. Times are microseconds.
#[derive(Debug)]
pub struct Chrome<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> Chrome<W> {
    /// Starts the file on `out`.
    pub fn new(mut out: W) -> io::Result<Chrome<W>> {
        out.write_all(b"{\"displayTimeUnit\":\"ns\",\"otherData\":{\"format\":\"credit-actors trace\"},\"traceEvents\":[\n")?;
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
    /// id, messages)`; at most [`SLOWEST`], so a long trace is not held.
    pub slowest: Vec<(u64, u64, usize, String, u64)>,
    /// Events read.
    pub events: u64,
    /// Timers fired.
    pub timers: u64,
    /// Sends to dead actors: `(reactor, sender or "-", receiver)` and how
    /// many.
    pub dead_sends: HashMap<(usize, String, String), u64>,
    /// Read-to-reply-write latencies of lines, ns (each unit matched to the
    /// next output queued on its socket, then to the first write after).
    pub latencies: Vec<u64>,
    credit: HashMap<(usize, String), Credit>,
    lines: HashMap<(usize, String), LineTimes>,
    tids: HashMap<(usize, String), u64>,
    chrome: Option<Chrome<W>>,
    end_ns: u64,
}

#[derive(Debug, Default)]
struct LineTimes {
    last_read: u64,
    delivered: std::collections::VecDeque<u64>,
    queued: std::collections::VecDeque<u64>,
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
            dead_sends: HashMap::new(),
            latencies: Vec::new(),
            credit: HashMap::new(),
            lines: HashMap::new(),
            tids: HashMap::new(),
            chrome,
            end_ns: 0,
        }
    }

    /// Reads one reactor's trace. Returns its header; `fallback` is the
    /// reactor index used if it has none (a trace must still be of this
    /// format's version).
    pub fn read_trace(&mut self, input: impl BufRead, fallback: usize) -> io::Result<Header> {
        let mut header = Header {
            version: credit_actors::reactor::trace::TRACE_VERSION,
            reactor: fallback,
            budget: 0,
        };
        for (n, line) in input.lines().enumerate() {
            let line = line?;
            match parse_line(&line) {
                Ok(Line::Header(h)) => {
                    header = h;
                    self.name_reactor(h.reactor)?;
                }
                Ok(Line::Event(e)) => self.event(&header, e)?,
                Ok(Line::Blank) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("line {}: {e}", n + 1),
                    ))
                }
            }
        }
        // Stalls still open at the end last until the end.
        let end = self.end_ns;
        for (_, c) in self
            .credit
            .iter_mut()
            .filter(|((r, _), _)| *r == header.reactor)
        {
            if let Some(since) = c.stalled_since.take() {
                note_stall(c, end.saturating_sub(since), self.thresholds.stall_ns);
            }
        }
        Ok(header)
    }

    fn name_reactor(&mut self, reactor: usize) -> io::Result<()> {
        if let Some(c) = &mut self.chrome {
            c.event(&json!({"ph": "M", "name": "process_name", "pid": reactor,
                "args": {"name": format!("reactor {reactor}")}}))?;
            c.event(
                &json!({"ph": "M", "name": "thread_name", "pid": reactor, "tid": 0,
                "args": {"name": "reactor (timers)"}}),
            )?;
        }
        Ok(())
    }

    /// The Chrome track of an actor, named when first seen.
    fn tid(&mut self, reactor: usize, id: &str) -> io::Result<u64> {
        let key = (reactor, id.to_string());
        if let Some(&t) = self.tids.get(&key) {
            return Ok(t);
        }
        let t = self.tids.len() as u64 + 1;
        self.tids.insert(key.clone(), t);
        if let Some(c) = &mut self.chrome {
            let ty = self.actors.get(&key).map_or("", |a| a.ty.as_str());
            c.event(
                &json!({"ph": "M", "name": "thread_name", "pid": reactor, "tid": t,
                "args": {"name": format!("{id} {ty}")}}),
            )?;
        }
        Ok(t)
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
        let tid = self.tid(reactor, id)?;
        if let Some(c) = &mut self.chrome {
            c.event(
                &json!({"ph": "i", "s": "t", "name": name, "pid": reactor, "tid": tid,
                "ts": us(ns), "args": args}),
            )?;
        }
        Ok(())
    }

    fn event(&mut self, h: &Header, e: Event<'_>) -> io::Result<()> {
        self.events += 1;
        self.end_ns = self.end_ns.max(e.ns);
        let r = h.reactor;
        let key = (r, e.id.to_string());
        match e.kind {
            'S' => {
                self.order.push(key.clone());
                self.actors.insert(
                    key,
                    ActorInfo {
                        reactor: r,
                        ty: e.rest.rsplit("::").next().unwrap_or(e.rest).to_string(),
                        spawned: Some(e.ns),
                        ..ActorInfo::default()
                    },
                );
                self.instant(r, e.id, "spawn", e.ns, json!({}))?;
            }
            'X' => {
                self.actor(key).exited = Some((e.ns, e.rest.to_string()));
                self.instant(r, e.id, "exit", e.ns, json!({"reason": e.rest}))?;
            }
            'Q' => self.actor(key).queued += 1,
            'B' => self.actor(key).begin = Some(e.ns),
            'E' => {
                let msgs = e.value().unwrap_or(0);
                let t = &self.thresholds;
                let (slow, full) = (t.slow_run_ns, h.budget as u64);
                let a = self.actor(key.clone());
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
                let ty = a.ty.clone();
                self.run_count += 1;
                if self.slowest.len() < SLOWEST || dur > self.slowest[SLOWEST - 1].0 {
                    let at = self.slowest.partition_point(|x| x.0 >= dur);
                    self.slowest.insert(at, (dur, b, r, e.id.to_string(), msgs));
                    self.slowest.truncate(SLOWEST);
                }
                if self.chrome.is_some() {
                    let tid = self.tid(r, e.id)?;
                    if let Some(c) = &mut self.chrome {
                        c.event(&json!({"ph": "X", "name": if ty.is_empty() { "run" } else { ty.as_str() },
                            "cat": "run", "pid": r, "tid": tid, "ts": us(b), "dur": us(dur),
                            "args": {"actor": e.id, "messages": msgs}}))?;
                    }
                }
            }
            'T' => {
                self.timers += 1;
                if let Some(c) = &mut self.chrome {
                    c.event(
                        &json!({"ph": "i", "s": "t", "name": "timer", "pid": r, "tid": 0,
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
                let c = self.credit.entry(key.clone()).or_default();
                c.read += bytes;
                if bytes > 0 {
                    c.read_since_credit = true;
                    if c.now == Some(0) && c.stalled_since.is_none() {
                        c.stalled_since = Some(e.ns);
                    }
                }
                self.lines.entry(key).or_default().last_read = e.ns;
                self.instant(r, e.id, "read", e.ns, json!({"bytes": bytes}))?;
            }
            'C' => {
                let credit = e.value().unwrap_or(0);
                let stall = self.thresholds.stall_ns;
                let c = self.credit.entry(key).or_default();
                if credit > 0 {
                    c.ever_given = true;
                    if let Some(since) = c.stalled_since.take() {
                        note_stall(c, e.ns.saturating_sub(since), stall);
                    }
                } else if c.read_since_credit && c.stalled_since.is_none() {
                    c.stalled_since = Some(e.ns);
                }
                c.now = Some(credit);
                c.read_since_credit = false;
                self.instant(r, e.id, "credit", e.ns, json!({"credit": credit}))?;
            }
            'U' => {
                let l = self.lines.entry(key).or_default();
                let read = l.last_read;
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
                    self.latencies.push(e.ns.saturating_sub(t));
                }
                let bytes = e.value().unwrap_or(0);
                self.instant(r, e.id, "write", e.ns, json!({"bytes": bytes}))?;
            }
            'P' => self.instant(r, e.id, "parked", e.ns, json!({"buffered": e.value()}))?,
            _ => {}
        }
        Ok(())
    }

    fn actor(&mut self, key: (usize, String)) -> &mut ActorInfo {
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

    /// The lints, most telling first within each kind.
    pub fn lints(&self) -> Vec<Lint> {
        let t = &self.thresholds;
        let mut out = Vec::new();
        let name = |r: usize, id: &str| format!("{id}@{r}");
        for key in &self.order {
            let a = &self.actors[key];
            if a.runs >= t.min_runs && a.full_runs as f64 > t.full_share * a.runs as f64 {
                out.push(Lint {
                    kind: "budget",
                    actor: name(key.0, &key.1),
                    ty: self.type_of(key.0, &key.1),
                    detail: format!(
                        "spent its whole budget on {} of {} runs (it keeps a backlog)",
                        a.full_runs, a.runs
                    ),
                });
            }
            if a.slow_runs > 0 {
                out.push(Lint {
                    kind: "slow-run",
                    actor: name(key.0, &key.1),
                    ty: self.type_of(key.0, &key.1),
                    detail: format!(
                        "{} runs longer than {} us, the longest {:.1} us",
                        a.slow_runs,
                        t.slow_run_ns / 1000,
                        us(a.longest_ns)
                    ),
                });
            }
        }
        let mut dead: Vec<_> = self.dead_sends.iter().collect();
        dead.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for ((r, from, to), n) in dead {
            out.push(Lint {
                kind: "dead-send",
                actor: name(*r, from),
                ty: if from == "-" {
                    "(outside any actor)".into()
                } else {
                    self.type_of(*r, from)
                },
                detail: format!("{n} sends to {to}, which was dead"),
            });
        }
        let mut sockets: Vec<_> = self.credit.iter().collect();
        sockets.sort_by(|a, b| a.0.cmp(b.0));
        for ((r, id), c) in sockets {
            if c.stalls > 0 {
                out.push(Lint {
                    kind: "credit-stall",
                    actor: name(*r, id),
                    ty: self.type_of(*r, id),
                    detail: format!(
                        "at zero credit with input read for longer than {} ms, {} times, the longest {:.1} ms",
                        t.stall_ns / 1_000_000,
                        c.stalls,
                        c.longest_stall as f64 / 1e6
                    ),
                });
            }
            if c.read > 0 && !c.ever_given {
                out.push(Lint {
                    kind: "no-credit",
                    actor: name(*r, id),
                    ty: self.type_of(*r, id),
                    detail: format!(
                        "read {} bytes and its controller never issued credit",
                        c.read
                    ),
                });
            }
        }
        out
    }

    /// Ends the Chrome file, if one was being written.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(c) = self.chrome.take() {
            c.finish()?;
        }
        Ok(())
    }
}

impl Analysis<Vec<u8>> {
    /// Ends the Chrome file written to memory and hands it over.
    pub fn chrome_bytes(&mut self) -> io::Result<Vec<u8>> {
        match self.chrome.take() {
            Some(c) => c.finish(),
            None => Ok(Vec::new()),
        }
    }
}

fn note_stall(c: &mut Credit, took: u64, threshold: u64) {
    c.longest_stall = c.longest_stall.max(took);
    c.stalls += u64::from(took > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lints_of(trace: &str) -> Vec<Lint> {
        let mut an = Analysis::<Vec<u8>>::new(Thresholds::default(), None);
        an.read_trace(trace.as_bytes(), 0).unwrap();
        an.lints()
    }

    fn kinds(lints: &[Lint]) -> Vec<&'static str> {
        lints.iter().map(|l| l.kind).collect()
    }

    const HEADER: &str = "# credit-actors trace 2 reactor=0 budget=4\n";

    #[test]
    fn a_calm_trace_has_no_lints() {
        let t = format!(
            "{HEADER}1 S <1.0> a::Worker\n2 Q <1.0>\n3 B <1.0>\n10 E <1.0> 2\n\
             20 R <2.0> 10\n21 C <2.0> 64\n22 U <2.0>\n30 X <1.0> normal\n"
        );
        assert_eq!(lints_of(&t), vec![]);
    }

    #[test]
    fn whole_budget_runs_and_slow_runs_are_flagged_with_the_type() {
        let mut t = format!("{HEADER}1 S <1.0> a::Busy\n");
        // 10 runs, 8 of them with the whole budget (4), one of 2 ms.
        for i in 0..10u64 {
            let b = 1000 + i * 10_000_000;
            let msgs = if i < 8 { 4 } else { 1 };
            let dur = if i == 9 { 2_000_000 } else { 1000 };
            t.push_str(&format!("{b} B <1.0>\n{} E <1.0> {msgs}\n", b + dur));
        }
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["budget", "slow-run"], "{l:?}");
        assert_eq!(l[0].ty, "Busy");
        assert!(l[0].detail.contains("8 of 10 runs"), "{}", l[0].detail);
        assert!(
            l[1].detail.contains("1 runs longer than 1000 us"),
            "{}",
            l[1].detail
        );
        assert!(l[1].detail.contains("2000.0 us"), "{}", l[1].detail);
    }

    #[test]
    fn zero_credit_with_input_read_is_a_stall_past_the_threshold() {
        // Credit 0 at 1 ms with input read; given again at 301 ms.
        let t = format!(
            "{HEADER}1 S <2.0> a::Socket\n10 C <2.0> 1\n500 R <2.0> 100\n\
             1000000 C <2.0> 0\n301000000 C <2.0> 8\n"
        );
        let l = lints_of(&t);
        assert_eq!(kinds(&l), vec!["credit-stall"], "{l:?}");
        assert!(
            l[0].detail.contains("the longest 300.0 ms"),
            "{}",
            l[0].detail
        );
        // A short stall is no lint; nor is zero credit with nothing read.
        let short = format!(
            "{HEADER}10 C <2.0> 1\n500 R <2.0> 100\n1000000 C <2.0> 0\n2000000 C <2.0> 8\n"
        );
        assert_eq!(lints_of(&short), vec![]);
        let idle = format!("{HEADER}10 C <2.0> 1\n1000000 C <2.0> 0\n900000000 C <2.0> 8\n");
        assert_eq!(lints_of(&idle), vec![]);
    }

    #[test]
    fn a_stall_still_open_at_the_end_counts_to_the_end() {
        let t = format!("{HEADER}10 C <2.0> 1\n500 R <2.0> 100\n1000 C <2.0> 0\n200001000 T\n");
        assert_eq!(kinds(&lints_of(&t)), vec!["credit-stall"]);
    }

    #[test]
    fn a_socket_that_read_but_never_got_credit_is_flagged() {
        let t = format!("{HEADER}1 S <2.0> a::Socket\n5 R <2.0> 42\n6 C <2.0> 0\n");
        let l = lints_of(&t);
        assert!(kinds(&l).contains(&"no-credit"), "{l:?}");
        let nc = l.iter().find(|l| l.kind == "no-credit").unwrap();
        assert_eq!((nc.ty.as_str(), nc.actor.as_str()), ("Socket", "<2.0>@0"));
        assert!(nc.detail.contains("read 42 bytes"));
    }

    #[test]
    fn a_trace_of_another_version_or_garbled_is_refused_with_its_line() {
        let mut an = Analysis::<Vec<u8>>::new(Thresholds::default(), None);
        let err = an
            .read_trace("# credit-actors trace 1\n".as_bytes(), 0)
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = an
            .read_trace(format!("{HEADER}1 B <1.0>\nnonsense\n").as_bytes(), 0)
            .unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
