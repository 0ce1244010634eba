//! Keep alive: closed after 1.5 × the period of silence, kept alive by any packet
//! (RELIABILITY.md test 33), and the server's caps on the client's value.

use std::time::Duration;

use super::harness::{World, connect, disconnect_reason, only};
use crate::{Packet, ProtocolVersion, ReasonCode, connection::CloseKind, settings::MqttSettings};

fn connect_with_keep_alive(world: &mut World, keep_alive: u16) -> crate::packet::ConnAck {
    let mut packet = connect("c");
    packet.keep_alive = keep_alive;
    let connack = world.connect(0, packet);
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    connack
}

#[test]
fn keepalive_timeout_at_one_and_a_half_periods() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut world = World::with_client(version);
        connect_with_keep_alive(&mut world, 10);
        assert_eq!(
            world.conn(0).poll_timeout(),
            Some(world.now() + Duration::from_secs(15))
        );
        world.advance(Duration::from_millis(14_999));
        assert!(world.closed(0).is_none(), "{version:?}: alive at 14.999 s");
        world.advance(Duration::from_millis(1));
        let close = world.closed(0).expect("closed at 15 s");
        assert_eq!(close.kind, CloseKind::KeepaliveTimeout);
        assert_eq!(close.code, ReasonCode::KEEP_ALIVE_TIMEOUT);
        assert!(close.publish_will, "a keep-alive timeout is abnormal");
        let sent = world.recv(0);
        if version.is_v5() {
            assert_eq!(
                disconnect_reason(&only(sent)),
                ReasonCode::KEEP_ALIVE_TIMEOUT
            );
        } else {
            assert!(sent.is_empty());
        }
    }
}

#[test]
fn pingreq_keeps_the_connection_alive() {
    let mut world = World::with_client(ProtocolVersion::V5);
    connect_with_keep_alive(&mut world, 10);
    for _ in 0..10 {
        world.advance(Duration::from_secs(14));
        world.send(0, Packet::PingReq).expect("alive");
        assert_eq!(only(world.recv(0)), Packet::PingResp);
    }
    assert!(world.closed(0).is_none());
    assert_eq!(
        world.conn(0).poll_timeout(),
        Some(world.now() + Duration::from_secs(15))
    );
    world.advance(Duration::from_secs(15));
    assert_eq!(
        world.closed(0).expect("closed").kind,
        CloseKind::KeepaliveTimeout
    );
}

#[test]
fn any_packet_counts_as_activity() {
    let mut world = World::with_client(ProtocolVersion::V311);
    connect_with_keep_alive(&mut world, 10);
    world.advance(Duration::from_secs(14));
    world
        .send(
            0,
            super::harness::publish("t", crate::QoS::AtMostOnce, 0, b"x"),
        )
        .expect("alive");
    world.advance(Duration::from_secs(14));
    assert!(world.closed(0).is_none());
}

#[test]
fn keep_alive_zero_has_no_timeout() {
    let mut world = World::with_client(ProtocolVersion::V5);
    connect_with_keep_alive(&mut world, 0);
    assert_eq!(world.conn(0).poll_timeout(), None);
    world.advance(Duration::from_secs(365 * 24 * 3600));
    assert!(world.closed(0).is_none());
}

#[test]
fn a_keep_alive_too_short_for_milliseconds_is_not_none() {
    // 1 s times a tiny multiplier rounds to 0 ms: the client asked for a keep-alive, so it
    // gets the shortest there is (1 ms), never none.
    let mut world = World::with_settings(
        MqttSettings {
            keepalive_multiplier: 0.0001,
            ..MqttSettings::default()
        },
        ProtocolVersion::V311,
    );
    connect_with_keep_alive(&mut world, 1);
    assert_eq!(
        world.conn(0).poll_timeout(),
        Some(world.now() + Duration::from_millis(1))
    );
    world.advance(Duration::from_millis(1));
    assert_eq!(
        world.closed(0).expect("closed after 1 ms").kind,
        CloseKind::KeepaliveTimeout
    );
}

#[test]
fn v5_keep_alive_above_the_maximum_is_capped_and_told() {
    let mut world = World::with_settings(
        MqttSettings {
            max_keepalive: 100,
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
    );
    let connack = connect_with_keep_alive(&mut world, 300);
    assert_eq!(connack.properties.server_keep_alive, Some(100));
    assert_eq!(world.broker.connects[0].keep_alive, 100);
    assert_eq!(
        world.conn(0).poll_timeout(),
        Some(world.now() + Duration::from_secs(150))
    );

    // Keep alive 0 (none) is capped too when a maximum is configured.
    let connack = connect_with_keep_alive(&mut world, 0);
    assert_eq!(connack.properties.server_keep_alive, Some(100));

    // Within the maximum: the client's value, not told.
    let connack = connect_with_keep_alive(&mut world, 50);
    assert_eq!(connack.properties.server_keep_alive, None);
}

#[test]
fn v5_server_keepalive_is_imposed() {
    let mut world = World::with_settings(
        MqttSettings {
            server_keepalive: Some(20),
            ..MqttSettings::default()
        },
        ProtocolVersion::V5,
    );
    let connack = connect_with_keep_alive(&mut world, 600);
    assert_eq!(connack.properties.server_keep_alive, Some(20));
    world.advance(Duration::from_secs(30));
    assert_eq!(
        world.closed(0).expect("closed").kind,
        CloseKind::KeepaliveTimeout
    );
}

#[test]
fn v311_keep_alive_above_the_maximum_is_refused() {
    let mut world = World::with_settings(
        MqttSettings {
            max_keepalive: 100,
            ..MqttSettings::default()
        },
        ProtocolVersion::V311,
    );
    let mut packet = connect("c");
    packet.keep_alive = 300;
    let connack = world.connect(0, packet);
    assert!(connack.reason.is_error());
    assert_eq!(
        world.closed(0).expect("closed").kind,
        CloseKind::ConnectRefused
    );
}
