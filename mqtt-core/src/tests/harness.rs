//! The simulated world: [`World`] owns a minimal [`Broker`] and N [`Client`]s, each owning a
//! [`Connection`], and a simulated clock.
//!
//! The broker answers requests the way `tributary-protocols`' driver and broker do, in the
//! fewest lines that keep the semantics the tests rely on: connects get a new or a stored
//! session; publishes are routed through a [`RouteTable`] into the subscribers'
//! [`MessageQueue`]s (one copy per subscriber, overlapping subscriptions merged, No Local
//! honoured); subscriptions update the table and the session; a connection's end publishes
//! the Will when the [`Close`] says so and keeps or discards the session by its expiry.
//!
//! After every input the world "pumps" like the driver: each connected client's queue is
//! handed to [`Connection::handle_delivery`] while [`Connection::can_deliver`] allows.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};

use crate::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode, RouteTable, ShareStrategy,
    SubscriptionFilter,
    codec::{Decoder, encode},
    connection::{
        Close, ConnectRequest, ConnectResult, Connection, DeliveryOutcome, Request, WillMessage,
    },
    message::{Delivery, Message},
    mqueue::MessageQueue,
    packet::{
        ConnAck, Connect, Disconnect, PubResponse, Publish, SubAck, Subscribe, SubscribeProperties,
        SubscriptionOptions, UnsubAck, Unsubscribe,
    },
    session::{Session, SessionSubscription},
    settings::MqttSettings,
};

/// Simulated time: a fixed origin plus an offset that only tests move.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    offset: Duration,
}

impl Clock {
    fn new() -> Self {
        // The one real clock read in these tests: an origin for the simulated time. Nothing
        // depends on its value.
        #[allow(clippy::disallowed_methods)]
        let base = Instant::now();
        Self {
            base,
            offset: Duration::ZERO,
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.base + self.offset
    }
}

/// What a subscription carries in the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) options: SubscriptionOptions,
    pub(crate) subscription_id: Option<u32>,
}

/// A minimal broker: route table, one queue per session, stored offline sessions.
pub(crate) struct Broker {
    pub(crate) settings: Arc<MqttSettings>,
    pub(crate) clock: Clock,
    /// Keyed by client id: a session's identity in this world.
    pub(crate) routes: RouteTable<ByteStr, Route>,
    pub(crate) mailboxes: HashMap<ByteStr, MessageQueue>,
    /// Persistent sessions whose client is offline.
    pub(crate) stored: HashMap<ByteStr, Session>,
    /// Every CONNECT the connections asked the broker to carry out, in order.
    pub(crate) connects: Vec<ConnectRequest>,
    /// Every message routed (publishes and Wills), in order.
    pub(crate) routed: Vec<Arc<Message>>,
    /// Wills published, in order.
    pub(crate) wills: Vec<WillMessage>,
    /// Refuse the next CONNECT with this code.
    pub(crate) refuse_next_connect: Option<ReasonCode>,
    pub(crate) max_mqueue_len: usize,
    next_conn_id: u64,
}

