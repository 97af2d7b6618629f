//! Run results: the [`Report`] type, its human table ([`Report::table`],
//! also [`std::fmt::Display`]) and its record ([`Report::to_record`], as
//! JSON or a CSV row).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::hdr;
use super::progress::si;
use super::Scenario;

/// Percentiles every record carries (and the CSV row), whatever is shown.
pub const RECORDED_PERCENTILES: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999];

/// Percentiles the table shows unless asked for others.
pub const SHOWN_PERCENTILES: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// The parameters a run was made with (a copy of the relevant [`super::Config`]
/// fields, after scenario-specific adjustments such as `depth = 1` for
/// pingpong).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections (pipeline, pingpong, bigline) or target connection count (c10k).
    pub conns: usize,
    /// Lines in flight per connection.
    pub depth: usize,
    /// Bytes per line, excluding the LF.
    pub line_bytes: usize,
    /// Configured measurement duration.
    pub duration: Duration,
    /// Concurrent churn workers.
    pub workers: usize,
    /// Server process id used for RSS sampling.
    pub server_pid: Option<u32>,
    /// Number of distinct local source addresses used (0 = kernel's choice).
    pub source_ips: usize,
    /// Lines per second asked for (open loop); `None` for a closed loop.
    pub rate: Option<f64>,
    /// Load before the window, counted nowhere.
    pub warmup: Duration,
    /// Generator threads.
    pub threads: usize,
    /// Each connection began with a PROXY v2 header.
    pub proxy_v2: bool,
    /// The prefix every reply was checked to start with.
    pub expect_prefix: String,
    /// The run's name in records and plots (empty: the scenario and the
    /// address).
    pub label: String,
}

/// Errors counted during a run, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// A reply differed from `You said: <line>\n` (connection then closed).
    pub mismatch: u64,
    /// Reply bytes arrived although no line was outstanding.
    pub unsolicited: u64,
    /// `connect` failed (refused, no address, no fd, ...).
    pub connect_failed: u64,
    /// A connection was not established within the connect timeout.
    pub connect_timeout: u64,
    /// A read or write on an established connection failed (reset, ...).
    pub io: u64,
    /// The server closed a connection it should have kept open.
    pub eof: u64,
    /// Lines still without a reply when the run ended (after the drain time).
    pub unanswered: u64,
}

impl ErrorCounts {
    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// `(kind name, count)` for every kind, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("mismatch", self.mismatch),
            ("unsolicited", self.unsolicited),
            ("connect_failed", self.connect_failed),
            ("connect_timeout", self.connect_timeout),
            ("io", self.io),
            ("eof", self.eof),
            ("unanswered", self.unanswered),
        ]
        .into_iter()
    }
}

/// Latency percentiles in microseconds (from an HDR histogram recorded in
/// nanoseconds with 3 significant digits).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
}

impl Latency {
    /// Summarises a histogram of nanosecond values; `None` when empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            samples: h.len(),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        })
    }
}

/// A fixed-rate run's schedule, as it went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateStats {
    /// Lines per second asked for.
    pub target: f64,
    /// Lines of the window sent before it closed, per second of window.
    pub achieved: f64,
    /// Lines the schedule holds for the window.
    pub scheduled: u64,
    /// Of those, lines sent before the window closed.
    pub on_time: u64,
    /// Of those, lines never sent (still waiting when the drain ended).
    pub unsent: u64,
}

impl RateStats {
    /// Share of the window's lines sent before it closed.
    pub fn on_time_share(&self) -> f64 {
        self.on_time as f64 / self.scheduled.max(1) as f64
    }

    /// The record's `rate` object.
    pub(crate) fn record(&self) -> Value {
        json!({
            "target": num(self.target),
            "achieved": num(self.achieved),
            "scheduled": self.scheduled,
            "on_time": self.on_time,
            "unsent": self.unsent,
        })
    }

    /// Merges two threads' schedules.
    fn add(&self, o: &RateStats) -> RateStats {
        RateStats {
            target: self.target + o.target,
            achieved: self.achieved + o.achieved,
            scheduled: self.scheduled + o.scheduled,
            on_time: self.on_time + o.on_time,
            unsent: self.unsent + o.unsent,
        }
    }
}

