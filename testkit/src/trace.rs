//! A trace sink a test can read back.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

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
    /// `(kind, id, rest)` of every event written so far; panics on a line
    /// without a numeric timestamp.
    pub fn events(&self) -> Vec<(String, String, String)> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).expect("trace is UTF-8");
        text.lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let t = f.next().unwrap_or_default();
                assert!(t.parse::<u64>().is_ok(), "timestamp in {l:?}");
                let kind = f.next().unwrap_or_default().to_string();
                let id = f.next().unwrap_or_default().to_string();
                let rest = f.next().unwrap_or_default().to_string();
                (kind, id, rest)
            })
            .collect()
    }

    /// How many events of `kind` name `id`.
    pub fn count(events: &[(String, String, String)], kind: &str, id: &str) -> usize {
        events.iter().filter(|e| e.0 == kind && e.1 == id).count()
    }
}
