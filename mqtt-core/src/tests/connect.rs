//! CONNECT, CONNACK, DISCONNECT and the Will (RELIABILITY.md tests 5, 6, 46).

use std::time::Duration;

use bytes::Bytes;

use super::harness::{World, ack, connect, disconnect, disconnect_reason, only, pid};
use crate::{
    ByteStr, Packet, ProtocolVersion, QoS, ReasonCode,
    connection::CloseKind,
    packet::{AckProperties, Auth, ConnAck, DisconnectPropertyValues, SubAck, UnsubAck, Will},
    settings::MqttSettings,
};

fn v5() -> World {
    World::with_client(ProtocolVersion::V5)
}

fn v311() -> World {
    World::with_client(ProtocolVersion::V311)
}

#[test]
fn version_is_read_from_connect() {
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        let mut world = World::with_client(version);
        let connack = world.connect(0, connect("c"));
        assert_eq!(connack.reason, ReasonCode::SUCCESS);
        assert_eq!(world.conn(0).version(), version);
        assert!(world.conn(0).is_connected());
        assert_eq!(world.conn(0).client_id(), "c");
        // Only v5 carries CONNACK properties.
        assert_eq!(
            connack.properties.receive_maximum.is_some(),
            version.is_v5(),
            "{version:?}"
        );
    }
}

#[test]
fn v5_connack_advertises_the_server_limits() {
    let mut world = v5();
    let connack = world.connect_ok(0, "c");
    let defaults = MqttSettings::default();
    assert!(!connack.session_present);
    let p = &connack.properties;
    assert_eq!(p.receive_maximum, Some(defaults.max_inflight));
    assert_eq!(p.maximum_packet_size, Some(defaults.max_packet_size));
    assert_eq!(p.topic_alias_maximum, Some(defaults.max_topic_alias));
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.server_keep_alive, None);
    assert_eq!(p.maximum_qos, None, "QoS 2 is the default and is not sent");
    assert_eq!(p.retain_available, None);
}