/// One interval of a run's latency histogram, for `--hdr-log`.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// Start, from the start of the window.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// Latencies completed in it, in nanoseconds.
    pub histogram: Histogram<u64>,
}

/// A histogram of latencies in nanoseconds, 1 ns to 60 s with 3
/// significant digits: what every scenario records into.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// The window's latencies, and with `--hdr-log` the same second by second
/// ([`Interval`]s from the window's start).
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Every latency of the window.
    pub(crate) all: Histogram<u64>,
    /// The current second's, when intervals are kept.
    current: Option<Histogram<u64>>,
    window_start: Instant,
    current_start: Instant,
    intervals: Vec<Interval>,
}

impl Recorder {
    /// A recorder whose window starts now; `intervals` keeps the seconds.
    pub(crate) fn new(intervals: bool) -> Recorder {
        let now = Instant::now();
        Recorder {
            all: latency_histogram(),
            current: intervals.then(latency_histogram),
            window_start: now,
            current_start: now,
            intervals: Vec::new(),
        }
    }

    /// Starts the window at `at`, forgetting what was recorded before.
    pub(crate) fn begin(&mut self, at: Instant) {
        self.all.reset();
        if let Some(h) = &mut self.current {
            h.reset();
        }
        self.intervals.clear();
        self.window_start = at;
        self.current_start = at;
    }

    /// Records one latency, in nanoseconds.
    #[inline]
    pub(crate) fn record(&mut self, ns: u64) {
        self.all.saturating_record(ns);
        if let Some(h) = &mut self.current {
            h.saturating_record(ns);
        }
    }

    /// Closes the current second once it is over.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self.current.is_some() && now >= self.current_start + Duration::from_secs(1) {
            self.close(now);
        }
    }

    fn close(&mut self, now: Instant) {
        if let Some(h) = &mut self.current {
            self.intervals.push(Interval {
                start: self
                    .current_start
                    .saturating_duration_since(self.window_start),
                length: now.saturating_duration_since(self.current_start),
                histogram: h.clone(),
            });
            h.reset();
            self.current_start = now;
        }
    }

    /// The intervals, the last (if it holds anything) closed now.
    pub(crate) fn take_intervals(&mut self) -> Vec<Interval> {
        if self.current.as_ref().is_some_and(|h| !h.is_empty()) {
            self.close(Instant::now());
        }
        std::mem::take(&mut self.intervals)
    }

    /// The whole window's histogram, if it holds anything.
    pub(crate) fn histogram(&self) -> Option<Histogram<u64>> {
        (!self.all.is_empty()).then(|| self.all.clone())
    }
}

/// Results specific to the c10k scenario.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct C10kStats {
    /// Connections asked for.
    pub target: usize,
    /// Connections established.
    pub opened: u64,
    /// Connections whose one line was answered correctly (should equal `target`).
    pub served: u64,
    /// Time to establish all connections, seconds.
    pub connect_secs: f64,
    /// Time from sending the lines until the last reply, seconds.
    pub reply_secs: f64,
    /// Local source addresses used.
    pub source_ips: usize,
    /// Server VmRSS before connecting, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server VmRSS with all connections open and idle, KiB.
    pub rss_idle_kib: Option<u64>,
    /// Server VmRSS after every connection got its reply, KiB.
    pub rss_after_line_kib: Option<u64>,
    /// `(rss_idle - rss_before) / opened`, bytes.
    pub rss_per_idle_conn_bytes: Option<f64>,
    /// `(rss_after_line - rss_before) / opened`, bytes.
    pub rss_per_conn_after_line_bytes: Option<f64>,
}

