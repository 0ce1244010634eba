//! A lean MQTT client for the load tool: one byte stream of any transport, the codec of
//! `tributary-mqtt-core`, one read buffer and one write buffer reused for the whole connection.
//!
//! It knows only what a load generator needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH in
//! both directions with their PUBACKs, PINGREQ and DISCONNECT. It talks to the broker only
//! through the socket, so it loads any MQTT broker. Reads take whatever the socket has (up to
//! the buffer's spare room) and writes send everything queued in one call; a publisher copies
//! a pre-encoded PUBLISH into the write buffer and patches its packet id and timestamp, so the
//! steady state allocates nothing per message.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::transport::{Stream, Transport};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_mqtt_core::{
    ByteStr, Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    codec::{DecodeError, Decoder, encode},
    packet::{
        Connect, Disconnect, PubResponse, Publish, Subscribe, SubscribeProperties,
        SubscriptionOptions,
    },
};

/// Read buffer room kept free before each read: large enough for a few hundred small
/// PUBLISH packets per system call.
const READ_CHUNK: usize = 64 * 1024;

/// How long a closing client waits for the broker to close its side after DISCONNECT.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why a client stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The broker sent bytes the codec refuses.
    #[error("malformed packet from the broker: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded (a topic or payload too large for MQTT).
    #[error("cannot encode {0}")]
    Encode(&'static str),
    /// CONNACK or SUBACK carried a failure code.
    #[error("refused by the broker: {0:?}")]
    Refused(ReasonCode),
    /// The broker closed the connection (or sent DISCONNECT).
    #[error("connection closed by the broker")]
    Closed,
    /// The broker answered with a packet that makes no sense here.
    #[error("unexpected {0} from the broker")]
    Unexpected(&'static str),
    /// No answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
}

/// Where and how clients connect.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The broker's address.
    pub(crate) addr: SocketAddr,
    /// How to reach it.
    pub(crate) transport: Transport,
    /// Local addresses to connect from, round robin by client index; empty: the OS picks.
    pub(crate) ifaddrs: Vec<IpAddr>,
    /// Protocol version.
    pub(crate) version: ProtocolVersion,
    /// Keep alive in seconds (0: off).
    pub(crate) keep_alive: u16,
    /// Clean session / clean start.
    pub(crate) clean: bool,
    /// User name.
    pub(crate) username: Option<String>,
    /// Password.
    pub(crate) password: Option<String>,
    /// Bound on connecting: TCP handshake plus CONNACK, and SUBACK.
    pub(crate) timeout: Duration,
}

/// One connected client.
pub(crate) struct Client {
    stream: Box<dyn Stream>,
    decoder: Decoder,
    rbuf: BytesMut,
    /// Packets queued for the next [`Client::flush`].
    pub(crate) wbuf: BytesMut,
    version: ProtocolVersion,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("version", &self.version)
            .field("buffered", &self.rbuf.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens a connection (from `target.ifaddrs[index % len]` when given), sends CONNECT and
    /// waits for a successful CONNACK, all within `target.timeout`.
    pub(crate) async fn connect(
        target: &Target,
        index: u64,
        client_id: &str,
    ) -> Result<Self, ClientError> {
        tokio::time::timeout(
            target.timeout,
            Self::connect_inner(target, index, client_id),
        )
        .await
        .map_err(|_| ClientError::Timeout("CONNACK"))?
    }

    async fn connect_inner(
        target: &Target,
        index: u64,
        client_id: &str,
    ) -> Result<Self, ClientError> {
        let stream = target
            .transport
            .connect(target.addr, &target.ifaddrs, index)
            .await?;
        let mut client = Self {
            stream,
            decoder: Decoder::with_version(target.version, u32::MAX),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(4096),
            version: target.version,
        };
        let connect = Connect {
            protocol: target.version,
            clean_start: target.clean,
            keep_alive: target.keep_alive,
            client_id: ByteStr::from(client_id),
            username: target.username.as_deref().map(ByteStr::from),
            password: target
                .password
                .as_ref()
                .map(|p| bytes::Bytes::copy_from_slice(p.as_bytes())),
            ..Connect::default()
        };
        client.queue(&Packet::Connect(Box::new(connect)))?;
        client.flush().await?;
        match client.next_packet().await? {
            Packet::ConnAck(ack) if ack.reason == ReasonCode::SUCCESS => Ok(client),
            Packet::ConnAck(ack) => Err(ClientError::Refused(ack.reason)),
            other => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// Subscribes to one filter and waits for a granted SUBACK (within `timeout`).
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let subscribe = Subscribe {
            packet_id: PacketId::FIRST,
            properties: SubscribeProperties::default(),
            filters: vec![(
                ByteStr::from(filter),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        let answer = tokio::time::timeout(timeout, self.next_packet())
            .await
            .map_err(|_| ClientError::Timeout("SUBACK"))??;
        match answer {
            Packet::SubAck(ack) => match ack.reason_codes.first() {
                Some(&code) if code.0 < 0x80 => Ok(()),
                Some(&code) => Err(ClientError::Refused(code)),
                None => Err(ClientError::Unexpected("empty SUBACK")),
            },
            other => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// The next packet, reading as needed.
    async fn next_packet(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.rbuf)? {
                return Ok(packet);
            }
            self.read().await?;
        }
    }

    /// Reads whatever the socket has into the read buffer (cancel safe: nothing is lost when
    /// the future is dropped before it completes). The broker closing is an error.
    pub(crate) async fn read(&mut self) -> Result<(), ClientError> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(ClientError::Closed),
            _ => Ok(()),
        }
    }

    /// The next whole packet already read, if any.
    pub(crate) fn buffered(&mut self) -> Result<Option<Packet>, ClientError> {
        Ok(self.decoder.decode(&mut self.rbuf)?)
    }

    /// Encodes `packet` at the end of the write buffer.
    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<(), ClientError> {
        encode(packet, self.version, &mut self.wbuf).map_err(|_| ClientError::Encode(packet.name()))
    }

    /// Queues a PUBACK for `packet_id`.
    pub(crate) fn queue_puback(&mut self, packet_id: PacketId) -> Result<(), ClientError> {
        self.queue(&Packet::PubAck(PubResponse::new(packet_id)))
    }

    /// Writes everything queued, in one call when the socket takes it.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            // TLS and WebSocket streams may hold what they accepted (a record, a frame) until
            // flushed; for TCP this is a no-op.
            self.stream.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// A normal close: DISCONNECT, then wait (briefly) for the broker to close its side, so
    /// nothing it has not read yet is lost to a reset.
    pub(crate) async fn close(mut self) {
        if self
            .queue(&Packet::Disconnect(Disconnect::default()))
            .is_err()
            || self.flush().await.is_err()
            || self.stream.shutdown().await.is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while self.read().await.is_ok() {
                self.rbuf.clear();
            }
        })
        .await;
    }
}

/// A PUBLISH encoded once, copied per message with its packet id and timestamp patched in.
#[derive(Debug)]
pub(crate) struct PublishTemplate {
    bytes: BytesMut,
    /// Where the packet id is (QoS > 0): right after the topic in both versions.
    packet_id_at: Option<usize>,
    /// Where the payload starts.
    payload_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `size` payload bytes (at least 8, for the timestamp) to `topic`.
    pub(crate) fn new(
        topic: &str,
        qos: QoS,
        size: usize,
        version: ProtocolVersion,
    ) -> Result<Self, ClientError> {
        let size = size.max(8);
        let publish = Publish {
            qos,
            topic: ByteStr::from(topic),
            packet_id: (qos != QoS::AtMostOnce).then_some(PacketId::FIRST),
            payload: bytes::Bytes::from(vec![0; size]),
            ..Publish::default()
        };
        let mut bytes = BytesMut::new();
        encode(&Packet::Publish(publish), version, &mut bytes)
            .map_err(|_| ClientError::Encode("PUBLISH"))?;
        // Fixed header: one type byte and a 1-4 byte remaining length (high bit: more).
        let header = 1 + bytes
            .iter()
            .skip(1)
            .take(4)
            .position(|b| b & 0x80 == 0)
            .map_or(4, |p| p + 1);
        Ok(Self {
            packet_id_at: (qos != QoS::AtMostOnce).then_some(header + 2 + topic.len()),
            payload_at: bytes.len() - size,
            bytes,
        })
    }

