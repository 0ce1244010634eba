//! [`Exchange`]: the sans-IO CoAP message layer of RFC 7252 for one peer, with block-wise
//! transfer (RFC 7959) and the transport side of Observe (RFC 7641).
//!
//! It knows messages, not resources: requests from the peer come out as [`Event::Request`] and
//! are answered with [`Exchange::respond`]; requests we make ([`Exchange::send_request`], for
//! the LwM2M server) and notifications we send ([`Exchange::notify`]) get an [`OutHandle`] whose
//! outcome comes out as [`Event::Response`], [`Event::Acked`], [`Event::TimedOut`] or
//! [`Event::Reset`].
//!
//! Call order: `handle_datagram(now, bytes)` for each datagram from the peer and
//! `handle_timeout(now)` when [`Exchange::poll_timeout`] is due; then drain
//! [`Exchange::poll_transmit`] (datagrams to send to the peer) and [`Exchange::poll_event`].
//!
//! What it does for the caller:
//! - duplicate detection by message id in a bounded cache that forgets after
//!   EXCHANGE_LIFETIME (NON_LIFETIME for NON); a duplicate CON is answered from the cache;
//! - piggy-backed responses, or an empty ACK first when the caller has not answered a CON
//!   request within `separate_after`, then the response as a separate CON;
//! - retransmission of our CON messages: ACK_TIMEOUT × a random factor in `[1, 1.5)`, doubled
//!   each time, MAX_RETRANSMIT times, then [`Event::TimedOut`];
//! - token matching of responses (piggy-backed, separate, or Observe notifications of an
//!   observation we made); unknown CON/NON responses and empty CON messages get a RST;
//! - Block1 reassembly of large request bodies (bounded by `max_body_size`, `4.13` beyond), and
//!   Block2 for large response and notification bodies, the later blocks served from a cache;
//! - the amplification guard of RFC 7252 §11.3: until the peer has shown it receives at its
//!   address (it acknowledged, reset or answered one of our messages), response bodies go in
//!   small blocks and notifications go CON, whatever the caller asked.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};

use crate::{
    block::{BlockValue, uint},
    rng::Rng,
};

/// The transport parameters and limits of an [`Exchange`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeConfig {
    /// ACK_TIMEOUT: the first retransmission waits this times a random factor. Default 2 s.
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR: the upper bound of that factor. Default 1.5.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT: retransmissions before a CON gives up. Default 4.
    pub max_retransmit: u32,
    /// EXCHANGE_LIFETIME: how long a CON message id is remembered. Default 247 s.
    pub exchange_lifetime: Duration,
    /// NON_LIFETIME: how long a NON message id is remembered. Default 145 s.
    pub non_lifetime: Duration,
    /// The most message ids remembered for duplicate detection; the oldest go first.
    /// Default 256.
    pub max_dedup: usize,
    /// The most requests we have outstanding (CON in flight or waiting for a response),
    /// notifications included. Default 32.
    pub max_outstanding: usize,
    /// The most peer requests waiting for the caller's answer. Default 16; more get `5.03`.
    pub max_pending_requests: usize,
    /// The largest body reassembled from Block1 or cached for Block2. Default 1 MB.
    pub max_body_size: usize,
    /// Block size exponent for responses to a verified peer (6: 1024 bytes).
    pub block_szx: u8,
    /// Block size exponent for responses to a peer not verified yet (2: 64 bytes).
    pub unverified_szx: u8,
    /// How long a CON request may wait for the caller's answer before we send an empty ACK and
    /// answer separately. Default 1 s (below ACK_TIMEOUT, so the peer does not retransmit).
    pub separate_after: Duration,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            exchange_lifetime: Duration::from_secs(247),
            non_lifetime: Duration::from_secs(145),
            max_dedup: 256,
            max_outstanding: 32,
            max_pending_requests: 16,
            max_body_size: 1024 * 1024,
            block_szx: 6,
            unverified_szx: 2,
            separate_after: Duration::from_secs(1),
        }
    }
}

/// Names one message or request we sent, in the events that report its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutHandle(u64);

/// Names a peer request the caller must answer with [`Exchange::respond`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    mid: u16,
    token: Vec<u8>,
    confirmable: bool,
    block1: Option<BlockValue>,
    block2_szx: Option<u8>,
    path: String,
}

