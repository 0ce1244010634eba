//! A raw MQTT client for the wire-level tests and for what rumqttc cannot express (DUP on
//! resend, DISCONNECT with a reason code or properties, per-filter v5 SUBACK codes, outbound
//! topic aliases): a `TcpStream`, packets written by hand, and reads that always have a
//! deadline.
//!
//! The packet builders here deliberately do not use `tributary_mqtt_core`'s codec: these tests
//! check the bytes on the wire against the spec, not our codec against itself.

// Test support: a failed expectation is a failed test, so panicking is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Each test binary (its own crate, with `mod common;`) uses a different subset of the helpers.
#![allow(dead_code, unreachable_pub)]

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

use super::WAIT;

// ---------------------------------------------------------------------------------------------
// Encoding by hand
// ---------------------------------------------------------------------------------------------

/// A variable byte integer (spec 1.5.5).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A length-prefixed string or binary field.
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A whole packet: first byte, remaining length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A v5 property block: its length, then the properties.
pub fn props(properties: &[u8]) -> Vec<u8> {
    let mut out = varint(properties.len());
    out.extend_from_slice(properties);
    out
}

/// One User Property (0x26).
pub fn user_property(key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x26];
    out.extend(string(key.as_bytes()));
    out.extend(string(value.as_bytes()));
    out
}

/// A CONNECT with every field chosen by the caller: protocol name and level, connect flags,
/// keep alive, the v5 property block (`None` for 3.1.1) and the payload as already encoded.
pub fn connect_raw(
    name: &[u8],
    level: u8,
    flags: u8,
    keep_alive: u16,
    properties: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string(name);
    body.push(level);
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    if let Some(properties) = properties {
        body.extend(props(properties));
    }
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// A 3.1.1 CONNECT with a client id, clean session as given.
pub fn connect_v311(client_id: &str, clean: bool, keep_alive: u16) -> Vec<u8> {
    let flags = if clean { 0x02 } else { 0x00 };
    connect_raw(
        b"MQTT",
        4,
        flags,
        keep_alive,
        None,
        &string(client_id.as_bytes()),
    )
}

/// A v5 CONNECT, clean start, with the given CONNECT properties.
pub fn connect_v5(client_id: &str, keep_alive: u16, properties: &[u8]) -> Vec<u8> {
    connect_v5_with(client_id, true, keep_alive, properties, None)
}

/// A Will for [`connect_v5_with`]: topic, payload, QoS, retain, Will properties.
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    pub properties: &'a [u8],
}

/// A v5 CONNECT with Clean Start as given and an optional Will.
pub fn connect_v5_with(
    client_id: &str,
    clean_start: bool,
    keep_alive: u16,
    properties: &[u8],
    will: Option<Will<'_>>,
) -> Vec<u8> {
    let mut flags = if clean_start { 0x02 } else { 0x00 };
    let mut payload = string(client_id.as_bytes());
    if let Some(w) = will {
        flags |= 0x04 | (w.qos << 3) | if w.retain { 0x20 } else { 0 };
        payload.extend(props(w.properties));
        payload.extend(string(w.topic.as_bytes()));
        payload.extend(string(w.payload));
    }
    connect_raw(b"MQTT", 5, flags, keep_alive, Some(properties), &payload)
}

/// A PUBLISH. `properties` is `Some` for v5 (the property block is written even when empty).
pub fn publish(
    qos: u8,
    retain: bool,
    topic: &[u8],
    packet_id: Option<u16>,
    properties: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let first = 0x30 | (qos << 1) | u8::from(retain);
    let mut body = string(topic);
    if let Some(id) = packet_id {
        body.extend(id.to_be_bytes());
    }
    if let Some(properties) = properties {
        body.extend(props(properties));
    }
    body.extend_from_slice(payload);
    packet(first, &body)
}

/// A v5 PUBLISH with no properties.
pub fn publish_v5(qos: u8, topic: &str, packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    publish(qos, false, topic.as_bytes(), packet_id, Some(&[]), payload)
}

/// A 3.1.1 PUBLISH.
pub fn publish_v311(qos: u8, topic: &str, packet_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    publish(qos, false, topic.as_bytes(), packet_id, None, payload)
}

