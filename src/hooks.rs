//! What the runtime asks of a simulation, compiled to nothing without the
//! `sim` feature: the clock for the few places that read it outside a
//! turn, and the test-only switches that plant known bugs.

use std::time::Instant;

/// The time now: the monotonic clock, or, on a thread running a simulated
/// reactor, its virtual clock. For the places that read the clock outside
/// the turn's `Core::now` (the trace's stamps, the memory budget's
/// pressure, a supervisor's restart window), so that a simulated run
/// never sees the machine's time.
#[inline(always)]
pub(crate) fn clock_now() -> Instant {
    #[cfg(feature = "sim")]
    if let Some(t) = crate::sim::net::virtual_now() {
        return t;
    }
    Instant::now()
}

/// A known bug a simulation can plant, to show that its explorer finds
/// it. Off unless planted with [`crate::sim::plant`], and compiled out
/// without the `sim` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
pub enum Bug {
    /// A socket delivers one unit past its credit when credit runs out
    /// with another unit buffered whole.
    CreditOverrun,
    /// A socket loses a FIN that arrives in the same event as data: it
    /// takes the short read for a drained socket and never reads the EOF.
    LostFin,
    /// A monitor notice is queued twice when the watcher is already
    /// waiting in the run queue.
    DoubleMonitor,
}

impl Bug {
    /// Every planted bug.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub const ALL: [Bug; 3] = [Bug::CreditOverrun, Bug::LostFin, Bug::DoubleMonitor];

    /// The bug's name on command lines (`credit`, `fin`, `monitor`).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub fn name(self) -> &'static str {
        match self {
            Bug::CreditOverrun => "credit",
            Bug::LostFin => "fin",
            Bug::DoubleMonitor => "monitor",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::str::FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown bug {s:?} (expected credit, fin or monitor)"))
    }
}

#[cfg(feature = "sim")]
thread_local! {
    static PLANTED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// True if `bug` is planted on this thread. Always false without the
/// `sim` feature, so the code behind it compiles out.
#[inline(always)]
pub(crate) fn planted(bug: Bug) -> bool {
    #[cfg(feature = "sim")]
    {
        PLANTED.with(|p| p.get() & bug.bit() != 0)
    }
    #[cfg(not(feature = "sim"))]
    {
        let _ = bug.bit();
        false
    }
}

/// Plants (or, with `on` false, removes) `bug` on this thread.
#[cfg(feature = "sim")]
pub(crate) fn set_planted(bug: Bug, on: bool) {
    PLANTED.with(|p| {
        let bits = if on {
            p.get() | bug.bit()
        } else {
            p.get() & !bug.bit()
        };
        p.set(bits)
    });
}