#[test]
fn v5_connack_reflects_restricted_settings() {
    let mut world = World::with_settings(
        MqttSettings {
            max_inflight: 7,
            max_packet_size: 4096,
            max_topic_alias: 0,
            max_qos_allowed: QoS::AtLeastOnce,
            retain_available: false,
            wildcard_subscription: false,
            shared_subscription: false,
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
    );
    let p = world.connect_ok(0, "c").properties;
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.topic_alias_maximum, None, "0 disables aliases");
    assert_eq!(p.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(p.retain_available, Some(false));
    assert_eq!(p.wildcard_subscription_available, Some(false));
    assert_eq!(p.shared_subscription_available, Some(false));
}

#[test]
fn v5_empty_client_id_is_assigned() {
    let mut world = v5();
    let connack = world.connect_ok(0, "");
    let assigned = connack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("Assigned Client Identifier");
    assert!(!assigned.is_empty());
    assert_eq!(world.conn(0).client_id(), &assigned);
    let request = world.broker.connects.last().expect("connect request");
    assert!(request.assigned_client_id);
    assert_eq!(request.client_id, assigned);

    // Two connections get two different ids.
    world.add_client(ProtocolVersion::V5);
    let other = world.connect_ok(1, "");
    assert_ne!(other.properties.assigned_client_identifier, Some(assigned));
}

#[test]
fn v311_empty_client_id_with_clean_session_is_assigned() {
    let mut world = v311();
    let connack = world.connect_ok(0, "");
    assert_eq!(connack.properties.assigned_client_identifier, None);
    assert!(!world.conn(0).client_id().is_empty());
}

#[test]
fn v311_empty_client_id_without_clean_session_is_identifier_rejected() {
    let mut world = v311();
    let mut packet = connect("");
    packet.clean_start = false;
    let connack = world.connect(0, packet);
    // 3.1.1 return code 0x02 Identifier rejected [MQTT-3.1.3-8], then close.
    assert_eq!(connack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert_eq!(connack.reason.to_v311_connack(), 2);
    let close = world.closed(0).expect("closed");
    assert_eq!(close.kind, CloseKind::ConnectRefused);
    assert!(!close.publish_will);
    assert!(world.broker.connects.is_empty(), "never reached the broker");
}

#[test]
fn v311_refused_connect_is_answered_with_its_return_code() {
    let mut world = v311();
    world.broker.refuse_next_connect = Some(ReasonCode::BAD_USERNAME_OR_PASSWORD);
    let connack = world.connect(0, connect("c"));
    assert_eq!(connack.reason.to_v311_connack(), 4);
    assert_eq!(
        world.closed(0).expect("closed").kind,
        CloseKind::NotAuthorized
    );
}

#[test]
fn v5_refused_connect_gets_connack_with_the_reason() {
    let mut world = v5();
    world.broker.refuse_next_connect = Some(ReasonCode::NOT_AUTHORIZED);
    let mut packet = connect("c");
    packet.will = Some(will("w"));
    let connack = world.connect(0, packet);
    assert_eq!(connack.reason, ReasonCode::NOT_AUTHORIZED);
    assert!(!world.closed(0).expect("closed").publish_will);
    assert!(world.broker.wills.is_empty());
    assert!(world.conn_mut(0).take_will().is_none());
}

#[test]
fn second_connect_is_a_protocol_error() {
    // RELIABILITY.md test 5.
    let mut world = v5();
    world.connect_ok(0, "c");
    let close = world
        .send(0, connect("c"))
        .expect_err("second CONNECT closes");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert_eq!(close.kind, CloseKind::ProtocolError);
    assert_eq!(
        disconnect_reason(&only(world.recv(0))),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(world.broker.connects.len(), 1, "the broker saw one CONNECT");
}

#[test]
fn second_connect_closes_a_v311_connection_silently() {
    let mut world = v311();
    world.connect_ok(0, "c");
    let mut packet = connect("c");
    packet.protocol = ProtocolVersion::V311;
    let close = world.send(0, packet).expect_err("second CONNECT closes");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert!(
        world.recv(0).is_empty(),
        "3.1.1 has no DISCONNECT from the server"
    );
}

#[test]
fn server_only_packets_are_protocol_errors() {
    // RELIABILITY.md test 6 (Mosquitto CVE-2021-28166: a crafted CONNACK from a client).
    let server_only = [
        Packet::ConnAck(ConnAck::default()),
        Packet::SubAck(SubAck {
            packet_id: pid(1),
            properties: AckProperties::default(),
            reason_codes: vec![ReasonCode::SUCCESS],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(1),
            properties: AckProperties::default(),
            reason_codes: vec![ReasonCode::SUCCESS],
        }),
        Packet::PingResp,
        // No enhanced authentication is offered, so AUTH is out of place too.
        Packet::Auth(Auth::default()),
    ];
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for packet in &server_only {
            if matches!(packet, Packet::Auth(_)) && !version.is_v5() {
                continue;
            }
            let mut world = World::with_client(version);
            world.connect_ok(0, "c");
            let close = world.send(0, packet.clone()).expect_err("refused");
            assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR, "{packet:?}");
            assert!(close.publish_will, "an abnormal end");
            let sent = world.recv(0);
            if version.is_v5() {
                assert_eq!(disconnect_reason(&only(sent)), ReasonCode::PROTOCOL_ERROR);
            } else {
                assert!(sent.is_empty());
            }
        }
    }
}

#[test]
fn a_packet_before_connect_closes_without_an_answer() {
    let mut world = v5();
    let close = world.send(0, Packet::PingReq).expect_err("refused");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert!(!close.publish_will);
    assert!(world.recv(0).is_empty(), "the version is not known yet");
    assert!(world.broker.connects.is_empty());

    // Straight into handle_packet (the decoder already refuses it): the same.
    let mut world = v5();
    world.open(0);
    let now = world.now();
    let close = world
        .conn_mut(0)
        .handle_packet(now, Packet::PubAck(ack(1)))
        .expect_err("refused");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert!(!world.conn(0).is_connected());
}

#[test]
fn session_expiry_is_capped() {
    let cap = MqttSettings::default().session_expiry_interval;
    let cap_secs = u32::try_from(cap.as_secs()).expect("small cap");
    for (requested, used, told) in [
        (None, 0, None),
        (Some(60), 60, None),
        (Some(cap_secs + 1), cap_secs, Some(cap_secs)),
        // "Never expires" is capped too, and the client must be told.
        (Some(u32::MAX), cap_secs, Some(cap_secs)),
    ] {
        let mut world = v5();
        let mut packet = connect("c");
        packet.properties.session_expiry_interval = requested;
        let connack = world.connect(0, packet);
        assert_eq!(connack.reason, ReasonCode::SUCCESS);
        assert_eq!(
            connack.properties.session_expiry_interval, told,
            "requested {requested:?}"
        );
        assert_eq!(
            world.conn(0).session_expiry(),
            Duration::from_secs(used.into())
        );
        assert_eq!(
            world.broker.connects[0].session_expiry,
            Duration::from_secs(used.into())
        );
    }
}

#[test]
fn a_fractional_expiry_cap_rounds_up_to_whole_seconds() {
    // The protocol counts the interval in seconds: a configured half second keeps a session
    // for one, it does not end it at the disconnect.
    let settings = MqttSettings {
        session_expiry_interval: Duration::from_millis(1500),
        ..MqttSettings::default()
    };
    let mut world = World::with_settings(settings, ProtocolVersion::V5);
    let mut packet = connect("c");
    packet.properties.session_expiry_interval = Some(60);
    let connack = world.connect(0, packet);
    assert_eq!(connack.properties.session_expiry_interval, Some(2));
    assert_eq!(world.conn(0).session_expiry(), Duration::from_secs(2));
    assert_eq!(
        world.broker.connects[0].session_expiry,
        Duration::from_secs(2)
    );
}

#[test]
fn v311_persistent_session_gets_the_configured_expiry() {
    let mut world = v311();
    let mut packet = connect("c");
    packet.clean_start = false;
    world.connect(0, packet);
    assert_eq!(
        world.conn(0).session_expiry(),
        MqttSettings::default().session_expiry_interval
    );
    world.connect(0, connect("c"));
    assert!(world.conn(0).session_expiry().is_zero());
}

fn disconnect_with_expiry(expiry: u32) -> crate::packet::Disconnect {
    crate::packet::Disconnect {
        reason: ReasonCode::SUCCESS,
        properties: DisconnectPropertyValues {
            session_expiry_interval: Some(expiry),
            ..DisconnectPropertyValues::default()
        }
        .into(),
    }
}

#[test]
fn disconnect_updates_the_session_expiry() {
    let mut world = v5();
    let mut packet = connect("c");
    packet.properties.session_expiry_interval = Some(60);
    world.connect(0, packet);
    let close = world
        .send(0, disconnect_with_expiry(600))
        .expect_err("closed");
    assert_eq!(close.kind, CloseKind::Normal);
    assert_eq!(world.conn(0).session_expiry(), Duration::from_secs(600));
    assert!(world.recv(0).is_empty());
    assert!(world.broker.stored.contains_key("c"), "session kept");

    // The update is capped like the CONNECT value.
    let mut world = v5();
    let mut packet = connect("c");
    packet.properties.session_expiry_interval = Some(60);
    world.connect(0, packet);
    let _ = world.send(0, disconnect_with_expiry(u32::MAX));
    assert_eq!(
        world.conn(0).session_expiry(),
        MqttSettings::default().session_expiry_interval
    );

    // Down to 0: the session ends with the connection.
    let mut world = v5();
    let mut packet = connect("c");
    packet.properties.session_expiry_interval = Some(60);
    world.connect(0, packet);
    let _ = world.send(0, disconnect_with_expiry(0));
    assert!(world.conn(0).session_expiry().is_zero());
    assert!(!world.broker.stored.contains_key("c"));
}

#[test]
fn disconnect_cannot_extend_a_zero_session_expiry() {
    // [MQTT-3.14.2-2].
    let mut world = v5();
    world.connect_ok(0, "c");
    let close = world
        .send(0, disconnect_with_expiry(30))
        .expect_err("closed");
    assert_eq!(close.code, ReasonCode::PROTOCOL_ERROR);
    assert_eq!(close.kind, CloseKind::ProtocolError);
    assert!(world.conn(0).session_expiry().is_zero());
    assert_eq!(
        disconnect_reason(&only(world.recv(0))),
        ReasonCode::PROTOCOL_ERROR
    );
    assert!(!world.broker.stored.contains_key("c"));
}

fn will(topic: &str) -> Will {
    Will {
        topic: ByteStr::from(topic),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        ..Will::default()
    }
}

fn connect_with_will(world: &mut World) {
    let mut packet = connect("c");
    packet.will = Some(will("last/will"));
    assert_eq!(world.connect(0, packet).reason, ReasonCode::SUCCESS);
}

#[test]
fn normal_disconnect_discards_the_will() {
    // RELIABILITY.md test 46.
    let mut world = v5();
    connect_with_will(&mut world);
    let close = world
        .send(0, disconnect(ReasonCode::SUCCESS))
        .expect_err("closed");
    assert_eq!(close.kind, CloseKind::Normal);
    assert!(!close.publish_will);
    assert!(world.conn_mut(0).take_will().is_none(), "Will cleared");
    assert!(world.broker.wills.is_empty());
}

#[test]
fn disconnect_with_will_keeps_the_will() {
    let mut world = v5();
    connect_with_will(&mut world);
    let close = world
        .send(0, disconnect(ReasonCode::DISCONNECT_WITH_WILL))
        .expect_err("closed");
    assert_eq!(close.kind, CloseKind::Normal);
    assert!(close.publish_will);
    assert_eq!(world.broker.wills.len(), 1);
    assert_eq!(world.broker.wills[0].message.topic.as_str(), "last/will");
    assert_eq!(world.broker.wills[0].message.publisher, "c");
}

#[test]
fn abnormal_ends_publish_the_will() {
    let mut world = v5();
    connect_with_will(&mut world);
    let close = world.drop_socket(0);
    assert_eq!(close.kind, CloseKind::SocketClosed);
    assert!(close.publish_will);
    assert_eq!(world.broker.wills.len(), 1);

    // A 3.1.1 client that breaks the protocol: Will published too.
    let mut world = v311();
    connect_with_will(&mut world);
    let close = world.send(0, Packet::PingResp).expect_err("closed");
    assert!(close.publish_will);
    assert_eq!(world.broker.wills.len(), 1);
}

#[test]
fn a_will_on_a_dollar_topic_is_refused() {
    let mut world = v5();
    let mut packet = connect("c");
    packet.will = Some(will("$SYS/broker/x"));
    let connack = world.connect(0, packet);
    assert_eq!(connack.reason, ReasonCode::TOPIC_NAME_INVALID);
}

#[test]
fn idle_timeout_before_connect() {
    let mut world = v5();
    world.open(0);
    let idle = MqttSettings::default().idle_timeout;
    assert_eq!(world.conn(0).poll_timeout(), Some(world.now() + idle));
    world.advance(idle - Duration::from_millis(1));
    assert!(world.closed(0).is_none());
    world.advance(Duration::from_millis(1));
    let close = world.closed(0).expect("closed at idle_timeout");
    assert_eq!(close.kind, CloseKind::IdleTimeout);
    assert!(!close.publish_will);
    assert!(world.recv(0).is_empty(), "nothing to say to a silent peer");
}

#[test]
fn a_partial_connect_does_not_extend_the_idle_timeout() {
    // Slowloris (RELIABILITY.md test 29): bytes trickling in do not reset the idle timer.
    let mut world = v5();
    world.open(0);
    let mut bytes = bytes::BytesMut::new();
    let mut packet = connect("a-client-id-long-enough-to-take-more-than-the-idle-timeout");
    packet.protocol = ProtocolVersion::V5;
    crate::codec::encode(
        &Packet::Connect(Box::new(packet)),
        ProtocolVersion::V5,
        &mut bytes,
    )
    .expect("encodes");
    for byte in &bytes[..bytes.len() - 1] {
        world.send_bytes(0, &[*byte]).expect("partial");
        world.advance(Duration::from_secs(1));
        if world.closed(0).is_some() {
            break;
        }
    }
    let close = world.closed(0).expect("closed while dribbling");
    assert_eq!(close.kind, CloseKind::IdleTimeout);
}
