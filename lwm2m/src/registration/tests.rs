//! The session state machine with simulated time.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::{
    command::Method,
    settings::{Lwm2mSettings, UpdatePublishCondition},
};

const EP: &str = "urn:oma:lwm2m:oma:3";

/// The simulated clock's start.
fn start() -> Instant {
    #[allow(clippy::disallowed_methods)] // Any instant serves as the simulated start.
    Instant::now()
}

fn queries(list: &[&str]) -> Vec<String> {
    list.iter().map(|q| (*q).to_owned()).collect()
}

fn session_with(settings: Lwm2mSettings) -> Session {
    Session::new(Arc::new(settings), Arc::new(ObjectRegistry::builtin()))
}

fn drain(session: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn publishes(outputs: &[Output]) -> Vec<(String, Value)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Publish { topic, payload, .. } => {
                Some((topic.clone(), serde_json::from_str(payload).unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn sends(outputs: &[Output]) -> Vec<(RequestHandle, DeviceRequest)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { handle, request } => Some((*handle, request.clone())),
            _ => None,
        })
        .collect()
}

fn registered(settings: Lwm2mSettings, now: Instant, extra: &[&str]) -> Session {
    let mut session = session_with(settings);
    let mut q = vec![format!("ep={EP}"), "lt=345".into(), "lwm2m=1".into()];
    q.extend(extra.iter().map(|s| (*s).to_owned()));
    let reply = session.handle_register(now, &q, b"</1>, </2>, </3>, </4>, </5>");
    assert_eq!(reply.code, ResponseCode::CREATED);
    session
}

fn content(payload: &[u8]) -> DeviceResponse {
    DeviceResponse {
        code: ResponseCode::CONTENT,
        content_format: Some(ContentFormat::TEXT),
        observe: None,
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn register_subscribes_and_publishes_the_emqx_document() {
    let now = start();
    let mut session = session_with(Lwm2mSettings::default());
    let reply = session.handle_register(
        now,
        &queries(&[&format!("ep={EP}"), "lt=345", "lwm2m=1", "password=secret"]),
        b"</1>, </2>, </3>, </4>, </5>",
    );
    assert_eq!(reply.code, ResponseCode::CREATED);
    assert_eq!(reply.location_path, ["rd", EP]);
    assert_eq!(
        session.identity().unwrap().password.as_deref(),
        Some("secret")
    );
    let outputs = drain(&mut session);
    assert_eq!(
        outputs[0],
        Output::Subscribe {
            topic_filter: format!("lwm2m/{EP}/dn/#"),
            qos: 0
        }
    );
    let Output::Publish {
        topic,
        payload,
        qos,
    } = &outputs[1]
    else {
        panic!("{outputs:?}")
    };
    assert_eq!(topic, &format!("lwm2m/{EP}/up/resp"));
    assert_eq!(*qos, 0);
    // The exact example of GATEWAYS.md, with `password` left out (defect 7).
    assert_eq!(
        payload,
        r#"{"msgType":"register","data":{"alternatePath":"/","ep":"urn:oma:lwm2m:oma:3","lt":345,"lwm2m":"1","objectList":["/1","/2","/3","/4","/5"]}}"#
    );
    assert_eq!(outputs.len(), 2);
}

#[test]
fn invalid_registers_are_refused() {
    let now = start();
    let bad = |q: &[&str], payload: &[u8]| {
        let mut session = session_with(Lwm2mSettings::default());
        let reply = session.handle_register(now, &queries(q), payload);
        assert!(drain(&mut session).is_empty());
        reply.code
    };
    assert_eq!(bad(&["lt=345", "lwm2m=1"], b""), ResponseCode::BAD_REQUEST);
    assert_eq!(bad(&["ep=a", "lwm2m=1"], b""), ResponseCode::BAD_REQUEST);
    assert_eq!(
        bad(&["ep=a", "lt=1", "lwm2m=2.0"], b""),
        ResponseCode::BAD_REQUEST
    );
    assert_eq!(bad(&["ep=a", "lt=1"], b""), ResponseCode::BAD_REQUEST);
    assert_eq!(
        bad(&["ep=a", "lt=x", "lwm2m=1.1"], b""),
        ResponseCode::BAD_REQUEST
    );
    // A lifetime above lifetime_max (RELIABILITY.md item 38).
    assert_eq!(
        bad(&["ep=a", "lt=86401", "lwm2m=1.0"], b""),
        ResponseCode::BAD_REQUEST
    );
    // A huge object list.
    let many = vec!["</3/0>"; 600].join(",");
    assert_eq!(
        bad(&["ep=a", "lt=60", "lwm2m=1"], many.as_bytes()),
        ResponseCode::BAD_REQUEST
    );
    let huge = vec![b'x'; 20_000];
    assert_eq!(
        bad(&["ep=a", "lt=60", "lwm2m=1"], &huge),
        ResponseCode::new(4, 13)
    );
    let too_many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert_eq!(bad(&refs, b""), ResponseCode::BAD_REQUEST);
}

#[test]
fn lifetime_rules_and_expiry() {
    let now = start();
    let mut zero = session_with(Lwm2mSettings::default());
    zero.handle_register(now, &queries(&["ep=a", "lt=0", "lwm2m=1"]), b"");
    assert_eq!(zero.lifetime(), Some(Duration::from_secs(86_400)));
    let mut short = session_with(Lwm2mSettings::default());
    short.handle_register(now, &queries(&["ep=a", "lt=3", "lwm2m=1"]), b"");
    assert_eq!(short.lifetime(), Some(Duration::from_secs(15)));

    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(345)));
    // An uplink (a response) pushes expiry on.
    let later = now + Duration::from_secs(300);
    session.handle_update(later, &session.location().unwrap(), &[], b"");
    assert_eq!(
        session.poll_timeout(),
        Some(later + Duration::from_secs(345))
    );
    session.handle_timeout(now + Duration::from_secs(346));
    assert!(!session.is_closed());
    session.handle_timeout(later + Duration::from_secs(345));
    assert!(session.is_closed());
    assert_eq!(
        drain(&mut session),
        [Output::Close {
            reason: CloseReason::LifetimeExpired
        }]
    );
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn update_merges_and_publishes_per_condition() {
    let now = start();
    let settings = Lwm2mSettings {
        update_msg_publish_condition: UpdatePublishCondition::Always,
        ..Lwm2mSettings::default()
    };
    let mut session = registered(settings, now, &[]);
    drain(&mut session);
    let location = session.location().unwrap();
    let reply = session.handle_update(
        now,
        &location,
        &queries(&["lt=789"]),
        b"</1>, </2>, </3>, </4>, </5>, </6>",
    );
    assert_eq!(reply.code, ResponseCode::CHANGED);
    let outputs = drain(&mut session);
    let Output::Publish { topic, payload, .. } = &outputs[0] else {
        panic!()
    };
    assert_eq!(topic, &format!("lwm2m/{EP}/up/update"));
    assert_eq!(
        payload,
        r#"{"msgType":"update","data":{"alternatePath":"/","ep":"urn:oma:lwm2m:oma:3","lt":789,"lwm2m":"1","objectList":["/1","/2","/3","/4","/5","/6"]}}"#
    );
    // `always`: an update without a payload is published too.
    session.handle_update(now, &location, &[], b"");
    assert_eq!(publishes(&drain(&mut session)).len(), 1);
    // Wrong location.
    let reply = session.handle_update(now, &["rd".into(), "other".into()], &[], b"");
    assert_eq!(reply.code, ResponseCode::NOT_FOUND);
    let reply = session.handle_update(now, &location, &queries(&["lt=999999"]), b"");
    assert_eq!(reply.code, ResponseCode::BAD_REQUEST);
}

#[test]
fn contains_object_list_condition_skips_bare_updates() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    let location = session.location().unwrap();
    session.handle_update(now, &location, &queries(&["lt=100"]), b"");
    assert!(publishes(&drain(&mut session)).is_empty());
    assert_eq!(session.lifetime(), Some(Duration::from_secs(100)));
    session.handle_update(now, &location, &[], b"</3/0>");
    let published = publishes(&drain(&mut session));
    assert_eq!(published[0].1["data"]["objectList"], json!(["/3/0"]));
    assert_eq!(published[0].1["data"]["lt"], json!(100));
}

#[test]
fn deregister_closes_without_mqtt() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    assert_eq!(
        session
            .handle_deregister(now, &["rd".into(), "x".into()])
            .code,
        ResponseCode::NOT_FOUND
    );
    let reply = session.handle_deregister(now, &session.location().unwrap());
    assert_eq!(reply.code, ResponseCode::DELETED);
    assert_eq!(
        drain(&mut session),
        [Output::Close {
            reason: CloseReason::Deregistered
        }]
    );
    session.handle_command(now, br#"{"msgType":"read","data":{"path":"/3/0/1"}}"#);
    assert!(drain(&mut session).is_empty());
}

#[test]
fn read_command_round_trip_and_one_con_at_a_time() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    session.handle_command(
        now,
        br#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}"#,
    );
    session.handle_command(
        now,
        br#"{"reqID":2,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    );
    let outputs = drain(&mut session);
    let sent = sends(&outputs);
    assert_eq!(sent.len(), 1, "only one outstanding command");
    let (first, request) = &sent[0];
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.path, ["3", "0", "1"]);
    assert_eq!(session.queued_commands(), 1);

    session.handle_response(now, *first, content(b"Lightweight M2M Client"));
    let outputs = drain(&mut session);
    let Output::Publish { topic, payload, .. } = &outputs[0] else {
        panic!()
    };
    assert_eq!(topic, &format!("lwm2m/{EP}/up/resp"));
    assert_eq!(
        payload,
        r#"{"reqID":1,"msgType":"read","data":{"reqPath":"/3/0/1","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/1","value":"Lightweight M2M Client"}]}}"#
    );
    let next = sends(&outputs);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.path, ["3", "0", "0"]);
    // A response for an unknown handle is ignored.
    session.handle_response(now, RequestHandle(999), content(b"x"));
    assert!(publishes(&drain(&mut session)).is_empty());
}

