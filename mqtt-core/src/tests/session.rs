//! Outbound delivery and the session: the inflight window, QoS 2 outbound, resume with DUP,
//! message expiry, Maximum Packet Size, subscription identifiers (RELIABILITY.md test 45).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use super::harness::{World, ack, connect, pid, publish, publishes, subscribe};
use crate::{
    ByteStr, Packet, ProtocolVersion, QoS, ReasonCode, TopicName,
    connection::DeliveryOutcome,
    message::{Delivery, Message},
    packet::{PubResponse, Publish},
    settings::MqttSettings,
};

const PUB: usize = 0;
const SUB: usize = 1;

/// A publisher (0) and a subscriber (1) connected with `sub_connect`, subscribed to `t/#`.
fn setup(settings: MqttSettings, sub_connect: crate::packet::Connect) -> World {
    let mut world = World::new(settings);
    world.add_client(ProtocolVersion::V5);
    world.add_client(ProtocolVersion::V5);
    world.connect_ok(PUB, "pub");
    assert_eq!(world.connect(SUB, sub_connect).reason, ReasonCode::SUCCESS);
    world.subscribe(SUB, subscribe(1, &[("t/#", QoS::ExactlyOnce)]));
    world
}

fn send_all(world: &mut World, qos: QoS, payloads: &[&'static [u8]]) {
    for (i, payload) in payloads.iter().enumerate() {
        let id = u16::try_from(i + 1).expect("few");
        world
            .send(PUB, publish("t/x", qos, id, payload))
            .expect("published");
        if qos == QoS::ExactlyOnce {
            world.send(PUB, Packet::PubRel(ack(id))).expect("released");
        }
    }
    let _ = world.recv(PUB);
}

fn payloads(packets: &[Packet]) -> Vec<Bytes> {
    publishes(packets)
        .iter()
        .map(|p| p.payload.clone())
        .collect()
}

#[test]
fn the_window_is_the_clients_receive_maximum() {
    let mut packet = connect("sub");
    packet.properties.receive_maximum = Some(2);
    let mut world = setup(MqttSettings::default(), packet);
    send_all(&mut world, QoS::AtLeastOnce, &[b"1", b"2", b"3", b"4"]);

    let packets = world.recv(SUB);
    assert_eq!(payloads(&packets), ["1", "2"]);
    assert!(
        !world.conn(SUB).can_deliver(QoS::AtLeastOnce),
        "window full"
    );
    assert!(!world.conn(SUB).can_deliver(QoS::ExactlyOnce));
    assert!(
        world.conn(SUB).can_deliver(QoS::AtMostOnce),
        "QoS 0 needs no slot"
    );
    assert_eq!(world.conn(SUB).window_free(), 0);
    assert_eq!(world.broker.mailboxes["sub"].len(), 2, "the rest waits");

    // Acknowledging the second frees one slot: the third goes out.
    let second = publishes(&packets)[1].packet_id.expect("QoS 1");
    world
        .send(SUB, Packet::PubAck(PubResponse::new(second)))
        .expect("ack");
    assert_eq!(payloads(&world.recv(SUB)), ["3"]);
    assert!(!world.conn(SUB).can_deliver(QoS::AtLeastOnce));

    // An ack for an id not in flight frees nothing.
    world.send(SUB, Packet::PubAck(ack(999))).expect("ignored");
    assert!(world.recv(SUB).is_empty());

    let first = publishes(&packets)[0].packet_id.expect("QoS 1");
    world
        .send(SUB, Packet::PubAck(PubResponse::new(first)))
        .expect("ack");
    assert_eq!(payloads(&world.recv(SUB)), ["4"]);
    assert!(world.broker.mailboxes["sub"].is_empty());
    assert!(
        !world.conn(SUB).can_deliver(QoS::AtLeastOnce),
        "3 and 4 in flight"
    );
    world.send(SUB, Packet::PubAck(ack(3))).expect("ack");
    assert!(world.conn(SUB).can_deliver(QoS::AtLeastOnce));
}

#[test]
fn the_window_is_max_inflight_when_lower() {
    let mut packet = connect("sub");
    packet.properties.receive_maximum = Some(100);
    let settings = MqttSettings {
        max_inflight: 3,
        ..MqttSettings::default()
    };
    let mut world = setup(settings, packet);
    send_all(
        &mut world,
        QoS::ExactlyOnce,
        &[b"1", b"2", b"3", b"4", b"5"],
    );
    let packets = world.recv(SUB);
    assert_eq!(payloads(&packets), ["1", "2", "3"]);
    let ids: Vec<u16> = publishes(&packets)
        .iter()
        .map(|p| p.packet_id.expect("QoS 2").get())
        .collect();
    assert_eq!(ids, [1, 2, 3], "distinct ids, in order");
    assert!(!world.conn(SUB).can_deliver(QoS::ExactlyOnce));
}

#[test]
fn qos2_outbound_handshake() {
    let mut world = setup(MqttSettings::default(), connect("sub"));
    send_all(&mut world, QoS::ExactlyOnce, &[b"m"]);
    let packets = world.recv(SUB);
    let delivered = publishes(&packets);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].qos, QoS::ExactlyOnce);
    assert!(!delivered[0].dup);
    let id = delivered[0].packet_id.expect("QoS 2");
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        1
    );

    world
        .send(SUB, Packet::PubRec(PubResponse::new(id)))
        .expect("PUBREC");
    match world.recv(SUB).as_slice() {
        [Packet::PubRel(rel)] => {
            assert_eq!(rel.packet_id, id);
            assert_eq!(rel.reason, ReasonCode::SUCCESS);
        }
        other => panic!("expected PUBREL, got {other:?}"),
    }
    // Still in flight until PUBCOMP.
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        1
    );
    // A repeated PUBREC is answered with PUBREL again.
    world
        .send(SUB, Packet::PubRec(PubResponse::new(id)))
        .expect("PUBREC");
    assert!(matches!(world.recv(SUB).as_slice(), [Packet::PubRel(_)]));
    // A PUBACK for a QoS 2 message does not complete it.
    world
        .send(SUB, Packet::PubAck(PubResponse::new(id)))
        .expect("ignored");
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        1
    );

    world
        .send(SUB, Packet::PubComp(PubResponse::new(id)))
        .expect("PUBCOMP");
    assert!(world.recv(SUB).is_empty());
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        0
    );
}