/// The outcome of one [`super::run`].
///
/// Counting rules: the measurement window starts when the connections are
/// established (pipeline, pingpong, bigline) or at once (churn) and ends at
/// `duration`, after the warm-up if any. Only replies completed inside the
/// window count in `lines_answered` and the rates; replies collected during
/// the drain period after the window are verified just the same and counted
/// in `lines_answered_late`. In a closed loop only replies inside the window
/// enter the latency histogram; at a fixed rate every window line's reply
/// does. `lines_sent` counts every line queued on a connection in the
/// window (nothing new is queued while draining).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Scenario that ran.
    pub scenario: Scenario,
    /// Parameters used.
    pub params: Params,
    /// Lines queued for sending.
    pub lines_sent: u64,
    /// Correct replies received inside the measurement window (at a fixed
    /// rate: replies to the window's own lines, not the warm-up's).
    pub lines_answered: u64,
    /// Correct replies received during the drain period (at a fixed rate:
    /// to the window's lines).
    pub lines_answered_late: u64,
    /// Request bytes written inside the window (lines including LF).
    pub request_bytes: u64,
    /// Reply bytes received inside the window.
    pub reply_bytes: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// A description of the first error seen, if any.
    pub first_error: Option<String>,
    /// Length of the measurement window (c10k: the whole run).
    pub elapsed: Duration,
    /// `lines_answered / elapsed`.
    pub lines_per_sec: f64,
    /// `(request_bytes + reply_bytes) / elapsed`, in 10^6 bytes per second:
    /// traffic in both directions, payload only.
    pub mb_per_sec: f64,
    /// Churn: connect-send-reply-close cycles completed inside the window.
    pub conns_completed: u64,
    /// Churn: `conns_completed / elapsed`.
    pub conns_per_sec: Option<f64>,
    /// Pingpong (and bigline with depth 1): per-line round trip; churn: whole
    /// connect-to-reply time; at a fixed rate, from each line's due time to
    /// its reply (corrected for coordinated omission). `None` where not
    /// measured.
    pub latency: Option<Latency>,
    /// The latencies behind `latency`, in nanoseconds.
    pub histogram: Option<Histogram<u64>>,
    /// At a fixed rate: from each line's actual send to its reply, as a
    /// closed-loop tool would measure it (wrk2's "uncorrected"), in
    /// nanoseconds.
    pub uncorrected_histogram: Option<Histogram<u64>>,
    /// At a fixed rate: how the schedule went.
    pub rate: Option<RateStats>,
    /// With `Config::interval_log`: the window's latencies, second by
    /// second.
    pub intervals: Vec<Interval>,
    /// c10k figures.
    pub c10k: Option<C10kStats>,
    /// Connections established in total (including reconnects and churn).
    pub conns_opened: u64,
}

impl Report {
    /// True when no error of any kind was counted.
    pub fn is_clean(&self) -> bool {
        self.errors.total() == 0
    }

    /// One JSON object (no trailing newline), with every field of the report:
    /// [`Report::to_record`] printed.
    pub fn to_json(&self) -> String {
        self.to_record(&[]).to_string()
    }

