//! Will messages: published on an abnormal close (socket closed, keepalive timeout), not on a
//! normal DISCONNECT nor a takeover; v5 DISCONNECT 0x04 publishes it; the v5 Will Delay
//! Interval is cancelled by a reconnect; will retain and will QoS are honoured.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::{
    raw::{Raw, Will, connect_raw, connect_v5_with, packet, string},
    *,
};
use rumqttc::v5::mqttbytes::{
    QoS as Q5,
    v5::{LastWill as LastWill5, LastWillProperties},
};
use rumqttc::{LastWill, QoS};
use tributary_tests::{TestGateway, start_gateway};

async fn watcher(gw: &TestGateway, filter: &str) -> V4 {
    let mut w = V4::connect(v4_options(gw, "watcher")).await;
    w.subscribe(filter, QoS::ExactlyOnce).await;
    w
}

fn will5(topic: &str, payload: &[u8], delay: Option<u32>) -> LastWill5 {
    LastWill5::new(
        topic,
        payload.to_vec(),
        Q5::AtLeastOnce,
        false,
        Some(LastWillProperties {
            delay_interval: delay,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("k".into(), "v".into())],
        }),
    )
}

/// Proves no Will arrived: waits until the broker has dropped `client_id`'s session, then sends
/// a marker on the Will topic, which must be the next message.
async fn assert_no_will(gw: &TestGateway, w: &mut V4, topic: &str, sessions_left: usize) {
    until("the session ends", || {
        gw.gateway().broker().session_count() == sessions_left
    })
    .await;
    let mut marker = V4::connect(v4_options(gw, "marker")).await;
    marker
        .publish(topic, QoS::AtLeastOnce, false, b"marker")
        .await;
    assert_eq!(text(&w.next_publish().await.payload), "marker");
    marker.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_will_is_published_when_the_socket_closes() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "will4/#").await;
    let mut o = v4_options(&gw, "dying4");
    o.set_last_will(LastWill::new(
        "will4/dying",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let c = V4::connect(o).await;
    c.kill().await;
    let p = w.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), p.payload.as_ref()),
        ("will4/dying", &b"gone"[..])
    );
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert!(!p.retain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_will_is_not_published_on_normal_disconnect() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "will4n/#").await;
    let mut o = v4_options(&gw, "polite4");
    o.set_last_will(LastWill::new("will4n/t", "gone", QoS::AtLeastOnce, false));
    let c = V4::connect(o).await;
    c.disconnect().await;
    assert_no_will(&gw, &mut w, "will4n/t", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_published_when_the_socket_closes_with_its_properties() {
    let gw = start_gateway().await;
    let mut w = V5::connect(v5_options(&gw, "watcher5")).await;
    w.subscribe("will5/#", Q5::ExactlyOnce).await;
    let mut o = v5_options(&gw, "dying5");
    o.set_last_will(will5("will5/dying", b"gone", None));
    let c = V5::connect(o).await;
    c.kill().await;
    let p = w.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"gone");
    assert_eq!(p.qos, Q5::AtLeastOnce);
    let props = p.properties.expect("will properties forwarded");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.user_properties, vec![("k".into(), "v".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_is_not_published_on_normal_disconnect() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "will5n/#").await;
    let mut o = v5_options(&gw, "polite5");
    o.set_last_will(will5("will5n/t", b"gone", None));
    let c = V5::connect(o).await;
    c.disconnect().await;
    assert_no_will(&gw, &mut w, "will5n/t", 1).await;
}

/// rumqttc always sends DISCONNECT 0x00: 0x04 (Disconnect with Will Message) is raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_disconnect_with_will_message_publishes_the_will() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "will04/#").await;
    let will = Will {
        topic: "will04/t",
        payload: b"on purpose",
        qos: 1,
        retain: false,
        properties: &[],
    };
    let (mut raw, _) =
        Raw::handshake(gw.addr, &connect_v5_with("d04", true, 30, &[], Some(will))).await;
    raw.send(&packet(0xe0, &[0x04])).await;
    raw.expect_closed().await;
    let p = w.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"on purpose");
    assert_eq!(p.qos, QoS::AtLeastOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_on_keepalive_timeout() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "willka/#").await;
    // Keepalive 1 s and then silence: closed after 1.5 s, Will published.
    let will = Will {
        topic: "willka/t",
        payload: b"timed out",
        qos: 0,
        retain: false,
        properties: &[],
    };
    let (mut raw, _) = Raw::handshake(
        gw.addr,
        &connect_v5_with("silent", true, 1, &[], Some(will)),
    )
    .await;
    let started = Instant::now();
    let p = w.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"timed out");
    assert!(started.elapsed() >= Duration::from_secs(1));
    // v5: the broker said why.
    let seen = raw.until_closed().await;
    assert_eq!(
        seen.last().map(|p| (p.first, p.body.first().copied())),
        Some((0xe0, Some(0x8d))),
        "DISCONNECT 0x8D Keep Alive timeout, got {seen:?}"
    );

    // And a 3.1.1 client: same Will, plain close.
    // Clean session and a QoS 0 Will; keep alive 1 s.
    let payload = [&b"silent4"[..], b"willka/t4", b"timed out 4"]
        .map(string)
        .concat();
    let connect = connect_raw(b"MQTT", 4, 0x02 | 0x04, 1, None, &payload);
    let (mut raw4, connack) = Raw::handshake(gw.addr, &connect).await;
    assert_eq!(connack.body, vec![0, 0]);
    assert_eq!(w.next_publish().await.payload.as_ref(), b"timed out 4");
    assert!(raw4.until_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_retain_and_qos_are_honoured() {
    let gw = start_gateway().await;
    let mut o = v4_options(&gw, "retwill");
    o.set_last_will(LastWill::new(
        "willr/status",
        "offline",
        QoS::ExactlyOnce,
        true,
    ));
    let c = V4::connect(o).await;
    c.kill().await;
    until("the will is retained", || {
        gw.gateway().broker().retained_count() == 1
    })
    .await;
    // A later subscriber gets it as a retained message at the will's QoS.
    let mut late = V4::connect(v4_options(&gw, "late")).await;
    late.subscribe("willr/#", QoS::ExactlyOnce).await;
    let p = late.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), p.payload.as_ref()),
        ("willr/status", &b"offline"[..])
    );
    assert!(p.retain);
    assert_eq!(p.qos, QoS::ExactlyOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_delay_postpones_the_will() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "willd/#").await;
    let mut o = v5_options(&gw, "delayed");
    o.set_connect_properties(expiry(60));
    o.set_last_will(will5("willd/t", b"late", Some(1)));
    let c = V5::connect(o).await;
    c.kill().await;
    let killed = Instant::now();
    let p = w.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"late");
    assert!(
        killed.elapsed() >= Duration::from_millis(900),
        "published after {:?}, before the 1 s delay",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_will_delay_is_cancelled_by_a_reconnect() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "willc/#").await;
    let mut o = v5_options(&gw, "comeback");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    o.set_last_will(will5("willc/t", b"should not", Some(1)));
    let c = V5::connect(o.clone()).await;
    c.kill().await;
    let back = V5::connect(o).await;
    assert!(back.connack.session_present);
    // Past the delay, the marker is the first thing on the topic.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_no_will(&gw, &mut w, "willc/t", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_does_not_publish_the_will() {
    let gw = start_gateway().await;
    let mut w = watcher(&gw, "willt/#").await;
    let mut o = v5_options(&gw, "taken");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    o.set_last_will(will5("willt/t", b"should not", None));
    let mut old = V5::connect(o.clone()).await;
    let new = V5::connect(o).await;
    assert_eq!(
        old.server_disconnect().await,
        rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver
    );
    assert_no_will(&gw, &mut w, "willt/t", 2).await;
    drop(new);
}
