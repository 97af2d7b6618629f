//! The event trace, off by default and turned on at run time
//! (`Core::set_trace`, `echo-server --trace FILE`). While it is off, each
//! trace point is one test of a flag that stays false: one predictable
//! branch.
//!
//! One event per line, `<ns since start> <kind> <fields...>`. The reactor and
//! the actor layer write the scheduling kinds (`S` spawn, `X` exit, `L` link
//! notice, `M` monitor notice, `Q` enqueue, `B`/`E` run begin and end, `T`
//! timer); layers above add their own through `Core::trace` (socket actors
//! write `R`, `U`, `O`, `W`, `C`). The whole format is written down in
//! `tools/TRACE_FORMAT.md`.

use std::fmt;
use std::io::{BufWriter, Write};
use std::time::Instant;

/// Where trace events go.
pub(crate) struct Tracer {
    out: BufWriter<Box<dyn Write>>,
    epoch: Instant,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tracer")
    }
}

impl Tracer {
    pub(crate) fn new(out: Box<dyn Write>) -> Tracer {
        Tracer {
            out: BufWriter::with_capacity(1 << 16, out),
            epoch: Instant::now(),
        }
    }

    /// Writes one event, stamped with the time now.
    #[cold]
    #[inline(never)]
    pub(crate) fn event(&mut self, args: fmt::Arguments<'_>) {
        let t = self.epoch.elapsed().as_nanos() as u64;
        let _ = writeln!(self.out, "{t} {args}");
    }

    pub(crate) fn flush(&mut self) {
        let _ = self.out.flush();
    }
}