    /// Appends one PUBLISH to `buf` with `packet_id` (ignored at QoS 0) and the timestamp
    /// `nanos` in the first 8 payload bytes (big endian).
    pub(crate) fn push(&self, buf: &mut BytesMut, packet_id: PacketId, nanos: u64) {
        let start = buf.len();
        buf.put_slice(&self.bytes);
        if let Some(at) = self.packet_id_at
            && let Some(slot) = buf.get_mut(start + at..start + at + 2)
        {
            slot.copy_from_slice(&packet_id.get().to_be_bytes());
        }
        let at = start + self.payload_at;
        if let Some(slot) = buf.get_mut(at..at + 8) {
            slot.copy_from_slice(&nanos.to_be_bytes());
        }
    }
}

/// The timestamp a publisher wrote at the start of `payload`, if it has one.
pub(crate) fn timestamp(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    /// The patched template decodes to the PUBLISH it stands for, in both versions.
    #[test]
    fn template_patches_packet_id_and_timestamp() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                let template = PublishTemplate::new("bench/17", qos, 64, version).unwrap();
                let mut buf = BytesMut::new();
                template.push(&mut buf, PacketId::new(513).unwrap(), 0x0102_0304_0506_0708);
                template.push(&mut buf, PacketId::new(7).unwrap(), 42);
                let mut decoder = Decoder::with_version(version, u32::MAX);
                for (id, nanos) in [(513, 0x0102_0304_0506_0708), (7, 42)] {
                    let Some(Packet::Publish(p)) = decoder.decode(&mut buf).unwrap() else {
                        panic!("not a publish");
                    };
                    assert_eq!(p.topic.as_str(), "bench/17");
                    assert_eq!(p.qos, qos);
                    assert_eq!(p.payload.len(), 64);
                    assert_eq!(timestamp(&p.payload), Some(nanos));
                    let expected = (qos != QoS::AtMostOnce).then(|| PacketId::new(id).unwrap());
                    assert_eq!(p.packet_id, expected);
                }
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn large_payloads_have_longer_headers() {
        let template =
            PublishTemplate::new("t", QoS::AtLeastOnce, 20_000, ProtocolVersion::V5).unwrap();
        let mut buf = BytesMut::new();
        template.push(&mut buf, PacketId::new(9).unwrap(), 5);
        let mut decoder = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
        let Some(Packet::Publish(p)) = decoder.decode(&mut buf).unwrap() else {
            panic!("not a publish");
        };
        assert_eq!(p.packet_id.map(PacketId::get), Some(9));
        assert_eq!(timestamp(&p.payload), Some(5));
    }
}
