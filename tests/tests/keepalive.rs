//! Keep alive and idle timeout on the wire (RELIABILITY.md tests 28, 29, 33).

mod common;

use std::time::Duration;

use common::raw::*;
use tokio::time::Instant;
use tributary_tests::{start_gateway, start_gateway_with};

#[tokio::test]
async fn silent_v5_client_gets_disconnect_0x8d_after_one_and_a_half_keepalives() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("silent", 1, &[])).await;
    assert_eq!(raw.recv().await.connack_v5().0, 0);
    // Keep alive 1 s x 1.5: nothing before 1.5 s (checked up to 1.2 s)...
    raw.expect_silence(Duration::from_millis(1200)).await;
    // ...then DISCONNECT 0x8D soon after, and the close.
    raw.expect_within(&disconnect_v5(0x8D), Duration::from_secs(2))
        .await;
    raw.expect_closed().await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn silent_v311_client_is_closed_after_one_and_a_half_keepalives() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("silent311", true, 1)).await;
    raw.expect(&connack_v311(false, 0)).await;
    raw.expect_silence(Duration::from_millis(1200)).await;
    raw.expect_closed_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn pinging_client_stays_connected() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("pinger", 1, &[])).await;
    assert_eq!(raw.recv().await.connack_v5().0, 0);
    // 3 s of PINGREQ every 500 ms: twice the 1.5 s the silent client above gets.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        raw.ping().await;
    }
    // Any packet counts, not just PINGREQ.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        raw.send(&publish_v5(0, "ka/t", None, b"x")).await;
    }
    raw.ping().await;
    // Then silence ends it.
    raw.expect_within(&disconnect_v5(0x8D), Duration::from_secs(3))
        .await;
    raw.expect_closed().await;
}

#[tokio::test]
async fn socket_without_connect_is_closed_at_idle_timeout() {
    let gw = start_gateway_with(|c| c.mqtt.idle_timeout = Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut raw = Raw::open(gw.addr).await;
    raw.expect_silence(Duration::from_millis(700)).await;
    // Closed without a word: there is no version to answer in.
    raw.expect_closed_within(Duration::from_secs(2)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn many_idle_sockets_are_all_closed_at_idle_timeout() {
    let gw = start_gateway_with(|c| c.mqtt.idle_timeout = Duration::from_secs(1)).await;
    let mut sockets = Vec::new();
    for _ in 0..200 {
        sockets.push(Raw::open(gw.addr).await);
    }
    for raw in &mut sockets {
        raw.expect_closed_within(Duration::from_secs(3)).await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn dribbled_connect_is_closed_at_idle_timeout() {
    let gw = start_gateway_with(|c| c.mqtt.idle_timeout = Duration::from_secs(1)).await;
    let connect = connect_v5("slowloris", 0, &[]);
    let started = Instant::now();
    let mut raw = Raw::open(gw.addr).await;
    // One byte per 300 ms: the CONNECT would take ~6 s to complete.
    for byte in &connect {
        if raw.try_send(&[*byte]).await.is_err() {
            break;
        }
        match raw.read(Duration::from_millis(300)).await {
            Read::Timeout => continue,
            Read::Closed => break,
            Read::Packet(p) => panic!("unexpected packet {:02x?}", p.bytes),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}, idle_timeout is 1 s"
    );
    assert_serving(gw.addr).await;
}