impl Broker {
    fn new(settings: MqttSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            clock: Clock::new(),
            routes: RouteTable::new(ShareStrategy::RoundRobin),
            mailboxes: HashMap::new(),
            stored: HashMap::new(),
            connects: Vec::new(),
            routed: Vec::new(),
            wills: Vec::new(),
            refuse_next_connect: None,
            max_mqueue_len: 1000,
            next_conn_id: 1,
        }
    }

    fn new_session(&self) -> Session {
        Session::new(
            self.settings.max_awaiting_rel,
            self.settings.await_rel_timeout,
        )
    }

    /// Carries out a request and answers the connection, as the driver's `execute` does.
    fn execute(&mut self, conn: &mut Connection, request: Request) -> Result<(), Close> {
        let now = self.clock.now();
        match request {
            Request::Connect(request) => {
                self.connects.push((*request).clone());
                if let Some(code) = self.refuse_next_connect.take() {
                    return conn.handle_connect_result(now, ConnectResult::Refused(code));
                }
                let id = request.client_id.clone();
                let (session, session_present) = match self.stored.remove(&id) {
                    Some(session) if !request.clean_start => (session, true),
                    stored => {
                        if let Some(old) = stored {
                            self.discard(&id, &old);
                        }
                        (self.new_session(), false)
                    }
                };
                let max_len = self.max_mqueue_len;
                self.mailboxes
                    .entry(id)
                    .or_insert_with(|| MessageQueue::new(max_len, false));
                conn.handle_connect_result(
                    now,
                    ConnectResult::Accepted {
                        session,
                        session_present,
                    },
                )
            }
            Request::Publish(publish) => {
                let qos = publish.message.qos;
                let reason = if self.route(&publish.message) == 0 {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                } else {
                    ReasonCode::SUCCESS
                };
                conn.handle_publish_result(qos, publish.packet_id, reason);
                Ok(())
            }
            Request::Subscribe(subscribe) => {
                let mut codes = Vec::new();
                let key = conn.client_id().clone();
                if let Some(session) = conn.session_mut() {
                    for request in subscribe.filters {
                        let parsed = match request.filter {
                            Ok(parsed) => parsed,
                            Err(code) => {
                                codes.push(code);
                                continue;
                            }
                        };
                        let route = Route {
                            options: request.options,
                            subscription_id: subscribe.subscription_id,
                        };
                        let _ = self.routes.subscribe(
                            &parsed.filter,
                            parsed.share_group.as_ref(),
                            key.clone(),
                            route,
                        );
                        let _ = session.add_subscription(
                            request.raw,
                            SessionSubscription {
                                options: request.options,
                                subscription_id: subscribe.subscription_id,
                            },
                        );
                        codes.push(ReasonCode(request.options.qos as u8));
                    }
                } else {
                    codes = vec![ReasonCode::UNSPECIFIED_ERROR; subscribe.filters.len()];
                }
                conn.handle_subscribe_result(subscribe.packet_id, codes);
                Ok(())
            }
            Request::Unsubscribe(unsubscribe) => {
                let max_levels = self.settings.max_topic_levels;
                let key = conn.client_id().clone();
                let codes = match conn.session_mut() {
                    Some(session) => unsubscribe
                        .filters
                        .iter()
                        .map(|raw| match SubscriptionFilter::parse(raw, max_levels) {
                            Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                            Ok(parsed) => {
                                let known = session.remove_subscription(raw).is_some();
                                let removed = self
                                    .routes
                                    .unsubscribe(&parsed.filter, parsed.share_group.as_ref(), &key)
                                    .is_some();
                                assert_eq!(known, removed, "session and routes disagree");
                                if removed {
                                    ReasonCode::SUCCESS
                                } else {
                                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                                }
                            }
                        })
                        .collect(),
                    None => vec![ReasonCode::UNSPECIFIED_ERROR; unsubscribe.filters.len()],
                };
                conn.handle_unsubscribe_result(unsubscribe.packet_id, codes);
                Ok(())
            }
        }
    }

    /// Routes a message into the matching sessions' queues; returns how many sessions got it.
    pub(crate) fn route(&mut self, message: &Arc<Message>) -> usize {
        self.routed.push(Arc::clone(message));
        let mut matches = Vec::new();
        self.routes
            .matches(&message.topic, &message.publisher, &mut matches);
        // One copy per session: the highest granted QoS, every subscription identifier.
        let mut merged: BTreeMap<ByteStr, (QoS, bool, Vec<u32>)> = BTreeMap::new();
        for (key, route) in matches {
            if route.options.no_local && key == message.publisher {
                continue;
            }
            let qos = message.qos.min(route.options.qos);
            let entry = merged
                .entry(key)
                .or_insert((QoS::AtMostOnce, false, Vec::new()));
            entry.0 = entry.0.max(qos);
            entry.1 |= route.options.retain_as_published && message.retain;
            entry.2.extend(route.subscription_id);
        }
        let mut queued = 0;
        for (key, (qos, retain, subscription_ids)) in merged {
            let online = !self.stored.contains_key(&key);
            if let Some(queue) = self.mailboxes.get_mut(&key) {
                let delivery = Delivery {
                    message: Arc::clone(message),
                    qos,
                    retain,
                    subscription_ids,
                    share: None,
                };
                let _ = queue.push(delivery, online);
                queued += 1;
            }
        }
        queued
    }

    /// Forgets a session: its routes and its queue.
    fn discard(&mut self, key: &ByteStr, session: &Session) {
        for raw in session.subscriptions().keys() {
            let parsed = SubscriptionFilter::parse(raw, self.settings.max_topic_levels)
                .expect("stored filters parse");
            let removed = self
                .routes
                .unsubscribe(&parsed.filter, parsed.share_group.as_ref(), key);
            assert!(removed.is_some(), "session filter {raw} had no route");
        }
        self.mailboxes.remove(key);
    }

    /// The connection ended: publish the Will if due, keep or discard the session.
    fn detach(&mut self, conn: &mut Connection, close: Close) {
        if let Some(will) = conn.take_will().filter(|_| close.publish_will) {
            self.route(&Arc::new(will.message.clone()));
            self.wills.push(will);
        }
        let Some(session) = conn.take_session() else {
            return;
        };
        let key = conn.client_id().clone();
        if conn.session_expiry().is_zero() {
            self.discard(&key, &session);
        } else {
            self.stored.insert(key, session);
        }
    }
}

