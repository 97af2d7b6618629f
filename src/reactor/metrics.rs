//! Scheduler metrics: plain counters and fixed-bucket histograms, updated on
//! the reactor thread only (no atomics), compiled out without the `metrics`
//! feature.
//!
//! Time: the clock (`Instant::now`, a vDSO call of about 20 ns) is read once
//! per turn, after `poll`, by the reactor. Run durations come from the CPU's
//! cycle counter instead (`rdtsc` on x86_64, one instruction of about 7 ns),
//! read once per run boundary: a run's start is the previous reading, so a
//! handler's duration includes the exit processing of the run before it.
//! Cycles become nanoseconds with a fixed-point factor calibrated against the
//! clock when the reactor starts (a 200 µs spin). Elsewhere than x86_64 the
//! counter is the clock itself. The scheduled-to-run delay is measured from
//! the last reading before the enqueue (the start of the sender's run, or
//! the end of poll), so it may overstate the true delay by up to one run's
//! duration. Histogram resolution: four sub-buckets per power of two (within
//! 25%).

#[cfg(feature = "metrics")]
use std::any::TypeId;
#[cfg(feature = "metrics")]
use std::collections::HashMap;
use std::fmt;
#[cfg(feature = "metrics")]
use std::time::{Duration, Instant};

/// A named group of counters contributed by a reactor-local extension
/// (see [`Local::counters`](crate::reactor::Local::counters)): socket actors
/// report theirs as the group `sockets`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The group's name, e.g. `sockets`.
    pub group: &'static str,
    /// `(name, value)` pairs, in the order they are printed: counts, of
    /// which an interval line shows the change.
    pub values: Vec<(&'static str, u64)>,
    /// `(name, value)` pairs printed as they are (levels, not counts).
    pub gauges: Vec<(&'static str, u64)>,
}

impl Counters {
    /// The value of the counter or gauge `name`, if the group has one.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .chain(&self.gauges)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

const SUB: u32 = 2; // 2^SUB sub-buckets per power of two
/// 4 exact buckets below 4, then 4 per power of two up to 2^64: 252 used;
/// 256 so that an index masked to eight bits needs no bounds check.
const BUCKETS: usize = 256;

/// A histogram of `u64` values with four buckets per power of two (values
/// below 4 are exact), plus the exact count, sum and maximum.
#[derive(Clone, PartialEq, Eq)]
pub struct Hist {
    buckets: Box<[u64; BUCKETS]>,
    /// Values recorded.
    pub count: u64,
    /// Sum of the values (wrapping, which nanoseconds do after 584 years).
    pub sum: u64,
    /// Largest value recorded.
    pub max: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl fmt::Debug for Hist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hist")
            .field("count", &self.count)
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .field("max", &self.max)
            .finish()
    }
}

/// The bucket of `v`: `v` itself below 4; above, four per power of two.
/// Branch-free: `e` is the top bit's position (1 for `v` below 4, whose
/// shift is then 0 and whose bucket is `v`).
#[inline(always)]
fn bucket_of(v: u64) -> usize {
    let e = 63 - (v | 3).leading_zeros();
    let shift = e.saturating_sub(SUB);
    (((e - 1) as usize) << SUB) + ((v >> shift) & 3) as usize
}

/// Upper bound of bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let e = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    let low = (4 + sub) << (e - 2);
    low + (1u64 << (e - 2)) - 1
}

