//! The packet model: one set of types for MQTT 3.1.1 and 5.0.
//!
//! Fields that only exist in 5.0 (properties, most reason codes) are simply left at their
//! defaults for 3.1.1; the codec ([`crate::codec`]) reads and writes each version's wire form
//! from and to these types. Strings are [`ByteStr`] and binary data is [`Bytes`], sliced out of
//! the received buffer rather than copied.

use std::num::NonZeroU16;

use bytes::Bytes;

use crate::{ByteStr, ReasonCode};

/// The protocol version, read from CONNECT and fixed for the life of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (protocol name `MQIsdp`, level 3), served with 3.1.1 semantics.
    V31,
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl ProtocolVersion {
    /// Whether this is MQTT 5.0 (properties and reason codes on the wire).
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }

    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Self::V31 => 3,
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its wire value; `None` for 3 and above.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier: never zero on the wire (spec 2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// Packet id 1, where allocation starts.
    pub const FIRST: Self = Self(NonZeroU16::MIN);

    /// The id for a wire value; `None` for 0, which the spec forbids.
    pub fn new(value: u16) -> Option<Self> {
        NonZeroU16::new(value).map(Self)
    }

    /// The wire value.
    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// The id after this one, wrapping from 65535 to 1.
    pub fn next(self) -> Self {
        Self(self.0.checked_add(1).unwrap_or(NonZeroU16::MIN))
    }
}

/// A user property (v5): a name/value pair, passed through untouched and in order.
pub type UserProperty = (ByteStr, ByteStr);

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (client to server).
    Connect(Box<Connect>),
    /// CONNACK (server to client).
    ConnAck(ConnAck),
    /// PUBLISH (both directions).
    Publish(Publish),
    /// PUBACK (both directions).
    PubAck(PubResponse),
    /// PUBREC (both directions).
    PubRec(PubResponse),
    /// PUBREL (both directions).
    PubRel(PubResponse),
    /// PUBCOMP (both directions).
    PubComp(PubResponse),
    /// SUBSCRIBE (client to server).
    Subscribe(Subscribe),
    /// SUBACK (server to client).
    SubAck(SubAck),
    /// UNSUBSCRIBE (client to server).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (server to client).
    UnsubAck(UnsubAck),
    /// PINGREQ (client to server).
    PingReq,
    /// PINGRESP (server to client).
    PingResp,
    /// DISCONNECT (both directions in v5; client to server in 3.1.1).
    Disconnect(Disconnect),
    /// AUTH (v5 only, both directions).
    Auth(Auth),
}

impl Packet {
    /// The packet's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "CONNECT",
            Self::ConnAck(_) => "CONNACK",
            Self::Publish(_) => "PUBLISH",
            Self::PubAck(_) => "PUBACK",
            Self::PubRec(_) => "PUBREC",
            Self::PubRel(_) => "PUBREL",
            Self::PubComp(_) => "PUBCOMP",
            Self::Subscribe(_) => "SUBSCRIBE",
            Self::SubAck(_) => "SUBACK",
            Self::Unsubscribe(_) => "UNSUBSCRIBE",
            Self::UnsubAck(_) => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect(_) => "DISCONNECT",
            Self::Auth(_) => "AUTH",
        }
    }
}

/// CONNECT (spec 3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// Protocol version from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// v5 properties.
    pub properties: ConnectProperties,
    /// Client identifier; may be empty.
    pub client_id: ByteStr,
    /// The Will, if the Will flag is set.
    pub will: Option<Will>,
    /// User name, if the flag is set.
    pub username: Option<ByteStr>,
    /// Password, if the flag is set.
    pub password: Option<Bytes>,
}

/// CONNECT properties (spec 3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Session Expiry Interval in seconds (absent means 0).
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (absent means 65535).
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size the client accepts.
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum the client accepts (absent means 0).
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information.
    pub request_response_information: Option<bool>,
    /// Request Problem Information (absent means true).
    pub request_problem_information: Option<bool>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
    /// Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// The Will in CONNECT (spec 3.1.2.5, 3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Will {
    /// Will topic, as sent (validated by the connection, not the codec).
    pub topic: ByteStr,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// v5 Will properties.
    pub properties: WillProperties,
}

/// Will properties (spec 3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// Will Delay Interval in seconds.
    pub will_delay_interval: Option<u32>,
    /// Payload Format Indicator (true: UTF-8).
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<ByteStr>,
    /// Response Topic.
    pub response_topic: Option<ByteStr>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK (spec 3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Reason code; mapped to a 3.1.1 return code by the encoder for 3.1.1.
    pub reason: ReasonCode,
    /// v5 properties.
    pub properties: ConnAckProperties,
}