    /// What a run should warn about: a rate it did not keep.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(r) = &self.rate {
            if r.on_time_share() < 0.99 {
                w.push(format!(
                    "the rate was not met: {} lines/s asked, {} achieved ({:.1}% of the window's lines sent on time, {} never sent); \
the server, the generator, or {} lines in flight per connection could not keep up \
(more --conns, a larger --depth or --threads may){}. Latencies still count from each line's due time.",
                    si(r.target),
                    si(r.achieved),
                    100.0 * r.on_time_share(),
                    r.unsent,
                    self.params.depth,
                    if self.errors.total() > 0 {
                        "; connections also failed (see the errors)"
                    } else {
                        ""
                    }
                ));
            }
        }
        w
    }

    /// The report as one record (a JSON object) with every figure: the
    /// latencies carry [`RECORDED_PERCENTILES`], `extra` percentiles, and
    /// the whole spectrum. Durations are seconds, latencies microseconds.
    pub fn to_record(&self, extra: &[f64]) -> Value {
        let p = &self.params;
        let mut errors = Map::new();
        errors.insert("total".into(), self.errors.total().into());
        for (k, n) in self.errors.iter() {
            errors.insert(k.into(), n.into());
        }
        let (throughput, unit) = match self.conns_per_sec {
            Some(c) => (c, "conns/s"),
            None => (self.lines_per_sec, "lines/s"),
        };
        let c10k = self.c10k.as_ref().map(|c| {
            json!({
                "target": c.target,
                "opened": c.opened,
                "served": c.served,
                "connect_secs": num(c.connect_secs),
                "reply_secs": num(c.reply_secs),
                "source_ips": c.source_ips,
                "rss_before_kib": c.rss_before_kib,
                "rss_idle_kib": c.rss_idle_kib,
                "rss_after_line_kib": c.rss_after_line_kib,
                "rss_per_idle_conn_bytes": c.rss_per_idle_conn_bytes.map(num),
                "rss_per_conn_after_line_bytes": c.rss_per_conn_after_line_bytes.map(num),
            })
        });
        json!({
            "label": p.label(self.scenario),
            "scenario": self.scenario.to_string(),
            "addr": p.addr.to_string(),
            "conns": p.conns,
            "depth": p.depth,
            "line_bytes": p.line_bytes,
            "duration_secs": num(p.duration.as_secs_f64()),
            "warmup_secs": num(p.warmup.as_secs_f64()),
            "threads": p.threads,
            "workers": p.workers,
            "server_pid": p.server_pid,
            "source_ips": p.source_ips,
            "proxy_v2": p.proxy_v2,
            "expect_prefix": p.expect_prefix,
            "rate": self.rate.as_ref().map(RateStats::record),
            "lines_sent": self.lines_sent,
            "lines_answered": self.lines_answered,
            "lines_answered_late": self.lines_answered_late,
            "request_bytes": self.request_bytes,
            "reply_bytes": self.reply_bytes,
            "elapsed_secs": num(self.elapsed.as_secs_f64()),
            "lines_per_sec": num(self.lines_per_sec),
            "mb_per_sec": num(self.mb_per_sec),
            "conns_opened": self.conns_opened,
            "conns_completed": self.conns_completed,
            "conns_per_sec": self.conns_per_sec.map(num),
            "throughput_per_sec": num(throughput),
            "throughput_unit": unit,
            "errors": errors,
            "first_error": self.first_error,
            "latency_us": self.histogram.as_ref().map(|h| latency_record(h, extra)),
            "latency_uncorrected_us":
                self.uncorrected_histogram.as_ref().map(|h| latency_record(h, extra)),
            "c10k": c10k,
        })
    }

    /// The human table, latencies shown at `percentiles` (and max).
    pub fn table<'a>(&'a self, percentiles: &'a [f64]) -> Table<'a> {
        Table {
            report: self,
            percentiles,
        }
    }

    /// One report of `parts`, the reports of threads that ran side by side:
    /// counts and rates add up, histograms merge, the window is the longest.
    pub fn merge(parts: Vec<Report>) -> Report {
        let mut it = parts.into_iter();
        let mut r = it.next().expect("at least one part");
        for o in it {
            r.params.conns += o.params.conns;
            r.params.workers += o.params.workers;
            r.params.threads += o.params.threads;
            r.params.rate = r.params.rate.zip(o.params.rate).map(|(a, b)| a + b);
            r.lines_sent += o.lines_sent;
            r.lines_answered += o.lines_answered;
            r.lines_answered_late += o.lines_answered_late;
            r.request_bytes += o.request_bytes;
            r.reply_bytes += o.reply_bytes;
            r.errors.add(&o.errors);
            r.first_error = r.first_error.or(o.first_error);
            r.elapsed = r.elapsed.max(o.elapsed);
            r.lines_per_sec += o.lines_per_sec;
            r.mb_per_sec += o.mb_per_sec;
            r.conns_completed += o.conns_completed;
            r.conns_per_sec = merge(r.conns_per_sec, o.conns_per_sec, |a, b| a + b);
            r.histogram = merge(r.histogram, o.histogram, add_histograms);
            r.uncorrected_histogram = merge(
                r.uncorrected_histogram,
                o.uncorrected_histogram,
                add_histograms,
            );
            r.rate = merge(r.rate, o.rate, |a, b| a.add(&b));
            for (k, i) in o.intervals.into_iter().enumerate() {
                match r.intervals.get_mut(k) {
                    Some(mine) => {
                        let _ = mine.histogram.add(&i.histogram);
                        mine.length = mine.length.max(i.length);
                    }
                    None => r.intervals.push(i),
                }
            }
            r.conns_opened += o.conns_opened;
        }
        r.latency = r.histogram.as_ref().and_then(Latency::from_histogram);
        r
    }
}

impl Params {
    /// The run's name in records and plots: `--label`, or the scenario and
    /// the server's address.
    pub fn label(&self, scenario: Scenario) -> String {
        if self.label.is_empty() {
            format!("{scenario} {}", self.addr)
        } else {
            self.label.clone()
        }
    }
}

