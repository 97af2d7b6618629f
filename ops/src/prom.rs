//! The reactors' metrics in the Prometheus (OpenMetrics) text exposition,
//! encoded by `prometheus-client`: one `reactor` label per reactor, every
//! counter `--stats` prints, the live connections, the scheduling-delay
//! and run-time histograms, and per behaviour type the runs, messages and
//! time.

use std::fmt;

use credit_actors::{Hist, Metrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// What one reactor reported for a scrape.
#[derive(Clone, Debug)]
pub struct ReactorSample {
    /// The reactor's number in its group (0 alone).
    pub reactor: usize,
    /// Its metrics snapshot.
    pub metrics: Metrics,
    /// Connections it serves now.
    pub connections: usize,
}

/// The process's state beside the reactors'.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// `/readyz` would answer 200.
    pub ready: bool,
    /// Reactors asked.
    pub reactors: usize,
    /// Reactors that did not answer in time (stalled, or stopped).
    pub missing: usize,
}

/// The content type of [`render`]'s text (OpenMetrics).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`to_prometheus_text`]'s text (Prometheus 0.0.4,
/// what `promtool check metrics` and older scrapers read).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The OpenMetrics exposition as Prometheus text: the two differ, for
/// what is written here, only in that a counter's family takes its
/// samples' `_total` name, and in the `# UNIT` and `# EOF` lines, which
/// Prometheus text has not.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{p}{name}{total} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The exposition of one scrape.
pub fn render(samples: Vec<ReactorSample>, process: ProcessSample) -> String {
    let mut registry = Registry::with_prefix("credit");
    registry.register_collector(Box::new(Scrape { samples, process }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Scrape {
    samples: Vec<ReactorSample>,
    process: ProcessSample,
}

/// A counter, gauge or histogram of every reactor, as one family.
struct Family<'a, F> {
    samples: &'a [ReactorSample],
    kind: MetricType,
    value: F,
}

enum Value<'a> {
    Count(u64),
    Level(i64),
    Seconds(f64),
    Histogram(&'a Hist),
}

impl<F> EncodeMetric for Family<'_, F>
where
    F: for<'s> Fn(&'s ReactorSample) -> Option<Value<'s>>,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        for s in self.samples {
            let Some(value) = (self.value)(s) else {
                continue;
            };
            let labels = [("reactor", s.reactor.to_string())];
            let mut e = encoder.encode_family(&labels)?;
            match value {
                Value::Count(v) => e.encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                Value::Seconds(v) => e.encode_counter::<NoLabelSet, _, f64>(&v, None)?,
                Value::Level(v) => e.encode_gauge(&v)?,
                Value::Histogram(h) => {
                    let (sum, count, buckets) = seconds_buckets(h);
                    e.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?
                }
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// Bucket bounds of the time histograms, in seconds: 1 µs to 1 s.
const BOUNDS: [f64; 19] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
    0.2, 0.5, 1.0,
];

/// A nanosecond histogram as a seconds one on [`BOUNDS`]: the sum, the
/// count, and each bucket's own count (the encoder accumulates), the last
/// one `+Inf`. The runtime's buckets are within 25%; each goes to the
/// first bound at or above its upper end.
fn seconds_buckets(h: &Hist) -> (f64, u64, Vec<(f64, u64)>) {
    let mut counts = [0u64; BOUNDS.len() + 1];
    for (high, n) in h.buckets() {
        let s = high as f64 / 1e9;
        let i = BOUNDS.iter().position(|&b| s <= b).unwrap_or(BOUNDS.len());
        counts[i] += n;
    }
    let buckets = BOUNDS
        .iter()
        .copied()
        .chain([f64::MAX])
        .zip(counts)
        .collect();
    (h.sum as f64 / 1e9, h.count, buckets)
}

/// The scheduler's figures: (name, help, kind, value).
type Figure = (
    &'static str,
    &'static str,
    MetricType,
    fn(&ReactorSample) -> Option<Value<'_>>,
);

/// Gives a closure the signature `Family` needs (one for every borrow).
fn higher_ranked<F>(f: F) -> F
where
    F: for<'s> Fn(&'s ReactorSample) -> Option<Value<'s>>,
{
    f
}

