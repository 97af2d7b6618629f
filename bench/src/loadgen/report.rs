//! Run results: the [`Report`] type, its human table ([`std::fmt::Display`]) and
//! its JSON form ([`Report::to_json`], written by hand).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::Scenario;

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
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Option<Latency> {
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
/// `duration`. Only replies completed inside the window count in
/// `lines_answered`, the rates and the latency histogram; replies collected
/// during the drain period after the window are verified just the same and
/// counted in `lines_answered_late`. `lines_sent` counts every line queued on
/// a connection (inside the window; nothing new is queued while draining).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Scenario that ran.
    pub scenario: Scenario,
    /// Parameters used.
    pub params: Params,
    /// Lines queued for sending.
    pub lines_sent: u64,
    /// Correct replies received inside the measurement window.
    pub lines_answered: u64,
    /// Correct replies received during the drain period.
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
    /// connect-to-reply time. `None` where not measured.
    pub latency: Option<Latency>,
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

    /// One JSON object (no trailing newline), with every field of the report.
    /// Absent values are `null`; durations are seconds; latencies microseconds.
    pub fn to_json(&self) -> String {
        let mut j = JsonObj::new();
        j.str("scenario", &self.scenario.to_string());
        j.str("addr", &self.params.addr.to_string());
        j.uint("conns", self.params.conns as u64);
        j.uint("depth", self.params.depth as u64);
        j.uint("line_bytes", self.params.line_bytes as u64);
        j.num("duration_secs", self.params.duration.as_secs_f64());
        j.uint("workers", self.params.workers as u64);
        j.opt_uint("server_pid", self.params.server_pid.map(u64::from));
        j.uint("source_ips", self.params.source_ips as u64);
        j.uint("lines_sent", self.lines_sent);
        j.uint("lines_answered", self.lines_answered);
        j.uint("lines_answered_late", self.lines_answered_late);
        j.uint("request_bytes", self.request_bytes);
        j.uint("reply_bytes", self.reply_bytes);
        j.num("elapsed_secs", self.elapsed.as_secs_f64());
        j.num("lines_per_sec", self.lines_per_sec);
        j.num("mb_per_sec", self.mb_per_sec);
        j.uint("conns_opened", self.conns_opened);
        j.uint("conns_completed", self.conns_completed);
        j.opt_num("conns_per_sec", self.conns_per_sec);
        let mut e = JsonObj::new();
        e.uint("total", self.errors.total());
        for (k, n) in self.errors.iter() {
            e.uint(k, n);
        }
        j.raw("errors", &e.finish());
        match &self.first_error {
            Some(s) => j.str("first_error", s),
            None => j.raw("first_error", "null"),
        }
        match &self.latency {
            Some(l) => {
                let mut o = JsonObj::new();
                o.uint("samples", l.samples);
                o.num("mean", l.mean_us);
                o.num("p50", l.p50_us);
                o.num("p99", l.p99_us);
                o.num("p99_9", l.p999_us);
                o.num("max", l.max_us);
                j.raw("latency_us", &o.finish());
            }
            None => j.raw("latency_us", "null"),
        }
        match &self.c10k {
            Some(c) => {
                let mut o = JsonObj::new();
                o.uint("target", c.target as u64);
                o.uint("opened", c.opened);
                o.uint("served", c.served);
                o.num("connect_secs", c.connect_secs);
                o.num("reply_secs", c.reply_secs);
                o.uint("source_ips", c.source_ips as u64);
                o.opt_uint("rss_before_kib", c.rss_before_kib);
                o.opt_uint("rss_idle_kib", c.rss_idle_kib);
                o.opt_uint("rss_after_line_kib", c.rss_after_line_kib);
                o.opt_num("rss_per_idle_conn_bytes", c.rss_per_idle_conn_bytes);
                o.opt_num(
                    "rss_per_conn_after_line_bytes",
                    c.rss_per_conn_after_line_bytes,
                );
                j.raw("c10k", &o.finish());
            }
            None => j.raw("c10k", "null"),
        }
        j.finish()
    }
}

/// Minimal hand-written JSON object builder.
struct JsonObj {
    out: String,
    first: bool,
}

impl JsonObj {
    fn new() -> JsonObj {
        JsonObj {
            out: String::from("{"),
            first: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_string(&mut self.out, k);
        self.out.push(':');
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_string(&mut self.out, v);
    }

    fn uint(&mut self, k: &str, v: u64) {
        self.key(k);
        self.out.push_str(&v.to_string());
    }

    fn opt_uint(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.uint(k, v),
            None => self.raw(k, "null"),
        }
    }

    fn num(&mut self, k: &str, v: f64) {
        self.key(k);
        if v.is_finite() {
            let s = format!("{v:.3}");
            self.out.push_str(&s);
        } else {
            self.out.push_str("null");
        }
    }