/// The CONNACK properties a [`ConnAckProperties`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckPropertyValues {
    /// Session Expiry Interval the server uses, when it differs from the request.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum of the server.
    pub receive_maximum: Option<u16>,
    /// Maximum QoS (absent means 2).
    pub maximum_qos: Option<QoS>,
    /// Retain Available (absent means true).
    pub retain_available: Option<bool>,
    /// Maximum Packet Size the server accepts.
    pub maximum_packet_size: Option<u32>,
    /// Assigned Client Identifier, when the client sent an empty one.
    pub assigned_client_identifier: Option<ByteStr>,
    /// Topic Alias Maximum the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String.
    pub reason_string: Option<ByteStr>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
    /// Wildcard Subscription Available (absent means true).
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available (absent means true).
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available (absent means true).
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive, when the server overrides the client's.
    pub server_keep_alive: Option<u16>,
    /// Response Information.
    pub response_information: Option<ByteStr>,
    /// Server Reference.
    pub server_reference: Option<ByteStr>,
    /// Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH (spec 3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name, as sent: may be empty in v5 when a Topic Alias stands for it. Validated by
    /// the connection (after alias resolution), not by the codec.
    pub topic: ByteStr,
    /// Packet identifier: `Some` exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// v5 properties.
    pub properties: PublishProperties,
    /// Application payload.
    pub payload: Bytes,
}

/// A PUBLISH to send, made of borrowed parts: what a server sends a subscriber, encoded
/// straight from the routed message and what the subscription adds to it, so that no
/// [`Publish`] (and no copy of its properties) is built per delivery. Encode it with
/// [`encode_publish`](crate::codec::encode_publish); a [`Publish`] is encoded through one too.
///
/// The properties that belong to one hop rather than to the message are fields of their own:
/// `properties`' own Message Expiry Interval, Topic Alias and Subscription Identifiers are
/// not sent.
#[derive(Debug, Clone, Copy)]
pub struct PublishRef<'a> {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; empty when `topic_alias` stands for it.
    pub topic: &'a ByteStr,
    /// Packet identifier: `Some` exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// The message's v5 properties, but for the three below.
    pub properties: &'a PublishProperties,
    /// Message Expiry Interval: the time the message has left.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias.
    pub topic_alias: Option<u16>,
    /// Subscription Identifiers of the subscriptions it matched.
    pub subscription_identifiers: &'a [u32],
    /// Application payload.
    pub payload: &'a [u8],
}

impl<'a> From<&'a Publish> for PublishRef<'a> {
    fn from(p: &'a Publish) -> Self {
        Self {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            properties: &p.properties,
            message_expiry_interval: p.properties.message_expiry_interval,
            topic_alias: p.properties.topic_alias,
            subscription_identifiers: &p.properties.subscription_identifiers,
            payload: &p.payload,
        }
    }
}

/// The properties of a packet, in a box made when the first one is set: every `Packet` is
/// as large as its largest variant and is moved whole from the decoder through the
/// connection, and properties are what made the variants large (a v5 CONNACK's 256 bytes)
/// while most packets carry none (a 3.1.1 packet never does). Reading a field sees the
/// properties, all absent when there is no box; writing one makes the box, so code that
/// changes what may not exist goes through [`Boxed::values_mut`].
#[derive(Clone, Default)]
pub struct Boxed<T>(Option<Box<T>>);

/// Properties a [`Boxed`] can hold: what it reads as without a box.
pub trait NoProperties: Default + PartialEq + 'static {
    /// No property at all.
    fn none() -> &'static Self;
}

impl<T: NoProperties> Boxed<T> {
    /// The properties to change, if there are any: `None` (and nothing made) when there are
    /// none.
    pub fn values_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// Whether there is a box (for tests: reading does not tell).
    #[cfg(test)]
    pub(crate) fn is_boxed(&self) -> bool {
        self.0.is_some()
    }
}

impl<T: NoProperties> std::ops::Deref for Boxed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self.0.as_deref() {
            Some(values) => values,
            None => T::none(),
        }
    }
}

impl<T: NoProperties> std::ops::DerefMut for Boxed<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: NoProperties> From<T> for Boxed<T> {
    fn from(values: T) -> Self {
        if values == *T::none() {
            Self(None)
        } else {
            Self(Some(Box::new(values)))
        }
    }
}

/// Equal when they read the same, boxed or not.
impl<T: NoProperties> PartialEq for Boxed<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: NoProperties + Eq> Eq for Boxed<T> {}

impl<T: NoProperties + std::fmt::Debug> std::fmt::Debug for Boxed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Implements [`NoProperties`] with a static made on first use.
macro_rules! no_properties_by_default {
    ($($values:ty),*) => {$(
        impl NoProperties for $values {
            fn none() -> &'static Self {
                static NONE: std::sync::LazyLock<$values> = std::sync::LazyLock::new(<$values>::default);
                &NONE
            }
        }
    )*};
}

no_properties_by_default!(
    ConnAckPropertyValues,
    DisconnectPropertyValues,
    AuthPropertyValues
);

/// PUBLISH properties (spec 3.3.2.3). Boxed: a pointer, not 160 bytes, in every PUBLISH and
/// every message.
pub type PublishProperties = Boxed<PublishPropertyValues>;

/// CONNACK properties (spec 3.2.2.3), boxed.
pub type ConnAckProperties = Boxed<ConnAckPropertyValues>;

/// DISCONNECT properties (spec 3.14.2.2), boxed.
pub type DisconnectProperties = Boxed<DisconnectPropertyValues>;

