//! The invariants read off a run's event trace (one pass, through the
//! runtime's own trace parser):
//!
//! - an actor id is spawned at most once, exits at most once, and nothing
//!   runs, reads, writes or is given credit under its id after its exit:
//!   ids carry a generation, so no send or event can reach a dead actor's
//!   successor in its slot;
//! - a socket delivers a unit (`U`) only with credit, worked out here from
//!   the operations the `C` events name (`+n`, `-n`, `inf`, `zero`), less
//!   one per unit, and the credit each `C` reports must agree with it: the
//!   runtime's own arithmetic is checked, not trusted;
//! - a socket tells its controller `Closed` (`K`) at most once, and
//!   delivers no unit after it;
//! - a link or monitor notice (`L`, `M`) is queued at most once per exit
//!   and receiver.
//!
//! What the trace cannot show (that a notice did fire, that every line
//! was answered) the workloads check from the clients' side.

use std::collections::{HashMap, HashSet};

use credit_actors::reactor::trace::{parse_line, Line};

/// What the trace showed, beyond the violations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceFacts {
    /// Events read.
    pub events: u64,
    /// Actors spawned, by behaviour type (the last path segment).
    pub spawned: HashMap<String, u64>,
    /// Actors of each type alive at the end of the trace.
    pub alive: HashMap<String, u64>,
    /// The most actors of each type alive at once.
    pub peak: HashMap<String, u64>,
    /// Monitor notices queued.
    pub monitor_notices: u64,
    /// The close reason each socket told its controller (`K`), by id.
    pub closes: HashMap<String, String>,
    /// Actors that exited before the reactor's shutdown, with their type.
    pub exited: Vec<(String, String)>,
    /// Monitor notices queued, by the exited actor's id.
    pub monitored: HashMap<String, u32>,
}

