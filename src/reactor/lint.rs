//! Live lints: the warnings `--stats` prints the first time each shows,
//! the live counterparts of `trace-report`'s lints, from what the metrics
//! count and a sample of the actors taken once per interval.
//!
//! | lint | from | when |
//! |---|---|---|
//! | `budget` | per-type forced yields | a type spent its whole budget, with mail left, on more than half of its runs in the interval (at least 10) |
//! | `slow-run` | per-type slow runs | a type had at least [`SLOW_MIN`] runs longer than the slow threshold in the interval |
//! | `dead-send` | `Stats::dead_sends` | sends found their receiver dead (the trace names the senders) |
//! | `mailbox` | the sample | an actor's waiting messages rose at three samples in a row, to at least [`MAILBOX_MIN`] |
//! | `credit-stall` | the sample ([`Actor::warning`](crate::Actor::warning)) | an actor gave the same warning at two samples in a row: a socket out of credit with the same bytes waiting (here and in the kernel), so its controller let nothing out for an interval |
//!
//! Each names the actor (or the behaviour type) and the figure, and is
//! printed once per actor (or type). Without the `metrics` feature the
//! per-type counters are not kept, and `budget` and `slow-run` never show.

use std::collections::{HashMap, HashSet};

use crate::reactor::{ActorId, Metrics};

/// Waiting messages an actor must reach for the `mailbox` lint.
pub const MAILBOX_MIN: usize = 100;

/// Samples an actor's mailbox must have risen at, in a row.
const MAILBOX_RISES: u32 = 3;

/// Samples in a row an actor must have warned at, the same each time.
const WARN_SAMPLES: u32 = 2;

/// Slow runs of a type in one interval for the `slow-run` lint: one slow
/// run (a preemption, a cold cache) says little; `trace-report` lists
/// each with its length.
pub const SLOW_MIN: u64 = 10;

