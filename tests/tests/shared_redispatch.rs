//! A member of a share group that leaves loses nothing: what it received through the group and
//! never acknowledged goes to another member when its session ends.

#![allow(clippy::expect_used, clippy::unwrap_used)] // Test helpers fail loudly: a failure is a failed test.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tributary_tests::start_gateway;

const WAIT: Duration = Duration::from_secs(5);

fn client(id: &str, addr: std::net::SocketAddr, manual_acks: bool) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_manual_acks(manual_acks);
    AsyncClient::new(options, 16)
}

/// Polls until `want` matches an incoming packet.
async fn until<T>(eventloop: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(packet) = eventloop.poll().await.expect("connection failed") {
                if let Some(found) = want(&packet) {
                    return found;
                }
            }
        }
    })
    .await
    .expect("timed out")
}

fn publish_payload(packet: &Packet) -> Option<Vec<u8>> {
    match packet {
        Packet::Publish(publish) => Some(publish.payload.to_vec()),
        _ => None,
    }
}

/// Both tests begin alike: A, alone in the group, receives `job-1` (acknowledging it or not),
/// then B joins. Returns (A, publisher, B), each a client with its event loop.
async fn job_one_given_to_a(
    addr: std::net::SocketAddr,
    a_manual_acks: bool,
) -> [(AsyncClient, EventLoop); 3] {
    let (a, mut a_loop) = client("member-a", addr, a_manual_acks);
    a.subscribe("$share/workers/jobs", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut a_loop, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;

    let (publisher, mut p_loop) = client("producer", addr, false);
    publisher
        .publish("jobs", QoS::AtLeastOnce, false, "job-1")
        .await
        .unwrap();
    until(&mut p_loop, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;
    assert_eq!(until(&mut a_loop, publish_payload).await, b"job-1");

    let (b, mut b_loop) = client("member-b", addr, false);
    b.subscribe("$share/workers/jobs", QoS::AtLeastOnce)
        .await
        .unwrap();
    until(&mut b_loop, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;
    [(a, a_loop), (publisher, p_loop), (b, b_loop)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_shared_message_goes_to_another_member() {
    let gateway = start_gateway().await;
    // A never acknowledges job-1; then its connection drops (clean session: it ends).
    let [a, _publisher, (_b, mut b_loop)] = job_one_given_to_a(gateway.addr, true).await;
    drop(a);

    assert_eq!(until(&mut b_loop, publish_payload).await, b"job-1");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_shared_message_is_not_redelivered() {
    let gateway = start_gateway().await;
    let [(a, mut a_loop), (publisher, mut p_loop), (_b, mut b_loop)] =
        job_one_given_to_a(gateway.addr, false).await;
    // Let A's automatic PUBACK reach the broker before it leaves.
    a.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(500), a_loop.poll()).await;
    drop(a_loop);

    // The next job goes to B (the only member left) and is the first thing B sees.
    publisher
        .publish("jobs", QoS::AtLeastOnce, false, "job-2")
        .await
        .unwrap();
    until(&mut p_loop, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;
    assert_eq!(until(&mut b_loop, publish_payload).await, b"job-2");
    gateway.shutdown().await;
}