impl RequestId {
    /// The request's token.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// Whether the request was CON.
    pub fn confirmable(&self) -> bool {
        self.confirmable
    }

    /// The request's Uri-Path segments joined by `/`.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What the exchange reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new request from the peer (duplicates filtered, Block1 bodies reassembled). Answer it
    /// with [`Exchange::respond`].
    Request {
        /// Pass it back to [`Exchange::respond`].
        id: RequestId,
        /// The request.
        request: Packet,
    },
    /// A response to one of our requests: piggy-backed, separate, or a notification of an
    /// observation we made (it carries an Observe option then).
    Response {
        /// The request it answers.
        handle: OutHandle,
        /// The response.
        response: Packet,
    },
    /// The peer acknowledged our CON message with an empty ACK: a notification was delivered,
    /// or a request will be answered separately.
    Acked {
        /// The message.
        handle: OutHandle,
    },
    /// Our CON message went unacknowledged after MAX_RETRANSMIT retransmissions, or a request
    /// got no response within EXCHANGE_LIFETIME.
    TimedOut {
        /// The message.
        handle: OutHandle,
    },
    /// The peer rejected our message with a RST (for a notification: it cancels the
    /// observation, RFC 7641 §3.6).
    Reset {
        /// The message.
        handle: OutHandle,
    },
}

/// Why [`Exchange::send_request`] or [`Exchange::notify`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `max_outstanding` messages are already outstanding to this peer.
    #[error("too many outstanding messages to this peer")]
    Busy,
    /// The message cannot be encoded (an option too long, for example).
    #[error("message cannot be encoded")]
    Encode,
}

/// What our CON message is, which decides the events its outcome produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Notification,
    /// A separate response: retransmitted, but its outcome concerns nobody.
    Response,
}

#[derive(Debug)]
struct Dedup {
    mid: u16,
    expires: Instant,
    /// What we answered, resent for a duplicate CON; `None` while unanswered.
    reply: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Awaiting {
    mid: u16,
    confirmable: bool,
    since: Instant,
    /// An empty ACK went out: the answer goes separately.
    acked: bool,
}

#[derive(Debug)]
struct Outgoing {
    handle: OutHandle,
    mid: u16,
    bytes: Vec<u8>,
    retransmits: u32,
    interval: Duration,
    next_at: Instant,
    kind: Kind,
}

#[derive(Debug)]
struct Waiting {
    handle: OutHandle,
    token: Vec<u8>,
    /// An observation we made: keeps matching notifications until cancelled.
    observe: bool,
    /// When to give up waiting; `None` while the CON request itself is in flight.
    expires: Option<Instant>,
    /// The request, kept (except for observations) to ask for the next Block2 block.
    request: Option<Packet>,
    confirmable: bool,
    /// The Block2 body received so far.
    body: Vec<u8>,
}

#[derive(Debug)]
struct RecentNon {
    mid: u16,
    handle: OutHandle,
    expires: Instant,
}

#[derive(Debug)]
struct Assembly {
    path: String,
    body: Vec<u8>,
    next_num: u32,
    expires: Instant,
}

#[derive(Debug)]
struct CachedBody {
    path: String,
    template: Packet,
    body: Vec<u8>,
    expires: Instant,
}

/// The CoAP message layer for one peer. See the module docs for the call order.
#[derive(Debug)]
pub struct Exchange {
    peer: SocketAddr,
    config: ExchangeConfig,
    rng: Rng,
    next_mid: u16,
    next_handle: u64,
    verified: bool,
    dedup: VecDeque<Dedup>,
    awaiting: Vec<Awaiting>,
    outgoing: Vec<Outgoing>,
    waiting: Vec<Waiting>,
    recent_non: VecDeque<RecentNon>,
    assembly: Option<Assembly>,
    cached: Option<CachedBody>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Datagrams that did not decode (for logs and tests).
    malformed: u64,
}

impl Exchange {
    /// A fresh exchange with `peer`; `seed` randomizes message ids, tokens and jitter.
    pub fn new(peer: SocketAddr, config: ExchangeConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let next_mid = (rng.next_u64() & 0xFFFF) as u16;
        Self {
            peer,
            config,
            rng,
            next_mid,
            next_handle: 0,
            verified: false,
            dedup: VecDeque::new(),
            awaiting: Vec::new(),
            outgoing: Vec::new(),
            waiting: Vec::new(),
            recent_non: VecDeque::new(),
            assembly: None,
            cached: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            malformed: 0,
        }
    }

