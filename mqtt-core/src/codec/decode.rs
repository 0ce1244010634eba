//! [`Decoder`]: bytes from a peer to [`Packet`]s.

use bytes::{Buf, Bytes, BytesMut};

use super::{
    DecodeError,
    properties::{self, Context, Limits},
};
use crate::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    packet::{
        Auth, ConnAck, Connect, Disconnect, PubResponse, Publish, RetainHandling, SubAck,
        Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
    },
};

/// The default cap on user properties in one packet (see [`Decoder::set_max_user_properties`]).
pub const DEFAULT_MAX_USER_PROPERTIES: u32 = 128;

/// Stateful decoder for one connection's inbound byte stream.
///
/// It enforces, in this order and from the fewest bytes that can tell:
/// 1. before the version is known, that the first packet is CONNECT (from its first byte);
/// 2. the packet type and its fixed-header flags (from the first byte);
/// 3. a remaining length of at most 4 bytes, and a total packet size within
///    `max_packet_size` (from the fixed header, before the body is waited for or buffered);
/// 4. everything else once the whole packet is in the buffer.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    max_user_properties: u32,
}

impl Decoder {
    /// A decoder for a server connection: the first packet must be CONNECT, whose protocol
    /// name and level fix the version for every later packet.
    ///
    /// `max_packet_size` bounds the whole packet, fixed header included, as the v5 Maximum
    /// Packet Size does; it is compared literally (`u32::MAX` means the protocol maximum).
    #[must_use]
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            version: None,
            max_packet_size,
            max_user_properties: DEFAULT_MAX_USER_PROPERTIES,
        }
    }

    /// A decoder whose version is already known (the client side of a connection).
    #[must_use]
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version: Some(version),
            max_packet_size,
            max_user_properties: DEFAULT_MAX_USER_PROPERTIES,
        }
    }

    /// The protocol version, once known.
    #[must_use]
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The maximum packet size, fixed header included.
    #[must_use]
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size (for example after a listener's configuration changes).
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Caps the number of user properties one packet may carry, across all its property blocks
    /// (default [`DEFAULT_MAX_USER_PROPERTIES`]). Each costs a `Vec` slot and some CPU to
    /// validate, and the spec sets no limit; past the cap decoding fails with
    /// [`DecodeError::TooManyUserProperties`], which maps to `0x97` Quota exceeded.
    pub fn set_max_user_properties(&mut self, max: u32) {
        self.max_user_properties = max;
    }

    /// Decodes one packet from the front of `buf`.
    ///
    /// - `Ok(Some(packet))`: the packet's bytes were removed from `buf`. Strings, topics and
    ///   payloads in it share those bytes (one frozen allocation per packet, no copy).
    /// - `Ok(None)`: `buf` holds less than one packet; it is left untouched.
    /// - `Err(_)`: the connection must be closed; what is left in `buf` is unspecified.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let packet_type = first >> 4;
        let flags = first & 0x0F;
        check_fixed_header(packet_type, flags, self.version)?;

        let Some((remaining, len_bytes)) = remaining_length(buf.get(1..).unwrap_or_default())?
        else {
            return Ok(None);
        };
        // At most 1 + 4 + 268,435,455: no overflow in u32.
        let total = 1 + len_bytes + remaining;
        if total > self.max_packet_size {
            return Err(DecodeError::PacketTooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        let total = usize::try_from(total).map_err(|_| DecodeError::PacketTooLarge {
            size: total,
            max: self.max_packet_size,
        })?;
        if buf.len() < total {
            return Ok(None);
        }
        if let Some(packet) = self.decode_bare(packet_type, remaining, len_bytes, buf)? {
            buf.advance(total);
            return Ok(Some(packet));
        }

        let packet = buf.split_to(total).freeze();
        let body = Reader::new(packet.slice(1 + len_bytes as usize..));
        let mut limits = Limits::new(self.max_user_properties);
        let decoded = if packet_type == CONNECT {
            let mut body = body;
            let protocol = decode_protocol(&mut body)?;
            // Only the first CONNECT fixes the version; a second one is the connection's
            // protocol error to report, and must not change how later packets are read. It is
            // fixed before the rest is read, so that a v5 CONNECT with a malformed body can
            // still be refused in v5 (CONNACK 0x81) rather than by a bare close.
            self.version.get_or_insert(protocol);
            Packet::Connect(Box::new(decode_connect(body, protocol, &mut limits)?))
        } else {
            let version = self
                .version
                .ok_or(DecodeError::FirstPacketNotConnect(packet_type))?;
            decode_body(packet_type, flags, version, body, &mut limits)?
        };
        Ok(Some(decoded))
    }
}

impl Decoder {
    /// The packets that are a packet id alone (PUBACK, PUBREC, PUBREL and PUBCOMP: in 3.1.1
    /// always, in v5 on success) or nothing at all (PINGREQ, PINGRESP), read in place: they
    /// have nothing to share, so they are not frozen into a shared allocation of their own
    /// (one per acknowledgement, at QoS 1). `None` for every other packet.
    fn decode_bare(
        &self,
        packet_type: u8,
        remaining: u32,
        len_bytes: u32,
        buf: &BytesMut,
    ) -> Result<Option<Packet>, DecodeError> {
        if self.version.is_none() {
            return Ok(None);
        }
        let body = buf.get(1 + len_bytes as usize..).unwrap_or_default();
        Ok(match (packet_type, remaining, body) {
            (PUBACK | PUBREC | PUBREL | PUBCOMP, 2, [high, low, ..]) => {
                let id = PacketId::new(u16::from_be_bytes([*high, *low]))
                    .ok_or(DecodeError::ZeroPacketId)?;
                let ack = PubResponse::new(id);
                Some(match packet_type {
                    PUBACK => Packet::PubAck(ack),
                    PUBREC => Packet::PubRec(ack),
                    PUBREL => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                })
            }
            (PINGREQ, 0, _) => Some(Packet::PingReq),
            (PINGRESP, 0, _) => Some(Packet::PingResp),
            _ => None,
        })
    }
}

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// Checks everything the first byte alone can tell (spec 2.1.3 and 3.3.1).
fn check_fixed_header(
    packet_type: u8,
    flags: u8,
    version: Option<ProtocolVersion>,
) -> Result<(), DecodeError> {
    if version.is_none() && packet_type != CONNECT {
        return Err(DecodeError::FirstPacketNotConnect(packet_type));
    }
    let expected = match packet_type {
        0 => return Err(DecodeError::InvalidPacketType(packet_type)),
        AUTH if !version.is_some_and(ProtocolVersion::is_v5) => {
            return Err(DecodeError::InvalidPacketType(packet_type));
        }
        PUBLISH => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS(qos));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::DupOnQoS0);
            }
            return Ok(());
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::InvalidFlags { packet_type, flags });
    }
    Ok(())
}

