//! Every packet type in both versions, written byte by byte from the specs' layouts and
//! examples, checked in both directions.

use bytes::{Bytes, BytesMut};

use super::{cat, decode_one, golden};
use crate::{
    ByteStr, Packet, PacketId,
    ProtocolVersion::*,
    QoS, ReasonCode,
    codec::{Decoder, encode},
    packet::*,
};

fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

fn s(v: &'static str) -> ByteStr {
    ByteStr::from_static(v)
}

/// The CONNECT of the 3.1.1 spec's variable header example (3.1.2.10): flags 0xCE (user name,
/// password, Will QoS 1, Will flag, Clean Session), keep alive 10.
#[test]
fn connect_v311() {
    let bytes = cat(&[
        &[0x10, 26, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0xCE, 0x00, 0x0A],
        &[0x00, 0x02],
        b"c1",
        &[0x00, 0x01, b'w', 0x00, 0x01, b'm'],
        &[0x00, 0x01, b'u', 0x00, 0x01, b'p'],
    ]);
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 10,
        properties: ConnectProperties::default(),
        client_id: s("c1"),
        will: Some(Will {
            topic: s("w"),
            payload: Bytes::from_static(b"m"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
    }));
    golden(V311, &bytes, &packet);
}

/// The v5 spec's CONNECT variable header example (3.1.2.11): the same flags, keep alive 10 and
/// a Session Expiry Interval of 10 as its only property.
#[test]
fn connect_v5() {
    let bytes = cat(&[
        &[0x10, 33, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0xCE, 0x00, 0x0A],
        &[0x05, 0x11, 0x00, 0x00, 0x00, 0x0A],
        &[0x00, 0x02],
        b"c1",
        &[0x00],
        &[0x00, 0x01, b'w', 0x00, 0x01, b'm'],
        &[0x00, 0x01, b'u', 0x00, 0x01, b'p'],
    ]);
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 10,
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            ..Default::default()
        },
        client_id: s("c1"),
        will: Some(Will {
            topic: s("w"),
            payload: Bytes::from_static(b"m"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
    }));
    golden(V5, &bytes, &packet);
}

#[test]
fn connect_v31_and_version_detection() {
    let bytes = cat(&[
        &[0x10, 16, 0x00, 0x06],
        b"MQIsdp",
        &[0x03, 0x02, 0x00, 0x3C, 0x00, 0x02],
        b"c1",
    ]);
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V31,
        clean_start: true,
        keep_alive: 60,
        client_id: s("c1"),
        ..Default::default()
    }));
    golden(V31, &bytes, &packet);

    let mut decoder = Decoder::new(1024);
    assert_eq!(decoder.version(), None);
    decoder.decode(&mut BytesMut::from(&bytes[..])).unwrap();
    assert_eq!(decoder.version(), Some(V31));
}

#[test]
fn connect_v5_password_without_username_is_allowed() {
    let bytes = cat(&[
        &[0x10, 17, 0x00, 0x04],
        b"MQTT",
        &[0x05, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02],
        b"pw",
    ]);
    let Packet::Connect(c) = decode_one(None, &bytes).unwrap() else {
        panic!("not CONNECT")
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.client_id, "");
}

#[test]
fn connack() {
    let accepted = ConnAck {
        session_present: true,
        ..Default::default()
    };
    golden(
        V311,
        &[0x20, 0x02, 0x01, 0x00],
        &Packet::ConnAck(accepted.clone()),
    );
    golden(
        V5,
        &[0x20, 0x03, 0x01, 0x00, 0x00],
        &Packet::ConnAck(accepted),
    );

    let refused = ConnAck {
        reason: ReasonCode::NOT_AUTHORIZED,
        ..Default::default()
    };
    golden(V311, &[0x20, 0x02, 0x00, 0x05], &Packet::ConnAck(refused));

    let bytes = [
        0x20, 0x0D, 0x00, 0x00, 0x0A, 0x21, 0x00, 0x0A, 0x24, 0x01, 0x12, 0x00, 0x02, b'i', b'd',
    ];
    let packet = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::SUCCESS,
        properties: ConnAckPropertyValues {
            receive_maximum: Some(10),
            maximum_qos: Some(QoS::AtLeastOnce),
            assigned_client_identifier: Some(s("id")),
            ..Default::default()
        }
        .into(),
    });
    golden(V5, &bytes, &packet);
}

