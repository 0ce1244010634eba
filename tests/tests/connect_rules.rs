//! CONNECT rules on the wire: client ids, authentication methods, keep alive limits.

mod common;

use common::raw::*;
use tributary_tests::{start_gateway, start_gateway_with};

#[tokio::test]
async fn v311_empty_client_id_needs_clean_session() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("", false, 0)).await;
    raw.expect_then_closed(&connack_v311(false, 0x02)).await;

    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("", true, 0)).await;
    raw.expect(&connack_v311(false, 0x00)).await;
    raw.ping().await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn v5_empty_client_id_is_assigned_one() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("", 0, &[])).await;
    let (code, properties) = raw.recv().await.connack_v5();
    assert_eq!(code, 0);
    match prop(&properties, 0x12) {
        Some(PropValue::Bytes(id)) => assert!(!id.is_empty()),
        other => panic!("no Assigned Client Identifier: {other:?}"),
    }
    raw.ping().await;
}

#[tokio::test]
async fn client_id_over_max_clientid_len_is_refused() {
    let gw = start_gateway_with(|c| c.mqtt.max_clientid_len = 23).await;
    let long = "x".repeat(24);
    let longest = "y".repeat(23);

    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311(&long, true, 0)).await;
    raw.expect_then_closed(&connack_v311(false, 0x02)).await;

    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5(&long, 0, &[])).await;
    raw.expect_then_closed(&connack_refusal_v5(0x85)).await;

    Raw::connected_v311(gw.addr, &longest).await.ping().await;
    Raw::connected_v5(gw.addr, &longest).await.ping().await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn v5_authentication_method_is_bad_authentication_method() {
    let gw = start_gateway().await;
    let mut method = vec![0x15];
    method.extend(string(b"SCRAM-SHA-1"));
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("auth", 0, &method)).await;
    raw.expect_then_closed(&connack_refusal_v5(0x8C)).await;

    // Authentication Data without a method is a Protocol Error.
    let mut data = vec![0x16];
    data.extend(string(b"\x01\x02"));
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("auth", 0, &data)).await;
    raw.expect_then_closed(&connack_refusal_v5(0x82)).await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn keepalive_over_max_keepalive() {
    let gw = start_gateway_with(|c| c.mqtt.max_keepalive = 60).await;

    // 3.1.1 cannot be told a shorter keep alive: refused with 0x02, as Mosquitto does.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("ka", true, 61)).await;
    raw.expect_then_closed(&connack_v311(false, 0x02)).await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("ka", true, 60)).await;
    raw.expect(&connack_v311(false, 0x00)).await;

    // v5 is told through Server Keep Alive, also when it asked for none (0).
    for asked in [61, 65535, 0] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_v5("ka5", asked, &[])).await;
        let (code, properties) = raw.recv().await.connack_v5();
        assert_eq!(code, 0);
        assert_eq!(
            prop(&properties, 0x13),
            Some(PropValue::U16(60)),
            "asked {asked}"
        );
    }
    // Within the limit: no Server Keep Alive.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("ka5", 30, &[])).await;
    let (code, properties) = raw.recv().await.connack_v5();
    assert_eq!(code, 0);
    assert_eq!(prop(&properties, 0x13), None);
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn server_keepalive_is_imposed_on_v5() {
    let gw = start_gateway_with(|c| c.mqtt.server_keepalive = Some(10)).await;
    for asked in [0, 5, 30] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_v5("ska", asked, &[])).await;
        let (code, properties) = raw.recv().await.connack_v5();
        assert_eq!(code, 0);
        assert_eq!(
            prop(&properties, 0x13),
            Some(PropValue::U16(10)),
            "asked {asked}"
        );
    }
    // 3.1.1 has no such property: its CONNACK is the plain 4 bytes.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v311("ska311", true, 30)).await;
    raw.expect(&connack_v311(false, 0x00)).await;
}

#[tokio::test]
async fn connack_v5_advertises_the_limits() {
    let gw = start_gateway_with(|c| {
        c.mqtt.max_inflight = 7;
        c.mqtt.max_topic_alias = 9;
    })
    .await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("limits", 0, &[])).await;
    let (code, properties) = raw.recv().await.connack_v5();
    assert_eq!(code, 0);
    assert_eq!(prop(&properties, 0x21), Some(PropValue::U16(7)));
    assert_eq!(prop(&properties, 0x22), Some(PropValue::U16(9)));
    assert_eq!(prop(&properties, 0x27), Some(PropValue::U32(1024 * 1024)));
}