/// One simulated client: its version, its connection (if opened) and what it has read.
pub(crate) struct Client {
    pub(crate) version: ProtocolVersion,
    conn: Option<Connection>,
    input: BytesMut,
    decoder: Decoder,
    /// How the current connection ended, if it did.
    pub(crate) closed: Option<Close>,
    /// Outcomes of [`Connection::handle_delivery`] on the current connection.
    pub(crate) outcomes: Vec<DeliveryOutcome>,
    /// Packets received but not yet returned by [`World::recv`].
    pending: Vec<Packet>,
}

impl Client {
    fn conn_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("the client has a connection")
    }

    /// Feeds bytes as the driver does: decode, handle, carry out the request, repeat.
    fn feed(&mut self, broker: &mut Broker, bytes: &[u8]) -> Result<(), Close> {
        assert!(
            self.closed.is_none(),
            "fed a closed connection ({:?})",
            self.closed
        );
        self.input.extend_from_slice(bytes);
        let now = broker.clock.now();
        let conn = self.conn.as_mut().expect("the client has a connection");
        loop {
            let step = (|| {
                let Some(packet) = conn.decode(&mut self.input)? else {
                    return Ok(false);
                };
                if let Some(request) = conn.handle_packet(now, packet)? {
                    broker.execute(conn, request)?;
                }
                Ok(true)
            })();
            match step {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(close) => {
                    broker.detach(conn, close);
                    self.closed = Some(close);
                    return Err(close);
                }
            }
        }
    }

    /// Everything the connection transmitted since the last call, decoded client side.
    fn recv(&mut self) -> Vec<Packet> {
        let Some(conn) = self.conn.as_mut() else {
            return Vec::new();
        };
        let mut buf = BytesMut::from(conn.transmit());
        conn.advance_transmit(buf.len());
        let mut packets = std::mem::take(&mut self.pending);
        while let Some(packet) = self
            .decoder
            .decode(&mut buf)
            .expect("the server's bytes decode")
        {
            packets.push(packet);
        }
        assert!(buf.is_empty(), "a partial packet was transmitted");
        packets
    }
}

/// The simulated world.
pub(crate) struct World {
    pub(crate) broker: Broker,
    pub(crate) clients: Vec<Client>,
}

impl World {
    pub(crate) fn new(settings: MqttSettings) -> Self {
        Self {
            broker: Broker::new(settings),
            clients: Vec::new(),
        }
    }

    /// A world with default settings and one client of `version`.
    pub(crate) fn with_client(version: ProtocolVersion) -> Self {
        Self::with_settings(MqttSettings::default(), version)
    }

    /// A world with `settings` and one client of `version`.
    pub(crate) fn with_settings(settings: MqttSettings, version: ProtocolVersion) -> Self {
        let mut world = Self::new(settings);
        world.add_client(version);
        world
    }

    /// Adds a client (no connection yet); returns its index.
    pub(crate) fn add_client(&mut self, version: ProtocolVersion) -> usize {
        self.clients.push(Client {
            version,
            conn: None,
            input: BytesMut::new(),
            decoder: Decoder::with_version(version, u32::MAX),
            closed: None,
            outcomes: Vec::new(),
            pending: Vec::new(),
        });
        self.clients.len() - 1
    }

    pub(crate) fn now(&self) -> Instant {
        self.broker.clock.now()
    }

