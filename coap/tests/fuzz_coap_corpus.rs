//! Replays the seed corpus of the `coap` fuzz target (`fuzz/corpus/coap/`) through the same
//! code the fuzzer runs (`tributary_coap::fuzzing::run`): no panic, no broken invariant, and
//! the corpus still reaches requests and answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Instant;

#[test]
fn coap_corpus_replays_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/coap");
    let mut files = 0;
    let mut requests = 0;
    let mut transmits = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let report = tributary_coap::fuzzing::run(Instant::now(), &data);
        files += 1;
        requests += report.requests;
        transmits += report.transmits;
    }
    assert!(files >= 5, "the corpus is there");
    assert!(
        requests > 0 && transmits > 0,
        "the corpus reaches the exchange"
    );
}

/// A few thousand pseudo-random scripts on stable Rust, for machines without cargo-fuzz.
#[test]
fn random_scripts_keep_the_invariants() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = Instant::now();
    for _ in 0..3000 {
        let len = (next() % 512) as usize;
        let data: Vec<u8> = (0..len).map(|_| (next() >> 24) as u8).collect();
        let _ = tributary_coap::fuzzing::run(start, &data);
    }
}