#[test]
fn error_codes_undefined_objects_and_bad_commands() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    session.handle_command(
        now,
        br#"{"reqID":4,"msgType":"execute","data":{"path":"/3/0/4"}}"#,
    );
    let (handle, request) = sends(&drain(&mut session))[0].clone();
    assert_eq!(request.method, Method::Post);
    session.handle_response(
        now,
        handle,
        DeviceResponse {
            code: ResponseCode::new(4, 1),
            content_format: None,
            observe: None,
            payload: Bytes::new(),
        },
    );
    let published = publishes(&drain(&mut session));
    assert_eq!(
        published[0].1,
        json!({"reqID":4,"msgType":"execute","data":{"reqPath":"/3/0/4","code":"4.01","codeMsg":"unauthorized"}})
    );
    // No definition for the object: 4.00 bad_request, as EMQX.
    session.handle_command(
        now,
        br#"{"reqID":5,"msgType":"read","data":{"path":"/31024/0/1"}}"#,
    );
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_response(now, handle, content(b"1"));
    let published = publishes(&drain(&mut session));
    assert_eq!(published[0].1["data"]["code"], "4.00");
    assert_eq!(published[0].1["data"]["codeMsg"], "bad_request");
    // A command that cannot become a request is answered at once.
    session.handle_command(
        now,
        br#"{"reqID":6,"msgType":"fly","data":{"path":"/3/0"}}"#,
    );
    let outputs = drain(&mut session);
    assert!(sends(&outputs).is_empty());
    assert_eq!(
        publishes(&outputs)[0].1,
        json!({"reqID":6,"msgType":"fly","data":{"reqPath":"/3/0","code":"4.00","codeMsg":"bad_request"}})
    );
    // Not JSON: dropped.
    session.handle_command(now, b"not json");
    assert!(drain(&mut session).is_empty());
}

