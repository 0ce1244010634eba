//! The MQTT decoder (RELIABILITY.md test 14): arbitrary bytes through a server-side decoder
//! (version read from CONNECT) and through client-side ones for 3.1.1 and 5.0.
//!
//! Beyond "never panics", every packet the decoder accepts must encode again and decode to the
//! same packet: the codec never accepts what it could not itself produce.
//!
//! Run with `cargo fuzz run decode` from `fuzz/`; the seed corpus is `corpus/decode/`, and
//! `mqtt-core/tests/fuzz_corpus.rs` replays it in `cargo test`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tributary_mqtt_core::{
    Packet, ProtocolVersion,
    codec::{Decoder, encode},
};

fn drain(mut decoder: Decoder, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        let version = match &packet {
            Packet::Connect(connect) => connect.protocol,
            _ => decoder.version().unwrap_or_default(),
        };
        let mut again = BytesMut::new();
        if let Err(error) = encode(&packet, version, &mut again) {
            panic!("decoded {packet:?} does not encode: {error}");
        }
        let mut fresh = Decoder::with_version(version, u32::MAX);
        assert_eq!(fresh.decode(&mut again), Ok(Some(packet)));
    }
}

fuzz_target!(|data: &[u8]| {
    drain(Decoder::new(1 << 20), data);
    drain(Decoder::with_version(ProtocolVersion::V311, 1 << 20), data);
    drain(Decoder::with_version(ProtocolVersion::V5, 1 << 20), data);
});
