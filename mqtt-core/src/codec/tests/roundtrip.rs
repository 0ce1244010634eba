//! Property tests: any packet a version can express survives encode then decode unchanged, with
//! `encoded_len` equal to the bytes written; and no input makes the decoder panic.

use bytes::{Bytes, BytesMut};
use proptest::{collection::vec, option, prelude::*};

use crate::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    codec::{Decoder, encode, encode_publish, encoded_len},
    packet::*,
};

fn text() -> impl Strategy<Value = ByteStr> {
    // Printable characters of any script, so multi-byte UTF-8 is covered; never U+0000.
    "\\PC{0,12}".prop_map(ByteStr::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn reason() -> impl Strategy<Value = ReasonCode> {
    any::<u8>().prop_map(ReasonCode)
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((text(), text()), 0..3)
}

fn subscription_id() -> impl Strategy<Value = u32> {
    1..=268_435_455u32
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(text()), user_properties()).prop_map(|(reason_string, user_properties)| {
        AckProperties {
            reason_string,
            user_properties,
        }
    })
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(1..=u32::MAX),
        ),
        (
            option::of(any::<u16>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        ),
        (user_properties(), option::of(text()), option::of(binary())),
    )
        .prop_map(
            |((sei, rm, mps), (tam, rri, rpi), (user_properties, method, data))| {
                ConnectProperties {
                    session_expiry_interval: sei,
                    receive_maximum: rm,
                    maximum_packet_size: mps,
                    topic_alias_maximum: tam,
                    request_response_information: rri,
                    request_problem_information: rpi,
                    user_properties,
                    // Authentication Data without a method is a protocol error.
                    authentication_data: method.as_ref().and(data),
                    authentication_method: method,
                }
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        (
            option::of(any::<u32>()),
            option::of(any::<bool>()),
            option::of(any::<u32>()),
        ),
        (
            option::of(text()),
            option::of(text()),
            option::of(binary()),
            user_properties(),
        ),
    )
        .prop_map(
            |((wdi, pfi, mei), (content_type, response_topic, correlation_data, user))| {
                WillProperties {
                    will_delay_interval: wdi,
                    payload_format_indicator: pfi,
                    message_expiry_interval: mei,
                    content_type,
                    response_topic,
                    correlation_data,
                    user_properties: user,
                }
            },
        )
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let will = (text(), binary(), qos(), any::<bool>(), will_properties()).prop_map(
        move |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: if v5 {
                properties
            } else {
                WillProperties::default()
            },
        },
    );
    (
        (any::<bool>(), any::<u16>(), connect_properties(), text()),
        (option::of(will), option::of(text()), option::of(binary())),
    )
        .prop_map(
            move |(
                (clean_start, keep_alive, properties, client_id),
                (will, username, password),
            )| {
                // 3.1.1 forbids a password without a user name.
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    properties: if v5 {
                        properties
                    } else {
                        ConnectProperties::default()
                    },
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let bool = || option::of(any::<bool>());
    (
        (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            bool(),
            bool(),
            option::of(1..=u32::MAX),
        ),
        (
            option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
            option::of(text()),
            option::of(any::<u16>()),
            option::of(text()),
            user_properties(),
        ),
        (
            bool(),
            bool(),
            option::of(any::<u16>()),
            option::of(text()),
            option::of(text()),
        ),
        (option::of(text()), option::of(binary())),
    )
        .prop_map(
            |(
                (sei, rm, ra, wsa, mps),
                (mq, aci, tam, rs, up),
                (sia, ssa, ska, ri, sr),
                (am, ad),
            )| {
                ConnAckPropertyValues {
                    session_expiry_interval: sei,
                    receive_maximum: rm,
                    maximum_qos: mq,
                    retain_available: ra,
                    maximum_packet_size: mps,
                    assigned_client_identifier: aci,
                    topic_alias_maximum: tam,
                    reason_string: rs,
                    user_properties: up,
                    wildcard_subscription_available: wsa,
                    subscription_identifiers_available: sia,
                    shared_subscription_available: ssa,
                    server_keep_alive: ska,
                    response_information: ri,
                    server_reference: sr,
                    authentication_method: am,
                    authentication_data: ad,
                }
                .into()
            },
        )
}

fn connack(v5: bool) -> BoxedStrategy<Packet> {
    if v5 {
        (any::<bool>(), reason(), connack_properties())
            .prop_map(|(session_present, reason, properties)| {
                Packet::ConnAck(ConnAck {
                    session_present,
                    reason,
                    properties,
                })
            })
            .boxed()
    } else {
        (any::<bool>(), 0..=5u8)
            .prop_map(|(session_present, code)| {
                Packet::ConnAck(ConnAck {
                    session_present,
                    reason: ReasonCode::from_v311_connack(code).unwrap_or_default(),
                    properties: ConnAckProperties::default(),
                })
            })
            .boxed()
    }
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        (
            option::of(any::<bool>()),
            option::of(any::<u32>()),
            option::of(any::<u16>()),
        ),
        (option::of(text()), option::of(binary()), user_properties()),
        (vec(subscription_id(), 0..3), option::of(text())),
    )
        .prop_map(|((pfi, mei, ta), (rt, cd, up), (sids, ct))| {
            PublishProperties::from(PublishPropertyValues {
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                topic_alias: ta,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
                subscription_identifiers: sids,
                content_type: ct,
            })
        })
}

fn publish(v5: bool) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        text(),
        packet_id(),
        publish_properties(),
        binary(),
    )
        .prop_map(move |(qos, dup, retain, topic, id, properties, payload)| {
            let at_most_once = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: if at_most_once { None } else { Some(id) },
                properties: if v5 {
                    properties
                } else {
                    PublishProperties::default()
                },
                payload,
            })
        })
}

