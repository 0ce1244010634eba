//! QoS 0/1/2 in both directions, downgrade to the granted QoS, exactly once, ordering, the
//! inflight window (`mqtt.max_inflight` and the client's Receive Maximum), and redelivery with
//! DUP of unacknowledged messages when a session resumes.

mod common;

use common::{
    raw::{Raw, ack, connect_v5, connect_v5_with, subscribe},
    *,
};
use rumqttc::QoS;
use rumqttc::v5::mqttbytes::QoS as Q5;
use tributary_tests::{start_gateway, start_gateway_with};

const QOS4: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
const QOS5: [Q5; 3] = [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_every_qos_pair_is_delivered_at_the_lower_qos() {
    let gw = start_gateway().await;
    let mut publisher = V4::connect(v4_options(&gw, "pub")).await;
    for (si, sub_qos) in QOS4.into_iter().enumerate() {
        let mut sub = V4::connect(v4_options(&gw, &format!("sub{si}"))).await;
        let filter = format!("q4/{si}");
        assert_eq!(
            sub.subscribe(&filter, sub_qos).await,
            vec![rumqttc::SubscribeReasonCode::Success(sub_qos)]
        );
        for pub_qos in QOS4 {
            let payload = format!("{pub_qos:?}->{sub_qos:?}");
            publisher
                .publish(&filter, pub_qos, false, payload.as_bytes())
                .await;
            let p = sub.next_publish().await;
            assert_eq!(text(&p.payload), payload);
            assert_eq!(p.topic, filter);
            assert_eq!(p.qos, (pub_qos as u8).min(sub_qos as u8).try_into_qos());
            assert!(!p.retain);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_every_qos_pair_is_delivered_at_the_lower_qos() {
    let gw = start_gateway().await;
    let mut publisher = V5::connect(v5_options(&gw, "pub")).await;
    for (si, sub_qos) in QOS5.into_iter().enumerate() {
        let mut sub = V5::connect(v5_options(&gw, &format!("sub{si}"))).await;
        let filter = format!("q5/{si}");
        assert_eq!(
            sub.subscribe(&filter, sub_qos).await,
            vec![rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(
                sub_qos
            )]
        );
        for pub_qos in QOS5 {
            let payload = format!("{pub_qos:?}->{sub_qos:?}");
            publisher
                .publish(&filter, pub_qos, false, payload.as_bytes())
                .await;
            let p = sub.next_publish().await;
            assert_eq!(text(&p.payload), payload);
            assert_eq!(p.qos as u8, (pub_qos as u8).min(sub_qos as u8));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_and_v5_interoperate_on_one_topic() {
    let gw = start_gateway().await;
    let mut s4 = V4::connect(v4_options(&gw, "s4")).await;
    let mut s5 = V5::connect(v5_options(&gw, "s5")).await;
    s4.subscribe("mix/t", QoS::ExactlyOnce).await;
    s5.subscribe("mix/t", Q5::ExactlyOnce).await;
    let mut p4 = V4::connect(v4_options(&gw, "p4")).await;
    let mut p5 = V5::connect(v5_options(&gw, "p5")).await;
    p4.publish("mix/t", QoS::ExactlyOnce, false, b"from v4")
        .await;
    p5.publish("mix/t", Q5::ExactlyOnce, false, b"from v5")
        .await;
    for expected in [&b"from v4"[..], b"from v5"] {
        let a = s4.next_publish().await;
        let b = s5.next_publish().await;
        assert_eq!(a.payload.as_ref(), expected);
        assert_eq!(b.payload.as_ref(), expected);
        assert_eq!(a.qos, QoS::ExactlyOnce);
        assert_eq!(b.qos, Q5::ExactlyOnce);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_is_delivered_exactly_once_and_in_order() {
    let gw = start_gateway().await;
    let mut sub = V5::connect(v5_options(&gw, "eo-sub")).await;
    sub.subscribe("eo/t", Q5::ExactlyOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "eo-pub")).await;
    for i in 0..50 {
        publisher
            .client
            .publish("eo/t", Q5::ExactlyOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    for i in 0..50 {
        let p = sub.next_publish().await;
        assert_eq!(text(&p.payload), format!("{i}"));
        assert_eq!(p.qos, Q5::ExactlyOnce);
        assert!(!p.dup);
    }
    // A marker proves nothing else (no duplicate) was queued before it.
    publisher
        .publish("eo/t", Q5::AtMostOnce, false, b"end")
        .await;
    assert_eq!(sub.next_publish().await.payload.as_ref(), b"end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_publisher_keep_their_order_per_topic() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "ord-sub")).await;
    sub.subscribe("ord/#", QoS::ExactlyOnce).await;
    let publisher = V4::connect(v4_options(&gw, "ord-pub")).await;
    // One topic per QoS, interleaved.
    let topics = ["ord/0", "ord/1", "ord/2"];
    for i in 0..300usize {
        publisher
            .client
            .publish(topics[i % 3], QOS4[i % 3], false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut last = [None::<usize>; 3];
    for _ in 0..300 {
        let p = sub.next_publish().await;
        let n: usize = text(&p.payload).parse().unwrap();
        let lane = n % 3;
        assert_eq!(p.topic, topics[lane]);
        assert_eq!(p.qos, QOS4[lane]);
        if let Some(prev) = last[lane] {
            assert_eq!(n, prev + 3, "{n} after {prev} on {}", p.topic);
        }
        last[lane] = Some(n);
    }
    assert_eq!(last, [Some(297), Some(298), Some(299)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_limits_unacknowledged_deliveries() {
    let gw = start_gateway_with(|c| c.mqtt.max_inflight = 2).await;
    let mut o = v4_options(&gw, "slow");
    o.set_manual_acks(true);
    let mut sub = V4::connect(o).await;
    sub.subscribe("win/t", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "fast")).await;
    for i in 0..5 {
        publisher
            .publish("win/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let first = sub.next_publish().await;
    let second = sub.next_publish().await;
    assert_eq!(text(&first.payload), "0");
    assert_eq!(text(&second.payload), "1");
    sub.assert_no_publish().await;

    // Each ack opens one slot.
    sub.client.ack(&first).await.unwrap();
    assert_eq!(text(&sub.next_publish().await.payload), "2");
    sub.assert_no_publish().await;
    sub.client.ack(&second).await.unwrap();
    assert_eq!(text(&sub.next_publish().await.payload), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_receive_maximum_limits_unacknowledged_deliveries() {
    let gw = start_gateway().await; // max_inflight 32
    let mut o = v5_options(&gw, "rm");
    o.set_manual_acks(true);
    o.set_receive_maximum(Some(3));
    let mut sub = V5::connect(o).await;
    sub.subscribe("rm/t", Q5::ExactlyOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "rm-pub")).await;
    for i in 0..6 {
        publisher
            .publish("rm/t", Q5::ExactlyOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(sub.next_publish().await);
    }
    assert_eq!(
        got.iter().map(|p| text(&p.payload)).collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
    sub.assert_no_publish().await;
    // A QoS 2 message holds its slot until PUBCOMP: acking (PUBREC) one frees it after the
    // PUBREL/PUBCOMP exchange that rumqttc completes.
    sub.client.ack(&got[0]).await.unwrap();
    assert_eq!(text(&sub.next_publish().await.payload), "3");
    sub.assert_no_publish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_unacknowledged_qos1_is_resent_with_dup_on_resume() {
    let gw = start_gateway().await;
    let mut o = v4_options(&gw, "dup4");
    o.set_clean_session(false);
    o.set_manual_acks(true);
    let mut sub = V4::connect(o.clone()).await;
    sub.subscribe("dup4/t", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "dup4-pub")).await;
    publisher
        .publish("dup4/t", QoS::AtLeastOnce, false, b"one")
        .await;
    publisher
        .publish("dup4/t", QoS::AtLeastOnce, false, b"two")
        .await;
    let a = sub.next_publish().await;
    let b = sub.next_publish().await;
    assert!(!a.dup && !b.dup);
    // Acknowledge the first only, then drop the connection.
    sub.client.ack(&a).await.unwrap();
    // A round trip on the same connection: once the SUBACK is back, the broker has handled
    // the PUBACK sent before it (an abrupt close could otherwise race it).
    sub.subscribe("dup4/barrier", QoS::AtMostOnce).await;
    sub.kill().await;

    let mut sub = V4::connect(o).await;
    assert!(sub.connack.session_present);
    let again = sub.next_publish().await;
    assert_eq!(again.payload.as_ref(), b"two");
    assert!(again.dup, "a resent PUBLISH has DUP = 1");
    assert_eq!(again.pkid, b.pkid, "same packet id on resend");
    sub.client.ack(&again).await.unwrap();
    sub.assert_no_publish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_unacknowledged_qos1_and_qos2_are_resent_with_dup_on_resume() {
    let gw = start_gateway().await;
    let mut o = v5_options(&gw, "dup5");
    o.set_clean_start(false);
    o.set_connect_properties(expiry(60));
    o.set_manual_acks(true);
    let mut sub = V5::connect(o.clone()).await;
    sub.subscribe("dup5/t", Q5::ExactlyOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "dup5-pub")).await;
    publisher
        .publish("dup5/t", Q5::AtLeastOnce, false, b"q1")
        .await;
    publisher
        .publish("dup5/t", Q5::ExactlyOnce, false, b"q2")
        .await;
    let a = sub.next_publish().await;
    let b = sub.next_publish().await;
    assert_eq!((a.qos, b.qos), (Q5::AtLeastOnce, Q5::ExactlyOnce));
    sub.kill().await;

    let mut sub = V5::connect(o).await;
    assert!(sub.connack.session_present);
    let a2 = sub.next_publish().await;
    let b2 = sub.next_publish().await;
    assert_eq!(
        (a2.payload.as_ref(), a2.dup, a2.pkid),
        (&b"q1"[..], true, a.pkid)
    );
    assert_eq!(
        (b2.payload.as_ref(), b2.dup, b2.pkid),
        (&b"q2"[..], true, b.pkid)
    );
}

/// A QoS 2 delivery whose PUBREC was sent resumes with PUBREL, never a second PUBLISH.
/// rumqttc completes QoS 2 on its own, so the subscriber is raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_resume_after_pubrec_resends_pubrel_not_the_message() {
    let gw = start_gateway().await;
    let expiry = [0x11, 0, 0, 0, 60];
    let (mut raw, _) = Raw::handshake(gw.addr, &connect_v5("q2r", 30, &expiry)).await;
    raw.send(&subscribe(true, 1, &[("q2r/t", 2)])).await;
    raw.recv_kind(9).await;
    let mut publisher = V5::connect(v5_options(&gw, "q2r-pub")).await;
    publisher
        .publish("q2r/t", Q5::ExactlyOnce, false, b"once")
        .await;
    let p = raw.recv_kind(3).await.publish_fields(true);
    assert_eq!((p.qos, p.payload.as_slice()), (2, &b"once"[..]));
    let packet_id = p.packet_id.unwrap();
    let id = packet_id.to_be_bytes();
    raw.send(&ack(0x50, packet_id)).await; // PUBREC
    let pubrel = raw.recv_kind(6).await;
    assert_eq!(pubrel.first, 0x62);
    assert_eq!(pubrel.body[..2], id);
    drop(raw); // no PUBCOMP

    let (mut raw, connack) =
        Raw::handshake(gw.addr, &connect_v5_with("q2r", false, 30, &expiry, None)).await;
    assert_eq!(connack.body[0], 1, "session present");
    let pubrel = raw.recv().await;
    assert_eq!(pubrel.kind(), 6, "expected PUBREL, got {pubrel:?}");
    assert_eq!(pubrel.body[..2], id);
    raw.send(&ack(0x70, packet_id)).await; // PUBCOMP
    // Nothing else: the message is not delivered twice.
    assert!(raw.try_recv(QUIET).await.is_none());
}

trait IntoQos {
    fn try_into_qos(self) -> QoS;
}

impl IntoQos for u8 {
    fn try_into_qos(self) -> QoS {
        QOS4[usize::from(self)]
    }
}