#[test]
fn ack_timeout_and_reset_events() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    let cmd = br#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"path":"/3/0/0"}}"#;
    session.handle_command(now, cmd);
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_ack(now, handle);
    let outputs = drain(&mut session);
    let Output::Publish { payload, .. } = &outputs[0] else {
        panic!()
    };
    assert_eq!(
        payload,
        r#"{"requestID":206,"cacheID":206,"msgType":"ack","data":{"path":"/3/0/0"}}"#
    );
    // The separate response still arrives and is published.
    session.handle_response(now, handle, content(b"Open Mobile Alliance"));
    assert_eq!(publishes(&drain(&mut session))[0].1["data"]["code"], "2.05");

    session.handle_command(now, cmd);
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_exchange_timeout(now, handle);
    assert_eq!(
        publishes(&drain(&mut session))[0].1["msgType"],
        "coap_timeout"
    );
    session.handle_command(now, cmd);
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_reset(now, handle);
    assert_eq!(
        publishes(&drain(&mut session))[0].1["msgType"],
        "coap_reset"
    );
}

#[test]
fn observe_notify_and_cancel() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    session.handle_command(
        now,
        br#"{"reqID":307,"msgType":"observe","data":{"path":"/3/0/10"}}"#,
    );
    let (handle, request) = sends(&drain(&mut session))[0].clone();
    assert_eq!(request.observe, Some(0));
    let mut first = content(b"2048");
    first.observe = Some(0);
    session.handle_response(now, handle, first);
    assert_eq!(
        publishes(&drain(&mut session))[0].1,
        json!({"reqID":307,"msgType":"observe","data":{"reqPath":"/3/0/10","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/10","value":2048}]}})
    );
    let mut notification = content(b"4096");
    notification.observe = Some(3);
    assert!(session.handle_notification(now, handle, notification));
    let outputs = drain(&mut session);
    let Output::Publish { topic, payload, .. } = &outputs[0] else {
        panic!()
    };
    assert_eq!(topic, &format!("lwm2m/{EP}/up/notify"));
    assert_eq!(
        payload,
        r#"{"reqID":307,"msgType":"notify","seqNum":3,"data":{"reqPath":"/3/0/10","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/10","value":4096}]}}"#
    );
    assert!(!session.handle_notification(now, RequestHandle(77), content(b"1")));

    session.handle_command(
        now,
        br#"{"reqID":10,"msgType":"cancel-observe","data":{"path":"/3/0/10"}}"#,
    );
    let (cancel, request) = sends(&drain(&mut session))[0].clone();
    assert_eq!(request.observe, Some(1));
    session.handle_response(now, cancel, content(b"1150"));
    assert_eq!(
        publishes(&drain(&mut session))[0].1["data"]["content"][0]["value"],
        1150
    );
    assert!(!session.handle_notification(now, handle, content(b"1")));
}

