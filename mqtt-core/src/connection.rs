//! [`Connection`]: the protocol state machine of one MQTT connection, server side.
//!
//! Call order (the driver in `tributary-protocols` is a loop around these calls):
//!
//! 1. [`Connection::decode`] takes the next packet from the bytes read so far, then
//!    [`Connection::handle_packet`] processes it. Most packets are answered inside the state
//!    machine; the ones that need the broker come back as a [`Request`], which the driver
//!    carries out before it feeds the next packet, answering with the matching `handle_*`
//!    call ([`Connection::handle_connect_result`], [`Connection::handle_publish_result`],
//!    [`Connection::handle_subscribe_result`], [`Connection::handle_unsubscribe_result`]).
//! 2. [`Connection::handle_delivery`] sends a message from the session's queue, while
//!    [`Connection::can_deliver`] says there is room.
//! 3. [`Connection::transmit`] is what to write to the socket, all packets encoded back to
//!    back so that one write carries a whole batch; [`Connection::advance_transmit`] after
//!    writing.
//! 4. [`Connection::poll_timeout`] is when to call [`Connection::handle_timeout`] next.
//!
//! Any `Err(Close)` ends the connection: the state machine has already queued the CONNACK
//! or DISCONNECT that tells the client why (v5), so the driver flushes and closes.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    codec::{self, DecodeError, Decoder},
    message::{Delivery, Message},
    packet::{
        AckProperties, ConnAck, ConnAckProperties, Connect, Disconnect, DisconnectProperties,
        NoProperties, PubResponse, Publish, PublishProperties, PublishPropertyValues, PublishRef,
        SubAck, SubscriptionOptions, UnsubAck,
    },
    session::{AckOutcome, IncomingQos2, Resend, Session},
    settings::MqttSettings,
    topic::{SubscriptionFilter, TopicError, TopicName},
};

/// Why a connection ended, in EMQX's vocabulary for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseKind {
    /// The client sent DISCONNECT.
    Normal,
    /// No CONNECT within `idle_timeout`.
    IdleTimeout,
    /// No packet within the keep-alive period.
    KeepaliveTimeout,
    /// The socket closed without DISCONNECT.
    SocketClosed,
    /// The peer sent bytes that are not a valid packet.
    MalformedPacket,
    /// The peer broke a protocol rule.
    ProtocolError,
    /// A packet exceeded `max_packet_size`.
    PacketTooLarge,
    /// CONNECT was refused (version, client id, authentication).
    ConnectRefused,
    /// Authentication or authorization failed.
    NotAuthorized,
    /// Another connection took the session over.
    TakenOver,
    /// Discarded: a new connection with the same client id started a clean session.
    Discarded,
    /// An operator kicked the client.
    Kicked,
    /// The broker is shutting down.
    ServerShutdown,
    /// A limit was exceeded (receive maximum, quota).
    QuotaExceeded,
}

impl CloseKind {
    /// The reason as EMQX logs it (`normal`, `keepalive_timeout`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::IdleTimeout => "idle_timeout",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::SocketClosed => "tcp_closed",
            Self::MalformedPacket => "malformed_packet",
            Self::ProtocolError => "protocol_error",
            Self::PacketTooLarge => "frame_too_large",
            Self::ConnectRefused => "connack_error",
            Self::NotAuthorized => "not_authorized",
            Self::TakenOver => "takenover",
            Self::Discarded => "discarded",
            Self::Kicked => "kicked",
            Self::ServerShutdown => "shutdown",
            Self::QuotaExceeded => "quota_exceeded",
        }
    }
}

/// The end of a connection: why, the reason code the client was told, and whether the Will
/// must be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// Why, for logs and metrics.
    pub kind: CloseKind,
    /// The reason code sent (v5) or that would have been sent (3.1.1).
    pub code: ReasonCode,
    /// Whether the session's Will must be published (abnormal end, or v5 DISCONNECT 0x04).
    pub publish_will: bool,
}

/// What the driver must do with the broker before feeding the next packet.
#[derive(Debug)]
#[must_use]
pub enum Request {
    /// Authenticate, then find, take over or create the session.
    /// Answer: [`Connection::handle_connect_result`].
    Connect(Box<ConnectRequest>),
    /// Authorize and route a message. Answer (QoS > 0 only):
    /// [`Connection::handle_publish_result`].
    Publish(PublishRequest),
    /// Subscribe. Answer: [`Connection::handle_subscribe_result`].
    Subscribe(SubscribeRequest),
    /// Unsubscribe. Answer: [`Connection::handle_unsubscribe_result`].
    Unsubscribe(UnsubscribeRequest),
}

/// A validated CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Client id (assigned by the server when the client sent an empty one).
    pub client_id: ByteStr,
    /// Whether the client id was assigned by the server.
    pub assigned_client_id: bool,
    /// Clean Session / Clean Start.
    pub clean_start: bool,
    /// Session expiry the server will use (already capped).
    pub session_expiry: Duration,
    /// User name.
    pub username: Option<ByteStr>,
    /// Password.
    pub password: Option<Bytes>,
    /// The Will, validated.
    pub will: Option<WillMessage>,
    /// Keep alive in effect, in seconds.
    pub keep_alive: u16,
}

/// A validated Will.
#[derive(Debug, Clone)]
pub struct WillMessage {
    /// The message, ready to route.
    pub message: Message,
    /// Will Delay Interval.
    pub delay: Duration,
    /// The v5 Message Expiry Interval, applied when the Will is published.
    pub expiry: Option<Duration>,
}

/// How the broker answered a CONNECT.
#[derive(Debug)]
pub enum ConnectResult {
    /// Connected: here is the session (new or resumed).
    Accepted {
        /// The session.
        session: Session,
        /// Whether it was resumed (CONNACK Session Present).
        session_present: bool,
    },
    /// Refused with this reason code.
    Refused(ReasonCode),
}

