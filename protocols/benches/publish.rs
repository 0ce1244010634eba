//! The publish path, end to end inside one process: a publisher's PUBLISH bytes in, every
//! subscriber's PUBLISH bytes out.
//!
//! It runs through [`serve_mqtt`] over in-memory duplex streams rather than calling
//! `Broker::publish` (which is crate-private): that measures what a message really costs the
//! broker (decode, the connection state machine, the route lookup, one mailbox push per
//! subscriber, the subscriber's batched encode and write) without adding a public API whose
//! only user would be this bench, and without sockets, whose cost the load tool measures.
//!
//! Each iteration publishes a burst of 100 QoS 0 messages (64-byte payloads) to one topic
//! and waits until every subscriber has read all of them; the burst stays below the default
//! mailbox length, so nothing is dropped. Throughput is in deliveries.

// A bench measures wall time; its setup failing is a broken bench, not a result.
#![allow(clippy::disallowed_methods, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    sync::Notify,
};
use tributary_mqtt_core::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS,
    codec::{encode, encoded_len},
    packet::{Connect, Publish, Subscribe, SubscribeProperties, SubscriptionOptions},
};
use tributary_protocols::{Broker, ConnectionInfo, Transport, serve_mqtt};

const BURST: u64 = 100;
const TOPIC: &str = "bench/publish/path";
const V: ProtocolVersion = ProtocolVersion::V311;
/// CONNACK (4 bytes) and SUBACK with one code (5 bytes), read before counting.
const HANDSHAKE: usize = 9;

fn wire(packets: &[Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(packet, V, &mut buf).expect("encode");
    }
    buf
}

fn connect(id: &str) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: V,
        clean_start: true,
        client_id: ByteStr::from(id),
        ..Connect::default()
    }))
}

/// Opens a connection to the broker through an in-memory stream.
fn open(broker: &Broker, n: u16) -> DuplexStream {
    let (client, server) = tokio::io::duplex(256 * 1024);
    let info = ConnectionInfo::new(
        SocketAddr::from(([127, 0, 0, 1], n)),
        Arc::from("bench:duplex"),
        // An in-memory stream, which the driver serves as it serves TCP.
        Transport::Tcp,
    );
    tokio::spawn(serve_mqtt(server, info, broker.clone()));
    client
}

struct Setup {
    publisher: DuplexStream,
    burst: BytesMut,
    received: Arc<AtomicU64>,
    notify: Arc<Notify>,
    per_burst: u64,
    _broker: Broker,
}

async fn setup(subscribers: u16) -> Setup {
    let broker = Broker::with_defaults();
    let received = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(Notify::new());
    for n in 0..subscribers {
        let mut stream = open(&broker, n);
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: PacketId::FIRST,
            properties: SubscribeProperties::default(),
            filters: vec![(ByteStr::from(TOPIC), SubscriptionOptions::default())],
        });
        let hello = wire(&[connect(&format!("sub{n}")), subscribe]);
        stream.write_all(&hello).await.expect("subscribe");
        let mut handshake = [0; HANDSHAKE];
        stream.read_exact(&mut handshake).await.expect("suback");
        let (received, notify) = (Arc::clone(&received), Arc::clone(&notify));
        tokio::spawn(async move {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                received.fetch_add(n as u64, Ordering::Relaxed);
                notify.notify_one();
            }
        });
    }
    let mut publisher = open(&broker, u16::MAX);
    publisher
        .write_all(&wire(&[connect("pub")]))
        .await
        .expect("connect");
    let mut connack = [0; 4];
    publisher.read_exact(&mut connack).await.expect("connack");
    let publish = Packet::Publish(Publish {
        qos: QoS::AtMostOnce,
        topic: ByteStr::from(TOPIC),
        payload: Bytes::from(vec![7u8; 64]),
        ..Publish::default()
    });
    let size = encoded_len(&publish, V) as u64;
    let burst = wire(&vec![publish; BURST as usize]);
    Setup {
        publisher,
        burst,
        received,
        notify,
        per_burst: size * BURST * u64::from(subscribers),
        _broker: broker,
    }
}

impl Setup {
    /// Publishes `bursts` bursts, each waited for, and returns the time taken.
    async fn run(&mut self, bursts: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..bursts {
            let target = self.received.load(Ordering::Relaxed) + self.per_burst;
            self.publisher
                .write_all(&self.burst)
                .await
                .expect("publish");
            while self.received.load(Ordering::Relaxed) < target {
                let waited = tokio::time::timeout(Duration::from_secs(10), self.notify.notified());
                if waited.await.is_err() {
                    panic!("deliveries stopped arriving: a message was dropped");
                }
            }
        }
        start.elapsed()
    }
}

fn publish_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("publish_path");
    for subscribers in [1u16, 10, 100] {
        let mut setup = runtime.block_on(setup(subscribers));
        group.throughput(Throughput::Elements(BURST * u64::from(subscribers)));
        group.bench_function(format!("qos0_64B_to_{subscribers}_subscribers"), |b| {
            b.iter_custom(|bursts| runtime.block_on(setup.run(bursts)));
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    publish_path(&mut criterion);
    criterion.final_summary();
}