fn count(v: u64) -> Option<Value<'static>> {
    Some(Value::Count(v))
}

/// A row of [`FIGURES`]: a counter of the reactor's `Stats`, named after
/// its field.
macro_rules! stat {
    ($field:ident, $help:literal) => {
        (stringify!($field), $help, MetricType::Counter, |s| {
            count(s.metrics.stats.$field)
        })
    };
}

const FIGURES: &[Figure] = &[
    stat!(turns, "Reactor turns (one poll each)."),
    ("polls", "poll calls.", MetricType::Counter, |s| {
        count(s.metrics.polls)
    }),
    stat!(events, "Readiness events received."),
    stat!(actor_runs, "Actor runs."),
    stat!(messages, "Envelopes handled (messages and notices)."),
    stat!(
        forced_yields,
        "Runs that ended with the budget spent and mail still waiting."
    ),
    stat!(dead_sends, "Sends and requests to dead actors, dropped."),
    stat!(spawned, "Actors spawned."),
    stat!(exited, "Actors terminated."),
    stat!(timers_fired, "Timers fired."),
    stat!(wakeups, "Wake-ups from other threads."),
    stat!(peer_sends, "Messages sent to other reactors of the group."),
    stat!(
        peer_received,
        "Messages received from other reactors of the group."
    ),
    stat!(
        peer_full,
        "try_send calls refused for a full lane to another reactor."
    ),
    stat!(
        cut_turns,
        "Turns ended by the turn time with actors still runnable."
    ),
    (
        "slow_runs",
        "Runs longer than the slow threshold.",
        MetricType::Counter,
        |s| count(s.metrics.slow_runs),
    ),
    ("live_actors", "Live actors.", MetricType::Gauge, |s| {
        Some(Value::Level(s.metrics.stats.live_actors as i64))
    }),
    (
        "connections",
        "Connections the reactor serves.",
        MetricType::Gauge,
        |s| Some(Value::Level(s.connections as i64)),
    ),
    (
        "queue_depth_max",
        "Longest run queue seen.",
        MetricType::Gauge,
        |s| Some(Value::Level(s.metrics.queue_depth_max as i64)),
    ),
];

/// Figures in seconds: (name, help, kind, value).
const SECONDS: &[Figure] = &[
    ("poll", "Time blocked in poll.", MetricType::Counter, |s| {
        Some(Value::Seconds(s.metrics.poll_ns as f64 / 1e9))
    }),
    (
        "busy",
        "Time outside poll (dispatch, timers, runs, turn ends).",
        MetricType::Counter,
        |s| Some(Value::Seconds(s.metrics.busy_ns as f64 / 1e9)),
    ),
    (
        "scheduling_delay",
        "From an actor's enqueue to the start of its run.",
        MetricType::Histogram,
        |s| Some(Value::Histogram(&s.metrics.sched_delay_ns)),
    ),
    (
        "run",
        "Duration of each actor run.",
        MetricType::Histogram,
        |s| Some(Value::Histogram(&s.metrics.run_ns)),
    ),
];

