//! Configured limits on the wire (RELIABILITY.md section 1 and tests 25, 32).

mod common;

use std::time::Duration;

use common::{WAIT, raw::*};
use tokio::time::Instant;
use tributary_config::Limit;
use tributary_tests::start_gateway_with;

#[tokio::test]
async fn max_connections_refuses_the_third_and_keeps_the_first_two() {
    let gw = start_gateway_with(|c| {
        for listener in c.listeners.tcp.values_mut() {
            listener.max_connections = Limit::Max(2);
        }
    })
    .await;
    let mut first = Raw::connected_v5(gw.addr, "first").await;
    let mut second = Raw::connected_v311(gw.addr, "second").await;

    // The third is accepted and closed at once, before it says anything.
    let mut third = Raw::open(gw.addr).await;
    third.expect_closed_within(Duration::from_secs(2)).await;
    first.ping().await;
    second.ping().await;

    // A slot freed is a slot again (the count follows the connection task's end).
    drop(second);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut raw = Raw::open(gw.addr).await;
        let _ = raw.try_send(&connect_v311("again", true, 0)).await;
        match raw.read(Duration::from_secs(1)).await {
            Read::Packet(p) => {
                assert_eq!(p.bytes, connack_v311(false, 0));
                break;
            }
            Read::Closed if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("no slot freed after the second client left: {other:?}"),
        }
    }
    first.ping().await;
}

#[tokio::test]
async fn max_subscriptions_gives_suback_0x97() {
    let gw = start_gateway_with(|c| c.mqtt.max_subscriptions = Limit::Max(2)).await;
    let mut raw = Raw::connected_v5(gw.addr, "subs").await;
    raw.send(&subscribe(true, 1, &[("a", 1), ("b", 2), ("c", 0)]))
        .await;
    raw.expect(&[0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x97])
        .await;
    // Re-subscribing to a filter already held is not a new subscription.
    raw.send(&subscribe(true, 2, &[("a", 0), ("d", 0)])).await;
    raw.expect(&[0x90, 0x05, 0x00, 0x02, 0x00, 0x00, 0x97])
        .await;

    // 3.1.1 knows only 0x80 for a failure.
    let mut raw = Raw::connected_v311(gw.addr, "subs311").await;
    raw.send(&subscribe(false, 1, &[("a", 1), ("b", 2), ("c", 0)]))
        .await;
    raw.expect(&[0x90, 0x05, 0x00, 0x01, 0x01, 0x02, 0x80])
        .await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn max_inflight_is_receive_maximum_and_the_window() {
    let gw = start_gateway_with(|c| c.mqtt.max_inflight = 3).await;
    let mut sub = Raw::open(gw.addr).await;
    sub.send(&connect_v5("window", 0, &[])).await;
    let (code, properties) = sub.recv().await.connack_v5();
    assert_eq!(code, 0);
    assert_eq!(prop(&properties, 0x21), Some(PropValue::U16(3)));
    sub.send(&subscribe(true, 1, &[("w/#", 1)])).await;
    assert_eq!(sub.recv().await.body, [0, 1, 0, 1]);

    let mut publisher = Raw::connected_v5(gw.addr, "window-pub").await;
    for i in 0..5u8 {
        let id = u16::from(i) + 1;
        publisher.send(&publish_v5(1, "w/t", Some(id), &[i])).await;
        publisher.expect(&ack(0x40, id)).await;
    }
    // Subscribed at QoS 1: only 3 unacknowledged at a time.
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let (topic, id, payload) = sub.recv().await.publish(true);
        assert_eq!((topic.as_str(), payload), ("w/t", vec![i]));
        ids.push(id.expect("QoS 1 delivery has a packet id"));
    }
    sub.expect_silence(Duration::from_millis(300)).await;
    sub.send(&ack(0x40, ids[0])).await;
    assert_eq!(sub.recv().await.publish(true).2, [3]);
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn max_user_properties_is_applied() {
    let gw = start_gateway_with(|c| c.mqtt.max_user_properties = 5).await;
    let five: Vec<u8> = (0..5)
        .flat_map(|i| user_property("k", &i.to_string()))
        .collect();
    let six: Vec<u8> = (0..6)
        .flat_map(|i| user_property("k", &i.to_string()))
        .collect();
    let mut raw = Raw::connected_v5(gw.addr, "userprops").await;
    raw.send(&publish(0, false, b"u/t", None, Some(&five), b"x"))
        .await;
    raw.ping().await;
    raw.send(&publish(0, false, b"u/t", None, Some(&six), b"x"))
        .await;
    raw.expect_then_closed(&disconnect_v5(0x97)).await;
    assert_serving(gw.addr).await;
}

/// RELIABILITY test 25 without the RSS measurement: 2000 connections with garbage, half
/// packets and refused CONNECTs, then a normal client is served.
#[tokio::test]
async fn malformed_connection_flood_leaves_the_broker_serving() {
    let gw = start_gateway_with(|c| c.mqtt.idle_timeout = Duration::from_secs(2)).await;
    let full = connect_v5("flood", 0, &[]);
    let mut big_props = Vec::new();
    for i in 0..200 {
        big_props.extend(user_property("k", &i.to_string()));
    }
    let inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xFF; 64],
        full[..full.len() / 2].to_vec(),
        vec![0x10, 0xFF, 0xFF, 0xFF, 0x7F],
        vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        connect_v5("flood", 0, &big_props),
        connect_raw(b"MQTT", 5, 0x03, 0, Some(&[]), &string(b"x")),
        connect_v311("", false, 0),
        [&full[..], &[0x30, 0xFF, 0xFF, 0xFF, 0x7F]].concat(),
        Vec::new(),
    ];
    let addr = gw.addr;
    for batch in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let input = inputs[(batch * 100 + i) % inputs.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut raw = Raw::open(addr).await;
                let _ = raw.try_send(&input).await;
                // Read whatever comes for a moment, then hang up.
                let _ = raw.read(Duration::from_millis(20)).await;
            }));
        }
        for task in tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("flood client hung")
                .expect("flood client panicked");
        }
    }
    assert_serving(gw.addr).await;
    // And the connections are gone, not lingering.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = gw
            .gateway()
            .broker()
            .stats()
            .connections
            .load(std::sync::atomic::Ordering::Relaxed);
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
