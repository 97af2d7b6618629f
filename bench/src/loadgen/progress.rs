//! Live progress: generator threads count into a [`Meter`]; the calling
//! thread draws one bar from all of them with indicatif, on a terminal only.
//!
//! A meter is a handful of relaxed atomics a generator stores into once per
//! turn of its loop, so watching costs the generator next to nothing.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a generator is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    /// Opening connections or joining users.
    Setup = 0,
    /// Load runs but is not counted.
    Warmup = 1,
    /// The measurement window.
    Running = 2,
    /// Collecting the last replies.
    Draining = 3,
    /// Finished.
    Done = 4,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            0 => Stage::Setup,
            1 => Stage::Warmup,
            2 => Stage::Running,
            3 => Stage::Draining,
            _ => Stage::Done,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::Warmup => "warm-up",
            Stage::Running => "running",
            Stage::Draining => "draining",
            Stage::Done => "done",
        }
    }
}

/// One generator's live counters.
#[derive(Debug, Default)]
pub struct Meter {
    stage: AtomicU8,
    /// Units done since the start (replies, deliveries, cycles), never reset.
    done: AtomicU64,
    errors: AtomicU64,
    conns: AtomicU64,
}

impl Meter {
    /// A meter at [`Stage::Setup`], all counts zero.
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// Stores the generator's current figures.
    #[inline]
    pub fn set(&self, stage: Stage, done: u64, errors: u64, conns: u64) {
        self.stage.store(stage as u8, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
        self.errors.store(errors, Ordering::Relaxed);
        self.conns.store(conns, Ordering::Relaxed);
    }

    /// Marks the generator finished.
    pub fn finish(&self) {
        self.stage.store(Stage::Done as u8, Ordering::Relaxed);
    }

    fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Relaxed))
    }
}

/// Runs each job on a thread of its own while, if `show`, the calling
/// thread draws a bar for `meters` until they are done; returns the jobs'
/// results in order. A job that panics panics the caller.
pub fn run_watched<T: Send, F: FnOnce() -> T + Send>(
    jobs: Vec<F>,
    show: bool,
    meters: &[Arc<Meter>],
    unit: &str,
    planned: Duration,
) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(job)).collect();
        if show {
            watch(meters, unit, planned, || {
                handles.iter().all(|h| h.is_finished())
            });
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a generator thread panicked"))
            .collect()
    })
}

/// Draws a bar for `meters` until every one is [`Stage::Done`] or `until`
/// says so, then clears it. `unit` names what `done` counts ("lines",
/// "deliveries"); `planned` is the warm-up plus the window. Draws nothing
/// when stderr is not a terminal.
fn watch(meters: &[Arc<Meter>], unit: &str, planned: Duration, until: impl Fn() -> bool) {
    let bar = ProgressBar::with_draw_target(
        Some(planned.as_millis().max(1) as u64),
        ProgressDrawTarget::stderr(),
    );
    if bar.is_hidden() {
        while !until() && meters.iter().any(|m| m.stage() != Stage::Done) {
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>8} [{bar:30}] {elapsed:>4} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut last = (Instant::now(), 0u64);
    let mut started: Option<Instant> = None;
    let mut rate = 0.0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let stage = meters
            .iter()
            .map(|m| m.stage())
            .min()
            .unwrap_or(Stage::Done);
        if stage == Stage::Done || until() {
            break;
        }
        let done: u64 = meters.iter().map(|m| m.done.load(Ordering::Relaxed)).sum();
        let errors: u64 = meters
            .iter()
            .map(|m| m.errors.load(Ordering::Relaxed))
            .sum();
        let conns: u64 = meters.iter().map(|m| m.conns.load(Ordering::Relaxed)).sum();
        let now = Instant::now();
        if now - last.0 >= Duration::from_millis(500) {
            rate = done.saturating_sub(last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, done);
        }
        if stage >= Stage::Warmup && started.is_none() {
            started = Some(now);
        }
        let pos = started.map_or(0, |s| (now - s).as_millis() as u64);
        bar.set_position(pos.min(planned.as_millis() as u64));
        bar.set_prefix(stage.name());
        bar.set_message(format!(
            "{} {unit}/s  conns {conns}  errors {errors}",
            si(rate)
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}

/// `v` with an SI suffix: 1234567 as `1.23M`.
pub fn si(v: f64) -> String {
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