/// A SUBSCRIBE (v5 when `v5`, with an empty property block), one options byte per filter.
pub fn subscribe(v5: bool, packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for (filter, options) in filters {
        body.extend(string(filter.as_bytes()));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// An UNSUBSCRIBE (v5 when `v5`, with an empty property block).
pub fn unsubscribe(v5: bool, packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for filter in filters {
        body.extend(string(filter.as_bytes()));
    }
    packet(0xA2, &body)
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP in the 2-byte form (`first` is 0x40, 0x50, 0x62, 0x70).
pub fn ack(first: u8, packet_id: u16) -> Vec<u8> {
    packet(first, &packet_id.to_be_bytes())
}

/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// PINGRESP.
pub const PINGRESP: [u8; 2] = [0xD0, 0x00];

// ---------------------------------------------------------------------------------------------
// What the broker must send, as exact bytes
// ---------------------------------------------------------------------------------------------

/// The spec's name for a reason code, which the broker sends as Reason String.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x87 => "Not authorized",
        0x8B => "Server shutting down",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x90 => "Topic Name invalid",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x97 => "Quota exceeded",
        _ => panic!("no name for reason code {code:#04x} in the test table"),
    }
}

/// The v5 DISCONNECT the broker sends: the reason code and its name as Reason String (the
/// client did not turn Request Problem Information off).
pub fn disconnect_v5(code: u8) -> Vec<u8> {
    let mut properties = vec![0x1F];
    properties.extend(string(reason_name(code).as_bytes()));
    let mut body = vec![code];
    body.extend(props(&properties));
    packet(0xE0, &body)
}

/// A v5 CONNACK refusal: no session present, the reason code, no properties.
pub fn connack_refusal_v5(code: u8) -> Vec<u8> {
    vec![0x20, 0x03, 0x00, code, 0x00]
}

/// A 3.1.1 CONNACK.
pub fn connack_v311(session_present: bool, return_code: u8) -> Vec<u8> {
    vec![0x20, 0x02, u8::from(session_present), return_code]
}

/// A v5 PUBACK/PUBREC/PUBCOMP with an error reason code and its Reason String.
pub fn ack_v5_error(first: u8, packet_id: u16, code: u8) -> Vec<u8> {
    let mut properties = vec![0x1F];
    properties.extend(string(reason_name(code).as_bytes()));
    let mut body = packet_id.to_be_bytes().to_vec();
    body.push(code);
    body.extend(props(&properties));
    packet(first, &body)
}

// ---------------------------------------------------------------------------------------------
// Decoding what comes back (only enough to assert on)
// ---------------------------------------------------------------------------------------------

/// The value of one v5 property as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// Byte.
    Byte(u8),
    /// Two byte integer.
    U16(u16),
    /// Four byte integer.
    U32(u32),
    /// Variable byte integer.
    VarInt(u32),
    /// UTF-8 string or binary data.
    Bytes(Vec<u8>),
    /// String pair.
    Pair(Vec<u8>, Vec<u8>),
}

/// Parses a v5 property block from the start of `bytes`; returns the properties and the rest.
pub fn parse_props(bytes: &[u8]) -> (Vec<(u8, PropValue)>, &[u8]) {
    let (len, n) = read_varint(bytes);
    let (mut block, rest) = bytes[n..].split_at(len as usize);
    let mut out = Vec::new();
    let take_str = |b: &mut &[u8]| {
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let s = b[2..2 + len].to_vec();
        *b = &b[2 + len..];
        s
    };
    while !block.is_empty() {
        let id = block[0];
        block = &block[1..];
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                let v = block[0];
                block = &block[1..];
                PropValue::Byte(v)
            }
            0x13 | 0x21 | 0x22 | 0x23 => {
                let v = u16::from_be_bytes([block[0], block[1]]);
                block = &block[2..];
                PropValue::U16(v)
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                let v = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
                block = &block[4..];
                PropValue::U32(v)
            }
            0x0B => {
                let (v, n) = read_varint(block);
                block = &block[n..];
                PropValue::VarInt(v)
            }
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => {
                PropValue::Bytes(take_str(&mut block))
            }
            0x26 => {
                let k = take_str(&mut block);
                let v = take_str(&mut block);
                PropValue::Pair(k, v)
            }
            other => panic!("unknown property {other:#04x} from the broker"),
        };
        out.push((id, value));
    }
    (out, rest)
}

fn read_varint(bytes: &[u8]) -> (u32, usize) {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().enumerate().take(4) {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("bad variable byte integer from the broker: {bytes:02x?}");
}

/// One packet as received: the first byte and the body after the remaining length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Every byte of the packet.
    pub bytes: Vec<u8>,
    /// The first byte.
    pub first: u8,
    /// The body (variable header and payload).
    pub body: Vec<u8>,
}