/// A validated inbound PUBLISH, to authorize and route.
#[derive(Debug)]
pub struct PublishRequest {
    /// The message.
    pub message: Arc<Message>,
    /// Packet id for QoS > 0.
    pub packet_id: Option<PacketId>,
}

/// One topic filter of a SUBSCRIBE.
#[derive(Debug, Clone)]
pub struct FilterRequest {
    /// The filter as sent (the session's key for it).
    pub raw: ByteStr,
    /// The parsed filter, or the SUBACK reason code that refuses it.
    pub filter: Result<SubscriptionFilter, ReasonCode>,
    /// Options, QoS already capped to `max_qos_allowed`.
    pub options: SubscriptionOptions,
}

/// A validated SUBSCRIBE.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    /// Packet id, for the SUBACK.
    pub packet_id: PacketId,
    /// Subscription identifier (v5).
    pub subscription_id: Option<u32>,
    /// The filters, in order.
    pub filters: Vec<FilterRequest>,
}

/// A validated UNSUBSCRIBE.
#[derive(Debug, Clone)]
pub struct UnsubscribeRequest {
    /// Packet id, for the UNSUBACK.
    pub packet_id: PacketId,
    /// The filters as sent.
    pub filters: Vec<ByteStr>,
}

/// What happened to a delivery given to [`Connection::handle_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum DeliveryOutcome {
    /// Encoded into the transmit buffer.
    Sent,
    /// Dropped: the message expired.
    Expired,
    /// Dropped: larger than the client's Maximum Packet Size.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnect,
    Connecting,
    Connected,
    Closed,
}

/// One MQTT connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    settings: Arc<MqttSettings>,
    decoder: Decoder,
    state: State,
    version: ProtocolVersion,
    out: BytesMut,
    /// When the last packet arrived; before any has, when the connection was accepted (the
    /// idle timeout counts from it: the first packet is the CONNECT, which ends that wait).
    last_received: Instant,
    /// The keep-alive period with its grace (`keepalive_multiplier`) in milliseconds; 0 when
    /// the client asked for none. Compact: every connection carries it.
    keep_alive_ms: u32,
    session: Option<Session>,
    client_id: ByteStr,
    /// Boxed, as `connect_pending`: most connections have neither, and every idle
    /// connection would otherwise carry their room.
    will: Option<Box<WillMessage>>,
    /// The session expiry in effect, in seconds as the protocol counts it. Compact: every
    /// connection carries it.
    session_expiry_secs: u32,
    /// The client's Maximum Packet Size (v5), or the protocol maximum.
    client_max_packet_size: u32,
    client_topic_alias_max: u16,
    request_problem_information: bool,
    /// Made on the first alias: most clients use none, and an idle connection would carry
    /// two empty maps.
    aliases: Option<Box<Aliases>>,
    connect_pending: Option<Box<ConnAck>>,
    /// The outbound window: the lower of `max_inflight` and the client's Receive Maximum.
    window: u16,
    /// Identifies this connection (and seeds an assigned client id).
    conn_id: u64,
}

/// The topic aliases of a v5 connection, each direction's own (spec 3.3.2.3.4).
#[derive(Debug, Default)]
struct Aliases {
    /// Set by the client's PUBLISHes.
    inbound: HashMap<u16, TopicName>,
    /// Set by the broker's, up to the client's Topic Alias Maximum.
    outbound: HashMap<ByteStr, u16>,
}

/// The protocol's largest packet: 1 + 4 header bytes + 268,435,455.
const PROTOCOL_MAX_PACKET: u32 = 268_435_460;

impl Connection {
    /// A connection accepted at `now`, waiting for CONNECT. `conn_id` must be unique among the
    /// broker's connections and hard to guess: a client that sends an empty client id is
    /// assigned one derived from it.
    pub fn new(settings: Arc<MqttSettings>, now: Instant, conn_id: u64) -> Self {
        let mut decoder = Decoder::new(settings.max_packet_size);
        decoder.set_max_user_properties(
            u32::try_from(settings.max_user_properties).unwrap_or(u32::MAX),
        );
        Self {
            settings,
            decoder,
            state: State::AwaitConnect,
            version: ProtocolVersion::V311,
            out: BytesMut::new(),
            last_received: now,
            keep_alive_ms: 0,
            session: None,
            client_id: ByteStr::new(),
            will: None,
            session_expiry_secs: 0,
            client_max_packet_size: PROTOCOL_MAX_PACKET,
            client_topic_alias_max: 0,
            request_problem_information: true,
            aliases: None,
            connect_pending: None,
            window: u16::MAX,
            conn_id,
        }
    }

    /// The protocol version (3.1.1 until CONNECT says otherwise).
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client id, once CONNECT was accepted (empty before).
    pub fn client_id(&self) -> &ByteStr {
        &self.client_id
    }

    /// Replaces the client id of the CONNECT being answered, for a server that imposes one
    /// (EMQX's `peer_cert_as_clientid`): the session, the Will's publisher and the logs use
    /// `client_id` from here on. Call it between the [`Request::Connect`] and
    /// [`Connection::handle_connect_result`]; the caller has validated `client_id`.
    pub fn impose_client_id(&mut self, client_id: ByteStr) {
        if let Some(will) = &mut self.will {
            will.message.publisher = client_id.clone();
        }
        self.client_id = client_id;
    }

