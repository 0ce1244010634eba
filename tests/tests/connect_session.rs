//! CONNECT and sessions: assigned client ids, credentials, clean session / clean start, session
//! expiry (and its update on DISCONNECT), session present, takeover, discard, expiry.

mod common;

use common::{
    raw::{Raw, connect_v5, connect_v5_with, connect_v311, packet, subscribe},
    *,
};
use rumqttc::v5::mqttbytes::{QoS as Q5, v5::DisconnectReasonCode};
use rumqttc::{QoS, SubscribeReasonCode};
use tributary_protocols::Protocol;
use tributary_tests::start_gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_empty_client_id_gets_an_assigned_identifier_that_works() {
    let gw = start_gateway().await;
    let mut c = V5::connect(v5_options(&gw, "")).await;
    let props = c.connack.properties.clone().expect("CONNACK properties");
    let assigned = props
        .assigned_client_identifier
        .expect("Assigned Client Identifier");
    assert!(!assigned.is_empty());
    assert!(!c.connack.session_present);

    // The session is usable under that id.
    c.subscribe("assigned/t", Q5::AtLeastOnce).await;
    c.publish("assigned/t", Q5::AtLeastOnce, false, b"hi").await;
    assert_eq!(c.next_publish().await.payload.as_ref(), b"hi");

    // Two empty-id clients get different ids.
    let d = V5::connect(v5_options(&gw, "")).await;
    let other = d.connack.properties.unwrap().assigned_client_identifier;
    assert_ne!(other.as_deref(), Some(assigned.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_empty_client_id_with_clean_session_is_accepted() {
    let gw = start_gateway().await;
    let mut c = V4::connect(v4_options(&gw, "")).await;
    assert_eq!(c.connack.code, rumqttc::ConnectReturnCode::Success);
    assert_eq!(
        c.subscribe("e/t", QoS::AtMostOnce).await,
        vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_empty_client_id_without_clean_session_is_refused() {
    let gw = start_gateway().await;
    let (mut raw, connack) = Raw::handshake(gw.addr, &connect_v311("", false, 30)).await;
    // Return code 0x02: identifier rejected.
    assert_eq!(connack.body, vec![0, 2]);
    raw.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_are_accepted_by_the_allow_all_hook() {
    let gw = start_gateway().await;
    let mut o4 = v4_options(&gw, "cred4");
    o4.set_credentials("alice", "secret");
    let mut c4 = V4::connect(o4).await;
    c4.publish("cred/t", QoS::AtLeastOnce, false, b"x").await;

    let mut o5 = v5_options(&gw, "cred5");
    o5.set_credentials("bob", "secret");
    let mut c5 = V5::connect(o5).await;
    c5.publish("cred/t", Q5::AtLeastOnce, false, b"x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_persistent_session_is_resumed_with_queued_messages() {
    let gw = start_gateway().await;
    let mut o = v4_options(&gw, "persist4");
    o.set_clean_session(false);
    let mut sub = V4::connect(o.clone()).await;
    assert!(!sub.connack.session_present);
    sub.subscribe("p4/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V4::connect(v4_options(&gw, "pub4")).await;
    publisher
        .publish("p4/t", QoS::AtLeastOnce, false, b"while away")
        .await;

    let mut sub = V4::connect(o).await;
    assert!(sub.connack.session_present, "session present on resume");
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"while away");
    assert_eq!(p.qos, QoS::AtLeastOnce);

    // The subscription survived too.
    publisher
        .publish("p4/t", QoS::AtLeastOnce, false, b"live")
        .await;
    assert_eq!(sub.next_publish().await.payload.as_ref(), b"live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_clean_session_discards_the_old_session() {
    let gw = start_gateway().await;
    let mut o = v4_options(&gw, "clean4");
    o.set_clean_session(false);
    let mut sub = V4::connect(o.clone()).await;
    sub.subscribe("c4/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V4::connect(v4_options(&gw, "pubc4")).await;
    publisher
        .publish("c4/t", QoS::AtLeastOnce, false, b"old")
        .await;

    o.set_clean_session(true);
    let mut sub = V4::connect(o).await;
    assert!(!sub.connack.session_present);
    // Neither the queued message nor the subscription survived.
    sub.subscribe("c4/marker", QoS::AtLeastOnce).await;
    publisher
        .publish("c4/t", QoS::AtLeastOnce, false, b"new")
        .await;
    publisher
        .publish("c4/marker", QoS::AtLeastOnce, false, b"marker")
        .await;
    assert_eq!(sub.next_publish().await.payload.as_ref(), b"marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_keeps_the_session_and_clean_start_discards_it() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "persist5");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    let mut sub = V5::connect(o.clone()).await;
    assert!(!sub.connack.session_present);
    sub.subscribe("p5/t", Q5::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = V5::connect(v5_options(&gw, "pub5")).await;
    publisher
        .publish("p5/t", Q5::ExactlyOnce, false, b"queued")
        .await;

    let mut sub = V5::connect(o.clone()).await;
    assert!(sub.connack.session_present);
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"queued");
    assert_eq!(p.qos, Q5::ExactlyOnce);
    sub.disconnect().await;

    // Clean start: a new session, the old subscription gone.
    o.set_clean_start(true);
    let mut sub = V5::connect(o).await;
    assert!(!sub.connack.session_present);
    sub.subscribe("p5/marker", Q5::AtLeastOnce).await;
    publisher
        .publish("p5/t", Q5::AtLeastOnce, false, b"x")
        .await;
    publisher
        .publish("p5/marker", Q5::AtLeastOnce, false, b"marker")
        .await;
    assert_eq!(sub.next_publish().await.payload.as_ref(), b"marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_zero_ends_the_session_at_disconnect() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "noexpiry");
    o.set_clean_start(false);
    let mut sub = V5::connect(o.clone()).await;
    sub.subscribe("z/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;
    until("the session is gone", || {
        gw.gateway().broker().session_count() == 0
    })
    .await;
    let sub = V5::connect(o).await;
    assert!(!sub.connack.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_detached_session_expires_after_its_interval() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "expiring");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(1));
    let mut sub = V5::connect(o.clone()).await;
    sub.subscribe("x/t", Q5::AtLeastOnce).await;
    sub.disconnect().await;
    // Still there right after the disconnect...
    assert_eq!(gw.gateway().broker().session_count(), 1);
    // ...and gone once the interval has passed.
    until("the detached session expires", || {
        gw.gateway().broker().session_count() == 0
    })
    .await;
    let sub = V5::connect(o).await;
    assert!(!sub.connack.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_set_to_zero_on_disconnect_discards_the_session() {
    let gw = start_gateway().await;
    // rumqttc cannot put properties on DISCONNECT: raw bytes.
    let session_expiry_60 = [0x11, 0, 0, 0, 60];
    let (mut raw, connack) =
        Raw::handshake(gw.addr, &connect_v5("upd", 30, &session_expiry_60)).await;
    assert_eq!(connack.body[..2], [0, 0]);
    raw.send(&subscribe(true, 1, &[("upd/t", 1)])).await;
    assert_eq!(raw.recv_kind(9).await.body, vec![0, 1, 0, 1]);
    // DISCONNECT 0x00 with Session Expiry Interval = 0.
    raw.send(&packet(0xe0, &[0x00, 5, 0x11, 0, 0, 0, 0])).await;
    raw.expect_closed().await;
    until("the session is discarded", || {
        gw.gateway().broker().session_count() == 0
    })
    .await;

    // The other way: expiry 60 kept, so the session survives a plain DISCONNECT.
    let (mut raw, _) = Raw::handshake(gw.addr, &connect_v5("upd2", 30, &session_expiry_60)).await;
    raw.send(&packet(0xe0, &[0x00])).await;
    raw.expect_closed().await;
    let (_raw, connack) = Raw::handshake(
        gw.addr,
        &connect_v5_with("upd2", false, 30, &session_expiry_60, None),
    )
    .await;
    assert_eq!(connack.body[0], 1, "session present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_takeover_sends_0x8e_to_the_old_connection_and_keeps_the_session() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "twin");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    let mut old = V5::connect(o.clone()).await;
    old.subscribe("tw/t", Q5::AtLeastOnce).await;

    let mut new = V5::connect(o).await;
    assert!(
        new.connack.session_present,
        "the live session is taken over"
    );
    assert_eq!(
        old.server_disconnect().await,
        DisconnectReasonCode::SessionTakenOver
    );

    // The new connection has the subscription; the old one gets nothing more.
    let mut publisher = V5::connect(v5_options(&gw, "twpub")).await;
    publisher
        .publish("tw/t", Q5::AtLeastOnce, false, b"to the new one")
        .await;
    assert_eq!(new.next_publish().await.payload.as_ref(), b"to the new one");
    assert_eq!(gw.gateway().broker().session_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_takeover_with_clean_start_discards_the_live_session() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "twin2");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    let mut old = V5::connect(o.clone()).await;
    old.subscribe("tw2/t", Q5::AtLeastOnce).await;

    o.set_clean_start(true);
    let mut new = V5::connect(o).await;
    assert!(!new.connack.session_present);
    assert_eq!(
        old.server_disconnect().await,
        DisconnectReasonCode::SessionTakenOver
    );
    new.subscribe("tw2/marker", Q5::AtLeastOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "tw2pub")).await;
    publisher
        .publish("tw2/t", Q5::AtLeastOnce, false, b"old")
        .await;
    publisher
        .publish("tw2/marker", Q5::AtLeastOnce, false, b"marker")
        .await;
    assert_eq!(new.next_publish().await.payload.as_ref(), b"marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_takeover_closes_the_old_connection() {
    let gw = start_gateway().await;
    let mut o = v4_options(&gw, "twin4");
    o.set_clean_session(false);
    let mut old = V4::connect(o.clone()).await;
    old.subscribe("tw4/t", QoS::AtLeastOnce).await;

    let mut new = V4::connect(o).await;
    assert!(new.connack.session_present);
    // 3.1.1 has no DISCONNECT from the server: the old socket is closed.
    let _ = old.events.take_error().await;

    let mut publisher = V4::connect(v4_options(&gw, "tw4pub")).await;
    publisher
        .publish("tw4/t", QoS::AtLeastOnce, false, b"new")
        .await;
    assert_eq!(new.next_publish().await.payload.as_ref(), b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clean_takeover_leaves_the_new_session_registered() {
    // A clean session ends when its connection does, so the registry entry it lived in dies
    // while the taking-over connection waits for it: the new session must still land in the
    // registry, or the next connection with this id would not find (and kick) it.
    let gateway = start_gateway().await;
    let mut first = V4::connect(v4_options(&gateway, "hopper")).await;
    let mut second = V4::connect(v4_options(&gateway, "hopper")).await;
    first.events.take_error().await;
    let broker = gateway.gateway().broker();
    let listed = broker
        .client("hopper")
        .expect("the second connection is registered");
    assert_eq!(listed.protocol, Protocol::Mqtt);
    let _third = V4::connect(v4_options(&gateway, "hopper")).await;
    second.events.take_error().await;
    assert_eq!(broker.session_count(), 1);
    gateway.shutdown().await;
}
