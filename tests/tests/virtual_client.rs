//! Virtual clients (the seam the CoAP and LwM2M gateways use) are clients of the same core as
//! MQTT clients: their publishes reach MQTT subscribers, MQTT publishes reach their
//! subscriptions, listings show their protocol, and an MQTT connection with the same client id
//! takes their session over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use common::{V4, WAIT, v4_options};
use rumqttc::QoS as RQoS;
use tributary_mqtt_core::{
    ByteStr, QoS,
    connection::CloseKind,
    packet::{RetainHandling, SubscriptionOptions},
};
use tributary_protocols::{
    Broker, Protocol, PublishError, Transport, VirtualClient, VirtualConnect, Wake,
};
use tributary_tests::start_gateway;

async fn connect(broker: &Broker, client_id: &str) -> VirtualClient {
    broker
        .connect_virtual(VirtualConnect {
            client_id: ByteStr::from(client_id),
            username: None,
            password: None,
            peer: "127.0.0.1:5683".parse().unwrap(),
            listener: Arc::from("udp:default"),
            protocol: Protocol::Coap,
            transport: Transport::Udp,
            authenticate: true,
            clean_start: true,
            session_expiry: Duration::ZERO,
        })
        .await
        .expect("allow-all authenticates everyone")
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_and_mqtt_clients_share_one_topic_space() {
    let gateway = start_gateway().await;
    let broker = gateway.gateway().broker().clone();
    let mut device = connect(&broker, "sensor-1").await;

    let info = broker.client("sensor-1").expect("listed while connected");
    assert_eq!(
        (info.protocol, info.transport),
        (Protocol::Coap, Transport::Udp)
    );
    assert!(broker.clients().iter().any(|(id, _)| id == "sensor-1"));

    // Device → MQTT.
    let mut mqtt = V4::connect(v4_options(&gateway, "integrator")).await;
    mqtt.subscribe("coap/#", RQoS::AtLeastOnce).await;
    let routed = device
        .publish(
            "coap/sensor-1/temp",
            Bytes::from_static(b"21.5"),
            QoS::AtLeastOnce,
            false,
            None,
        )
        .unwrap();
    assert_eq!(routed, 1);
    let publish = mqtt.next_publish().await;
    assert_eq!(publish.topic, "coap/sensor-1/temp");
    assert_eq!(&publish.payload[..], b"21.5");
    assert_eq!(publish.qos, RQoS::AtLeastOnce);

    assert_eq!(
        device.publish("a/+", Bytes::new(), QoS::AtMostOnce, false, None),
        Err(PublishError::InvalidTopic)
    );
    assert_eq!(
        device.publish("$SYS/x", Bytes::new(), QoS::AtMostOnce, false, None),
        Err(PublishError::NotAuthorized)
    );

    // MQTT → device, retained first.
    mqtt.publish("cmd/sensor-1/led", RQoS::AtLeastOnce, true, b"on")
        .await;
    let granted = device.subscribe("cmd/sensor-1/+", options(QoS::AtMostOnce));
    assert!(!granted.is_error(), "{granted:?}");
    assert!(device.is_subscribed("cmd/sensor-1/+"));
    let mut out = Vec::new();
    device.take_deliveries(&mut out, 16);
    assert_eq!(out.len(), 1);
    assert!(out[0].retain);
    assert_eq!(out[0].qos, QoS::AtMostOnce, "downgraded to the granted QoS");
    out.clear();

    mqtt.publish("cmd/sensor-1/fan", RQoS::AtMostOnce, false, b"1")
        .await;
    // A wake-up says messages *may* be queued (one can be left over from the retained
    // delivery above): wait until one is.
    tokio::time::timeout(WAIT, async {
        while out.is_empty() {
            assert_eq!(device.wait().await, Wake::Deliveries);
            device.take_deliveries(&mut out, 16);
        }
    })
    .await
    .expect("the MQTT publish reaches the device");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message.topic.as_str(), "cmd/sensor-1/fan");

    let unsubscribed = device.unsubscribe("cmd/sensor-1/+");
    assert!(!unsubscribed.is_error(), "{unsubscribed:?}");
    assert!(!device.is_subscribed("cmd/sensor-1/+"));

    device.disconnect("normal");
    assert!(
        broker.client("sensor-1").is_none(),
        "gone once disconnected"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_connection_takes_a_virtual_clients_session_over() {
    let gateway = start_gateway().await;
    let broker = gateway.gateway().broker().clone();
    let mut device = connect(&broker, "dev-42").await;

    // The device's task keeps waiting, as a gateway's does, and lets go when kicked.
    let task = tokio::spawn(async move {
        loop {
            if let Wake::Kicked(kind) = device.wait().await {
                return kind;
            }
        }
    });
    let _mqtt = V4::connect(v4_options(&gateway, "dev-42")).await;
    let kind = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    assert_eq!(
        kind,
        CloseKind::Discarded,
        "a clean-session CONNECT discards it"
    );
    let info = broker.client("dev-42").unwrap();
    assert_eq!(info.protocol, Protocol::Mqtt);
    gateway.shutdown().await;
}
