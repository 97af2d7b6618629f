//! The framer property on random structured inputs, for toolchains without
//! libFuzzer (stable). Not coverage-guided: inputs are biased towards
//! delimiters, delimiter prefixes, UTF-8 and invalid UTF-8 instead.
//!
//! ```text
//! cargo run --release --no-default-features --bin framer_random -- --secs 60 [--seed N]
//! cargo run --release --no-default-features --bin framer_random -- FILE...   # replay inputs
//! ```
//!
//! A failing input is written to `artifacts/framer_random/crash-<seed>-<n>`,
//! in the same format as the libFuzzer target's inputs, so either can
//! replay it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use credit_actors::net::framing::{Delimiter, Mode};
use credit_actors_fuzz::{check_framer, Case, Rng};

const ALPHABET: &[u8] = b"ab\r\n\xc3\xa9\xff";

fn random_case(rng: &mut Rng) -> Case {
    let delim: Vec<u8> = match rng.below(4) {
        0 => b"\n".to_vec(),
        1 => b"\r\n".to_vec(),
        2 => b"\r\n\r\n".to_vec(),
        _ => (0..1 + rng.below(4)).map(|_| *rng.pick(ALPHABET)).collect(),
    };
    let d = Delimiter::new(delim.clone()).unwrap();
    let mode = match rng.below(3) {
        0 => Mode::Raw,
        1 => Mode::Text(d),
        _ => Mode::Binary(d),
    };
    let max_unit = if rng.below(2) == 0 {
        1 + rng.below(16)
    } else {
        1 + rng.below(1024)
    };
    let sizes = (0..1 + rng.below(16)).map(|_| 1 + rng.below(255)).collect();
    let mut stream = Vec::new();
    for _ in 0..rng.below(60) {
        match rng.below(10) {
            0..=2 => stream.extend_from_slice(&delim),
            3 => stream.extend_from_slice(&delim[..1 + rng.below(delim.len())]),
            4..=7 => {
                for _ in 0..rng.below(12) {
                    stream.push(*rng.pick(ALPHABET));
                }
            }
            8 => stream.extend(std::iter::repeat(b'x').take(rng.below(2 * max_unit + 2))),
            _ => stream.extend_from_slice("héllo wörld ✓".as_bytes()),
        }
    }
    Case {
        mode,
        max_unit,
        sizes,
        eof_on_last: rng.below(2) == 0,
        stream,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut secs = 10.0f64;
    let mut seed = 0x5eed_u64;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = it.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--seed" => seed = it.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            _ => files.push(a.clone()),
        }
    }
    if !files.is_empty() {
        for f in &files {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            check_framer(&data);
            println!("{f}: ok");
        }
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut execs, mut bytes) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let data = random_case(&mut rng).encode();
            execs += 1;
            bytes += data.len() as u64;
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check_framer(&data))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let dir = "artifacts/framer_random";
                let _ = std::fs::create_dir_all(dir);
                let path = format!("{dir}/crash-{seed}-{execs}");
                let _ = std::fs::write(&path, &data);
                eprintln!("FAILED after {execs} inputs: {msg}\ninput saved to {path}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "framer_random: {execs} inputs ({} MB) in {secs} s, seed {seed}: no failure",
        bytes >> 20
    );
}