#[test]
fn firmware_notifications_go_to_the_dm_topic() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    session.handle_command(
        now,
        br#"{"reqID":1,"msgType":"observe","data":{"path":"/5/0/3"}}"#,
    );
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_response(now, handle, content(b"0"));
    drain(&mut session);
    let mut notification = content(b"1");
    notification.observe = Some(1);
    session.handle_notification(now, handle, notification);
    let outputs = drain(&mut session);
    let Output::Publish { topic, qos, .. } = &outputs[0] else {
        panic!()
    };
    assert_eq!(topic, &format!("lwm2m/{EP}//v1/up/dm"));
    assert_eq!(*qos, 0);
}

#[test]
fn queue_mode_holds_commands_until_an_uplink() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &["b=UQ"]);
    drain(&mut session);
    // Within the window: sent at once.
    session.handle_command(
        now + Duration::from_secs(10),
        br#"{"msgType":"read","data":{"path":"/3/0/1"}}"#,
    );
    let (handle, _) = sends(&drain(&mut session))[0].clone();
    session.handle_response(now + Duration::from_secs(11), handle, content(b"x"));
    drain(&mut session);
    // Past the window (22 s after the last uplink at 11 s): held.
    let asleep = now + Duration::from_secs(40);
    session.handle_command(
        asleep,
        br#"{"reqID":2,"msgType":"read","data":{"path":"/3/0/0"}}"#,
    );
    assert!(sends(&drain(&mut session)).is_empty());
    assert_eq!(session.queued_commands(), 1);
    // The next uplink releases it.
    session.handle_update(
        now + Duration::from_secs(60),
        &session.location().unwrap(),
        &[],
        b"",
    );
    let sent = sends(&drain(&mut session));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.path, ["3", "0", "0"]);
}

