//! Random sequences of CONNECT / SUBSCRIBE / UNSUBSCRIBE / PUBLISH / DISCONNECT / reconnect
//! over a few clients, mixing shared (`$share/g/r/...`) and normal subscriptions on the same
//! root (RELIABILITY.md test 15, Mosquitto CVE-2024-8376).
//!
//! After every publish, what each client received is checked against a simple model; after a
//! reconnect, what its session queued while it was offline. At the end every client
//! unsubscribes or drops its session, and the route table must be empty, down to its nodes.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;

use super::harness::{World, connect, disconnect, publish, subscribe};
use crate::{Packet, ProtocolVersion, QoS, ReasonCode, settings::MqttSettings};

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V5,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];
const FILTERS: [&str; 7] = [
    "r/a",
    "r/+",
    "r/#",
    "$share/g/r/a",
    "$share/g/r/#",
    "$share/h/r/+",
    "$share/g/r/+",
];
const TOPICS: [&str; 4] = ["r/a", "r/b", "r", "r/a/x"];

#[derive(Debug, Clone)]
enum Op {
    Connect { c: usize, clean: bool },
    Subscribe { c: usize, f: usize, qos: QoS },
    Unsubscribe { c: usize, f: usize },
    Publish { c: usize, t: usize, qos: QoS },
    Disconnect { c: usize },
    DropSocket { c: usize },
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..VERSIONS.len();
    prop_oneof![
        2 => (c.clone(), any::<bool>()).prop_map(|(c, clean)| Op::Connect { c, clean }),
        3 => (c.clone(), 0..FILTERS.len(), qos()).prop_map(|(c, f, qos)| Op::Subscribe { c, f, qos }),
        2 => (c.clone(), 0..FILTERS.len()).prop_map(|(c, f)| Op::Unsubscribe { c, f }),
        4 => (c.clone(), 0..TOPICS.len(), qos()).prop_map(|(c, t, qos)| Op::Publish { c, t, qos }),
        1 => c.clone().prop_map(|c| Op::Disconnect { c }),
        1 => c.prop_map(|c| Op::DropSocket { c }),
    ]
}

/// A naive topic filter match, independent of the route table's.
fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `(share group, filter proper)` of a subscription filter.
fn split_share(raw: &str) -> (Option<&str>, &str) {
    match raw.strip_prefix("$share/") {
        Some(rest) => {
            let (group, filter) = rest.split_once('/').expect("share group");
            (Some(group), filter)
        }
        None => (None, raw),
    }
}

#[derive(Debug, Default)]
struct ModelClient {
    connected: bool,
    /// A session exists (online, or stored while offline).
    session: bool,
    persistent: bool,
    subs: BTreeMap<usize, QoS>,
    /// Messages the session must get on reconnect (normal subscriptions, QoS > 0).
    queued: BTreeSet<u32>,
    /// Messages it may get (a share group may have picked it while offline).
    maybe_queued: BTreeSet<u32>,
}

struct Run {
    world: World,
    model: Vec<ModelClient>,
    next_message: u32,
    next_packet_id: u16,
}

impl Run {
    fn new() -> Self {
        let mut world = World::new(MqttSettings::default());
        for version in VERSIONS {
            world.add_client(version);
        }
        Self {
            world,
            model: VERSIONS.iter().map(|_| ModelClient::default()).collect(),
            next_message: 0,
            next_packet_id: 0,
        }
    }

    fn packet_id(&mut self) -> u16 {
        self.next_packet_id = self.next_packet_id % 60_000 + 1;
        self.next_packet_id
    }