/// Reads the remaining length after the first byte: `Ok(None)` if its bytes are not all there
/// yet, else the value and how many bytes it took. A 4th byte with the continuation bit is an
/// error at once: the spec caps the length at 4 bytes (CVE-2026-21888 read a 5th).
fn remaining_length(bytes: &[u8]) -> Result<Option<(u32, u32)>, DecodeError> {
    let mut value = 0u32;
    for (i, &byte) in (0u32..4).zip(bytes) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::MalformedRemainingLength);
    }
    Ok(None)
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    version: ProtocolVersion,
    r: Reader,
    limits: &mut Limits,
) -> Result<Packet, DecodeError> {
    let v5 = version.is_v5();
    Ok(match packet_type {
        CONNACK => Packet::ConnAck(decode_connack(r, v5, limits)?),
        PUBLISH => Packet::Publish(decode_publish(r, flags, v5, limits)?),
        PUBACK => Packet::PubAck(decode_pub_response(r, v5, limits)?),
        PUBREC => Packet::PubRec(decode_pub_response(r, v5, limits)?),
        PUBREL => Packet::PubRel(decode_pub_response(r, v5, limits)?),
        PUBCOMP => Packet::PubComp(decode_pub_response(r, v5, limits)?),
        SUBSCRIBE => Packet::Subscribe(decode_subscribe(r, v5, limits)?),
        SUBACK => Packet::SubAck(decode_suback(r, v5, limits)?),
        UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(r, v5, limits)?),
        UNSUBACK => Packet::UnsubAck(decode_unsuback(r, v5, limits)?),
        PINGREQ => {
            r.finish()?;
            Packet::PingReq
        }
        PINGRESP => {
            r.finish()?;
            Packet::PingResp
        }
        DISCONNECT => Packet::Disconnect(decode_disconnect(r, v5, limits)?),
        AUTH if v5 => Packet::Auth(decode_auth(r, limits)?),
        // CONNECT is handled by the caller and 0 by `check_fixed_header`; an ordinary error
        // keeps this total without trusting that.
        _ => return Err(DecodeError::InvalidPacketType(packet_type)),
    })
}