#[test]
fn qos2_outbound_refused_by_pubrec_error_frees_the_slot() {
    let mut packet = connect("sub");
    packet.properties.receive_maximum = Some(1);
    let mut world = setup(MqttSettings::default(), packet);
    send_all(&mut world, QoS::ExactlyOnce, &[b"1", b"2"]);
    let packets = world.recv(SUB);
    let id = publishes(&packets)[0].packet_id.expect("QoS 2");
    let mut refusal = PubResponse::new(id);
    refusal.reason = ReasonCode::QUOTA_EXCEEDED;
    world.send(SUB, Packet::PubRec(refusal)).expect("refused");
    // No PUBREL for a refused message; the next one goes out.
    assert_eq!(payloads(&world.recv(SUB)), ["2"]);
}

fn persistent(client_id: &str) -> crate::packet::Connect {
    let mut packet = connect(client_id);
    packet.properties.session_expiry_interval = Some(600);
    packet
}

fn resumed(client_id: &str) -> crate::packet::Connect {
    let mut packet = persistent(client_id);
    packet.clean_start = false;
    packet
}

#[test]
fn resume_resends_unacknowledged_publishes_with_dup_and_pending_pubrels() {
    // RELIABILITY.md test 45, within one broker process.
    let mut world = setup(MqttSettings::default(), persistent("sub"));
    world
        .send(PUB, publish("t/1", QoS::AtLeastOnce, 1, b"a"))
        .expect("published");
    world
        .send(PUB, publish("t/2", QoS::ExactlyOnce, 2, b"b"))
        .expect("published");
    world
        .send(PUB, publish("t/3", QoS::ExactlyOnce, 3, b"c"))
        .expect("published");
    world
        .send(PUB, publish("t/4", QoS::AtLeastOnce, 4, b"d"))
        .expect("published");
    let first = world.recv(SUB);
    let sent = publishes(&first);
    assert_eq!(sent.len(), 4);
    let ids: Vec<_> = sent.iter().map(|p| p.packet_id.expect("QoS > 0")).collect();
    // "a" stays unacknowledged; "b" is PUBREC'd (PUBREL sent, no PUBCOMP); "c" is
    // PUBREC'd and PUBCOMP'd; "d" is acknowledged.
    world
        .send(SUB, Packet::PubRec(PubResponse::new(ids[1])))
        .expect("ok");
    world
        .send(SUB, Packet::PubRec(PubResponse::new(ids[2])))
        .expect("ok");
    world
        .send(SUB, Packet::PubComp(PubResponse::new(ids[2])))
        .expect("ok");
    world
        .send(SUB, Packet::PubAck(PubResponse::new(ids[3])))
        .expect("ok");
    let _ = world.recv(SUB);

    world.drop_socket(SUB);
    // While offline, a new message is queued for the session.
    world
        .send(PUB, publish("t/5", QoS::AtLeastOnce, 5, b"e"))
        .expect("published");
    assert_eq!(world.broker.mailboxes["sub"].len(), 1);

    let connack = world.connect(SUB, resumed("sub"));
    assert!(connack.session_present);
    let packets = world.recv(SUB);
    assert_eq!(packets.len(), 3, "{packets:?}");
    match &packets[0] {
        Packet::Publish(p) => {
            assert!(p.dup);
            assert_eq!(p.packet_id, Some(ids[0]));
            assert_eq!(p.topic, "t/1");
            assert_eq!(p.payload, "a");
            assert_eq!(p.qos, QoS::AtLeastOnce);
        }
        other => panic!("expected the resent PUBLISH, got {other:?}"),
    }
    match &packets[1] {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, ids[1]),
        other => panic!("expected the resent PUBREL, got {other:?}"),
    }
    match &packets[2] {
        Packet::Publish(p) => {
            assert!(!p.dup, "a first delivery is not a duplicate");
            assert_eq!(p.payload, "e");
            assert!(!ids.contains(&p.packet_id.expect("QoS 1")), "fresh id");
        }
        other => panic!("expected the queued PUBLISH, got {other:?}"),
    }
}

