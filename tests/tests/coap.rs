//! The CoAP gateway through real UDP sockets, with a coap-lite client on one side and rumqttc
//! on the other: EMQX's URIs (`ps/{topic}`, `mqtt/connection`), QoS mapping, Observe, the
//! retained-message GET, connection mode, ACL, block-wise transfer and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{sync::Arc, time::Duration};

use coap_lite::{CoapOption, MessageClass, MessageType, RequestType, ResponseType};
use common::{
    QUIET, V4,
    coap::{Coap, code, observe, request, response},
    until, v4_options,
};
use rumqttc::QoS as RQoS;
use tributary_mqtt_core::ReasonCode;
use tributary_protocols::{AuthRequest, BoxFuture, Hooks, Protocol, Transport};
use tributary_tests::{TestGateway, start_gateway, start_gateway_with, start_gateway_with_hooks};

use RequestType::{Delete, Get, Post, Put};

async fn subscriber(gateway: &TestGateway, filter: &str) -> V4 {
    let mut mqtt = V4::connect(v4_options(gateway, "mqtt-sub")).await;
    mqtt.subscribe(filter, RQoS::ExactlyOnce).await;
    mqtt
}

fn with_payload(mut packet: coap_lite::Packet, payload: &[u8]) -> coap_lite::Packet {
    packet.payload = payload.to_vec();
    packet
}

