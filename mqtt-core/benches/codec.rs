//! Codec micro-benchmarks: PUBLISH encode and decode, MQTT 3.1.1 and 5.0, 64-byte payloads
//! (the size the benchmark suite publishes).
//!
//! Decoding runs over a buffer of 1,000 packets, as a connection's read buffer holds many
//! packets at once; throughput is reported per packet.

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use std::hint::black_box;
use tributary_mqtt_core::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS,
    codec::{Decoder, encode},
    packet::{Publish, PublishProperties},
};

const PACKETS: usize = 1_000;

fn publish(version: ProtocolVersion, qos: QoS) -> Packet {
    let mut properties = PublishProperties::default();
    if version.is_v5() {
        properties.message_expiry_interval = Some(60);
    }
    Packet::Publish(Publish {
        qos,
        topic: ByteStr::from("site/42/dev/1337/temperature"),
        packet_id: (qos != QoS::AtMostOnce).then_some(PacketId::FIRST),
        properties,
        payload: Bytes::from(vec![7u8; 64]),
        ..Publish::default()
    })
}

fn name(version: ProtocolVersion) -> &'static str {
    if version.is_v5() { "v5" } else { "v311" }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let packet = publish(version, qos);
            let label = format!("{}_qos{}", name(version), qos as u8);

            group.throughput(Throughput::Elements(1));
            let mut buf = BytesMut::with_capacity(256);
            group.bench_function(format!("encode_publish_{label}"), |b| {
                b.iter(|| {
                    buf.clear();
                    encode(black_box(&packet), version, &mut buf).ok();
                    black_box(buf.len())
                });
            });

            let mut wire = BytesMut::new();
            for _ in 0..PACKETS {
                encode(&packet, version, &mut wire).ok();
            }
            group.throughput(Throughput::Elements(PACKETS as u64));
            group.bench_function(format!("decode_publish_{label}"), |b| {
                b.iter_batched_ref(
                    || wire.clone(),
                    |buf| {
                        let mut decoder = Decoder::with_version(version, u32::MAX);
                        while let Ok(Some(packet)) = decoder.decode(buf) {
                            black_box(packet);
                        }
                    },
                    BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    codec(&mut criterion);
    criterion.final_summary();
}
