//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/decode/`) through the decoder in an
//! ordinary `cargo test`, with the fuzz target's checks (RELIABILITY.md test 14): no panic, and
//! every accepted packet encodes again and decodes to itself.

use std::{fs, path::Path};

use bytes::BytesMut;
use tributary_mqtt_core::{
    Packet, ProtocolVersion,
    codec::{Decoder, encode},
};

/// Same loop as `fuzz/fuzz_targets/decode.rs`; returns how many packets were decoded.
fn drain(mut decoder: Decoder, data: &[u8]) -> usize {
    let mut buf = BytesMut::from(data);
    let mut decoded = 0;
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        decoded += 1;
        let version = match &packet {
            Packet::Connect(connect) => connect.protocol,
            _ => decoder.version().unwrap_or_default(),
        };
        let mut again = BytesMut::new();
        assert_eq!(
            encode(&packet, version, &mut again),
            Ok(()),
            "{packet:?} does not encode"
        );
        let mut fresh = Decoder::with_version(version, u32::MAX);
        assert_eq!(fresh.decode(&mut again), Ok(Some(packet)));
    }
    decoded
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode");
    let mut files = 0;
    let mut decoded = 0;
    for entry in fs::read_dir(&dir).expect("fuzz/corpus/decode exists") {
        let path = entry.expect("readable entry").path();
        let data = fs::read(&path).expect("readable corpus file");
        decoded += drain(Decoder::new(1 << 20), &data);
        decoded += drain(Decoder::with_version(ProtocolVersion::V311, 1 << 20), &data);
        decoded += drain(Decoder::with_version(ProtocolVersion::V5, 1 << 20), &data);
        files += 1;
    }
    // Guards against a moved or emptied corpus passing vacuously.
    assert!(
        files >= 12,
        "only {files} corpus files in {}",
        dir.display()
    );
    assert!(
        decoded >= 20,
        "only {decoded} packets decoded from the corpus"
    );
}
