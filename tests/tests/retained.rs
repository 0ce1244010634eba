//! Retained messages: stored, replaced, deleted by an empty payload, delivered on subscribe
//! with RETAIN = 1 at the lower QoS, message expiry honoured, `retainer.max_retained_messages`
//! and `retainer.max_payload_size`.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::{QoS as Q5, v5::PublishProperties};
use tributary_config::units::ByteSize;
use tributary_tests::{TestGateway, start_gateway, start_gateway_with};

/// Subscribes a fresh v4 client to `filter`, then publishes a live marker on `marker_topic`
/// (which `filter` must match); returns the (topic, payload, retain, qos) of what came first.
async fn retained_for(
    gw: &TestGateway,
    id: &str,
    filter: &str,
    qos: QoS,
    marker_topic: &str,
) -> Vec<(String, String, bool, QoS)> {
    let mut sub = V4::connect(v4_options(gw, id)).await;
    sub.subscribe(filter, qos).await;
    let mut marker = V4::connect(v4_options(gw, &format!("{id}-marker"))).await;
    marker
        .publish(marker_topic, QoS::AtMostOnce, false, b"--marker--")
        .await;
    let mut got = Vec::new();
    loop {
        let p = sub.next_publish().await;
        if p.payload.as_ref() == b"--marker--" {
            return got;
        }
        got.push((p.topic, text(&p.payload), p.retain, p.qos));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_retained_message_is_stored_replaced_and_deleted() {
    let gw = start_gateway().await;
    let mut publisher = V4::connect(v4_options(&gw, "rpub")).await;
    publisher
        .publish("r/a", QoS::ExactlyOnce, true, b"first")
        .await;
    publisher.publish("r/b", QoS::AtLeastOnce, true, b"b").await;
    publisher
        .publish("r/a", QoS::ExactlyOnce, true, b"second")
        .await;
    assert_eq!(gw.gateway().broker().retained_count(), 2);

    let mut got = retained_for(&gw, "s1", "r/#", QoS::AtLeastOnce, "r/m").await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("r/a".into(), "second".into(), true, QoS::AtLeastOnce),
            ("r/b".into(), "b".into(), true, QoS::AtLeastOnce),
        ]
    );

    // An empty retained payload deletes (and is still delivered live, not retained).
    publisher.publish("r/a", QoS::AtLeastOnce, true, b"").await;
    assert_eq!(gw.gateway().broker().retained_count(), 1);
    let got = retained_for(&gw, "s2", "r/#", QoS::ExactlyOnce, "r/m").await;
    assert_eq!(got, [("r/b".into(), "b".into(), true, QoS::AtLeastOnce)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retained_message_is_delivered_with_retain_and_properties() {
    let gw = start_gateway().await;
    let mut publisher = V5::connect(v5_options(&gw, "r5pub")).await;
    let props = PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![("a".into(), "1".into())],
        ..PublishProperties::default()
    };
    publisher
        .publish_with("r5/t", Q5::AtLeastOnce, true, b"{}", props)
        .await;
    let mut sub = V5::connect(v5_options(&gw, "r5sub")).await;
    sub.subscribe("r5/+", Q5::ExactlyOnce).await;
    let p = sub.next_publish().await;
    assert_eq!(
        (p.payload.as_ref(), p.retain, p.qos),
        (&b"{}"[..], true, Q5::AtLeastOnce)
    );
    let props = p.properties.unwrap();
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert_eq!(props.user_properties, vec![("a".into(), "1".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_expiry_is_honoured() {
    let gw = start_gateway().await;
    let mut publisher = V5::connect(v5_options(&gw, "rexp")).await;
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..PublishProperties::default()
    };
    publisher
        .publish_with("rx/short", Q5::AtLeastOnce, true, b"short", expiring(1))
        .await;
    publisher
        .publish_with("rx/long", Q5::AtLeastOnce, true, b"long", expiring(100))
        .await;

    // Before expiry: delivered with the remaining lifetime.
    let mut sub = V5::connect(v5_options(&gw, "rx1")).await;
    sub.subscribe("rx/short", Q5::AtLeastOnce).await;
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"short");
    assert!(p.properties.unwrap().message_expiry_interval.unwrap() <= 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = retained_for(&gw, "rx2", "rx/#", QoS::AtLeastOnce, "rx/m").await;
    assert_eq!(
        got,
        [("rx/long".into(), "long".into(), true, QoS::AtLeastOnce)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retained_messages_refuses_new_topics_but_allows_replacement() {
    let gw = start_gateway_with(|c| c.retainer.max_retained_messages = 2).await;
    let mut publisher = V4::connect(v4_options(&gw, "mpub")).await;
    for t in ["m/1", "m/2", "m/3"] {
        publisher
            .publish(t, QoS::AtLeastOnce, true, t.as_bytes())
            .await;
    }
    assert_eq!(gw.gateway().broker().retained_count(), 2);
    publisher
        .publish("m/1", QoS::AtLeastOnce, true, b"new")
        .await;
    let mut got = retained_for(&gw, "ms", "m/#", QoS::AtLeastOnce, "m/x").await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], ("m/1".into(), "new".into(), true, QoS::AtLeastOnce));
    assert_eq!(got[1].0, "m/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_max_payload_size_is_delivered_but_not_retained() {
    let gw = start_gateway_with(|c| c.retainer.max_payload_size = ByteSize::from_bytes(10)).await;
    let mut live = V4::connect(v4_options(&gw, "live")).await;
    live.subscribe("big/#", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "bpub")).await;
    publisher
        .publish("big/ok", QoS::AtLeastOnce, true, b"0123456789")
        .await;
    publisher
        .publish("big/no", QoS::AtLeastOnce, true, b"0123456789X")
        .await;
    assert_eq!(live.next_publish().await.topic, "big/ok");
    assert_eq!(live.next_publish().await.topic, "big/no");
    let got = retained_for(&gw, "bs", "big/#", QoS::AtLeastOnce, "big/m").await;
    assert_eq!(
        got,
        [("big/ok".into(), "0123456789".into(), true, QoS::AtLeastOnce)]
    );
}
