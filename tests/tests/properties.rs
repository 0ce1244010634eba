//! v5 properties: message expiry (expired messages dropped, remaining time forwarded), topic
//! aliases both ways, payload format indicator (invalid UTF-8 -> PUBACK 0x99), content type,
//! response topic, correlation data and user properties passed through in order, request /
//! response information, and the client's Maximum Packet Size.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    raw::{Raw, connect_v5, subscribe},
    *,
};
use rumqttc::v5::mqttbytes::{
    QoS as Q5,
    v5::{PubAckReason, PublishProperties},
};
use tributary_protocols::Stats;
use tributary_tests::{start_gateway, start_gateway_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_drops_expired_and_forwards_the_remaining_time() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "exp-sub");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    let mut sub = V5::connect(o.clone()).await;
    sub.subscribe("exp/t", Q5::AtLeastOnce).await;

    let mut publisher = V5::connect(v5_options(&gw, "exp-pub")).await;
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..PublishProperties::default()
    };
    // Live: forwarded with (at most) the interval it was published with.
    publisher
        .publish_with("exp/t", Q5::AtLeastOnce, false, b"live", expiring(30))
        .await;
    let p = sub.next_publish().await;
    let left = p.properties.unwrap().message_expiry_interval.unwrap();
    assert!((29..=30).contains(&left), "{left}");
    sub.disconnect().await;

    // Offline: the short one expires in the queue, the long one is delivered with less left.
    publisher
        .publish_with("exp/t", Q5::AtLeastOnce, false, b"short", expiring(1))
        .await;
    publisher
        .publish_with("exp/t", Q5::AtLeastOnce, false, b"long", expiring(30))
        .await;
    publisher
        .publish("exp/t", Q5::AtLeastOnce, false, b"none")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut sub = V5::connect(o).await;
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"long");
    let left = p.properties.unwrap().message_expiry_interval.unwrap();
    assert!((27..=29).contains(&left), "remaining {left}");
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"none");
    assert_eq!(p.properties.and_then(|p| p.message_expiry_interval), None);
    assert!(Stats::get(&gw.gateway().broker().stats().delivery_dropped_expired) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_alias_is_resolved() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "alias-sub")).await;
    sub.subscribe("alias/#", rumqttc::QoS::AtLeastOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "alias-pub")).await;
    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..PublishProperties::default()
    };
    publisher
        .publish_with("alias/long/topic", Q5::AtLeastOnce, false, b"1", alias(1))
        .await;
    publisher
        .publish_with("", Q5::AtLeastOnce, false, b"2", alias(1))
        .await;
    // Remapping the alias.
    publisher
        .publish_with("alias/other", Q5::AtLeastOnce, false, b"3", alias(1))
        .await;
    publisher
        .publish_with("", Q5::AtLeastOnce, false, b"4", alias(1))
        .await;
    for (topic, payload) in [
        ("alias/long/topic", "1"),
        ("alias/long/topic", "2"),
        ("alias/other", "3"),
        ("alias/other", "4"),
    ] {
        let p = sub.next_publish().await;
        assert_eq!(
            (p.topic.as_str(), text(&p.payload).as_str()),
            (topic, payload)
        );
    }
}

