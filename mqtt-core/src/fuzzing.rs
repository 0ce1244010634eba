//! The logic of the `connection` fuzz target (RELIABILITY.md test 14: "the connection state
//! machine fed arbitrary packet sequences", the equivalent of Mosquitto's
//! `broker_fuzz_read_handle`).
//!
//! It is public, and hidden from the documentation, only because two other crates must run
//! exactly this code: the cargo-fuzz crate in `fuzz/` (outside the workspace) and the corpus
//! replay in `tests/fuzz_connection_corpus.rs`. One copy means the corpus replayed by
//! `cargo test` exercises what the fuzzer does. It is not part of the crate's API.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;

use crate::{
    Packet, QoS, ReasonCode, SubscriptionFilter,
    codec::{Decoder, encoded_len},
    connection::{Close, ConnectResult, Connection, Request},
    message::Delivery,
    mqueue::MessageQueue,
    session::{Session, SessionSubscription},
    settings::MqttSettings,
};

/// What one run did, for the replay test to check that the corpus reaches deep states.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Packets decoded from the input.
    pub packets: usize,
    /// Requests answered by the in-fuzzer broker.
    pub requests: usize,
    /// Deliveries handed to the connection.
    pub deliveries: usize,
    /// Packets the connection transmitted.
    pub transmitted: usize,
    /// How the connection ended before the input did, if it did.
    pub closed: Option<Close>,
}

/// A broken invariant: the fuzz target panics with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Small limits, so that short inputs reach them.
fn settings() -> MqttSettings {
    MqttSettings {
        max_packet_size: 64 * 1024,
        max_topic_alias: 8,
        max_inflight: 4,
        max_awaiting_rel: 4,
        await_rel_timeout: Duration::from_secs(60),
        ..MqttSettings::default()
    }
}

/// The in-fuzzer broker: accepts every CONNECT, loops publishes back to the connection's own
/// subscriptions through a bounded queue.
struct LoopbackBroker {
    subscriptions: Vec<(SubscriptionFilter, QoS)>,
    queue: MessageQueue,
}

impl LoopbackBroker {
    fn execute(
        &mut self,
        conn: &mut Connection,
        now: Instant,
        request: Request,
        settings: &MqttSettings,
    ) -> Result<(), Close> {
        match request {
            Request::Connect(_) => {
                let session = Session::new(settings.max_awaiting_rel, settings.await_rel_timeout);
                conn.handle_connect_result(
                    now,
                    ConnectResult::Accepted {
                        session,
                        session_present: false,
                    },
                )
            }
            Request::Publish(publish) => {
                let mut routed = false;
                for (filter, granted) in &self.subscriptions {
                    if filter.filter.matches(publish.message.topic.as_str()) {
                        let delivery = Delivery {
                            message: Arc::clone(&publish.message),
                            qos: publish.message.qos.min(*granted),
                            retain: false,
                            subscription_ids: Vec::new(),
                            share: None,
                        };
                        let _ = self.queue.push(delivery, true);
                        routed = true;
                    }
                }
                let reason = if routed {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                };
                conn.handle_publish_result(publish.message.qos, publish.packet_id, reason);
                Ok(())
            }
            Request::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for request in subscribe.filters {
                    match request.filter {
                        Ok(filter) => {
                            if let Some(session) = conn.session_mut() {
                                let _ = session.add_subscription(
                                    request.raw.clone(),
                                    SessionSubscription {
                                        options: request.options,
                                        subscription_id: subscribe.subscription_id,
                                    },
                                );
                            }
                            // Bounded like the session's map: one entry per filter.
                            self.subscriptions.retain(|(f, _)| *f != filter);
                            self.subscriptions.push((filter, request.options.qos));
                            codes.push(ReasonCode(request.options.qos as u8));
                        }
                        Err(code) => codes.push(code),
                    }
                }
                conn.handle_subscribe_result(subscribe.packet_id, codes);
                Ok(())
            }
            Request::Unsubscribe(unsubscribe) => {
                let codes = unsubscribe
                    .filters
                    .iter()
                    .map(|raw| {
                        let known = conn
                            .session_mut()
                            .and_then(|s| s.remove_subscription(raw))
                            .is_some();
                        if let Ok(parsed) =
                            SubscriptionFilter::parse(raw, settings.max_topic_levels)
                        {
                            self.subscriptions.retain(|(f, _)| *f != parsed);
                        }
                        if known {
                            ReasonCode::SUCCESS
                        } else {
                            ReasonCode::NO_SUBSCRIPTION_EXISTED
                        }
                    })
                    .collect();
                conn.handle_unsubscribe_result(unsubscribe.packet_id, codes);
                Ok(())
            }
        }
    }

    fn pump(&mut self, conn: &mut Connection, now: Instant, summary: &mut Summary) {
        while let Some(front) = self.queue.front() {
            if !conn.can_deliver(front.qos) {
                break;
            }
            let Some(delivery) = self.queue.pop() else {
                break;
            };
            let _ = conn.handle_delivery(now, delivery);
            summary.deliveries += 1;
        }
    }
}

