//! The offline / pending queue: `mqtt.max_mqueue_len` (drop oldest, QoS 0 first, counted),
//! `mqtt.mqueue_store_qos0`, and a slow subscriber that never slows its publisher.

mod common;

use common::*;
use rumqttc::QoS;
use tributary_protocols::Stats;
use tributary_tests::{TestGateway, start_gateway_with};

/// A persistent v4 subscriber to `filter` that then goes offline; returns its options.
async fn offline_subscriber(gw: &TestGateway, id: &str, filter: &str) -> rumqttc::MqttOptions {
    let mut o = v4_options(gw, id);
    o.set_clean_session(false);
    let mut sub = V4::connect(o.clone()).await;
    sub.subscribe(filter, QoS::ExactlyOnce).await;
    sub.disconnect().await;
    o
}

/// Reconnects and reads what was queued, up to a marker published after the reconnect.
async fn drain_queue(gw: &TestGateway, o: rumqttc::MqttOptions, marker_topic: &str) -> Vec<String> {
    let mut sub = V4::connect(o).await;
    assert!(sub.connack.session_present);
    let mut marker = V4::connect(v4_options(gw, "marker")).await;
    marker
        .publish(marker_topic, QoS::AtLeastOnce, false, b"--marker--")
        .await;
    let mut got = Vec::new();
    loop {
        let p = sub.next_publish().await;
        if p.payload.as_ref() == b"--marker--" {
            return got;
        }
        got.push(text(&p.payload));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_offline_queue_drops_the_oldest_and_counts_it() {
    let gw = start_gateway_with(|c| c.mqtt.max_mqueue_len = 5).await;
    let o = offline_subscriber(&gw, "offline", "mq/t").await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    for i in 0..10 {
        publisher
            .publish("mq/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let stats = gw.gateway().broker().stats();
    assert_eq!(Stats::get(&stats.delivery_dropped_queue_full), 5);
    assert_eq!(drain_queue(&gw, o, "mq/t").await, ["5", "6", "7", "8", "9"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_qos0_before_older_qos1() {
    let gw = start_gateway_with(|c| c.mqtt.max_mqueue_len = 3).await;
    let o = offline_subscriber(&gw, "offline", "mq0/t").await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    publisher
        .publish("mq0/t", QoS::AtLeastOnce, false, b"a1")
        .await;
    publisher
        .publish("mq0/t", QoS::AtMostOnce, false, b"b0")
        .await;
    publisher
        .publish("mq0/t", QoS::ExactlyOnce, false, b"c2")
        .await;
    publisher
        .publish("mq0/t", QoS::AtLeastOnce, false, b"d1")
        .await;
    assert_eq!(drain_queue(&gw, o, "mq0/t").await, ["a1", "c2", "d1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_is_queued_offline_by_default() {
    let gw = start_gateway_with(|_| {}).await;
    let o = offline_subscriber(&gw, "offline", "q0/t").await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    publisher
        .publish("q0/t", QoS::AtMostOnce, false, b"zero")
        .await;
    publisher
        .publish("q0/t", QoS::AtLeastOnce, false, b"one")
        .await;
    assert_eq!(drain_queue(&gw, o, "q0/t").await, ["zero", "one"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqueue_store_qos0_false_keeps_qos0_out_of_the_offline_queue() {
    let gw = start_gateway_with(|c| c.mqtt.mqueue_store_qos0 = false).await;
    let o = offline_subscriber(&gw, "offline", "nq0/t").await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    publisher
        .publish("nq0/t", QoS::AtMostOnce, false, b"zero")
        .await;
    publisher
        .publish("nq0/t", QoS::AtLeastOnce, false, b"one")
        .await;
    publisher
        .publish("nq0/t", QoS::ExactlyOnce, false, b"two")
        .await;
    let stats = gw.gateway().broker().stats();
    assert_eq!(Stats::get(&stats.delivery_dropped_qos0_offline), 1);
    assert_eq!(drain_queue(&gw, o, "nq0/t").await, ["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_does_not_slow_the_publisher_and_its_queue_stays_bounded() {
    let gw = start_gateway_with(|c| {
        c.mqtt.max_inflight = 1;
        c.mqtt.max_mqueue_len = 10;
    })
    .await;
    let mut o = v4_options(&gw, "slow");
    o.set_manual_acks(true);
    let mut slow = V4::connect(o).await;
    slow.subscribe("slow/t", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "fast")).await;
    // Every publish is acknowledged although the subscriber acknowledges nothing.
    for i in 0..200 {
        publisher
            .publish("slow/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let stats = gw.gateway().broker().stats();
    // One inflight, ten queued, the rest dropped and counted.
    assert_eq!(Stats::get(&stats.delivery_dropped_queue_full), 189);
    let first = slow.next_publish().await;
    assert_eq!(text(&first.payload), "0");
    slow.assert_no_publish().await;
    slow.client.ack(&first).await.unwrap();
    // Then the newest ten, in order.
    for i in 190..200 {
        let p = slow.next_publish().await;
        assert_eq!(text(&p.payload), format!("{i}"));
        slow.client.ack(&p).await.unwrap();
    }
    slow.assert_no_publish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_keeps_draining_loses_nothing_to_a_faster_publisher() {
    // The subscriber takes one message at a time (one inflight, acked after a pause), the
    // publisher fires 400 at once into a queue of 20: flow control holds the publisher back
    // while the queue is congested, instead of dropping what the subscriber would have taken.
    let gw = start_gateway_with(|c| {
        c.mqtt.max_inflight = 1;
        c.mqtt.max_mqueue_len = 20;
    })
    .await;
    let mut o = v4_options(&gw, "steady");
    o.set_manual_acks(true);
    let mut steady = V4::connect(o).await;
    steady.subscribe("flow/t", QoS::AtLeastOnce).await;
    let publisher = V4::connect(v4_options(&gw, "burst")).await;
    let sender = publisher.client.clone();
    let burst = tokio::spawn(async move {
        for i in 0..400 {
            sender
                .publish("flow/t", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
    });
    for i in 0..400 {
        let p = steady.next_publish().await;
        assert_eq!(text(&p.payload), format!("{i}"));
        tokio::time::sleep(std::time::Duration::from_micros(500)).await;
        steady.client.ack(&p).await.unwrap();
    }
    burst.await.unwrap();
    let stats = gw.gateway().broker().stats();
    assert_eq!(Stats::get(&stats.delivery_dropped_queue_full), 0);
    drop(publisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_drains_too_slowly_holds_its_publisher_back_for_a_bounded_time() {
    // The subscriber takes 20 messages a second: it makes progress, but would hold a 300
    // message burst for 15 s. It cannot get from half its queue to a quarter within the
    // bound (250 ms), so flow control treats it as a slow consumer: the publisher's messages
    // are all acknowledged long before, and the subscriber's queue applies the drop policy.
    let gw = start_gateway_with(|c| {
        c.mqtt.max_inflight = 1;
        c.mqtt.max_mqueue_len = 20;
    })
    .await;
    let mut o = v4_options(&gw, "trickle");
    o.set_manual_acks(true);
    let mut trickle = V4::connect(o).await;
    trickle.subscribe("hold/t", QoS::AtLeastOnce).await;
    let reader = tokio::spawn(async move {
        loop {
            let Some(p) = trickle
                .try_next_publish(std::time::Duration::from_secs(2))
                .await
            else {
                break;
            };
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            trickle.client.ack(&p).await.unwrap();
        }
    });
    let mut publisher = V4::connect(v4_options(&gw, "bursty")).await;
    let acked = tokio::time::timeout(std::time::Duration::from_secs(8), async {
        for i in 0..300 {
            publisher
                .publish("hold/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
                .await;
        }
    })
    .await;
    assert!(acked.is_ok(), "the publisher was held back past the bound");
    let stats = gw.gateway().broker().stats();
    assert!(Stats::get(&stats.delivery_dropped_queue_full) > 0);
    reader.abort();
}