/// One sample of a reactor's actors ([`Core::lint_sample`](crate::reactor::Core::lint_sample)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LintSample {
    /// Actors with at least the asked number of messages waiting: id,
    /// type name, messages.
    pub mailboxes: Vec<(ActorId, &'static str, usize)>,
    /// Actors warning about their state ([`Actor::warning`](crate::Actor::warning)).
    pub warnings: Vec<(ActorId, &'static str, String)>,
}

/// What one reactor's live lints remember between samples.
#[derive(Debug, Default)]
pub struct LiveLints {
    told: HashSet<(&'static str, String)>,
    /// Per actor with a long mailbox: the lengths seen, latest last.
    mailboxes: HashMap<ActorId, Vec<usize>>,
    /// Per warning actor: its warning, and samples in a row it gave it.
    warned: HashMap<ActorId, (String, u32)>,
}

/// The last segment of a type path, as the trace tools print it.
fn short(ty: &str) -> &str {
    let base = ty.split('<').next().unwrap_or(ty);
    base.rsplit("::").next().unwrap_or(base)
}

impl LiveLints {
    /// The lints that first show between `earlier` and `now` (metrics
    /// `secs` apart), given this interval's `sample`: one line each.
    pub fn observe(
        &mut self,
        earlier: &Metrics,
        now: &Metrics,
        sample: &LintSample,
        secs: f64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for t in &now.types {
            let before = earlier.types.iter().find(|e| e.name == t.name);
            let (runs, yields, slow) = match before {
                Some(b) => (t.runs - b.runs, t.yields - b.yields, t.slow - b.slow),
                None => (t.runs, t.yields, t.slow),
            };
            if runs >= 10 && yields * 2 > runs {
                self.tell(&mut out, "budget", short(t.name), || {
                    format!(
                        "{}: the whole budget ({} messages) with mail left on {yields} of {runs} runs in {secs:.1} s",
                        short(t.name),
                        now.budget
                    )
                });
            }
            if slow >= SLOW_MIN {
                self.tell(&mut out, "slow-run", short(t.name), || {
                    format!(
                        "{}: {slow} runs over {} µs in {secs:.1} s",
                        short(t.name),
                        now.slow_threshold_ns / 1000
                    )
                });
            }
        }
        let dead = now.stats.dead_sends - earlier.stats.dead_sends;
        if dead > 0 {
            self.tell(&mut out, "dead-send", "", || {
                format!("{dead} sends to dead actors in {secs:.1} s (a trace names the senders)")
            });
        }
        let mut mailboxes = HashMap::new();
        for &(id, ty, n) in &sample.mailboxes {
            let mut seen = self.mailboxes.remove(&id).unwrap_or_default();
            seen.push(n);
            let tail = seen.len().saturating_sub(MAILBOX_RISES as usize + 1);
            seen.drain(..tail);
            let rising =
                seen.len() > MAILBOX_RISES as usize && seen.windows(2).all(|w| w[0] < w[1]);
            if rising && n >= MAILBOX_MIN {
                let path: Vec<String> = seen.iter().map(usize::to_string).collect();
                self.tell(&mut out, "mailbox", &id.to_string(), || {
                    format!(
                        "{id} {}: mailbox growing, {} messages waiting at the last {} samples",
                        short(ty),
                        path.join(" → "),
                        seen.len()
                    )
                });
            }
            mailboxes.insert(id, seen);
        }
        self.mailboxes = mailboxes;
        let mut warned = HashMap::new();
        for (id, ty, what) in &sample.warnings {
            let n = match self.warned.get(id) {
                Some((before, n)) if before == what => n + 1,
                _ => 1,
            };
            if n >= WARN_SAMPLES {
                self.tell(&mut out, "credit-stall", &id.to_string(), || {
                    format!(
                        "{id} {}: {what}, at {n} samples {secs:.1} s apart",
                        short(ty)
                    )
                });
            }
            warned.insert(*id, (what.clone(), n));
        }
        self.warned = warned;
        out
    }

    fn tell(
        &mut self,
        out: &mut Vec<String>,
        lint: &'static str,
        key: &str,
        line: impl FnOnce() -> String,
    ) {
        if self.told.insert((lint, key.to_string())) {
            out.push(format!("lint {lint:<12} {}", line()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::TypeMetrics;

    fn metrics(types: &[(&'static str, u64, u64, u64)], dead: u64) -> Metrics {
        let mut m = Metrics {
            budget: 64,
            slow_threshold_ns: 50_000,
            ..Metrics::default()
        };
        m.stats.dead_sends = dead;
        m.types = types
            .iter()
            .map(|&(name, runs, yields, slow)| TypeMetrics {
                name,
                runs,
                yields,
                slow,
                ..TypeMetrics::default()
            })
            .collect();
        m
    }

    #[test]
    fn type_lints_show_once_and_only_past_their_marks() {
        let mut l = LiveLints::default();
        let a = metrics(&[("x::Busy", 0, 0, 0), ("x::Calm", 0, 0, 0)], 0);
        let b = metrics(&[("x::Busy", 100, 90, 0), ("x::Calm", 100, 40, 12)], 3);
        let lines = l.observe(&a, &b, &LintSample::default(), 1.0);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("budget")
                && lines[0]
                    .contains("Busy: the whole budget (64 messages) with mail left on 90 of 100")
        );
        assert!(lines[1].contains("slow-run") && lines[1].contains("Calm: 12 runs over 50 µs"));
        assert!(lines[2].contains("dead-send") && lines[2].contains("3 sends"));
        // The next interval repeats nothing already told.
        let c = metrics(&[("x::Busy", 200, 180, 0), ("x::Calm", 200, 40, 40)], 9);
        assert!(l.observe(&b, &c, &LintSample::default(), 1.0).is_empty());
        // Too few runs: no budget lint.
        let mut l = LiveLints::default();
        let d = metrics(&[("x::Busy", 9, 9, 9)], 0);
        assert!(l
            .observe(&metrics(&[], 0), &d, &LintSample::default(), 1.0)
            .is_empty());
    }

    #[test]
    fn a_mailbox_lints_after_three_rises_and_a_warning_after_two_samples() {
        let mut l = LiveLints::default();
        let m = metrics(&[], 0);
        let id = ActorId::new(3, 0);
        let sample = |n| LintSample {
            mailboxes: vec![(id, "x::Sink", n)],
            warnings: vec![(ActorId::new(4, 0), "net::Socket", "out of credit".into())],
        };
        assert!(l.observe(&m, &m, &sample(50), 1.0).is_empty());
        let w = l.observe(&m, &m, &sample(120), 1.0);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("credit-stall")
                && w[0].contains("<4.0> Socket: out of credit, at 2 samples")
        );
        assert!(l.observe(&m, &m, &sample(400), 1.0).is_empty(), "two rises");
        let g = l.observe(&m, &m, &sample(900), 1.0);
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(
            g[0].contains("<3.0> Sink: mailbox growing, 50 → 120 → 400 → 900"),
            "{g:?}"
        );
        // A warning that changes between samples (the controller let
        // something out) is no stall.
        let mut l = LiveLints::default();
        let s = ActorId::new(5, 0);
        for n in 0..4 {
            let w = LintSample {
                mailboxes: vec![],
                warnings: vec![(
                    s,
                    "net::Socket",
                    format!("out of credit ({} bytes)", 900 - n),
                )],
            };
            assert!(l.observe(&m, &m, &w, 1.0).is_empty());
        }
        // A mailbox that falls back starts over.
        let mut l = LiveLints::default();
        for n in [200, 300, 250, 400, 500] {
            assert!(l
                .observe(
                    &m,
                    &m,
                    &LintSample {
                        mailboxes: vec![(id, "S", n)],
                        warnings: vec![]
                    },
                    1.0
                )
                .is_empty());
        }
    }
}
