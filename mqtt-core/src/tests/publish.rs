//! Inbound PUBLISH: topic aliases, refusals, acknowledgements, QoS 2 exactly-once and its
//! bounds (RELIABILITY.md tests 10, 13, 16).

use std::time::Duration;

use bytes::Bytes;

use super::harness::{
    World, ack, connect, disconnect_reason, only, pid, publish, publishes, subscribe,
};
use crate::{
    Packet, ProtocolVersion, QoS, ReasonCode, connection::CloseKind, packet::PubResponse,
    settings::MqttSettings,
};

const PUB: usize = 0;
const SUB: usize = 1;

/// A publisher (0) and a subscriber (1) to `filter`, both connected.
fn pub_sub(settings: MqttSettings, version: ProtocolVersion, filter: &str) -> World {
    let mut world = World::new(settings);
    world.add_client(version);
    world.add_client(ProtocolVersion::V5);
    world.connect_ok(PUB, "pub");
    world.connect_ok(SUB, "sub");
    let suback = world.subscribe(SUB, subscribe(1, &[(filter, QoS::ExactlyOnce)]));
    assert!(!suback.reason_codes[0].is_error());
    world
}

fn v5_pub_sub(filter: &str) -> World {
    pub_sub(MqttSettings::default(), ProtocolVersion::V5, filter)
}

fn with_alias(topic: &str, alias: u16, id: u16) -> crate::packet::Publish {
    let mut packet = publish(topic, QoS::AtLeastOnce, id, b"payload");
    packet.properties.topic_alias = Some(alias);
    packet
}