/// Help for the counters the reactors' extensions report (`--stats`
/// names), and the name they get here.
fn extension_figure(group: &str, name: &str) -> (String, String) {
    let help = match (group, name) {
        ("sockets", "units") => "Work units delivered to controllers.",
        ("sockets", "in") => "Bytes read.",
        ("sockets", "out") => "Bytes written.",
        ("sockets", "reads") => "read calls.",
        ("sockets", "wb") => "read calls that found nothing.",
        ("sockets", "writes") => "write and writev flush attempts.",
        ("sockets", "stalls") => "Times delivery stopped with input waiting for zero credit.",
        ("sockets", "hw") => "Times input was held back for output above the high-water mark.",
        ("sockets", "mem_high") => "Times buffer memory passed half its budget.",
        ("sockets", "parks") => "Sockets and listeners parked for buffer memory.",
        ("sockets", "overload") => "Connections closed for buffer memory.",
        ("sockets", "proxied") => "PROXY protocol headers read.",
        ("sockets", "proxy_local") => "PROXY protocol LOCAL headers (health checks) read.",
        ("sockets", "proxy_refused") => "Connections refused for their PROXY header.",
        ("sockets", "mem") => "Bytes of buffer memory held.",
        ("sockets", "conns") => "Sockets open (accepted and outgoing).",
        ("sockets", "mem_peak") => "Most bytes of buffer memory held.",
        _ => "A counter of the reactor's extension (see --stats).",
    };
    let name = match name {
        "in" => "bytes_in",
        "out" => "bytes_out",
        "wb" => "empty_reads",
        "writes" => "flushes",
        "stalls" => "credit_stalls",
        "hw" => "high_water",
        "conns" => "open",
        "mem" | "mem_peak" => {
            return (
                format!("{group}_{}", name.replace("mem", "buffer_memory_bytes")),
                help.into(),
            )
        }
        other => other,
    };
    (format!("{group}_{name}"), help.into())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let samples = &self.samples[..];
        for (table, unit) in [(FIGURES, None), (SECONDS, Some(&Unit::Seconds))] {
            for &(name, help, kind, value) in table {
                let family = Family {
                    samples,
                    kind,
                    value,
                };
                family.encode(encoder.encode_descriptor(name, help, unit, kind)?)?;
            }
        }
        // The extensions' counters, named by the first reactor's groups
        // (every reactor has the same ones).
        if let Some(first) = samples.first() {
            for group in &first.metrics.counters {
                let names = group
                    .values
                    .iter()
                    .map(|&(n, _)| (n, MetricType::Counter))
                    .chain(group.gauges.iter().map(|&(n, _)| (n, MetricType::Gauge)));
                for (name, kind) in names {
                    let (full, help) = extension_figure(group.group, name);
                    let g = group.group;
                    let value = higher_ranked(move |s: &ReactorSample| {
                        let v = s.metrics.group(g)?.get(name)?;
                        Some(match kind {
                            MetricType::Counter => Value::Count(v),
                            _ => Value::Level(v as i64),
                        })
                    });
                    let family = Family {
                        samples,
                        kind,
                        value,
                    };
                    family.encode(encoder.encode_descriptor(&full, &help, None, kind)?)?;
                }
            }
        }
        self.encode_types(&mut encoder)?;
        let p = self.process;
        for (name, help, v) in [
            (
                "ready",
                "1 while /readyz answers 200; 0 once draining or stopping.",
                i64::from(p.ready),
            ),
            ("reactors", "Reactors of the process.", p.reactors as i64),
            (
                "reactors_unanswered",
                "Reactors that did not answer this scrape in time.",
                p.missing as i64,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&v)?;
        }
        Ok(())
    }
}

impl Scrape {
    /// Per behaviour type: runs, messages, time and spawns, labelled by
    /// reactor and type.
    fn encode_types(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        type TypeFigure = (
            &'static str,
            &'static str,
            Option<Unit>,
            fn(&credit_actors::TypeMetrics) -> f64,
        );
        const TYPES: [TypeFigure; 4] = [
            ("type_runs", "Runs of actors of the type.", None, |t| {
                t.runs as f64
            }),
            (
                "type_messages",
                "Envelopes handled by actors of the type.",
                None,
                |t| t.messages as f64,
            ),
            (
                "type_busy",
                "Time in runs of actors of the type.",
                Some(Unit::Seconds),
                |t| t.busy_ns as f64 / 1e9,
            ),
            ("type_spawned", "Actors of the type spawned.", None, |t| {
                t.spawned as f64
            }),
        ];
        for (name, help, unit, value) in TYPES {
            let mut e =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for s in &self.samples {
                for t in &s.metrics.types {
                    let labels = [
                        ("reactor", s.reactor.to_string()),
                        ("type", t.name.to_string()),
                    ];
                    let v = value(t);
                    e.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
                }
            }
        }
        Ok(())
    }
}