    fn opt_num(&mut self, k: &str, v: Option<f64>) {
        match v {
            Some(v) => self.num(k, v),
            None => self.raw(k, "null"),
        }
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Appends `s` as a JSON string literal (quoted, escaped).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

fn opt_kib(v: Option<u64>) -> String {
    v.map(|v| format!("{v} KiB")).unwrap_or_else(|| "-".into())
}

fn opt_bytes(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} B")).unwrap_or_else(|| "-".into())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(f, "{:<12} {}  ->  {}", "scenario", self.scenario, p.addr)?;
        match self.scenario {
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
        writeln!(
            f,
            "{:<12} sent {}  answered {}  late {}  in {:.3} s",
            "lines",
            self.lines_sent,
            self.lines_answered,
            self.lines_answered_late,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<12} {} lines/s  {:.1} MB/s (requests+replies)",
            "throughput",
            si(self.lines_per_sec),
            self.mb_per_sec
        )?;
        if let Some(c) = self.conns_per_sec {
            writeln!(
                f,
                "{:<12} {} completed  {} conns/s",
                "churn",
                self.conns_completed,
                si(c)
            )?;
        }
        if let Some(l) = &self.latency {
            writeln!(
                f,
                "{:<12} p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1}, n={})",
                "latency us", l.p50_us, l.p99_us, l.p999_us, l.max_us, l.mean_us, l.samples
            )?;
        }
        if let Some(c) = &self.c10k {
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
        write!(f, "{:<12} {}", "errors", self.errors.total())?;
        let kinds: Vec<String> = self
            .errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !kinds.is_empty() {
            write!(f, "  ({})", kinds.join(", "))?;
        }
        if let Some(e) = &self.first_error {
            write!(f, "\n{:<12} {}", "first error", e)?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny strict JSON parser, enough to check that the output is one
    /// well-formed object and to look up its members.
    #[derive(Debug, PartialEq)]
    enum J {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl<'a> P<'a> {
        fn ws(&mut self) {
            while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.i))
            }
        }
        fn lit(&mut self, w: &str, v: J) -> Result<J, String> {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.i))
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                let c = *self.s.get(self.i).ok_or("eof in string")?;
                self.i += 1;
                match c {
                    b'"' => return Ok(out),
                    b'\\' => {
                        let e = *self.s.get(self.i).ok_or("eof in escape")?;
                        self.i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e as char),
                            b'n' | b'r' | b't' | b'b' | b'f' => out.push(' '),
                            b'u' => {
                                let h = std::str::from_utf8(&self.s[self.i..self.i + 4])
                                    .map_err(|e| e.to_string())?;
                                u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                                self.i += 4;
                                out.push('?');
                            }
                            _ => return Err("bad escape".into()),
                        }
                    }
                    c if c < 0x20 => return Err("control char in string".into()),
                    c => out.push(c as char),
                }
            }
        }
        fn value(&mut self) -> Result<J, String> {
            self.ws();
            match self.s.get(self.i).copied().ok_or("eof")? {
                b'{' => {
                    self.i += 1;
                    let mut m = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(J::Obj(m));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        let v = self.value()?;
                        if m.iter().any(|(kk, _)| *kk == k) {
                            return Err(format!("duplicate key {k}"));
                        }
                        m.push((k, v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(J::Obj(m));
                            }
                            _ => return Err(format!("bad object at {}", self.i)),
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut a = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(J::Arr(a));
                    }
                    loop {
                        a.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(J::Arr(a));
                            }
                            _ => return Err("bad array".into()),
                        }
                    }
                }
                b'"' => Ok(J::Str(self.string()?)),
                b'n' => self.lit("null", J::Null),
                b't' => self.lit("true", J::Bool(true)),
                b'f' => self.lit("false", J::Bool(false)),
                _ => {
                    let st = self.i;
                    while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let t = std::str::from_utf8(&self.s[st..self.i]).unwrap();
                    if t.starts_with('+') || t.starts_with('.') || t.ends_with('.') {
                        return Err(format!("bad number {t}"));
                    }
                    t.parse::<f64>()
                        .map(J::Num)
                        .map_err(|_| format!("bad number {t:?} at {st}"))
                }
            }
        }
    }

    fn parse(s: &str) -> Result<J, String> {
        let mut p = P {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != s.len() {
            return Err("trailing data".into());
        }
        Ok(v)
    }

    fn get<'a>(j: &'a J, k: &str) -> &'a J {
        match j {
            J::Obj(m) => &m.iter().find(|(kk, _)| kk == k).expect(k).1,
            _ => panic!("not an object"),
        }
    }

    fn sample(scenario: Scenario) -> Report {
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
            latency: Some(Latency {
                samples: 5,
                mean_us: 20.0,
                p50_us: 19.5,
                p99_us: 40.0,
                p999_us: 41.0,
                max_us: 1e6,
            }),
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
            let j = parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(get(&j, "scenario"), &J::Str(s.to_string()));
            assert_eq!(get(&j, "lines_answered"), &J::Num(990.0));
            assert_eq!(get(&j, "mb_per_sec"), &J::Null);
            assert_eq!(get(&j, "conns_per_sec"), &J::Null);
            assert_eq!(get(get(&j, "errors"), "total"), &J::Num(1.0));
            assert_eq!(get(get(&j, "errors"), "mismatch"), &J::Num(1.0));
            assert_eq!(get(get(&j, "latency_us"), "p99"), &J::Num(40.0));
            assert_eq!(get(get(&j, "c10k"), "rss_idle_kib"), &J::Null);
            assert_eq!(get(get(&j, "c10k"), "rss_before_kib"), &J::Num(1000.0));
            assert!(matches!(get(&j, "first_error"), J::Str(_)));
        }
        let mut r = sample(Scenario::Pipeline);
        r.latency = None;
        r.c10k = None;
        r.first_error = None;
        let j = parse(&r.to_json()).unwrap();
        assert_eq!(get(&j, "latency_us"), &J::Null);
        assert_eq!(get(&j, "c10k"), &J::Null);
        assert_eq!(get(&j, "first_error"), &J::Null);
    }

    #[test]
    fn parser_rejects_garbage() {
        assert!(parse("{\"a\":1,}").is_err());
        assert!(parse("{\"a\":1} x").is_err());
        assert!(parse("{\"a\":NaN}").is_err());
    }

    #[test]
    fn display_mentions_key_figures() {
        let t = sample(Scenario::PingPong).to_string();
        assert!(t.contains("pingpong"));
        assert!(t.contains("p99 40.0"));
        assert!(t.contains("mismatch 1"));
    }
}