#[test]
fn connack_encoding_maps_to_the_version() {
    let mut buf = BytesMut::new();
    let banned = ConnAck {
        reason: ReasonCode::BANNED,
        ..Default::default()
    };
    encode(&Packet::ConnAck(banned), V311, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x20, 0x02, 0x00, 0x05]);

    // Maximum QoS 2 is what an absent property means; the wire only allows 0 and 1.
    buf.clear();
    let qos2 = ConnAck {
        properties: ConnAckPropertyValues {
            maximum_qos: Some(QoS::ExactlyOnce),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    encode(&Packet::ConnAck(qos2), V5, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x20, 0x03, 0x00, 0x00, 0x00]);
}

/// The 3.1.1 spec's PUBLISH example (3.3.2.3): topic `a/b`, packet id 10.
#[test]
fn publish_v311() {
    let bytes = cat(&[&[0x32, 0x09, 0x00, 0x03], b"a/b", &[0x00, 0x0A], b"hi"]);
    let packet = Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: s("a/b"),
        packet_id: Some(pid(10)),
        payload: Bytes::from_static(b"hi"),
        ..Default::default()
    });
    golden(V311, &bytes, &packet);
}

#[test]
fn publish_v5() {
    let bytes = cat(&[&[0x31, 0x07, 0x00, 0x03], b"a/b", &[0x00], b"x"]);
    let packet = Packet::Publish(Publish {
        retain: true,
        topic: s("a/b"),
        payload: Bytes::from_static(b"x"),
        ..Default::default()
    });
    golden(V5, &bytes, &packet);

    // QoS 2 with DUP, a Topic Alias, two Subscription Identifiers (300 takes two bytes) and a
    // user property.
    let bytes = cat(&[
        &[0x3C, 0x17, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x0B, 0x0F],
        &[0x23, 0x00, 0x01],
        &[0x0B, 0x01, 0x0B, 0xAC, 0x02],
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'],
    ]);
    let packet = Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: s("a/b"),
        packet_id: Some(pid(11)),
        properties: PublishPropertyValues {
            topic_alias: Some(1),
            subscription_identifiers: vec![1, 300],
            user_properties: vec![(s("k"), s("v"))],
            ..Default::default()
        }
        .into(),
        payload: Bytes::new(),
    });
    golden(V5, &bytes, &packet);
}

#[test]
fn publish_with_empty_topic_decodes_for_the_connection_to_judge() {
    let packet = decode_one(Some(V311), &[0x30, 0x02, 0x00, 0x00]).unwrap();
    let Packet::Publish(p) = packet else {
        panic!("not PUBLISH")
    };
    assert_eq!(p.topic, "");
}

#[test]
fn pub_responses_in_both_versions() {
    let r = PubResponse::new(pid(10));
    for version in [V311, V5] {
        golden(
            version,
            &[0x40, 0x02, 0x00, 0x0A],
            &Packet::PubAck(r.clone()),
        );
        golden(
            version,
            &[0x50, 0x02, 0x00, 0x0A],
            &Packet::PubRec(r.clone()),
        );
        golden(
            version,
            &[0x62, 0x02, 0x00, 0x0A],
            &Packet::PubRel(r.clone()),
        );
        golden(
            version,
            &[0x70, 0x02, 0x00, 0x0A],
            &Packet::PubComp(r.clone()),
        );
    }
}

