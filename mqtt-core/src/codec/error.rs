//! [`DecodeError`], [`EncodeError`], and the one mapping from decode errors to the wire.

use crate::ReasonCode;

/// Why bytes from a peer could not be decoded.
///
/// Every variant ends the connection. [`ReasonCode::from`] says which reason code a v5 peer is
/// told (in CONNACK before the session starts, in DISCONNECT after); a 3.1.1 peer is simply
/// disconnected, except for the CONNACK return code 1 that [`Self::UnsupportedProtocolVersion`]
/// and [`Self::InvalidProtocolName`] allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The remaining length does not end within 4 bytes (spec 1.5.5 / 2.2.3).
    #[error("malformed remaining length: more than 4 bytes")]
    MalformedRemainingLength,
    /// A variable byte integer inside the packet (a property length or a Subscription
    /// Identifier) does not end within 4 bytes.
    #[error("malformed variable byte integer")]
    MalformedVarInt,
    /// The whole packet (fixed header included) is larger than the configured maximum. Returned
    /// as soon as the fixed header is complete, before any of the body is waited for.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Total size the fixed header announces, fixed header included.
        size: u32,
        /// The decoder's maximum packet size.
        max: u32,
    },
    /// The first packet on a connection is not CONNECT. Returned from the first byte.
    #[error("first packet is not CONNECT (packet type {0})")]
    FirstPacketNotConnect(u8),
    /// CONNECT carries a known protocol name with a level this codec does not speak.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// Packet type 0, or AUTH (15) in MQTT 3.1/3.1.1.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The fixed header's flag bits are not the ones the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidFlags {
        /// The packet type (upper nibble of the first byte).
        packet_type: u8,
        /// The flags (lower nibble of the first byte).
        flags: u8,
    },
    /// A PUBLISH with QoS 0 has its DUP flag set (spec 3.3.1.1).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    /// A QoS of 3 (PUBLISH, Will QoS, or a subscription's maximum QoS).
    #[error("invalid QoS {0}")]
    InvalidQoS(u8),
    /// CONNECT flags are inconsistent: the reserved bit is set, Will QoS or Will Retain is set
    /// without the Will flag, or (3.1.1) a password is present without a user name.
    #[error("invalid CONNECT flags {0:#010b}")]
    InvalidConnectFlags(u8),
    /// CONNACK's acknowledge flags have a reserved bit set.
    #[error("invalid CONNACK flags {0:#010b}")]
    InvalidConnAckFlags(u8),
    /// A string is not valid UTF-8 or contains U+0000 (spec 1.5.4).
    #[error("invalid UTF-8 string")]
    InvalidUtf8,
    /// A packet identifier of 0 where one is required (spec 2.2.1).
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// A reason or return code that is not valid in this packet (3.1.1 CONNACK and SUBACK).
    #[error("invalid reason code {0:#04x}")]
    InvalidReasonCode(u8),
    /// A property that may appear once appears twice.
    #[error("duplicate property {0:#04x}")]
    DuplicateProperty(u8),
    /// A known property in a packet that does not allow it.
    #[error("property {0:#04x} not allowed in this packet")]
    PropertyNotAllowed(u8),
    /// A property identifier the specification does not define.
    #[error("unknown property {0:#04x}")]
    UnknownProperty(u8),
    /// A property value outside its allowed range: a boolean other than 0 or 1, Maximum QoS
    /// other than 0 or 1, Receive Maximum, Maximum Packet Size or Subscription Identifier of 0.
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// CONNECT carries Authentication Data without an Authentication Method (spec 3.1.2.11.10).
    #[error("authentication data without authentication method")]
    AuthDataWithoutMethod,
    /// More user properties in one packet than the decoder allows.
    #[error("more than {0} user properties")]
    TooManyUserProperties(u32),
    /// A field runs past the end of the packet (including a property length beyond it).
    #[error("packet truncated: a field runs past its end")]
    Truncated,
    /// Bytes are left over after the last field of a packet of fixed shape.
    #[error("trailing bytes after the last field")]
    TrailingBytes,
    /// Subscription options with reserved bits set (spec 3.8.3.1).
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// Retain Handling of 3 (spec 3.8.3.1).
    #[error("invalid retain handling 3")]
    InvalidRetainHandling,
    /// SUBSCRIBE with no topic filter.
    #[error("SUBSCRIBE with no topic filter")]
    EmptySubscription,
    /// UNSUBSCRIBE with no topic filter.
    #[error("UNSUBSCRIBE with no topic filter")]
    EmptyUnsubscription,
    /// SUBACK, or v5 UNSUBACK, with no reason code (one is due per filter).
    #[error("acknowledgement without reason codes")]
    NoReasonCodes,
}

