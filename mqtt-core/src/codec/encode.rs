//! [`encode`] and [`encoded_len`]: [`Packet`]s to bytes.
//!
//! One function per packet describes its wire layout against a [`Sink`]. Run against
//! [`Measure`] it yields the exact size and any reason the packet cannot be encoded; run against
//! a `BytesMut` it writes. Because both come from the same code, `encoded_len` cannot disagree
//! with `encode`, and nothing needs an intermediate buffer.

use bytes::{BufMut, BytesMut};

use super::{EncodeError, properties::write_block};
use crate::{
    Packet, ProtocolVersion, QoS, ReasonCode,
    packet::{
        AckProperties, Auth, ConnAck, Connect, Disconnect, DisconnectProperties, PubResponse,
        PublishRef, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
    },
};

/// The largest remaining length the 4-byte variable byte integer can carry (spec 1.5.5).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// The largest Subscription Identifier (spec 3.8.2.1.2): the variable byte integer maximum.
pub(super) const SUBSCRIPTION_ID_MAX: u32 = MAX_REMAINING_LENGTH;

/// Appends the wire form of `packet` in `version` to `buf`.
///
/// `buf` grows once, by exactly [`encoded_len`]; nothing is appended when an error is returned.
/// Fields the version cannot express are left out: properties, reason codes other than the
/// 3.1.1 CONNACK and SUBACK return codes (mapped with [`ReasonCode::to_v311_connack`], and
/// any SUBACK failure as `0x80`), and the v5 subscription options. A v5 CONNACK's Maximum QoS
/// of 2 is written as an absent property, which means the same. Acknowledgements, DISCONNECT
/// and AUTH use the shortest form that carries their reason code and properties.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    framed(
        first_byte(packet),
        buf,
        |measure| write_body(packet, version, measure),
        |buf| write_body(packet, version, buf),
    )
}

/// Appends the wire form of the PUBLISH `p` in `version` to `buf`, as [`encode`] does for a
/// [`Packet::Publish`]: what a server sends a subscriber, without building the packet.
pub fn encode_publish(
    p: &PublishRef<'_>,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    framed(
        publish_first_byte(p),
        buf,
        |measure| publish(p, v5, measure),
        |buf| publish(p, v5, buf),
    )
}

/// Measures a packet's body, then writes its fixed header and body: `measure` and `write`
/// run the same layout function against the two sinks.
fn framed(
    first_byte: u8,
    buf: &mut BytesMut,
    measure: impl FnOnce(&mut Measure),
    write: impl FnOnce(&mut BytesMut),
) -> Result<(), EncodeError> {
    let mut measured = Measure::default();
    measure(&mut measured);
    if let Some(error) = measured.error {
        return Err(error);
    }
    let remaining = u32::try_from(measured.len)
        .ok()
        .filter(|&len| len <= MAX_REMAINING_LENGTH)
        .ok_or(EncodeError::TooLarge)?;
    buf.reserve(1 + varint_len(remaining) + measured.len);
    buf.put_u8(first_byte);
    buf.varint(remaining);
    write(buf);
    Ok(())
}

/// The number of bytes [`encode`] writes for `packet` in `version`, fixed header included.
///
/// Used to keep a packet within a peer's Maximum Packet Size before encoding it. For a packet
/// `encode` rejects, the value is the size it would have had.
#[must_use]
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let mut measure = Measure::default();
    write_body(packet, version, &mut measure);
    let remaining = u32::try_from(measure.len).unwrap_or(u32::MAX);
    1 + varint_len(remaining) + measure.len
}

/// The first byte: packet type and flags (spec 2.1.2, 2.1.3).
fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => publish_first_byte(&PublishRef::from(p)),
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xA2,
        Packet::UnsubAck(_) => 0xB0,
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(_) => 0xE0,
        Packet::Auth(_) => 0xF0,
    }
}

fn publish_first_byte(p: &PublishRef<'_>) -> u8 {
    0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
}

/// Where a packet's body goes: [`Measure`] to size and check it, `BytesMut` to write it.
pub(super) trait Sink {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    /// A variable byte integer. Values over [`MAX_REMAINING_LENGTH`] take 5 bytes; callers
    /// reject them (as `TooLarge` or an invalid property) before anything is written.
    fn varint(&mut self, v: u32);
    fn slice(&mut self, v: &[u8]);
    /// Records why the packet cannot be encoded; only [`Measure`] keeps it.
    fn fail(&mut self, error: EncodeError);

