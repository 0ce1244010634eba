//! Replays the seed corpus of the `lwm2m_decode` fuzz target (`fuzz/corpus/lwm2m_decode/`)
//! through the same checks in an ordinary `cargo test`: no panic, and TLV round-trips.

use std::{fs, path::Path};

use tributary_lwm2m::fuzzing::decode_all;

#[test]
fn lwm2m_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/lwm2m_decode");
    let mut files = 0;
    let mut accepted = 0;
    for entry in fs::read_dir(&dir).expect("fuzz/corpus/lwm2m_decode exists") {
        let data = fs::read(entry.expect("readable entry").path()).expect("readable file");
        accepted += decode_all(&data);
        files += 1;
    }
    // Guards against a moved or emptied corpus passing vacuously.
    assert!(files >= 8, "only {files} corpus files in {}", dir.display());
    assert!(
        accepted >= 8,
        "only {accepted} decodes accepted from the corpus"
    );
}
