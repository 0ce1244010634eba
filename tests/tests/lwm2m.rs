//! The LwM2M gateway through real UDP sockets: a simulated device (coap-lite) registers with
//! objects 3 and 3303, an MQTT client (rumqttc) drives it with EMQX's JSON commands on
//! `lwm2m/{ep}/dn` and checks every document on `lwm2m/{ep}/up/...`; registration lifecycle,
//! lifetime expiry, bad Register queries and the registration cap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use common::{
    QUIET, V4,
    coap::{code, response},
    lwm2m::{Device, LINK, TLV, option_uint, uri_path, uri_queries},
    v4_options,
};
use rumqttc::QoS as RQoS;
use serde_json::{Value, json};
use tributary_config::Limit;
use tributary_mqtt_core::ReasonCode;
use tributary_protocols::{AuthRequest, BoxFuture, Hooks};
use tributary_tests::{TestGateway, start_gateway, start_gateway_with, start_gateway_with_hooks};

/// An MQTT client subscribed to everything the gateway publishes for `ep`.
async fn integrator(gateway: &TestGateway, ep: &str) -> V4 {
    let mut mqtt = V4::connect(v4_options(gateway, &format!("app-{ep}"))).await;
    mqtt.subscribe(&format!("lwm2m/{ep}/up/#"), RQoS::AtMostOnce)
        .await;
    mqtt
}

/// The next publish: its topic and payload as text.
async fn next(mqtt: &mut V4) -> (String, String) {
    let publish = mqtt.next_publish().await;
    (
        publish.topic.clone(),
        String::from_utf8(publish.payload.to_vec()).unwrap(),
    )
}

async fn command(mqtt: &mut V4, ep: &str, doc: &str) {
    mqtt.publish(
        &format!("lwm2m/{ep}/dn"),
        RQoS::AtMostOnce,
        false,
        doc.as_bytes(),
    )
    .await;
}