/// rumqttc resolves aliases before the test sees them: the subscriber is raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_topic_alias_is_used_when_the_client_allows_it() {
    let gw = start_gateway().await;
    // Topic Alias Maximum = 1.
    let (mut raw, _) = Raw::handshake(gw.addr, &connect_v5("alias-raw", 30, &[0x22, 0, 1])).await;
    raw.send(&subscribe(true, 1, &[("oa/+", 0)])).await;
    raw.recv_kind(9).await;
    let mut publisher = V5::connect(v5_options(&gw, "oa-pub")).await;
    for (t, m) in [("oa/one", "a"), ("oa/one", "b"), ("oa/two", "c")] {
        publisher
            .publish(t, Q5::AtLeastOnce, false, m.as_bytes())
            .await;
    }
    let first = raw.recv_kind(3).await.publish_fields(true);
    assert_eq!(first.topic, "oa/one");
    assert_eq!(first.properties, vec![0x23, 0, 1], "alias 1 set up");
    let second = raw.recv_kind(3).await.publish_fields(true);
    assert_eq!(second.topic, "", "the alias replaces the topic");
    assert_eq!(second.properties, vec![0x23, 0, 1]);
    assert_eq!(second.payload, b"b");
    // No alias left for a second topic: sent in full.
    let third = raw.recv_kind(3).await.publish_fields(true);
    assert_eq!(third.topic, "oa/two");
    assert_eq!(third.payload, b"c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_outbound_topic_alias_without_the_clients_consent() {
    let gw = start_gateway().await;
    let (mut raw, _) = Raw::handshake(gw.addr, &connect_v5("noalias", 30, &[])).await;
    raw.send(&subscribe(true, 1, &[("na/t", 0)])).await;
    raw.recv_kind(9).await;
    let mut publisher = V5::connect(v5_options(&gw, "na-pub")).await;
    for _ in 0..2 {
        publisher.publish("na/t", Q5::AtMostOnce, false, b"x").await;
    }
    for _ in 0..2 {
        let p = raw.recv_kind(3).await.publish_fields(true);
        assert_eq!(
            (p.topic.as_str(), p.properties.as_slice()),
            ("na/t", &[][..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_format_indicator_with_invalid_utf8_is_refused_with_0x99() {
    let gw = start_gateway().await;
    let mut sub = V5::connect(v5_options(&gw, "pfi-sub")).await;
    sub.subscribe("pfi/t", Q5::AtLeastOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "pfi-pub")).await;
    let utf8 = PublishProperties {
        payload_format_indicator: Some(1),
        ..PublishProperties::default()
    };
    publisher
        .publish_with(
            "pfi/t",
            Q5::AtLeastOnce,
            false,
            "héllo".as_bytes(),
            utf8.clone(),
        )
        .await;
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), "héllo".as_bytes());
    assert_eq!(p.properties.unwrap().payload_format_indicator, Some(1));

    publisher
        .client
        .publish_with_properties("pfi/t", Q5::AtLeastOnce, false, vec![0xff, 0xfe], utf8)
        .await
        .unwrap();
    // rumqttc reports a failing PUBACK as the connection's error.
    match publisher.events.take_error().await {
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::PubAckFail { reason }) => {
            assert_eq!(reason, PubAckReason::PayloadFormatInvalid)
        }
        other => panic!("expected PUBACK 0x99, got {other:?}"),
    }
    sub.assert_no_publish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_properties_pass_through_untouched_and_in_order() {
    let gw = start_gateway().await;
    let mut sub = V5::connect(v5_options(&gw, "ap-sub")).await;
    sub.subscribe("ap/t", Q5::ExactlyOnce).await;
    let mut s4 = V4::connect(v4_options(&gw, "ap-sub4")).await;
    s4.subscribe("ap/t", rumqttc::QoS::AtMostOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "ap-pub")).await;
    let user = vec![
        ("z".to_string(), "1".to_string()),
        ("a".to_string(), "2".to_string()),
        ("z".to_string(), "3".to_string()),
        ("".to_string(), "".to_string()),
    ];
    let props = PublishProperties {
        payload_format_indicator: Some(0),
        content_type: Some("application/x-thing; v=1".into()),
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2, 0xff])),
        user_properties: user.clone(),
        ..PublishProperties::default()
    };
    publisher
        .publish_with("ap/t", Q5::ExactlyOnce, false, b"payload", props)
        .await;
    let p = sub.next_publish().await;
    let got = p.properties.unwrap();
    assert_eq!(
        got.content_type.as_deref(),
        Some("application/x-thing; v=1")
    );
    assert_eq!(got.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(got.correlation_data.as_deref(), Some(&[0, 1, 2, 0xff][..]));
    assert_eq!(got.user_properties, user);
    assert_eq!(p.payload.as_ref(), b"payload");
    // A 3.1.1 subscriber gets the payload alone.
    assert_eq!(s4.next_publish().await.payload.as_ref(), b"payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_information_only_when_requested() {
    let gw = start_gateway_with(|c| c.mqtt.response_information = "responses/".into()).await;
    let mut o = v5_options(&gw, "ri");
    o.set_request_response_info(Some(1));
    let c = V5::connect(o).await;
    assert_eq!(
        c.connack
            .properties
            .unwrap()
            .response_information
            .as_deref(),
        Some("responses/")
    );
    let c = V5::connect(v5_options(&gw, "no-ri")).await;
    assert_eq!(
        c.connack.properties.and_then(|p| p.response_information),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_never_sends_a_packet_over_the_clients_maximum_packet_size() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "small");
    o.set_max_packet_size(Some(100));
    let mut sub = V5::connect(o).await;
    sub.subscribe("mps/t", Q5::AtLeastOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "mps-pub")).await;
    publisher
        .publish("mps/t", Q5::AtLeastOnce, false, &[b'x'; 200])
        .await;
    publisher
        .publish("mps/t", Q5::AtLeastOnce, false, b"small")
        .await;
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"small");
    assert_eq!(
        Stats::get(&gw.gateway().broker().stats().delivery_dropped_too_large),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_advertises_the_brokers_limits() {
    let gw = start_gateway_with(|c| c.mqtt.max_topic_alias = 10).await;
    let c = V5::connect(v5_options(&gw, "limits")).await;
    let p = c.connack.properties.unwrap();
    assert_eq!(p.topic_alias_max, Some(10));
    assert_eq!(p.max_packet_size, Some(1024 * 1024));
}