/// CONNECT's protocol name and level (spec 3.1.2.1-2): the version comes from the packet
/// itself, not from the decoder.
fn decode_protocol(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    match (name.as_ref(), level) {
        (b"MQTT", 4) => Ok(ProtocolVersion::V311),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V31),
        (b"MQTT" | b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// The rest of CONNECT (spec 3.1), after [`decode_protocol`].
fn decode_connect(
    mut r: Reader,
    protocol: ProtocolVersion,
    limits: &mut Limits,
) -> Result<Connect, DecodeError> {
    let v5 = protocol.is_v5();

    let flags = r.u8()?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if flags & 0x01 != 0
        || (!will_flag && (will_qos != 0 || will_retain))
        || (!v5 && password_flag && !username_flag)
    {
        return Err(DecodeError::InvalidConnectFlags(flags));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS(will_qos))?;

    let keep_alive = r.u16()?;
    let properties = if v5 {
        properties::read_connect(&mut r, limits)?
    } else {
        Default::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            properties::read_will(&mut r, limits)?
        } else {
            Default::default()
        };
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// CONNACK (spec 3.2).
fn decode_connack(mut r: Reader, v5: bool, limits: &mut Limits) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let code = r.u8()?;
    let (reason, properties) = if v5 {
        (ReasonCode(code), properties::read_connack(&mut r, limits)?)
    } else {
        let reason =
            ReasonCode::from_v311_connack(code).ok_or(DecodeError::InvalidReasonCode(code))?;
        (reason, Default::default())
    };
    r.finish()?;
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        reason,
        properties,
    })
}

/// PUBLISH (spec 3.3). The fixed-header flags were checked by `check_fixed_header`.
fn decode_publish(
    mut r: Reader,
    flags: u8,
    v5: bool,
    limits: &mut Limits,
) -> Result<Publish, DecodeError> {
    let qos_bits = (flags >> 1) & 0b11;
    let qos = QoS::from_u8(qos_bits).ok_or(DecodeError::InvalidQoS(qos_bits))?;
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    let properties = if v5 {
        properties::read_publish(&mut r, limits)?
    } else {
        Default::default()
    };
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.4 to 3.7), with the v5 short forms: remaining length
/// 2 means Success without properties, 3 means a reason code without properties.
fn decode_pub_response(
    mut r: Reader,
    v5: bool,
    limits: &mut Limits,
) -> Result<PubResponse, DecodeError> {
    let mut response = PubResponse::new(r.packet_id()?);
    if v5 && !r.is_empty() {
        response.reason = ReasonCode(r.u8()?);
        if !r.is_empty() {
            response.properties = properties::read_ack(&mut r, Context::PubResponse, limits)?;
        }
    }
    r.finish()?;
    Ok(response)
}

/// SUBSCRIBE (spec 3.8).
fn decode_subscribe(
    mut r: Reader,
    v5: bool,
    limits: &mut Limits,
) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        properties::read_subscribe(&mut r, limits)?
    } else {
        Default::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, v5)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

/// The subscription options byte (spec 3.8.3.1; in 3.1.1 only the requested QoS).
fn subscription_options(byte: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions(byte));
    }
    let qos_bits = byte & 0b11;
    let qos = QoS::from_u8(qos_bits).ok_or(DecodeError::InvalidQoS(qos_bits))?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b0100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

