//! A minimal MQTT client over any byte stream, built on Tributary's own codec: it lets one test
//! drive every transport (QUIC included, which no crates.io MQTT client speaks) the same way.
//! Third-party clients (rumqttc) cover TCP, TLS and WebSocket in their own tests.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_mqtt_core::{
    Packet, PacketId, ProtocolVersion, QoS, ReasonCode,
    codec::{Decoder, encode},
    packet::{ConnAck, Connect, PubResponse, Publish, Subscribe, SubscriptionOptions},
};

use crate::transports::BoxStream;

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// An MQTT client on one byte stream.
pub struct MqttClient {
    stream: BoxStream,
    version: ProtocolVersion,
    decoder: Decoder,
    input: BytesMut,
    next_id: u16,
}

impl std::fmt::Debug for MqttClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttClient")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl MqttClient {
    /// Sends CONNECT (clean start, keep alive 30 s) as `client_id` and expects a successful
    /// CONNACK.
    pub async fn connect(stream: BoxStream, version: ProtocolVersion, client_id: &str) -> Self {
        let (client, connack) = Self::try_connect(
            stream,
            Connect {
                protocol: version,
                clean_start: true,
                keep_alive: 30,
                client_id: client_id.into(),
                ..Connect::default()
            },
        )
        .await;
        let connack = connack.unwrap_or_else(|| panic!("{client_id}: closed instead of CONNACK"));
        assert_eq!(connack.reason, ReasonCode::SUCCESS, "{client_id}: CONNACK");
        client
    }

    /// Sends `connect` and returns the CONNACK, or `None` when the server closed instead (also
    /// when it closed before the CONNECT could be written: a server that refuses a TLS 1.3
    /// client certificate does so after the client's handshake has completed).
    pub async fn try_connect(stream: BoxStream, connect: Connect) -> (Self, Option<ConnAck>) {
        let version = connect.protocol;
        let mut client = Self {
            stream,
            version,
            decoder: Decoder::with_version(version, u32::MAX),
            input: BytesMut::new(),
            next_id: 0,
        };
        if client
            .try_send(&Packet::Connect(Box::new(connect)))
            .await
            .is_err()
        {
            return (client, None);
        }
        match client.recv().await {
            Some(Packet::ConnAck(connack)) => (client, Some(connack)),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
            None => (client, None),
        }
    }

    /// Writes one packet and flushes.
    pub async fn send(&mut self, packet: &Packet) {
        self.try_send(packet).await.expect("write");
    }

    /// Writes one packet and flushes; the error if the connection is gone.
    pub async fn try_send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode(packet, self.version, &mut out).expect("encode");
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// The next packet, or `None` when the stream ended; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.input).expect("decode") {
                    return Some(packet);
                }
                match self.stream.read_buf(&mut self.input).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("timed out waiting for a packet")
    }

    fn packet_id(&mut self) -> PacketId {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        PacketId::new(self.next_id).expect("non-zero")
    }

    /// Subscribes to `filter` and expects it granted at `qos`.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let packet_id = self.packet_id();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id,
            properties: Default::default(),
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(suback)) => {
                assert_eq!(suback.packet_id, packet_id);
                let granted = match qos {
                    QoS::AtMostOnce => ReasonCode::SUCCESS,
                    QoS::AtLeastOnce => ReasonCode::GRANTED_QOS_1,
                    QoS::ExactlyOnce => ReasonCode::GRANTED_QOS_2,
                };
                assert_eq!(suback.reason_codes, vec![granted]);
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes; at QoS 1 waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS) {
        let packet_id = (qos != QoS::AtMostOnce).then(|| self.packet_id());
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id,
            properties: Default::default(),
            payload: Bytes::copy_from_slice(payload),
        }))
        .await;
        if qos == QoS::AtLeastOnce {
            match self.recv().await {
                Some(Packet::PubAck(ack)) => assert_eq!(Some(ack.packet_id), packet_id),
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
    }

    /// The next PUBLISH (acknowledged if QoS 1), skipping other packets.
    pub async fn next_publish(&mut self) -> Publish {
        loop {
            match self.recv().await {
                Some(Packet::Publish(publish)) => {
                    if let (QoS::AtLeastOnce, Some(id)) = (publish.qos, publish.packet_id) {
                        self.send(&Packet::PubAck(PubResponse::new(id))).await;
                    }
                    return publish;
                }
                Some(_) => {}
                None => panic!("connection closed while waiting for a PUBLISH"),
            }
        }
    }

    /// The underlying stream, for tests that write raw bytes.
    pub fn stream(&mut self) -> &mut BoxStream {
        &mut self.stream
    }
}
