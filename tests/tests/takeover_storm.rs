//! RELIABILITY test 17: a takeover storm. Connections with the same client id reconnect in a
//! tight loop (some overlapping, so each takes over a live one) while another client publishes
//! QoS 1 at full speed and a third subscribes and unsubscribes. Nothing published to the
//! persistent session may be lost, and exactly one session for the client id remains.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test helpers fail loudly.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tributary_tests::start_gateway;

const MESSAGES: u32 = 300;
const STORM_ROUNDS: u32 = 30;

fn options(id: &str, addr: std::net::SocketAddr, clean: bool) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(clean);
    options.set_inflight(100);
    options
}

/// Polls `eventloop` for `period`, recording every received payload.
async fn collect_for(eventloop: &mut EventLoop, period: Duration, seen: &Mutex<BTreeSet<u32>>) {
    let _ = tokio::time::timeout(period, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let n = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                    seen.lock().unwrap().insert(n);
                }
                Ok(_) => {}
                // Taken over by the next connection of the storm.
                Err(_) => return,
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn takeover_storm_loses_no_qos1_message_and_leaves_one_session() {
    let gateway = start_gateway().await;
    let addr = gateway.addr;
    let seen = Arc::new(Mutex::new(BTreeSet::new()));

    // The persistent session subscribes once, then goes away.
    let (victim, mut eventloop) = AsyncClient::new(options("victim", addr, false), 16);
    victim
        .subscribe("storm/data", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(
            eventloop.poll().await,
            Ok(Event::Incoming(Packet::SubAck(_)))
        ) {}
    })
    .await
    .expect("no SUBACK");
    drop((victim, eventloop));

    let publisher = tokio::spawn(async move {
        let (client, mut eventloop) = AsyncClient::new(options("publisher", addr, true), 64);
        let sender = tokio::spawn(async move {
            for i in 0..MESSAGES {
                client
                    .publish("storm/data", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
            }
            client
        });
        let mut acked = 0;
        tokio::time::timeout(Duration::from_secs(20), async {
            while acked < MESSAGES {
                if let Event::Incoming(Packet::PubAck(_)) =
                    eventloop.poll().await.expect("publisher")
                {
                    acked += 1;
                }
            }
        })
        .await
        .expect("publisher not acknowledged");
        let client = sender.await.unwrap();
        client.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    });

    let jitter = tokio::spawn(async move {
        let (client, mut eventloop) = AsyncClient::new(options("jitter", addr, true), 64);
        let poller = tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while eventloop.poll().await.is_ok() {}
            })
            .await;
        });
        for _ in 0..50 {
            client.subscribe("storm/#", QoS::AtLeastOnce).await.unwrap();
            client.unsubscribe("storm/#").await.unwrap();
        }
        client.disconnect().await.unwrap();
        let _ = poller.await;
    });

    // The storm: each round starts a connection before the previous one is gone.
    let mut previous: Option<tokio::task::JoinHandle<()>> = None;
    for round in 0..STORM_ROUNDS {
        let seen = Arc::clone(&seen);
        let handle = tokio::spawn(async move {
            let (client, mut eventloop) = AsyncClient::new(options("victim", addr, false), 16);
            collect_for(
                &mut eventloop,
                Duration::from_millis(30 + u64::from(round % 4) * 10),
                &seen,
            )
            .await;
            drop(client);
        });
        if let Some(previous) = previous.replace(handle) {
            previous.await.unwrap();
        }
    }
    if let Some(last) = previous {
        last.await.unwrap();
    }
    publisher.await.unwrap();
    jitter.await.unwrap();

    // The last connection drains whatever the storm left queued or in flight.
    let (client, mut eventloop) = AsyncClient::new(options("victim", addr, false), 16);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < MESSAGES as usize && tokio::time::Instant::now() < deadline {
        collect_for(&mut eventloop, Duration::from_millis(200), &seen).await;
    }
    let missing: Vec<u32> = (0..MESSAGES)
        .filter(|n| !seen.lock().unwrap().contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} messages: {missing:?}",
        missing.len()
    );

    // Publisher and jitter had clean sessions and left: the victim's is the only one.
    let broker = gateway.gateway().broker().clone();
    let one_left = tokio::time::timeout(Duration::from_secs(5), async {
        while broker.session_count() != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(one_left.is_ok(), "{} sessions left", broker.session_count());
    drop((client, eventloop));
    gateway.shutdown().await;
}
