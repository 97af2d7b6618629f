//! An optional event trace, off by default. When off, each trace point is
//! one branch on an `Option` that is `None`.
//!
//! Format: one event per line, `<ns since start> <kind> <fields...>`:
//!
//! | kind | fields | event |
//! |---|---|---|
//! | `S` | id type | spawn |
//! | `X` | id reason | exit |
//! | `L` | from to | link notice queued to `to` |
//! | `M` | peer watcher | monitor notice queued to `watcher` |
//! | `Q` | id | enqueued (made runnable) |
//! | `B` | id | run begins |
//! | `E` | id messages | run ends, after handling `messages` envelopes |
//! | `T` | | timer fired |
//! | `R` | conn bytes | socket read (0: EOF) |
//! | `U` | conn | unit delivered to the controller |
//! | `O` | conn | output queued (one send) |
//! | `W` | conn bytes | socket write progress |
//! | `C` | conn credit | credit after a credit operation |

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
