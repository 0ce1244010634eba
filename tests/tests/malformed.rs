//! Malformed and hostile input through a real socket, byte by byte (RELIABILITY.md tests 1-13
//! and 16). Each test checks the exact answer, that the connection is closed where it must
//! be, and that the broker still serves other clients afterwards.

mod common;

use std::time::Duration;

use common::raw::*;
use tributary_config::units::ByteSize;
use tributary_tests::{start_gateway, start_gateway_with};

/// A bound that only an immediate close meets: the idle timeout is 15 s by default.
const AT_ONCE: Duration = Duration::from_secs(2);

// 1. Remaining length of 5 bytes, or 4 bytes ending with a continuation bit -------------------

#[tokio::test]
async fn overlong_remaining_length_before_connect_is_closed_silently() {
    let gw = start_gateway().await;
    // Before CONNECT the version is unknown: there is no CONNACK to carry 0x81, so a plain
    // close, whichever version the client meant to speak.
    for header in [
        &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
        &[0x10, 0xFF, 0xFF, 0xFF, 0xFF][..],
        &[0x10, 0x80, 0x80, 0x80, 0x80][..],
    ] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(header).await;
        raw.expect_closed_within(AT_ONCE).await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn overlong_remaining_length_after_connect_v5_is_disconnect_0x81() {
    let gw = start_gateway().await;
    for header in [
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF][..],
        &[0xC0, 0x80, 0x80, 0x80, 0x80][..],
    ] {
        let mut raw = Raw::connected_v5(gw.addr, "rl5").await;
        raw.send(header).await;
        raw.expect_then_closed(&disconnect_v5(0x81)).await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn overlong_remaining_length_after_connect_v311_is_a_plain_close() {
    let gw = start_gateway().await;
    for header in [
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF][..],
    ] {
        let mut raw = Raw::connected_v311(gw.addr, "rl4").await;
        raw.send(header).await;
        raw.expect_closed().await;
    }
    assert_serving(gw.addr).await;
}

// 2. Remaining length larger than the bytes that follow -----------------------------------------

#[tokio::test]
async fn short_connect_waits_then_closes_at_idle_timeout() {
    let gw = start_gateway_with(|c| c.mqtt.idle_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::open(gw.addr).await;
    let connect = connect_v5("short", 0, &[]);
    // The header says more than we send: the broker must wait, neither answer nor close...
    raw.send(&connect[..connect.len() - 3]).await;
    raw.expect_silence(Duration::from_millis(600)).await;
    // ...until the idle timeout, which is not extended by the partial packet.
    raw.expect_closed_within(Duration::from_secs(2)).await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn short_publish_waits_then_keepalive_closes_with_0x8d() {
    let gw = start_gateway().await;
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("short-pub", 1, &[])).await;
    assert_eq!(raw.recv().await.connack_v5().0, 0);
    let publish = publish_v5(0, "a/b", None, &[7; 100]);
    raw.send(&publish[..20]).await;
    // A partial packet is not activity: keep alive 1 s x 1.5.
    raw.expect_silence(Duration::from_millis(1000)).await;
    raw.expect_within(&disconnect_v5(0x8D), Duration::from_secs(2))
        .await;
    raw.expect_closed().await;
    assert_serving(gw.addr).await;
}

// 3. Remaining length over max_packet_size ------------------------------------------------------

#[tokio::test]
async fn packet_over_max_packet_size_is_refused_from_the_header() {
    let gw = start_gateway_with(|c| c.mqtt.max_packet_size = ByteSize::from_bytes(100)).await;

    // Before CONNECT: a CONNECT header announcing 256 MB, and nothing else.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&[0x10, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    raw.expect_closed_within(AT_ONCE).await;

    // v5: CONNACK advertises Maximum Packet Size; a packet of exactly 100 bytes passes, one
    // of 101 is refused from its 2-byte header with DISCONNECT 0x95.
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_v5("mps", 0, &[])).await;
    let (code, properties) = raw.recv().await.connack_v5();
    assert_eq!(code, 0);
    assert_eq!(prop(&properties, 0x27), Some(PropValue::U32(100)));
    // 2 header + 2 topic length + 3 topic + 1 property length + 92 payload = 100.
    let exact = publish_v5(0, "a/b", None, &[0; 92]);
    assert_eq!(exact.len(), 100);
    raw.send(&exact).await;
    raw.ping().await;
    raw.send(&[0x30, 99]).await; // 101 bytes announced; the body is never sent
    raw.expect_then_closed(&disconnect_v5(0x95)).await;

    // 3.1.1: a plain close, also from the header alone.
    let mut raw = Raw::connected_v311(gw.addr, "mps311").await;
    raw.send(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    raw.expect_closed_within(AT_ONCE).await;

    assert_serving(gw.addr).await;
}

// 4. First packet not CONNECT ------------------------------------------------------------------

#[tokio::test]
async fn first_packet_not_connect_is_closed_at_once() {
    let gw = start_gateway().await;
    for first in [
        &[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..], // PUBLISH announcing 256 MB
        &PINGREQ[..],
        &[0x82, 0xFF, 0xFF, 0x03][..], // SUBSCRIBE header only
        &[0x20, 0x02, 0x00, 0x00][..], // CONNACK
        &[0xE0, 0x00][..],             // DISCONNECT
    ] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(first).await;
        raw.expect_closed_within(AT_ONCE).await;
    }
    assert_serving(gw.addr).await;
}

// 5. Second CONNECT ----------------------------------------------------------------------------

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    let gw = start_gateway().await;
    let mut raw = Raw::connected_v5(gw.addr, "twice5").await;
    raw.send(&connect_v5("twice5", 0, &[])).await;
    raw.expect_then_closed(&disconnect_v5(0x82)).await;

    let mut raw = Raw::connected_v311(gw.addr, "twice311").await;
    raw.send(&connect_v311("twice311", true, 0)).await;
    raw.expect_closed().await;
    assert_serving(gw.addr).await;
}