#[test]
fn queued_commands_expire_and_the_queue_is_bounded() {
    let now = start();
    let settings = Lwm2mSettings {
        max_queued_commands: 2,
        command_ttl: Duration::from_secs(30),
        ..Lwm2mSettings::default()
    };
    let mut session = registered(settings, now, &["b=UQ"]);
    drain(&mut session);
    let asleep = now + Duration::from_secs(100);
    // Re-register keeps the session alive; commands arrive while the device sleeps.
    for id in 1..=3 {
        let cmd = format!(r#"{{"reqID":{id},"msgType":"read","data":{{"path":"/3/0/1"}}}}"#);
        session.handle_command(asleep, cmd.as_bytes());
    }
    let published = publishes(&drain(&mut session));
    assert_eq!(published.len(), 1, "the third command overflows");
    assert_eq!(published[0].1["reqID"], 3);
    assert_eq!(published[0].1["data"]["code"], "5.03");
    assert_eq!(
        session.poll_timeout(),
        Some(asleep + Duration::from_secs(30))
    );
    session.handle_timeout(asleep + Duration::from_secs(30));
    let published = publishes(&drain(&mut session));
    assert_eq!(published.len(), 2);
    assert!(
        published
            .iter()
            .all(|(_, doc)| doc["data"]["code"] == "5.04")
    );
    assert_eq!(session.queued_commands(), 0);
}

#[test]
fn update_reports_the_command_waiting_for_its_ack() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    session.handle_command(
        now,
        br#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}"#,
    );
    session.handle_command(
        now,
        br#"{"reqID":2,"msgType":"read","data":{"path":"/3/0/2"}}"#,
    );
    drain(&mut session);
    session.handle_update(now, &session.location().unwrap(), &[], b"");
    let outputs = drain(&mut session);
    let published = publishes(&outputs);
    assert_eq!(published[0].1["msgType"], "coap_timeout");
    assert_eq!(published[0].1["reqID"], 1);
    assert_eq!(sends(&outputs)[0].1.path, ["3", "0", "2"]);
}

#[test]
fn auto_observe_skips_ignored_and_undefined_objects() {
    let now = start();
    let settings = Lwm2mSettings {
        auto_observe: true,
        ..Lwm2mSettings::default()
    };
    let mut session = session_with(settings);
    session.handle_register(
        now,
        &queries(&["ep=a", "lt=60", "lwm2m=1.1"]),
        b"</1/0>,</3/0>,</4/0>,</3303/0>,</31024/0>",
    );
    let outputs = drain(&mut session);
    let sent = sends(&outputs);
    assert_eq!(sent.len(), 1, "one at a time");
    assert_eq!(sent[0].1.path, ["3", "0"]);
    assert_eq!(sent[0].1.observe, Some(0));
    session.handle_response(
        now,
        sent[0].0,
        DeviceResponse {
            code: ResponseCode::CONTENT,
            content_format: Some(ContentFormat::TLV),
            observe: Some(0),
            payload: Bytes::from_static(&[0xC1, 0x09, 0x64]),
        },
    );
    let outputs = drain(&mut session);
    assert_eq!(
        publishes(&outputs)[0].1,
        json!({"msgType":"observe","is_auto_observe":true,"data":{"reqPath":"/3/0","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/9","value":100}]}})
    );
    assert_eq!(sends(&outputs)[0].1.path, ["3303", "0"]);
    assert_eq!(session.queued_commands(), 0);
}

#[test]
fn mountpoint_placeholders_and_identity() {
    let now = start();
    let mut settings = Lwm2mSettings {
        mountpoint: "lwm2m/${username}".into(),
        ..Lwm2mSettings::default()
    };
    settings.translators.command.topic = "/dn/#".into();
    let mut session = session_with(settings);
    session.handle_register(
        now,
        &queries(&["ep=e1", "lt=60", "lwm2m=1", "imei=8600", "device_id=dev1"]),
        b"",
    );
    let identity = session.identity().unwrap().clone();
    assert_eq!(
        (identity.clientid.as_str(), identity.username.as_str()),
        ("dev1", "8600")
    );
    let outputs = drain(&mut session);
    assert_eq!(
        outputs[0],
        Output::Subscribe {
            topic_filter: "lwm2m/8600/dn/#".into(),
            qos: 0
        }
    );
    let Output::Publish { topic, payload, .. } = &outputs[1] else {
        panic!()
    };
    assert_eq!(topic, "lwm2m/8600up/resp");
    // No payload: no alternatePath/objectList.
    assert_eq!(
        payload,
        r#"{"msgType":"register","data":{"device_id":"dev1","ep":"e1","imei":"8600","lt":60,"lwm2m":"1"}}"#
    );
}

