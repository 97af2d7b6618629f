//! A trace sink a test can read back.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use credit_actors::reactor::trace::{parse_line, Line};

/// A cloneable in-memory `Write` for the reactor's event trace, and a parser
/// for what was written.
#[derive(Clone, Debug, Default)]
pub struct TraceSink(Arc<Mutex<Vec<u8>>>);

impl Write for TraceSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TraceSink {
    /// `(kind, id, rest)` of every event written so far, read with the
    /// runtime's own parser; panics on a line it refuses, and unless the
    /// trace starts with its header.
    pub fn events(&self) -> Vec<(String, String, String)> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).expect("trace is UTF-8");
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            match parse_line(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)) {
                Line::Header(_) => assert_eq!(i, 0, "the header is the first line"),
                Line::Event(e) => {
                    assert!(i > 0, "the trace starts with its header");
                    out.push((e.kind.to_string(), e.id.to_string(), e.rest.to_string()));
                }
                Line::Blank => {}
            }
        }
        out
    }

    /// Everything written so far, as written.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    /// How many events of `kind` name `id`.
    pub fn count(events: &[(String, String, String)], kind: &str, id: &str) -> usize {
        events.iter().filter(|e| e.0 == kind && e.1 == id).count()
    }
}
