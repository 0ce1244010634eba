//! Replays the seed corpus of the `connection` fuzz target (`fuzz/corpus/connection/`) through
//! the same driver, `tributary_mqtt_core::fuzzing::drive_connection` (RELIABILITY.md test 14):
//! no panic, no broken invariant, and the corpus still reaches deep states.
//!
//! `regenerate_seed_corpus` (ignored) writes the seeds from packet values:
//! `cargo test -p tributary-mqtt-core --test fuzz_connection_corpus -- --ignored`.

// Helpers outside `#[test]` functions build the seeds; a failure there is a test failure.
#![allow(clippy::expect_used)]

use std::{fs, path::PathBuf, time::Instant};

use bytes::{Bytes, BytesMut};
use tributary_mqtt_core::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    codec::encode,
    fuzzing::drive_connection,
    packet::{
        ConnAck, Connect, Disconnect, DisconnectPropertyValues, PubResponse, Publish, Subscribe,
        SubscribeProperties, SubscriptionOptions, Unsubscribe,
    },
};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/connection")
}

/// The origin of simulated time; its value does not matter.
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

#[test]
fn connection_corpus_replays_without_violations() {
    let mut files = 0;
    let mut packets = 0;
    let mut deliveries = 0;
    let mut closed = 0;
    let mut entries: Vec<_> = fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/connection exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let data = fs::read(&path).expect("readable corpus file");
        let summary = drive_connection(start(), &data)
            .unwrap_or_else(|violation| panic!("{}: {violation}", path.display()));
        files += 1;
        packets += summary.packets;
        deliveries += summary.deliveries;
        closed += usize::from(summary.closed.is_some());
    }
    // Guards against a moved or emptied corpus passing vacuously, and checks that the seeds
    // still get past CONNECT and through the loopback broker.
    assert!(files >= 10, "only {files} corpus files");
    assert!(packets >= 60, "only {packets} packets decoded");
    assert!(deliveries >= 10, "only {deliveries} deliveries");
    assert!(closed >= 5, "only {closed} runs ended early");
}

#[test]
fn arbitrary_bytes_do_not_break_the_driver() {
    // A cheap, deterministic stand-in for the fuzzer in plain `cargo test`: mutations of the
    // seeds (byte flips, truncations).
    let mut entries: Vec<_> = fs::read_dir(corpus_dir())
        .expect("fuzz/corpus/connection exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    entries.sort();
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for path in entries {
        let seed = fs::read(&path).expect("readable corpus file");
        for _ in 0..200 {
            let mut data = seed.clone();
            for _ in 0..1 + rng % 4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if data.is_empty() {
                    break;
                }
                let at = usize::try_from(rng % data.len() as u64).expect("small");
                match rng % 3 {
                    0 => data[at] ^= 1 << (rng % 8),
                    1 => data[at] = (rng >> 8) as u8,
                    _ => data.truncate(at),
                }
            }
            if let Err(violation) = drive_connection(start(), &data) {
                panic!("{}: mutated input {data:02x?}: {violation}", path.display());
            }
        }
    }
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("non-zero")
}

fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        client_id: ByteStr::from(client_id),
        ..Connect::default()
    }
}

fn publish(topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        qos,
        topic: ByteStr::from(topic),
        packet_id: (qos > QoS::AtMostOnce).then(|| pid(id)),
        payload: Bytes::from_static(payload),
        ..Publish::default()
    }
}

fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Subscribe {
    Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties::default(),
        filters: filters
            .iter()
            .map(|(f, qos)| {
                (
                    ByteStr::from(*f),
                    SubscriptionOptions {
                        qos: *qos,
                        ..SubscriptionOptions::default()
                    },
                )
            })
            .collect(),
    }
}

fn bytes_of(version: ProtocolVersion, packets: &[Packet]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(packet, version, &mut buf).expect("seed packet encodes");
    }
    buf.to_vec()
}

fn session(version: ProtocolVersion) -> Vec<Packet> {
    vec![
        Packet::Connect(Box::new(connect(version, "fuzz"))),
        Packet::Subscribe(subscribe(
            1,
            &[
                ("t/#", QoS::ExactlyOnce),
                ("$share/g/t/+", QoS::AtLeastOnce),
            ],
        )),
        Packet::Publish(publish("t/a", QoS::AtMostOnce, 0, b"zero")),
        Packet::Publish(publish("t/b", QoS::AtLeastOnce, 1, b"one")),
        Packet::Publish(publish("t/c", QoS::ExactlyOnce, 2, b"two")),
        Packet::PubRel(PubResponse::new(pid(2))),
        // Acks for the looped-back deliveries (the server numbers them from 1).
        Packet::PubAck(PubResponse::new(pid(1))),
        Packet::PubAck(PubResponse::new(pid(2))),
        Packet::PubRec(PubResponse::new(pid(3))),
        Packet::PubComp(PubResponse::new(pid(3))),
        Packet::PingReq,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(4),
            user_properties: Vec::new(),
            filters: vec![ByteStr::from("t/#")],
        }),
        Packet::Publish(publish("t/d", QoS::AtLeastOnce, 5, b"after")),
        Packet::Disconnect(Disconnect::default()),
    ]
}

