//! Every transport feeds the same broker: a message published over any of TCP, TLS, WebSocket,
//! WebSocket over TLS and QUIC reaches subscribers on all of them, in MQTT 3.1.1 and 5.0.

// The shared helper below fails loudly: a failure is a failed test.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::BTreeSet;

use tributary_mqtt_core::{ProtocolVersion, QoS};
use tributary_tests::{
    mqtt::MqttClient,
    start_gateway,
    transports::{KINDS, connect},
};

async fn every_combination(version: ProtocolVersion) {
    let gateway = start_gateway().await;
    let tls = gateway.client_tls();
    let topic = format!("cross/{version:?}");

    let mut subscribers = Vec::new();
    for kind in KINDS {
        let stream = connect(kind, gateway.addr_of(kind, "default"), &tls)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let mut client = MqttClient::connect(stream, version, &format!("sub-{kind}")).await;
        client.subscribe(&topic, QoS::AtLeastOnce).await;
        subscribers.push((kind, client));
    }
    for kind in KINDS {
        let stream = connect(kind, gateway.addr_of(kind, "default"), &tls)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let mut publisher = MqttClient::connect(stream, version, &format!("pub-{kind}")).await;
        publisher
            .publish(&topic, format!("from-{kind}").as_bytes(), QoS::AtLeastOnce)
            .await;
    }
    let expected: BTreeSet<String> = KINDS.iter().map(|k| format!("from-{k}")).collect();
    for (kind, subscriber) in &mut subscribers {
        let mut received = BTreeSet::new();
        for _ in KINDS {
            let publish = subscriber.next_publish().await;
            assert_eq!(publish.topic.as_ref() as &str, topic.as_str());
            received.insert(String::from_utf8(publish.payload.to_vec()).unwrap());
        }
        assert_eq!(received, expected, "subscriber on {kind}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_reaches_every_transport_mqtt_3_1_1() {
    every_combination(ProtocolVersion::V311).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_reaches_every_transport_mqtt_5() {
    every_combination(ProtocolVersion::V5).await;
}
