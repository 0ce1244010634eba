//! `$SYS` topics: the broker's own messages reach `$SYS` subscribers and nobody else.

#![allow(clippy::expect_used)] // Test helpers fail loudly: a failure is a failed test.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tributary_tests::start_gateway_with;

const WAIT: Duration = Duration::from_secs(5);

async fn next_publish(eventloop: &mut EventLoop) -> rumqttc::Publish {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("connection")
            {
                return p;
            }
        }
    })
    .await
    .expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_and_stats_reach_sys_subscribers_only() {
    let gateway = start_gateway_with(|config| {
        config.node.name = "node1@127.0.0.1".to_owned();
        config.sys_topics.sys_heartbeat_interval = Some(Duration::from_millis(200));
        config.sys_topics.sys_msg_interval = Some(Duration::from_millis(200));
    })
    .await;
    let (host, port) = gateway.host_port();

    let (everything, mut everything_loop) =
        AsyncClient::new(MqttOptions::new("all", host.clone(), port), 16);
    everything.subscribe("#", QoS::AtMostOnce).await.unwrap();
    let (sys, mut sys_loop) = AsyncClient::new(MqttOptions::new("sys", host, port), 16);
    sys.subscribe("$SYS/brokers/+/uptime", QoS::AtMostOnce)
        .await
        .unwrap();

    let uptime = next_publish(&mut sys_loop).await;
    assert_eq!(uptime.topic, "$SYS/brokers/node1@127.0.0.1/uptime");
    let text = std::str::from_utf8(&uptime.payload).unwrap();
    assert!(text.parse::<u64>().is_ok(), "uptime {text:?}");

    // A leading wildcard never matches a `$` topic: `#` sees nothing of it.
    let seen = tokio::time::timeout(
        Duration::from_millis(600),
        next_publish(&mut everything_loop),
    )
    .await;
    assert!(seen.is_err(), "`#` received {seen:?}");

    sys.subscribe(
        "$SYS/brokers/node1@127.0.0.1/stats/connections/count",
        QoS::AtMostOnce,
    )
    .await
    .unwrap();
    let count = loop {
        let p = next_publish(&mut sys_loop).await;
        if p.topic.ends_with("/stats/connections/count") {
            break p;
        }
    };
    assert_eq!(&count.payload[..], b"2");
    gateway.shutdown().await;
}