    /// A string or binary field: 2-byte length, then the bytes (spec 1.5.4, 1.5.6).
    fn lp(&mut self, v: &[u8]) {
        match u16::try_from(v.len()) {
            Ok(len) => self.u16(len),
            Err(_) => {
                self.fail(EncodeError::FieldTooLong(v.len()));
                self.u16(u16::MAX);
            }
        }
        self.slice(v);
    }
}

/// Counts bytes and remembers the first reason the packet cannot be encoded.
#[derive(Debug, Default)]
pub(super) struct Measure {
    pub(super) len: usize,
    error: Option<EncodeError>,
}

impl Sink for Measure {
    fn u8(&mut self, _: u8) {
        self.len += 1;
    }
    fn u16(&mut self, _: u16) {
        self.len += 2;
    }
    fn u32(&mut self, _: u32) {
        self.len += 4;
    }
    fn varint(&mut self, v: u32) {
        self.len += varint_len(v);
    }
    fn slice(&mut self, v: &[u8]) {
        self.len += v.len();
    }
    fn fail(&mut self, error: EncodeError) {
        self.error.get_or_insert(error);
    }
}

impl Sink for BytesMut {
    fn u8(&mut self, v: u8) {
        self.put_u8(v);
    }
    fn u16(&mut self, v: u16) {
        self.put_u16(v);
    }
    fn u32(&mut self, v: u32) {
        self.put_u32(v);
    }
    fn varint(&mut self, mut v: u32) {
        loop {
            let byte = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                self.put_u8(byte);
                return;
            }
            self.put_u8(byte | 0x80);
        }
    }
    fn slice(&mut self, v: &[u8]) {
        self.put_slice(v);
    }
    fn fail(&mut self, _: EncodeError) {}
}

/// Bytes taken by `v` as a variable byte integer.
pub(super) fn varint_len(v: u32) -> usize {
    match v {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        _ => 5,
    }
}

fn write_body<S: Sink>(packet: &Packet, version: ProtocolVersion, s: &mut S) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect(c, version, s),
        Packet::ConnAck(c) => connack(c, v5, s),
        Packet::Publish(p) => publish(&PublishRef::from(p), v5, s),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            pub_response(r, v5, s);
        }
        Packet::Subscribe(p) => subscribe(p, v5, s),
        Packet::SubAck(p) => suback(p, v5, s),
        Packet::Unsubscribe(p) => unsubscribe(p, v5, s),
        Packet::UnsubAck(p) => unsuback(p, v5, s),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => disconnect(d, v5, s),
        Packet::Auth(a) => auth(a, v5, s),
    }
}

fn connect<S: Sink>(c: &Connect, version: ProtocolVersion, s: &mut S) {
    if c.protocol != version {
        s.fail(EncodeError::VersionMismatch);
    }
    let v5 = version.is_v5();
    s.lp(if version == ProtocolVersion::V31 {
        b"MQIsdp"
    } else {
        b"MQTT"
    });
    s.u8(version.level());
    if !v5 && c.password.is_some() && c.username.is_none() {
        s.fail(EncodeError::PasswordWithoutUsername);
    }
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0x04 | ((will.qos as u8) << 3) | (u8::from(will.retain) << 5);
    }
    flags |= u8::from(c.password.is_some()) << 6;
    flags |= u8::from(c.username.is_some()) << 7;
    s.u8(flags);
    s.u16(c.keep_alive);
    if v5 {
        write_block(s, &c.properties);
    }
    s.lp(c.client_id.as_bytes());
    if let Some(will) = &c.will {
        if v5 {
            write_block(s, &will.properties);
        }
        s.lp(will.topic.as_bytes());
        s.lp(&will.payload);
    }
    if let Some(username) = &c.username {
        s.lp(username.as_bytes());
    }
    if let Some(password) = &c.password {
        s.lp(password);
    }
}

fn connack<S: Sink>(c: &ConnAck, v5: bool, s: &mut S) {
    s.u8(u8::from(c.session_present));
    if v5 {
        s.u8(c.reason.0);
        write_block(s, &c.properties);
    } else {
        s.u8(c.reason.to_v311_connack());
    }
}