    /// The peer.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the peer has shown it receives at its address (see the module docs).
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// How many datagrams did not decode.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// How many message ids the duplicate cache holds (bounded by `max_dedup`).
    pub fn dedup_len(&self) -> usize {
        self.dedup.len()
    }

    /// Whether nothing is in flight, waiting or cached for answering: the state could go.
    pub fn is_idle(&self) -> bool {
        self.awaiting.is_empty() && self.outgoing.is_empty() && self.waiting.is_empty()
    }

    /// Feeds one datagram from the peer.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let packet = match Packet::from_bytes(datagram) {
            Ok(packet) if packet.header.get_version() == 1 => packet,
            Ok(_) => {
                // RFC 7252 §3: messages with an unknown version are silently ignored.
                self.malformed += 1;
                return;
            }
            Err(error) => {
                self.malformed += 1;
                tracing::debug!(peer = %self.peer, ?error, "malformed CoAP datagram");
                self.reject_malformed(datagram);
                return;
            }
        };
        let kind = packet.header.get_type();
        match packet.header.code {
            MessageClass::Empty => self.handle_empty(now, &packet, kind),
            MessageClass::Request(_) => match kind {
                MessageType::Confirmable | MessageType::NonConfirmable => {
                    self.handle_request(now, packet);
                }
                // A request cannot be an ACK or RST: a format error, ignored (§4.2).
                _ => self.malformed += 1,
            },
            MessageClass::Response(_) | MessageClass::Reserved(_) => {
                self.handle_response(now, packet, kind);
            }
        }
    }

    /// Runs the timers due at `now`: retransmissions, separate-response ACKs, expiries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let separate_after = self.config.separate_after;
        let mut acks = Vec::new();
        for awaiting in &mut self.awaiting {
            if awaiting.confirmable && !awaiting.acked && now >= awaiting.since + separate_after {
                awaiting.acked = true;
                acks.push(awaiting.mid);
            }
        }
        for mid in acks {
            let ack = empty(MessageType::Acknowledgement, mid);
            self.remember_reply(mid, &ack);
            self.transmits.push_back(ack);
        }
        let lifetime = self.config.exchange_lifetime;
        self.awaiting.retain(|a| now < a.since + lifetime);

        let mut index = 0;
        while index < self.outgoing.len() {
            let out = &mut self.outgoing[index];
            if now < out.next_at {
                index += 1;
                continue;
            }
            if out.retransmits < self.config.max_retransmit {
                out.retransmits += 1;
                out.interval = out.interval.saturating_mul(2);
                out.next_at = now + out.interval;
                self.transmits.push_back(out.bytes.clone());
                index += 1;
            } else {
                let out = self.outgoing.swap_remove(index);
                tracing::debug!(peer = %self.peer, mid = out.mid, "CON message timed out");
                if out.kind != Kind::Response {
                    self.waiting.retain(|w| w.handle != out.handle);
                    self.events
                        .push_back(Event::TimedOut { handle: out.handle });
                }
            }
        }
        let mut expired = Vec::new();
        self.waiting.retain(|w| {
            let keep = w.expires.is_none_or(|at| now < at);
            if !keep {
                expired.push(w.handle);
            }
            keep
        });
        self.events
            .extend(expired.into_iter().map(|handle| Event::TimedOut { handle }));
        self.dedup.retain(|d| now < d.expires);
        self.recent_non.retain(|r| now < r.expires);
        if self.assembly.as_ref().is_some_and(|a| now >= a.expires) {
            self.assembly = None;
        }
        if self.cached.as_ref().is_some_and(|c| now >= c.expires) {
            self.cached = None;
        }
    }

    /// Answers the peer's request `id`. The token, the message type and id (piggy-backed ACK,
    /// separate CON, or NON), the Block1 echo and Block2 splitting are set here; the caller
    /// sets the code, the options and the payload. Returns `false` when the request is no
    /// longer waiting (answered already, or expired).
    pub fn respond(&mut self, now: Instant, id: &RequestId, mut response: Packet) -> bool {
        let Some(index) = self.awaiting.iter().position(|a| a.mid == id.mid) else {
            return false;
        };
        let awaiting = self.awaiting.swap_remove(index);
        response.set_token(id.token.clone());
        if let Some(block1) = id.block1 {
            response.add_option(
                CoapOption::Block1,
                BlockValue {
                    more: false,
                    ..block1
                }
                .encode(),
            );
        }
        self.fit_block2(now, &mut response, &id.path, id.block2_szx);
        if awaiting.confirmable && !awaiting.acked {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = id.mid;
            if let Some(bytes) = encode(&response) {
                self.remember_reply(id.mid, &bytes);
                self.transmits.push_back(bytes);
            }
        } else if awaiting.confirmable {
            let handle = self.handle();
            let _ = self.send_con(now, response, handle, Kind::Response);
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.mid();
            if let Some(bytes) = encode(&response) {
                self.remember_reply(id.mid, &bytes);
                self.transmits.push_back(bytes);
            }
        }
        true
    }

    /// Drops the peer's request `id` without answering it (EMQX drops a connection-mode
    /// request that has no token). A CON duplicate then gets no answer either.
    pub fn discard(&mut self, id: &RequestId) {
        self.awaiting.retain(|a| a.mid != id.mid);
    }

    /// Sends a request of ours to the peer (the LwM2M server's device management). The caller
    /// sets the code, options and payload; an empty token is replaced by a random one. A
    /// request with Observe 0 keeps matching notifications until [`Exchange::cancel`]. A
    /// response in Block2 blocks is fetched block by block and reported once, whole (up to
    /// `max_body_size`).
    pub fn send_request(
        &mut self,
        now: Instant,
        mut request: Packet,
        confirmable: bool,
    ) -> Result<OutHandle, SendError> {
        if self.outstanding() >= self.config.max_outstanding {
            return Err(SendError::Busy);
        }
        if request.get_token().is_empty() {
            request.set_token(self.rng.next_u64().to_be_bytes().to_vec());
        }
        let observe = request
            .get_first_option(CoapOption::Observe)
            .is_some_and(|v| v.is_empty() || v == &[0]);
        let handle = self.handle();
        let token = request.get_token().to_vec();
        let kept = (!observe).then(|| request.clone());
        if confirmable {
            self.send_con(now, request, handle, Kind::Request)?;
        } else {
            self.send_non(now, request, handle)?;
        }
        self.waiting.push(Waiting {
            handle,
            token,
            observe,
            expires: (!confirmable && !observe).then(|| now + self.config.non_lifetime),
            request: kept,
            confirmable,
            body: Vec::new(),
        });
        Ok(handle)
    }

    /// Sends a notification of an observation the peer made (the caller sets the token, the
    /// Observe sequence number, the code and the payload). `path` is the observed resource,
    /// for the Block2 requests that fetch the rest of a large body. Until the peer is
    /// verified the notification goes CON whatever `confirmable` says.
    pub fn notify(
        &mut self,
        now: Instant,
        mut notification: Packet,
        confirmable: bool,
        path: &str,
    ) -> Result<OutHandle, SendError> {
        if self.outstanding() >= self.config.max_outstanding {
            return Err(SendError::Busy);
        }
        self.fit_block2(now, &mut notification, path, None);
        let handle = self.handle();
        if confirmable || !self.verified {
            self.send_con(now, notification, handle, Kind::Notification)?;
        } else {
            self.send_non(now, notification, handle)?;
        }
        Ok(handle)
    }

    /// Forgets `handle`: no more retransmissions, responses or notifications for it.
    pub fn cancel(&mut self, handle: OutHandle) {
        self.outgoing.retain(|o| o.handle != handle);
        self.waiting.retain(|w| w.handle != handle);
        self.recent_non.retain(|r| r.handle != handle);
    }

    /// The next datagram to send to the peer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Exchange::handle_timeout`] is next due, if anything is pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let separate = self.awaiting.iter().map(|a| {
            if a.confirmable && !a.acked {
                a.since + self.config.separate_after
            } else {
                a.since + self.config.exchange_lifetime
            }
        });
        let outgoing = self.outgoing.iter().map(|o| o.next_at);
        let waiting = self.waiting.iter().filter_map(|w| w.expires);
        let dedup = self.dedup.iter().map(|d| d.expires);
        let recent = self.recent_non.iter().map(|r| r.expires);
        let blocks = self
            .assembly
            .iter()
            .map(|a| a.expires)
            .chain(self.cached.iter().map(|c| c.expires));
        separate
            .chain(outgoing)
            .chain(waiting)
            .chain(dedup)
            .chain(recent)
            .chain(blocks)
            .min()
    }

    /// Our requests waiting for an answer plus our notifications in flight.
    fn outstanding(&self) -> usize {
        let notifications = self
            .outgoing
            .iter()
            .filter(|o| o.kind == Kind::Notification)
            .count();
        self.waiting.len() + notifications
    }

    fn handle(&mut self) -> OutHandle {
        self.next_handle += 1;
        OutHandle(self.next_handle)
    }

    fn mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn send_con(
        &mut self,
        now: Instant,
        mut packet: Packet,
        handle: OutHandle,
        kind: Kind,
    ) -> Result<(), SendError> {
        let mid = self.mid();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.message_id = mid;
        let bytes = encode(&packet).ok_or(SendError::Encode)?;
        let factor = 1.0 + self.rng.unit() * (self.config.ack_random_factor - 1.0).max(0.0);
        let interval = self.config.ack_timeout.mul_f64(factor);
        self.transmits.push_back(bytes.clone());
        self.outgoing.push(Outgoing {
            handle,
            mid,
            bytes,
            retransmits: 0,
            interval,
            next_at: now + interval,
            kind,
        });
        Ok(())
    }

    fn send_non(
        &mut self,
        now: Instant,
        mut packet: Packet,
        handle: OutHandle,
    ) -> Result<(), SendError> {
        let mid = self.mid();
        packet.header.set_type(MessageType::NonConfirmable);
        packet.header.message_id = mid;
        let bytes = encode(&packet).ok_or(SendError::Encode)?;
        self.transmits.push_back(bytes);
        // Remembered so that a RST to it can be matched (it cancels an observation).
        if self.recent_non.len() >= self.config.max_outstanding {
            self.recent_non.pop_front();
        }
        self.recent_non.push_back(RecentNon {
            mid,
            handle,
            expires: now + self.config.non_lifetime,
        });
        Ok(())
    }

    /// Records `mid` as seen; `false` when it was seen already (a duplicate), in which case a
    /// CON duplicate is answered from the cache.
    fn first_sighting(&mut self, now: Instant, mid: u16, confirmable: bool) -> bool {
        if let Some(seen) = self.dedup.iter().find(|d| d.mid == mid && now < d.expires) {
            if confirmable && let Some(reply) = &seen.reply {
                self.transmits.push_back(reply.clone());
            }
            return false;
        }
        // Bounded: a flood of new message ids pushes the oldest out (RELIABILITY 37).
        while self.dedup.len() >= self.config.max_dedup.max(1) {
            self.dedup.pop_front();
        }
        let lifetime = if confirmable {
            self.config.exchange_lifetime
        } else {
            self.config.non_lifetime
        };
        self.dedup.push_back(Dedup {
            mid,
            expires: now + lifetime,
            reply: None,
        });
        true
    }

    fn remember_reply(&mut self, mid: u16, bytes: &[u8]) {
        if let Some(seen) = self.dedup.iter_mut().rev().find(|d| d.mid == mid) {
            seen.reply = Some(bytes.to_vec());
        }
    }

    /// A datagram that did not decode: a CON with a readable header gets a RST (§4.2), the
    /// rest is dropped.
    fn reject_malformed(&mut self, datagram: &[u8]) {
        if datagram.len() >= 4 && datagram[0] >> 6 == 1 && (datagram[0] >> 4) & 0x3 == 0 {
            let mid = u16::from_be_bytes([datagram[2], datagram[3]]);
            self.transmits.push_back(empty(MessageType::Reset, mid));
        }
    }

    fn handle_empty(&mut self, now: Instant, packet: &Packet, kind: MessageType) {
        let mid = packet.header.message_id;
        match kind {
            // A CoAP ping (§4.3): answered with a RST.
            MessageType::Confirmable => self.transmits.push_back(empty(MessageType::Reset, mid)),
            MessageType::NonConfirmable => {}
            MessageType::Acknowledgement => {
                let Some(index) = self.outgoing.iter().position(|o| o.mid == mid) else {
                    return;
                };
                self.verified = true;
                let out = self.outgoing.swap_remove(index);
                match out.kind {
                    Kind::Request => {
                        let lifetime = self.config.exchange_lifetime;
                        if let Some(w) = self.waiting.iter_mut().find(|w| w.handle == out.handle)
                            && !w.observe
                        {
                            w.expires = Some(now + lifetime);
                        }
                        self.events.push_back(Event::Acked { handle: out.handle });
                    }
                    Kind::Notification => {
                        self.events.push_back(Event::Acked { handle: out.handle });
                    }
                    Kind::Response => {}
                }
            }
            MessageType::Reset => {
                let handle = if let Some(index) = self.outgoing.iter().position(|o| o.mid == mid) {
                    let out = self.outgoing.swap_remove(index);
                    (out.kind != Kind::Response).then_some(out.handle)
                } else if let Some(index) = self.recent_non.iter().position(|r| r.mid == mid) {
                    self.recent_non.remove(index).map(|r| r.handle)
                } else {
                    None
                };
                if let Some(handle) = handle {
                    self.verified = true;
                    self.waiting.retain(|w| w.handle != handle);
                    self.events.push_back(Event::Reset { handle });
                }
            }
        }
    }

    fn handle_request(&mut self, now: Instant, mut request: Packet) {
        let mid = request.header.message_id;
        let confirmable = request.header.get_type() == MessageType::Confirmable;
        if !self.first_sighting(now, mid, confirmable) {
            return;
        }
        let path = path_of(&request);
        if self.awaiting.len() >= self.config.max_pending_requests {
            let mut busy = reply_to(&request, ResponseType::ServiceUnavailable);
            busy.payload = b"too many requests".to_vec();
            self.reply_now(&request, busy);
            return;
        }
        let block2 = BlockValue::of(&request, CoapOption::Block2);
        if let Some(Some(block2)) = block2
            && block2.num > 0
        {
            self.serve_block2(&request, &path, block2);
            return;
        }
        let block1 = match BlockValue::of(&request, CoapOption::Block1) {
            None => None,
            Some(None) => {
                let bad = reply_to(&request, ResponseType::BadOption);
                self.reply_now(&request, bad);
                return;
            }
            Some(Some(block1)) => match self.assemble(now, &mut request, &path, block1) {
                Some(block1) => Some(block1),
                None => return,
            },
        };
        self.awaiting.push(Awaiting {
            mid,
            confirmable,
            since: now,
            acked: false,
        });
        let id = RequestId {
            mid,
            token: request.get_token().to_vec(),
            confirmable,
            block1,
            block2_szx: block2.flatten().map(|b| b.szx),
            path,
        };
        self.events.push_back(Event::Request { id, request });
    }

    /// Adds one Block1 block to the body being assembled. Returns the last block's value when
    /// the body is complete (the request's payload is then the whole body); `None` when the
    /// request was answered here (2.31 Continue, 4.08, 4.13).
    fn assemble(
        &mut self,
        now: Instant,
        request: &mut Packet,
        path: &str,
        block: BlockValue,
    ) -> Option<BlockValue> {
        let max = self.config.max_body_size;
        let announced = request
            .get_first_option(CoapOption::Size1)
            .and_then(|v| crate::block::read_uint(v))
            .map_or(0, |s| s as usize);
        if block.num == 0 {
            self.assembly = Some(Assembly {
                path: path.to_owned(),
                body: Vec::new(),
                next_num: 0,
                expires: now + self.config.exchange_lifetime,
            });
        }
        let in_order = self
            .assembly
            .as_ref()
            .is_some_and(|a| a.path == path && a.next_num == block.num);
        if !in_order {
            let incomplete = reply_to(request, ResponseType::RequestEntityIncomplete);
            self.reply_now(request, incomplete);
            return None;
        }
        let size_ok =
            announced <= max && block.offset().saturating_add(request.payload.len()) <= max;
        if !size_ok {
            self.assembly = None;
            let mut too_large = reply_to(request, ResponseType::RequestEntityTooLarge);
            too_large.add_option(
                CoapOption::Size1,
                uint(u32::try_from(max).unwrap_or(u32::MAX)),
            );
            self.reply_now(request, too_large);
            return None;
        }
        let assembly = self.assembly.as_mut()?;
        if assembly.body.len() != block.offset()
            || (block.more && request.payload.len() != block.size())
        {
            self.assembly = None;
            let incomplete = reply_to(request, ResponseType::RequestEntityIncomplete);
            self.reply_now(request, incomplete);
            return None;
        }
        assembly.body.extend_from_slice(&request.payload);
        assembly.next_num = block.num + 1;
        if block.more {
            let mut cont = reply_to(request, ResponseType::Continue);
            cont.add_option(CoapOption::Block1, block.encode());
            self.reply_now(request, cont);
            return None;
        }
        let body = self.assembly.take().map(|a| a.body).unwrap_or_default();
        request.payload = body;
        request.clear_option(CoapOption::Block1);
        request.clear_option(CoapOption::Size1);
        Some(block)
    }

    /// Answers a request for a later block of a cached body.
    fn serve_block2(&mut self, request: &Packet, path: &str, block: BlockValue) {
        let Some(cached) = self.cached.as_ref().filter(|c| c.path == path) else {
            let missing = reply_to(request, ResponseType::RequestEntityIncomplete);
            self.reply_now(request, missing);
            return;
        };
        let szx = block.szx.min(self.config.block_szx);
        let block = BlockValue { szx, ..block };
        let start = block.offset();
        if start >= cached.body.len() {
            let bad = reply_to(request, ResponseType::BadOption);
            self.reply_now(request, bad);
            return;
        }
        let end = start.saturating_add(block.size()).min(cached.body.len());
        let mut response = cached.template.clone();
        response.payload = cached.body[start..end].to_vec();
        response.add_option(
            CoapOption::Block2,
            BlockValue {
                more: end < cached.body.len(),
                ..block
            }
            .encode(),
        );
        self.reply_now(request, response);
    }

    /// Splits a body larger than one block: the first block goes now, the body is cached for
    /// the peer's Block2 requests.
    fn fit_block2(&mut self, now: Instant, packet: &mut Packet, path: &str, asked: Option<u8>) {
        let mut szx = if self.verified {
            self.config.block_szx
        } else {
            self.config.unverified_szx
        };
        if let Some(asked) = asked {
            szx = szx.min(asked);
        }
        let size = 1usize << (usize::from(szx.min(6)) + 4);
        if packet.payload.len() <= size {
            return;
        }
        let body = std::mem::take(&mut packet.payload);
        let total = u32::try_from(body.len()).unwrap_or(u32::MAX);
        packet.add_option(CoapOption::Size2, uint(total));
        let mut template = packet.clone();
        template.set_token(Vec::new());
        template.clear_option(CoapOption::Observe);
        template.clear_option(CoapOption::Size2);
        packet.payload = body[..size].to_vec();
        packet.add_option(
            CoapOption::Block2,
            BlockValue {
                num: 0,
                more: true,
                szx,
            }
            .encode(),
        );
        if body.len() <= self.config.max_body_size {
            self.cached = Some(CachedBody {
                path: path.to_owned(),
                template,
                body,
                expires: now + self.config.exchange_lifetime,
            });
        }
    }

    /// Answers `request` at once (piggy-backed for CON, NON for NON) and remembers the answer
    /// for duplicates.
    fn reply_now(&mut self, request: &Packet, mut response: Packet) {
        let mid = request.header.message_id;
        response.set_token(request.get_token().to_vec());
        if request.header.get_type() == MessageType::Confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = mid;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.mid();
        }
        if let Some(bytes) = encode(&response) {
            self.remember_reply(mid, &bytes);
            self.transmits.push_back(bytes);
        }
    }

    fn handle_response(&mut self, now: Instant, response: Packet, kind: MessageType) {
        let mid = response.header.message_id;
        let token = response.get_token().to_vec();
        match kind {
            MessageType::Acknowledgement => {
                let waiting = &self.waiting;
                let Some(index) = self.outgoing.iter().position(|o| {
                    o.mid == mid
                        && o.kind == Kind::Request
                        && waiting
                            .iter()
                            .any(|w| w.handle == o.handle && w.token == token)
                }) else {
                    // An ACK for nothing we sent, or with another request's token: ignored
                    // (§4.2, §5.3.2).
                    return;
                };
                let out = self.outgoing.swap_remove(index);
                self.verified = true;
                self.deliver_response(now, out.handle, response);
            }
            MessageType::Reset => {}
            MessageType::Confirmable | MessageType::NonConfirmable => {
                let confirmable = kind == MessageType::Confirmable;
                let Some(handle) = self
                    .waiting
                    .iter()
                    .find(|w| w.token == token)
                    .map(|w| w.handle)
                else {
                    // Unknown response: rejected (§4.2, §4.3).
                    self.transmits.push_back(empty(MessageType::Reset, mid));
                    return;
                };
                let fresh = self.first_sighting(now, mid, confirmable);
                if confirmable {
                    let ack = empty(MessageType::Acknowledgement, mid);
                    self.remember_reply(mid, &ack);
                    if fresh {
                        self.transmits.push_back(ack);
                    }
                }
                if fresh {
                    self.verified = true;
                    // A separate response may overtake the empty ACK of our request.
                    self.outgoing.retain(|o| o.handle != handle);
                    self.deliver_response(now, handle, response);
                }
            }
        }
    }

    fn deliver_response(&mut self, now: Instant, handle: OutHandle, mut response: Packet) {
        let notification = response.get_first_option(CoapOption::Observe).is_some();
        let error = matches!(response.header.code, MessageClass::Response(r) if r.is_error());
        let Some(index) = self.waiting.iter().position(|w| w.handle == handle) else {
            self.events.push_back(Event::Response { handle, response });
            return;
        };
        if !notification
            && !error
            && let Some(Some(block)) = BlockValue::of(&response, CoapOption::Block2)
        {
            let max = self.config.max_body_size;
            let w = &mut self.waiting[index];
            let fits = w.body.len() == block.offset()
                && w.body.len().saturating_add(response.payload.len()) <= max;
            if fits {
                w.body.extend_from_slice(&response.payload);
                if block.more
                    && let Some(mut next) = w.request.clone()
                {
                    // RFC 7959 §2.4: ask for the next block with the same request.
                    let confirmable = w.confirmable;
                    next.clear_option(CoapOption::Block2);
                    let next_block = BlockValue {
                        num: block.num + 1,
                        more: false,
                        szx: block.szx,
                    };
                    next.add_option(CoapOption::Block2, next_block.encode());
                    let sent = if confirmable {
                        w.expires = None;
                        self.send_con(now, next, handle, Kind::Request)
                    } else {
                        self.send_non(now, next, handle)
                    };
                    if sent.is_ok() {
                        return;
                    }
                } else if !block.more {
                    response.payload = std::mem::take(&mut w.body);
                    response.clear_option(CoapOption::Block2);
                }
            }
        }
        let w = &self.waiting[index];
        if !(w.observe && notification && !error) {
            self.waiting.swap_remove(index);
        }
        self.events.push_back(Event::Response { handle, response });
    }
}