/// Takes what the connection transmitted and checks it as a client would: every byte decodes
/// in the connection's version, and no packet exceeds the client's Maximum Packet Size.
fn check_transmit(
    conn: &mut Connection,
    client_max_packet_size: u32,
    summary: &mut Summary,
) -> Result<(), Violation> {
    let mut buf = BytesMut::from(conn.transmit());
    conn.advance_transmit(buf.len());
    let version = conn.version();
    let mut decoder = Decoder::with_version(version, u32::MAX);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                summary.transmitted += 1;
                if matches!(packet, Packet::Publish(_)) {
                    let size = encoded_len(&packet, version);
                    if u32::try_from(size).map_or(true, |s| s > client_max_packet_size) {
                        return Err(Violation(format!(
                            "sent a {size}-byte PUBLISH to a client accepting {client_max_packet_size}"
                        )));
                    }
                }
            }
            Ok(None) if buf.is_empty() => return Ok(()),
            Ok(None) => return Err(Violation("transmitted a partial packet".to_owned())),
            Err(error) => {
                return Err(Violation(format!(
                    "transmitted bytes a {version:?} client cannot decode: {error}"
                )));
            }
        }
    }
}

fn check_state(conn: &Connection, settings: &MqttSettings) -> Result<(), Violation> {
    if let Some(session) = conn.session() {
        if session.inflight_len() > usize::from(settings.max_inflight) {
            return Err(Violation(format!(
                "{} messages in flight, window {}",
                session.inflight_len(),
                settings.max_inflight
            )));
        }
        if session.awaiting_rel_len() > settings.max_awaiting_rel {
            return Err(Violation(format!(
                "{} QoS 2 ids awaiting PUBREL, max {}",
                session.awaiting_rel_len(),
                settings.max_awaiting_rel
            )));
        }
    }
    Ok(())
}

/// Feeds `data`, the bytes a client sends, to a server [`Connection`] accepted at `start`,
/// answering its requests with a loopback broker (CONNECT accepted, publishes delivered back
/// to the connection's own matching subscriptions, subscriptions granted).
///
/// The bytes arrive in chunks of 1 to 64 bytes (sizes from a generator seeded by the input
/// length), so packets are split across reads. Simulated time advances after each packet by
/// its size in seconds, modulo 32, so the fuzzer reaches the keep-alive, `await_rel_timeout`
/// and message-expiry deadlines by choosing packet sizes; due timeouts run before each packet.
///
/// Returns a [`Violation`] when an invariant breaks: the transmitted bytes do not decode, a
/// PUBLISH exceeds the client's Maximum Packet Size, or the inflight or awaiting-PUBREL state
/// exceeds its bound. Panics inside the state machine are the fuzzer's to find.
pub fn drive_connection(start: Instant, data: &[u8]) -> Result<Summary, Violation> {
    let settings = settings();
    let mut run = Run {
        conn: Connection::new(Arc::new(settings.clone()), start, 1),
        broker: LoopbackBroker {
            subscriptions: Vec::new(),
            queue: MessageQueue::new(16, true),
        },
        summary: Summary::default(),
        client_max_packet_size: u32::MAX,
        now: start,
        settings,
    };
    match run.feed(data) {
        Ok(()) => {
            // The input ended: a day passes, then the socket closes.
            let later = run.now + Duration::from_secs(86_400);
            if run.conn.handle_timeout(later).is_ok() {
                let _ = run.conn.handle_socket_closed();
            }
        }
        Err(Stop::Closed(close)) => run.summary.closed = Some(close),
        Err(Stop::Violation(violation)) => return Err(violation),
    }
    check_state(&run.conn, &run.settings)?;
    check_transmit(&mut run.conn, run.client_max_packet_size, &mut run.summary)?;
    Ok(run.summary)
}

enum Stop {
    Closed(Close),
    Violation(Violation),
}

impl From<Close> for Stop {
    fn from(close: Close) -> Self {
        Self::Closed(close)
    }
}

impl From<Violation> for Stop {
    fn from(violation: Violation) -> Self {
        Self::Violation(violation)
    }
}

struct Run {
    conn: Connection,
    broker: LoopbackBroker,
    summary: Summary,
    client_max_packet_size: u32,
    now: Instant,
    settings: MqttSettings,
}

impl Run {
    fn feed(&mut self, data: &[u8]) -> Result<(), Stop> {
        let mut input = BytesMut::new();
        let mut rng = u64::try_from(data.len()).unwrap_or(0) ^ 0x9E37_79B9_7F4A_7C15;
        let mut rest = data;
        while !rest.is_empty() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let take = usize::try_from(1 + rng % 64).unwrap_or(1).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            input.extend_from_slice(chunk);
            while self.step(&mut input)? {}
        }
        Ok(())
    }

    /// Handles the next complete packet of `input`; false when there is none yet.
    fn step(&mut self, input: &mut BytesMut) -> Result<bool, Stop> {
        let before = input.len();
        let Some(packet) = self.conn.decode(input)? else {
            return Ok(false);
        };
        self.summary.packets += 1;
        let now = self.now;
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.conn.handle_timeout(now)?;
        }
        if let Packet::Connect(connect) = &packet {
            if !self.conn.is_connected() {
                if let Some(max) = connect.properties.maximum_packet_size {
                    self.client_max_packet_size = max;
                }
            }
        }
        if let Some(request) = self.conn.handle_packet(now, packet)? {
            self.summary.requests += 1;
            self.broker
                .execute(&mut self.conn, now, request, &self.settings)?;
        }
        self.broker.pump(&mut self.conn, now, &mut self.summary);
        check_state(&self.conn, &self.settings)?;
        check_transmit(
            &mut self.conn,
            self.client_max_packet_size,
            &mut self.summary,
        )?;
        let consumed = before - input.len();
        self.now += Duration::from_secs(u64::try_from(consumed % 32).unwrap_or(0));
        Ok(true)
    }
}