/// AUTH properties (spec 3.15.2.2), boxed.
pub type AuthProperties = Boxed<AuthPropertyValues>;

/// No PUBLISH property: a constant, as PUBLISH properties are read on every delivery.
static NO_PUBLISH_PROPERTIES: PublishPropertyValues = PublishPropertyValues {
    payload_format_indicator: None,
    message_expiry_interval: None,
    topic_alias: None,
    response_topic: None,
    correlation_data: None,
    user_properties: Vec::new(),
    subscription_identifiers: Vec::new(),
    content_type: None,
};

impl NoProperties for PublishPropertyValues {
    fn none() -> &'static Self {
        &NO_PUBLISH_PROPERTIES
    }
}

/// The PUBLISH properties a [`PublishProperties`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishPropertyValues {
    /// Payload Format Indicator (true: UTF-8).
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias.
    pub topic_alias: Option<u16>,
    /// Response Topic.
    pub response_topic: Option<ByteStr>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
    /// Subscription Identifiers (server to client only).
    pub subscription_identifiers: Vec<u32>,
    /// Content Type.
    pub content_type: Option<ByteStr>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP (spec 3.4 to 3.7): they share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    /// Packet identifier of the publish being acknowledged.
    pub packet_id: PacketId,
    /// Reason code (v5; always success in 3.1.1).
    pub reason: ReasonCode,
    /// v5 properties.
    pub properties: AckProperties,
}

impl PubResponse {
    /// A successful response without properties.
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }
    }
}

/// The properties of acknowledgements (PUBACK..PUBCOMP, SUBACK, UNSUBACK).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// Reason String.
    pub reason_string: Option<ByteStr>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
}

/// Retain Handling subscription option (spec 3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription did not already exist.
    SendIfNew = 1,
    /// Do not send retained messages.
    DoNotSend = 2,
}

/// Subscription options (spec 3.8.3.1); only `qos` exists in 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: RetainHandling,
}

/// SUBSCRIBE (spec 3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// v5 properties.
    pub properties: SubscribeProperties,
    /// Topic filters as sent (validated by the broker, so that an invalid filter gets its own
    /// SUBACK reason code) with their options; never empty.
    pub filters: Vec<(ByteStr, SubscriptionOptions)>,
}

/// SUBSCRIBE properties (spec 3.8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// Subscription Identifier (1 to 268,435,455).
    pub subscription_identifier: Option<u32>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK (spec 3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// v5 properties.
    pub properties: AckProperties,
    /// One code per filter: granted QoS 0..2 or a failure (3.1.1 only has 0x80 for failures).
    pub reason_codes: Vec<ReasonCode>,
}

/// UNSUBSCRIBE (spec 3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// User properties (v5).
    pub user_properties: Vec<UserProperty>,
    /// Topic filters as sent; never empty.
    pub filters: Vec<ByteStr>,
}

/// UNSUBACK (spec 3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// v5 properties.
    pub properties: AckProperties,
    /// One code per filter (v5 only; empty and not encoded in 3.1.1).
    pub reason_codes: Vec<ReasonCode>,
}

/// DISCONNECT (spec 3.14).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Reason code (v5).
    pub reason: ReasonCode,
    /// v5 properties.
    pub properties: DisconnectProperties,
}

/// The DISCONNECT properties a [`DisconnectProperties`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectPropertyValues {
    /// Session Expiry Interval update (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// Reason String.
    pub reason_string: Option<ByteStr>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
    /// Server Reference.
    pub server_reference: Option<ByteStr>,
}

/// AUTH (spec 3.15, v5 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Reason code.
    pub reason: ReasonCode,
    /// Properties.
    pub properties: AuthProperties,
}

/// The AUTH properties an [`AuthProperties`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthPropertyValues {
    /// Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// Reason String.
    pub reason_string: Option<ByteStr>,
    /// User properties.
    pub user_properties: Vec<UserProperty>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_id_wraps_to_one() {
        let max = PacketId::new(u16::MAX).unwrap();
        assert_eq!(max.next().get(), 1);
        assert!(PacketId::new(0).is_none());
    }

    #[test]
    // Assigning a field of a default is what is tested: that it makes the properties.
    #[allow(clippy::field_reassign_with_default)]
    fn publish_properties_are_made_only_when_there_is_one() {
        let mut none = PublishProperties::default();
        assert_eq!(none.topic_alias, None, "reads as absent");
        assert!(none.values_mut().is_none(), "nothing made to change");
        assert!(
            PublishProperties::from(PublishPropertyValues::default())
                .0
                .is_none()
        );
        assert!(std::mem::size_of::<Publish>() <= 88);
        // Every packet is moved whole from the decoder through the connection: no variant
        // may make all of them large again (a v5 CONNACK's properties made them 264 bytes).
        assert!(std::mem::size_of::<Packet>() <= 96);

        let mut some = PublishProperties::default();
        some.topic_alias = Some(3);
        assert_eq!(some.values_mut().map(|v| v.topic_alias), Some(Some(3)));
        // Made and emptied again, it equals none.
        some.topic_alias = None;
        assert_eq!(some, none);
    }
}
