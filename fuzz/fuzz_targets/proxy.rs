//! libFuzzer target: `cargo +nightly fuzz run proxy fuzz/regressions/proxy`.
//! The properties are the parser's own
//! (`credit_actors::net::proxy::check_properties`), which `cargo test`
//! also checks on the regression corpus in `regressions/proxy`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| credit_actors::net::proxy::check_properties(data));