impl Hist {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.buckets[bucket_of(v) & (BUCKETS - 1)] += 1;
        self.count += 1;
        // Wraps after 2^64: 584 years of nanoseconds.
        self.sum = self.sum.wrapping_add(v);
        if v > self.max {
            self.max = v;
        }
    }

    /// The value at percentile `p` (0..=100): the upper bound of its bucket,
    /// capped at the maximum. 0 if empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }

    /// Mean value, 0 if empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Values recorded since `earlier` (a previous copy of this histogram).
    /// The maximum is the interval's bucket bound, capped by the overall max.
    pub fn since(&self, earlier: &Hist) -> Hist {
        let mut h = Hist::default();
        let mut top = 0;
        for i in 0..BUCKETS {
            let n = self.buckets[i] - earlier.buckets[i];
            h.buckets[i] = n;
            if n > 0 {
                top = i;
            }
        }
        h.count = self.count - earlier.count;
        h.sum = self.sum.wrapping_sub(earlier.sum);
        h.max = if h.count == 0 {
            0
        } else if self.max > earlier.max {
            self.max
        } else {
            bucket_high(top).min(self.max)
        };
        h
    }

    /// The same values in another unit: each bucket's values are taken at
    /// the bucket's midpoint and converted by `f` (monotonic); count is
    /// exact, sum and maximum are converted exactly. Percentiles stay
    /// within a bucket's width of the true ones.
    #[cfg(feature = "metrics")]
    fn scaled(&self, f: impl Fn(u64) -> u64) -> Hist {
        let mut h = Hist::default();
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 {
                let low = if i == 0 { 0 } else { bucket_high(i - 1) + 1 };
                let mid = low + (bucket_high(i) - low) / 2;
                h.buckets[bucket_of(f(mid)) & (BUCKETS - 1)] += n;
            }
        }
        h.count = self.count;
        h.sum = f(self.sum);
        h.max = f(self.max);
        h
    }

    /// Non-empty buckets as `(upper bound, count)`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (bucket_high(i), n))
    }
}

/// Counters of one behaviour type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeMetrics {
    /// `std::any::type_name` of the actor type.
    pub name: &'static str,
    /// Actors of this type spawned.
    pub spawned: u64,
    /// Runs.
    pub runs: u64,
    /// Envelopes handled.
    pub messages: u64,
    /// Time in runs, nanoseconds.
    pub busy_ns: u64,
    /// Runs that handled the whole budget and left mail waiting (forced
    /// yields).
    pub yields: u64,
    /// Runs longer than the slow threshold.
    pub slow: u64,
}

/// A snapshot of a reactor's scheduler metrics (see the module docs for
/// how time is measured). All zero without the `metrics` feature, except
/// `stats` and `enabled`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// False when the `metrics` feature is off (only `stats` is filled in).
    pub enabled: bool,
    /// The basic counters (turns, runs, messages, forced yields, ...).
    pub stats: crate::reactor::Stats,
    /// `poll` calls.
    pub polls: u64,
    /// Time blocked in `poll`, nanoseconds.
    pub poll_ns: u64,
    /// Time between polls (dispatch, timers, runs, turn-end hooks), ns.
    pub busy_ns: u64,
    /// Events per `poll` call.
    pub events_per_poll: Hist,
    /// Actor runs per turn.
    pub runs_per_turn: Hist,
    /// Run-queue length at the start of each turn's run phase.
    pub queue_depth: Hist,
    /// Largest run-queue length seen.
    pub queue_depth_max: u64,
    /// Enqueue to run start, nanoseconds.
    pub sched_delay_ns: Hist,
    /// Duration of each actor run, nanoseconds.
    pub run_ns: Hist,
    /// Runs longer than the slow threshold.
    pub slow_runs: u64,
    /// The slow threshold, nanoseconds.
    pub slow_threshold_ns: u64,
    /// Messages an actor may handle per run (`Config::budget`).
    pub budget: usize,
    /// Counter groups of the reactor's extensions (socket totals, ...).
    pub counters: Vec<Counters>,
    /// Per behaviour type, in order of first spawn.
    pub types: Vec<TypeMetrics>,
}

impl Metrics {
    /// The counter group named `group`, if some extension reported one.
    pub fn group(&self, group: &str) -> Option<&Counters> {
        self.counters.iter().find(|c| c.group == group)
    }

    /// Fraction of wall time spent outside `poll` (0..=1).
    pub fn busy_ratio(&self) -> f64 {
        let total = self.poll_ns + self.busy_ns;
        if total == 0 {
            0.0
        } else {
            self.busy_ns as f64 / total as f64
        }
    }

