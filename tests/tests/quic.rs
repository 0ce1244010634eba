//! MQTT over QUIC with a quinn client: ALPN `mqtt`, MQTT on the first bidirectional stream, in
//! 3.1.1 and 5.0; mutual TLS; one stream per connection; the shutdown DISCONNECT arrives.

// Test helpers fail loudly: a failure is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{net::SocketAddr, time::Duration};

use tributary_config::{QuicListener, SslOptions, TlsVersion, Verify};
use tributary_mqtt_core::{Packet, ProtocolVersion, QoS, ReasonCode, packet::Connect};
use tributary_tests::{
    mqtt::MqttClient,
    pki::TestCa,
    start_gateway, start_gateway_with, temp_dir,
    transports::{client_tls, connect_quic, connect_quic_with},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_1_and_5_over_quic() {
    let gateway = start_gateway().await;
    let addr = gateway.addr_of("quic", "default");
    let tls = gateway.client_tls();
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let stream = connect_quic(addr, &tls).await.unwrap();
        let mut client =
            MqttClient::connect(Box::new(stream), version, &format!("quic-{version:?}")).await;
        let topic = format!("quic/{version:?}");
        client.subscribe(&topic, QoS::AtLeastOnce).await;
        client.publish(&topic, b"over quic", QoS::AtLeastOnce).await;
        let publish = client.next_publish().await;
        assert_eq!(&publish.payload[..], b"over quic");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_mqtt_alpn_is_refused() {
    let gateway = start_gateway().await;
    let mut tls = (*gateway.client_tls()).clone();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        connect_quic_with(gateway.addr_of("quic", "default"), tls),
    )
    .await
    .expect("the handshake should fail quickly");
    assert!(
        result.is_err(),
        "a QUIC client that does not speak ALPN mqtt is refused"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bidirectional_stream_per_connection() {
    let gateway = start_gateway().await;
    let stream = connect_quic(gateway.addr_of("quic", "default"), &gateway.client_tls())
        .await
        .unwrap();
    let connection = stream.connection.clone();
    let _client = MqttClient::connect(Box::new(stream), ProtocolVersion::V5, "single-stream").await;
    let second = tokio::time::timeout(Duration::from_millis(300), connection.open_bi()).await;
    assert!(second.is_err(), "the server grants no second stream");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_the_shutdown_disconnect_over_quic() {
    let gateway = start_gateway().await;
    let stream = connect_quic(gateway.addr_of("quic", "default"), &gateway.client_tls())
        .await
        .unwrap();
    let mut client =
        MqttClient::connect(Box::new(stream), ProtocolVersion::V5, "until-shutdown").await;
    let shutdown = tokio::spawn(gateway.shutdown());
    match client.recv().await {
        Some(Packet::Disconnect(disconnect)) => {
            assert_eq!(disconnect.reason, ReasonCode::SERVER_SHUTTING_DOWN);
        }
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    drop(client);
    shutdown.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_over_quic() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "quic");
    let server = ca.server();
    let gateway = start_gateway_with(|config| {
        config.listeners.quic.insert(
            "mtls".to_owned(),
            QuicListener {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                ssl_options: SslOptions {
                    certfile: server.cert_file.clone(),
                    keyfile: server.key_file.clone(),
                    cacertfile: ca.cert_file.clone(),
                    verify: Verify::VerifyPeer,
                    fail_if_no_peer_cert: true,
                    versions: vec![TlsVersion::Tls13],
                    ..SslOptions::default()
                },
                ..QuicListener::default()
            },
        );
    })
    .await;
    let addr = gateway.addr_of("quic", "mtls");
    let accepted = |tls| async move {
        let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(5), connect_quic(addr, &tls)).await
        else {
            return false;
        };
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            client_id: "quic-mtls".into(),
            ..Connect::default()
        };
        let (_, connack) = MqttClient::try_connect(Box::new(stream), connect).await;
        connack.is_some_and(|c| c.reason == ReasonCode::SUCCESS)
    };
    let good = ca.client("sensor-1");
    assert!(accepted(client_tls(&ca.cert_pem, Some(&good))).await);
    assert!(
        !accepted(client_tls(&ca.cert_pem, None)).await,
        "no certificate: refused"
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
