//! The CoAP datagram path (RELIABILITY.md test 14): the coap-lite decoder plus our exchange
//! layer, fed a script of datagrams, timeouts, answers, notifications and requests of our own
//! (`tributary_coap::fuzzing` explains the script). It must never panic, keep its duplicate
//! cache bounded, and only send datagrams that decode.
//!
//! Run with `cargo fuzz run coap` from `fuzz/`; the seed corpus is `corpus/coap/`, and
//! `coap/tests/fuzz_coap_corpus.rs` replays it in `cargo test`.

#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The origin of simulated time; nothing depends on its value.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let _ = tributary_coap::fuzzing::run(start, data);
});