    /// One compact line of the changes since `earlier`, as printed by
    /// `echo-server --stats` (format documented in the README).
    pub fn interval_line(&self, earlier: &Metrics, secs: f64) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let e = &earlier.stats;
        let busy = self.busy_ns - earlier.busy_ns;
        let poll = self.poll_ns - earlier.poll_ns;
        let ratio = if busy + poll == 0 {
            0.0
        } else {
            busy as f64 / (busy + poll) as f64
        };
        let d = self.sched_delay_ns.since(&earlier.sched_delay_ns);
        let r = self.run_ns.since(&earlier.run_ns);
        let secs = secs.max(1e-9);
        let mut line = format!(
            "turns={} polls={} busy={:.1}% runs={} msgs={} msg/s={:.0} yields={} qmax={} \
             delay_us={:.1}/{:.1}/{:.1} run_us={:.1}/{:.1}/{:.1} slow={}",
            s.turns - e.turns,
            self.polls - earlier.polls,
            ratio * 100.0,
            s.actor_runs - e.actor_runs,
            s.messages - e.messages,
            (s.messages - e.messages) as f64 / secs,
            s.forced_yields - e.forced_yields,
            self.queue_depth_max,
            d.percentile(50.0) as f64 / 1e3,
            d.percentile(99.0) as f64 / 1e3,
            d.max as f64 / 1e3,
            r.percentile(50.0) as f64 / 1e3,
            r.percentile(99.0) as f64 / 1e3,
            r.max as f64 / 1e3,
            self.slow_runs - earlier.slow_runs,
        );
        for group in &self.counters {
            let before = earlier.group(group.group);
            for &(name, v) in &group.values {
                let was = before.and_then(|b| b.get(name)).unwrap_or(0);
                let _ = write!(line, " {name}={}", v.saturating_sub(was));
            }
            for &(name, v) in &group.gauges {
                let _ = write!(line, " {name}={v}");
            }
        }
        let _ = write!(
            line,
            " timers={} wakeups={} dead={} live={} cut={} peer_out={} peer_in={} peer_full={}",
            s.timers_fired - e.timers_fired,
            s.wakeups - e.wakeups,
            s.dead_sends - e.dead_sends,
            s.live_actors,
            s.cut_turns - e.cut_turns,
            s.peer_sends - e.peer_sends,
            s.peer_received - e.peer_received,
            s.peer_full - e.peer_full,
        );
        line
    }

    /// A multi-line summary (for the end of a run).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let mut o = String::new();
        let us = |v: u64| v as f64 / 1e3;
        let _ = writeln!(
            o,
            "turns {} polls {} events {} busy {:.1}% ({:.3}s busy, {:.3}s in poll)",
            s.turns,
            self.polls,
            s.events,
            self.busy_ratio() * 100.0,
            self.busy_ns as f64 / 1e9,
            self.poll_ns as f64 / 1e9
        );
        let _ = writeln!(
            o,
            "runs {} messages {} forced yields {} spawned {} exited {} live {} timers {} wakeups {} dead sends {}",
            s.actor_runs,
            s.messages,
            s.forced_yields,
            s.spawned,
            s.exited,
            s.live_actors,
            s.timers_fired,
            s.wakeups,
            s.dead_sends
        );
        if s.cut_turns + s.peer_sends + s.peer_received > 0 {
            let _ = writeln!(
                o,
                "turns cut by turn_time {} to other reactors {} from other reactors {} refused (lane full) {}",
                s.cut_turns, s.peer_sends, s.peer_received, s.peer_full
            );
        }
        if !self.enabled {
            let _ = writeln!(o, "(built without the `metrics` feature)");
            return o;
        }
        let h = |name: &str, h: &Hist, o: &mut String| {
            let _ = writeln!(
                o,
                "{name}: n {} mean {:.1} p50 {} p99 {} max {}",
                h.count,
                h.mean(),
                h.percentile(50.0),
                h.percentile(99.0),
                h.max
            );
        };
        h("events/poll", &self.events_per_poll, &mut o);
        h("runs/turn", &self.runs_per_turn, &mut o);
        h("queue depth", &self.queue_depth, &mut o);
        let _ = writeln!(o, "queue depth max {}", self.queue_depth_max);
        let _ = writeln!(
            o,
            "sched delay us: p50 {:.1} p99 {:.1} max {:.1}",
            us(self.sched_delay_ns.percentile(50.0)),
            us(self.sched_delay_ns.percentile(99.0)),
            us(self.sched_delay_ns.max)
        );
        let _ = writeln!(
            o,
            "run us: mean {:.2} p50 {:.1} p99 {:.1} max {:.1}; slow (> {:.0} us) {}",
            self.run_ns.mean() / 1e3,
            us(self.run_ns.percentile(50.0)),
            us(self.run_ns.percentile(99.0)),
            us(self.run_ns.max),
            us(self.slow_threshold_ns),
            self.slow_runs
        );
        for group in &self.counters {
            let _ = write!(o, "{}:", group.group);
            for (name, v) in &group.values {
                let _ = write!(o, " {name} {v}");
            }
            let _ = writeln!(o);
        }
        for t in &self.types {
            let _ = writeln!(
                o,
                "type {}: spawned {} runs {} messages {} busy {:.3} ms",
                t.name,
                t.spawned,
                t.runs,
                t.messages,
                t.busy_ns as f64 / 1e6
            );
        }
        o
    }
}