fn location(packet: &Packet) -> Vec<String> {
    packet
        .get_option(CoapOption::LocationPath)
        .map(|v| {
            v.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A registered device and its integrator, the register event consumed and checked.
async fn registered(gateway: &TestGateway, ep: &str) -> (Device, V4) {
    let mut mqtt = integrator(gateway, ep).await;
    let mut device = Device::new(gateway.lwm2m_addr(), ep).await;
    let answer = device.register(60).await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    assert_eq!(location(&answer), ["rd", ep]);
    let (topic, payload) = next(&mut mqtt).await;
    assert_eq!(topic, format!("lwm2m/{ep}/up/resp"));
    let event: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        event,
        json!({"msgType": "register", "data": {
            "alternatePath": "/", "b": "U", "ep": ep, "lt": 60, "lwm2m": "1.0",
            "objectList": ["/1/0", "/3/0", "/3303/0"],
        }})
    );
    assert!(
        payload.starts_with(r#"{"msgType":"register","data":{"#),
        "{payload}"
    );
    (device, mqtt)
}

/// Sends `doc` on the command topic, lets the device answer, and returns the request the
/// device saw and the response document published.
async fn roundtrip(device: &mut Device, mqtt: &mut V4, doc: &str) -> (Packet, String) {
    let ep = device.ep.clone();
    command(mqtt, &ep, doc).await;
    let request = device.serve_one().await;
    assert_eq!(request.header.get_type(), MessageType::Confirmable);
    let (topic, payload) = next(mqtt).await;
    assert_eq!(topic, format!("lwm2m/{ep}/up/resp"));
    (request, payload)
}

#[tokio::test]
async fn register_read_discover_write_execute() {
    let gateway = start_gateway().await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-read").await;

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Get));
    assert_eq!(uri_path(&req), "/3/0/0");
    assert_eq!(
        doc,
        r#"{"reqID":1,"msgType":"read","data":{"reqPath":"/3/0/0","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/0","value":"Tributary"}]}}"#
    );

    // An instance, in TLV, typed by the object model (3303: Float, String).
    let (_, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":"r2","msgType":"read","data":{"path":"/3303/0"}}"#,
    )
    .await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc,
        json!({"reqID": "r2", "msgType": "read", "data": {
            "reqPath": "/3303/0", "code": "2.05", "codeMsg": "content",
            "content": [
                {"path": "/3303/0/5700", "value": 21.5},
                {"path": "/3303/0/5701", "value": "Cel"},
            ],
        }})
    );

    // An integer resource in text/plain.
    let (_, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":3,"msgType":"read","data":{"path":"/3/0/9"}}"#,
    )
    .await;
    assert_eq!(
        doc,
        r#"{"reqID":3,"msgType":"read","data":{"reqPath":"/3/0/9","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/9","value":87}]}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":4,"msgType":"discover","data":{"path":"/3303/0"}}"#,
    )
    .await;
    assert_eq!(option_uint(&req, CoapOption::Accept), Some(u32::from(LINK)));
    assert_eq!(
        doc,
        r#"{"reqID":4,"msgType":"discover","data":{"reqPath":"/3303/0","code":"2.05","codeMsg":"content","content":["</3303/0>","</3303/0/5700>","</3303/0/5701>"]}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":5,"msgType":"write","data":{"path":"/3/0/15","type":"String","value":"Europe/Paris"}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Put));
    assert_eq!(uri_path(&req), "/3/0/15");
    assert_eq!(
        option_uint(&req, CoapOption::ContentFormat),
        Some(u32::from(TLV))
    );
    // One TLV resource entry: 8-bit id 15, 8-bit length 12, the UTF-8 value.
    let mut expected = vec![0xC8, 15, 12];
    expected.extend_from_slice(b"Europe/Paris");
    assert_eq!(req.payload, expected);
    assert_eq!(
        doc,
        r#"{"reqID":5,"msgType":"write","data":{"reqPath":"/3/0/15","code":"2.04","codeMsg":"changed"}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":6,"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":"5","lt":null}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Put));
    assert_eq!(uri_queries(&req), ["pmin=1", "pmax=5"]);
    assert_eq!(
        doc,
        r#"{"reqID":6,"msgType":"write-attr","data":{"reqPath":"/3/0/9","code":"2.04","codeMsg":"changed"}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":7,"msgType":"execute","data":{"path":"/3/0/4","args":"2,7"}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Post));
    assert_eq!(req.payload, b"2,7");
    assert_eq!(
        doc,
        r#"{"reqID":7,"msgType":"execute","data":{"reqPath":"/3/0/4","code":"2.04","codeMsg":"changed"}}"#
    );

    // A device error comes back with its code.
    let (_, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":8,"msgType":"execute","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    assert_eq!(
        doc,
        r#"{"reqID":8,"msgType":"execute","data":{"reqPath":"/3/0/0","code":"4.05","codeMsg":"method_not_allowed"}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":9,"msgType":"create","data":{"basePath":"/3303","content":[{"path":"/1/5701","type":"String","value":"K"}]}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Post));
    assert_eq!(uri_path(&req), "/3303");
    assert_eq!(
        doc,
        r#"{"reqID":9,"msgType":"create","data":{"reqPath":"/3303","code":"2.01","codeMsg":"created"}}"#
    );

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":10,"msgType":"delete","data":{"path":"/3303/1"}}"#,
    )
    .await;
    assert_eq!(req.header.code, MessageClass::Request(RequestType::Delete));
    assert_eq!(
        doc,
        r#"{"reqID":10,"msgType":"delete","data":{"reqPath":"/3303/1","code":"2.02","codeMsg":"deleted"}}"#
    );

    // A command that cannot become a request is answered on MQTT; the device hears nothing.
    command(
        &mut mqtt,
        "dev-read",
        r#"{"reqID":11,"msgType":"read","data":{"path":"not-a-path"}}"#,
    )
    .await;
    let (_, doc) = next(&mut mqtt).await;
    assert!(
        doc.starts_with(r#"{"reqID":11,"msgType":"read","data":{"#)
            && doc.contains(r#""code":"4.00""#),
        "{doc}"
    );
    assert!(device.coap.recv_within(QUIET).await.is_none());
    gateway.shutdown().await;
}

#[tokio::test]
async fn separate_response_publishes_ack_then_response() {
    let gateway = start_gateway().await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-sep").await;
    command(
        &mut mqtt,
        "dev-sep",
        r#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    device
        .serve_one_separately(Duration::from_millis(100))
        .await;
    let (_, ack) = next(&mut mqtt).await;
    assert_eq!(
        ack,
        r#"{"requestID":206,"cacheID":206,"msgType":"ack","data":{"path":"/3/0/0"}}"#
    );
    let (_, doc) = next(&mut mqtt).await;
    assert_eq!(
        doc,
        r#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"reqPath":"/3/0/0","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/0","value":"Tributary"}]}}"#
    );
    // The gateway acknowledged the separate CON response.
    let answer = device.coap.recv().await;
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    gateway.shutdown().await;
}

#[tokio::test]
async fn observe_notify_and_cancel() {
    let gateway = start_gateway().await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-obs").await;

    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":20,"msgType":"observe","data":{"path":"/3303/0/5700"}}"#,
    )
    .await;
    assert_eq!(option_uint(&req, CoapOption::Observe), Some(0));
    assert_eq!(
        doc,
        r#"{"reqID":20,"msgType":"observe","seqNum":1,"data":{"reqPath":"/3303/0/5700","code":"2.05","codeMsg":"content","content":[{"path":"/3303/0/5700","value":21.5}]}}"#
    );

    let answer = device.notify("/3303/0/5700", "22.25").await;
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    let (topic, doc) = next(&mut mqtt).await;
    assert_eq!(topic, "lwm2m/dev-obs/up/notify");
    assert_eq!(
        doc,
        r#"{"reqID":20,"msgType":"notify","seqNum":2,"data":{"reqPath":"/3303/0/5700","code":"2.05","codeMsg":"content","content":[{"path":"/3303/0/5700","value":22.25}]}}"#
    );

    // An observe the device refuses is answered once and holds nothing.
    let (_, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":22,"msgType":"observe","data":{"path":"/3/0/99"}}"#,
    )
    .await;
    assert_eq!(
        doc,
        r#"{"reqID":22,"msgType":"observe","data":{"reqPath":"/3/0/99","code":"4.04","codeMsg":"not_found"}}"#
    );

    let token = device.observation_token("/3303/0/5700").unwrap();
    let (req, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":21,"msgType":"cancel-observe","data":{"path":"/3303/0/5700"}}"#,
    )
    .await;
    assert_eq!(option_uint(&req, CoapOption::Observe), Some(1));
    assert_eq!(
        doc,
        r#"{"reqID":21,"msgType":"cancel-observe","data":{"reqPath":"/3303/0/5700","code":"2.05","codeMsg":"content","content":[{"path":"/3303/0/5700","value":22.25}]}}"#
    );
    // A late notification of the cancelled observation is rejected with a RST (the gateway
    // forgot the token) and not published.
    let answer = device.notify_raw(token, 3, "23").await;
    assert_eq!(answer.header.get_type(), MessageType::Reset);
    mqtt.assert_no_publish().await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn update_publishes_and_deregister_closes() {
    let gateway = start_gateway_with(|c| {
        c.gateway.lwm2m.update_msg_publish_condition =
            tributary_config::Lwm2mUpdateCondition::Always;
    })
    .await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-upd").await;

    let answer = device
        .update(&["lt=120"], Some("</1/0>,</3/0>,</3303/0>,</3303/1>"))
        .await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    let (topic, doc) = next(&mut mqtt).await;
    assert_eq!(topic, "lwm2m/dev-upd/up/update");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc,
        json!({"msgType": "update", "data": {
            "alternatePath": "/", "b": "U", "ep": "dev-upd", "lt": 120, "lwm2m": "1.0",
            "objectList": ["/1/0", "/3/0", "/3303/0", "/3303/1"],
        }})
    );
    // A plain update (no payload) is published too with `always`.
    let answer = device.update(&[], None).await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    let (topic, _) = next(&mut mqtt).await;
    assert_eq!(topic, "lwm2m/dev-upd/up/update");

    // An update at the wrong location.
    let mut wrong = common::coap::request(RequestType::Post, "rd/someone-else", &[]);
    wrong.header.set_type(MessageType::Confirmable);
    let answer = device.coap.con(wrong).await;
    assert_eq!(code(&answer), response(ResponseType::NotFound));

    assert!(
        gateway
            .gateway()
            .broker()
            .clients()
            .iter()
            .any(|(id, _)| id == "dev-upd")
    );
    let answer = device.deregister().await;
    assert_eq!(code(&answer), response(ResponseType::Deleted));
    common::until("the device's client is gone", || {
        !gateway
            .gateway()
            .broker()
            .clients()
            .iter()
            .any(|(id, _)| id == "dev-upd")
    })
    .await;
    // De-register publishes nothing; a command now reaches no device.
    command(
        &mut mqtt,
        "dev-upd",
        r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    mqtt.assert_no_publish().await;
    assert!(device.coap.recv_within(QUIET).await.is_none());
    // And the registration is gone: an Update is an unknown location.
    let answer = device.update(&[], None).await;
    assert_eq!(code(&answer), response(ResponseType::NotFound));
    gateway.shutdown().await;
}

#[tokio::test]
async fn update_without_object_list_is_not_published_by_default() {
    let gateway = start_gateway().await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-quiet").await;
    let answer = device.update(&["lt=90"], None).await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    mqtt.assert_no_publish().await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn lifetime_expiry_drops_the_registration() {
    let gateway = start_gateway_with(|c| {
        c.gateway.lwm2m.lifetime_min = Duration::from_secs(1);
    })
    .await;
    let mut device = Device::new(gateway.lwm2m_addr(), "dev-lt").await;
    let answer = device.register(1).await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    common::until("the registration expired", || {
        !gateway
            .gateway()
            .broker()
            .clients()
            .iter()
            .any(|(id, _)| id == "dev-lt")
    })
    .await;
    let answer = device.update(&[], None).await;
    assert_eq!(code(&answer), response(ResponseType::NotFound));
    gateway.shutdown().await;
}

#[tokio::test]
async fn register_with_bad_queries_gets_4_00() {
    let gateway = start_gateway().await;
    let mut device = Device::new(gateway.lwm2m_addr(), "dev-bad").await;
    let objects = common::lwm2m::OBJECTS;
    for queries in [
        &["ep=dev-bad", "lwm2m=1.0"][..],
        &["lt=60", "lwm2m=1.0"][..],
        &["ep=dev-bad", "lt=60", "lwm2m=2.0"][..],
        &["ep=dev-bad", "lt=99999999", "lwm2m=1.0"][..],
        &["ep=dev-bad", "lt=abc", "lwm2m=1.1"][..],
    ] {
        let answer = device.register_with(queries, objects).await;
        assert_eq!(
            code(&answer),
            response(ResponseType::BadRequest),
            "{queries:?}"
        );
        assert_eq!(
            answer.payload, b"Login Failed: invalid queries",
            "{queries:?}"
        );
    }
    // A malformed object list.
    let answer = device
        .register_with(&["ep=dev-bad", "lt=60", "lwm2m=1.0"], "</3/0,<<>>;;")
        .await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    // Too many links (RELIABILITY.md item 38), and a payload beyond the limit.
    let many: Vec<String> = (0..600).map(|i| format!("</{}/0>", 10_000 + i)).collect();
    let answer = device
        .register_with(&["ep=dev-bad", "lt=60", "lwm2m=1.0"], &many.join(","))
        .await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    let huge = format!("</3/0>,<{}>", "9".repeat(20 * 1024));
    let answer = device
        .register_with(&["ep=dev-bad", "lt=60", "lwm2m=1.0"], &huge)
        .await;
    assert_eq!(code(&answer), response(ResponseType::RequestEntityTooLarge));
    // Anything but the registration interface.
    let answer = device
        .coap
        .con(common::coap::request(RequestType::Get, "rd", &[]))
        .await;
    assert_eq!(code(&answer), response(ResponseType::MethodNotAllowed));
    let answer = device
        .coap
        .con(common::coap::request(RequestType::Post, "bs", &[]))
        .await;
    assert_eq!(code(&answer), response(ResponseType::NotFound));
    // Garbage is ignored, and the gateway still serves.
    device.coap.send_raw(&[0xFF, 0x00, 0x01]).await;
    let answer = device.register(60).await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    gateway.shutdown().await;
}

#[tokio::test]
async fn registrations_are_capped() {
    let gateway = start_gateway_with(|c| {
        for l in c.gateway.lwm2m.listeners.udp.values_mut() {
            l.max_connections = Limit::Max(1);
        }
    })
    .await;
    let mut first = Device::new(gateway.lwm2m_addr(), "dev-cap-1").await;
    let mut second = Device::new(gateway.lwm2m_addr(), "dev-cap-2").await;
    assert_eq!(
        code(&first.register(60).await),
        response(ResponseType::Created)
    );
    assert_eq!(
        code(&second.register(60).await),
        response(ResponseType::ServiceUnavailable)
    );
    assert_eq!(
        code(&first.deregister().await),
        response(ResponseType::Deleted)
    );
    // The slot is free again (released when the first device's task ends).
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let answer = second.register(60).await;
        if code(&answer) == response(ResponseType::Created) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn same_endpoint_from_another_address_takes_over() {
    let gateway = start_gateway().await;
    let (_old, mut mqtt) = registered(&gateway, "dev-move").await;
    let mut moved = Device::new(gateway.lwm2m_addr(), "dev-move").await;
    assert_eq!(
        code(&moved.register(60).await),
        response(ResponseType::Created)
    );
    let (_, event) = next(&mut mqtt).await;
    assert!(event.starts_with(r#"{"msgType":"register""#), "{event}");
    // Commands now reach the new address.
    let (_, doc) = roundtrip(
        &mut moved,
        &mut mqtt,
        r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}"#,
    )
    .await;
    assert!(doc.contains(r#""value":"Sim-1""#), "{doc}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn reset_request_publishes_coap_reset() {
    let gateway = start_gateway().await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-rst").await;
    command(
        &mut mqtt,
        "dev-rst",
        r#"{"reqID":30,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    device.reset_one().await;
    let (_, doc) = next(&mut mqtt).await;
    assert_eq!(
        doc,
        r#"{"reqID":30,"msgType":"coap_reset","data":{"path":"/3/0/0"}}"#
    );
    // The next command goes out: the CON slot was freed.
    let (_, doc) = roundtrip(
        &mut device,
        &mut mqtt,
        r#"{"reqID":31,"msgType":"read","data":{"path":"/3/0/1"}}"#,
    )
    .await;
    assert!(doc.contains(r#""code":"2.05""#), "{doc}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn queue_mode_holds_commands_until_the_next_update() {
    let gateway = start_gateway_with(|c| {
        c.gateway.lwm2m.qmode_time_window = Duration::from_millis(200);
    })
    .await;
    let mut mqtt = integrator(&gateway, "dev-q").await;
    let mut device = Device::new(gateway.lwm2m_addr(), "dev-q").await;
    let answer = device
        .register_with(
            &["ep=dev-q", "lt=300", "lwm2m=1.1", "b=UQ"],
            common::lwm2m::OBJECTS,
        )
        .await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    let (_, event) = next(&mut mqtt).await;
    assert!(event.contains(r#""b":"UQ""#), "{event}");
    // The device went to sleep: the command waits.
    tokio::time::sleep(Duration::from_millis(400)).await;
    command(
        &mut mqtt,
        "dev-q",
        r#"{"reqID":40,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    )
    .await;
    assert!(device.coap.recv_within(QUIET).await.is_none());
    // It wakes up with an Update: the command follows its answer.
    let answer = device.update(&[], None).await;
    assert_eq!(code(&answer), response(ResponseType::Changed));
    let req = device.serve_one().await;
    assert_eq!(uri_path(&req), "/3/0/0");
    let (_, doc) = next(&mut mqtt).await;
    assert!(
        doc.starts_with(r#"{"reqID":40,"msgType":"read","data":{"reqPath":"/3/0/0","code":"2.05""#),
        "{doc}"
    );
    gateway.shutdown().await;
}

/// Accepts only the password `good`, and records who asked.
struct PasswordGood(std::sync::Mutex<Vec<(String, Option<String>)>>);

impl Hooks for PasswordGood {
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest,
    ) -> BoxFuture<'a, Result<(), ReasonCode>> {
        let good = request.password.as_deref() == Some(b"good".as_slice());
        self.0.lock().unwrap().push((
            request.client_id.to_string(),
            request.username.as_deref().map(str::to_owned),
        ));
        Box::pin(async move {
            if good {
                Ok(())
            } else {
                Err(ReasonCode::NOT_AUTHORIZED)
            }
        })
    }

    fn authorize_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn authorize_subscribe(
        &self,
        _client_id: &str,
        _username: Option<&str>,
        _filter: &str,
    ) -> bool {
        true
    }
}

#[tokio::test]
async fn register_authenticates_with_device_id_imei_and_password() {
    let hooks = std::sync::Arc::new(PasswordGood(std::sync::Mutex::new(Vec::new())));
    let gateway = start_gateway_with_hooks(|_| {}, hooks.clone()).await;
    let mut options = v4_options(&gateway, "app");
    options.set_credentials("app", "good");
    let mut mqtt = V4::connect(options).await;
    mqtt.subscribe("lwm2m/dev-auth/up/#", RQoS::AtMostOnce)
        .await;
    let mut device = Device::new(gateway.lwm2m_addr(), "dev-auth").await;
    let objects = common::lwm2m::OBJECTS;
    let answer = device
        .register_with(
            &["ep=dev-auth", "lt=60", "lwm2m=1.0", "password=bad"],
            objects,
        )
        .await;
    assert_eq!(code(&answer), response(ResponseType::BadRequest));
    assert_eq!(answer.payload, b"Login Failed: not_authorized");
    mqtt.assert_no_publish().await;

    let answer = device
        .register_with(
            &[
                "ep=dev-auth",
                "lt=60",
                "lwm2m=1.0",
                "device_id=d-7",
                "imei=4711",
                "password=good",
            ],
            objects,
        )
        .await;
    assert_eq!(code(&answer), response(ResponseType::Created));
    assert_eq!(
        hooks.0.lock().unwrap().last().cloned(),
        Some(("d-7".to_owned(), Some("4711".to_owned())))
    );
    // The password is never published.
    let (_, event) = next(&mut mqtt).await;
    assert!(
        !event.contains("password") && !event.contains("good"),
        "{event}"
    );
    assert!(event.contains(r#""device_id":"d-7""#), "{event}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn auto_observe_observes_the_registered_objects() {
    let gateway = start_gateway_with(|c| c.gateway.lwm2m.auto_observe = true).await;
    let (mut device, mut mqtt) = registered(&gateway, "dev-auto").await;
    // Object 1 (Server) is never auto-observed; 3 and 3303 are, one CON at a time.
    for path in ["/3/0", "/3303/0"] {
        let req = device.serve_one().await;
        assert_eq!(uri_path(&req), path);
        assert_eq!(option_uint(&req, CoapOption::Observe), Some(0));
        let (_, doc) = next(&mut mqtt).await;
        let doc: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc["msgType"], "observe", "{doc}");
        assert_eq!(doc["is_auto_observe"], true, "{doc}");
        assert_eq!(doc["data"]["reqPath"], path, "{doc}");
        assert_eq!(doc["data"]["code"], "2.05", "{doc}");
    }
    assert!(device.coap.recv_within(QUIET).await.is_none());
    gateway.shutdown().await;
}
