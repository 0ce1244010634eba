//! Shared subscriptions: `$share/group/filter` and `$queue/filter` deliver each message to
//! exactly one member, by strategy (round_robin default, random, sticky, hash_clientid,
//! hash_topic); retained messages are not sent on shared subscriptions.

mod common;

use std::collections::BTreeSet;

use common::*;
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::QoS as Q5;
use tributary_config::SharedSubStrategy;
use tributary_tests::{TestGateway, start_gateway, start_gateway_with};

async fn members(gw: &TestGateway, filter: &str, n: usize) -> Vec<V4> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut m = V4::connect(v4_options(gw, &format!("member{i}"))).await;
        m.subscribe(filter, QoS::AtLeastOnce).await;
        out.push(m);
    }
    out
}

/// Publishes `count` messages ("0".."count") to `topics` in turn from `publisher`, then
/// collects them from the members: returns, per member, the payloads it got. Fails if a
/// message is lost or delivered twice.
async fn spread(
    publisher: &mut V4,
    topics: &[&str],
    members: &mut [V4],
    count: usize,
) -> Vec<Vec<usize>> {
    for i in 0..count {
        publisher
            .publish(
                topics[i % topics.len()],
                QoS::AtLeastOnce,
                false,
                format!("{i}").as_bytes(),
            )
            .await;
    }
    let mut per_member = vec![Vec::new(); members.len()];
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost messages: got {seen:?}"
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Some(p) = m
                .try_next_publish(std::time::Duration::from_millis(20))
                .await
            {
                let n = number(&p.payload);
                assert!(seen.insert(n), "message {n} delivered twice");
                per_member[i].push(n);
            }
        }
    }
    for m in members.iter_mut() {
        m.assert_no_publish().await;
    }
    per_member
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_round_robin_is_the_default_and_spreads_evenly() {
    let gw = start_gateway().await;
    let mut ms = members(&gw, "$share/g/sh/+", 3).await;
    // A normal subscriber on the same filter gets everything.
    let mut normal = V4::connect(v4_options(&gw, "normal")).await;
    normal.subscribe("sh/+", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    let got = spread(&mut publisher, &["sh/a", "sh/b"], &mut ms, 30).await;
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.len(), 10, "member {i} got {g:?}");
        // In order within a member.
        assert!(g.windows(2).all(|w| w[0] < w[1]));
    }
    for i in 0..30 {
        assert_eq!(text(&normal.next_publish().await.payload), format!("{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_each_get_every_message_once() {
    let gw = start_gateway().await;
    let mut g1 = members(&gw, "$share/g1/two/t", 2).await;
    let mut g2 = Vec::new();
    for i in 0..2 {
        let mut m = V4::connect(v4_options(&gw, &format!("g2m{i}"))).await;
        m.subscribe("$share/g2/two/t", QoS::AtLeastOnce).await;
        g2.push(m);
    }
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    let a = spread(&mut publisher, &["two/t"], &mut g1, 10).await;
    assert_eq!(a.iter().map(Vec::len).sum::<usize>(), 10);
    // g2 got the same ten, split between its members.
    let mut all = Vec::new();
    for m in &mut g2 {
        while let Some(p) = m.try_next_publish(QUIET).await {
            all.push(text(&p.payload).parse::<usize>().unwrap());
        }
    }
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_prefix_is_a_shared_subscription() {
    let gw = start_gateway().await;
    let mut ms = members(&gw, "$queue/q/t", 2).await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    let got = spread(&mut publisher, &["q/t"], &mut ms, 10).await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_shared_subscription_works_and_gets_no_retained_messages() {
    let gw = start_gateway().await;
    let mut publisher = V5::connect(v5_options(&gw, "pub5")).await;
    publisher
        .publish("sr/t", Q5::AtLeastOnce, true, b"retained")
        .await;
    let mut m = V5::connect(v5_options(&gw, "m5")).await;
    m.subscribe("$share/g/sr/t", Q5::AtLeastOnce).await;
    publisher
        .publish("sr/t", Q5::AtLeastOnce, false, b"live")
        .await;
    let p = m.next_publish().await;
    assert_eq!(
        p.payload.as_ref(),
        b"live",
        "no retained message on a shared subscription"
    );
    assert!(!p.retain);
}

async fn strategy(s: SharedSubStrategy) -> TestGateway {
    start_gateway_with(|c| c.mqtt.shared_subscription_strategy = s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_strategy_delivers_each_message_once() {
    let gw = strategy(SharedSubStrategy::Random).await;
    let mut ms = members(&gw, "$share/g/rnd", 3).await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    let got = spread(&mut publisher, &["rnd"], &mut ms, 30).await;
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_strategy_keeps_one_member() {
    let gw = strategy(SharedSubStrategy::Sticky).await;
    let mut ms = members(&gw, "$share/g/st/#", 3).await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    let got = spread(&mut publisher, &["st/a", "st/b"], &mut ms, 20).await;
    let mut lens: Vec<_> = got.iter().map(Vec::len).collect();
    lens.sort_unstable();
    assert_eq!(lens, [0, 0, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_clientid_strategy_keeps_a_publisher_on_one_member() {
    let gw = strategy(SharedSubStrategy::HashClientid).await;
    let mut ms = members(&gw, "$share/g/hc/#", 3).await;
    for p in 0..3 {
        let mut publisher = V4::connect(v4_options(&gw, &format!("hcpub{p}"))).await;
        let got = spread(&mut publisher, &["hc/a", "hc/b"], &mut ms, 10).await;
        let mut lens: Vec<_> = got.iter().map(Vec::len).collect();
        lens.sort_unstable();
        assert_eq!(lens, [0, 0, 10], "publisher {p}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_topic_strategy_keeps_a_topic_on_one_member() {
    let gw = strategy(SharedSubStrategy::HashTopic).await;
    let mut ms = members(&gw, "$share/g/ht/+", 3).await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    for topic in ["ht/a", "ht/b", "ht/c"] {
        let got = spread(&mut publisher, &[topic], &mut ms, 10).await;
        let mut lens: Vec<_> = got.iter().map(Vec::len).collect();
        lens.sort_unstable();
        assert_eq!(lens, [0, 0, 10], "{topic}: {got:?}");
    }
}