#[test]
fn v311_persistent_session_resumes_too() {
    let mut world = World::new(MqttSettings::default());
    world.add_client(ProtocolVersion::V311);
    world.add_client(ProtocolVersion::V311);
    world.connect_ok(PUB, "pub");
    let mut packet = connect("sub");
    packet.clean_start = false;
    world.connect(SUB, packet.clone());
    world.subscribe(SUB, subscribe(1, &[("t", QoS::AtLeastOnce)]));
    for (id, payload) in [(1, b"1"), (2, b"2")] {
        world
            .send(PUB, publish("t", QoS::AtLeastOnce, id, payload))
            .expect("published");
    }
    assert_eq!(publishes(&world.recv(SUB)).len(), 2);
    world.drop_socket(SUB);
    let connack = world.connect(SUB, packet);
    assert!(connack.session_present);
    let packets = world.recv(SUB);
    let resent = publishes(&packets);
    assert_eq!(resent.len(), 2);
    assert!(resent.iter().all(|p| p.dup));
    assert_eq!(payloads(&packets), ["1", "2"], "in the original order");

    // A clean session throws it all away.
    world.drop_socket(SUB);
    let connack = world.connect(SUB, connect("sub"));
    assert!(!connack.session_present);
    assert!(world.recv(SUB).is_empty());
    assert_eq!(world.broker.routes.len(), 0, "old routes removed");
}