#[track_caller]
fn puback(packet: &Packet) -> &PubResponse {
    match packet {
        Packet::PubAck(ack) => ack,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[track_caller]
fn pubrec(packet: &Packet) -> &PubResponse {
    match packet {
        Packet::PubRec(ack) => ack,
        other => panic!("expected PUBREC, got {other:?}"),
    }
}

/// The topics of the PUBLISHes the subscriber received since the last call.
fn received_topics(world: &mut World) -> Vec<String> {
    let packets = world.recv(SUB);
    publishes(&packets)
        .iter()
        .map(|p| p.topic.to_string())
        .collect()
}

#[test]
fn inbound_topic_alias_is_set_reused_and_remapped() {
    let mut world = v5_pub_sub("a/+");
    world.send(PUB, with_alias("a/b", 3, 1)).expect("alias set");
    assert_eq!(puback(&only(world.recv(PUB))).reason, ReasonCode::SUCCESS);
    world.send(PUB, with_alias("", 3, 2)).expect("alias used");
    assert_eq!(puback(&only(world.recv(PUB))).reason, ReasonCode::SUCCESS);
    world.send(PUB, with_alias("a/c", 3, 3)).expect("remapped");
    world.send(PUB, with_alias("", 3, 4)).expect("alias used");
    assert_eq!(received_topics(&mut world), ["a/b", "a/b", "a/c", "a/c"]);
    // The alias is this hop's business: the routed message has none.
    assert!(
        world
            .broker
            .routed
            .iter()
            .all(|m| m.properties.topic_alias.is_none())
    );
    // And with the alias gone, nothing is left to keep: no box per message.
    assert!(world.broker.routed.iter().all(|m| !m.properties.is_boxed()));
}

#[test]
fn unknown_inbound_alias_is_a_protocol_error() {
    let mut world = v5_pub_sub("a/+");
    world.send(PUB, with_alias("a/b", 3, 1)).expect("alias set");
    let _ = world.recv(PUB);
    let close = world
        .send(PUB, with_alias("", 4, 2))
        .expect_err("unknown alias");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert_eq!(
        disconnect_reason(&only(world.recv(PUB))),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(world.broker.routed.len(), 1);
}

#[test]
fn alias_zero_or_above_the_maximum_is_invalid() {
    let settings = MqttSettings {
        max_topic_alias: 10,
        ..MqttSettings::default()
    };
    for alias in [0, 11, u16::MAX] {
        let mut world = pub_sub(settings.clone(), ProtocolVersion::V5, "a/+");
        let close = world
            .send(PUB, with_alias("a/b", alias, 1))
            .expect_err("invalid alias");
        assert_eq!(close.code, ReasonCode::TOPIC_ALIAS_INVALID, "alias {alias}");
        assert_eq!(
            disconnect_reason(&only(world.recv(PUB))),
            ReasonCode::TOPIC_ALIAS_INVALID
        );
    }
    // Aliases disabled: any alias is invalid.
    let mut world = pub_sub(
        MqttSettings {
            max_topic_alias: 0,
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
        "a/+",
    );
    let close = world
        .send(PUB, with_alias("a/b", 1, 1))
        .expect_err("no alias");
    assert_eq!(close.code, ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn empty_topic_without_alias_is_refused() {
    // Mosquitto CVE-2021-34432: a zero-length topic crashed the broker.
    let mut world = v5_pub_sub("#");
    let close = world
        .send(PUB, publish("", QoS::AtLeastOnce, 1, b"x"))
        .expect_err("empty topic");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);

    let mut world = pub_sub(MqttSettings::default(), ProtocolVersion::V311, "#");
    let close = world
        .send(PUB, publish("", QoS::AtMostOnce, 0, b"x"))
        .expect_err("empty topic");
    assert_eq!(close.code, ReasonCode::TOPIC_NAME_INVALID);
    assert!(world.recv(PUB).is_empty());
    assert!(world.broker.routed.is_empty());
}

#[test]
fn wildcards_in_a_topic_name_are_refused() {
    let mut world = v5_pub_sub("#");
    let close = world
        .send(PUB, publish("a/+", QoS::AtMostOnce, 0, b"x"))
        .expect_err("wildcard topic");
    assert_eq!(close.code, ReasonCode::TOPIC_NAME_INVALID);
    assert_eq!(
        disconnect_reason(&only(world.recv(PUB))),
        ReasonCode::TOPIC_NAME_INVALID
    );
}

#[test]
fn outbound_aliases_when_the_client_allows_them() {
    let mut world = World::new(MqttSettings::default());
    world.add_client(ProtocolVersion::V5);
    world.add_client(ProtocolVersion::V5);
    world.connect_ok(PUB, "pub");
    let mut packet = connect("sub");
    packet.properties.topic_alias_maximum = Some(2);
    assert_eq!(world.connect(SUB, packet).reason, ReasonCode::SUCCESS);
    world.subscribe(SUB, subscribe(1, &[("t/#", QoS::AtMostOnce)]));
    for topic in ["t/a", "t/a", "t/b", "t/c", "t/b", "t/a", "t/c"] {
        world
            .send(PUB, publish(topic, QoS::AtMostOnce, 0, b"x"))
            .expect("published");
    }
    let packets = world.recv(SUB);
    let seen: Vec<(String, Option<u16>)> = publishes(&packets)
        .iter()
        .map(|p| (p.topic.to_string(), p.properties.topic_alias))
        .collect();
    let expected: Vec<(String, Option<u16>)> = [
        ("t/a", Some(1)),
        ("", Some(1)),
        ("t/b", Some(2)),
        // Only two aliases allowed: t/c goes out in full, every time.
        ("t/c", None),
        ("", Some(2)),
        ("", Some(1)),
        ("t/c", None),
    ]
    .iter()
    .map(|(t, a)| ((*t).to_owned(), *a))
    .collect();
    assert_eq!(seen, expected);
}

#[test]
fn no_outbound_aliases_without_the_clients_consent() {
    let mut world = v5_pub_sub("t");
    for _ in 0..3 {
        world
            .send(PUB, publish("t", QoS::AtMostOnce, 0, b"x"))
            .expect("published");
    }
    let packets = world.recv(SUB);
    let seen = publishes(&packets);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|p| p.topic == "t" && p.properties.topic_alias.is_none())
    );
}

#[test]
fn payload_not_matching_its_format_indicator_is_refused() {
    let mut world = v5_pub_sub("t");
    let mut bad = publish("t", QoS::AtLeastOnce, 5, b"");
    bad.payload = Bytes::from_static(&[0xff, 0xfe]);
    bad.properties.payload_format_indicator = Some(true);
    world.send(PUB, bad.clone()).expect("refused, not closed");
    let response = only(world.recv(PUB));
    let response = puback(&response);
    assert_eq!(response.packet_id, pid(5));
    assert_eq!(response.reason, ReasonCode::PAYLOAD_FORMAT_INVALID);
    assert!(response.properties.reason_string.is_some());

    // QoS 2: PUBREC 0x99, and the id is free again.
    bad.qos = QoS::ExactlyOnce;
    world.send(PUB, bad).expect("refused, not closed");
    assert_eq!(
        pubrec(&only(world.recv(PUB))).reason,
        ReasonCode::PAYLOAD_FORMAT_INVALID
    );
    assert_eq!(
        world
            .conn(PUB)
            .session()
            .expect("session")
            .awaiting_rel_len(),
        0
    );

    // QoS 0: dropped without a word.
    let mut bad = publish("t", QoS::AtMostOnce, 0, b"");
    bad.payload = Bytes::from_static(&[0xff]);
    bad.properties.payload_format_indicator = Some(true);
    world.send(PUB, bad).expect("dropped");
    assert!(world.recv(PUB).is_empty());

    assert!(world.broker.routed.is_empty());
    assert!(world.recv(SUB).is_empty());
}

#[test]
fn publishing_to_sys_is_refused() {
    // Mosquitto CVE-2018-12543 (an assert on a $ topic).
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut world = pub_sub(MqttSettings::default(), version, "#");
        world
            .send(
                PUB,
                publish("$SYS/broker/uptime", QoS::AtLeastOnce, 1, b"0"),
            )
            .expect("refused, not closed");
        let response = only(world.recv(PUB));
        let expected = if version.is_v5() {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode::SUCCESS
        };
        assert_eq!(puback(&response).reason, expected);
        assert!(world.broker.routed.is_empty());
        assert!(world.recv(SUB).is_empty());
    }
}

#[test]
fn qos_above_the_maximum_is_refused() {
    let mut world = pub_sub(
        MqttSettings {
            max_qos_allowed: QoS::AtLeastOnce,
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
        "t",
    );
    let close = world
        .send(PUB, publish("t", QoS::ExactlyOnce, 1, b"x"))
        .expect_err("QoS 2 refused");
    assert_eq!(close.code, ReasonCode::QOS_NOT_SUPPORTED);
    assert_eq!(
        disconnect_reason(&only(world.recv(PUB))),
        ReasonCode::QOS_NOT_SUPPORTED
    );
    assert!(world.broker.routed.is_empty());
}

#[test]
fn subscriptions_are_granted_at_most_max_qos_allowed() {
    let mut world = World::with_settings(
        MqttSettings {
            max_qos_allowed: QoS::AtLeastOnce,
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
    );
    world.connect_ok(0, "c");
    let suback = world.subscribe(
        0,
        subscribe(1, &[("a", QoS::ExactlyOnce), ("b", QoS::AtMostOnce)]),
    );
    assert_eq!(
        suback.reason_codes,
        [ReasonCode::GRANTED_QOS_1, ReasonCode::SUCCESS]
    );
}

#[test]
fn packet_id_zero_is_malformed() {
    let mut world = v5_pub_sub("t");
    // PUBLISH QoS 1, topic "t", packet id 0, no properties.
    let close = world
        .send_bytes(PUB, &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00])
        .expect_err("id 0");
    assert_eq!(close.code, ReasonCode::MALFORMED_PACKET);
    assert_eq!(
        disconnect_reason(&only(world.recv(PUB))),
        ReasonCode::MALFORMED_PACKET
    );
}

#[test]
fn acks_for_unknown_packet_ids() {
    // RELIABILITY.md test 13.
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut world = World::with_client(version);
        world.connect_ok(0, "c");
        // PUBACK and PUBCOMP for ids nobody sent: ignored.
        world.send(0, Packet::PubAck(ack(9))).expect("ignored");
        world.send(0, Packet::PubComp(ack(9))).expect("ignored");
        assert!(world.recv(0).is_empty());
        // PUBREL for an unknown id: PUBCOMP, 0x92 in v5.
        world.send(0, Packet::PubRel(ack(9))).expect("answered");
        let expected = if version.is_v5() {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        } else {
            ReasonCode::SUCCESS
        };
        match only(world.recv(0)) {
            Packet::PubComp(comp) => {
                assert_eq!(comp.packet_id, pid(9));
                assert_eq!(comp.reason, expected);
            }
            other => panic!("expected PUBCOMP, got {other:?}"),
        }
        // PUBREC for an unknown id: PUBREL, 0x92 in v5.
        world.send(0, Packet::PubRec(ack(9))).expect("answered");
        match only(world.recv(0)) {
            Packet::PubRel(rel) => assert_eq!(rel.reason, expected),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        let session = world.conn(0).session().expect("session");
        assert_eq!(session.inflight_len(), 0, "no state growth");
        assert_eq!(session.awaiting_rel_len(), 0);
        assert!(world.closed(0).is_none());
    }
}

#[test]
fn qos2_same_packet_id_is_routed_once() {
    // RELIABILITY.md test 16 / Mosquitto CVE-2023-28366.
    let mut world = v5_pub_sub("t");
    for _ in 0..5 {
        let mut packet = publish("t", QoS::ExactlyOnce, 7, b"once");
        packet.dup = true;
        world.send(PUB, packet).expect("accepted");
        let response = only(world.recv(PUB));
        assert_eq!(pubrec(&response).packet_id, pid(7));
        assert_eq!(pubrec(&response).reason, ReasonCode::SUCCESS);
    }
    assert_eq!(world.broker.routed.len(), 1);
    let packets = world.recv(SUB);
    assert_eq!(publishes(&packets).len(), 1, "delivered exactly once");
    assert_eq!(
        world
            .conn(PUB)
            .session()
            .expect("session")
            .awaiting_rel_len(),
        1
    );

    // PUBREL ends it; the id may then carry a new message.
    world.send(PUB, Packet::PubRel(ack(7))).expect("released");
    match only(world.recv(PUB)) {
        Packet::PubComp(comp) => assert_eq!(comp.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    world
        .send(PUB, publish("t", QoS::ExactlyOnce, 7, b"again"))
        .expect("accepted");
    assert_eq!(world.broker.routed.len(), 2);
}

#[test]
fn unreleased_qos2_ids_are_bounded_by_max_awaiting_rel() {
    let settings = MqttSettings {
        max_awaiting_rel: 3,
        ..MqttSettings::default()
    };
    // v5: the ones over the limit get PUBREC 0x93 and the connection stays.
    let mut world = pub_sub(settings.clone(), ProtocolVersion::V5, "t");
    for id in 1..=10 {
        world
            .send(PUB, publish("t", QoS::ExactlyOnce, id, b"x"))
            .expect("answered");
        let response = only(world.recv(PUB));
        let expected = if id <= 3 {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
        };
        assert_eq!(pubrec(&response).reason, expected, "id {id}");
    }
    let session = world.conn(PUB).session().expect("session");
    assert_eq!(session.awaiting_rel_len(), 3, "memory bounded");
    assert_eq!(world.broker.routed.len(), 3);
    assert!(world.closed(PUB).is_none());

    // 3.1.1: a PUBREC cannot refuse, so the one over the limit gets no PUBREC (which would
    // promise a message that was dropped): the connection closes instead.
    let mut world = pub_sub(settings, ProtocolVersion::V311, "t");
    for id in 1..=3 {
        world
            .send(PUB, publish("t", QoS::ExactlyOnce, id, b"x"))
            .expect("answered");
        assert_eq!(pubrec(&only(world.recv(PUB))).reason, ReasonCode::SUCCESS);
    }
    let close = world
        .send(PUB, publish("t", QoS::ExactlyOnce, 4, b"x"))
        .expect_err("closed");
    assert_eq!(close.kind, CloseKind::QuotaExceeded);
    assert!(
        world.recv(PUB).is_empty(),
        "no PUBREC for the refused message"
    );
    assert_eq!(world.broker.routed.len(), 3);
}

#[test]
fn unreleased_qos2_ids_expire_after_await_rel_timeout() {
    let timeout = Duration::from_secs(60);
    let settings = MqttSettings {
        max_awaiting_rel: 3,
        await_rel_timeout: timeout,
        ..MqttSettings::default()
    };
    let mut world = pub_sub(settings, ProtocolVersion::V5, "t");
    for id in 1..=3 {
        world
            .send(PUB, publish("t", QoS::ExactlyOnce, id, b"x"))
            .expect("accepted");
    }
    let _ = world.recv(PUB);
    assert_eq!(world.conn(PUB).poll_timeout(), Some(world.now() + timeout));
    world.advance(timeout - Duration::from_secs(1));
    assert_eq!(
        world
            .conn(PUB)
            .session()
            .expect("session")
            .awaiting_rel_len(),
        3
    );
    world.advance(Duration::from_secs(1));
    assert!(world.closed(PUB).is_none());
    let session = world.conn(PUB).session().expect("session");
    assert_eq!(session.awaiting_rel_len(), 0, "expired");
    assert_eq!(world.conn(PUB).poll_timeout(), None);

    // Room again: a new message with an old id is routed.
    world
        .send(PUB, publish("t", QoS::ExactlyOnce, 1, b"x"))
        .expect("accepted");
    assert_eq!(pubrec(&only(world.recv(PUB))).reason, ReasonCode::SUCCESS);
    assert_eq!(world.broker.routed.len(), 4);
}

#[test]
fn v5_more_unreleased_qos2_than_receive_maximum_disconnects() {
    let settings = MqttSettings {
        max_inflight: 2,
        ..MqttSettings::default()
    };
    let mut world = pub_sub(settings, ProtocolVersion::V5, "t");
    for id in 1..=2 {
        world
            .send(PUB, publish("t", QoS::ExactlyOnce, id, b"x"))
            .expect("accepted");
    }
    let close = world
        .send(PUB, publish("t", QoS::ExactlyOnce, 3, b"x"))
        .expect_err("over Receive Maximum");
    assert_eq!(close.code, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    assert_eq!(close.kind, CloseKind::QuotaExceeded);
    let packets = world.recv(PUB);
    assert_eq!(
        disconnect_reason(packets.last().expect("DISCONNECT")),
        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED
    );
    assert_eq!(world.broker.routed.len(), 2);
}

#[test]
fn v5_a_retransmitted_qos2_publish_at_receive_maximum_is_not_a_new_one() {
    // A resent PUBLISH (DUP) for an id already awaiting PUBREL does not add to the count of
    // unacknowledged messages; it is answered with PUBREC like any duplicate.
    let settings = MqttSettings {
        max_inflight: 2,
        ..MqttSettings::default()
    };
    let mut world = pub_sub(settings, ProtocolVersion::V5, "t");
    for id in 1..=2 {
        world
            .send(PUB, publish("t", QoS::ExactlyOnce, id, b"x"))
            .expect("accepted");
    }
    let _ = world.recv(PUB);
    let mut again = publish("t", QoS::ExactlyOnce, 1, b"x");
    again.dup = true;
    world
        .send(PUB, again)
        .expect("a duplicate is not over the quota");
    assert_eq!(pubrec(&only(world.recv(PUB))).reason, ReasonCode::SUCCESS);
    assert_eq!(world.broker.routed.len(), 2);
}