    /// Moves time forward, runs every due timeout, then delivers what became deliverable.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.broker.clock.offset += by;
        let now = self.now();
        for client in &mut self.clients {
            let Some(conn) = client.conn.as_mut() else {
                continue;
            };
            if client.closed.is_some() || conn.poll_timeout().is_none_or(|at| at > now) {
                continue;
            }
            if let Err(close) = conn.handle_timeout(now) {
                self.broker.detach(conn, close);
                client.closed = Some(close);
            }
        }
        self.pump();
    }

    /// A new connection for client `c` (a new TCP connection), accepted now.
    pub(crate) fn open(&mut self, c: usize) {
        let conn_id = self.broker.next_conn_id;
        self.broker.next_conn_id += 1;
        let client = &mut self.clients[c];
        assert!(
            client.closed.is_some() || client.conn.as_ref().is_none_or(|c| !c.is_connected()),
            "client {c} is still connected"
        );
        client.conn = Some(Connection::new(
            Arc::clone(&self.broker.settings),
            self.broker.clock.now(),
            conn_id,
        ));
        client.input.clear();
        client.decoder = Decoder::with_version(client.version, u32::MAX);
        client.closed = None;
        client.outcomes.clear();
        client.pending.clear();
    }

    pub(crate) fn conn(&self, c: usize) -> &Connection {
        self.clients[c]
            .conn
            .as_ref()
            .expect("the client has a connection")
    }

    pub(crate) fn conn_mut(&mut self, c: usize) -> &mut Connection {
        self.clients[c].conn_mut()
    }

    pub(crate) fn closed(&self, c: usize) -> Option<Close> {
        self.clients[c].closed
    }

    /// Sends a packet from client `c`, encoded in its version (opening a connection first if
    /// it has none), then pumps.
    pub(crate) fn send(&mut self, c: usize, packet: impl Into<Packet>) -> Result<(), Close> {
        let version = self.clients[c].version;
        let mut packet = packet.into();
        if let Packet::Connect(connect) = &mut packet {
            connect.protocol = version;
        }
        let mut bytes = BytesMut::new();
        encode(&packet, version, &mut bytes).expect("test packet encodes");
        self.send_bytes(c, &bytes)
    }

    /// Sends raw bytes from client `c`, then pumps.
    pub(crate) fn send_bytes(&mut self, c: usize, bytes: &[u8]) -> Result<(), Close> {
        if self.clients[c].conn.is_none() {
            self.open(c);
        }
        let result = self.clients[c].feed(&mut self.broker, bytes);
        self.pump();
        result
    }

    /// Everything client `c`'s connection transmitted since the last call.
    pub(crate) fn recv(&mut self, c: usize) -> Vec<Packet> {
        self.clients[c].recv()
    }

    /// Hands each connected session's queued deliveries to its connection while the window
    /// allows, as the driver does when its mailbox is notified.
    pub(crate) fn pump(&mut self) {
        let now = self.now();
        for client in &mut self.clients {
            let Some(conn) = client.conn.as_mut() else {
                continue;
            };
            if client.closed.is_some() || !conn.is_connected() {
                continue;
            }
            let Some(queue) = self.broker.mailboxes.get_mut(conn.client_id()) else {
                continue;
            };
            while let Some(front) = queue.front() {
                if !conn.can_deliver(front.qos) {
                    break;
                }
                let delivery = queue.pop().expect("front exists");
                client.outcomes.push(conn.handle_delivery(now, delivery));
            }
        }
    }

    /// The socket under client `c` closed without DISCONNECT.
    pub(crate) fn drop_socket(&mut self, c: usize) -> Close {
        let client = &mut self.clients[c];
        let conn = client.conn.as_mut().expect("the client has a connection");
        let close = conn.handle_socket_closed();
        self.broker.detach(conn, close);
        client.closed = Some(close);
        close
    }

    /// Opens a connection, sends `connect` (its protocol set to the client's version) and
    /// returns the CONNACK, asserting that it came first. What followed it (resent
    /// messages of a resumed session) is left for [`World::recv`].
    /// A client still connected loses its socket first.
    pub(crate) fn connect(&mut self, c: usize, connect: Connect) -> ConnAck {
        let client = &self.clients[c];
        if client.closed.is_none() && client.conn.as_ref().is_some_and(Connection::is_connected) {
            self.drop_socket(c);
        }
        self.open(c);
        let result = self.send(c, Packet::Connect(Box::new(connect)));
        let mut packets = self.recv(c).into_iter();
        match packets.next() {
            Some(Packet::ConnAck(connack)) => {
                self.clients[c].pending = packets.collect();
                if connack.reason.is_error() {
                    assert!(result.is_err(), "refused CONNECT left the connection open");
                } else {
                    result.expect("accepted CONNECT");
                }
                connack.clone()
            }
            other => panic!("expected CONNACK, got {other:?} ({result:?})"),
        }
    }

    /// Connects client `c` with a plain CONNECT for `client_id` (clean start, no keep alive),
    /// asserting success.
    pub(crate) fn connect_ok(&mut self, c: usize, client_id: &str) -> ConnAck {
        let connack = self.connect(c, connect(client_id));
        assert_eq!(connack.reason, ReasonCode::SUCCESS);
        connack
    }

    /// Subscribes client `c` and returns the SUBACK, asserting it is all that came back.
    pub(crate) fn subscribe(&mut self, c: usize, packet: Subscribe) -> SubAck {
        self.send(c, Packet::Subscribe(packet))
            .expect("SUBSCRIBE accepted");
        match self.recv(c).as_slice() {
            [Packet::SubAck(suback)] => suback.clone(),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Unsubscribes client `c` and returns the UNSUBACK, asserting it is all that came back.
    pub(crate) fn unsubscribe(&mut self, c: usize, filters: &[&str]) -> UnsubAck {
        let packet = Unsubscribe {
            packet_id: pid(1000),
            user_properties: Vec::new(),
            filters: filters.iter().map(|f| ByteStr::from(*f)).collect(),
        };
        self.send(c, Packet::Unsubscribe(packet))
            .expect("UNSUBSCRIBE accepted");
        match self.recv(c).as_slice() {
            [Packet::UnsubAck(unsuback)] => unsuback.clone(),
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }
}

impl From<Publish> for Packet {
    fn from(publish: Publish) -> Self {
        Packet::Publish(publish)
    }
}

impl From<Connect> for Packet {
    fn from(connect: Connect) -> Self {
        Packet::Connect(Box::new(connect))
    }
}

impl From<Disconnect> for Packet {
    fn from(disconnect: Disconnect) -> Self {
        Packet::Disconnect(disconnect)
    }
}

impl From<Subscribe> for Packet {
    fn from(subscribe: Subscribe) -> Self {
        Packet::Subscribe(subscribe)
    }
}

/// A packet id (panics on 0: tests use valid ids).
pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("non-zero packet id")
}

/// A CONNECT with clean start and no keep alive; the protocol is set by [`World::connect`].
pub(crate) fn connect(client_id: &str) -> Connect {
    Connect {
        clean_start: true,
        client_id: ByteStr::from(client_id),
        ..Connect::default()
    }
}

/// A PUBLISH; `id` is used for QoS > 0.
pub(crate) fn publish(topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        qos,
        topic: ByteStr::from(topic),
        packet_id: (qos > QoS::AtMostOnce).then(|| pid(id)),
        payload: Bytes::from_static(payload),
        ..Publish::default()
    }
}

