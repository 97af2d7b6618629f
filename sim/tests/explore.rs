//! The simulator in `cargo test`: a few hundred seeds of each service hold
//! every invariant, a seed replays byte for byte, and each planted bug is
//! found within a stated number of seeds and replays from its seed.

use credit_actors::sim::Bug;
use credit_sim::{replay_command, run, Options, Service};

/// Seeds each service runs in `cargo test` (a second or two each in a
/// debug build).
const SEEDS: u64 = 300;

/// Every planted bug is found within this many seeds (measured: within
/// the first 16; see NOTES.md).
const FIND_WITHIN: u64 = 100;

fn options(service: Service, bugs: &[Bug]) -> Options {
    Options {
        service,
        bugs: bugs.to_vec(),
    }
}

#[test]
fn every_seed_holds_every_invariant() {
    for service in [Service::Echo, Service::Chat] {
        let o = options(service, &[]);
        let mut lines = 0;
        for seed in 0..SEEDS {
            let out = run(seed, &o);
            assert!(
                out.passed(),
                "seed {seed} ({}): {}\n{:#?}\nreplay: {}",
                service.name(),
                out.setting,
                out.violations,
                replay_command(seed, &o)
            );
            lines += out.lines;
        }
        // The runs did work: clients were answered, not all refused.
        assert!(lines > SEEDS * 5, "{} lines over {SEEDS} seeds", lines);
    }
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for service in [Service::Echo, Service::Chat] {
        let o = options(service, &[]);
        for seed in [1, 7, 42, 1000, 123_456_789] {
            let a = run(seed, &o);
            let b = run(seed, &o);
            assert!(a.trace.len() > 1000, "seed {seed}: a short trace");
            assert!(
                a.trace == b.trace,
                "seed {seed} ({}): traces differ",
                service.name()
            );
            assert_eq!(
                (a.turns, a.lines, &a.violations, &a.setting),
                (b.turns, b.lines, &b.violations, &b.setting)
            );
        }
        // Another seed is another run.
        assert!(run(2, &o).trace != run(3, &o).trace);
    }
}

#[test]
fn each_planted_bug_is_found_and_its_seed_replays() {
    let cases = [
        (Bug::CreditOverrun, Service::Echo, "without credit"),
        (Bug::CreditOverrun, Service::Chat, "without credit"),
        (Bug::LostFin, Service::Echo, "stuck"),
        (Bug::LostFin, Service::Chat, "stuck"),
        (Bug::DoubleMonitor, Service::Echo, "second monitor notice"),
        (Bug::DoubleMonitor, Service::Chat, "second monitor notice"),
    ];
    for (bug, service, symptom) in cases {
        let planted = options(service, &[bug]);
        let found = (0..FIND_WITHIN)
            .map(|seed| run(seed, &planted))
            .find(|o| !o.passed())
            .unwrap_or_else(|| {
                panic!(
                    "{} in {} not found in {FIND_WITHIN} seeds",
                    bug.name(),
                    service.name()
                )
            });
        assert!(
            found.violations.iter().any(|v| v.contains(symptom)),
            "{} in {}: {:?}",
            bug.name(),
            service.name(),
            found.violations
        );
        // The seed replays the failure exactly ...
        let again = run(found.seed, &planted);
        assert_eq!(again.violations, found.violations);
        assert!(again.trace == found.trace);
        // ... and without the bug the same seed passes.
        let clean = run(found.seed, &options(service, &[]));
        assert!(clean.passed(), "{:?}", clean.violations);
    }
}