#[tokio::test]
async fn publish_reaches_mqtt_with_topic_qos_and_retain() {
    let gateway = start_gateway().await;
    let mut mqtt = subscriber(&gateway, "t/#").await;
    let mut coap = Coap::new(gateway.coap_addr()).await;

    let answer = coap
        .con(with_payload(request(Post, "ps/t/con", &[]), b"a"))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    let publish = mqtt.next_publish().await;
    assert_eq!(
        (publish.topic.as_str(), publish.qos),
        ("t/con", RQoS::AtLeastOnce)
    );
    assert_eq!(&publish.payload[..], b"a");

    let answer = coap
        .call(
            with_payload(request(Put, "ps/t/non", &[]), b"b"),
            MessageType::NonConfirmable,
        )
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    assert_eq!(answer.header.get_type(), MessageType::NonConfirmable);
    let publish = mqtt.next_publish().await;
    assert_eq!(
        (publish.topic.as_str(), publish.qos),
        ("t/non", RQoS::AtMostOnce)
    );

    coap.con(with_payload(request(Post, "ps/t/q2", &["qos=2"]), b"c"))
        .await;
    let publish = mqtt.next_publish().await;
    assert_eq!(
        (publish.topic.as_str(), publish.qos),
        ("t/q2", RQoS::ExactlyOnce)
    );

    coap.con(with_payload(
        request(Post, "ps/t/%24x", &["q=0", "r=true"]),
        b"kept",
    ))
    .await;
    let publish = mqtt.next_publish().await;
    assert_eq!(publish.topic, "t/$x", "percent-decoded");
    let retained = gateway
        .gateway()
        .broker()
        .retained_message("t/$x")
        .expect("retained");
    assert_eq!(&retained.payload[..], b"kept");
    let mut late = V4::connect(v4_options(&gateway, "late")).await;
    late.subscribe("t/$x", RQoS::AtLeastOnce).await;
    assert!(late.next_publish().await.retain);

    // Listed as a CoAP client of the UDP listener.
    let clients = gateway.gateway().broker().clients();
    let (_, coap_client) = clients
        .iter()
        .find(|(_, c)| c.protocol == Protocol::Coap)
        .expect("a coap client");
    assert_eq!(
        (coap_client.transport, &*coap_client.listener),
        (Transport::Udp, "udp:default")
    );
    assert_eq!(coap_client.peer, coap.addr());

    // Errors: invalid topic, other method, other path.
    let answer = coap.con(request(Post, "ps/a/%2B", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    assert_eq!(answer.payload, b"invalid topic");
    let answer = coap.con(request(Delete, "ps/a", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::MethodNotAllowed));
    let answer = coap.con(request(Get, "elsewhere", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
}

#[tokio::test]
async fn mountpoint_and_fixed_publish_qos() {
    let gateway = start_gateway_with(|c| {
        c.gateway.coap.mountpoint = "coap/".into();
        c.gateway.coap.publish_qos = tributary_config::CoapQos::Qos2;
    })
    .await;
    let mut mqtt = subscriber(&gateway, "#").await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    coap.call(request(Post, "ps/dev/1", &[]), MessageType::NonConfirmable)
        .await;
    let publish = mqtt.next_publish().await;
    assert_eq!(
        (publish.topic.as_str(), publish.qos),
        ("coap/dev/1", RQoS::ExactlyOnce)
    );
}

#[tokio::test]
async fn observe_gets_notifications_with_increasing_sequence_and_cancels() {
    let gateway = start_gateway().await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let mut observe_req = request(Get, "ps/sensor/%2B/temp", &[]);
    observe_req.add_option(CoapOption::Observe, vec![]);
    observe_req.set_token(vec![0xAB, 0xCD]);
    let answer = coap.con(observe_req).await;
    assert_eq!(code(&answer), response(ResponseType::Content));
    assert_eq!(observe(&answer), Some(0));
    assert_eq!(answer.get_token(), &[0xAB, 0xCD]);

    let mut mqtt = V4::connect(v4_options(&gateway, "pub")).await;
    let mut last = 0;
    for (i, qos) in [RQoS::AtMostOnce, RQoS::AtLeastOnce, RQoS::AtMostOnce]
        .into_iter()
        .enumerate()
    {
        let payload = format!("{i}");
        mqtt.publish("sensor/7/temp", qos, false, payload.as_bytes())
            .await;
        let note = coap.notification().await;
        assert_eq!(code(&note), response(ResponseType::Content));
        assert_eq!(note.get_token(), &[0xAB, 0xCD]);
        assert_eq!(note.payload, payload.as_bytes());
        let seq = observe(&note).unwrap();
        assert!(seq > last, "sequence {seq} after {last}");
        last = seq;
        if qos == RQoS::AtLeastOnce {
            assert_eq!(
                note.header.get_type(),
                MessageType::Confirmable,
                "notify_type = qos"
            );
        }
    }
    // A topic the filter does not match: nothing.
    mqtt.publish("sensor/7/humidity", RQoS::AtMostOnce, false, b"x")
        .await;
    assert!(coap.recv_within(QUIET).await.is_none());

    let mut cancel = request(Get, "ps/sensor/%2B/temp", &[]);
    cancel.add_option(CoapOption::Observe, vec![1]);
    let answer = coap.con(cancel).await;
    assert_eq!(code(&answer), MessageClass::Reserved(0x47), "2.07 as EMQX");
    mqtt.publish("sensor/7/temp", RQoS::AtMostOnce, false, b"late")
        .await;
    assert!(coap.recv_within(QUIET).await.is_none());
}

#[tokio::test]
async fn rst_on_a_notification_cancels_the_observation() {
    let gateway = start_gateway().await;
    let broker = gateway.gateway().broker().clone();
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let mut observe_req = request(Get, "ps/r", &[]);
    observe_req.add_option(CoapOption::Observe, vec![]);
    coap.con(observe_req).await;
    assert_eq!(broker.subscription_count(), 1);
    let mut mqtt = V4::connect(v4_options(&gateway, "pub")).await;
    mqtt.publish("r", RQoS::AtLeastOnce, false, b"1").await;
    let note = coap.recv().await;
    coap.reset(&note).await;
    until("the observation is cancelled", || {
        broker.subscription_count() == 0
    })
    .await;
}

#[tokio::test]
async fn plain_get_returns_the_retained_message_in_blocks() {
    let gateway = start_gateway().await;
    let mut mqtt = V4::connect(v4_options(&gateway, "pub")).await;
    mqtt.publish("ret/small", RQoS::AtLeastOnce, true, b"hello")
        .await;
    let large: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    mqtt.publish("ret/large", RQoS::AtLeastOnce, true, &large)
        .await;
    let broker = gateway.gateway().broker().clone();
    until("retained", || broker.retained_count() == 2).await;

    let mut coap = Coap::new(gateway.coap_addr()).await;
    let answer = coap.con(request(Get, "ps/ret/small", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::Content));
    assert_eq!(answer.payload, b"hello");
    let answer = coap.con(request(Get, "ps/ret/none", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::NotFound));

    // RELIABILITY 35: a fresh peer gets a small first block, not 300 bytes.
    let answer = coap.con(request(Get, "ps/ret/large", &[])).await;
    assert_eq!(answer.payload.len(), 64);
    let mut body = answer.payload.clone();
    let mut block = answer
        .get_first_option(CoapOption::Block2)
        .cloned()
        .unwrap();
    let mut num = 1u32;
    while block.last().unwrap() & 0x08 != 0 {
        let mut next = request(Get, "ps/ret/large", &[]);
        next.add_option(CoapOption::Block2, vec![((num << 4) | 2) as u8]);
        let answer = coap.con(next).await;
        body.extend_from_slice(&answer.payload);
        block = answer
            .get_first_option(CoapOption::Block2)
            .cloned()
            .unwrap();
        num += 1;
    }
    assert_eq!(body, large);
}

#[tokio::test]
async fn block1_publish_of_a_large_payload() {
    let gateway = start_gateway().await;
    let mut mqtt = subscriber(&gateway, "big").await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let payload: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = payload.chunks(1024).collect();
    for (num, chunk) in chunks.iter().enumerate() {
        let more = num + 1 < chunks.len();
        let mut block = with_payload(request(Post, "ps/big", &[]), chunk);
        let value = ((num as u32) << 4) | (u32::from(more) << 3) | 6;
        block.add_option(CoapOption::Block1, vec![value as u8]);
        let answer = coap.con(block).await;
        let expected = if more {
            ResponseType::Continue
        } else {
            ResponseType::Changed
        };
        assert_eq!(code(&answer), response(expected), "block {num}");
    }
    let publish = mqtt.next_publish().await;
    assert_eq!(&publish.payload[..], &payload[..]);
}

#[tokio::test]
async fn connection_mode_login_heartbeat_expiry_and_logout() {
    let gateway = start_gateway_with(|c| {
        c.gateway.coap.connection_required = true;
        c.gateway.coap.heartbeat = Duration::from_secs(1);
    })
    .await;
    let broker = gateway.gateway().broker().clone();
    let mut coap = Coap::new(gateway.coap_addr()).await;

    // Without a token: dropped, no answer.
    let mut publish = request(Post, "ps/x", &[]);
    coap.send(&mut publish, MessageType::Confirmable).await;
    assert!(coap.recv_within(QUIET).await.is_none());

    let answer = coap
        .con(request(
            Post,
            "mqtt/connection",
            &["clientid=dev1", "username=u", "password=p"],
        ))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    let token = String::from_utf8(answer.payload).unwrap();
    let value: u64 = token.parse().unwrap();
    assert!((1..=u64::from(u32::MAX)).contains(&value));
    let client = broker.client("dev1").expect("logged in");
    assert_eq!(client.protocol, Protocol::Coap);
    assert_eq!(client.username.as_deref(), Some("u"));

    let answer = coap.con(request(Post, "ps/x", &["c=dev1", "t=1"])).await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    assert_eq!(
        answer.payload,
        b"Missing token or clientid in connection mode"
    );
    let ok = format!("token={token}");
    let answer = coap
        .con(request(Post, "ps/x", &["clientid=dev1", &ok]))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    let again = coap
        .con(request(Post, "mqtt/connection", &["clientid=dev1"]))
        .await;
    assert_eq!(again.payload, b"Bad Request: client has connected");

    // Heartbeats keep it alive past the heartbeat interval...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let answer = coap
            .con(request(Put, "mqtt/connection", &["clientid=dev1", &ok]))
            .await;
        assert_eq!(code(&answer), response(ResponseType::Changed));
    }
    assert!(broker.client("dev1").is_some());
    // ...silence ends it.
    until("the heartbeat expires", || broker.client("dev1").is_none()).await;

    let answer = coap
        .con(request(Post, "mqtt/connection", &["c=dev2"]))
        .await;
    let token = String::from_utf8(answer.payload).unwrap();
    assert!(broker.client("dev2").is_some());
    let answer = coap
        .con(request(
            Delete,
            "mqtt/connection",
            &["c=dev2", &format!("t={token}")],
        ))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Deleted));
    until("logged out", || broker.client("dev2").is_none()).await;
}

/// Denies `secret/...` to everyone, and the password `bad`.
struct DenySecret;

impl Hooks for DenySecret {
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest,
    ) -> BoxFuture<'a, Result<(), ReasonCode>> {
        let bad = request.password.as_deref() == Some(b"bad".as_slice());
        Box::pin(async move {
            if bad {
                Err(ReasonCode::BAD_USERNAME_OR_PASSWORD)
            } else {
                Ok(())
            }
        })
    }

    fn authorize_publish(&self, _client_id: &str, _username: Option<&str>, topic: &str) -> bool {
        !topic.starts_with("secret/")
    }

    fn authorize_subscribe(&self, _client_id: &str, _username: Option<&str>, filter: &str) -> bool {
        !filter.starts_with("secret/")
    }
}