/// A SUBSCRIBE of `filters` at the given maximum QoS.
pub(crate) fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Subscribe {
    Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties::default(),
        filters: filters
            .iter()
            .map(|(filter, qos)| {
                (
                    ByteStr::from(*filter),
                    SubscriptionOptions {
                        qos: *qos,
                        ..SubscriptionOptions::default()
                    },
                )
            })
            .collect(),
    }
}

/// A PUBACK/PUBREC/PUBREL/PUBCOMP body with a success code.
pub(crate) fn ack(id: u16) -> PubResponse {
    PubResponse::new(pid(id))
}

/// A DISCONNECT with `reason`.
pub(crate) fn disconnect(reason: ReasonCode) -> Disconnect {
    Disconnect {
        reason,
        ..Disconnect::default()
    }
}

/// The one packet of `packets`, asserting there is exactly one.
#[track_caller]
pub(crate) fn only(packets: Vec<Packet>) -> Packet {
    assert_eq!(packets.len(), 1, "expected one packet, got {packets:?}");
    packets.into_iter().next().expect("one packet")
}

/// The PUBLISH packets of `packets`.
pub(crate) fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .collect()
}

/// The reason code of a DISCONNECT, asserting the packet is one.
#[track_caller]
pub(crate) fn disconnect_reason(packet: &Packet) -> ReasonCode {
    match packet {
        Packet::Disconnect(disconnect) => disconnect.reason,
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}
