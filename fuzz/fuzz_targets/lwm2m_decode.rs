//! The LwM2M payload decoders: arbitrary bytes through OMA-TLV (which must round-trip when it
//! decodes), SenML JSON, OMA JSON and CoRE link format.
//!
//! Run with `cargo fuzz run lwm2m_decode` from `fuzz/`; the seed corpus is
//! `corpus/lwm2m_decode/`, and `lwm2m/tests/fuzz_corpus.rs` replays it in `cargo test`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tributary_lwm2m::fuzzing::decode_all(data);
});
