//! The event trace, off by default and turned on at run time
//! (`Core::set_trace`, `echo-server --trace FILE`). While it is off, each
//! trace point is one test of a flag that stays false: one predictable
//! branch.
//!
//! A trace starts with a header line, `# credit-actors trace <version>
//! reactor=<index> budget=<messages per run>`, then holds one event per
//! line, `<ns since start> <kind> <fields...>`. The reactor and the actor
//! layer write the scheduling kinds (`S` spawn, `X` exit, `L` link notice,
//! `M` monitor notice, `Q` enqueue, `B`/`E` run begin and end, `T` timer);
//! layers above add their own through `Core::trace` (socket actors write
//! `R`, `U`, `O`, `W`, `C`, `P`). The whole format is written down in
//! `tools/TRACE_FORMAT.md`; [`parse_line`] reads it, for every reader.

use std::fmt;
use std::io::{BufWriter, Write};
use std::time::Instant;

/// The version of the trace format this runtime writes (and
/// [`parse_line`] reads): 2 added the header line.
pub const TRACE_VERSION: u32 = 2;

/// Where trace events go.
pub(crate) struct Tracer {
    out: BufWriter<Box<dyn Write>>,
    epoch: Instant,
    /// On a simulated reactor's virtual clock (which stands still within
    /// a turn): the last stamp written, so that each event is stamped at
    /// least a nanosecond after the one before and a run has a length.
    #[cfg(feature = "sim")]
    last: Option<u64>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    /// A tracer writing to `out`, which starts with the header.
    pub(crate) fn new(out: Box<dyn Write>, header: Header) -> Tracer {
        let mut out = BufWriter::with_capacity(1 << 16, out);
        let _ = writeln!(out, "{header}");
        Tracer {
            out,
            epoch: crate::hooks::clock_now(),
            #[cfg(feature = "sim")]
            last: crate::sim::net::virtual_now().map(|_| 0),
        }
    }

    /// Writes one event, stamped with the time now.
    #[cold]
    #[inline(never)]
    pub(crate) fn event(&mut self, args: fmt::Arguments<'_>) {
        let t = crate::hooks::clock_now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64;
        #[cfg(feature = "sim")]
        let t = match self.last {
            Some(last) => {
                let t = t.max(last + 1);
                self.last = Some(t);
                t
            }
            None => t,
        };
        let _ = writeln!(self.out, "{t} {args}");
    }

    pub(crate) fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// A trace's first line: which format, and what it was written on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The format's version ([`TRACE_VERSION`] when written by this
    /// runtime).
    pub version: u32,
    /// The index of the reactor that wrote the trace.
    pub reactor: usize,
    /// Messages an actor may handle per run (`Config::budget`).
    pub budget: usize,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "# credit-actors trace {} reactor={} budget={}",
            self.version, self.reactor, self.budget
        )
    }
}

/// One event of a trace, borrowed from its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Nanoseconds since the trace was turned on.
    pub ns: u64,
    /// The kind letter (`B`, `E`, `R`, ...).
    pub kind: char,
    /// The first field: an actor id as printed (`<3.0>`), or empty.
    pub id: &'a str,
    /// The fields after the id, as written (possibly empty).
    pub rest: &'a str,
}

impl Event<'_> {
    /// The field after the id as a number (`E`'s messages, `R`'s bytes,
    /// `C`'s credit ...), if it is one.
    pub fn value(&self) -> Option<u64> {
        self.rest.split(' ').next()?.parse().ok()
    }
}

/// One line of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The header.
    Header(Header),
    /// An event.
    Event(Event<'a>),
    /// An empty line.
    Blank,
}

/// Why a line is not part of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Reads one line of a trace: the header, an event or a blank line. A
/// header of another version is an error, as is a line without a numeric
/// time and a one-letter kind.
pub fn parse_line(line: &str) -> Result<Line<'_>, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(h) = line.strip_prefix("# credit-actors trace ") {
        return parse_header(h).map(Line::Header);
    }
    let mut f = line.splitn(4, ' ');
    let ns = f
        .next()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| ParseError(format!("no time at the start of {line:?}")))?;
    let mut kind = f.next().unwrap_or("").chars();
    let (Some(k), None) = (kind.next(), kind.next()) else {
        return Err(ParseError(format!("no one-letter kind in {line:?}")));
    };
    Ok(Line::Event(Event {
        ns,
        kind: k,
        id: f.next().unwrap_or(""),
        rest: f.next().unwrap_or(""),
    }))
}

fn parse_header(h: &str) -> Result<Header, ParseError> {
    let mut f = h.split(' ');
    let version: u32 = f
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ParseError(format!("no version in the header {h:?}")))?;
    if version != TRACE_VERSION {
        return Err(ParseError(format!(
            "a trace of version {version}; this reader knows version {TRACE_VERSION}"
        )));
    }
    let mut header = Header {
        version,
        reactor: 0,
        budget: 0,
    };
    let number = |k: &str, v: &str| {
        v.parse()
            .map_err(|_| ParseError(format!("{k}={v:?} in the header is not a number")))
    };
    for kv in f {
        match kv.split_once('=') {
            Some(("reactor", v)) => header.reactor = number("reactor", v)?,
            Some(("budget", v)) => header.budget = number("budget", v)?,
            // Later fields are for later readers.
            _ => {}
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_as_written() {
        let h = Header {
            version: TRACE_VERSION,
            reactor: 3,
            budget: 64,
        };
        assert_eq!(parse_line(&h.to_string()), Ok(Line::Header(h)));
        let e = parse_line("120 E <3.0> 7").unwrap();
        let Line::Event(e) = e else { panic!("{e:?}") };
        assert_eq!((e.ns, e.kind, e.id, e.rest), (120, 'E', "<3.0>", "7"));
        assert_eq!(e.value(), Some(7));
        let Line::Event(x) = parse_line("5 X <1.0> normal exit").unwrap() else {
            panic!()
        };
        assert_eq!((x.id, x.rest, x.value()), ("<1.0>", "normal exit", None));
        let Line::Event(t) = parse_line("9 T").unwrap() else {
            panic!()
        };
        assert_eq!((t.kind, t.id, t.rest), ('T', "", ""));
        assert_eq!(parse_line(""), Ok(Line::Blank));
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(parse_line("x B <1.0>").is_err());
        assert!(parse_line("12 BE <1.0>").is_err());
        assert!(parse_line("12").is_err());
        let err = parse_line("# credit-actors trace 1 reactor=0").unwrap_err();
        assert!(err.0.contains("version 1"), "{err}");
        let err = parse_line("# credit-actors trace 2 reactor=x").unwrap_err();
        assert!(err.0.contains("reactor=\"x\""), "{err}");
    }
}