fn publish<S: Sink>(p: &PublishRef<'_>, v5: bool, s: &mut S) {
    s.lp(p.topic.as_bytes());
    match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, None) if !p.dup => {}
        (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) => s.u16(id.get()),
        _ => s.fail(EncodeError::InconsistentPublish),
    }
    if v5 {
        write_block(s, p);
    }
    s.slice(p.payload);
}

fn no_ack_properties(p: &AckProperties) -> bool {
    p.reason_string.is_none() && p.user_properties.is_empty()
}

/// PUBACK..PUBCOMP: v5 drops the properties, then the reason code, when they are defaults.
fn pub_response<S: Sink>(r: &PubResponse, v5: bool, s: &mut S) {
    s.u16(r.packet_id.get());
    if !v5 {
        return;
    }
    let no_properties = no_ack_properties(&r.properties);
    if r.reason == ReasonCode::SUCCESS && no_properties {
        return;
    }
    s.u8(r.reason.0);
    if !no_properties {
        write_block(s, &r.properties);
    }
}

fn subscription_options(o: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = o.qos as u8;
    if !v5 {
        return qos;
    }
    qos | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

fn subscribe<S: Sink>(p: &Subscribe, v5: bool, s: &mut S) {
    if p.filters.is_empty() {
        s.fail(EncodeError::EmptyList);
    }
    s.u16(p.packet_id.get());
    if v5 {
        write_block(s, &p.properties);
    }
    for (filter, options) in &p.filters {
        s.lp(filter.as_bytes());
        s.u8(subscription_options(options, v5));
    }
}

fn suback<S: Sink>(p: &SubAck, v5: bool, s: &mut S) {
    if p.reason_codes.is_empty() {
        s.fail(EncodeError::EmptyList);
    }
    s.u16(p.packet_id.get());
    if v5 {
        write_block(s, &p.properties);
    }
    for &code in &p.reason_codes {
        s.u8(match code {
            _ if v5 => code.0,
            ReasonCode::SUCCESS | ReasonCode::GRANTED_QOS_1 | ReasonCode::GRANTED_QOS_2 => code.0,
            // 3.1.1 has one failure code.
            _ => 0x80,
        });
    }
}

fn unsubscribe<S: Sink>(p: &Unsubscribe, v5: bool, s: &mut S) {
    if p.filters.is_empty() {
        s.fail(EncodeError::EmptyList);
    }
    s.u16(p.packet_id.get());
    if v5 {
        write_block(s, p.user_properties.as_slice());
    }
    for filter in &p.filters {
        s.lp(filter.as_bytes());
    }
}

fn unsuback<S: Sink>(p: &UnsubAck, v5: bool, s: &mut S) {
    s.u16(p.packet_id.get());
    if !v5 {
        return;
    }
    if p.reason_codes.is_empty() {
        s.fail(EncodeError::EmptyList);
    }
    write_block(s, &p.properties);
    for code in &p.reason_codes {
        s.u8(code.0);
    }
}

fn no_disconnect_properties(p: &DisconnectProperties) -> bool {
    p.session_expiry_interval.is_none()
        && p.reason_string.is_none()
        && p.server_reference.is_none()
        && p.user_properties.is_empty()
}

/// DISCONNECT: no body in 3.1.1; in v5 the reason code and properties are dropped when they
/// are defaults.
fn disconnect<S: Sink>(d: &Disconnect, v5: bool, s: &mut S) {
    if !v5 {
        return;
    }
    let no_properties = no_disconnect_properties(&d.properties);
    if d.reason == ReasonCode::SUCCESS && no_properties {
        return;
    }
    s.u8(d.reason.0);
    if !no_properties {
        write_block(s, &d.properties);
    }
}

/// AUTH: empty for Success without properties, else reason code and properties (the spec only
/// defines those two forms).
fn auth<S: Sink>(a: &Auth, v5: bool, s: &mut S) {
    if !v5 {
        s.fail(EncodeError::NotInVersion("AUTH"));
        return;
    }
    let p = &a.properties;
    let no_properties = p.authentication_method.is_none()
        && p.authentication_data.is_none()
        && p.reason_string.is_none()
        && p.user_properties.is_empty();
    if a.reason == ReasonCode::SUCCESS && no_properties {
        return;
    }
    s.u8(a.reason.0);
    write_block(s, p);
}
