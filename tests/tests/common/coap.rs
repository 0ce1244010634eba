//! A small CoAP client for the gateway tests, built on coap-lite: requests with fresh message
//! ids and tokens, bounded waits for the answer, and notifications acknowledged as they come.

use std::{net::SocketAddr, time::Duration};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use tokio::net::UdpSocket;

use super::WAIT;

/// A CoAP client on its own loopback UDP socket.
pub struct Coap {
    socket: UdpSocket,
    server: SocketAddr,
    mid: u16,
    token: u32,
}

/// A request builder: method, `a/b` path, `k=v` queries.
pub fn request(method: RequestType, path: &str, queries: &[&str]) -> Packet {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Request(method);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    for query in queries {
        packet.add_option(CoapOption::UriQuery, query.as_bytes().to_vec());
    }
    packet
}

/// The response code of `packet`.
pub fn code(packet: &Packet) -> MessageClass {
    packet.header.code
}

/// A response code as a `MessageClass`.
pub fn response(code: ResponseType) -> MessageClass {
    MessageClass::Response(code)
}

/// The Observe option value of `packet`.
pub fn observe(packet: &Packet) -> Option<u32> {
    packet
        .get_first_option(CoapOption::Observe)
        .map(|v| v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

impl Coap {
    /// A client of the gateway's CoAP listener at `server`.
    pub async fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self {
            socket,
            server,
            mid: 100,
            token: 0x5000,
        }
    }

    /// The client's address.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// Sends `packet` as `kind` with a fresh message id and (if it has none) a fresh token;
    /// returns the message id.
    pub async fn send(&mut self, packet: &mut Packet, kind: MessageType) -> u16 {
        self.mid = self.mid.wrapping_add(1);
        packet.header.set_type(kind);
        packet.header.message_id = self.mid;
        if packet.get_token().is_empty() {
            self.token += 1;
            packet.set_token(self.token.to_be_bytes().to_vec());
        }
        self.send_raw(&packet.to_bytes_unlimited().unwrap()).await;
        self.mid
    }

    /// Sends raw bytes.
    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// The next datagram within `within`, decoded.
    pub async fn recv_within(&self, within: Duration) -> Option<Packet> {
        let mut buf = vec![0u8; 65_536];
        let (len, _) = tokio::time::timeout(within, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(Packet::from_bytes(&buf[..len]).expect("the gateway sent a valid CoAP message"))
    }

    /// The next datagram; fails the test after [`WAIT`].
    pub async fn recv(&self) -> Packet {
        self.recv_within(WAIT)
            .await
            .expect("no CoAP message from the gateway")
    }

    /// Sends `packet` (CON or NON) and waits for its answer: the piggy-backed ACK, or, after an
    /// empty ACK, the separate response (acknowledged).
    pub async fn call(&mut self, mut packet: Packet, kind: MessageType) -> Packet {
        let mid = self.send(&mut packet, kind).await;
        let token = packet.get_token().to_vec();
        loop {
            let answer = self.recv().await;
            if answer.header.get_type() == MessageType::Acknowledgement
                && answer.header.message_id == mid
                && answer.header.code == MessageClass::Empty
            {
                continue;
            }
            if answer.get_token() == token.as_slice() {
                if answer.header.get_type() == MessageType::Confirmable {
                    self.ack(&answer).await;
                }
                return answer;
            }
        }
    }

    /// [`Coap::call`] with CON.
    pub async fn con(&mut self, packet: Packet) -> Packet {
        self.call(packet, MessageType::Confirmable).await
    }

    /// Acknowledges a CON message.
    pub async fn ack(&self, message: &Packet) {
        self.empty(MessageType::Acknowledgement, message.header.message_id)
            .await;
    }

    /// Rejects a message with a RST.
    pub async fn reset(&self, message: &Packet) {
        self.empty(MessageType::Reset, message.header.message_id)
            .await;
    }

    async fn empty(&self, kind: MessageType, mid: u16) {
        let mut packet = Packet::new();
        packet.header.set_type(kind);
        packet.header.code = MessageClass::Empty;
        packet.header.message_id = mid;
        self.send_raw(&packet.to_bytes_unlimited().unwrap()).await;
    }

    /// The next notification (acknowledged when CON).
    pub async fn notification(&self) -> Packet {
        let note = self.recv().await;
        if note.header.get_type() == MessageType::Confirmable {
            self.ack(&note).await;
        }
        note
    }
}