    /// Reads everything client `c` was sent, acknowledging as a well-behaved client does,
    /// until nothing more comes. Returns the messages received (message number, QoS) and the
    /// other packets.
    fn drain(&mut self, c: usize) -> (Vec<(u32, QoS)>, Vec<Packet>) {
        let mut messages = Vec::new();
        let mut others = Vec::new();
        loop {
            let packets = self.world.recv(c);
            if packets.is_empty() {
                return (messages, others);
            }
            for packet in packets {
                let reply = match &packet {
                    Packet::Publish(p) => {
                        let number = std::str::from_utf8(&p.payload)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .expect("payload is a message number");
                        messages.push((number, p.qos));
                        match (p.qos, p.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => {
                                Some(Packet::PubAck(crate::packet::PubResponse::new(id)))
                            }
                            (QoS::ExactlyOnce, Some(id)) => {
                                Some(Packet::PubRec(crate::packet::PubResponse::new(id)))
                            }
                            _ => None,
                        }
                    }
                    Packet::PubRec(r) => {
                        Some(Packet::PubRel(crate::packet::PubResponse::new(r.packet_id)))
                    }
                    Packet::PubRel(r) => Some(Packet::PubComp(crate::packet::PubResponse::new(
                        r.packet_id,
                    ))),
                    _ => None,
                };
                if let Some(reply) = reply {
                    self.world.send(c, reply).expect("acks are accepted");
                }
                others.push(packet);
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Connect { c, clean } => self.connect(c, clean),
            Op::Subscribe { c, f, qos } => {
                if !self.model[c].connected {
                    return;
                }
                let id = self.packet_id();
                let suback = self.world.subscribe(c, subscribe(id, &[(FILTERS[f], qos)]));
                assert_eq!(suback.reason_codes, [ReasonCode(qos as u8)]);
                self.model[c].subs.insert(f, qos);
            }
            Op::Unsubscribe { c, f } => {
                if !self.model[c].connected {
                    return;
                }
                self.unsubscribe(c, &[f]);
            }
            Op::Publish { c, t, qos } => self.publish(c, t, qos),
            Op::Disconnect { c } | Op::DropSocket { c } => {
                if !self.model[c].connected {
                    return;
                }
                if matches!(op, Op::Disconnect { .. }) {
                    let close = self
                        .world
                        .send(c, disconnect(ReasonCode::SUCCESS))
                        .expect_err("DISCONNECT closes");
                    assert!(!close.publish_will);
                } else {
                    self.world.drop_socket(c);
                }
                let model = &mut self.model[c];
                model.connected = false;
                if !model.persistent {
                    *model = ModelClient::default();
                }
            }
        }
    }

    fn unsubscribe(&mut self, c: usize, filters: &[usize]) {
        let raw: Vec<&str> = filters.iter().map(|f| FILTERS[*f]).collect();
        let unsuback = self.world.unsubscribe(c, &raw);
        let expected: Vec<ReasonCode> = if VERSIONS[c].is_v5() {
            filters
                .iter()
                .map(|f| {
                    if self.model[c].subs.contains_key(f) {
                        ReasonCode::SUCCESS
                    } else {
                        ReasonCode::NO_SUBSCRIPTION_EXISTED
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        assert_eq!(unsuback.reason_codes, expected);
        for f in filters {
            self.model[c].subs.remove(f);
        }
    }

    fn connect(&mut self, c: usize, clean: bool) {
        if self.model[c].connected {
            return;
        }
        let mut packet = connect(&format!("client-{c}"));
        packet.clean_start = clean;
        if !clean && VERSIONS[c].is_v5() {
            packet.properties.session_expiry_interval = Some(600);
        }
        let connack = self.world.connect(c, packet);
        assert_eq!(connack.reason, ReasonCode::SUCCESS);
        let model = &mut self.model[c];
        let resumed = !clean && model.session;
        assert_eq!(connack.session_present, resumed, "client {c}");
        if !resumed {
            *model = ModelClient::default();
        }
        model.connected = true;
        model.session = true;
        model.persistent = !clean;
        let queued = std::mem::take(&mut model.queued);
        let maybe = std::mem::take(&mut model.maybe_queued);
        let (messages, _) = self.drain(c);
        let got: BTreeSet<u32> = messages.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            got.len(),
            messages.len(),
            "duplicates on resume: {messages:?}"
        );
        assert!(
            queued.is_subset(&got),
            "client {c} lost queued messages: expected {queued:?}, got {got:?}"
        );
        assert!(
            got.iter().all(|n| queued.contains(n) || maybe.contains(n)),
            "client {c} got unexpected messages: {got:?}, expected {queued:?} or {maybe:?}"
        );
    }

    fn publish(&mut self, c: usize, t: usize, qos: QoS) {
        if !self.model[c].connected {
            return;
        }
        let number = self.next_message;
        self.next_message += 1;
        let topic = TOPICS[t];
        let id = self.packet_id();
        let mut packet = publish(topic, qos, id, b"");
        packet.payload = Bytes::from(number.to_string());
        self.world.send(c, packet).expect("PUBLISH accepted");

        let mut received: Vec<Vec<(u32, QoS)>> = vec![Vec::new(); VERSIONS.len()];
        let mut publisher_acks = Vec::new();
        for (k, slot) in received.iter_mut().enumerate() {
            if self.model[k].connected {
                let (messages, others) = self.drain(k);
                *slot = messages;
                if k == c {
                    publisher_acks = others;
                }
            }
        }
        let expected_ack = match qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        };
        let acks = publisher_acks
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_)
                )
            })
            .count();
        assert_eq!(acks, expected_ack, "publisher acks: {publisher_acks:?}");