    /// Whether CONNECT was accepted and the connection is live.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The session, while connected.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The session, while connected (for subscribe bookkeeping by the broker).
    pub fn session_mut(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    /// Takes the session out when the connection ends.
    pub fn take_session(&mut self) -> Option<Session> {
        self.session.take()
    }

    /// Takes the Will out (when it must be published, or handed to the session registry).
    pub fn take_will(&mut self) -> Option<WillMessage> {
        self.will.take().map(|will| *will)
    }

    /// The keep-alive period with its grace, if the client asked for one.
    fn keep_alive(&self) -> Option<Duration> {
        (self.keep_alive_ms > 0).then(|| Duration::from_millis(self.keep_alive_ms.into()))
    }

    /// The session expiry in effect (updated by a v5 DISCONNECT).
    pub fn session_expiry(&self) -> Duration {
        Duration::from_secs(self.session_expiry_secs.into())
    }

    /// Bytes waiting to be written.
    pub fn transmit(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`Connection::transmit`] as written.
    pub fn advance_transmit(&mut self, n: usize) {
        if n < self.out.len() {
            // Not `split_to`: that would turn the buffer into a shared one (an allocation and
            // reference counts) only to drop the part written.
            self.out.advance(n);
        } else if self.out.capacity() > 64 * 1024 {
            // A burst grew the buffer; an idle connection should not keep it.
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
    }

    /// Decodes the next packet from `buf` (`Ok(None)`: need more bytes). A decode error ends
    /// the connection with the matching reason code.
    // Inlined into the driver (another crate): a call returned the `Packet` through one more
    // copy, 4 % of a QoS 1 message's instructions when it was 264 bytes (callgrind).
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, Close> {
        match self.decoder.decode(buf) {
            Ok(packet) => Ok(packet),
            Err(error) => Err(self.decode_failure(&error)),
        }
    }

    fn decode_failure(&mut self, error: &DecodeError) -> Close {
        let code = ReasonCode::from(error);
        tracing::debug!(%error, "undecodable packet");
        if self.state == State::AwaitConnect {
            // The version is only known once CONNECT decoded; a v5 CONNECT with a bad body is
            // still answered in v5 when its header said so.
            if let Some(version) = self.decoder.version() {
                self.version = version;
            }
            if code == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
                // [MQTT-3.1.2-2]: answer with "unacceptable protocol version" and close. The
                // client's version is unknown, so use the 3.1.1 form it can read.
                self.version = ProtocolVersion::V311;
                self.write(&Packet::ConnAck(ConnAck {
                    reason: code,
                    ..ConnAck::default()
                }));
                self.state = State::Closed;
                return Close {
                    kind: CloseKind::ConnectRefused,
                    code,
                    publish_will: false,
                };
            }
        }
        let kind = match code {
            ReasonCode::PACKET_TOO_LARGE => CloseKind::PacketTooLarge,
            ReasonCode::PROTOCOL_ERROR => CloseKind::ProtocolError,
            _ => CloseKind::MalformedPacket,
        };
        self.fail(kind, code)
    }

    /// Ends the connection: tells a v5 client why (CONNACK before CONNECT was accepted,
    /// DISCONNECT after) and decides on the Will. 3.1.1 can only say why a CONNECT was refused
    /// (a CONNACK return code, [MQTT-3.1.3-8], [MQTT-3.1.4-4]); otherwise it just closes.
    fn fail(&mut self, kind: CloseKind, code: ReasonCode) -> Close {
        let refused_connect = matches!(kind, CloseKind::ConnectRefused | CloseKind::NotAuthorized);
        match self.state {
            // 3.1.1 has CONNACK return codes for a refused CONNECT, but nothing for a
            // malformed one: that connection just closes [MQTT-4.8.0-1].
            State::AwaitConnect | State::Connecting if self.version.is_v5() || refused_connect => {
                self.write(&Packet::ConnAck(ConnAck {
                    reason: code,
                    ..ConnAck::default()
                }));
            }
            State::Connected if self.version.is_v5() => self.write_disconnect(code),
            _ => {}
        }
        let publish_will = self.state == State::Connected;
        self.state = State::Closed;
        Close {
            kind,
            code,
            publish_will,
        }
    }

    /// Closes the connection from the server side (takeover, kick, shutdown): v5 clients get a
    /// DISCONNECT with `code`. The Will is published only for a kick, as EMQX does.
    pub fn close(&mut self, kind: CloseKind, code: ReasonCode) -> Close {
        let mut close = self.fail(kind, code);
        close.publish_will = matches!(kind, CloseKind::Kicked | CloseKind::ServerShutdown);
        close
    }

    /// The socket closed (or failed) under the connection.
    pub fn handle_socket_closed(&mut self) -> Close {
        let publish_will = self.state == State::Connected;
        self.state = State::Closed;
        Close {
            kind: CloseKind::SocketClosed,
            code: ReasonCode::UNSPECIFIED_ERROR,
            publish_will,
        }
    }

    fn write_disconnect(&mut self, code: ReasonCode) {
        let mut properties = DisconnectProperties::default();
        if self.request_problem_information {
            properties.reason_string = code.name().map(ByteStr::from_static);
        }
        self.write(&Packet::Disconnect(Disconnect {
            reason: code,
            properties,
        }));
    }

    fn write(&mut self, packet: &Packet) {
        // Encoding fails only for packets over 256 MB, which we never build: everything we
        // send is bounded by `max_packet_size` or by small fixed sizes.
        if let Err(error) = codec::encode(packet, self.version, &mut self.out) {
            tracing::warn!(%error, packet = packet.name(), "could not encode packet");
        }
    }

    /// When [`Connection::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitConnect => Some(self.last_received + self.settings.idle_timeout),
            State::Connecting | State::Closed => None,
            State::Connected => {
                let keep_alive = self.keep_alive().map(|period| self.last_received + period);
                let rel = self
                    .session
                    .as_ref()
                    .and_then(Session::next_awaiting_rel_deadline);
                let retry = self.settings.retry_interval.and_then(|interval| {
                    self.session.as_ref().and_then(|s| s.next_retry(interval))
                });
                [keep_alive, rel, retry].into_iter().flatten().min()
            }
        }
    }

    /// Writes what a session sends again (on resume, or on `retry_interval`).
    fn write_resends(&mut self, now: Instant, resend: Vec<Resend>) {
        for packet in resend {
            match packet {
                Resend::Publish { id, delivery } => {
                    let publish = PublishRef {
                        dup: true,
                        ..delivery.publish(now, Some(id))
                    };
                    if !self.write_publish(publish) {
                        tracing::warn!(client_id = %self.client_id, "inflight message larger than the client accepts; not resent");
                    }
                }
                Resend::PubRel(id) => self.write_ack(Packet::PubRel, id, ReasonCode::SUCCESS),
            }
        }
    }

    /// Advances time: closes on idle or keep-alive timeout, expires stale QoS 2 state,
    /// resends what `retry_interval` says is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Close> {
        match self.state {
            State::AwaitConnect if now >= self.last_received + self.settings.idle_timeout => {
                self.state = State::Closed;
                Err(Close {
                    kind: CloseKind::IdleTimeout,
                    code: ReasonCode::MAXIMUM_CONNECT_TIME,
                    publish_will: false,
                })
            }
            State::Connected => {
                if let Some(period) = self.keep_alive() {
                    if now >= self.last_received + period {
                        return Err(
                            self.fail(CloseKind::KeepaliveTimeout, ReasonCode::KEEP_ALIVE_TIMEOUT)
                        );
                    }
                }
                if let (Some(interval), Some(session)) =
                    (self.settings.retry_interval, self.session.as_mut())
                {
                    let due = session.retry_due(now, interval);
                    self.write_resends(now, due);
                }
                if let Some(session) = self.session.as_mut() {
                    let expired = session.expire_awaiting_rel(now);
                    if expired > 0 {
                        tracing::info!(client_id = %self.client_id, expired, "QoS 2 packet ids expired waiting for PUBREL");
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Processes one packet from the client.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: Packet,
    ) -> Result<Option<Request>, Close> {
        self.last_received = now;
        // Matched on the state alone: a (state, packet) tuple would copy the packet.
        match self.state {
            State::Connected => self.handle_connected(now, packet),
            State::AwaitConnect => match packet {
                Packet::Connect(connect) => self.handle_connect(*connect).map(Some),
                _ => Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR)),
            },
            State::Connecting | State::Closed => {
                // The driver feeds nothing while CONNECT is with the broker; tolerate it anyway.
                Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR))
            }
        }
    }

    fn handle_connected(&mut self, now: Instant, packet: Packet) -> Result<Option<Request>, Close> {
        match packet {
            Packet::Publish(publish) => self.handle_publish(now, publish),
            Packet::PubAck(ack) => {
                self.with_session(|s| s.handle_puback(ack.packet_id));
                Ok(None)
            }
            Packet::PubRec(ack) => {
                let outcome = if ack.reason.is_error() {
                    self.with_session(|s| s.handle_pubrec_error(ack.packet_id))
                } else {
                    self.with_session(|s| s.handle_pubrec(ack.packet_id))
                };
                if !ack.reason.is_error() {
                    let reason = match outcome {
                        Some(AckOutcome::Known) | None => ReasonCode::SUCCESS,
                        Some(AckOutcome::Unknown) => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                    };
                    self.write_ack(Packet::PubRel, ack.packet_id, reason);
                }
                Ok(None)
            }
            Packet::PubRel(rel) => {
                let reason = match self.with_session(|s| s.handle_pubrel(rel.packet_id)) {
                    Some(AckOutcome::Known) | None => ReasonCode::SUCCESS,
                    Some(AckOutcome::Unknown) => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                };
                self.write_ack(Packet::PubComp, rel.packet_id, reason);
                Ok(None)
            }
            Packet::PubComp(ack) => {
                self.with_session(|s| s.handle_pubcomp(ack.packet_id));
                Ok(None)
            }
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe).map(Some),
            Packet::Unsubscribe(unsubscribe) => {
                Ok(Some(Request::Unsubscribe(UnsubscribeRequest {
                    packet_id: unsubscribe.packet_id,
                    filters: unsubscribe.filters,
                })))
            }
            Packet::PingReq => {
                self.write(&Packet::PingResp);
                Ok(None)
            }
            Packet::Disconnect(disconnect) => Err(self.handle_disconnect(disconnect)),
            // Enhanced authentication is not offered (CONNECT with a method is refused), so
            // AUTH after CONNECT is a protocol error [MQTT-4.12.0-1].
            Packet::Auth(_) | Packet::Connect(_) => {
                Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR))
            }
            // Server-to-client packets from a client (Mosquitto CVE-2021-28166).
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR))
            }
        }
    }

    fn with_session<T>(&mut self, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.session.as_mut().map(f)
    }

    fn write_ack(
        &mut self,
        make: fn(PubResponse) -> Packet,
        packet_id: PacketId,
        reason: ReasonCode,
    ) {
        let mut response = PubResponse::new(packet_id);
        if self.version.is_v5() {
            response.reason = reason;
            if reason.is_error() && self.request_problem_information {
                response.properties.reason_string = reason.name().map(ByteStr::from_static);
            }
        }
        self.write(&make(response));
    }

    fn handle_connect(&mut self, connect: Connect) -> Result<Request, Close> {
        self.version = connect.protocol;
        let v5 = self.version.is_v5();
        let settings = Arc::clone(&self.settings);
        let refuse =
            |this: &mut Self, code: ReasonCode| Err(this.fail(CloseKind::ConnectRefused, code));

        // Client identifier [MQTT-3.1.3-6..8].
        let mut client_id = connect.client_id;
        let mut assigned_client_id = false;
        if client_id.is_empty() {
            if !v5 && !connect.clean_start {
                return refuse(self, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
            }
            client_id = ByteStr::from(format!("tributary-{:016x}", self.conn_id));
            assigned_client_id = true;
        } else if client_id.len() > settings.max_clientid_len {
            return refuse(self, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        } else {
            // Copied out of the packet, as the user name below: the connection, its session
            // and the registry keep them for the connection's life, and a slice would keep
            // the whole CONNECT's buffer with them.
            client_id = ByteStr::from(client_id.as_str());
        }

        // Enhanced authentication: no method is offered (spec 4.12: 0x8C).
        if connect.properties.authentication_method.is_some() {
            return refuse(self, ReasonCode::BAD_AUTHENTICATION_METHOD);
        }

        // Keep alive, capped by `max_keepalive` (CVE-2020-13849); v5 is told through Server
        // Keep Alive, 3.1.1 cannot be and is refused, as Mosquitto does.
        let mut keep_alive = connect.keep_alive;
        let mut server_keep_alive = None;
        if v5 {
            if let Some(forced) = settings.server_keepalive {
                keep_alive = forced;
                server_keep_alive = Some(forced);
            } else if keep_alive > settings.max_keepalive
                || (keep_alive == 0 && settings.max_keepalive < u16::MAX)
            {
                keep_alive = settings.max_keepalive;
                server_keep_alive = Some(keep_alive);
            }
        } else if keep_alive > settings.max_keepalive {
            return refuse(self, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        // At most 65,535 s times the multiplier: far inside u32 milliseconds; and never 0 (no
        // keep-alive) for a client that asked for one.
        let period = Duration::from_secs_f64(f64::from(keep_alive) * settings.keepalive_multiplier);
        self.keep_alive_ms = match keep_alive {
            0 => 0,
            _ => u32::try_from(period.as_millis()).unwrap_or(u32::MAX).max(1),
        };

        // Session expiry: v5 asks, capped by the configuration; 3.1.1 persistent sessions get
        // the configured interval.
        let cap = expiry_cap_secs(&settings);
        let requested = connect.properties.session_expiry_interval.unwrap_or(0);
        let session_expiry_secs = if v5 {
            requested.min(cap)
        } else if connect.clean_start {
            0
        } else {
            cap
        };
        self.session_expiry_secs = session_expiry_secs;
        let session_expiry = Duration::from_secs(session_expiry_secs.into());

        // The Will.
        let will = match connect.will {
            None => None,
            Some(will) => {
                if will.qos > settings.max_qos_allowed {
                    return refuse(self, ReasonCode::QOS_NOT_SUPPORTED);
                }
                if will.retain && !settings.retain_available {
                    return refuse(self, ReasonCode::RETAIN_NOT_SUPPORTED);
                }
                let topic = match TopicName::new(will.topic, settings.max_topic_levels) {
                    Ok(topic) if !topic.is_dollar() => topic,
                    // $SYS and other $-topics are the broker's (Mosquitto 2.0.16).
                    _ => return refuse(self, ReasonCode::TOPIC_NAME_INVALID),
                };
                if will.properties.payload_format_indicator == Some(true)
                    && std::str::from_utf8(&will.payload).is_err()
                {
                    return refuse(self, ReasonCode::PAYLOAD_FORMAT_INVALID);
                }
                let properties = crate::packet::PublishPropertyValues {
                    payload_format_indicator: will.properties.payload_format_indicator,
                    content_type: will.properties.content_type,
                    response_topic: will.properties.response_topic,
                    correlation_data: will.properties.correlation_data,
                    user_properties: will.properties.user_properties,
                    ..Default::default()
                }
                .into();
                Some(WillMessage {
                    message: Message {
                        topic,
                        payload: will.payload,
                        qos: will.qos,
                        retain: will.retain,
                        properties,
                        expires_at: None,
                        publisher: client_id.clone(),
                        wire: crate::message::WireCache::default(),
                    },
                    delay: Duration::from_secs(
                        will.properties.will_delay_interval.unwrap_or(0).into(),
                    ),
                    expiry: will
                        .properties
                        .message_expiry_interval
                        .map(|s| Duration::from_secs(s.into())),
                })
            }
        };

        // What the client accepts from us.
        if let Some(max) = connect.properties.maximum_packet_size {
            self.client_max_packet_size = max;
        }
        self.client_topic_alias_max = connect.properties.topic_alias_maximum.unwrap_or(0);
        self.request_problem_information = connect
            .properties
            .request_problem_information
            .unwrap_or(true);
        let receive_maximum = connect.properties.receive_maximum.unwrap_or(u16::MAX);

        let mut properties = ConnAckProperties::default();
        if v5 {
            if assigned_client_id {
                properties.assigned_client_identifier = Some(client_id.clone());
            }
            // Tell the client when the server uses another interval than it asked for
            // (u32::MAX, "never expire", is capped too) (spec 3.2.2.3.2).
            if requested != session_expiry_secs {
                properties.session_expiry_interval = Some(session_expiry_secs);
            }
            properties.receive_maximum = Some(settings.max_inflight);
            if settings.max_qos_allowed < QoS::ExactlyOnce {
                properties.maximum_qos = Some(settings.max_qos_allowed);
            }
            if !settings.retain_available {
                properties.retain_available = Some(false);
            }
            properties.maximum_packet_size = Some(settings.max_packet_size);
            properties.topic_alias_maximum =
                (settings.max_topic_alias > 0).then_some(settings.max_topic_alias);
            if !settings.wildcard_subscription {
                properties.wildcard_subscription_available = Some(false);
            }
            if !settings.shared_subscription {
                properties.shared_subscription_available = Some(false);
            }
            properties.server_keep_alive = server_keep_alive;
            if connect.properties.request_response_information == Some(true) {
                properties.response_information =
                    settings.response_information.as_deref().map(ByteStr::from);
            }
        }
        self.connect_pending = Some(Box::new(ConnAck {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties,
        }));
        self.window = receive_maximum.min(settings.max_inflight);
        self.state = State::Connecting;
        self.client_id = client_id.clone();
        self.will = will.clone().map(Box::new);
        Ok(Request::Connect(Box::new(ConnectRequest {
            version: self.version,
            client_id,
            assigned_client_id,
            clean_start: connect.clean_start,
            session_expiry,
            username: connect.username.map(|name| ByteStr::from(name.as_str())),
            password: connect.password,
            will,
            keep_alive,
        })))
    }

    /// The broker's answer to [`Request::Connect`]: sends CONNACK and, for a resumed session,
    /// everything that was in flight (with DUP set), in order.
    pub fn handle_connect_result(
        &mut self,
        now: Instant,
        result: ConnectResult,
    ) -> Result<(), Close> {
        let Some(mut connack) = self.connect_pending.take() else {
            return Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR));
        };
        match result {
            ConnectResult::Refused(code) => {
                let kind = if matches!(
                    code,
                    ReasonCode::NOT_AUTHORIZED | ReasonCode::BAD_USERNAME_OR_PASSWORD
                ) {
                    CloseKind::NotAuthorized
                } else {
                    CloseKind::ConnectRefused
                };
                self.will = None;
                Err(self.fail(kind, code))
            }
            ConnectResult::Accepted {
                mut session,
                session_present,
            } => {
                connack.session_present = session_present;
                self.write(&Packet::ConnAck(*connack));
                self.state = State::Connected;
                self.last_received = now;
                session.set_window(self.window.into());
                let resend: Vec<Resend> = session.resume().collect();
                self.session = Some(session);
                self.write_resends(now, resend);
                Ok(())
            }
        }
    }

    fn handle_publish(&mut self, now: Instant, publish: Publish) -> Result<Option<Request>, Close> {
        // The limits it checks, copied out: no reference count taken per message.
        let (max_qos, retain_available, max_topic_alias, max_inflight) = {
            let settings = &self.settings;
            (
                settings.max_qos_allowed,
                settings.retain_available,
                settings.max_topic_alias,
                settings.max_inflight,
            )
        };
        if publish.qos > max_qos {
            return Err(self.fail(CloseKind::ProtocolError, ReasonCode::QOS_NOT_SUPPORTED));
        }
        if publish.retain && !retain_available {
            return Err(self.fail(CloseKind::ProtocolError, ReasonCode::RETAIN_NOT_SUPPORTED));
        }

        // Topic alias resolution (v5 §3.3.2.3.4).
        let topic = match publish.properties.topic_alias {
            Some(alias) if alias == 0 || alias > max_topic_alias => {
                return Err(self.fail(CloseKind::ProtocolError, ReasonCode::TOPIC_ALIAS_INVALID));
            }
            Some(alias) if publish.topic.is_empty() => match self
                .aliases
                .as_ref()
                .and_then(|aliases| aliases.inbound.get(&alias))
            {
                Some(topic) => topic.clone(),
                None => return Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR)),
            },
            Some(alias) => {
                let topic = self.parse_topic(publish.topic)?;
                self.aliases
                    .get_or_insert_default()
                    .inbound
                    .insert(alias, topic.clone());
                topic
            }
            None => self.parse_topic(publish.topic)?,
        };

        let packet_id = publish.packet_id;
        // Publishing to $SYS is the broker's alone (Mosquitto CVE-2018-12543 made this an
        // assert; here it is an ordinary refusal).
        if topic.is_sys() {
            tracing::info!(client_id = %self.client_id, topic = %topic.as_str(), "publish to $SYS refused");
            self.refuse_publish(publish.qos, packet_id, ReasonCode::NOT_AUTHORIZED);
            return Ok(None);
        }
        if publish.properties.payload_format_indicator == Some(true)
            && std::str::from_utf8(&publish.payload).is_err()
        {
            self.refuse_publish(publish.qos, packet_id, ReasonCode::PAYLOAD_FORMAT_INVALID);
            return Ok(None);
        }

        if publish.qos == QoS::ExactlyOnce {
            let Some(id) = packet_id else {
                return Err(self.fail(CloseKind::MalformedPacket, ReasonCode::MALFORMED_PACKET));
            };
            let awaiting = self.session.as_ref().map_or(0, Session::awaiting_rel_len);
            // A retransmission of an id already awaiting PUBREL is not a new message: it is
            // answered below as a duplicate, whatever the count.
            let retransmission = self.session.as_ref().is_some_and(|s| s.is_awaiting_rel(id));
            if self.version.is_v5() && !retransmission && awaiting >= usize::from(max_inflight) {
                // More unacknowledged QoS 2 than the Receive Maximum we advertised.
                return Err(self.fail(
                    CloseKind::QuotaExceeded,
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                ));
            }
            match self.with_session(|s| s.handle_incoming_qos2(now, id)) {
                Some(IncomingQos2::New) | None => {}
                Some(IncomingQos2::Duplicate) => {
                    self.write_ack(Packet::PubRec, id, ReasonCode::SUCCESS);
                    return Ok(None);
                }
                Some(IncomingQos2::Full) => {
                    // CVE-2023-28366: state for unreleased QoS 2 ids stays bounded.
                    tracing::warn!(client_id = %self.client_id, "max_awaiting_rel reached; QoS 2 message refused");
                    if !self.version.is_v5() {
                        // A 3.1.1 PUBREC cannot refuse: sent, it would promise a message we
                        // dropped. Close instead; the client sends it again on reconnect,
                        // once its earlier ids are released.
                        return Err(self.fail(
                            CloseKind::QuotaExceeded,
                            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        ));
                    }
                    self.refuse_publish(
                        publish.qos,
                        packet_id,
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    );
                    return Ok(None);
                }
            }
        }

        let mut properties = publish.properties;
        let expires_at = properties
            .message_expiry_interval
            .map(|s| now + Duration::from_secs(s.into()));
        // What belongs to the hop, not the message; nothing to do (or make) without any. A
        // box left empty (a PUBLISH with only a Topic Alias) goes: the message keeps none.
        let emptied = properties.values_mut().is_some_and(|values| {
            values.topic_alias = None;
            values.message_expiry_interval = None;
            values.subscription_identifiers.clear();
            values == PublishPropertyValues::none()
        });
        if emptied {
            properties = PublishProperties::default();
        }
        let message = Message {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
            publisher: self.client_id.clone(),
            wire: crate::message::WireCache::default(),
        };
        Ok(Some(Request::Publish(PublishRequest {
            message: Arc::new(message),
            packet_id,
        })))
    }

    fn parse_topic(&mut self, topic: ByteStr) -> Result<TopicName, Close> {
        match TopicName::new(topic, self.settings.max_topic_levels) {
            Ok(topic) => Ok(topic),
            Err(TopicError::Empty) if self.version.is_v5() => {
                // An empty topic without an alias [MQTT-3.3.2-8].
                Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR))
            }
            Err(error) => {
                tracing::debug!(client_id = %self.client_id, %error, "invalid topic name");
                Err(self.fail(CloseKind::ProtocolError, ReasonCode::TOPIC_NAME_INVALID))
            }
        }
    }

    /// Answers a QoS > 0 publish that is not routed; a QoS 0 one is dropped silently (it has
    /// no acknowledgement to carry the reason).
    fn refuse_publish(&mut self, qos: QoS, packet_id: Option<PacketId>, reason: ReasonCode) {
        let Some(id) = packet_id else { return };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.write_ack(Packet::PubAck, id, reason),
            QoS::ExactlyOnce => {
                // A refused QoS 2 message ends with the PUBREC: the id is free again.
                if reason != ReasonCode::RECEIVE_MAXIMUM_EXCEEDED {
                    let _ = self.with_session(|s| s.handle_pubrel(id));
                }
                self.write_ack(Packet::PubRec, id, reason);
            }
        }
    }

    /// The broker's answer to [`Request::Publish`] for a QoS > 0 message: `reason` is
    /// SUCCESS, NO_MATCHING_SUBSCRIBERS, NOT_AUTHORIZED, QUOTA_EXCEEDED...
    pub fn handle_publish_result(
        &mut self,
        qos: QoS,
        packet_id: Option<PacketId>,
        reason: ReasonCode,
    ) {
        let Some(id) = packet_id else { return };
        if reason.is_error() {
            self.refuse_publish(qos, packet_id, reason);
            return;
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.write_ack(Packet::PubAck, id, reason),
            QoS::ExactlyOnce => self.write_ack(Packet::PubRec, id, reason),
        }
    }

    fn handle_subscribe(&mut self, subscribe: crate::packet::Subscribe) -> Result<Request, Close> {
        let settings = Arc::clone(&self.settings);
        let v5 = self.version.is_v5();
        let mut filters = Vec::with_capacity(subscribe.filters.len());
        for (raw, mut options) in subscribe.filters {
            options.qos = options.qos.min(settings.max_qos_allowed);
            let filter = match SubscriptionFilter::parse(&raw, settings.max_topic_levels) {
                Err(_) => Err(invalid_filter(v5)),
                Ok(parsed) if parsed.share_group.is_some() && options.no_local && v5 => {
                    // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                    return Err(self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR));
                }
                Ok(parsed) if parsed.share_group.is_some() && !settings.shared_subscription => {
                    Err(if v5 {
                        ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
                    } else {
                        ReasonCode::UNSPECIFIED_ERROR
                    })
                }
                Ok(parsed) if parsed.filter.has_wildcards() && !settings.wildcard_subscription => {
                    Err(if v5 {
                        ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
                    } else {
                        ReasonCode::UNSPECIFIED_ERROR
                    })
                }
                Ok(parsed) => Ok(parsed),
            };
            filters.push(FilterRequest {
                raw,
                filter,
                options,
            });
        }
        Ok(Request::Subscribe(SubscribeRequest {
            packet_id: subscribe.packet_id,
            subscription_id: subscribe.properties.subscription_identifier,
            filters,
        }))
    }

    /// The broker's answer to [`Request::Subscribe`]: one reason code per filter.
    pub fn handle_subscribe_result(&mut self, packet_id: PacketId, reason_codes: Vec<ReasonCode>) {
        let reason_codes = if self.version.is_v5() {
            reason_codes
        } else {
            // 3.1.1 knows only 0x80 for a failure.
            reason_codes
                .into_iter()
                .map(|c| {
                    if c.is_error() {
                        ReasonCode::UNSPECIFIED_ERROR
                    } else {
                        c
                    }
                })
                .collect()
        };
        self.write(&Packet::SubAck(SubAck {
            packet_id,
            properties: AckProperties::default(),
            reason_codes,
        }));
    }

    /// The broker's answer to [`Request::Unsubscribe`]: one reason code per filter (ignored
    /// in 3.1.1, whose UNSUBACK carries none).
    pub fn handle_unsubscribe_result(
        &mut self,
        packet_id: PacketId,
        reason_codes: Vec<ReasonCode>,
    ) {
        let reason_codes = if self.version.is_v5() {
            reason_codes
        } else {
            Vec::new()
        };
        self.write(&Packet::UnsubAck(UnsubAck {
            packet_id,
            properties: AckProperties::default(),
            reason_codes,
        }));
    }

    fn handle_disconnect(&mut self, disconnect: Disconnect) -> Close {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.session_expiry_secs == 0 && expiry != 0 {
                // [MQTT-3.14.2-2]: a session created with expiry 0 cannot be extended.
                return self.fail(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR);
            }
            self.session_expiry_secs = expiry.min(expiry_cap_secs(&self.settings));
        }
        self.state = State::Closed;
        let publish_will = disconnect.reason == ReasonCode::DISCONNECT_WITH_WILL;
        if !publish_will {
            // [MQTT-3.14.4-3]: a normal DISCONNECT discards the Will.
            self.will = None;
        }
        Close {
            kind: CloseKind::Normal,
            code: disconnect.reason,
            publish_will,
        }
    }

    /// How many more QoS > 0 messages the inflight window takes now (0 when not connected).
    pub fn window_free(&self) -> usize {
        match (&self.session, self.state) {
            (Some(session), State::Connected) => {
                usize::from(self.window).saturating_sub(session.inflight_len())
            }
            _ => 0,
        }
    }

    /// Whether a delivery of `qos` can be sent now (QoS 0 always can; QoS > 0 needs a slot in
    /// the inflight window).
    pub fn can_deliver(&self, qos: QoS) -> bool {
        self.state == State::Connected
            && (qos == QoS::AtMostOnce || self.session.as_ref().is_some_and(Session::has_window))
    }

    /// Sends a delivery from the session's queue.
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> DeliveryOutcome {
        if self.session.is_none() {
            return DeliveryOutcome::Expired;
        }
        if let Some(outcome) = self.write_shared_encoding(now, &delivery) {
            return outcome;
        }
        let Some(session) = self.session.as_mut() else {
            return DeliveryOutcome::Expired;
        };
        // A message that expired on its way is dropped, as the v5 spec requires.
        if delivery.message.is_expired(now) {
            return DeliveryOutcome::Expired;
        }
        // Encoded straight from the delivery: no PUBLISH is built for it.
        let packet_id = (delivery.qos != QoS::AtMostOnce).then(|| session.take_packet_id());
        if !self.write_publish(delivery.publish(now, packet_id)) {
            // Never send a client more than it accepts [MQTT-3.1.2-24]: the message is
            // dropped, and takes no window slot.
            return DeliveryOutcome::TooLarge;
        }
        if let (Some(id), Some(session)) = (packet_id, self.session.as_mut()) {
            session.sent(now, id, delivery);
        }
        DeliveryOutcome::Sent
    }

    /// Sends a QoS 0 delivery that this subscriber adds nothing to (no subscription
    /// identifier, no topic alias, no expiry) by copying the message's shared encoding (see
    /// [`WireCache`](crate::message::WireCache)), when the message has other subscribers to share it with or is encoded
    /// already. `None`: the delivery takes the usual path.
    fn write_shared_encoding(
        &mut self,
        now: Instant,
        delivery: &Delivery,
    ) -> Option<DeliveryOutcome> {
        let message = &delivery.message;
        let plain = delivery.qos == QoS::AtMostOnce
            && delivery.subscription_ids.is_empty()
            && message.expires_at.is_none()
            && self.client_topic_alias_max == 0;
        // Three owners or more: other deliveries of it are pending (beside this one, an owner
        // may be the retained store, or the publisher still routing it). A message with one
        // subscriber is encoded straight into the transmit buffer, with no copy to share.
        if !plain || (Arc::strong_count(message) < 3 && !message.wire.is_filled()) {
            return None;
        }
        let version = self.version;
        let rest = message.wire.get_or_encode(version, || {
            // RETAIN is set per subscriber in the first byte, written below.
            let publish = PublishRef {
                retain: false,
                ..delivery.publish(now, None)
            };
            let mut wire = BytesMut::new();
            if let Err(error) = codec::encode_publish(&publish, version, &mut wire) {
                tracing::warn!(%error, "could not encode packet");
            }
            let wire = wire.freeze();
            if wire.is_empty() {
                wire
            } else {
                wire.slice(1..)
            }
        })?;
        if rest.is_empty() {
            return None;
        }
        if u32::try_from(rest.len() + 1).map_or(true, |size| size > self.client_max_packet_size) {
            // Never send a client more than it accepts [MQTT-3.1.2-24].
            return Some(DeliveryOutcome::TooLarge);
        }
        // PUBLISH, QoS 0, not DUP; RETAIN as this subscriber gets it.
        self.out.put_u8(0x30 | u8::from(delivery.retain));
        self.out.extend_from_slice(rest);
        Some(DeliveryOutcome::Sent)
    }

    /// Encodes an outbound PUBLISH, replacing its topic by an alias when the client accepts
    /// aliases: a repeated topic then costs two bytes instead of its length. Returns false,
    /// writing nothing, when the packet is larger than the client's Maximum Packet Size.
    fn write_publish(&mut self, publish: PublishRef<'_>) -> bool {
        let no_topic = ByteStr::new();
        // Rebound so that it may borrow `no_topic`.
        let mut publish: PublishRef<'_> = publish;
        let mut new_alias = None;
        if self.client_topic_alias_max > 0 {
            let outbound = &mut self.aliases.get_or_insert_default().outbound;
            if let Some(alias) = outbound.get(publish.topic) {
                publish.topic_alias = Some(*alias);
                publish.topic = &no_topic;
            } else if let Ok(alias) = u16::try_from(outbound.len() + 1) {
                if alias <= self.client_topic_alias_max {
                    outbound.insert(publish.topic.clone(), alias);
                    publish.topic_alias = Some(alias);
                    new_alias = Some(publish.topic.clone());
                }
            }
        }
        // Encode first and measure: cheaper than sizing every packet, and a too-large packet
        // is the rare case.
        let before = self.out.len();
        if let Err(error) = codec::encode_publish(&publish, self.version, &mut self.out) {
            tracing::warn!(%error, "could not encode packet");
        }
        let size = self.out.len() - before;
        if u32::try_from(size).map_or(true, |size| size > self.client_max_packet_size) {
            self.out.truncate(before);
            if let Some(topic) = new_alias {
                if let Some(aliases) = self.aliases.as_mut() {
                    aliases.outbound.remove(&topic);
                }
            }
            return false;
        }
        true
    }
}

/// The configured session expiry cap in whole seconds, as the protocol counts them: a
/// fraction rounds up (a configured half second keeps a session, it does not end it at the
/// disconnect), and more than `u32::MAX` seconds is `u32::MAX`, which v5 reads as "never".
fn expiry_cap_secs(settings: &MqttSettings) -> u32 {
    let cap = settings.session_expiry_interval;
    let secs = cap.as_secs() + u64::from(cap.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

fn invalid_filter(v5: bool) -> ReasonCode {
    if v5 {
        ReasonCode::TOPIC_FILTER_INVALID
    } else {
        ReasonCode::UNSPECIFIED_ERROR
    }
}