// 6. Server-only packets from a client (Mosquitto CVE-2021-28166) -------------------------------

#[tokio::test]
async fn server_only_packets_from_a_client_are_a_protocol_error() {
    let gw = start_gateway().await;
    for packet in [
        &[0x20, 0x03, 0x00, 0x00, 0x00][..],       // CONNACK
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x00][..], // SUBACK
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x00][..], // UNSUBACK
        &PINGRESP[..],
    ] {
        let mut raw = Raw::connected_v5(gw.addr, "server-only").await;
        raw.send(packet).await;
        raw.expect_then_closed(&disconnect_v5(0x82)).await;
    }
    for packet in [&[0x20, 0x02, 0x00, 0x00][..], &PINGRESP[..]] {
        let mut raw = Raw::connected_v311(gw.addr, "server-only-311").await;
        raw.send(packet).await;
        raw.expect_closed().await;
    }
    assert_serving(gw.addr).await;
}

// 7. Reserved bits, protocol name and level, QoS 3, Will flags --------------------------------

#[tokio::test]
async fn bad_protocol_name_or_level_gets_connack_return_code_1() {
    let gw = start_gateway().await;
    let id = string(b"lvl");
    for connect in [
        connect_raw(b"MQTT", 6, 0x02, 0, None, &id),
        connect_raw(b"MQTT", 3, 0x02, 0, None, &id),
        connect_raw(b"MQIsdp", 4, 0x02, 0, None, &id),
        connect_raw(b"MQTX", 4, 0x02, 0, None, &id),
        // A client that meant v5 but sent an unknown level: it still gets the 3.1.1 form,
        // as [MQTT-3.1.2-2] and v5 §3.1.2.2 both allow for an unknown version.
        connect_raw(b"MQTT", 7, 0x02, 0, Some(&[]), &id),
    ] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect).await;
        raw.expect_then_closed(&connack_v311(false, 0x01)).await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn reserved_bits_and_bad_connect_flags_are_malformed() {
    let gw = start_gateway().await;
    let id = string(b"flags");
    let mut with_will = id.clone();
    with_will.extend(string(b"will/t"));
    with_will.extend(string(b"bye"));
    let mut with_will_v5 = id.clone();
    with_will_v5.push(0); // Will properties
    with_will_v5.extend(string(b"will/t"));
    with_will_v5.extend(string(b"bye"));
    let bad_flags = [
        (0x03, &id),           // reserved bit 0
        (0x0A, &id),           // Will QoS 1 without the Will flag
        (0x22, &id),           // Will Retain without the Will flag
        (0x1E, &with_will),    // Will QoS 3
        (0x42, &id),           // password without user name (3.1.1 only)
        (0x1E, &with_will_v5), // (v5 payload)
    ];
    for (flags, payload) in &bad_flags[..5] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_raw(b"MQTT", 4, *flags, 0, None, payload))
            .await;
        raw.expect_closed().await;
    }
    // v5: the CONNECT's header says v5, so the broker answers in v5 with CONNACK 0x81.
    for (flags, payload) in [(0x03, &id), (0x0A, &id), (0x22, &id), (0x1E, &with_will_v5)] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_raw(b"MQTT", 5, flags, 0, Some(&[]), payload))
            .await;
        raw.expect_then_closed(&connack_refusal_v5(0x81)).await;
    }
    // Reserved fixed-header bits: a CONNECT with flags, and PINGREQ/SUBSCRIBE after CONNECT.
    let mut raw = Raw::open(gw.addr).await;
    let mut connect = connect_v5("hdr", 0, &[]);
    connect[0] = 0x11;
    raw.send(&connect).await;
    raw.expect_closed().await;
    for packet in [
        &[0xC1, 0x00][..],
        &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00][..],
    ] {
        let mut raw = Raw::connected_v5(gw.addr, "hdr").await;
        raw.send(packet).await;
        raw.expect_then_closed(&disconnect_v5(0x81)).await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn publish_with_qos_3_is_malformed() {
    let gw = start_gateway().await;
    let mut qos3 = publish_v5(1, "a/b", Some(1), b"x");
    qos3[0] = 0x36;
    let mut raw = Raw::connected_v5(gw.addr, "qos3").await;
    raw.send(&qos3).await;
    raw.expect_then_closed(&disconnect_v5(0x81)).await;

    let mut qos3 = publish_v311(1, "a/b", Some(1), b"x");
    qos3[0] = 0x36;
    let mut raw = Raw::connected_v311(gw.addr, "qos3").await;
    raw.send(&qos3).await;
    raw.expect_closed().await;
    assert_serving(gw.addr).await;
}

// 8. Invalid UTF-8 and U+0000 -------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_or_nul_in_client_id_is_refused() {
    let gw = start_gateway().await;
    for bad in [&b"bad\xFFid"[..], &b"nul\0id"[..], &b"\xED\xA0\x80"[..]] {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_raw(b"MQTT", 5, 0x02, 0, Some(&[]), &string(bad)))
            .await;
        raw.expect_then_closed(&connack_refusal_v5(0x81)).await;

        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_raw(b"MQTT", 4, 0x02, 0, None, &string(bad)))
            .await;
        raw.expect_closed().await;
    }
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn invalid_utf8_or_nul_in_topic_is_malformed() {
    let gw = start_gateway().await;
    for bad in [&b"a/\xC3"[..], &b"a/\0/b"[..], &b"\xF8\x88\x80\x80\x80"[..]] {
        let mut raw = Raw::connected_v5(gw.addr, "utf8").await;
        raw.send(&publish(0, false, bad, None, Some(&[]), b"x"))
            .await;
        raw.expect_then_closed(&disconnect_v5(0x81)).await;

        let mut raw = Raw::connected_v311(gw.addr, "utf8").await;
        raw.send(&publish(1, false, bad, Some(1), None, b"x")).await;
        raw.expect_closed().await;

        // And in a subscription filter.
        let mut raw = Raw::connected_v5(gw.addr, "utf8").await;
        let mut body = vec![0x00, 0x01, 0x00];
        body.extend(string(bad));
        body.push(0);
        raw.send(&packet(0x82, &body)).await;
        raw.expect_then_closed(&disconnect_v5(0x81)).await;
    }
    assert_serving(gw.addr).await;
}