        // The model: normal subscriptions deliver to each subscriber once; each matching
        // (share group, filter) delivers to exactly one of its members.
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for (k, model) in self.model.iter_mut().enumerate() {
            if !model.session {
                continue;
            }
            let mut normal: Option<QoS> = None;
            let mut in_group = false;
            let mut best = None::<QoS>;
            for (&f, &granted) in &model.subs {
                let (group, filter) = split_share(FILTERS[f]);
                if !filter_matches(filter, topic) {
                    continue;
                }
                let q = qos.min(granted);
                best = best.max(Some(q));
                match group {
                    None => normal = normal.max(Some(q)),
                    Some(group) => {
                        in_group = true;
                        groups.entry((group, filter)).or_default().push(k);
                    }
                }
            }
            let copies: Vec<&(u32, QoS)> =
                received[k].iter().filter(|(n, _)| *n == number).collect();
            assert!(
                received[k].iter().all(|(n, _)| *n == number),
                "client {k} got an old message: {:?}",
                received[k]
            );
            if model.connected {
                assert!(copies.len() <= 1, "client {k} got {copies:?}");
                if let Some(normal) = normal {
                    assert_eq!(copies.len(), 1, "client {k} missed message {number}");
                    let got = copies[0].1;
                    assert!(
                        got >= normal && Some(got) <= best,
                        "client {k}: QoS {got:?}, normal {normal:?}, best {best:?}"
                    );
                } else if !copies.is_empty() {
                    assert!(
                        in_group,
                        "client {k} got message {number} with no subscription"
                    );
                    assert!(Some(copies[0].1) <= best);
                }
            } else {
                assert!(copies.is_empty());
                if normal.is_some_and(|q| q > QoS::AtMostOnce) {
                    model.queued.insert(number);
                }
                if in_group {
                    model.maybe_queued.insert(number);
                }
            }
        }
        for ((group, filter), members) in &groups {
            if members.iter().any(|k| !self.model[*k].connected) {
                continue;
            }
            let receivers = members
                .iter()
                .filter(|k| received[**k].iter().any(|(n, _)| *n == number))
                .count();
            assert!(
                receivers >= 1,
                "share group {group} on {filter} ({members:?}) delivered message {number} to nobody"
            );
        }
    }

    /// Every client ends its session: half unsubscribe everything first, and each then
    /// connects with a clean session and disconnects.
    fn finish(&mut self) {
        for c in 0..VERSIONS.len() {
            if self.model[c].connected && c % 2 == 0 {
                let filters: Vec<usize> = self.model[c].subs.keys().copied().collect();
                if !filters.is_empty() {
                    self.unsubscribe(c, &filters);
                }
            }
            if self.model[c].connected {
                self.apply(&Op::Disconnect { c });
            }
            self.apply(&Op::Connect { c, clean: true });
            self.apply(&Op::Disconnect { c });
        }
        let broker = &self.world.broker;
        assert_eq!(broker.routes.len(), 0, "stale routes");
        assert_eq!(broker.routes.node_count(), 0, "leaked route nodes");
        assert!(broker.stored.is_empty());
        assert!(broker.mailboxes.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sequences_match_the_model_and_leave_no_routes(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut run = Run::new();
        for op in &ops {
            run.apply(op);
        }
        run.finish();
    }
}

/// The shape of the CVE-2024-8376 proof of concept: shared and normal subscriptions on one
/// root, unsubscribed in both orders, with a reconnect between.
#[test]
fn shared_and_normal_on_one_root_then_reconnect() {
    let mut run = Run::new();
    let script = [
        Op::Connect { c: 0, clean: false },
        Op::Connect { c: 1, clean: true },
        Op::Subscribe {
            c: 0,
            f: 4,
            qos: QoS::AtLeastOnce,
        },
        Op::Subscribe {
            c: 0,
            f: 2,
            qos: QoS::AtLeastOnce,
        },
        Op::Subscribe {
            c: 1,
            f: 4,
            qos: QoS::ExactlyOnce,
        },
        Op::Publish {
            c: 1,
            t: 0,
            qos: QoS::AtLeastOnce,
        },
        Op::Unsubscribe { c: 0, f: 2 },
        Op::Publish {
            c: 1,
            t: 1,
            qos: QoS::ExactlyOnce,
        },
        Op::DropSocket { c: 0 },
        Op::Publish {
            c: 1,
            t: 2,
            qos: QoS::AtLeastOnce,
        },
        Op::Connect { c: 0, clean: false },
        Op::Unsubscribe { c: 0, f: 4 },
        Op::Subscribe {
            c: 0,
            f: 4,
            qos: QoS::AtMostOnce,
        },
        Op::Unsubscribe { c: 1, f: 4 },
        Op::Publish {
            c: 0,
            t: 0,
            qos: QoS::ExactlyOnce,
        },
    ];
    for op in &script {
        run.apply(op);
    }
    run.finish();
}