fn pub_response(v5: bool) -> impl Strategy<Value = PubResponse> {
    (packet_id(), reason(), ack_properties()).prop_map(move |(packet_id, reason, properties)| {
        if v5 {
            PubResponse {
                packet_id,
                reason,
                properties,
            }
        } else {
            PubResponse::new(packet_id)
        }
    })
}

fn subscription_options(v5: bool) -> impl Strategy<Value = SubscriptionOptions> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend),
    ];
    (qos(), any::<bool>(), any::<bool>(), retain_handling).prop_map(move |(qos, nl, rap, rh)| {
        if v5 {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions {
                qos,
                ..Default::default()
            }
        }
    })
}

fn subscribe(v5: bool) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        option::of(subscription_id()),
        user_properties(),
        vec((text(), subscription_options(v5)), 1..4),
    )
        .prop_map(move |(packet_id, sid, user, filters)| {
            let properties = if v5 {
                SubscribeProperties {
                    subscription_identifier: sid,
                    user_properties: user,
                }
            } else {
                SubscribeProperties::default()
            };
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn suback(v5: bool) -> impl Strategy<Value = Packet> {
    let code = if v5 {
        reason().boxed()
    } else {
        prop_oneof![Just(0x00), Just(0x01), Just(0x02), Just(0x80)]
            .prop_map(ReasonCode)
            .boxed()
    };
    (packet_id(), ack_properties(), vec(code, 1..5)).prop_map(
        move |(packet_id, properties, codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties: if v5 {
                    properties
                } else {
                    AckProperties::default()
                },
                reason_codes: codes,
            })
        },
    )
}

fn unsubscribe(v5: bool) -> impl Strategy<Value = Packet> {
    (packet_id(), user_properties(), vec(text(), 1..4)).prop_map(
        move |(packet_id, user, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                user_properties: if v5 { user } else { Vec::new() },
                filters,
            })
        },
    )
}

fn unsuback(v5: bool) -> impl Strategy<Value = Packet> {
    (packet_id(), ack_properties(), vec(reason(), 1..5)).prop_map(
        move |(packet_id, properties, codes)| {
            Packet::UnsubAck(if v5 {
                UnsubAck {
                    packet_id,
                    properties,
                    reason_codes: codes,
                }
            } else {
                UnsubAck {
                    packet_id,
                    properties: AckProperties::default(),
                    reason_codes: Vec::new(),
                }
            })
        },
    )
}