impl ErrorCounts {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &ErrorCounts) {
        self.mismatch += o.mismatch;
        self.unsolicited += o.unsolicited;
        self.connect_failed += o.connect_failed;
        self.connect_timeout += o.connect_timeout;
        self.io += o.io;
        self.eof += o.eof;
        self.unanswered += o.unanswered;
    }
}

/// Two threads' figures as one: both combined by `f`, or whichever there
/// is.
fn merge<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

fn add_histograms(mut a: Histogram<u64>, b: Histogram<u64>) -> Histogram<u64> {
    let _ = a.add(&b);
    a
}

/// `v` rounded to 3 decimals for a record (null when not finite).
pub fn num(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1e3).round() / 1e3)
    } else {
        Value::Null
    }
}

/// The record key of percentile `p`: `p99_9` for 99.9.
pub fn percentile_key(p: f64) -> String {
    format!("p{p}").replace('.', "_")
}

/// A latency histogram (nanoseconds) as a record, in microseconds: count,
/// min, mean, stdev, max, [`RECORDED_PERCENTILES`] and `extra`, and the
/// spectrum (`[percentile, value]` pairs, the points of its `.hgrm`).
pub fn latency_record(h: &Histogram<u64>, extra: &[f64]) -> Value {
    let us = |ns: u64| num(ns as f64 / 1e3);
    let mut o = Map::new();
    o.insert("count".into(), h.len().into());
    o.insert("samples".into(), h.len().into());
    o.insert("min".into(), us(h.min()));
    o.insert("mean".into(), num(h.mean() / 1e3));
    o.insert("stdev".into(), num(h.stdev() / 1e3));
    o.insert("max".into(), us(h.max()));
    for &p in RECORDED_PERCENTILES.iter().chain(extra) {
        o.insert(percentile_key(p), us(h.value_at_percentile(p)));
    }
    let spectrum: Vec<Value> = hdr::spectrum(h)
        .into_iter()
        .map(|(p, v)| json!([num_raw(p, 1e9), num(v)]))
        .collect();
    o.insert("spectrum".into(), Value::Array(spectrum));
    Value::Object(o)
}

/// `v` rounded to `1/scale`.
fn num_raw(v: f64, scale: f64) -> Value {
    json!((v * scale).round() / scale)
}

/// The latency line of a table: the percentiles asked for, max, mean, count.
pub(crate) fn latency_line(h: &Histogram<u64>, percentiles: &[f64]) -> String {
    let mut line = String::new();
    for &p in percentiles {
        line.push_str(&format!(
            "p{p} {:.1}  ",
            h.value_at_percentile(p) as f64 / 1e3
        ));
    }
    line.push_str(&format!(
        "max {:.1}  (mean {:.1}, n={})",
        h.max() as f64 / 1e3,
        h.mean() / 1e3,
        h.len()
    ));
    line
}

fn opt_kib(v: Option<u64>) -> String {
    v.map(|v| format!("{v} KiB")).unwrap_or_else(|| "-".into())
}

fn opt_bytes(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} B")).unwrap_or_else(|| "-".into())
}