/// SUBACK (spec 3.9). An empty list is refused: a client indexing codes by filter must never
/// meet one (CVE-2024-10525).
fn decode_suback(mut r: Reader, v5: bool, limits: &mut Limits) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        properties::read_ack(&mut r, Context::SubAck, limits)?
    } else {
        Default::default()
    };
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::NoReasonCodes);
    }
    let mut reason_codes = Vec::with_capacity(codes.len());
    for &code in codes.iter() {
        if !v5 && !matches!(code, 0x00 | 0x01 | 0x02 | 0x80) {
            return Err(DecodeError::InvalidReasonCode(code));
        }
        reason_codes.push(ReasonCode(code));
    }
    Ok(SubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// UNSUBSCRIBE (spec 3.10).
fn decode_unsubscribe(
    mut r: Reader,
    v5: bool,
    limits: &mut Limits,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let user_properties = if v5 {
        properties::read_unsubscribe(&mut r, limits)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyUnsubscription);
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

/// UNSUBACK (spec 3.11): in 3.1.1 only a packet id.
fn decode_unsuback(mut r: Reader, v5: bool, limits: &mut Limits) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    if !v5 {
        r.finish()?;
        return Ok(UnsubAck {
            packet_id,
            properties: Default::default(),
            reason_codes: Vec::new(),
        });
    }
    let properties = properties::read_ack(&mut r, Context::UnsubAck, limits)?;
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::NoReasonCodes);
    }
    let reason_codes = codes.iter().map(|&c| ReasonCode(c)).collect();
    Ok(UnsubAck {
        packet_id,
        properties,
        reason_codes,
    })
}

/// DISCONNECT (spec 3.14): no body in 3.1.1; in v5, remaining length 0 means Normal
/// disconnection, and below 2 there is no Property Length.
fn decode_disconnect(
    mut r: Reader,
    v5: bool,
    limits: &mut Limits,
) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::default();
    if v5 && !r.is_empty() {
        disconnect.reason = ReasonCode(r.u8()?);
        if !r.is_empty() {
            disconnect.properties = properties::read_disconnect(&mut r, limits)?;
        }
    }
    r.finish()?;
    Ok(disconnect)
}

/// AUTH (spec 3.15, v5 only): remaining length 0 means Success without properties. A reason
/// code without a Property Length is accepted too, as for DISCONNECT.
fn decode_auth(mut r: Reader, limits: &mut Limits) -> Result<Auth, DecodeError> {
    let mut auth = Auth::default();
    if !r.is_empty() {
        auth.reason = ReasonCode(r.u8()?);
        if !r.is_empty() {
            auth.properties = properties::read_auth(&mut r, limits)?;
        }
    }
    r.finish()?;
    Ok(auth)
}

/// A cursor over one packet's frozen bytes. Every read is bounds-checked and returns
/// [`DecodeError::Truncated`] past the end; slices share the packet's allocation.
#[derive(Debug)]
pub(super) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.pos.checked_add(N).ok_or(DecodeError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        let array = <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::Truncated)?;
        self.pos = end;
        Ok(array)
    }

    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A variable byte integer of at most 4 bytes (spec 1.5.5).
    pub(super) fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21] {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarInt)
    }

    /// The next `len` bytes, shared with the packet.
    pub(super) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let end = self.pos.checked_add(len).ok_or(DecodeError::Truncated)?;
        if end > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let bytes = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(bytes)
    }

    /// Binary Data: a 2-byte length, then that many bytes (spec 1.5.6).
    pub(super) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A UTF-8 Encoded String (spec 1.5.4): well-formed UTF-8 (which excludes the surrogates
    /// U+D800..U+DFFF) and no U+0000.
    pub(super) fn string(&mut self) -> Result<ByteStr, DecodeError> {
        let bytes = self.binary()?;
        if bytes.contains(&0) {
            return Err(DecodeError::InvalidUtf8);
        }
        ByteStr::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// A packet identifier, which must not be 0 (spec 2.2.1).
    pub(super) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// Everything left (a PUBLISH payload, a list of reason codes).
    pub(super) fn rest(&mut self) -> Bytes {
        let rest = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        rest
    }

    /// Fails if any byte is left after the last field.
    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}
