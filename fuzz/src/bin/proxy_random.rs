//! The PROXY parser's properties on random inputs, for toolchains without
//! libFuzzer (stable): mutations of the regression corpus (byte flips,
//! cuts, insertions, splices of signature pieces).
//!
//! ```text
//! cargo run --release --no-default-features --bin proxy_random -- --secs 60 [--seed N]
//! ```
//!
//! A failing input is written to `artifacts/proxy_random/crash-<seed>-<n>`;
//! copy it into `regressions/proxy` once fixed, so that `cargo test` keeps it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use credit_actors::net::proxy::{check_properties, V2_SIGNATURE};
use credit_actors_fuzz::Rng;

const PIECES: &[&[u8]] = &[
    b"PROXY ",
    b"TCP4 ",
    b"TCP6 ",
    b"UNKNOWN",
    b"\r\n",
    b" ",
    b"65535",
    b"0",
    b"::1",
    b"127.0.0.1",
    b"\x21\x11",
    b"\x20\x00",
    b"\x00\x0c",
    b"\xff\xff",
    b"\x21\x21\x00\x24",
];

fn mutate(rng: &mut Rng, mut input: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.truncate(rng.below(input.len() + 1)),
            2 => {
                let piece = PIECES[rng.below(PIECES.len())];
                let at = rng.below(input.len() + 1);
                input.splice(at..at, piece.iter().copied());
            }
            3 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            _ => {
                let at = rng.below(input.len() + 1);
                input.splice(at..at, V2_SIGNATURE[..rng.below(13)].iter().copied());
            }
        }
    }
    input
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let secs = value("--secs").unwrap_or(10);
    let seed = value("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let corpus_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/regressions/proxy");
    let corpus: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir)
        .map(|d| {
            d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(!corpus.is_empty(), "no corpus in {corpus_dir}");
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut failures) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let seed_input = corpus[rng.below(corpus.len())].clone();
            let input = mutate(&mut rng, seed_input);
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| check_properties(&input))).is_err() {
                failures += 1;
                let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts/proxy_random");
                let _ = std::fs::create_dir_all(dir);
                let path = format!("{dir}/crash-{seed}-{runs}");
                let _ = std::fs::write(&path, &input);
                eprintln!("property failed; input written to {path}");
            }
        }
    }
    println!("proxy_random: seed {seed}, {runs} inputs, {failures} failures");
    if failures > 0 {
        std::process::exit(1);
    }
}