fn message(
    topic: &str,
    payload: &'static [u8],
    expires_in: Option<Duration>,
    world: &World,
) -> Arc<Message> {
    Arc::new(Message {
        topic: TopicName::new(ByteStr::from(topic), 128).expect("topic"),
        payload: Bytes::from_static(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
        expires_at: expires_in.map(|d| world.now() + d),
        publisher: ByteStr::from("someone"),
        wire: crate::message::WireCache::default(),
    })
}

fn delivery(message: Arc<Message>, qos: QoS) -> Delivery {
    Delivery {
        message,
        qos,
        retain: false,
        subscription_ids: Vec::new(),
        share: None,
    }
}

#[test]
fn expired_deliveries_are_dropped_and_the_remaining_interval_forwarded() {
    let mut world = setup(MqttSettings::default(), persistent("sub"));
    let mut packet = publish("t/x", QoS::AtLeastOnce, 1, b"short");
    packet.properties.message_expiry_interval = Some(5);
    world.send(PUB, packet).expect("published");
    let mut packet = publish("t/x", QoS::AtLeastOnce, 2, b"long");
    packet.properties.message_expiry_interval = Some(100);
    world.send(PUB, packet).expect("published");
    // Delivered at once: the full interval is forwarded.
    let packets = world.recv(SUB);
    let expiries: Vec<_> = publishes(&packets)
        .iter()
        .map(|p| p.properties.message_expiry_interval)
        .collect();
    assert_eq!(expiries, [Some(5), Some(100)]);
    for p in publishes(&packets) {
        world
            .send(
                SUB,
                Packet::PubAck(PubResponse::new(p.packet_id.expect("QoS 1"))),
            )
            .expect("ack");
    }

    // Offline: both queued; 10 s later only "long" is alive, with 90 s left.
    world.drop_socket(SUB);
    let mut packet = publish("t/x", QoS::AtLeastOnce, 3, b"short");
    packet.properties.message_expiry_interval = Some(5);
    world.send(PUB, packet).expect("published");
    let mut packet = publish("t/x", QoS::AtLeastOnce, 4, b"long");
    packet.properties.message_expiry_interval = Some(100);
    world.send(PUB, packet).expect("published");
    world.advance(Duration::from_secs(10));
    world.connect(SUB, resumed("sub"));
    let packets = world.recv(SUB);
    let sent = publishes(&packets);
    assert_eq!(sent.len(), 1, "{packets:?}");
    assert_eq!(sent[0].payload, "long");
    assert_eq!(sent[0].properties.message_expiry_interval, Some(90));
    assert_eq!(
        world.clients[SUB].outcomes,
        [DeliveryOutcome::Expired, DeliveryOutcome::Sent]
    );
    // An expired delivery takes no window slot.
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        1
    );
}

#[test]
fn an_expired_delivery_is_dropped_by_handle_delivery() {
    let mut world = setup(MqttSettings::default(), connect("sub"));
    let m = message("t/x", b"x", Some(Duration::from_secs(1)), &world);
    world.advance(Duration::from_secs(1));
    let now = world.now();
    let outcome = world
        .conn_mut(SUB)
        .handle_delivery(now, delivery(m, QoS::AtLeastOnce));
    assert_eq!(outcome, DeliveryOutcome::Expired);
    assert!(world.recv(SUB).is_empty());
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        0
    );

    // 1.5 s left is forwarded as 2 (rounded up, never 0).
    let m = message("t/x", b"x", Some(Duration::from_millis(1500)), &world);
    let now = world.now();
    let outcome = world
        .conn_mut(SUB)
        .handle_delivery(now, delivery(m, QoS::AtMostOnce));
    assert_eq!(outcome, DeliveryOutcome::Sent);
    let packets = world.recv(SUB);
    assert_eq!(
        publishes(&packets)[0].properties.message_expiry_interval,
        Some(2)
    );
}