#[test]
fn pub_response_v5_forms() {
    // Remaining length 3: a reason code, no properties.
    let no_match = PubResponse {
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..PubResponse::new(pid(10))
    };
    golden(
        V5,
        &[0x40, 0x03, 0x00, 0x0A, 0x10],
        &Packet::PubAck(no_match),
    );

    // Reason code and a Reason String.
    let bytes = cat(&[
        &[0x50, 0x0A, 0x00, 0x0A, 0x80, 0x06, 0x1F, 0x00, 0x03],
        b"bad",
    ]);
    let failed = PubResponse {
        packet_id: pid(10),
        reason: ReasonCode::UNSPECIFIED_ERROR,
        properties: AckProperties {
            reason_string: Some(s("bad")),
            ..Default::default()
        },
    };
    golden(V5, &bytes, &Packet::PubRec(failed));

    // The long form of a plain success decodes to the same packet the short form does.
    let long = decode_one(Some(V5), &[0x70, 0x04, 0x00, 0x0A, 0x00, 0x00]).unwrap();
    assert_eq!(long, Packet::PubComp(PubResponse::new(pid(10))));
}

/// The 3.1.1 spec's SUBSCRIBE example (3.8.3): `a/b` at QoS 1 and `c/d` at QoS 2, id 10.
#[test]
fn subscribe_v311() {
    let bytes = cat(&[
        &[0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03],
        b"a/b",
        &[0x01, 0x00, 0x03],
        b"c/d",
        &[0x02],
    ]);
    let options = |qos| SubscriptionOptions {
        qos,
        ..Default::default()
    };
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (s("a/b"), options(QoS::AtLeastOnce)),
            (s("c/d"), options(QoS::ExactlyOnce)),
        ],
    });
    golden(V311, &bytes, &packet);
}

#[test]
fn subscribe_v5() {
    // Subscription Identifier 5; options: QoS 1, No Local, Retain As Published, Retain
    // Handling 2 = 0b0010_1101.
    let bytes = cat(&[
        &[0x82, 0x0B, 0x00, 0x0A, 0x02, 0x0B, 0x05, 0x00, 0x03],
        b"a/+",
        &[0x2D],
    ]);
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties {
            subscription_identifier: Some(5),
            ..Default::default()
        },
        filters: vec![(
            s("a/+"),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        )],
    });
    golden(V5, &bytes, &packet);
}

/// The 3.1.1 spec's SUBACK example (3.9.3): granted QoS 0, granted QoS 2, failure.
#[test]
fn suback() {
    let codes = vec![
        ReasonCode::SUCCESS,
        ReasonCode::GRANTED_QOS_2,
        ReasonCode(0x80),
    ];
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: codes,
    });
    golden(V311, &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80], &packet);

    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode(0xA2),
        ],
    });
    golden(
        V5,
        &[0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x87, 0xA2],
        &packet,
    );

    // 3.1.1 has a single failure code.
    let mut buf = BytesMut::new();
    encode(&packet, V311, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x90, 0x05, 0x00, 0x0A, 0x01, 0x80, 0x80]);
}

#[test]
fn unsubscribe() {
    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(11),
        user_properties: Vec::new(),
        filters: vec![s("a/b"), s("c")],
    });
    let bytes = cat(&[
        &[0xA2, 0x0A, 0x00, 0x0B, 0x00, 0x03],
        b"a/b",
        &[0x00, 0x01],
        b"c",
    ]);
    golden(V311, &bytes, &packet);

    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(11),
        user_properties: Vec::new(),
        filters: vec![s("a/b")],
    });
    golden(
        V5,
        &cat(&[&[0xA2, 0x08, 0x00, 0x0B, 0x00, 0x00, 0x03], b"a/b"]),
        &packet,
    );
}