/// A cheap monotonic counter for timing runs: the CPU's cycle counter where
/// there is one, converted to nanoseconds with a calibrated factor.
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct Cycles {
    /// Nanoseconds per tick, times 2^32.
    ns_per_tick_q32: u64,
    #[cfg(not(target_arch = "x86_64"))]
    epoch: Instant,
}

#[cfg(feature = "metrics")]
impl Cycles {
    /// Calibrates the counter against the clock (a short spin on x86_64).
    fn new() -> Cycles {
        #[cfg(target_arch = "x86_64")]
        {
            let (t0, c0) = (Instant::now(), Self::read_tsc());
            let spin = Duration::from_micros(200);
            while t0.elapsed() < spin {
                std::hint::spin_loop();
            }
            let (ns, ticks) = (
                t0.elapsed().as_nanos(),
                Self::read_tsc().wrapping_sub(c0) as u128,
            );
            let q32 = ((ns << 32) / ticks.max(1)).max(1);
            Cycles {
                ns_per_tick_q32: q32.min(u64::MAX as u128) as u64,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Cycles {
                ns_per_tick_q32: 1 << 32,
                epoch: Instant::now(),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn read_tsc() -> u64 {
        // SAFETY: `rdtsc` has no preconditions; every x86_64 CPU has it.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// The counter now.
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            Self::read_tsc()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.epoch.elapsed().as_nanos() as u64
        }
    }

    /// Nanoseconds in `ticks`.
    #[inline(always)]
    pub(crate) fn ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// Ticks in `ns` nanoseconds.
    fn ticks(&self, ns: u64) -> u64 {
        ((u128::from(ns) << 32) / u128::from(self.ns_per_tick_q32)).min(u64::MAX as u128) as u64
    }
}

/// The live state kept in `Core` (feature `metrics`).
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct MetricsState {
    pub(crate) cycles: Cycles,
    /// Last counter reading, in ticks.
    pub(crate) clock: u64,
    pub(crate) polls: u64,
    pub(crate) poll_ns: u64,
    pub(crate) busy_ns: u64,
    pub(crate) events_per_poll: Hist,
    pub(crate) runs_per_turn: Hist,
    pub(crate) queue_depth: Hist,
    pub(crate) queue_depth_max: u64,
    pub(crate) sched_delay_ns: Hist,
    pub(crate) run_ns: Hist,
    pub(crate) slow_runs: u64,
    pub(crate) slow_threshold_ns: u64,
    /// The slow threshold in ticks.
    slow_ticks: u64,
    /// `Config::turn_time` in ticks.
    pub(crate) turn_ticks: u64,
    pub(crate) types: Vec<TypeMetrics>,
    type_ids: HashMap<TypeId, u32>,
}

#[cfg(feature = "metrics")]
impl MetricsState {
    pub(crate) fn new(slow_threshold: Duration, turn_time: Duration) -> MetricsState {
        let cycles = Cycles::new();
        let slow_threshold_ns = slow_threshold.as_nanos() as u64;
        let clock = cycles.now();
        MetricsState {
            slow_ticks: cycles.ticks(slow_threshold_ns),
            turn_ticks: cycles.ticks(turn_time.as_nanos().min(u64::MAX as u128) as u64),
            cycles,
            clock,
            polls: 0,
            poll_ns: 0,
            busy_ns: 0,
            events_per_poll: Hist::default(),
            runs_per_turn: Hist::default(),
            queue_depth: Hist::default(),
            queue_depth_max: 0,
            sched_delay_ns: Hist::default(),
            run_ns: Hist::default(),
            slow_runs: 0,
            slow_threshold_ns,
            types: Vec::new(),
            type_ids: HashMap::new(),
        }
    }

    /// Reads the counter, stores and returns it (ticks).
    #[inline(always)]
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock = self.cycles.now();
        self.clock
    }

    /// The per-type index of `T`, assigned at its first spawn.
    pub(crate) fn type_index(&mut self, id: TypeId, name: &'static str) -> u32 {
        let types = &mut self.types;
        let idx = *self.type_ids.entry(id).or_insert_with(|| {
            types.push(TypeMetrics {
                name,
                ..TypeMetrics::default()
            });
            (types.len() - 1) as u32
        });
        self.types[idx as usize].spawned += 1;
        idx
    }

    /// Records one run: queued at `enq`, run from `start` to `end` (ticks),
    /// `msgs` envelopes handled. Durations stay in ticks here (the run and
    /// delay histograms, each type's busy time) and become nanoseconds in
    /// [`MetricsState::snapshot`].
    #[inline]
    pub(crate) fn record_run(&mut self, ty: u32, enq: u64, start: u64, end: u64, msgs: u64) {
        self.sched_delay_ns.record(start.saturating_sub(enq));
        let ticks = end.saturating_sub(start);
        self.run_ns.record(ticks);
        let slow = u64::from(ticks > self.slow_ticks);
        self.slow_runs += slow;
        if let Some(t) = self.types.get_mut(ty as usize) {
            t.runs += 1;
            t.messages += msgs;
            t.busy_ns += ticks;
            t.slow += slow;
        }
    }

    /// Adds the time from `from` to `to` (ticks) to poll time or busy time.
    #[inline]
    pub(crate) fn add_poll(&mut self, from: u64, to: u64) {
        self.polls += 1;
        self.poll_ns += self.cycles.ns(to.saturating_sub(from));
    }

    #[inline]
    pub(crate) fn add_busy(&mut self, from: u64, to: u64) {
        self.busy_ns += self.cycles.ns(to.saturating_sub(from));
    }

    pub(crate) fn snapshot(
        &self,
        stats: crate::reactor::Stats,
        counters: Vec<Counters>,
        budget: usize,
    ) -> Metrics {
        Metrics {
            enabled: true,
            stats,
            polls: self.polls,
            poll_ns: self.poll_ns,
            busy_ns: self.busy_ns,
            events_per_poll: self.events_per_poll.clone(),
            runs_per_turn: self.runs_per_turn.clone(),
            queue_depth: self.queue_depth.clone(),
            queue_depth_max: self.queue_depth_max,
            sched_delay_ns: self.sched_delay_ns.scaled(|t| self.cycles.ns(t)),
            run_ns: self.run_ns.scaled(|t| self.cycles.ns(t)),
            slow_runs: self.slow_runs,
            slow_threshold_ns: self.slow_threshold_ns,
            budget,
            counters,
            types: self
                .types
                .iter()
                .map(|t| TypeMetrics {
                    busy_ns: self.cycles.ns(t.busy_ns),
                    ..t.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 40, u64::MAX >> 2]) {
            let b = bucket_of(v);
            assert!(b >= last || v > 100_000);
            last = b;
            assert!(bucket_high(b) >= v, "v {v} b {b}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "v {v}");
            }
        }
    }

    #[test]
    fn percentiles_within_a_quarter() {
        let mut h = Hist::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let p50 = h.percentile(50.0);
        assert!((500..=625).contains(&p50), "{p50}");
        assert_eq!(h.max, 1000);
        assert_eq!(h.percentile(100.0), 1000);
        let e = h.clone();
        h.record(7);
        let d = h.since(&e);
        assert_eq!(d.count, 1);
        assert_eq!(d.percentile(50.0), 7);
    }
}