#[test]
fn a_delivery_larger_than_the_clients_maximum_is_dropped() {
    let mut packet = connect("sub");
    packet.properties.maximum_packet_size = Some(64);
    packet.properties.receive_maximum = Some(1);
    let mut world = setup(MqttSettings::default(), packet);
    world
        .send(PUB, publish("t/x", QoS::AtLeastOnce, 1, &[b'x'; 100]))
        .expect("published");
    world
        .send(PUB, publish("t/x", QoS::AtLeastOnce, 2, b"small"))
        .expect("published");
    assert_eq!(
        world.clients[SUB].outcomes,
        [DeliveryOutcome::TooLarge, DeliveryOutcome::Sent]
    );
    let packets = world.recv(SUB);
    assert_eq!(payloads(&packets), ["small"], "the window slot was freed");
    let sent = publishes(&packets)[0];
    assert_eq!(sent.packet_id, Some(pid(2)));
    assert_eq!(
        world.conn(SUB).session().expect("session").inflight_len(),
        1
    );

    // Directly: QoS 0 too, nothing written.
    world
        .send(SUB, Packet::PubAck(PubResponse::new(pid(2))))
        .expect("ack");
    let big: &'static [u8] = &[b'y'; 200];
    let m = message("t/x", big, None, &world);
    let now = world.now();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let outcome = world
            .conn_mut(SUB)
            .handle_delivery(now, delivery(Arc::clone(&m), qos));
        assert_eq!(outcome, DeliveryOutcome::TooLarge);
        assert!(world.conn(SUB).can_deliver(qos));
    }
    assert!(world.conn(SUB).transmit().is_empty());
}

#[test]
fn a_too_large_delivery_does_not_consume_an_outbound_alias() {
    let mut packet = connect("sub");
    packet.properties.maximum_packet_size = Some(64);
    packet.properties.topic_alias_maximum = Some(1);
    let mut world = setup(MqttSettings::default(), packet);
    world
        .send(PUB, publish("t/big", QoS::AtMostOnce, 0, &[b'x'; 100]))
        .expect("published");
    world
        .send(PUB, publish("t/small", QoS::AtMostOnce, 0, b"s"))
        .expect("published");
    world
        .send(PUB, publish("t/small", QoS::AtMostOnce, 0, b"s"))
        .expect("published");
    let packets = world.recv(SUB);
    let seen: Vec<(String, Option<u16>)> = publishes(&packets)
        .iter()
        .map(|p| (p.topic.to_string(), p.properties.topic_alias))
        .collect();
    assert_eq!(
        seen,
        [("t/small".to_owned(), Some(1)), (String::new(), Some(1))]
    );
}

#[test]
fn subscription_identifiers_are_forwarded() {
    let mut world = World::new(MqttSettings::default());
    world.add_client(ProtocolVersion::V5);
    world.add_client(ProtocolVersion::V5);
    world.connect_ok(PUB, "pub");
    world.connect_ok(SUB, "sub");
    let mut first = subscribe(1, &[("a/+", QoS::AtLeastOnce)]);
    first.properties.subscription_identifier = Some(7);
    world.subscribe(SUB, first);
    let mut second = subscribe(2, &[("a/b", QoS::AtMostOnce)]);
    second.properties.subscription_identifier = Some(300_000);
    world.subscribe(SUB, second);
    world.subscribe(SUB, subscribe(3, &[("a/c", QoS::AtMostOnce)]));

    world
        .send(PUB, publish("a/b", QoS::AtLeastOnce, 1, b"x"))
        .expect("published");
    world
        .send(PUB, publish("a/c", QoS::AtLeastOnce, 2, b"y"))
        .expect("published");
    let packets = world.recv(SUB);
    let sent: Vec<&Publish> = publishes(&packets);
    assert_eq!(
        sent.len(),
        2,
        "one copy per message, overlapping filters merged"
    );
    let mut ids = sent[0].properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, [7, 300_000]);
    assert_eq!(sent[0].qos, QoS::AtLeastOnce, "the highest granted QoS");
    assert_eq!(sent[1].properties.subscription_identifiers, [7]);
    // Another subscriber's identifiers are not mixed in.
    world.add_client(ProtocolVersion::V5);
    world.connect_ok(2, "other");
    world.subscribe(2, subscribe(1, &[("a/b", QoS::AtMostOnce)]));
    world
        .send(PUB, publish("a/b", QoS::AtMostOnce, 0, b"z"))
        .expect("published");
    let packets = world.recv(2);
    assert!(
        publishes(&packets)[0]
            .properties
            .subscription_identifiers
            .is_empty()
    );
}