#[test]
fn unsuback() {
    let packet = Packet::UnsubAck(UnsubAck {
        packet_id: pid(11),
        properties: AckProperties::default(),
        reason_codes: Vec::new(),
    });
    golden(V311, &[0xB0, 0x02, 0x00, 0x0B], &packet);

    let packet = Packet::UnsubAck(UnsubAck {
        packet_id: pid(11),
        properties: AckProperties::default(),
        reason_codes: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
    });
    golden(V5, &[0xB0, 0x04, 0x00, 0x0B, 0x00, 0x11], &packet);
}

#[test]
fn ping() {
    for version in [V311, V5] {
        golden(version, &[0xC0, 0x00], &Packet::PingReq);
        golden(version, &[0xD0, 0x00], &Packet::PingResp);
    }
}

#[test]
fn disconnect() {
    golden(
        V311,
        &[0xE0, 0x00],
        &Packet::Disconnect(Disconnect::default()),
    );
    golden(
        V5,
        &[0xE0, 0x00],
        &Packet::Disconnect(Disconnect::default()),
    );
    let with_will = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        ..Default::default()
    };
    golden(V5, &[0xE0, 0x01, 0x04], &Packet::Disconnect(with_will));

    let shutting_down = Disconnect {
        reason: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: DisconnectPropertyValues {
            session_expiry_interval: Some(0),
            ..Default::default()
        }
        .into(),
    };
    golden(
        V5,
        &[0xE0, 0x07, 0x8B, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00],
        &Packet::Disconnect(shutting_down),
    );
}

#[test]
fn auth() {
    golden(V5, &[0xF0, 0x00], &Packet::Auth(Auth::default()));
    let bytes = [
        0xF0, 0x0B, 0x18, 0x09, 0x15, 0x00, 0x01, b'x', 0x16, 0x00, 0x02, 0x01, 0x02,
    ];
    let packet = Packet::Auth(Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: AuthPropertyValues {
            authentication_method: Some(s("x")),
            authentication_data: Some(Bytes::from_static(&[1, 2])),
            ..Default::default()
        }
        .into(),
    });
    golden(V5, &bytes, &packet);
}

#[test]
fn decoded_fields_share_the_received_bytes() {
    let bytes = cat(&[&[0x30, 0x07, 0x00, 0x03], b"a/b", b"xy"]);
    let mut buf = BytesMut::from(&bytes[..]);
    let base = buf.as_ptr() as usize;
    let packet = Decoder::with_version(V311, 1024)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let Packet::Publish(p) = packet else {
        panic!("not PUBLISH")
    };
    assert_eq!(p.topic.as_bytes().as_ptr() as usize, base + 4);
    assert_eq!(p.payload.as_ptr() as usize, base + 7);
}

#[test]
fn several_packets_in_one_buffer_decode_in_turn() {
    let connect = cat(&[
        &[0x10, 14, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0x02, 0x00, 0x3C, 0x00, 0x02],
        b"c1",
    ]);
    let mut buf =
        BytesMut::from(&cat(&[&connect, &[0xC0, 0x00], &[0x40, 0x02, 0x00, 0x07], &[0xE0]])[..]);
    let mut decoder = Decoder::new(1024);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Connect(_)))
    ));
    assert_eq!(decoder.version(), Some(V311));
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::PubAck(PubResponse::new(pid(7)))))
    );
    // The DISCONNECT's remaining length has not arrived yet.
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], [0xE0]);
    buf.extend_from_slice(&[0x00]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Packet::Disconnect(Disconnect::default())))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn a_partial_packet_leaves_the_buffer_untouched() {
    let connect = cat(&[
        &[0x10, 14, 0x00, 0x04],
        b"MQTT",
        &[0x04, 0x02, 0x00, 0x3C, 0x00, 0x02],
        b"c1",
    ]);
    let mut decoder = Decoder::new(1024);
    for len in 0..connect.len() {
        let mut buf = BytesMut::from(&connect[..len]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "prefix of {len} bytes");
        assert_eq!(&buf[..], &connect[..len]);
    }
    assert_eq!(decoder.version(), None);
}
