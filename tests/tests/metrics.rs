//! The HTTP API through real sockets: Prometheus series labelled by listener and transport for
//! MQTT clients over TCP and WebSocket, refused connections and handshake failures counted, and
//! the client listings with their authentication.

// Test helpers fail loudly: a failure is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{V4, WAIT, v4_options};
use rumqttc::{MqttOptions, QoS, Transport};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tributary_config::Limit;
use tributary_tests::{TestGateway, start_gateway, start_gateway_with};

/// `admin:public`, EMQX's default credentials, as an HTTP Basic `Authorization` value.
const ADMIN: &str = "Basic YWRtaW46cHVibGlj";

/// A plain HTTP/1.1 GET: the status code and the body.
async fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String) {
    let exchange = async {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let auth = authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        socket.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the HTTP API answers in time");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = get(addr, path, Some(ADMIN)).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the series `series` (name and labels, exactly as rendered) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until every `(series, value)` holds, or fails after [`WAIT`] showing the last scrape.
async fn scrape_until(gateway: &TestGateway, expected: &[(&str, f64)]) -> String {
    let http = gateway.addr_of("http", "default");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, text) = get(http, "/api/v5/prometheus/stats", None).await;
        assert_eq!(status, 200, "the metrics need no authentication");
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(series, want)| value(&text, series) != Some(*want))
            .map(|(series, want)| (series, want, value(&text, series)))
            .collect();
        if wrong.is_empty() {
            return text;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("series not as expected (series, wanted, got): {wrong:?}\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ws_options(gateway: &TestGateway, client_id: &str) -> MqttOptions {
    let ws = gateway.addr_of("ws", "default");
    let mut options = MqttOptions::new(
        client_id,
        format!("ws://127.0.0.1:{}/mqtt", ws.port()),
        ws.port(),
    );
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_ws_clients_show_in_labelled_series_and_in_the_client_list() {
    let gateway = start_gateway().await;
    let mut tcp = V4::connect(v4_options(&gateway, "metrics-tcp")).await;
    let mut ws = V4::connect(ws_options(&gateway, "metrics-ws")).await;
    ws.subscribe("metrics/t", QoS::AtLeastOnce).await;
    tcp.publish("metrics/t", QoS::AtLeastOnce, false, b"hello")
        .await;
    assert_eq!(&ws.next_publish().await.payload[..], b"hello");
    tcp.publish("nobody/listens", QoS::AtMostOnce, false, b"lost")
        .await;

    let text = scrape_until(
        &gateway,
        &[
            (
                r#"tributary_listener_connections_accepted{listener="tcp:default",transport="tcp"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_accepted{listener="ws:default",transport="ws"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_count{listener="tcp:default",transport="tcp"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_count{listener="ws:default",transport="ws"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_count{listener="ssl:default",transport="ssl"}"#,
                0.0,
            ),
            (
                r#"tributary_clients_count{listener="tcp:default",protocol="mqtt",transport="tcp"}"#,
                1.0,
            ),
            (
                r#"tributary_clients_count{listener="ws:default",protocol="mqtt",transport="ws"}"#,
                1.0,
            ),
            ("tributary_connections_count", 2.0),
            ("tributary_sessions_count", 2.0),
            ("tributary_subscriptions_count", 1.0),
            ("tributary_messages_received", 2.0),
            ("tributary_messages_sent", 1.0),
            ("tributary_messages_dropped_no_subscribers", 1.0),
            ("tributary_delivery_dropped", 0.0),
        ],
    )
    .await;
    assert!(
        text.contains("# TYPE tributary_messages_received counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tributary_sessions_count gauge"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tributary_listener_connections_accepted{listener="quic:default",transport="quic"} 0"#
        ),
        "every listener has its series: {text}"
    );

    let http = gateway.addr_of("http", "default");
    let all = get_json(http, "/api/v5/clients").await;
    assert_eq!(all["meta"]["count"], 2, "{all}");
    assert_eq!(all["meta"]["page"], 1);
    assert_eq!(all["meta"]["hasnext"], false);
    let data = all["data"].as_array().unwrap();
    let ids: Vec<&str> = data
        .iter()
        .map(|c| c["clientid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["metrics-tcp", "metrics-ws"], "sorted by client id");
    for (client, listener) in data.iter().zip(["tcp:default", "ws:default"]) {
        assert_eq!(client["listener"], listener, "{client}");
        assert_eq!(client["protocol"], "mqtt");
        assert_eq!(client["proto_name"], "MQTT");
        assert_eq!(client["connected"], true);
        assert_eq!(client["ip_address"], "127.0.0.1");
        assert!(client["port"].as_u64().unwrap() > 0);
    }
    let page = get_json(http, "/api/v5/clients?page=2&limit=1").await;
    assert_eq!(page["data"][0]["clientid"], "metrics-ws", "{page}");
    assert_eq!(page["meta"]["hasnext"], false);
    let first = get_json(http, "/api/v5/clients?limit=1").await;
    assert_eq!(first["meta"]["hasnext"], true, "{first}");
    let coap = get_json(http, "/api/v5/clients?protocol=coap").await;
    assert_eq!(coap["meta"]["count"], 0, "{coap}");
    assert_eq!(coap["data"], serde_json::json!([]));
    let mqtt = get_json(http, "/api/v5/clients?protocol=mqtt").await;
    assert_eq!(mqtt["meta"]["count"], 2);

    let one = get_json(http, "/api/v5/clients/metrics-ws").await;
    assert_eq!(one["clientid"], "metrics-ws", "{one}");
    assert_eq!(one["transport"], "ws");
    assert_eq!(one["node"], "tributary@127.0.0.1");

    // Authentication and errors in EMQX's shape.
    let (status, body) = get(http, "/api/v5/clients", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = get(http, "/api/v5/clients", Some("Basic YWRtaW46d3Jvbmc=")).await;
    assert_eq!(status, 401, "a wrong password");
    let (status, _) = get(http, "/api/v5/clients/metrics-tcp", None).await;
    assert_eq!(status, 401);
    let (status, body) = get(http, "/api/v5/clients/nobody", Some(ADMIN)).await;
    assert_eq!(status, 404, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], "CLIENTID_NOT_FOUND", "{body}");
    let (status, body) = get(http, "/api/v5/clients?limit=0", Some(ADMIN)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(http, "/api/v5/clients?page=x", Some(ADMIN)).await;
    assert_eq!(status, 400);

    // The WebSocket client leaves: its series go back to 0.
    ws.disconnect().await;
    scrape_until(
        &gateway,
        &[
            (
                r#"tributary_listener_connections_count{listener="ws:default",transport="ws"}"#,
                0.0,
            ),
            (
                r#"tributary_clients_count{listener="ws:default",protocol="mqtt",transport="ws"}"#,
                0.0,
            ),
            (
                r#"tributary_listener_connections_accepted{listener="ws:default",transport="ws"}"#,
                1.0,
            ),
            ("tributary_connections_count", 1.0),
        ],
    )
    .await;
    tcp.disconnect().await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_and_failed_handshakes_are_counted() {
    let gateway = start_gateway_with(|config| {
        for listener in config.listeners.tcp.values_mut() {
            listener.max_connections = Limit::Max(1);
        }
    })
    .await;
    let _first = V4::connect(v4_options(&gateway, "the-one")).await;
    // The second is accepted by the socket and closed at once.
    let mut second = TcpStream::connect(gateway.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(WAIT, second.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");

    // A WebSocket upgrade on the wrong path, and a TLS listener spoken to in plain text.
    let mut ws = TcpStream::connect(gateway.addr_of("ws", "default"))
        .await
        .unwrap();
    ws.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(WAIT, ws.read(&mut buf)).await;
    let mut ssl = TcpStream::connect(gateway.addr_of("ssl", "default"))
        .await
        .unwrap();
    ssl.write_all(b"CONNECT in plain text, not a ClientHello\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(WAIT, ssl.read(&mut buf)).await;

    scrape_until(
        &gateway,
        &[
            (
                r#"tributary_listener_connections_refused{listener="tcp:default",transport="tcp",reason="max_connections"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_accepted{listener="tcp:default",transport="tcp"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_connections_count{listener="tcp:default",transport="tcp"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_handshake_failures{listener="ws:default",transport="ws",reason="websocket"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_handshake_failures{listener="ssl:default",transport="ssl",reason="tls"}"#,
                1.0,
            ),
            (
                r#"tributary_listener_handshake_failures{listener="ssl:default",transport="ssl",reason="timeout"}"#,
                0.0,
            ),
        ],
    )
    .await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_in_one_process_keep_their_own_metrics_and_the_api_can_be_off() {
    let first = start_gateway().await;
    let second = start_gateway_with(|config| config.dashboard.listeners.http.enable = false).await;
    assert!(second.gateway().addr_of("http", "default").is_none());
    let _client = V4::connect(v4_options(&first, "only-on-first")).await;
    scrape_until(&first, &[("tributary_sessions_count", 1.0)]).await;
    let text = second.gateway().metrics().render();
    assert_eq!(
        value(&text, "tributary_sessions_count"),
        Some(0.0),
        "{text}"
    );
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_stops_with_the_gateway_even_with_an_idle_keep_alive_connection() {
    let gateway = start_gateway().await;
    let http = gateway.addr_of("http", "default");
    let mut idle = TcpStream::connect(http).await.unwrap();
    idle.write_all(b"GET /api/v5/prometheus/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The connection stays open (keep-alive) while the gateway shuts down.
    tokio::time::timeout(Duration::from_secs(3), gateway.shutdown())
        .await
        .expect("shutdown does not wait for idle HTTP connections");
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the API no longer listens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_configurable_and_can_guard_the_metrics_too() {
    let gateway = start_gateway_with(|config| {
        config.dashboard.default_username = "ops".to_owned();
        config.dashboard.default_password = "s3cret".to_owned();
        config.prometheus.enable_basic_auth = true;
    })
    .await;
    let http = gateway.addr_of("http", "default");
    // ops:s3cret
    let ops = "Basic b3BzOnMzY3JldA==";
    for path in ["/api/v5/prometheus/stats", "/api/v5/clients"] {
        assert_eq!(get(http, path, None).await.0, 401, "{path}");
        assert_eq!(
            get(http, path, Some(ADMIN)).await.0,
            401,
            "{path}: the defaults are off"
        );
        assert_eq!(get(http, path, Some(ops)).await.0, 200, "{path}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_address_in_use_refuses_to_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = tributary_tests::test_config();
    config.dashboard.listeners.http.bind = addr;
    let error = tributary_gateway::Gateway::start(&config)
        .await
        .expect_err("the port is taken")
        .to_string();
    let _ = std::fs::remove_dir_all(&config.node.data_dir);
    assert!(
        error.starts_with(&format!(
            "dashboard.listeners.http.bind = {addr}: cannot bind: "
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_clients_show_with_their_protocol_in_the_series_and_the_list() {
    use common::coap::{Coap, code, request, response};

    let gateway = start_gateway().await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let mut publish = request(coap_lite::RequestType::Post, "ps/m/t", &[]);
    publish.payload = b"21.5".to_vec();
    let answer = coap.con(publish).await;
    assert_eq!(code(&answer), response(coap_lite::ResponseType::Changed));
    scrape_until(
        &gateway,
        &[(
            r#"tributary_clients_count{listener="udp:default",protocol="coap",transport="udp"}"#,
            1.0,
        )],
    )
    .await;
    let http = gateway.addr_of("http", "default");
    let list = get_json(http, "/api/v5/clients?protocol=coap").await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    assert_eq!(data[0]["protocol"], "coap", "{list}");
    assert_eq!(data[0]["listener"], "udp:default", "{list}");
    gateway.shutdown().await;
}
