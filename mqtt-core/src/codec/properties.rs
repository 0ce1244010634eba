//! MQTT 5.0 properties (spec 2.2.2): the identifier table, which packet allows which property,
//! duplicate and value checks on decode, and the property blocks of each packet on encode.
//!
//! The table lives in three places that must agree and are kept side by side here:
//! [`read_value`] (identifier to wire type), [`allowed`] (identifier to packets), and the
//! `WriteProps` impls (field to identifier).

use bytes::Bytes;

use super::{
    DecodeError,
    decode::Reader,
    encode::{SUBSCRIPTION_ID_MAX, Sink},
};
use crate::{
    ByteStr, QoS,
    packet::{
        AckProperties, AuthProperties, AuthPropertyValues, Boxed, ConnAckProperties,
        ConnAckPropertyValues, ConnectProperties, DisconnectProperties, DisconnectPropertyValues,
        NoProperties, PublishProperties, PublishRef, SubscribeProperties, UserProperty,
        WillProperties,
    },
};

/// Property identifiers (spec 2.2.2.2, table 2-4).
pub(super) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

use id::*;

/// Where a property block sits: each allows its own set of properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

/// Whether property `id` may appear in `ctx` (spec 2.2.2.2, table 2-4). `false` for unknown ids.
fn allowed(id: u8, ctx: Context) -> bool {
    use Context as C;
    match id {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => matches!(ctx, C::Publish | C::Will),
        SUBSCRIPTION_IDENTIFIER => matches!(ctx, C::Publish | C::Subscribe),
        SESSION_EXPIRY_INTERVAL => matches!(ctx, C::Connect | C::ConnAck | C::Disconnect),
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => ctx == C::ConnAck,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => {
            matches!(ctx, C::Connect | C::ConnAck | C::Auth)
        }
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => ctx == C::Connect,
        WILL_DELAY_INTERVAL => ctx == C::Will,
        SERVER_REFERENCE => matches!(ctx, C::ConnAck | C::Disconnect),
        REASON_STRING => matches!(
            ctx,
            C::ConnAck | C::PubResponse | C::SubAck | C::UnsubAck | C::Disconnect | C::Auth
        ),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
            matches!(ctx, C::Connect | C::ConnAck)
        }
        TOPIC_ALIAS => ctx == C::Publish,
        USER_PROPERTY => true,
        _ => false,
    }
}

/// Whether `id` may appear more than once in `ctx`: User Property anywhere, Subscription
/// Identifier in PUBLISH (one per matching subscription, spec 3.3.2.3.8).
fn repeatable(id: u8, ctx: Context) -> bool {
    id == USER_PROPERTY || (id == SUBSCRIPTION_IDENTIFIER && ctx == Context::Publish)
}

/// One decoded property, typed by its identifier.
#[derive(Debug)]
enum Property {
    PayloadFormatIndicator(bool),
    MessageExpiryInterval(u32),
    ContentType(ByteStr),
    ResponseTopic(ByteStr),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(ByteStr),
    ServerKeepAlive(u16),
    AuthenticationMethod(ByteStr),
    AuthenticationData(Bytes),
    RequestProblemInformation(bool),
    WillDelayInterval(u32),
    RequestResponseInformation(bool),
    ResponseInformation(ByteStr),
    ServerReference(ByteStr),
    ReasonString(ByteStr),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQoS(QoS),
    RetainAvailable(bool),
    User(ByteStr, ByteStr),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(bool),
    SubscriptionIdentifierAvailable(bool),
    SharedSubscriptionAvailable(bool),
}