impl From<&DecodeError> for ReasonCode {
    /// The v5 reason code for a decode error, following the spec's wording: what it calls a
    /// Malformed Packet is `0x81`, what it calls a Protocol Error is `0x82`.
    fn from(error: &DecodeError) -> Self {
        use DecodeError as E;
        match error {
            E::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            // An unrecognised name is answered like an unsupported level: the peer learns that
            // we do not speak its protocol, which is all CONNACK can say (3.1.1 return code 1).
            E::UnsupportedProtocolVersion(_) | E::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            // A limit of ours, not a violation of the spec: "an implementation or administrative
            // imposed limit has been exceeded".
            E::TooManyUserProperties(_) => ReasonCode::QUOTA_EXCEEDED,
            // The spec words these as "It is a Protocol Error to ...".
            E::FirstPacketNotConnect(_)
            | E::DuplicateProperty(_)
            | E::InvalidPropertyValue(_)
            | E::AuthDataWithoutMethod
            | E::InvalidRetainHandling
            | E::EmptySubscription
            | E::EmptyUnsubscription
            | E::NoReasonCodes => ReasonCode::PROTOCOL_ERROR,
            // Spec 2.2.2.2: an identifier not valid for its packet type, or a value not of the
            // specified type, is a Malformed Packet; so are bad lengths, flags, QoS and UTF-8.
            E::MalformedRemainingLength
            | E::MalformedVarInt
            | E::InvalidPacketType(_)
            | E::InvalidFlags { .. }
            | E::DupOnQoS0
            | E::InvalidQoS(_)
            | E::InvalidConnectFlags(_)
            | E::InvalidConnAckFlags(_)
            | E::InvalidUtf8
            | E::ZeroPacketId
            | E::InvalidReasonCode(_)
            | E::PropertyNotAllowed(_)
            | E::UnknownProperty(_)
            | E::Truncated
            | E::TrailingBytes
            | E::InvalidSubscriptionOptions(_) => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet could not be encoded. Nothing is appended to the buffer when encoding fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The remaining length would exceed 268,435,455 bytes, the protocol maximum.
    #[error("packet too large")]
    TooLarge,
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes is longer than 65535")]
    FieldTooLong(usize),
    /// A property value the spec forbids: a Subscription Identifier outside 1..=268,435,455, a
    /// Receive Maximum or Maximum Packet Size of 0. Carries the property identifier.
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A PUBLISH whose packet id does not match its QoS (`Some` exactly when QoS > 0), or a QoS 0
    /// PUBLISH with DUP set.
    #[error("PUBLISH packet id or DUP flag inconsistent with its QoS")]
    InconsistentPublish,
    /// A SUBSCRIBE, UNSUBSCRIBE or SUBACK with an empty list, which the peer would reject.
    #[error("empty list of filters or reason codes")]
    EmptyList,
    /// A CONNECT whose `protocol` differs from the version asked to encode it in.
    #[error("CONNECT protocol differs from the encoding version")]
    VersionMismatch,
    /// A 3.1.1 CONNECT with a password but no user name (spec 3.1.2-22).
    #[error("password without user name in MQTT 3.1.1")]
    PasswordWithoutUsername,
    /// A packet the version does not have (AUTH in 3.1.1).
    #[error("{0} does not exist in this protocol version")]
    NotInVersion(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_the_spec_wording() {
        let rc = |e: DecodeError| ReasonCode::from(&e);
        assert_eq!(
            rc(DecodeError::MalformedRemainingLength),
            ReasonCode::MALFORMED_PACKET
        );
        assert_eq!(
            rc(DecodeError::PropertyNotAllowed(0x23)),
            ReasonCode::MALFORMED_PACKET
        );
        assert_eq!(
            rc(DecodeError::DuplicateProperty(0x11)),
            ReasonCode::PROTOCOL_ERROR
        );
        assert_eq!(
            rc(DecodeError::EmptySubscription),
            ReasonCode::PROTOCOL_ERROR
        );
        assert_eq!(
            rc(DecodeError::UnsupportedProtocolVersion(6)),
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
        );
        assert_eq!(
            rc(DecodeError::PacketTooLarge { size: 10, max: 5 }),
            ReasonCode::PACKET_TOO_LARGE
        );
        assert_eq!(
            rc(DecodeError::TooManyUserProperties(128)),
            ReasonCode::QUOTA_EXCEEDED
        );
    }
}