// 9. Empty topic, wildcards in a topic name, too many levels (Mosquitto CVE-2021-34432) --------

#[tokio::test]
async fn empty_topic_without_alias_is_refused() {
    let gw = start_gateway().await;
    let mut raw = Raw::connected_v5(gw.addr, "empty").await;
    raw.send(&publish_v5(0, "", None, b"x")).await;
    raw.expect_then_closed(&disconnect_v5(0x82)).await;

    let mut raw = Raw::connected_v5(gw.addr, "empty").await;
    raw.send(&publish_v5(1, "", Some(1), b"x")).await;
    raw.expect_then_closed(&disconnect_v5(0x82)).await;

    let mut raw = Raw::connected_v311(gw.addr, "empty").await;
    raw.send(&publish_v311(0, "", None, b"x")).await;
    raw.expect_closed().await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn wildcards_in_topic_name_and_too_many_levels_are_topic_name_invalid() {
    let gw = start_gateway_with(|c| c.mqtt.max_topic_levels = 3).await;
    for topic in ["a/+/b", "a/#", "+", "#", "a/b+", "a/b/c/d"] {
        let mut raw = Raw::connected_v5(gw.addr, "wild").await;
        raw.send(&publish_v5(1, topic, Some(1), b"x")).await;
        raw.expect_then_closed(&disconnect_v5(0x90)).await;

        let mut raw = Raw::connected_v311(gw.addr, "wild").await;
        raw.send(&publish_v311(1, topic, Some(1), b"x")).await;
        raw.expect_closed().await;
    }
    // Three levels is within the limit (no subscriber: v5 PUBACK 0x10).
    let mut raw = Raw::connected_v5(gw.addr, "wild").await;
    raw.send(&publish_v5(1, "a/b/c", Some(1), b"x")).await;
    raw.expect(&[0x40, 0x03, 0x00, 0x01, 0x10]).await;
    assert_serving(gw.addr).await;
}

// 10. $-topics (Mosquitto CVE-2018-12543) -------------------------------------------------------

#[tokio::test]
async fn publish_to_sys_is_refused_and_not_delivered() {
    let gw = start_gateway().await;
    let mut sys_sub = Raw::connected_v5(gw.addr, "sys-sub").await;
    sys_sub
        .send(&subscribe(true, 1, &[("$SYS/#", 0), ("marker", 0)]))
        .await;
    assert_eq!(sys_sub.recv().await.body, [0, 1, 0, 0, 0]);

    let mut raw = Raw::connected_v5(gw.addr, "sys-pub").await;
    raw.send(&publish_v5(1, "$SYS/tributary/fake", Some(5), b"x"))
        .await;
    raw.expect(&ack_v5_error(0x40, 5, 0x87)).await;
    raw.send(&publish_v5(0, "$SYS/tributary/fake", None, b"x"))
        .await;
    raw.ping().await; // QoS 0: refused silently, connection stays

    let mut raw311 = Raw::connected_v311(gw.addr, "sys-pub-311").await;
    raw311
        .send(&publish_v311(1, "$SYS/tributary/fake", Some(6), b"x"))
        .await;
    raw311.expect(&ack(0x40, 6)).await; // 3.1.1 PUBACK cannot say no
    raw311.send(&publish_v311(0, "marker", None, b"m")).await;
    raw311.ping().await;

    let seen = topics_until_marker(&mut sys_sub, true, "marker").await;
    assert!(
        !seen.iter().any(|t| t == "$SYS/tributary/fake"),
        "a client's $SYS publish was delivered: {seen:?}"
    );
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn dollar_topics_do_not_match_root_wildcards() {
    let gw = start_gateway().await;
    let mut all = Raw::connected_v5(gw.addr, "all").await;
    all.send(&subscribe(true, 1, &[("#", 0), ("+/bar", 0)]))
        .await;
    assert_eq!(all.recv().await.body, [0, 1, 0, 0, 0]);
    let mut dollar = Raw::connected_v5(gw.addr, "dollar").await;
    dollar.send(&subscribe(true, 1, &[("$foo/#", 0)])).await;
    assert_eq!(dollar.recv().await.body, [0, 1, 0, 0]);

    let mut publisher = Raw::connected_v5(gw.addr, "pub").await;
    publisher
        .send(&publish_v5(1, "$foo/bar", Some(1), b"d"))
        .await;
    // Routed to one subscriber: Success, not "no matching subscribers".
    publisher.expect(&[0x40, 0x02, 0x00, 0x01]).await;
    publisher.send(&publish_v5(0, "marker", None, b"m")).await;
    publisher.ping().await;

    assert_eq!(
        dollar.recv().await.publish(true),
        ("$foo/bar".into(), None, b"d".to_vec())
    );
    // `#` gets the marker (its own, not the $-topic) first.
    assert_eq!(
        topics_until_marker(&mut all, true, "marker").await,
        Vec::<String>::new()
    );
    assert_serving(gw.addr).await;
}

// 11. v5 property errors ----------------------------------------------------------------------

#[tokio::test]
async fn v5_property_errors_in_publish() {
    let gw = start_gateway().await;
    let cases: [(&[u8], u8); 5] = [
        // Payload Format Indicator twice: Protocol Error.
        (&[0x01, 0x00, 0x01, 0x00], 0x82),
        // Session Expiry Interval is a CONNECT/CONNACK/DISCONNECT property: Malformed.
        (&[0x11, 0x00, 0x00, 0x00, 0x0A], 0x81),
        // An identifier the spec does not define.
        (&[0x7F, 0x00], 0x81),
        // Payload Format Indicator of 2.
        (&[0x01, 0x02], 0x82),
        // Topic Alias 0.
        (&[0x23, 0x00, 0x00], 0x94),
    ];
    for (properties, code) in cases {
        let mut raw = Raw::connected_v5(gw.addr, "props").await;
        raw.send(&publish(0, false, b"a/b", None, Some(properties), b"x"))
            .await;
        raw.expect_then_closed(&disconnect_v5(code)).await;
    }

    // A property length beyond the packet: the block claims 50 bytes, 3 follow.
    let mut raw = Raw::connected_v5(gw.addr, "props").await;
    let mut body = string(b"a/b");
    body.extend([50, 0x01, 0x00, 0x00]);
    raw.send(&packet(0x30, &body)).await;
    raw.expect_then_closed(&disconnect_v5(0x81)).await;

    // 200 user properties, over the default cap of 128: Quota exceeded.
    let mut many = Vec::new();
    for i in 0..200 {
        many.extend(user_property("k", &i.to_string()));
    }
    let mut raw = Raw::connected_v5(gw.addr, "props").await;
    raw.send(&publish(0, false, b"a/b", None, Some(&many), b"x"))
        .await;
    raw.expect_then_closed(&disconnect_v5(0x97)).await;

    // 128 is within the cap.
    let mut raw = Raw::connected_v5(gw.addr, "props").await;
    let mut ok = Vec::new();
    for i in 0..128 {
        ok.extend(user_property("k", &i.to_string()));
    }
    raw.send(&publish(0, false, b"a/b", None, Some(&ok), b"x"))
        .await;
    raw.ping().await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn v5_property_errors_in_connect_get_connack() {
    let gw = start_gateway().await;
    let mut many = Vec::new();
    for i in 0..200 {
        many.extend(user_property("k", &i.to_string()));
    }
    let cases: [(&[u8], u8); 4] = [
        // Session Expiry Interval twice.
        (&[0x11, 0, 0, 0, 10, 0x11, 0, 0, 0, 10], 0x82),
        // Topic Alias is not a CONNECT property.
        (&[0x23, 0x00, 0x01], 0x81),
        // Receive Maximum 0.
        (&[0x21, 0x00, 0x00], 0x82),
        (&many, 0x97),
    ];
    for (properties, code) in cases {
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_v5("cprops", 0, properties)).await;
        raw.expect_then_closed(&connack_refusal_v5(code)).await;
    }
    // A Will property block with a property Will does not allow (Mosquitto CVE-2023-3592).
    let mut payload = string(b"cprops");
    payload.extend(props(&[0x11, 0, 0, 0, 10]));
    payload.extend(string(b"will/t"));
    payload.extend(string(b"bye"));
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_raw(b"MQTT", 5, 0x06, 0, Some(&[]), &payload))
        .await;
    raw.expect_then_closed(&connack_refusal_v5(0x81)).await;
    assert_serving(gw.addr).await;
}

// 12. Will to a forbidden topic (Mosquitto 2.0.16) ---------------------------------------------

#[tokio::test]
async fn will_to_sys_is_refused() {
    let gw = start_gateway().await;
    for topic in [&b"$SYS/x"[..], b"$CONTROL/x", b"a/+"] {
        let mut payload = string(b"will");
        payload.push(0); // Will properties
        payload.extend(string(topic));
        payload.extend(string(b"bye"));
        let mut raw = Raw::open(gw.addr).await;
        raw.send(&connect_raw(b"MQTT", 5, 0x06, 0, Some(&[]), &payload))
            .await;
        raw.expect_then_closed(&connack_refusal_v5(0x90)).await;
    }
    // 3.1.1 has no "topic name invalid" return code: CONNACK 0x03 is how the reason maps.
    let mut payload = string(b"will");
    payload.extend(string(b"$SYS/x"));
    payload.extend(string(b"bye"));
    let mut raw = Raw::open(gw.addr).await;
    raw.send(&connect_raw(b"MQTT", 4, 0x06, 0, None, &payload))
        .await;
    raw.expect_then_closed(&connack_v311(false, 0x03)).await;
    assert_serving(gw.addr).await;
}

// 13. Packet ids: 0 on QoS > 0, acks for unknown ids --------------------------------------------

#[tokio::test]
async fn packet_id_zero_on_qos_1_or_2_is_malformed() {
    let gw = start_gateway().await;
    for qos in [1, 2] {
        let mut raw = Raw::connected_v5(gw.addr, "pid0").await;
        raw.send(&publish_v5(qos, "a/b", Some(0), b"x")).await;
        raw.expect_then_closed(&disconnect_v5(0x81)).await;

        let mut raw = Raw::connected_v311(gw.addr, "pid0").await;
        raw.send(&publish_v311(qos, "a/b", Some(0), b"x")).await;
        raw.expect_closed().await;
    }
    // SUBSCRIBE with packet id 0 too.
    let mut raw = Raw::connected_v5(gw.addr, "pid0").await;
    raw.send(&subscribe(true, 0, &[("a", 0)])).await;
    raw.expect_then_closed(&disconnect_v5(0x81)).await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn acks_for_unknown_packet_ids() {
    let gw = start_gateway().await;
    let mut raw = Raw::connected_v5(gw.addr, "unknown-ids").await;
    // PUBACK and PUBCOMP for ids never used: ignored, the connection stays up.
    raw.send(&ack(0x40, 17)).await;
    raw.send(&ack(0x70, 18)).await;
    raw.ping().await;
    // PUBREL for an unknown id: PUBCOMP 0x92; PUBREC for an unknown id: PUBREL 0x92.
    raw.send(&ack(0x62, 19)).await;
    raw.expect(&ack_v5_error(0x70, 19, 0x92)).await;
    raw.send(&ack(0x50, 20)).await;
    raw.expect(&ack_v5_error(0x62, 20, 0x92)).await;
    raw.ping().await;

    let mut raw = Raw::connected_v311(gw.addr, "unknown-ids-311").await;
    raw.send(&ack(0x40, 17)).await;
    raw.send(&ack(0x70, 18)).await;
    raw.ping().await;
    raw.send(&ack(0x62, 19)).await;
    raw.expect(&ack(0x70, 19)).await;
    raw.ping().await;
    assert_serving(gw.addr).await;
}

// 16. QoS 2 with one packet id, never released (Mosquitto CVE-2023-28366) -----------------------

#[tokio::test]
async fn qos2_same_packet_id_repeated_is_delivered_once() {
    let gw = start_gateway().await;
    let mut sub = Raw::connected_v5(gw.addr, "q2-sub").await;
    sub.send(&subscribe(true, 1, &[("q2/#", 0)])).await;
    assert_eq!(sub.recv().await.body, [0, 1, 0, 0]);

    let mut publisher = Raw::connected_v5(gw.addr, "q2-pub").await;
    let message = publish_v5(2, "q2/a", Some(7), b"once");
    for _ in 0..1000 {
        publisher.send(&message).await;
        publisher.expect(&ack(0x50, 7)).await;
    }
    publisher
        .send(&publish_v5(0, "q2/marker", None, b"m"))
        .await;
    publisher.ping().await;

    assert_eq!(sub.recv().await.publish(true).0, "q2/a");
    assert_eq!(sub.recv().await.publish(true).0, "q2/marker");
    // Releasing it completes the exchange once; a second PUBREL is for an unknown id.
    publisher.send(&ack(0x62, 7)).await;
    publisher.expect(&ack(0x70, 7)).await;
    publisher.send(&ack(0x62, 7)).await;
    publisher.expect(&ack_v5_error(0x70, 7, 0x92)).await;
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn qos2_awaiting_rel_is_bounded_on_v311() {
    let gw = start_gateway().await;
    let mut sub = Raw::connected_v311(gw.addr, "q2-sub").await;
    sub.send(&subscribe(false, 1, &[("q2/#", 0)])).await;
    sub.expect(&[0x90, 0x03, 0x00, 0x01, 0x00]).await;

    let mut publisher = Raw::connected_v311(gw.addr, "q2-pub").await;
    // max_awaiting_rel = 100: the first 100 are routed and acknowledged.
    for id in 1..=100u16 {
        publisher
            .send(&publish_v311(2, "q2/a", Some(id), b"x"))
            .await;
        publisher.expect(&ack(0x50, id)).await;
    }
    // A PUBREC is a promise, and 3.1.1 has no PUBREC that refuses: the 101st is not
    // acknowledged at all, the connection closes instead, and the client will send it again.
    publisher
        .send(&publish_v311(2, "q2/a", Some(101), b"x"))
        .await;
    publisher.expect_closed().await;
    let mut seen = 0;
    while let Read::Packet(packet) = sub.read(Duration::from_millis(500)).await {
        assert_eq!(packet.publish(false).0, "q2/a");
        seen += 1;
    }
    assert_eq!(seen, 100);

    // A new connection publishes QoS 2 again.
    let mut publisher = Raw::connected_v311(gw.addr, "q2-pub").await;
    publisher
        .send(&publish_v311(2, "q2/b", Some(1), b"y"))
        .await;
    publisher.expect(&ack(0x50, 1)).await;
    assert_eq!(sub.recv().await.publish(false).0, "q2/b");
    assert_serving(gw.addr).await;
}

#[tokio::test]
async fn qos2_over_receive_maximum_on_v5_is_disconnect_0x93() {
    let gw = start_gateway().await;
    let mut publisher = Raw::connected_v5(gw.addr, "q2-rm").await;
    // Receive Maximum is max_inflight = 32: 32 unreleased QoS 2 are fine (no subscriber,
    // so PUBREC 0x10), the 33rd is a protocol violation.
    for id in 1..=32u16 {
        publisher.send(&publish_v5(2, "q2/a", Some(id), b"x")).await;
        publisher.expect(&[0x50, 0x03, 0x00, id as u8, 0x10]).await;
    }
    publisher.send(&publish_v5(2, "q2/a", Some(33), b"x")).await;
    publisher.expect_then_closed(&disconnect_v5(0x93)).await;
    assert_serving(gw.addr).await;
}