#[test]
fn every_command_maps_to_its_request_and_response_document() {
    let now = start();
    let mut session = registered(Lwm2mSettings::default(), now, &[]);
    drain(&mut session);
    let empty = |code: ResponseCode| DeviceResponse {
        code,
        content_format: None,
        observe: None,
        payload: Bytes::new(),
    };
    let cases: Vec<(&str, Method, DeviceResponse, &str)> = vec![
        (
            r#"{"reqID":3,"msgType":"write","data":{"path":"/3/0/13","type":"Time","value":1367491215}}"#,
            Method::Put,
            empty(ResponseCode::CHANGED),
            r#"{"reqID":3,"msgType":"write","data":{"reqPath":"/3/0/13","code":"2.04","codeMsg":"changed"}}"#,
        ),
        (
            r#"{"reqID":5,"msgType":"discover","data":{"path":"/3/0/7"}}"#,
            Method::Get,
            DeviceResponse {
                code: ResponseCode::CONTENT,
                content_format: Some(ContentFormat::LINK_FORMAT),
                observe: None,
                payload: Bytes::from_static(
                    b"</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/8>",
                ),
            },
            r#"{"reqID":5,"msgType":"discover","data":{"reqPath":"/3/0/7","code":"2.05","codeMsg":"content","content":["</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2","</3/0/8>"]}}"#,
        ),
        (
            r#"{"reqID":6,"msgType":"create","data":{"basePath":"/5","content":[{"path":"/0/1","type":"String","value":"coap://x"}]}}"#,
            Method::Post,
            empty(ResponseCode::CREATED),
            r#"{"reqID":6,"msgType":"create","data":{"reqPath":"/5","code":"2.01","codeMsg":"created"}}"#,
        ),
        (
            r#"{"reqID":7,"msgType":"delete","data":{"path":"/5/0"}}"#,
            Method::Delete,
            empty(ResponseCode::DELETED),
            r#"{"reqID":7,"msgType":"delete","data":{"reqPath":"/5/0","code":"2.02","codeMsg":"deleted"}}"#,
        ),
        (
            r#"{"reqID":8,"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":"5","lt":"5"}}"#,
            Method::Put,
            empty(ResponseCode::CHANGED),
            r#"{"reqID":8,"msgType":"write-attr","data":{"reqPath":"/3/0/9","code":"2.04","codeMsg":"changed"}}"#,
        ),
        (
            r#"{"reqID":9,"msgType":"observe","data":{"path":"/3/0/10"}}"#,
            Method::Get,
            DeviceResponse {
                observe: Some(12),
                ..content(b"2048")
            },
            r#"{"reqID":9,"msgType":"observe","seqNum":12,"data":{"reqPath":"/3/0/10","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/10","value":2048}]}}"#,
        ),
        (
            r#"{"reqID":11,"msgType":"read","data":{"path":"/3/0/1"}}"#,
            Method::Get,
            empty(ResponseCode::NOT_FOUND),
            r#"{"reqID":11,"msgType":"read","data":{"reqPath":"/3/0/1","code":"4.04","codeMsg":"not_found"}}"#,
        ),
    ];
    for (command, method, response, expected) in cases {
        session.handle_command(now, command.as_bytes());
        let sent = sends(&drain(&mut session));
        assert_eq!(sent.len(), 1, "{command}");
        assert_eq!(sent[0].1.method, method, "{command}");
        session.handle_response(now, sent[0].0, response);
        let outputs = drain(&mut session);
        let Output::Publish { topic, payload, .. } = &outputs[0] else {
            panic!("{outputs:?}")
        };
        assert_eq!(topic, &format!("lwm2m/{EP}/up/resp"));
        assert_eq!(payload, expected);
    }
    assert_eq!(
        sends(&drain(&mut session)).len(),
        0,
        "nothing left to send after the last response"
    );
}
