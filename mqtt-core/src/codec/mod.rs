//! The MQTT 3.1.1 and 5.0 codec.
//!
//! PLACEHOLDER API (being implemented on the `codec` branch): the signatures below are the
//! contract the rest of the crate is written against.

use bytes::BytesMut;

use crate::{Packet, ProtocolVersion, ReasonCode};

/// Why bytes from a peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet is malformed.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

impl From<&DecodeError> for ReasonCode {
    fn from(_: &DecodeError) -> Self {
        ReasonCode::MALFORMED_PACKET
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet is larger than the protocol allows.
    #[error("packet too large")]
    TooLarge,
}

/// Stateful decoder for one connection's inbound byte stream.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A decoder for a server connection: the first packet must be CONNECT, whose protocol
    /// level fixes the version for every later packet.
    pub fn new(max_packet_size: u32) -> Self {
        Self { version: None, max_packet_size }
    }

    /// A decoder whose version is already known (the client side of a connection).
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self { version: Some(version), max_packet_size }
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Decodes one packet from the front of `buf`; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, _buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let _ = self.max_packet_size;
        Err(DecodeError::Malformed("codec not implemented yet"))
    }
}

/// Appends the wire form of `packet` in `version` to `buf`.
pub fn encode(_packet: &Packet, _version: ProtocolVersion, _buf: &mut BytesMut) -> Result<(), EncodeError> {
    Err(EncodeError::TooLarge)
}

/// The number of bytes `encode` would write for `packet`, fixed header included.
pub fn encoded_len(_packet: &Packet, _version: ProtocolVersion) -> usize {
    0
}