/// A report's human table, latencies at chosen percentiles
/// ([`Report::table`]).
#[derive(Debug)]
pub struct Table<'a> {
    report: &'a Report,
    percentiles: &'a [f64],
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table(&SHOWN_PERCENTILES).fmt(f)
    }
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.report;
        let p = &r.params;
        writeln!(f, "{:<12} {}  ->  {}", "scenario", r.scenario, p.addr)?;
        match r.scenario {
            Scenario::Churn => writeln!(
                f,
                "{:<12} workers {}  line {} B  duration {:.1} s",
                "params",
                p.workers,
                p.line_bytes,
                p.duration.as_secs_f64()
            )?,
            Scenario::C10k => writeln!(
                f,
                "{:<12} conns {}  line {} B  source ips {}",
                "params",
                p.conns,
                p.line_bytes,
                p.source_ips.max(1)
            )?,
            _ => writeln!(
                f,
                "{:<12} conns {}  depth {}  line {} B  duration {:.1} s",
                "params",
                p.conns,
                p.depth,
                p.line_bytes,
                p.duration.as_secs_f64()
            )?,
        }
        let mut load = match p.rate {
            Some(rate) => format!("open loop at {} lines/s", si(rate)),
            None => "closed loop".to_string(),
        };
        if !p.warmup.is_zero() {
            load.push_str(&format!(", {:.1} s warm-up", p.warmup.as_secs_f64()));
        }
        if p.threads > 1 {
            load.push_str(&format!(", {} threads", p.threads));
        }
        if p.proxy_v2 {
            load.push_str(", PROXY v2 header first");
        }
        if p.expect_prefix.as_bytes() != super::verify::REPLY_PREFIX {
            load.push_str(&format!(", replies prefixed {:?}", p.expect_prefix));
        }
        if r.scenario != Scenario::C10k {
            writeln!(f, "{:<12} {load}", "load")?;
        }
        writeln!(
            f,
            "{:<12} sent {}  answered {}  late {}  in {:.3} s",
            "lines",
            r.lines_sent,
            r.lines_answered,
            r.lines_answered_late,
            r.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<12} {} lines/s  {:.1} MB/s (requests+replies)",
            "throughput",
            si(r.lines_per_sec),
            r.mb_per_sec
        )?;
        if let Some(c) = r.conns_per_sec {
            writeln!(
                f,
                "{:<12} {} completed  {} conns/s",
                "churn",
                r.conns_completed,
                si(c)
            )?;
        }
        if let Some(rate) = &r.rate {
            writeln!(
                f,
                "{:<12} target {} lines/s  achieved {} ({:.1}% on time, {} never sent)",
                "rate",
                si(rate.target),
                si(rate.achieved),
                100.0 * rate.on_time_share(),
                rate.unsent
            )?;
        }
        if let Some(h) = &r.histogram {
            let name = if r.rate.is_some() {
                "latency us*"
            } else {
                "latency us"
            };
            writeln!(f, "{name:<12} {}", latency_line(h, self.percentiles))?;
        }
        if let Some(h) = &r.uncorrected_histogram {
            writeln!(
                f,
                "{:<12} {}",
                "uncorrected",
                latency_line(h, self.percentiles)
            )?;
            writeln!(
                f,
                "{:<12} * from each line's due time; uncorrected: from its actual send",
                ""
            )?;
        }
        if let Some(c) = &r.c10k {
            writeln!(
                f,
                "{:<12} target {}  opened {}  served {}  connect {:.2} s  reply {:.2} s",
                "c10k", c.target, c.opened, c.served, c.connect_secs, c.reply_secs
            )?;
            writeln!(
                f,
                "{:<12} before {}  idle {}  after line {}",
                "server rss",
                opt_kib(c.rss_before_kib),
                opt_kib(c.rss_idle_kib),
                opt_kib(c.rss_after_line_kib)
            )?;
            writeln!(
                f,
                "{:<12} idle {}  after line {}",
                "rss/conn",
                opt_bytes(c.rss_per_idle_conn_bytes),
                opt_bytes(c.rss_per_conn_after_line_bytes)
            )?;
        }
        write!(f, "{:<12} {}", "errors", r.errors.total())?;
        let kinds: Vec<String> = r
            .errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !kinds.is_empty() {
            write!(f, "  ({})", kinds.join(", "))?;
        }
        if let Some(e) = &r.first_error {
            write!(f, "\n{:<12} {}", "first error", e)?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values_us: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for &v in values_us {
            h.record(v * 1000).unwrap();
        }
        h
    }

    fn sample(scenario: Scenario) -> Report {
        let h = histogram(&[10, 20, 30, 40, 1_000_000]);
        Report {
            scenario,
            params: Params {
                addr: "127.0.0.1:4096".parse().unwrap(),
                conns: 50,
                depth: 64,
                line_bytes: 32,
                duration: Duration::from_secs(10),
                workers: 8,
                server_pid: Some(42),
                source_ips: 0,
                rate: None,
                warmup: Duration::ZERO,
                threads: 1,
                proxy_v2: false,
                expect_prefix: "You said: ".into(),
                label: String::new(),
            },
            lines_sent: 1000,
            lines_answered: 990,
            lines_answered_late: 10,
            request_bytes: 33_000,
            reply_bytes: 43_000,
            errors: ErrorCounts {
                mismatch: 1,
                ..Default::default()
            },
            first_error: Some("weird \"quote\" \\ and\nnewline \u{1}".into()),
            elapsed: Duration::from_millis(10_010),
            lines_per_sec: 98.9,
            mb_per_sec: f64::NAN,
            conns_completed: 0,
            conns_per_sec: None,
            latency: Latency::from_histogram(&h),
            histogram: Some(h),
            uncorrected_histogram: None,
            rate: None,
            intervals: Vec::new(),
            c10k: Some(C10kStats {
                target: 10,
                opened: 10,
                served: 10,
                rss_before_kib: Some(1000),
                rss_idle_kib: None,
                ..Default::default()
            }),
            conns_opened: 50,
        }
    }

    #[test]
    fn json_is_one_valid_object_with_expected_members() {
        for s in Scenario::ALL {
            let r = sample(s);
            let text = r.to_json();
            assert!(!text.contains('\n'));
            let j: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(j["scenario"], json!(s.to_string()));
            assert_eq!(j["label"], json!(format!("{s} 127.0.0.1:4096")));
            assert_eq!(j["lines_answered"], json!(990));
            assert_eq!(j["mb_per_sec"], Value::Null);
            assert_eq!(j["conns_per_sec"], Value::Null);
            assert_eq!(j["errors"]["total"], json!(1));
            assert_eq!(j["errors"]["mismatch"], json!(1));
            assert_eq!(
                j["latency_us"]["p50"],
                json!(30.015),
                "the bucket's highest equivalent value"
            );
            assert_eq!(j["latency_us"]["count"], json!(5));
            assert_eq!(j["c10k"]["rss_idle_kib"], Value::Null);
            assert_eq!(j["c10k"]["rss_before_kib"], json!(1000));
            assert_eq!(j["first_error"], json!(r.first_error.clone().unwrap()));
        }
        let mut r = sample(Scenario::Pipeline);
        r.latency = None;
        r.histogram = None;
        r.c10k = None;
        r.first_error = None;
        let j: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["latency_us"], Value::Null);
        assert_eq!(j["c10k"], Value::Null);
        assert_eq!(j["first_error"], Value::Null);
    }

    #[test]
    fn records_carry_every_percentile_and_the_spectrum() {
        let r = sample(Scenario::PingPong);
        let j = r.to_record(&[99.5]);
        let l = &j["latency_us"];
        for p in RECORDED_PERCENTILES.iter().chain(&[99.5]) {
            let key = percentile_key(*p);
            assert!(l[&key].is_number(), "{key} missing in {l}");
        }
        assert_eq!(percentile_key(99.9), "p99_9");
        assert_eq!(percentile_key(50.0), "p50");
        // The outlier is the maximum, within the histogram's 3 digits.
        let max = l["max"].as_f64().unwrap();
        assert!((max - 1e6).abs() <= 1e3, "{max}");
        let spectrum = l["spectrum"].as_array().unwrap();
        assert!(spectrum.len() >= 5, "{spectrum:?}");
        let last = spectrum.last().unwrap();
        assert_eq!(last[0], json!(100.0));
    }

    #[test]
    fn the_table_shows_the_percentiles_asked_for() {
        let r = sample(Scenario::PingPong);
        let t = r.table(&[50.0, 99.99]).to_string();
        assert!(t.contains("p50 30.0"), "{t}");
        assert!(t.contains("p99.99 "), "{t}");
        assert!(!t.contains("p99.9 "), "{t}");
        assert!(t.contains("mismatch 1"));
        let default = r.to_string();
        assert!(
            default.contains("p90 ") && default.contains("p99.9 "),
            "{default}"
        );
    }

    #[test]
    fn a_missed_rate_warns_and_merging_adds_up() {
        let mut a = sample(Scenario::PingPong);
        a.rate = Some(RateStats {
            target: 1000.0,
            achieved: 990.0,
            scheduled: 1000,
            on_time: 990,
            unsent: 0,
        });
        assert_eq!(a.warnings().len(), 0);
        let mut b = a.clone();
        b.rate.as_mut().unwrap().on_time = 900;
        assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
        let m = Report::merge(vec![a.clone(), b]);
        assert_eq!(m.lines_answered, 2 * a.lines_answered);
        assert_eq!(m.params.conns, 100);
        assert_eq!(m.params.threads, 2);
        assert_eq!(m.histogram.as_ref().unwrap().len(), 10);
        assert_eq!(m.latency.unwrap().samples, 10);
        assert_eq!(m.rate.unwrap().on_time, 1890);
        assert_eq!(m.errors.mismatch, 2);
    }
}