impl Received {
    /// The packet type (upper nibble).
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }

    /// For a v5 CONNACK: the reason code and the properties.
    pub fn connack_v5(&self) -> (u8, Vec<(u8, PropValue)>) {
        assert_eq!(
            self.first, 0x20,
            "expected CONNACK, got {:02x?}",
            self.bytes
        );
        let (properties, rest) = parse_props(&self.body[2..]);
        assert!(rest.is_empty(), "bytes after CONNACK properties");
        (self.body[1], properties)
    }

    /// For a PUBLISH: topic, packet id, payload (`v5` skips the property block).
    pub fn publish(&self, v5: bool) -> (String, Option<u16>, Vec<u8>) {
        let p = self.publish_fields(v5);
        (p.topic, p.packet_id, p.payload)
    }

    /// For a PUBLISH: every field (`v5` reads the property block).
    pub fn publish_fields(&self, v5: bool) -> PublishFields {
        assert_eq!(self.kind(), 3, "expected PUBLISH, got {:02x?}", self.bytes);
        let qos = (self.first >> 1) & 3;
        let len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        let topic = String::from_utf8(self.body[2..2 + len].to_vec()).unwrap();
        let mut rest = &self.body[2 + len..];
        let packet_id = if qos > 0 {
            let id = u16::from_be_bytes([rest[0], rest[1]]);
            rest = &rest[2..];
            Some(id)
        } else {
            None
        };
        let mut properties = Vec::new();
        if v5 {
            let (_, after) = parse_props(rest);
            let (_, len_bytes) = read_varint(rest);
            properties = rest[len_bytes..rest.len() - after.len()].to_vec();
            rest = after;
        }
        PublishFields {
            dup: self.first & 0x08 != 0,
            qos,
            retain: self.first & 0x01 != 0,
            topic,
            packet_id,
            properties,
            payload: rest.to_vec(),
        }
    }
}

/// A PUBLISH as received, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFields {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub packet_id: Option<u16>,
    /// The v5 property block without its length (empty for 3.1.1).
    pub properties: Vec<u8>,
    pub payload: Vec<u8>,
}

