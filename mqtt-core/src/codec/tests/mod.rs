//! Codec tests: golden bytes from the specs, every decode error, and property-based round trips.

mod errors;
mod golden;
mod roundtrip;

use bytes::BytesMut;

use super::{DecodeError, Decoder, encode, encoded_len};
use crate::{Packet, ProtocolVersion};

/// Concatenates byte pieces, so golden packets read like the spec's tables.
fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

/// Decodes exactly one packet from `bytes` with a decoder for `version` (`None`: server side,
/// before CONNECT), asserting that it consumed every byte when it succeeds.
fn decode_one(version: Option<ProtocolVersion>, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut decoder = match version {
        Some(v) => Decoder::with_version(v, u32::MAX),
        None => Decoder::new(u32::MAX),
    };
    let mut buf = BytesMut::from(bytes);
    let packet = decoder.decode(&mut buf)?.expect("a whole packet");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(packet)
}

/// Asserts that `bytes` decodes to `packet` and that `packet` encodes to `bytes`.
#[track_caller]
fn golden(version: ProtocolVersion, bytes: &[u8], packet: &Packet) {
    let decoder_version = match packet {
        // CONNECT is decoded as a server does: the version comes from the packet.
        Packet::Connect(_) => None,
        _ => Some(version),
    };
    assert_eq!(
        &decode_one(decoder_version, bytes).expect("decodes"),
        packet
    );
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).expect("encodes");
    assert_eq!(&buf[..], bytes, "encoded bytes differ");
    assert_eq!(encoded_len(packet, version), bytes.len());
}
