//! libFuzzer target: `cargo +nightly fuzz run framer`. The property is in
//! `src/lib.rs` (`check_framer`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| credit_actors_fuzz::check_framer(data));