/// The value of property `id` in a parsed list.
pub fn prop(properties: &[(u8, PropValue)], id: u8) -> Option<PropValue> {
    properties
        .iter()
        .find(|(p, _)| *p == id)
        .map(|(_, v)| v.clone())
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// What a bounded read found.
#[derive(Debug)]
pub enum Read {
    /// A whole packet.
    Packet(Received),
    /// The broker closed the connection (EOF or reset) with no partial packet pending.
    Closed,
    /// Nothing complete arrived within the time given.
    Timeout,
}

/// A raw TCP connection to the broker.
#[derive(Debug)]
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to `addr` (nothing sent yet).
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects, sends `connect` and reads the CONNACK; returns the client and the CONNACK.
    pub async fn handshake(addr: SocketAddr, connect: &[u8]) -> (Self, Received) {
        let mut raw = Self::open(addr).await;
        raw.send(connect).await;
        let connack = raw.recv().await;
        assert_eq!(connack.kind(), 2, "expected CONNACK, got {connack:02x?}");
        (raw, connack)
    }

    /// Connects and completes a v5 CONNECT (keep alive 0); returns the client.
    pub async fn connected_v5(addr: SocketAddr, client_id: &str) -> Self {
        let mut raw = Self::open(addr).await;
        raw.send(&connect_v5(client_id, 0, &[])).await;
        let connack = raw.recv().await;
        assert_eq!(
            connack.connack_v5().0,
            0x00,
            "CONNACK {:02x?}",
            connack.bytes
        );
        raw
    }

    /// Connects and completes a 3.1.1 CONNECT (clean session, keep alive 0).
    pub async fn connected_v311(addr: SocketAddr, client_id: &str) -> Self {
        let mut raw = Self::open(addr).await;
        raw.send(&connect_v311(client_id, true, 0)).await;
        raw.expect(&connack_v311(false, 0)).await;
        raw
    }

    /// Writes `bytes`; panics if the socket fails.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).await.expect("write failed");
    }

    /// Writes `bytes`, reporting a failure (the broker may have closed already).
    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Reads one packet, waiting at most `within`.
    pub async fn read(&mut self, within: Duration) -> Read {
        let deadline = Instant::now() + within;
        loop {
            if let Some(packet) = self.take_packet() {
                return Read::Packet(packet);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed with a partial packet: {:02x?}",
                        self.buf
                    );
                    return Read::Closed;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn take_packet(&mut self) -> Option<Received> {
        if self.buf.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= usize::from(b & 0x7F) << (7 * (i - 1));
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            assert!(i <= 4, "broker sent a malformed remaining length");
        }
        if self.buf.len() < i + len {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..i + len).collect();
        Some(Received {
            first: bytes[0],
            body: bytes[i..].to_vec(),
            bytes,
        })
    }

    /// Reads one packet within [`WAIT`]; panics on close or timeout.
    pub async fn recv(&mut self) -> Received {
        match self.read(WAIT).await {
            Read::Packet(packet) => packet,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Reads packets until one of type `kind` (upper nibble), skipping others (PINGRESP and
    /// the like); each read within [`WAIT`].
    pub async fn recv_kind(&mut self, kind: u8) -> Received {
        loop {
            let packet = self.recv().await;
            if packet.kind() == kind {
                return packet;
            }
        }
    }

    /// One packet within `within`; `None` on timeout or close.
    pub async fn try_recv(&mut self, within: Duration) -> Option<Received> {
        match self.read(within).await {
            Read::Packet(packet) => Some(packet),
            Read::Closed | Read::Timeout => None,
        }
    }

    /// Reads until the broker closes the connection (each read within [`WAIT`]); returns the
    /// packets it sent before.
    pub async fn until_closed(&mut self) -> Vec<Received> {
        let mut seen = Vec::new();
        loop {
            match self.read(WAIT).await {
                Read::Packet(packet) => seen.push(packet),
                Read::Closed => return seen,
                Read::Timeout => panic!("connection still open after {seen:02x?}"),
            }
        }
    }

    /// Reads one packet and checks its exact bytes.
    pub async fn expect(&mut self, bytes: &[u8]) {
        self.expect_within(bytes, WAIT).await;
    }

    /// Reads one packet within `within` and checks its exact bytes.
    pub async fn expect_within(&mut self, bytes: &[u8], within: Duration) {
        match self.read(within).await {
            Read::Packet(packet) => assert_eq!(packet.bytes, bytes, "unexpected packet"),
            other => panic!("expected {bytes:02x?}, got {other:?}"),
        }
    }

    /// Asserts that the broker closes the connection within `within`, sending nothing more.
    pub async fn expect_closed_within(&mut self, within: Duration) {
        match self.read(within).await {
            Read::Closed => {}
            other => panic!("expected the connection to be closed, got {other:?}"),
        }
    }

    /// Asserts that the broker closes the connection within [`WAIT`], sending nothing more.
    pub async fn expect_closed(&mut self) {
        self.expect_closed_within(WAIT).await;
    }

    /// Asserts exactly `bytes`, then the close.
    pub async fn expect_then_closed(&mut self, bytes: &[u8]) {
        self.expect(bytes).await;
        self.expect_closed().await;
    }

    /// Asserts that nothing arrives, and the connection stays open, for `period`.
    pub async fn expect_silence(&mut self, period: Duration) {
        match self.read(period).await {
            Read::Timeout => {}
            other => panic!("expected silence for {period:?}, got {other:?}"),
        }
        assert!(self.buf.is_empty(), "partial packet: {:02x?}", self.buf);
    }

    /// PINGREQ, then PINGRESP: the connection is alive and served.
    pub async fn ping(&mut self) {
        self.send(&PINGREQ).await;
        self.expect(&PINGRESP).await;
    }
}

/// Reads PUBLISHes until the one on `marker`, returning the topics seen before it.
pub async fn topics_until_marker(raw: &mut Raw, v5: bool, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let (topic, _, _) = raw.recv().await.publish(v5);
        if topic == marker {
            return seen;
        }
        seen.push(topic);
    }
    panic!("marker {marker} never arrived; saw {seen:?}");
}

/// Asserts that the broker at `addr` still serves a normal client: a v5 and a 3.1.1 client
/// connect, and a message goes from one to the other.
pub async fn assert_serving(addr: SocketAddr) {
    let mut sub = Raw::connected_v5(addr, "health-sub").await;
    sub.send(&subscribe(true, 1, &[("health/check", 0)])).await;
    let suback = sub.recv().await;
    assert_eq!(suback.bytes, [0x90, 0x04, 0x00, 0x01, 0x00, 0x00]);
    let mut publisher = Raw::connected_v311(addr, "health-pub").await;
    publisher
        .send(&publish_v311(0, "health/check", None, b"ok"))
        .await;
    publisher.ping().await;
    let message = sub.recv().await;
    assert_eq!(
        message.publish(true),
        ("health/check".into(), None, b"ok".to_vec())
    );
}
