//! One test per decode error (RELIABILITY.md tests 1, 3, 4, 6, 7, 8, 11, 13) and the encode
//! errors.

use bytes::{Bytes, BytesMut};

use super::{cat, decode_one};
use crate::{
    ByteStr, Packet, PacketId,
    ProtocolVersion::*,
    QoS, ReasonCode,
    codec::{DecodeError as E, Decoder, EncodeError, encode, encoded_len},
    packet::*,
};

#[track_caller]
fn err(version: Option<crate::ProtocolVersion>, bytes: &[u8]) -> E {
    decode_one(version, bytes).expect_err("must be rejected")
}

#[track_caller]
fn reason(e: &E) -> ReasonCode {
    ReasonCode::from(e)
}

/// A v5 CONNECT with client id `c` and the given property block (shorter than 128 bytes).
fn connect_v5_with(props: &[u8]) -> Vec<u8> {
    let remaining = 10 + 1 + props.len() + 3;
    cat(&[
        &[0x10, remaining as u8, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x02, 0x00, 0x00, props.len() as u8],
        props,
        &[0x00, 0x01, b'c'],
    ])
}

/// A 3.1.1 CONNECT with the given flags and payload after the client id `c`.
fn connect_v311_with(flags: u8, rest: &[u8]) -> Vec<u8> {
    let remaining = 10 + 3 + rest.len();
    cat(&[
        &[0x10, remaining as u8, 0x00, 0x04],
        b"MQTT",
        &[0x04, flags, 0x00, 0x00, 0x00, 0x01, b'c'],
        rest,
    ])
}

/// A v5 QoS 1 PUBLISH to `t`, packet id 1, with the given property block.
fn publish_v5_with(props: &[u8]) -> Vec<u8> {
    let remaining = 3 + 2 + 1 + props.len();
    cat(&[
        &[
            0x32,
            remaining as u8,
            0x00,
            0x01,
            b't',
            0x00,
            0x01,
            props.len() as u8,
        ],
        props,
    ])
}

// --- Fixed header (RELIABILITY.md 1, 3, 4, 7) ---------------------------------------------