#[tokio::test]
async fn acl_denies_with_4_01_and_authentication_refuses_login() {
    let gateway = start_gateway_with_hooks(|_| {}, Arc::new(DenySecret)).await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let answer = coap.con(request(Post, "ps/secret/x", &[])).await;
    assert_eq!(code(&answer), response(ResponseType::Unauthorized));
    let mut observe_req = request(Get, "ps/secret/x", &[]);
    observe_req.add_option(CoapOption::Observe, vec![]);
    assert_eq!(
        code(&coap.con(observe_req).await),
        response(ResponseType::Unauthorized)
    );
    assert_eq!(
        code(&coap.con(request(Get, "ps/secret/x", &[])).await),
        response(ResponseType::Unauthorized)
    );
    assert_eq!(
        code(&coap.con(request(Post, "ps/open", &[])).await),
        response(ResponseType::Changed)
    );

    let mut other = Coap::new(gateway.coap_addr()).await;
    let answer = other
        .con(request(
            Post,
            "mqtt/connection",
            &["clientid=d", "password=bad"],
        ))
        .await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    assert!(String::from_utf8_lossy(&answer.payload).starts_with("Login Failed"));
}

#[tokio::test]
async fn malformed_datagrams_never_stop_the_gateway() {
    let gateway = start_gateway().await;
    let mut mqtt = subscriber(&gateway, "alive").await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    // A CON header with token length 9: rejected with RST.
    coap.send_raw(&[0x49, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .await;
    let rst = coap.recv().await;
    assert_eq!(
        (rst.header.get_type(), rst.header.message_id),
        (MessageType::Reset, 0x1234)
    );
    let mut seed = 1u64;
    for len in 0..200usize {
        let datagram: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        coap.send_raw(&datagram).await;
    }
    coap.send_raw(&[0x40, 0x02, 0, 1, 0xBF, 0xFF]).await;
    coap.send_raw(&vec![0u8; 60_000]).await;
    while coap.recv_within(Duration::from_millis(200)).await.is_some() {}
    // Still serving, this peer and others.
    let answer = coap
        .con(with_payload(request(Post, "ps/alive", &[]), b"1"))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    let mut fresh = Coap::new(gateway.coap_addr()).await;
    let answer = fresh
        .con(with_payload(request(Post, "ps/alive", &[]), b"2"))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    assert_eq!(&mqtt.next_publish().await.payload[..], b"1");
    assert_eq!(&mqtt.next_publish().await.payload[..], b"2");
}

#[tokio::test]
async fn duplicate_con_publish_is_routed_once() {
    let gateway = start_gateway().await;
    let mut mqtt = subscriber(&gateway, "dup").await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let mut packet = with_payload(request(Post, "ps/dup", &[]), b"once");
    coap.send(&mut packet, MessageType::Confirmable).await;
    let first = coap.recv().await;
    coap.send_raw(&packet.to_bytes_unlimited().unwrap()).await;
    let second = coap.recv().await;
    assert_eq!(first, second, "the duplicate is answered from the cache");
    assert_eq!(&mqtt.next_publish().await.payload[..], b"once");
    mqtt.assert_no_publish().await;
}

#[tokio::test]
async fn an_mqtt_client_with_the_same_client_id_takes_over() {
    let gateway = start_gateway().await;
    let broker = gateway.gateway().broker().clone();
    let mut coap = Coap::new(gateway.coap_addr()).await;
    let answer = coap
        .con(request(Post, "mqtt/connection", &["clientid=shared"]))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    assert_eq!(broker.client("shared").unwrap().protocol, Protocol::Coap);
    let mqtt = V4::connect(v4_options(&gateway, "shared")).await;
    until("the MQTT client holds the session", || {
        broker
            .client("shared")
            .is_some_and(|c| c.protocol == Protocol::Mqtt)
    })
    .await;
    assert_eq!(
        broker
            .clients()
            .iter()
            .filter(|(_, c)| c.protocol == Protocol::Coap)
            .count(),
        0
    );
    mqtt.disconnect().await;
}

/// EMQX defect 2: `expiry` is honoured (a retained message with expiry 1 s is gone after it).
#[tokio::test]
async fn expiry_query_sets_the_message_expiry() {
    let gateway = start_gateway().await;
    let mut coap = Coap::new(gateway.coap_addr()).await;
    coap.con(with_payload(
        request(Post, "ps/exp/short", &["retain=true", "expiry=1"]),
        b"soon",
    ))
    .await;
    coap.con(with_payload(
        request(Post, "ps/exp/long", &["retain=true", "expiry=60"]),
        b"later",
    ))
    .await;
    let broker = gateway.gateway().broker().clone();
    let short = broker.retained_message("exp/short").expect("retained");
    assert!(short.expires_at.is_some());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut late = V4::connect(v4_options(&gateway, "late")).await;
    late.subscribe("exp/#", RQoS::AtLeastOnce).await;
    let publish = late.next_publish().await;
    assert_eq!(
        publish.topic, "exp/long",
        "the expired one is not delivered"
    );
    late.assert_no_publish().await;
}

/// EMQX defect 1: `notify_type` is applied: `con` sends QoS 0 messages CON, `non` sends QoS 1
/// messages NON (once the peer has acknowledged one: the amplification guard).
#[tokio::test]
async fn notify_type_con_and_non() {
    for (notify, qos, expected) in [
        (
            tributary_config::CoapNotifyType::Con,
            RQoS::AtMostOnce,
            MessageType::Confirmable,
        ),
        (
            tributary_config::CoapNotifyType::Non,
            RQoS::AtLeastOnce,
            MessageType::NonConfirmable,
        ),
    ] {
        let gateway = start_gateway_with(|c| c.gateway.coap.notify_type = notify).await;
        let mut coap = Coap::new(gateway.coap_addr()).await;
        let mut observe_req = request(Get, "ps/n", &[]);
        observe_req.add_option(CoapOption::Observe, vec![]);
        coap.con(observe_req).await;
        let mut mqtt = V4::connect(v4_options(&gateway, "pub")).await;
        mqtt.publish("n", qos, false, b"1").await;
        let first = coap.notification().await;
        assert_eq!(
            first.header.get_type(),
            MessageType::Confirmable,
            "unverified: CON"
        );
        mqtt.publish("n", qos, false, b"2").await;
        let second = coap.notification().await;
        assert_eq!(second.header.get_type(), expected, "{notify:?}");
        assert_eq!(observe(&second), Some(2));
    }
}

#[tokio::test]
async fn max_connections_bounds_the_peers() {
    let gateway = start_gateway_with(|c| {
        c.gateway
            .coap
            .listeners
            .udp
            .get_mut("default")
            .unwrap()
            .max_connections = tributary_config::Limit::Max(1);
    })
    .await;
    let mut first = Coap::new(gateway.coap_addr()).await;
    assert_eq!(
        code(&first.con(request(Post, "ps/a", &[])).await),
        response(ResponseType::Changed)
    );
    let mut second = Coap::new(gateway.coap_addr()).await;
    let mut publish = request(Post, "ps/a", &[]);
    second.send(&mut publish, MessageType::Confirmable).await;
    assert!(
        second.recv_within(QUIET).await.is_none(),
        "a second peer is not served"
    );
    assert_eq!(
        code(&first.con(request(Post, "ps/a", &[])).await),
        response(ResponseType::Changed)
    );
}
