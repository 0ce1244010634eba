//! MQTT over WebSocket and WebSocket over TLS: rumqttc, and a tokio-tungstenite client that
//! splits packets across frames and packs several into one; the upgrade's path, subprotocol,
//! origin and proxy header; mutual TLS on WSS; and what a WebSocket peer may not do.

// Test helpers fail loudly: a failure is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::{net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Error as WsError, Message, client::IntoClientRequest, http::HeaderValue},
};
use tributary_config::{AutoSubscribeTopic, SslOptions, Verify, WssListener};
use tributary_mqtt_core::{
    PacketId, ProtocolVersion, ReasonCode,
    codec::{Decoder, encode},
    packet::{self, Connect, SubscriptionOptions},
};
use tributary_tests::{
    mqtt::MqttClient,
    pki::TestCa,
    start_gateway, start_gateway_with, temp_dir,
    transports::{self, client_tls, connect_tls, upgrade},
};

const WAIT: Duration = Duration::from_secs(5);

async fn until<T>(eventloop: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(packet) = eventloop.poll().await.expect("connection failed") {
                if let Some(found) = want(&packet) {
                    return found;
                }
            }
        }
    })
    .await
    .expect("timed out")
}

async fn round_trip(client: &AsyncClient, eventloop: &mut EventLoop, topic: &str) {
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    until(eventloop, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    client
        .publish(topic, QoS::AtLeastOnce, false, "over websocket")
        .await
        .unwrap();
    let payload = until(eventloop, |p| match p {
        Packet::Publish(publish) => Some(publish.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&payload[..], b"over websocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_connects_over_ws_and_wss() {
    let gateway = start_gateway().await;
    let ws = gateway.addr_of("ws", "default");
    let mut options = MqttOptions::new(
        "ws-client",
        format!("ws://127.0.0.1:{}/mqtt", ws.port()),
        ws.port(),
    );
    options.set_transport(Transport::Ws);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    round_trip(&client, &mut eventloop, "ws/v311").await;

    let wss = gateway.addr_of("wss", "default");
    let mut options = MqttOptions::new(
        "wss-client",
        format!("wss://localhost:{}/mqtt", wss.port()),
        wss.port(),
    );
    options.set_transport(Transport::Wss(TlsConfiguration::Simple {
        ca: gateway.self_signed_pem().into_bytes(),
        alpn: None,
        client_auth: None,
    }));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    round_trip(&client, &mut eventloop, "wss/v311").await;

    // MQTT 5 on the same WebSocket listener.
    let mut options = rumqttc::v5::MqttOptions::new(
        "ws-v5",
        format!("ws://127.0.0.1:{}/mqtt", ws.port()),
        ws.port(),
    );
    options.set_transport(Transport::Ws);
    let mut client = common::V5::connect(options).await;
    client.subscribe("ws/v5", V5QoS::AtLeastOnce).await;
    client
        .publish("ws/v5", V5QoS::AtLeastOnce, false, b"v5 over ws")
        .await;
    assert_eq!(&client.next_publish().await.payload[..], b"v5 over ws");
    gateway.shutdown().await;
}

/// A raw WebSocket client on `/mqtt` (or `path`) offering `subprotocol`, if any.
async fn raw_ws(
    addr: SocketAddr,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<(WebSocketStream<TcpStream>, Option<String>), WsError> {
    let mut request = format!("ws://127.0.0.1:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    if let Some(subprotocol) = subprotocol {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(subprotocol).unwrap(),
        );
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, chosen))
}

fn encoded(packet: &packet::Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).unwrap();
    out.to_vec()
}

/// Reads binary messages until `count` packets have been decoded from them.
async fn read_packets(
    ws: &mut WebSocketStream<TcpStream>,
    version: ProtocolVersion,
    count: usize,
) -> Vec<packet::Packet> {
    let mut decoder = Decoder::with_version(version, u32::MAX);
    let mut input = BytesMut::new();
    let mut packets = Vec::new();
    tokio::time::timeout(WAIT, async {
        while packets.len() < count {
            while let Some(packet) = decoder.decode(&mut input).unwrap() {
                packets.push(packet);
            }
            if packets.len() >= count {
                break;
            }
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => input.extend_from_slice(&data),
                Some(Ok(Message::Text(_))) => panic!("the server sent a text frame"),
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("timed out reading packets");
    packets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_split_across_frames_and_packed_into_one_frame_both_work() {
    let gateway = start_gateway().await;
    let version = ProtocolVersion::V5;
    let (mut ws, chosen) = raw_ws(gateway.addr_of("ws", "default"), "/mqtt", Some("mqtt"))
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"));

    // CONNECT, one byte... then the rest, over three frames.
    let connect = encoded(
        &packet::Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 30,
            client_id: "frames".into(),
            ..Connect::default()
        })),
        version,
    );
    for chunk in [&connect[..1], &connect[1..5], &connect[5..]] {
        ws.send(Message::Binary(Bytes::copy_from_slice(chunk)))
            .await
            .unwrap();
    }
    match &read_packets(&mut ws, version, 1).await[..] {
        [packet::Packet::ConnAck(connack)] => assert_eq!(connack.reason, ReasonCode::SUCCESS),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    // SUBSCRIBE and a PUBLISH to it in one frame.
    let mut frame = encoded(
        &packet::Packet::Subscribe(packet::Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            properties: Default::default(),
            filters: vec![("frames/t".into(), SubscriptionOptions::default())],
        }),
        version,
    );
    frame.extend(encoded(
        &packet::Packet::Publish(packet::Publish {
            dup: false,
            qos: tributary_mqtt_core::QoS::AtMostOnce,
            retain: false,
            topic: "frames/t".into(),
            packet_id: None,
            properties: Default::default(),
            payload: Bytes::from_static(b"packed"),
        }),
        version,
    ));
    ws.send(Message::Binary(frame.into())).await.unwrap();
    let packets = read_packets(&mut ws, version, 2).await;
    assert!(
        matches!(packets[0], packet::Packet::SubAck(_)),
        "{packets:?}"
    );
    match &packets[1] {
        packet::Packet::Publish(publish) => assert_eq!(&publish.payload[..], b"packed"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_checks_path_and_subprotocol() {
    let gateway = start_gateway().await;
    let addr = gateway.addr_of("ws", "default");
    match raw_ws(addr, "/other", Some("mqtt")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    match raw_ws(addr, "/mqtt", None).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400 without a subprotocol, got {other:?}"),
    }
    for (offer, expected) in [
        ("mqttv5", "mqttv5"),
        ("mqttv3.1", "mqttv3.1"),
        ("chat, mqtt", "mqtt"),
    ] {
        let (_, chosen) = raw_ws(addr, "/mqtt", Some(offer)).await.unwrap();
        assert_eq!(chosen.as_deref(), Some(expected), "offered {offer}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_frames_and_oversized_messages_close_the_connection() {
    let gateway = start_gateway_with(|config| {
        config.mqtt.max_packet_size = tributary_config::ByteSize::from_bytes(1024);
    })
    .await;
    let addr = gateway.addr_of("ws", "default");

    let (mut ws, _) = raw_ws(addr, "/mqtt", Some("mqtt")).await.unwrap();
    ws.send(Message::text("CONNECT")).await.unwrap();
    assert_closed(&mut ws).await;

    let (mut ws, _) = raw_ws(addr, "/mqtt", Some("mqtt")).await.unwrap();
    ws.send(Message::Binary(Bytes::from(vec![0x10; 8 * 1024])))
        .await
        .unwrap();
    assert_closed(&mut ws).await;

    // A message shorter than the packet it starts, then a close: the server waits for more
    // bytes, sees the end, and closes without a fuss.
    let (mut ws, _) = raw_ws(addr, "/mqtt", Some("mqtt")).await.unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[
        0x10, 100, 0, 4, b'M',
    ])))
    .await
    .unwrap();
    ws.close(None).await.unwrap();
    assert_closed(&mut ws).await;
    gateway.shutdown().await;
}

async fn assert_closed(ws: &mut WebSocketStream<TcpStream>) {
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the server should close the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_are_checked_when_enabled() {
    let gateway = start_gateway_with(|config| {
        let websocket = &mut config.listeners.ws.get_mut("default").unwrap().websocket;
        websocket.check_origin_enable = true;
        websocket.check_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let addr = gateway.addr_of("ws", "default");
    let with_origin = |origin: &'static str| {
        let mut request = format!("ws://127.0.0.1:{}/mqtt", addr.port())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_static(origin));
        request
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(
        tokio_tungstenite::client_async(with_origin("https://app.example.com"), tcp)
            .await
            .is_ok()
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(with_origin("https://evil.example.com"), tcp).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_header_gives_the_client_address_when_configured() {
    let gateway = start_gateway_with(|config| {
        config
            .listeners
            .ws
            .get_mut("default")
            .unwrap()
            .websocket
            .proxy_address_header = "x-forwarded-for".to_owned();
        // ${host} is the client's address: it shows which address the broker saw.
        config.auto_subscribe.topics = vec![AutoSubscribeTopic {
            topic: "seen/${host}".to_owned(),
            qos: 0,
            rh: 0,
            rap: 0,
            nl: 0,
        }];
    })
    .await;
    let addr = gateway.addr_of("ws", "default");
    let mut request = format!("ws://127.0.0.1:{}/mqtt", addr.port())
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let mut proxied = MqttClient::connect(
        Box::new(tributary_websocket::WsByteStream::new(ws)),
        ProtocolVersion::V5,
        "proxied",
    )
    .await;

    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let mut publisher = MqttClient::connect(Box::new(tcp), ProtocolVersion::V5, "publisher").await;
    publisher
        .publish(
            "seen/203.0.113.9",
            b"hello",
            tributary_mqtt_core::QoS::AtLeastOnce,
        )
        .await;
    let publish = proxied.next_publish().await;
    assert_eq!(&publish.payload[..], b"hello");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_checks_client_certificates_too() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "wss");
    let server = ca.server();
    let gateway = start_gateway_with(|config| {
        config.listeners.wss.insert(
            "mtls".to_owned(),
            WssListener {
                bind: SocketAddr::from(([127, 0, 0, 1], 0)),
                ssl_options: SslOptions {
                    certfile: server.cert_file.clone(),
                    keyfile: server.key_file.clone(),
                    cacertfile: ca.cert_file.clone(),
                    verify: Verify::VerifyPeer,
                    fail_if_no_peer_cert: true,
                    ..SslOptions::default()
                },
                ..WssListener::default()
            },
        );
    })
    .await;
    let addr = gateway.addr_of("wss", "mtls");
    let accepted = |tls| async move {
        let Ok(stream) = connect_tls(addr, &tls).await else {
            return false;
        };
        let Ok(ws) = upgrade(stream, "wss", addr, "mqtt").await else {
            return false;
        };
        let connect = Connect {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            client_id: "wss-mtls".into(),
            ..Connect::default()
        };
        let (_, connack) = MqttClient::try_connect(Box::new(ws), connect).await;
        connack.is_some_and(|c| c.reason == ReasonCode::SUCCESS)
    };
    let good = ca.client("browser-1");
    assert!(accepted(client_tls(&ca.cert_pem, Some(&good))).await);
    assert!(
        !accepted(client_tls(&ca.cert_pem, None)).await,
        "no certificate: refused"
    );
    let stranger = TestCa::new(&dir, "stranger").client("browser-1");
    assert!(
        !accepted(transports::client_tls(&ca.cert_pem, Some(&stranger))).await,
        "another CA's certificate: refused"
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbled_upgrade_is_dropped() {
    let gateway = start_gateway_with(|config| {
        config.mqtt.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut socket = TcpStream::connect(gateway.addr_of("ws", "default"))
        .await
        .unwrap();
    socket
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf))
        .await
        .expect("the server should close a dribbled upgrade");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    gateway.shutdown().await;
}