#[test]
fn five_byte_remaining_length_is_malformed() {
    for version in [Some(V311), Some(V5)] {
        let mut decoder = match version {
            Some(v) => Decoder::with_version(v, u32::MAX),
            None => Decoder::new(u32::MAX),
        };
        // The 4th length byte still has its continuation bit: rejected without a 5th byte.
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert_eq!(decoder.decode(&mut buf), Err(E::MalformedRemainingLength));
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01][..]);
        assert_eq!(decoder.decode(&mut buf), Err(E::MalformedRemainingLength));
    }
    let mut buf = BytesMut::from(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let e = Decoder::new(u32::MAX).decode(&mut buf).unwrap_err();
    assert_eq!(e, E::MalformedRemainingLength);
    assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn four_byte_remaining_length_is_the_maximum() {
    // 268,435,455 = 0xFF 0xFF 0xFF 0x7F: valid, so we wait for the body.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let mut decoder = Decoder::with_version(V5, u32::MAX);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 5);
}

#[test]
fn huge_claimed_length_is_too_large_from_the_header_alone() {
    // Only the fixed header is present; the answer must not wait for 256 MB.
    let mut buf = BytesMut::from(&[0x10, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let e = Decoder::new(1024).decode(&mut buf).unwrap_err();
    assert_eq!(
        e,
        E::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        }
    );
    assert_eq!(reason(&e), ReasonCode::PACKET_TOO_LARGE);

    let mut decoder = Decoder::with_version(V5, 1024);
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x08][..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(E::PacketTooLarge {
            size: 1027,
            max: 1024
        })
    );
    // The limit counts the fixed header: 3 + 1022 = 1025 bytes is one too many.
    decoder.set_max_packet_size(1024);
    let mut buf = BytesMut::from(&[0x30, 0xFE, 0x07][..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(E::PacketTooLarge {
            size: 1025,
            max: 1024
        })
    );
    let mut buf = BytesMut::from(&[0x30, 0x7F][..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn first_packet_must_be_connect_from_its_first_byte() {
    for first in [0x30, 0x82, 0xC0, 0x20, 0xE0, 0xF0, 0x00] {
        let mut buf = BytesMut::from(&[first][..]);
        let e = Decoder::new(1024).decode(&mut buf).unwrap_err();
        assert_eq!(e, E::FirstPacketNotConnect(first >> 4));
        assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
    }
    // A huge claimed length changes nothing.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        Decoder::new(u32::MAX).decode(&mut buf),
        Err(E::FirstPacketNotConnect(3))
    );
}

#[test]
fn reserved_fixed_header_flags() {
    for (version, first) in [
        (V311, 0x41),
        (V5, 0x41),
        (V311, 0x60),
        (V5, 0x63),
        (V311, 0x80),
        (V5, 0xA0),
        (V311, 0xC1),
        (V5, 0xE8),
        (V5, 0x21),
        (V5, 0xF1),
    ] {
        let e = err(Some(version), &[first, 0x00]);
        assert_eq!(
            e,
            E::InvalidFlags {
                packet_type: first >> 4,
                flags: first & 0x0F
            }
        );
        assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    }
    let connect = cat(&[
        &[0x11, 0x0D, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0x02, 0, 0, 0, 1, b'c'],
    ]);
    assert_eq!(
        err(None, &connect),
        E::InvalidFlags {
            packet_type: 1,
            flags: 1
        }
    );
}

#[test]
fn publish_qos_3_and_dup_on_qos_0() {
    for version in [V311, V5] {
        assert_eq!(err(Some(version), &[0x36, 0x00]), E::InvalidQoS(3));
        assert_eq!(
            err(Some(version), &[0x38, 0x03, 0x00, 0x01, b't']),
            E::DupOnQoS0
        );
    }
    assert_eq!(reason(&E::InvalidQoS(3)), ReasonCode::MALFORMED_PACKET);
}

#[test]
fn invalid_packet_types() {
    assert_eq!(err(Some(V5), &[0x00, 0x00]), E::InvalidPacketType(0));
    // AUTH does not exist before v5.
    assert_eq!(err(Some(V311), &[0xF0, 0x00]), E::InvalidPacketType(15));
    assert_eq!(err(Some(V31), &[0xF0, 0x00]), E::InvalidPacketType(15));
}

// --- CONNECT (RELIABILITY.md 7, 8) ---------------------------------------------------------

#[test]
fn connect_protocol_name_and_level() {
    let bad_name = cat(&[
        &[0x10, 0x0D, 0x00, 0x04],
        b"MQTX",
        &[0x04, 0x02, 0, 0, 0, 1, b'c'],
    ]);
    let e = err(None, &bad_name);
    assert_eq!(e, E::InvalidProtocolName);
    assert_eq!(reason(&e), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);

    for (name, level) in [(&b"MQTT"[..], 6), (b"MQTT", 3), (b"MQIsdp", 4)] {
        let bytes = cat(&[
            &[0x10, 9 + name.len() as u8, 0x00, name.len() as u8],
            name,
            &[level, 0x02, 0, 0, 0, 1, b'c'],
        ]);
        let e = err(None, &bytes);
        assert_eq!(e, E::UnsupportedProtocolVersion(level));
        assert_eq!(reason(&e), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
    }
}

#[test]
fn connect_flags() {
    // Reserved bit.
    assert_eq!(
        err(None, &connect_v311_with(0x03, &[])),
        E::InvalidConnectFlags(0x03)
    );
    // Will QoS or Will Retain without the Will flag.
    assert_eq!(
        err(None, &connect_v311_with(0x0A, &[])),
        E::InvalidConnectFlags(0x0A)
    );
    assert_eq!(
        err(None, &connect_v311_with(0x22, &[])),
        E::InvalidConnectFlags(0x22)
    );
    // Will QoS 3.
    let will = [0x00, 0x01, b'w', 0x00, 0x00];
    assert_eq!(err(None, &connect_v311_with(0x1E, &will)), E::InvalidQoS(3));
    // Password without user name (3.1.1 only).
    let password = [0x00, 0x01, b'p'];
    let e = err(None, &connect_v311_with(0x42, &password));
    assert_eq!(e, E::InvalidConnectFlags(0x42));
    assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    // Missing fields the flags announce.
    assert_eq!(err(None, &connect_v311_with(0x82, &[])), E::Truncated);
    // Extra bytes after the last announced field.
    assert_eq!(
        err(None, &connect_v311_with(0x02, &[0x00])),
        E::TrailingBytes
    );
}

#[test]
fn strings_must_be_valid_utf8_without_nul() {
    for bad in [
        &[0xFF][..],
        &[0x00],
        &[b'a', 0x00],
        &[0xED, 0xA0, 0x80],
        &[0xC0, 0x80],
    ] {
        let bytes = cat(&[
            &[0x10, 12 + bad.len() as u8, 0x00, 0x04],
            b"MQTT",
            &[0x04, 0x02, 0x00, 0x00, 0x00, bad.len() as u8],
            bad,
        ]);
        let e = err(None, &bytes);
        assert_eq!(e, E::InvalidUtf8, "{bad:02X?}");
        assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    }
    // In a topic, and in a v5 property.
    assert_eq!(
        err(Some(V311), &[0x30, 0x03, 0x00, 0x01, 0xFE]),
        E::InvalidUtf8
    );
    let content_type = publish_v5_with(&[0x03, 0x00, 0x01, 0x00]);
    assert_eq!(err(Some(V5), &content_type), E::InvalidUtf8);
}

#[test]
fn fields_past_the_end_are_truncated() {
    // A topic length beyond the packet.
    assert_eq!(
        err(Some(V311), &[0x30, 0x03, 0x00, 0x05, b'a']),
        E::Truncated
    );
    // A packet id cut short.
    assert_eq!(err(Some(V311), &[0x40, 0x01, 0x00]), E::Truncated);
    // 3.1.1 PUBACK with a byte too many.
    assert_eq!(
        err(Some(V311), &[0x40, 0x03, 0x00, 0x01, 0x00]),
        E::TrailingBytes
    );
    assert_eq!(err(Some(V5), &[0xC0, 0x01, 0x00]), E::TrailingBytes);
    assert_eq!(err(Some(V311), &[0xE0, 0x01, 0x00]), E::TrailingBytes);
    assert_eq!(reason(&E::Truncated), ReasonCode::MALFORMED_PACKET);
}

// --- v5 properties (RELIABILITY.md 11) -----------------------------------------------------

#[test]
fn duplicate_property() {
    let twice = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    let e = err(None, &connect_v5_with(&twice));
    assert_eq!(e, E::DuplicateProperty(0x11));
    assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);

    // Subscription Identifier may repeat in PUBLISH, not in SUBSCRIBE.
    let Packet::Publish(p) = decode_one(Some(V5), &publish_v5_with(&[0x0B, 1, 0x0B, 2])).unwrap()
    else {
        panic!("not PUBLISH")
    };
    assert_eq!(p.properties.subscription_identifiers, [1, 2]);
    let subscribe = [
        0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, b't', 0x00,
    ];
    assert_eq!(err(Some(V5), &subscribe), E::DuplicateProperty(0x0B));
}

#[test]
fn property_not_allowed_in_packet() {
    // Topic Alias in CONNECT, Reason String in PUBLISH, Will Delay in CONNECT.
    for (bytes, id) in [
        (connect_v5_with(&[0x23, 0x00, 0x01]), 0x23),
        (connect_v5_with(&[0x18, 0, 0, 0, 1]), 0x18),
    ] {
        let e = err(None, &bytes);
        assert_eq!(e, E::PropertyNotAllowed(id));
        assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    }
    let reason_string = publish_v5_with(&[0x1F, 0x00, 0x01, b'x']);
    assert_eq!(err(Some(V5), &reason_string), E::PropertyNotAllowed(0x1F));
    // Session Expiry Interval in a Will.
    let will = cat(&[
        &[0x10, 0x19, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, b'c'],
        &[0x05, 0x11, 0, 0, 0, 1],
        &[0x00, 0x01, b'w', 0x00, 0x00],
    ]);
    assert_eq!(err(None, &will), E::PropertyNotAllowed(0x11));
}

#[test]
fn unknown_property() {
    for id in [0x00, 0x04, 0x2B, 0x7F, 0x80] {
        let e = err(None, &connect_v5_with(&[id, 0x00]));
        assert_eq!(e, E::UnknownProperty(id));
        assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn property_length_beyond_the_packet() {
    let mut bytes = connect_v5_with(&[0x11, 0, 0, 0, 1]);
    bytes[12] = 0x40; // Property Length 64, packet far shorter.
    assert_eq!(err(None, &bytes), E::Truncated);
    // A property value running past its block, though not past the packet.
    let bytes = cat(&[
        &[0x10, 0x12, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x02, 0, 0, 0x02, 0x11, 0x00],
        &[0, 0, 0, 1, b'c'],
    ]);
    assert_eq!(err(None, &bytes), E::Truncated);
}

#[test]
fn property_values_out_of_range() {
    for (props, id) in [
        (&[0x17, 0x02][..], 0x17),   // Request Problem Information: boolean.
        (&[0x19, 0xFF], 0x19),       // Request Response Information: boolean.
        (&[0x21, 0x00, 0x00], 0x21), // Receive Maximum 0.
        (&[0x27, 0, 0, 0, 0], 0x27), // Maximum Packet Size 0.
    ] {
        let e = err(None, &connect_v5_with(props));
        assert_eq!(e, E::InvalidPropertyValue(id));
        assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
    }
    assert_eq!(
        err(Some(V5), &publish_v5_with(&[0x01, 0x02])),
        E::InvalidPropertyValue(0x01)
    );
    assert_eq!(
        err(Some(V5), &publish_v5_with(&[0x0B, 0x00])),
        E::InvalidPropertyValue(0x0B)
    );
    assert_eq!(
        err(Some(V5), &publish_v5_with(&[0x0B, 0x80, 0x80, 0x80, 0x80])),
        E::MalformedVarInt
    );
    // Maximum QoS is 0 or 1 on the wire.
    let connack = [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02];
    assert_eq!(err(Some(V5), &connack), E::InvalidPropertyValue(0x24));
    // Authentication Data needs an Authentication Method.
    let e = err(None, &connect_v5_with(&[0x16, 0x00, 0x00]));
    assert_eq!(e, E::AuthDataWithoutMethod);
    assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn user_properties_are_capped() {
    let pair = [0x26, 0x00, 0x00, 0x00, 0x00];
    let props: Vec<u8> = pair.repeat(20);
    let bytes = publish_v5_with(&props);
    let mut decoder = Decoder::with_version(V5, u32::MAX);
    decoder.set_max_user_properties(20);
    assert!(
        decoder
            .decode(&mut BytesMut::from(&bytes[..]))
            .unwrap()
            .is_some()
    );
    decoder.set_max_user_properties(19);
    let e = decoder.decode(&mut BytesMut::from(&bytes[..])).unwrap_err();
    assert_eq!(e, E::TooManyUserProperties(19));
    assert_eq!(reason(&e), ReasonCode::QUOTA_EXCEEDED);

    // The cap is per packet: CONNECT and its Will share it.
    let bytes = cat(&[
        &[0x10, 0x1E, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x06, 0x00, 0x00, 0x05],
        &pair,
        &[0x00, 0x01, b'c', 0x05],
        &pair,
        &[0x00, 0x01, b'w', 0x00, 0x00],
    ]);
    let mut decoder = Decoder::new(u32::MAX);
    decoder.set_max_user_properties(1);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(&bytes[..])),
        Err(E::TooManyUserProperties(1))
    );
    let mut decoder = Decoder::new(u32::MAX);
    decoder.set_max_user_properties(2);
    assert!(
        decoder
            .decode(&mut BytesMut::from(&bytes[..]))
            .unwrap()
            .is_some()
    );
}

// --- Packet ids, SUBSCRIBE, acks (RELIABILITY.md 13, 26) -----------------------------------

#[test]
fn packet_id_zero() {
    for (version, bytes) in [
        (V311, &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00][..]),
        (V5, &[0x34, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00]),
        (V311, &[0x40, 0x02, 0x00, 0x00]),
        (V5, &[0x50, 0x02, 0x00, 0x00]),
        (V311, &[0x62, 0x02, 0x00, 0x00]),
        (V5, &[0x70, 0x02, 0x00, 0x00]),
        (V311, &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b't', 0x00]),
        (V311, &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b't']),
        (V311, &[0x90, 0x03, 0x00, 0x00, 0x00]),
        (V311, &[0xB0, 0x02, 0x00, 0x00]),
    ] {
        let e = err(Some(version), bytes);
        assert_eq!(e, E::ZeroPacketId, "{bytes:02X?}");
        assert_eq!(reason(&e), ReasonCode::MALFORMED_PACKET);
    }
}

#[test]
fn subscribe_errors() {
    let e = err(Some(V311), &[0x82, 0x02, 0x00, 0x01]);
    assert_eq!(e, E::EmptySubscription);
    assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
    assert_eq!(
        err(Some(V5), &[0x82, 0x03, 0x00, 0x01, 0x00]),
        E::EmptySubscription
    );

    let with_options = |v5: bool, options: u8| {
        let props: &[u8] = if v5 { &[0x00] } else { &[] };
        let remaining = 2 + props.len() + 4;
        cat(&[
            &[0x82, remaining as u8, 0x00, 0x01],
            props,
            &[0x00, 0x01, b't', options],
        ])
    };
    // 3.1.1: the upper six bits of the requested QoS byte are reserved.
    assert_eq!(
        err(Some(V311), &with_options(false, 0x04)),
        E::InvalidSubscriptionOptions(0x04)
    );
    assert_eq!(
        err(Some(V311), &with_options(false, 0x03)),
        E::InvalidQoS(3)
    );
    // v5: bits 6 and 7 are reserved; Retain Handling 3 is a protocol error.
    assert_eq!(
        err(Some(V5), &with_options(true, 0x40)),
        E::InvalidSubscriptionOptions(0x40)
    );
    assert_eq!(err(Some(V5), &with_options(true, 0x03)), E::InvalidQoS(3));
    let e = err(Some(V5), &with_options(true, 0x30));
    assert_eq!(e, E::InvalidRetainHandling);
    assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
    assert_eq!(
        reason(&E::InvalidSubscriptionOptions(0x40)),
        ReasonCode::MALFORMED_PACKET
    );
}

#[test]
fn unsubscribe_without_filters() {
    let e = err(Some(V311), &[0xA2, 0x02, 0x00, 0x01]);
    assert_eq!(e, E::EmptyUnsubscription);
    assert_eq!(reason(&e), ReasonCode::PROTOCOL_ERROR);
    assert_eq!(
        err(Some(V5), &[0xA2, 0x03, 0x00, 0x01, 0x00]),
        E::EmptyUnsubscription
    );
}

#[test]
fn acks_without_reason_codes_and_bad_return_codes() {
    assert_eq!(err(Some(V311), &[0x90, 0x02, 0x00, 0x01]), E::NoReasonCodes);
    assert_eq!(
        err(Some(V5), &[0x90, 0x03, 0x00, 0x01, 0x00]),
        E::NoReasonCodes
    );
    assert_eq!(
        err(Some(V5), &[0xB0, 0x03, 0x00, 0x01, 0x00]),
        E::NoReasonCodes
    );
    assert_eq!(
        err(Some(V311), &[0x90, 0x03, 0x00, 0x01, 0x03]),
        E::InvalidReasonCode(3)
    );
    assert_eq!(
        err(Some(V311), &[0x20, 0x02, 0x00, 0x06]),
        E::InvalidReasonCode(6)
    );
    assert_eq!(
        err(Some(V311), &[0x20, 0x02, 0x02, 0x00]),
        E::InvalidConnAckFlags(2)
    );
}

// --- Encode errors -------------------------------------------------------------------------

#[test]
fn encode_errors_append_nothing() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let check = |packet: Packet, version, expected: EncodeError, buf: &mut BytesMut| {
        assert_eq!(encode(&packet, version, buf), Err(expected));
        assert_eq!(&buf[..], b"keep");
    };

    let long = ByteStr::from("x".repeat(65_536));
    let publish = Publish {
        topic: long,
        ..Default::default()
    };
    check(
        Packet::Publish(publish),
        V311,
        EncodeError::FieldTooLong(65_536),
        &mut buf,
    );

    let no_id = Publish {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    };
    check(
        Packet::Publish(no_id),
        V5,
        EncodeError::InconsistentPublish,
        &mut buf,
    );
    let dup = Publish {
        dup: true,
        ..Default::default()
    };
    check(
        Packet::Publish(dup),
        V5,
        EncodeError::InconsistentPublish,
        &mut buf,
    );

    check(
        Packet::Auth(Auth::default()),
        V311,
        EncodeError::NotInVersion("AUTH"),
        &mut buf,
    );

    let connect = Connect {
        protocol: V5,
        ..Default::default()
    };
    check(
        Packet::Connect(Box::new(connect)),
        V311,
        EncodeError::VersionMismatch,
        &mut buf,
    );
    let connect = Connect {
        password: Some(Bytes::new()),
        ..Default::default()
    };
    check(
        Packet::Connect(Box::new(connect)),
        V311,
        EncodeError::PasswordWithoutUsername,
        &mut buf,
    );

    let id = PacketId::new(1).unwrap();
    let empty = Subscribe {
        packet_id: id,
        properties: Default::default(),
        filters: Vec::new(),
    };
    check(
        Packet::Subscribe(empty),
        V5,
        EncodeError::EmptyList,
        &mut buf,
    );

    let sub_id = Subscribe {
        packet_id: id,
        properties: SubscribeProperties {
            subscription_identifier: Some(0),
            ..Default::default()
        },
        filters: vec![(ByteStr::from("t"), SubscriptionOptions::default())],
    };
    check(
        Packet::Subscribe(sub_id),
        V5,
        EncodeError::InvalidPropertyValue(0x0B),
        &mut buf,
    );
}

#[test]
fn encode_rejects_a_remaining_length_over_the_protocol_maximum() {
    // 2,100 user properties of 2 × 65,535 bytes share one allocation: 275 MB on the wire.
    let big = ByteStr::from("x".repeat(65_535));
    let disconnect = Disconnect {
        properties: DisconnectPropertyValues {
            user_properties: vec![(big.clone(), big); 2_100],
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let packet = Packet::Disconnect(disconnect);
    assert!(encoded_len(&packet, V5) > 268_435_455);
    let mut buf = BytesMut::new();
    assert_eq!(encode(&packet, V5, &mut buf), Err(EncodeError::TooLarge));
    assert!(buf.is_empty());
}

#[test]
fn a_malformed_v5_connect_still_fixes_the_version() {
    // Session Expiry Interval twice: the body is bad, but the header said v5, so the
    // connection can refuse it in v5 (CONNACK 0x82) instead of closing without a word.
    let bytes = connect_v5_with(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]);
    let mut decoder = Decoder::new(1024);
    let error = decoder
        .decode(&mut BytesMut::from(&bytes[..]))
        .expect_err("must be rejected");
    assert_eq!(error, E::DuplicateProperty(0x11));
    assert_eq!(decoder.version(), Some(V5));
}