/// Reads a "Byte" property that the spec restricts to 0 or 1 ("It is a Protocol Error to
/// include a value other than 0 or 1").
fn read_bool(r: &mut Reader, id: u8) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// Reads the value of property `id` with the wire type the table gives it, and checks the value
/// ranges the spec defines as protocol errors.
fn read_value(r: &mut Reader, id: u8) -> Result<Property, DecodeError> {
    use Property as P;
    let nonzero_u16 = |r: &mut Reader| match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(v),
    };
    Ok(match id {
        PAYLOAD_FORMAT_INDICATOR => P::PayloadFormatIndicator(read_bool(r, id)?),
        MESSAGE_EXPIRY_INTERVAL => P::MessageExpiryInterval(r.u32()?),
        CONTENT_TYPE => P::ContentType(r.string()?),
        RESPONSE_TOPIC => P::ResponseTopic(r.string()?),
        CORRELATION_DATA => P::CorrelationData(r.binary()?),
        SUBSCRIPTION_IDENTIFIER => match r.varint()? {
            0 => return Err(DecodeError::InvalidPropertyValue(id)),
            v => P::SubscriptionIdentifier(v),
        },
        SESSION_EXPIRY_INTERVAL => P::SessionExpiryInterval(r.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => P::AssignedClientIdentifier(r.string()?),
        SERVER_KEEP_ALIVE => P::ServerKeepAlive(r.u16()?),
        AUTHENTICATION_METHOD => P::AuthenticationMethod(r.string()?),
        AUTHENTICATION_DATA => P::AuthenticationData(r.binary()?),
        REQUEST_PROBLEM_INFORMATION => P::RequestProblemInformation(read_bool(r, id)?),
        WILL_DELAY_INTERVAL => P::WillDelayInterval(r.u32()?),
        REQUEST_RESPONSE_INFORMATION => P::RequestResponseInformation(read_bool(r, id)?),
        RESPONSE_INFORMATION => P::ResponseInformation(r.string()?),
        SERVER_REFERENCE => P::ServerReference(r.string()?),
        REASON_STRING => P::ReasonString(r.string()?),
        RECEIVE_MAXIMUM => P::ReceiveMaximum(nonzero_u16(r)?),
        TOPIC_ALIAS_MAXIMUM => P::TopicAliasMaximum(r.u16()?),
        // Topic Alias 0 is the connection's to reject, with its own reason code (0x94).
        TOPIC_ALIAS => P::TopicAlias(r.u16()?),
        MAXIMUM_QOS => match r.u8()? {
            0 => P::MaximumQoS(QoS::AtMostOnce),
            1 => P::MaximumQoS(QoS::AtLeastOnce),
            _ => return Err(DecodeError::InvalidPropertyValue(id)),
        },
        RETAIN_AVAILABLE => P::RetainAvailable(read_bool(r, id)?),
        USER_PROPERTY => P::User(r.string()?, r.string()?),
        MAXIMUM_PACKET_SIZE => match r.u32()? {
            0 => return Err(DecodeError::InvalidPropertyValue(id)),
            v => P::MaximumPacketSize(v),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => P::WildcardSubscriptionAvailable(read_bool(r, id)?),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => P::SubscriptionIdentifierAvailable(read_bool(r, id)?),
        SHARED_SUBSCRIPTION_AVAILABLE => P::SharedSubscriptionAvailable(read_bool(r, id)?),
        _ => return Err(DecodeError::UnknownProperty(id)),
    })
}

/// Iterates over one property block, enforcing the table, duplicates, and the user-property
/// budget shared by all blocks of a packet.
struct Properties<'a> {
    block: Reader,
    ctx: Context,
    /// Bit `n` is set once property `n` has been seen (identifiers are all below 64).
    seen: u64,
    /// User properties this packet may still carry.
    user_budget: &'a mut u32,
    max_user: u32,
}

impl<'a> Properties<'a> {
    /// Reads the Property Length and takes that many bytes from `r`: a length beyond the
    /// packet is [`DecodeError::Truncated`] (a Malformed Packet).
    fn new(r: &mut Reader, ctx: Context, limits: &'a mut Limits) -> Result<Self, DecodeError> {
        let len = r.varint()?;
        let block = r.take(usize::try_from(len).map_err(|_| DecodeError::Truncated)?)?;
        Ok(Self {
            block: Reader::new(block),
            ctx,
            seen: 0,
            user_budget: &mut limits.user_properties_left,
            max_user: limits.max_user_properties,
        })
    }