impl TraceFacts {
    /// The actors of type `ty` that exited before the shutdown with no
    /// monitor notice queued: where each one is known to be monitored,
    /// a notice that never fired.
    pub fn unnoticed(&self, ty: &str) -> Vec<&str> {
        self.exited
            .iter()
            .filter(|(id, t)| t == ty && !self.monitored.contains_key(id))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

#[derive(Default)]
struct Actor {
    ty: String,
    exited: bool,
    /// Sockets: credit now (`u64::MAX`: infinite), and whether `K` came.
    credit: u64,
    closed_told: bool,
}

/// Infinite credit.
const INFINITE: u64 = u64::MAX;

/// Credit after the operation `op` (as a `C` event names it) on `was`, as
/// the socket documents it: issuing adds (clamped below infinite),
/// negative issue subtracts (clamped at zero), infinite stays infinite
/// under issues; `None` for an operation it does not know.
fn apply(was: u64, op: &str) -> Option<u64> {
    Some(match op {
        "inf" => INFINITE,
        "zero" => 0,
        _ if was == INFINITE => INFINITE,
        _ => {
            let n: i64 = op.parse().ok()?;
            if n >= 0 {
                was.saturating_add(n as u64).min(INFINITE - 1)
            } else {
                was.saturating_sub(n.unsigned_abs())
            }
        }
    })
}

/// Reads `trace` and returns its violations (each a sentence naming the
/// event) and what it showed.
pub fn check_trace(trace: &[u8]) -> (Vec<String>, TraceFacts) {
    let mut v = Vec::new();
    let mut facts = TraceFacts::default();
    let mut actors: HashMap<String, Actor> = HashMap::new();
    let mut notices: HashSet<(char, String, String)> = HashSet::new();
    let text = String::from_utf8_lossy(trace);
    for (n, line) in text.lines().enumerate() {
        let e = match parse_line(line) {
            Ok(Line::Event(e)) => e,
            Ok(_) => continue,
            Err(err) => {
                v.push(format!("trace line {}: {err}", n + 1));
                continue;
            }
        };
        facts.events += 1;
        let at = || format!("at {} ns (trace line {})", e.ns, n + 1);
        match e.kind {
            'S' => {
                let ty = e.rest.rsplit("::").next().unwrap_or(e.rest).to_string();
                if actors.contains_key(e.id) {
                    v.push(format!("actor {} spawned twice {}", e.id, at()));
                }
                *facts.spawned.entry(ty.clone()).or_default() += 1;
                let alive = facts.alive.entry(ty.clone()).or_default();
                *alive += 1;
                let peak = facts.peak.entry(ty.clone()).or_default();
                *peak = (*peak).max(*alive);
                actors.insert(
                    e.id.to_string(),
                    Actor {
                        ty,
                        ..Actor::default()
                    },
                );
            }
            'X' => match actors.get_mut(e.id) {
                Some(a) if a.exited => v.push(format!("actor {} exited twice {}", e.id, at())),
                Some(a) => {
                    a.exited = true;
                    if e.rest != "reactor shutdown" {
                        facts.exited.push((e.id.to_string(), a.ty.clone()));
                    }
                    if let Some(n) = facts.alive.get_mut(&a.ty) {
                        *n -= 1;
                    }
                }
                None => {}
            },
            'B' | 'E' | 'R' | 'W' | 'O' | 'Q' if actors.get(e.id).is_some_and(|a| a.exited) => {
                v.push(format!(
                    "event {} for {} after its exit {}",
                    e.kind,
                    e.id,
                    at()
                ));
            }
            'C' => {
                if let (Some(a), Some(c)) = (actors.get_mut(e.id), e.value()) {
                    if a.exited {
                        v.push(format!("credit for {} after its exit {}", e.id, at()));
                    }
                    let op = e.rest.split(' ').nth(1).unwrap_or("");
                    match apply(a.credit, op) {
                        Some(want) if want != c => v.push(format!(
                            "{} reports credit {c} after {op}, where its operations make {want} {}",
                            e.id,
                            at()
                        )),
                        Some(_) => {}
                        None => v.push(format!(
                            "{} traced credit without an operation {}",
                            e.id,
                            at()
                        )),
                    }
                    a.credit = c;
                }
            }
            'U' => {
                if let Some(a) = actors.get_mut(e.id) {
                    if a.exited {
                        v.push(format!("a unit from {} after its exit {}", e.id, at()));
                    } else if a.closed_told {
                        v.push(format!(
                            "a unit from {} after it told its controller Closed {}",
                            e.id,
                            at()
                        ));
                    } else if a.credit == 0 {
                        v.push(format!(
                            "a unit from {} ({}) delivered without credit {}",
                            e.id,
                            a.ty,
                            at()
                        ));
                    } else if a.credit != INFINITE {
                        a.credit -= 1;
                    }
                }
            }
            'K' => {
                if let Some(a) = actors.get_mut(e.id) {
                    if a.closed_told {
                        v.push(format!(
                            "{} told its controller Closed twice {}",
                            e.id,
                            at()
                        ));
                    }
                    a.closed_told = true;
                }
                facts.closes.insert(e.id.to_string(), e.rest.to_string());
            }
            'L' | 'M' => {
                let to = e.rest.split(' ').next().unwrap_or("").to_string();
                if e.kind == 'M' {
                    facts.monitor_notices += 1;
                    *facts.monitored.entry(e.id.to_string()).or_default() += 1;
                }
                if !notices.insert((e.kind, e.id.to_string(), to.clone())) {
                    let what = if e.kind == 'L' { "link" } else { "monitor" };
                    v.push(format!(
                        "a second {what} notice of {}'s exit to {to} {}",
                        e.id,
                        at()
                    ));
                }
            }
            _ => {}
        }
    }
    (v, facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# credit-actors trace 2 reactor=0 budget=64\n";

    fn check(body: &str) -> Vec<String> {
        check_trace(format!("{HEAD}{body}").as_bytes()).0
    }

    #[test]
    fn a_clean_trace_passes() {
        let t = "1 S <1.0> credit_actors::net::socket::Socket\n\
                 2 C <1.0> 2 +2\n3 U <1.0>\n4 U <1.0>\n5 C <1.0> 1 +1\n6 U <1.0>\n\
                 7 K <1.0> orderly close\n8 X <1.0> normal\n9 M <1.0> <0.0>\n";
        assert_eq!(check(t), Vec::<String>::new());
    }

    #[test]
    fn each_invariant_catches_its_breach() {
        let cases = [
            (
                "1 S <1.0> Socket\n2 C <1.0> 1 +1\n3 U <1.0>\n4 U <1.0>\n",
                "without credit",
            ),
            (
                "1 S <1.0> Socket\n2 C <1.0> 3 +3\n3 K <1.0> reset\n4 U <1.0>\n",
                "after it told",
            ),
            // The runtime's arithmetic: issue 2 reported as 4; a subtraction
            // clamped at zero, then 7 and 1 more reported as 9.
            (
                "1 S <1.0> Socket\n2 C <1.0> 4 +2\n",
                "where its operations make 2",
            ),
            (
                "1 S <1.0> Socket\n2 C <1.0> 0 -5\n3 C <1.0> 7 +7\n4 C <1.0> 9 +1\n",
                "where its operations make 8",
            ),
            ("1 S <1.0> Socket\n2 C <1.0> 3\n", "without an operation"),
            (
                "1 S <1.0> Socket\n2 K <1.0> a\n3 K <1.0> b\n",
                "Closed twice",
            ),
            (
                "1 S <1.0> A\n2 X <1.0> normal\n3 B <1.0>\n",
                "after its exit",
            ),
            ("1 S <1.0> A\n2 S <1.0> A\n", "spawned twice"),
            ("1 S <1.0> A\n2 X <1.0> a\n3 X <1.0> b\n", "exited twice"),
            (
                "1 M <1.0> <2.0>\n2 M <1.0> <2.0>\n",
                "second monitor notice",
            ),
            ("1 L <1.0> <2.0>\n2 L <1.0> <2.0>\n", "second link notice"),
        ];
        for (trace, want) in cases {
            let v = check(trace);
            assert!(v.iter().any(|s| s.contains(want)), "{want:?} in {v:?}");
        }
    }

    #[test]
    fn infinite_credit_never_runs_out() {
        let t = format!(
            "1 S <1.0> Socket\n2 C <1.0> {} inf\n{}",
            u64::MAX,
            "3 U <1.0>\n".repeat(5)
        );
        assert_eq!(check(&t), Vec::<String>::new());
    }
}
