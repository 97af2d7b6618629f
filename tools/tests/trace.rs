//! A real trace, written by a reactor, read by the analysis: the Chrome
//! export has one track per actor and one complete event per run, named by
//! behaviour; a send to a dead actor is traced and flagged.

use credit_actors::{Actor, Addr, Ctx, Reactor};
use credit_testkit::TraceSink;
use credit_tools::{Analysis, Chrome, Thresholds};
use serde_json::Value;

/// Stops at its first message.
struct Quitter;

impl Actor for Quitter {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
        ctx.stop();
    }
}

/// Sends `n` messages to a quitter: the first stops it, the rest find it
/// dead. Then stops.
struct Pest {
    target: Addr<Quitter>,
    n: usize,
}

impl Actor for Pest {
    type Msg = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _: ()) {
        ctx.send(self.target, ());
        self.n -= 1;
        if self.n == 0 {
            ctx.stop();
        } else {
            let me = ctx.me();
            ctx.send(me, ());
        }
    }
}

fn traced_run() -> Vec<u8> {
    let sink = TraceSink::default();
    let mut reactor = Reactor::new().unwrap();
    reactor.core().set_trace(Box::new(sink.clone()));
    let q = reactor.spawn(Quitter);
    let p = reactor.spawn(Pest { target: q, n: 5 });
    reactor.send(p, ());
    reactor.run().unwrap();
    reactor.core().stop_trace();
    sink.bytes()
}

#[test]
fn the_chrome_export_has_a_track_per_actor_and_a_complete_event_per_run() {
    let trace = traced_run();
    let mut an = Analysis::new(
        Thresholds::default(),
        Some(Chrome::new(Vec::new()).unwrap()),
    );
    let header = an.read_trace(&trace[..]).unwrap();
    assert_eq!(header.reactor, 0, "the header names the reactor");
    let runs = an.run_count as usize;
    assert!(an.slowest.len() <= 10 && an.slowest.windows(2).all(|w| w[0].0 >= w[1].0));
    let chrome = an.chrome_bytes().unwrap();
    let doc: Value = serde_json::from_slice(&chrome).expect("valid JSON");
    let events = doc["traceEvents"].as_array().unwrap();
    let complete: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(complete.len(), runs);
    // Each actor's runs are on its own track, named by its type.
    let track = |name: &str| -> Vec<u64> {
        let mut t: Vec<u64> = complete
            .iter()
            .filter(|e| e["name"] == name)
            .map(|e| e["tid"].as_u64().unwrap())
            .collect();
        t.dedup();
        t
    };
    let (pest, quitter) = (track("Pest"), track("Quitter"));
    assert_eq!(pest.len(), 1, "{pest:?}");
    assert_eq!(quitter.len(), 1, "{quitter:?}");
    assert_ne!(pest, quitter);
    // Pest ran five times, one message each; times in microseconds.
    let pest_runs: Vec<&&Value> = complete.iter().filter(|e| e["name"] == "Pest").collect();
    assert_eq!(pest_runs.len(), 5);
    for e in &pest_runs {
        assert_eq!(e["args"]["messages"], 1);
        assert_eq!(e["pid"], 1, "reactor 0 is process 1");
    }
    // The tracks are named "<id> <type>", under a named process.
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(" Pest")), "{names:?}");
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["args"]["name"] == "reactor 0"));
    // Times are the trace's nanoseconds in microseconds: the first run of
    // Pest begins at its first B.
    let text = String::from_utf8(trace).unwrap();
    let first_b = text
        .lines()
        .find(|l| {
            l.ends_with(&format!(
                " B {}",
                pest_runs[0]["args"]["actor"].as_str().unwrap()
            ))
        })
        .and_then(|l| l.split(' ').next())
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap();
    let ts = pest_runs[0]["ts"].as_f64().unwrap();
    assert!(
        (ts - first_b as f64 / 1e3).abs() < 1e-6,
        "{ts} vs {first_b} ns"
    );
}

#[test]
fn sends_to_a_dead_actor_are_traced_and_flagged_with_the_sender() {
    let trace = traced_run();
    let text = String::from_utf8(trace.clone()).unwrap();
    // Four of the five sends found the quitter dead.
    assert_eq!(
        text.lines().filter(|l| l.contains(" D ")).count(),
        4,
        "{text}"
    );
    let mut an = Analysis::<Vec<u8>>::new(Thresholds::default(), None);
    an.read_trace(&trace[..]).unwrap();
    let lints = an.lints();
    let dead: Vec<_> = lints.iter().filter(|l| l.kind == "dead-send").collect();
    assert_eq!(dead.len(), 1, "{lints:?}");
    assert_eq!(dead[0].ty, "Pest");
    assert!(
        dead[0].detail.starts_with("4 sends to <0.0>"),
        "{}",
        dead[0].detail
    );
}