#[test]
#[ignore = "writes fuzz/corpus/connection; run by hand after changing the seeds"]
fn regenerate_seed_corpus() {
    use ProtocolVersion::{V5, V31, V311};
    let dir = corpus_dir();
    fs::create_dir_all(&dir).expect("corpus dir");
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("session-v311", bytes_of(V311, &session(V311))),
        ("session-v5", bytes_of(V5, &session(V5))),
        ("session-v31", bytes_of(V31, &session(V31))),
    ];

    // v5 with the client's limits, aliases both ways, expiry, a too-large delivery, and a
    // DISCONNECT that updates the session expiry.
    let mut c = connect(V5, "limits");
    c.properties.receive_maximum = Some(2);
    c.properties.maximum_packet_size = Some(120);
    c.properties.topic_alias_maximum = Some(2);
    c.properties.session_expiry_interval = Some(60);
    let mut sub = subscribe(1, &[("a/+", QoS::ExactlyOnce)]);
    sub.properties.subscription_identifier = Some(9);
    let mut aliased = publish("a/b", QoS::AtLeastOnce, 2, b"aliased");
    aliased.properties.topic_alias = Some(1);
    let mut by_alias = publish("", QoS::AtLeastOnce, 3, b"by alias");
    by_alias.properties.topic_alias = Some(1);
    let mut expiring = publish("a/c", QoS::ExactlyOnce, 4, b"expiring");
    expiring.properties.message_expiry_interval = Some(5);
    let big = publish("a/d", QoS::AtLeastOnce, 5, &[b'x'; 200]);
    let bye = Disconnect {
        reason: ReasonCode::SUCCESS,
        properties: DisconnectPropertyValues {
            session_expiry_interval: Some(30),
            ..DisconnectPropertyValues::default()
        }
        .into(),
    };
    seeds.push((
        "limits-v5",
        bytes_of(
            V5,
            &[
                Packet::Connect(Box::new(c)),
                Packet::Subscribe(sub),
                Packet::Publish(aliased),
                Packet::Publish(by_alias),
                Packet::Publish(expiring),
                Packet::PubRel(PubResponse::new(pid(4))),
                Packet::Publish(big),
                Packet::PubAck(PubResponse::new(pid(1))),
                Packet::PubAck(PubResponse::new(pid(2))),
                Packet::PubRec(PubResponse::new(pid(3))),
                Packet::PubComp(PubResponse::new(pid(3))),
                Packet::Disconnect(bye),
            ],
        ),
    ));

    // QoS 2 with one packet id, never released, then fresh ids past max_awaiting_rel.
    let mut flood = vec![Packet::Connect(Box::new(connect(V5, "flood")))];
    for _ in 0..5 {
        flood.push(Packet::Publish(publish(
            "q",
            QoS::ExactlyOnce,
            7,
            b"same id",
        )));
    }
    for id in 10..20 {
        flood.push(Packet::Publish(publish(
            "q",
            QoS::ExactlyOnce,
            id,
            b"new id",
        )));
    }
    seeds.push(("qos2-flood-v5", bytes_of(V5, &flood)));
    flood[0] = Packet::Connect(Box::new(connect(V311, "flood")));
    seeds.push(("qos2-flood-v311", bytes_of(V311, &flood)));

    // Protocol errors after a good CONNECT.
    let mut unknown_alias = publish("", QoS::AtMostOnce, 0, b"?");
    unknown_alias.properties.topic_alias = Some(3);
    seeds.push((
        "unknown-alias-v5",
        bytes_of(
            V5,
            &[
                Packet::Connect(Box::new(connect(V5, "a"))),
                Packet::Publish(unknown_alias),
            ],
        ),
    ));
    seeds.push((
        "second-connect-v5",
        bytes_of(
            V5,
            &[
                Packet::Connect(Box::new(connect(V5, "a"))),
                Packet::Connect(Box::new(connect(V5, "a"))),
            ],
        ),
    ));
    seeds.push((
        "connack-from-client-v5",
        bytes_of(
            V5,
            &[
                Packet::Connect(Box::new(connect(V5, "a"))),
                Packet::ConnAck(ConnAck::default()),
            ],
        ),
    ));
    let mut sys = publish("$SYS/x", QoS::AtLeastOnce, 1, b"no");
    sys.properties.payload_format_indicator = Some(true);
    let mut bad_utf8 = publish("t", QoS::AtLeastOnce, 2, b"");
    bad_utf8.payload = Bytes::from_static(&[0xff, 0xfe]);
    bad_utf8.properties.payload_format_indicator = Some(true);
    seeds.push((
        "refused-publishes-v5",
        bytes_of(
            V5,
            &[
                Packet::Connect(Box::new(connect(V5, "a"))),
                Packet::Publish(sys),
                Packet::Publish(bad_utf8),
                Packet::PubRel(PubResponse::new(pid(99))),
                Packet::PubRec(PubResponse::new(pid(98))),
                Packet::Disconnect(Disconnect {
                    reason: ReasonCode::DISCONNECT_WITH_WILL,
                    ..Disconnect::default()
                }),
            ],
        ),
    ));

    // Malformed input.
    seeds.push(("first-not-connect", vec![0xC0, 0x00]));
    seeds.push(("five-byte-varint", vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]));
    let mut truncated = bytes_of(V311, &session(V311));
    truncated.truncate(truncated.len() / 2);
    seeds.push(("truncated-session-v311", truncated));
    let mut garbage = bytes_of(V311, &[Packet::Connect(Box::new(connect(V311, "g")))]);
    garbage.extend_from_slice(&[0x30, 0x05, 0x00, 0x01, b'+', b'x', b'y', 0xF0, 0x00]);
    seeds.push(("garbage-after-connect-v311", garbage));
    let mut level = bytes_of(V311, &[Packet::Connect(Box::new(connect(V311, "l")))]);
    // Protocol level 4 -> 9: unsupported.
    level[8] = 9;
    seeds.push(("bad-protocol-level", level));

    for (name, data) in seeds {
        fs::write(dir.join(name), data).expect("write seed");
    }
}