fn disconnect(v5: bool) -> impl Strategy<Value = Packet> {
    (
        reason(),
        option::of(any::<u32>()),
        option::of(text()),
        user_properties(),
        option::of(text()),
    )
        .prop_map(move |(reason, sei, rs, up, sr)| {
            Packet::Disconnect(if v5 {
                Disconnect {
                    reason,
                    properties: DisconnectPropertyValues {
                        session_expiry_interval: sei,
                        reason_string: rs,
                        user_properties: up,
                        server_reference: sr,
                    }
                    .into(),
                }
            } else {
                Disconnect::default()
            })
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(),
        option::of(text()),
        option::of(binary()),
        option::of(text()),
        user_properties(),
    )
        .prop_map(|(reason, am, ad, rs, up)| {
            Packet::Auth(Auth {
                reason,
                properties: AuthPropertyValues {
                    authentication_method: am,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: up,
                }
                .into(),
            })
        })
}

/// Every packet `version` can express.
fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = version.is_v5();
    let common = prop_oneof![
        connect(version),
        connack(v5),
        publish(v5),
        pub_response(v5).prop_map(Packet::PubAck),
        pub_response(v5).prop_map(Packet::PubRec),
        pub_response(v5).prop_map(Packet::PubRel),
        pub_response(v5).prop_map(Packet::PubComp),
        subscribe(v5),
        suback(v5),
        unsubscribe(v5),
        unsuback(v5),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(v5),
    ];
    if v5 {
        prop_oneof![14 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ]
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

/// Decodes until the decoder has nothing more to give, checking what the fuzz target checks:
/// no panic, and every accepted packet encodes again and decodes to itself.
fn drain(mut decoder: Decoder, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(packet)) = decoder.decode(&mut buf) {
        let version = match &packet {
            Packet::Connect(connect) => connect.protocol,
            _ => decoder.version().unwrap_or_default(),
        };
        let mut again = BytesMut::new();
        encode(&packet, version, &mut again).unwrap();
        assert_eq!(
            Decoder::with_version(version, u32::MAX).decode(&mut again),
            Ok(Some(packet))
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn encode_then_decode_is_identity((version, packet) in versioned_packet()) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        prop_assert_eq!(encoded_len(&packet, version), buf.len());

        let mut decoder = Decoder::with_version(version, u32::MAX);
        let decoded = decoder.decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    /// A delivery is encoded from borrowed parts, with the per-hop properties taken from
    /// their own fields: it must come out as the PUBLISH that carries those values.
    #[test]
    fn a_publish_ref_encodes_as_the_publish_with_its_hop_properties(
        packet in publish(true),
        message_properties in publish_properties(),
        expiry in option::of(any::<u32>()),
        alias in option::of(1..=u16::MAX),
        sids in vec(subscription_id(), 0..3),
    ) {
        let Packet::Publish(publish) = packet else { unreachable!() };
        let mut expected = publish.clone();
        expected.properties = PublishPropertyValues {
            message_expiry_interval: expiry,
            topic_alias: alias,
            subscription_identifiers: sids.clone(),
            ..(*message_properties).clone()
        }
        .into();
        let publish_ref = PublishRef {
            properties: &message_properties,
            message_expiry_interval: expiry,
            topic_alias: alias,
            subscription_identifiers: &sids,
            ..PublishRef::from(&publish)
        };
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let mut got = BytesMut::new();
            encode_publish(&publish_ref, version, &mut got).unwrap();
            let mut want = BytesMut::new();
            encode(&Packet::Publish(expected.clone()), version, &mut want).unwrap();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_server_decoder_learns_the_version_from_connect(
        (version, packet) in version().prop_flat_map(|v| (Just(v), connect(v))),
    ) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        let mut decoder = Decoder::new(u32::MAX);
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), Some(packet));
        prop_assert_eq!(decoder.version(), Some(version));
    }

    #[test]
    fn every_prefix_of_a_packet_needs_more_bytes((version, packet) in versioned_packet()) {
        let mut bytes = BytesMut::new();
        encode(&packet, version, &mut bytes).unwrap();
        let mut decoder = Decoder::with_version(version, u32::MAX);
        for len in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..len]);
            prop_assert_eq!(decoder.decode(&mut buf), Ok(None));
            prop_assert_eq!(buf.len(), len);
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..256)) {
        drain(Decoder::new(u32::MAX), &bytes);
        drain(Decoder::with_version(ProtocolVersion::V311, u32::MAX), &bytes);
        drain(Decoder::with_version(ProtocolVersion::V5, u32::MAX), &bytes);
        drain(Decoder::with_version(ProtocolVersion::V5, 64), &bytes);
    }

    /// Random bytes rarely get past the fixed header; corrupting valid packets reaches the
    /// field and property parsers.
    #[test]
    fn decode_never_panics_on_corrupted_packets(
        (version, packet) in versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = BytesMut::new();
        encode(&packet, version, &mut buf).unwrap();
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let len = cut.index(buf.len() + 1);
        drain(Decoder::with_version(version, u32::MAX), &buf[..len]);
        drain(Decoder::new(u32::MAX), &buf);
    }
}