    fn next(&mut self) -> Result<Option<Property>, DecodeError> {
        if self.block.is_empty() {
            return Ok(None);
        }
        // The identifier is a variable byte integer, but every defined one fits in one byte;
        // a first byte with the continuation bit is therefore an unknown identifier.
        let id = self.block.u8()?;
        if id >= 0x80 || !allowed(id, self.ctx) {
            return Err(if id < 0x80 && is_known(id) {
                DecodeError::PropertyNotAllowed(id)
            } else {
                DecodeError::UnknownProperty(id)
            });
        }
        let bit = 1u64 << id;
        if self.seen & bit != 0 && !repeatable(id, self.ctx) {
            return Err(DecodeError::DuplicateProperty(id));
        }
        self.seen |= bit;
        if id == USER_PROPERTY {
            // Checked before the pair is read, so an attacker's millionth pair costs nothing.
            *self.user_budget = self
                .user_budget
                .checked_sub(1)
                .ok_or(DecodeError::TooManyUserProperties(self.max_user))?;
        }
        read_value(&mut self.block, id).map(Some)
    }
}

/// Whether the spec defines property `id` at all.
fn is_known(id: u8) -> bool {
    use Context as C;
    [
        C::Connect,
        C::Will,
        C::ConnAck,
        C::Publish,
        C::PubResponse,
        C::Subscribe,
        C::SubAck,
        C::Unsubscribe,
        C::UnsubAck,
        C::Disconnect,
        C::Auth,
    ]
    .into_iter()
    .any(|ctx| allowed(id, ctx))
}

/// Per-packet decoding limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The configured cap on user properties per packet.
    pub(super) max_user_properties: u32,
    /// How many more user properties the packet being decoded may carry.
    pub(super) user_properties_left: u32,
}

impl Limits {
    /// Fresh limits for one packet.
    pub(super) fn new(max_user_properties: u32) -> Self {
        Self {
            max_user_properties,
            user_properties_left: max_user_properties,
        }
    }
}

/// The error for a property the table allowed but the packet's struct has no field for; it
/// cannot happen with a consistent table, and is still an ordinary error rather than a panic.
fn not_allowed(p: &Property) -> DecodeError {
    DecodeError::PropertyNotAllowed(property_id(p))
}

fn property_id(p: &Property) -> u8 {
    use Property as P;
    match p {
        P::PayloadFormatIndicator(_) => PAYLOAD_FORMAT_INDICATOR,
        P::MessageExpiryInterval(_) => MESSAGE_EXPIRY_INTERVAL,
        P::ContentType(_) => CONTENT_TYPE,
        P::ResponseTopic(_) => RESPONSE_TOPIC,
        P::CorrelationData(_) => CORRELATION_DATA,
        P::SubscriptionIdentifier(_) => SUBSCRIPTION_IDENTIFIER,
        P::SessionExpiryInterval(_) => SESSION_EXPIRY_INTERVAL,
        P::AssignedClientIdentifier(_) => ASSIGNED_CLIENT_IDENTIFIER,
        P::ServerKeepAlive(_) => SERVER_KEEP_ALIVE,
        P::AuthenticationMethod(_) => AUTHENTICATION_METHOD,
        P::AuthenticationData(_) => AUTHENTICATION_DATA,
        P::RequestProblemInformation(_) => REQUEST_PROBLEM_INFORMATION,
        P::WillDelayInterval(_) => WILL_DELAY_INTERVAL,
        P::RequestResponseInformation(_) => REQUEST_RESPONSE_INFORMATION,
        P::ResponseInformation(_) => RESPONSE_INFORMATION,
        P::ServerReference(_) => SERVER_REFERENCE,
        P::ReasonString(_) => REASON_STRING,
        P::ReceiveMaximum(_) => RECEIVE_MAXIMUM,
        P::TopicAliasMaximum(_) => TOPIC_ALIAS_MAXIMUM,
        P::TopicAlias(_) => TOPIC_ALIAS,
        P::MaximumQoS(_) => MAXIMUM_QOS,
        P::RetainAvailable(_) => RETAIN_AVAILABLE,
        P::User(..) => USER_PROPERTY,
        P::MaximumPacketSize(_) => MAXIMUM_PACKET_SIZE,
        P::WildcardSubscriptionAvailable(_) => WILDCARD_SUBSCRIPTION_AVAILABLE,
        P::SubscriptionIdentifierAvailable(_) => SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        P::SharedSubscriptionAvailable(_) => SHARED_SUBSCRIPTION_AVAILABLE,
    }
}