#[test]
fn a_message_with_many_subscribers_is_encoded_once_and_reads_the_same_everywhere() {
    // Subscribers of both versions, one with a subscription identifier (which opts it out of
    // the shared encoding), and the RETAIN flag set for one delivery only.
    let mut world = World::new(MqttSettings::default());
    let v311 = world.add_client(ProtocolVersion::V311);
    let v5 = world.add_client(ProtocolVersion::V5);
    let v5_id = world.add_client(ProtocolVersion::V5);
    for (c, id) in [(v311, "a"), (v5, "b"), (v5_id, "c")] {
        world.connect_ok(c, id);
    }
    let mut m = Message {
        topic: TopicName::new(ByteStr::from("t/fan"), 128).expect("topic"),
        payload: Bytes::from_static(b"payload"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
        expires_at: None,
        publisher: ByteStr::from("someone"),
        wire: crate::message::WireCache::default(),
    };
    m.properties.content_type = Some(ByteStr::from("text/plain"));
    m.properties.user_properties = vec![(ByteStr::from("k"), ByteStr::from("v"))];
    let m = Arc::new(m);
    // Held by other pending deliveries, as in a fan-out.
    let others = [Arc::clone(&m), Arc::clone(&m)];
    let now = world.now();
    for (c, retain, ids) in [
        (v311, false, vec![]),
        (v311, true, vec![]),
        (v5, false, vec![]),
        (v5_id, false, vec![7]),
    ] {
        let mut d = delivery(Arc::clone(&m), QoS::AtMostOnce);
        d.retain = retain;
        d.subscription_ids = ids;
        assert_eq!(
            world.conn_mut(c).handle_delivery(now, d),
            DeliveryOutcome::Sent
        );
    }
    assert!(
        m.wire.is_filled(),
        "encoded for the first version that asked"
    );
    let got = |world: &mut World, c| -> Vec<Publish> {
        publishes(&world.recv(c)).into_iter().cloned().collect()
    };
    let a = got(&mut world, v311);
    assert_eq!(a.len(), 2);
    for (p, retain) in a.iter().zip([false, true]) {
        assert_eq!(
            (p.topic.as_str(), &p.payload[..], p.retain),
            ("t/fan", &b"payload"[..], retain)
        );
        assert_eq!(p.qos, QoS::AtMostOnce);
    }
    let b = got(&mut world, v5);
    assert_eq!(b[0].properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(b[0].properties.user_properties.len(), 1);
    assert!(!b[0].retain);
    let c = got(&mut world, v5_id);
    assert_eq!(c[0].properties.subscription_identifiers, [7]);
    assert_eq!(c[0].properties.content_type.as_deref(), Some("text/plain"));

    // A fresh copy, asked for by v5 first: the v5 encoding is the shared one now.
    let m2 = Arc::new(Message::clone(&m));
    assert!(!m2.wire.is_filled(), "a clone starts with no encoding");
    let more = [Arc::clone(&m2), Arc::clone(&m2)];
    for (c, retain) in [(v5, true), (v5, false), (v311, true)] {
        let mut d = delivery(Arc::clone(&m2), QoS::AtMostOnce);
        d.retain = retain;
        assert_eq!(
            world.conn_mut(c).handle_delivery(now, d),
            DeliveryOutcome::Sent
        );
    }
    let b = got(&mut world, v5);
    assert_eq!(b.len(), 2);
    for (p, retain) in b.iter().zip([true, false]) {
        assert_eq!(p.retain, retain);
        assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.properties.user_properties.len(), 1);
        assert_eq!(&p.payload[..], b"payload");
    }
    let a = got(&mut world, v311);
    assert_eq!(
        (a.len(), a[0].retain, &a[0].payload[..]),
        (1, true, &b"payload"[..])
    );
    drop((others, more));
}
