//! Subscriptions: `+`/`#` wildcards, `$` topics, overlapping subscriptions, subscription
//! identifiers, No Local, Retain As Published, Retain Handling, SUBACK and UNSUBACK codes, and
//! broker-side auto-subscribe.

mod common;

use common::{
    raw::{Raw, connect_v5, subscribe, unsubscribe},
    *,
};
use rumqttc::v5::mqttbytes::{
    QoS as Q5,
    v5::{Filter, RetainForwardRule, SubscribeProperties},
};
use rumqttc::{QoS, SubscribeFilter, SubscribeReasonCode};
use tributary_config::AutoSubscribeTopic;
use tributary_tests::{start_gateway, start_gateway_with};

/// Publishes each topic in order, then `end` on `end_topic`; returns the topics `sub` received
/// before the end marker.
async fn received_before_marker(
    publisher: &mut V4,
    sub: &mut V4,
    topics: &[&str],
    end_topic: &str,
) -> Vec<String> {
    for t in topics {
        publisher
            .publish(t, QoS::AtLeastOnce, false, t.as_bytes())
            .await;
    }
    publisher
        .publish(end_topic, QoS::AtLeastOnce, false, b"end")
        .await;
    let mut got = Vec::new();
    loop {
        let p = sub.next_publish().await;
        if p.topic == end_topic && p.payload.as_ref() == b"end" {
            return got;
        }
        got.push(p.topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_wildcards_match_what_they_should_and_nothing_else() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "wild")).await;
    sub.subscribe("a/+/c", QoS::AtLeastOnce).await;
    sub.subscribe("x/#", QoS::AtLeastOnce).await;
    sub.subscribe("end", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "wpub")).await;
    let got = received_before_marker(
        &mut publisher,
        &mut sub,
        &[
            "a/b/c", "a/b/c/d", "a/c", "a//c", "x", "x/y", "x/y/z", "y/x", "ab/b/c",
        ],
        "end",
    )
    .await;
    assert_eq!(got, ["a/b/c", "a//c", "x", "x/y", "x/y/z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_wildcards_match_what_they_should() {
    let gw = start_gateway().await;
    let mut sub = V5::connect(v5_options(&gw, "wild5")).await;
    sub.subscribe("+/+", Q5::AtLeastOnce).await;
    sub.subscribe("#", Q5::AtMostOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "wpub5")).await;
    publisher.publish("m/n", Q5::AtLeastOnce, false, b"1").await;
    publisher
        .publish("m/n/o", Q5::AtLeastOnce, false, b"2")
        .await;
    let a = sub.next_publish().await;
    assert_eq!((a.topic.as_ref(), a.qos), (&b"m/n"[..], Q5::AtLeastOnce));
    let b = sub.next_publish().await;
    assert_eq!((b.topic.as_ref(), b.qos), (&b"m/n/o"[..], Q5::AtMostOnce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "dollar")).await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    sub.subscribe("+/status", QoS::AtLeastOnce).await;
    let mut explicit = V4::connect(v4_options(&gw, "dollar2")).await;
    explicit.subscribe("$app/#", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "dpub")).await;
    publisher
        .publish("$app/status", QoS::AtLeastOnce, false, b"$")
        .await;
    publisher
        .publish("plain/status", QoS::AtLeastOnce, false, b"plain")
        .await;
    // `#` and `+/status` each match plain/status; one copy, and nothing for $app/status.
    let p = sub.next_publish().await;
    assert_eq!(p.topic, "plain/status");
    sub.assert_no_publish().await;
    // An explicit `$app/#` does match.
    assert_eq!(explicit.next_publish().await.topic, "$app/status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_get_one_copy_at_the_highest_qos() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "overlap")).await;
    let codes = {
        sub.client
            .subscribe_many([
                SubscribeFilter::new("o/#".into(), QoS::AtMostOnce),
                SubscribeFilter::new("o/+".into(), QoS::ExactlyOnce),
                SubscribeFilter::new("o/t".into(), QoS::AtLeastOnce),
            ])
            .await
            .unwrap();
        sub.suback().await
    };
    assert_eq!(
        codes,
        [
            SubscribeReasonCode::Success(QoS::AtMostOnce),
            SubscribeReasonCode::Success(QoS::ExactlyOnce),
            SubscribeReasonCode::Success(QoS::AtLeastOnce)
        ]
    );
    let mut publisher = V4::connect(v4_options(&gw, "opub")).await;
    publisher
        .publish("o/t", QoS::ExactlyOnce, false, b"1")
        .await;
    publisher
        .publish("o/t/x", QoS::ExactlyOnce, false, b"2")
        .await;
    let p = sub.next_publish().await;
    assert_eq!((p.payload.as_ref(), p.qos), (&b"1"[..], QoS::ExactlyOnce));
    // The next one is the second message (only `o/#` matches it), so no duplicate came between.
    let p = sub.next_publish().await;
    assert_eq!((p.payload.as_ref(), p.qos), (&b"2"[..], QoS::AtMostOnce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscription_identifiers_are_returned_for_every_matching_subscription() {
    let gw = start_gateway().await;
    let mut sub = V5::connect(v5_options(&gw, "subid")).await;
    let props = |id| SubscribeProperties {
        id: Some(id),
        user_properties: vec![],
    };
    sub.subscribe_filter(Filter::new("s/+", Q5::AtLeastOnce), Some(props(7)))
        .await;
    sub.subscribe_filter(Filter::new("s/#", Q5::AtLeastOnce), Some(props(300)))
        .await;
    sub.subscribe("s/none", Q5::AtLeastOnce).await;
    let mut publisher = V5::connect(v5_options(&gw, "sidpub")).await;
    publisher
        .publish("s/x", Q5::AtLeastOnce, false, b"both")
        .await;
    publisher
        .publish("s/x/y", Q5::AtLeastOnce, false, b"one")
        .await;
    publisher
        .publish("s/none", Q5::AtLeastOnce, false, b"none")
        .await;

    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"both");
    let mut ids = p.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [7, 300]);
    let p = sub.next_publish().await;
    assert_eq!(p.properties.unwrap().subscription_identifiers, [300]);
    // `s/none` itself has no identifier; `s/+` and `s/#` match it too.
    let p = sub.next_publish().await;
    assert_eq!(p.payload.as_ref(), b"none");
    let mut ids = p.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [7, 300]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_no_local_keeps_a_clients_own_messages_from_it() {
    let gw = start_gateway().await;
    let mut me = V5::connect(v5_options(&gw, "nl")).await;
    let mut f = Filter::new("nl/t", Q5::AtLeastOnce);
    f.nolocal = true;
    me.subscribe_filter(f, None).await;
    me.publish("nl/t", Q5::AtLeastOnce, false, b"mine").await;
    let mut other = V5::connect(v5_options(&gw, "nl-other")).await;
    other
        .publish("nl/t", Q5::AtLeastOnce, false, b"theirs")
        .await;
    assert_eq!(me.next_publish().await.payload.as_ref(), b"theirs");

    // Without No Local, a client gets its own messages.
    let mut loopy = V5::connect(v5_options(&gw, "loop")).await;
    loopy.subscribe("nl/l", Q5::AtLeastOnce).await;
    loopy.publish("nl/l", Q5::AtLeastOnce, false, b"echo").await;
    assert_eq!(loopy.next_publish().await.payload.as_ref(), b"echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retain_as_published_keeps_the_retain_flag_on_live_messages() {
    let gw = start_gateway().await;
    let mut rap = V5::connect(v5_options(&gw, "rap")).await;
    let mut f = Filter::new("rap/t", Q5::AtLeastOnce);
    f.preserve_retain = true;
    rap.subscribe_filter(f, None).await;
    let mut plain = V5::connect(v5_options(&gw, "norap")).await;
    plain.subscribe("rap/t", Q5::AtLeastOnce).await;
    let mut v4 = V4::connect(v4_options(&gw, "rap4")).await;
    v4.subscribe("rap/t", QoS::AtLeastOnce).await;

    let mut publisher = V5::connect(v5_options(&gw, "rappub")).await;
    publisher
        .publish("rap/t", Q5::AtLeastOnce, true, b"r")
        .await;
    publisher
        .publish("rap/t", Q5::AtLeastOnce, false, b"n")
        .await;

    let (a, b) = (rap.next_publish().await, rap.next_publish().await);
    assert_eq!((a.payload.as_ref(), a.retain), (&b"r"[..], true));
    assert_eq!((b.payload.as_ref(), b.retain), (&b"n"[..], false));
    let (a, b) = (plain.next_publish().await, plain.next_publish().await);
    assert_eq!((a.payload.as_ref(), a.retain), (&b"r"[..], false));
    assert!(!b.retain);
    // 3.1.1: RETAIN is 0 on messages forwarded to established subscriptions [MQTT-3.3.1-9].
    let a = v4.next_publish().await;
    assert_eq!((a.payload.as_ref(), a.retain), (&b"r"[..], false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_retain_handling_0_1_2() {
    let gw = start_gateway().await;
    let mut publisher = V5::connect(v5_options(&gw, "rhpub")).await;
    publisher
        .publish("rh/t", Q5::AtLeastOnce, true, b"kept")
        .await;

    let filter = |rule| {
        let mut f = Filter::new("rh/t", Q5::AtLeastOnce);
        f.retain_forward_rule = rule;
        f
    };
    // 0: at every subscribe, even a repeated one.
    let mut c0 = V5::connect(v5_options(&gw, "rh0")).await;
    for _ in 0..2 {
        c0.subscribe_filter(filter(RetainForwardRule::OnEverySubscribe), None)
            .await;
        let p = c0.next_publish().await;
        assert_eq!((p.payload.as_ref(), p.retain), (&b"kept"[..], true));
    }
    // 1: only when the subscription is new.
    let mut c1 = V5::connect(v5_options(&gw, "rh1")).await;
    c1.subscribe_filter(filter(RetainForwardRule::OnNewSubscribe), None)
        .await;
    assert_eq!(c1.next_publish().await.payload.as_ref(), b"kept");
    c1.subscribe_filter(filter(RetainForwardRule::OnNewSubscribe), None)
        .await;
    // 2: never.
    let mut c2 = V5::connect(v5_options(&gw, "rh2")).await;
    c2.subscribe_filter(filter(RetainForwardRule::Never), None)
        .await;

    publisher
        .publish("rh/t", Q5::AtLeastOnce, false, b"live")
        .await;
    assert_eq!(c1.next_publish().await.payload.as_ref(), b"live");
    assert_eq!(c2.next_publish().await.payload.as_ref(), b"live");
}

/// rumqttc v5 turns a failing SUBACK code into an error that hides the others: raw bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_suback_and_unsuback_codes_per_filter() {
    let gw = start_gateway().await;
    let (mut raw, _) = Raw::handshake(gw.addr, &connect_v5("codes5", 30, &[])).await;
    raw.send(&subscribe(
        true,
        7,
        &[("ok/+", 1), ("bad/#/x", 0), ("ok2", 2), ("bad+", 0)],
    ))
    .await;
    let suback = raw.recv_kind(9).await;
    // packet id, empty properties, then one code per filter.
    assert_eq!(suback.body, vec![0, 7, 0, 0x01, 0x8f, 0x02, 0x8f]);

    raw.send(&unsubscribe(true, 8, &["ok/+", "never", "ok2"]))
        .await;
    let unsuback = raw.recv_kind(11).await;
    assert_eq!(unsuback.body, vec![0, 8, 0, 0x00, 0x11, 0x00]);
    // Unsubscribing again: nothing existed.
    raw.send(&unsubscribe(true, 9, &["ok/+"])).await;
    assert_eq!(raw.recv_kind(11).await.body, vec![0, 9, 0, 0x11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_suback_codes_per_filter_and_unsubscribe_stops_delivery() {
    let gw = start_gateway().await;
    let mut sub = V4::connect(v4_options(&gw, "codes4")).await;
    sub.client
        .subscribe_many([
            SubscribeFilter::new("ok4/t".into(), QoS::ExactlyOnce),
            SubscribeFilter::new("bad/#/x".into(), QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    assert_eq!(
        sub.suback().await,
        [
            SubscribeReasonCode::Success(QoS::ExactlyOnce),
            SubscribeReasonCode::Failure
        ]
    );
    sub.client.unsubscribe("ok4/t").await.unwrap();
    sub.events
        .wait_for("UNSUBACK", |e| match e {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::UnsubAck(_))) => Some(()),
            _ => None,
        })
        .await;
    sub.subscribe("ok4/end", QoS::AtLeastOnce).await;
    let mut publisher = V4::connect(v4_options(&gw, "c4pub")).await;
    let got = received_before_marker(&mut publisher, &mut sub, &["ok4/t"], "ok4/end").await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_subscribe_fills_in_client_id_and_username() {
    let gw = start_gateway_with(|c| {
        c.auto_subscribe.topics.push(AutoSubscribeTopic {
            topic: "to/${clientid}".into(),
            qos: 1,
            rh: 0,
            rap: 0,
            nl: 0,
        });
        c.auto_subscribe.topics.push(AutoSubscribeTopic {
            topic: "user/${username}/#".into(),
            qos: 2,
            rh: 0,
            rap: 0,
            nl: 0,
        });
    })
    .await;
    let mut o = v5_options(&gw, "dev1");
    o.set_credentials("alice", "pw");
    let mut dev = V5::connect(o).await;
    let mut v4dev = V4::connect(v4_options(&gw, "dev2")).await;
    let mut publisher = V5::connect(v5_options(&gw, "apub")).await;
    publisher
        .publish("to/dev1", Q5::ExactlyOnce, false, b"1")
        .await;
    publisher
        .publish("to/dev2", Q5::ExactlyOnce, false, b"2")
        .await;
    publisher
        .publish("user/alice/x", Q5::ExactlyOnce, false, b"3")
        .await;
    let p = dev.next_publish().await;
    assert_eq!((p.payload.as_ref(), p.qos), (&b"1"[..], Q5::AtLeastOnce));
    let p = dev.next_publish().await;
    assert_eq!((p.payload.as_ref(), p.qos), (&b"3"[..], Q5::ExactlyOnce));
    let p = v4dev.next_publish().await;
    assert_eq!((p.payload.as_ref(), p.qos), (&b"2"[..], QoS::AtLeastOnce));
    // dev2 has no username: no `user/.../#` subscription for it.
    v4dev.assert_no_publish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos0_message_fanned_out_reads_the_same_on_every_subscriber() {
    // Several subscribers per version, so the message's shared encoding (encoded once, copied
    // by the others) serves most deliveries; a subscription identifier and Retain As
    // Published take each their own path or flag, and must still see the same message.
    let gw = start_gateway().await;
    let mut v4s = Vec::new();
    for i in 0..3 {
        let mut s = V4::connect(v4_options(&gw, &format!("fan4_{i}"))).await;
        s.subscribe("fan/t", QoS::AtMostOnce).await;
        v4s.push(s);
    }
    let mut v5s = Vec::new();
    for i in 0..3 {
        let mut s = V5::connect(v5_options(&gw, &format!("fan5_{i}"))).await;
        s.subscribe("fan/t", Q5::AtMostOnce).await;
        v5s.push(s);
    }
    let mut rap = V5::connect(v5_options(&gw, "fan_rap")).await;
    let mut f = Filter::new("fan/t", Q5::AtMostOnce);
    f.preserve_retain = true;
    rap.subscribe_filter(f, None).await;
    let mut with_id = V5::connect(v5_options(&gw, "fan_id")).await;
    let props = SubscribeProperties {
        id: Some(9),
        user_properties: vec![],
    };
    with_id
        .subscribe_filter(Filter::new("fan/t", Q5::AtMostOnce), Some(props))
        .await;

    let mut publisher = V5::connect(v5_options(&gw, "fan_pub")).await;
    let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    const N: usize = 20;
    for i in 0..N {
        let retain = i % 2 == 0;
        let payload = format!("m{i}");
        publisher
            .publish_with(
                "fan/t",
                Q5::AtMostOnce,
                retain,
                payload.as_bytes(),
                properties.clone(),
            )
            .await;
    }

    for s in &mut v4s {
        for i in 0..N {
            let p = s.next_publish().await;
            assert_eq!(
                (p.topic.as_ref(), text(&p.payload)),
                (&b"fan/t"[..], format!("m{i}"))
            );
            assert!(!p.retain, "3.1.1: RETAIN 0 on live messages");
        }
    }
    let mut all_v5: Vec<(&mut V5, bool, Vec<usize>)> =
        v5s.iter_mut().map(|s| (s, false, vec![])).collect();
    all_v5.push((&mut rap, true, vec![]));
    all_v5.push((&mut with_id, false, vec![9]));
    for (s, keeps_retain, ids) in all_v5 {
        for i in 0..N {
            let p = s.next_publish().await;
            assert_eq!(
                (p.topic.as_ref(), text(&p.payload)),
                (&b"fan/t"[..], format!("m{i}"))
            );
            assert_eq!(p.retain, keeps_retain && i % 2 == 0, "message {i}");
            let props = p.properties.expect("properties forwarded");
            assert_eq!(props.content_type.as_deref(), Some("text/plain"));
            assert_eq!(props.user_properties, [("k".to_owned(), "v".to_owned())]);
            assert_eq!(props.subscription_identifiers, ids);
        }
        s.assert_no_publish().await;
    }
}
