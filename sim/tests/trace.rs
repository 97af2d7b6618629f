//! A simulated run's trace is the runtime's trace format, on virtual time:
//! `trace-report`'s analysis reads it and exports it for Perfetto.

use credit_sim::{run, Options, Service};
use credit_tools::{Analysis, Chrome, Thresholds};
use serde_json::Value;

#[test]
fn a_simulated_trace_opens_in_the_trace_tools_on_virtual_time() {
    let o = run(
        42,
        &Options {
            service: Service::Echo,
            bugs: Vec::new(),
        },
    );
    assert!(o.passed(), "{:?}", o.violations);
    let mut an = Analysis::new(
        Thresholds::default(),
        Some(Chrome::new(Vec::new()).unwrap()),
    );
    an.read_trace(&o.trace[..]).unwrap();
    assert!(an.run_count > 10, "{} runs", an.run_count);
    let doc: Value = serde_json::from_slice(&an.chrome_bytes().unwrap()).expect("JSON");
    let events = doc["traceEvents"].as_array().unwrap();
    let runs: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(runs.len() as u64, an.run_count);
    assert!(runs.iter().any(|e| e["name"] == "EchoSession"));
    assert!(runs.iter().any(|e| e["name"] == "Socket"));
    // Stamped with the virtual clock (each event a nanosecond after the
    // one before within a turn): nothing much later than the run's end,
    // and every run has a length.
    assert!(runs
        .iter()
        .all(|e| e["dur"].as_f64().is_some_and(|d| d > 0.0)));
    let end_us = o.virtual_time.as_secs_f64() * 1e6;
    let last = events
        .iter()
        .filter_map(|e| e["ts"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        last > 0.0 && last <= end_us + 1.0,
        "last {last} µs, end {end_us} µs"
    );
}