/// Reads CONNECT properties.
pub(super) fn read_connect(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<ConnectProperties, DecodeError> {
    use Property as P;
    let mut out = ConnectProperties::default();
    let mut it = Properties::new(r, Context::Connect, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::SessionExpiryInterval(v) => out.session_expiry_interval = Some(v),
            P::ReceiveMaximum(v) => out.receive_maximum = Some(v),
            P::MaximumPacketSize(v) => out.maximum_packet_size = Some(v),
            P::TopicAliasMaximum(v) => out.topic_alias_maximum = Some(v),
            P::RequestResponseInformation(v) => out.request_response_information = Some(v),
            P::RequestProblemInformation(v) => out.request_problem_information = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            P::AuthenticationMethod(v) => out.authentication_method = Some(v),
            P::AuthenticationData(v) => out.authentication_data = Some(v),
            other => return Err(not_allowed(&other)),
        }
    }
    if out.authentication_data.is_some() && out.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    Ok(out)
}

/// Reads Will properties (in CONNECT's payload).
pub(super) fn read_will(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<WillProperties, DecodeError> {
    use Property as P;
    let mut out = WillProperties::default();
    let mut it = Properties::new(r, Context::Will, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::WillDelayInterval(v) => out.will_delay_interval = Some(v),
            P::PayloadFormatIndicator(v) => out.payload_format_indicator = Some(v),
            P::MessageExpiryInterval(v) => out.message_expiry_interval = Some(v),
            P::ContentType(v) => out.content_type = Some(v),
            P::ResponseTopic(v) => out.response_topic = Some(v),
            P::CorrelationData(v) => out.correlation_data = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads CONNACK properties.
pub(super) fn read_connack(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<ConnAckProperties, DecodeError> {
    use Property as P;
    let mut out = ConnAckProperties::default();
    let mut it = Properties::new(r, Context::ConnAck, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::SessionExpiryInterval(v) => out.session_expiry_interval = Some(v),
            P::ReceiveMaximum(v) => out.receive_maximum = Some(v),
            P::MaximumQoS(v) => out.maximum_qos = Some(v),
            P::RetainAvailable(v) => out.retain_available = Some(v),
            P::MaximumPacketSize(v) => out.maximum_packet_size = Some(v),
            P::AssignedClientIdentifier(v) => out.assigned_client_identifier = Some(v),
            P::TopicAliasMaximum(v) => out.topic_alias_maximum = Some(v),
            P::ReasonString(v) => out.reason_string = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            P::WildcardSubscriptionAvailable(v) => out.wildcard_subscription_available = Some(v),
            P::SubscriptionIdentifierAvailable(v) => {
                out.subscription_identifiers_available = Some(v);
            }
            P::SharedSubscriptionAvailable(v) => out.shared_subscription_available = Some(v),
            P::ServerKeepAlive(v) => out.server_keep_alive = Some(v),
            P::ResponseInformation(v) => out.response_information = Some(v),
            P::ServerReference(v) => out.server_reference = Some(v),
            P::AuthenticationMethod(v) => out.authentication_method = Some(v),
            P::AuthenticationData(v) => out.authentication_data = Some(v),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads PUBLISH properties.
pub(super) fn read_publish(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<PublishProperties, DecodeError> {
    use Property as P;
    let mut out = PublishProperties::default();
    let mut it = Properties::new(r, Context::Publish, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::PayloadFormatIndicator(v) => out.payload_format_indicator = Some(v),
            P::MessageExpiryInterval(v) => out.message_expiry_interval = Some(v),
            P::TopicAlias(v) => out.topic_alias = Some(v),
            P::ResponseTopic(v) => out.response_topic = Some(v),
            P::CorrelationData(v) => out.correlation_data = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            P::SubscriptionIdentifier(v) => out.subscription_identifiers.push(v),
            P::ContentType(v) => out.content_type = Some(v),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads the properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK or UNSUBACK.
pub(super) fn read_ack(
    r: &mut Reader,
    ctx: Context,
    limits: &mut Limits,
) -> Result<AckProperties, DecodeError> {
    use Property as P;
    let mut out = AckProperties::default();
    let mut it = Properties::new(r, ctx, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::ReasonString(v) => out.reason_string = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads SUBSCRIBE properties.
pub(super) fn read_subscribe(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<SubscribeProperties, DecodeError> {
    use Property as P;
    let mut out = SubscribeProperties::default();
    let mut it = Properties::new(r, Context::Subscribe, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::SubscriptionIdentifier(v) => out.subscription_identifier = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads UNSUBSCRIBE properties: user properties only.
pub(super) fn read_unsubscribe(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<Vec<UserProperty>, DecodeError> {
    let mut out = Vec::new();
    let mut it = Properties::new(r, Context::Unsubscribe, limits)?;
    while let Some(p) = it.next()? {
        match p {
            Property::User(k, v) => out.push((k, v)),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads DISCONNECT properties.
pub(super) fn read_disconnect(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<DisconnectProperties, DecodeError> {
    use Property as P;
    let mut out = DisconnectProperties::default();
    let mut it = Properties::new(r, Context::Disconnect, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::SessionExpiryInterval(v) => out.session_expiry_interval = Some(v),
            P::ReasonString(v) => out.reason_string = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            P::ServerReference(v) => out.server_reference = Some(v),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

/// Reads AUTH properties.
pub(super) fn read_auth(
    r: &mut Reader,
    limits: &mut Limits,
) -> Result<AuthProperties, DecodeError> {
    use Property as P;
    let mut out = AuthProperties::default();
    let mut it = Properties::new(r, Context::Auth, limits)?;
    while let Some(p) = it.next()? {
        match p {
            P::AuthenticationMethod(v) => out.authentication_method = Some(v),
            P::AuthenticationData(v) => out.authentication_data = Some(v),
            P::ReasonString(v) => out.reason_string = Some(v),
            P::User(k, v) => out.user_properties.push((k, v)),
            other => return Err(not_allowed(&other)),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/// A property block that can be written to a [`Sink`], identifier by identifier. The same
/// method serves to measure the block (for its Property Length) and to write it, so the two
/// cannot disagree.
pub(super) trait WriteProps {
    /// Writes every present property, without the Property Length.
    fn write_props<S: Sink>(&self, s: &mut S);
}

impl<T: WriteProps + NoProperties> WriteProps for Boxed<T> {
    fn write_props<S: Sink>(&self, s: &mut S) {
        (**self).write_props(s);
    }
}

/// Writes `props` preceded by its Property Length.
pub(super) fn write_block<S: Sink, P: WriteProps + ?Sized>(s: &mut S, props: &P) {
    let mut measure = super::encode::Measure::default();
    props.write_props(&mut measure);
    // A block over u32::MAX cannot be encoded anyway; the packet-size check rejects it.
    s.varint(u32::try_from(measure.len).unwrap_or(u32::MAX));
    props.write_props(s);
}

fn bool_prop<S: Sink>(s: &mut S, id: u8, v: Option<bool>) {
    if let Some(v) = v {
        s.u8(id);
        s.u8(u8::from(v));
    }
}

fn u16_prop<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.u8(id);
        s.u16(v);
    }
}

/// A u16 property the spec forbids to be 0 (Receive Maximum).
fn nonzero_u16_prop<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if v == Some(0) {
        s.fail(super::EncodeError::InvalidPropertyValue(id));
    }
    u16_prop(s, id, v);
}

fn u32_prop<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.u8(id);
        s.u32(v);
    }
}

/// A u32 property the spec forbids to be 0 (Maximum Packet Size).
fn nonzero_u32_prop<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if v == Some(0) {
        s.fail(super::EncodeError::InvalidPropertyValue(id));
    }
    u32_prop(s, id, v);
}

fn str_prop<S: Sink>(s: &mut S, id: u8, v: Option<&ByteStr>) {
    if let Some(v) = v {
        s.u8(id);
        s.lp(v.as_bytes());
    }
}

fn bin_prop<S: Sink>(s: &mut S, id: u8, v: Option<&Bytes>) {
    if let Some(v) = v {
        s.u8(id);
        s.lp(v);
    }
}

fn subscription_id<S: Sink>(s: &mut S, v: u32) {
    if v == 0 || v > SUBSCRIPTION_ID_MAX {
        s.fail(super::EncodeError::InvalidPropertyValue(
            SUBSCRIPTION_IDENTIFIER,
        ));
    }
    s.u8(SUBSCRIPTION_IDENTIFIER);
    s.varint(v);
}

fn user_props<S: Sink>(s: &mut S, props: &[UserProperty]) {
    for (k, v) in props {
        s.u8(USER_PROPERTY);
        s.lp(k.as_bytes());
        s.lp(v.as_bytes());
    }
}

impl WriteProps for ConnectProperties {
    fn write_props<S: Sink>(&self, s: &mut S) {
        u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        nonzero_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        nonzero_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        bool_prop(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        bool_prop(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        );
        bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for WillProperties {
    fn write_props<S: Sink>(&self, s: &mut S) {
        u32_prop(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        bool_prop(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        str_prop(s, CONTENT_TYPE, self.content_type.as_ref());
        str_prop(s, RESPONSE_TOPIC, self.response_topic.as_ref());
        bin_prop(s, CORRELATION_DATA, self.correlation_data.as_ref());
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for ConnAckPropertyValues {
    fn write_props<S: Sink>(&self, s: &mut S) {
        u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        nonzero_u16_prop(s, RECEIVE_MAXIMUM, self.receive_maximum);
        // The wire only allows 0 or 1; QoS 2 is what an absent property means, so it is
        // written as absence.
        match self.maximum_qos {
            Some(QoS::AtMostOnce) => {
                s.u8(MAXIMUM_QOS);
                s.u8(0);
            }
            Some(QoS::AtLeastOnce) => {
                s.u8(MAXIMUM_QOS);
                s.u8(1);
            }
            Some(QoS::ExactlyOnce) | None => {}
        }
        bool_prop(s, RETAIN_AVAILABLE, self.retain_available);
        nonzero_u32_prop(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        str_prop(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_ref(),
        );
        u16_prop(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        str_prop(s, REASON_STRING, self.reason_string.as_ref());
        bool_prop(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        bool_prop(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        bool_prop(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        u16_prop(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        str_prop(s, RESPONSE_INFORMATION, self.response_information.as_ref());
        str_prop(s, SERVER_REFERENCE, self.server_reference.as_ref());
        str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        );
        bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for PublishRef<'_> {
    fn write_props<S: Sink>(&self, s: &mut S) {
        let p = self.properties;
        bool_prop(s, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
        u32_prop(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        u16_prop(s, TOPIC_ALIAS, self.topic_alias);
        str_prop(s, RESPONSE_TOPIC, p.response_topic.as_ref());
        bin_prop(s, CORRELATION_DATA, p.correlation_data.as_ref());
        str_prop(s, CONTENT_TYPE, p.content_type.as_ref());
        for &v in self.subscription_identifiers {
            subscription_id(s, v);
        }
        user_props(s, &p.user_properties);
    }
}

impl WriteProps for AckProperties {
    fn write_props<S: Sink>(&self, s: &mut S) {
        str_prop(s, REASON_STRING, self.reason_string.as_ref());
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for SubscribeProperties {
    fn write_props<S: Sink>(&self, s: &mut S) {
        if let Some(v) = self.subscription_identifier {
            subscription_id(s, v);
        }
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for [UserProperty] {
    fn write_props<S: Sink>(&self, s: &mut S) {
        user_props(s, self);
    }
}

impl WriteProps for DisconnectPropertyValues {
    fn write_props<S: Sink>(&self, s: &mut S) {
        u32_prop(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        str_prop(s, REASON_STRING, self.reason_string.as_ref());
        str_prop(s, SERVER_REFERENCE, self.server_reference.as_ref());
        user_props(s, &self.user_properties);
    }
}

impl WriteProps for AuthPropertyValues {
    fn write_props<S: Sink>(&self, s: &mut S) {
        str_prop(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        );
        bin_prop(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        str_prop(s, REASON_STRING, self.reason_string.as_ref());
        user_props(s, &self.user_properties);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_identifier_is_allowed_somewhere() {
        let defined = [
            0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
            0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
        ];
        for id in 0..=0x7F_u8 {
            assert_eq!(is_known(id), defined.contains(&id), "id {id:#04x}");
        }
    }

    #[test]
    fn reason_string_is_not_allowed_in_publish() {
        assert!(!allowed(REASON_STRING, Context::Publish));
        assert!(allowed(REASON_STRING, Context::PubResponse));
        assert!(allowed(USER_PROPERTY, Context::Unsubscribe));
        assert!(!allowed(SUBSCRIPTION_IDENTIFIER, Context::Will));
    }
}