/// The Uri-Path segments joined by `/`.
pub fn path_of(packet: &Packet) -> String {
    let mut path = String::new();
    if let Some(segments) = packet.get_option(CoapOption::UriPath) {
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(&String::from_utf8_lossy(segment));
        }
    }
    path
}

/// A response packet with `code` for `request` (type, id and token are set when it is sent).
pub fn reply_to(request: &Packet, code: ResponseType) -> Packet {
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(code);
    response.set_token(request.get_token().to_vec());
    response
}

/// An empty message (ACK or RST) with `mid`.
fn empty(kind: MessageType, mid: u16) -> Vec<u8> {
    let kind = match kind {
        MessageType::Confirmable => 0,
        MessageType::NonConfirmable => 1,
        MessageType::Acknowledgement => 2,
        MessageType::Reset => 3,
    };
    let [hi, lo] = mid.to_be_bytes();
    vec![0x40 | (kind << 4), 0, hi, lo]
}

/// Encodes `packet`; `None` (logged) when an option cannot be encoded.
fn encode(packet: &Packet) -> Option<Vec<u8>> {
    match packet.to_bytes_unlimited() {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::warn!(?error, "CoAP message cannot be encoded");
            None
        }
    }
}

#[cfg(test)]
#[path = "tests/exchange.rs"]
mod tests;
