//! [`serve`]: the async driver of the LwM2M gateway on one UDP socket.
//!
//! One task reads the socket and hands each datagram to the task of its peer address (created
//! on its first datagram). A peer task owns the peer's CoAP [`Exchange`] (the `coap` crate's
//! message layer: dedup, retransmission, separate responses, token matching), the device's
//! [`Session`] once it registered, and its [`VirtualClient`]; it is a small `select!` loop
//! around them: datagrams in, command deliveries from the broker, timers.
//!
//! Wiring done here, as [`crate::registration`] asks:
//! - `POST /rd` is a Register, `POST /rd/{ep}` an Update, `DELETE /rd/{ep}` a De-register;
//!   anything else gets `4.04` (unknown location) or `4.05` (another method on `rd`);
//! - the device connects as a virtual client (client id `device_id` or `ep`, username `imei`
//!   or `ep`, password `password`) through the authentication hook, after the session accepted
//!   the Register; a refused login answers `4.00 Login Failed: ..`;
//! - the number of registered devices is capped by `max_connections` (`5.03` beyond), and the
//!   number of peer tasks by that plus [`UNREGISTERED_SLACK`] (datagrams from more are
//!   dropped), so memory stays bounded;
//! - each [`RequestHandle`] is mapped to the [`OutHandle`] of the CON request sent for it; the
//!   first response answers the command, later ones (Observe) are notifications; a successful
//!   cancel-observe, or a notification no observation wants, makes the exchange forget the
//!   observation's token (the device's next notification gets a RST);
//! - a registration ends on De-register, lifetime expiry, takeover (the same client id
//!   registered from another address: the broker kicks this one) or shutdown.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_coap::{
    Event, Exchange, ExchangeConfig, OutHandle, RequestId,
    block::{read_uint, uint},
    coap_lite::{CoapOption, MessageClass, Packet, RequestType},
    demux::{self, now, wait_client},
};
use tributary_mqtt_core::{
    ByteStr, QoS, ReasonCode,
    message::Delivery,
    packet::{RetainHandling, SubscriptionOptions},
};
use tributary_protocols::{Broker, Protocol, Transport, VirtualClient, VirtualConnect, Wake};

use crate::{
    command::{DeviceRequest, Method, ResponseCode},
    content::ContentFormat,
    object::ObjectRegistry,
    registration::{CloseReason, DeviceReply, DeviceResponse, Output, RequestHandle, Session},
    settings::Lwm2mSettings,
};

/// Peers served beyond `max_connections` that have not registered (yet): room for devices
/// registering while the gateway is full, and for stray datagrams, bounded.
pub const UNREGISTERED_SLACK: usize = 64;

/// The runtime settings of an LwM2M listener.
#[derive(Debug, Clone)]
pub struct Lwm2mConfig {
    /// The gateway settings the sessions use.
    pub settings: Lwm2mSettings,
    /// The most registered devices at once; a Register beyond it gets `5.03`.
    pub max_connections: usize,
    /// A peer that has not registered is forgotten after this long without a datagram.
    pub idle_timeout: Duration,
    /// The listener, `udp:default`.
    pub listener: Arc<str>,
    /// The exchange layer's timers and limits.
    pub exchange: ExchangeConfig,
}

impl Default for Lwm2mConfig {
    fn default() -> Self {
        Self {
            settings: Lwm2mSettings::default(),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            listener: Arc::from("udp:default"),
            exchange: ExchangeConfig::default(),
        }
    }
}

/// Deliveries taken from the mailbox per batch.
const DELIVERY_BATCH: usize = 64;

/// What every peer task shares.
struct Shared {
    socket: UdpSocket,
    broker: Broker,
    config: Lwm2mConfig,
    settings: Arc<Lwm2mSettings>,
    registry: Arc<ObjectRegistry>,
    /// Registered devices, against `max_connections`.
    registered: AtomicUsize,
}

/// Serves LwM2M on `socket` (already bound by the gateway) until `shutdown` is cancelled; then
/// every device's client is disconnected and the peer tasks are awaited. `registry` holds the
/// object definitions (built-in plus `xml_dir`, loaded by the gateway).
pub async fn serve(
    socket: UdpSocket,
    broker: Broker,
    config: Lwm2mConfig,
    registry: Arc<ObjectRegistry>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        socket,
        broker,
        settings: Arc::new(config.settings.clone()),
        config,
        registry,
        registered: AtomicUsize::new(0),
    });
    let max_peers = shared
        .config
        .max_connections
        .saturating_add(UNREGISTERED_SLACK);
    let tasks = TaskTracker::new();
    demux::run(&shared.socket, &shutdown, max_peers, "lwm2m", |new| {
        let task = Peer {
            addr: new.addr,
            exchange: Exchange::new(new.addr, shared.config.exchange.clone(), new.seed),
            shared: Arc::clone(&shared),
            session: None,
            client: None,
            counted: false,
            handles: HashMap::new(),
            last_seen: now(),
            done: None,
            deliveries: Vec::new(),
        };
        tasks.spawn(task.run(new.datagrams, shutdown.clone()));
    })
    .await;
    tasks.close();
    tasks.wait().await;
}

/// A request we sent to the device for the session.
#[derive(Debug, Clone)]
struct Sent {
    handle: RequestHandle,
    /// The first response came: later ones are notifications.
    answered: bool,
    /// The request's Observe option and path: an observe (0) keeps its token in the exchange
    /// until a cancel-observe (1) of the same path succeeds.
    observe: Option<(u32, Vec<String>)>,
}

/// One peer's state, owned by its task.
struct Peer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    exchange: Exchange,
    /// The device's session, once a Register was accepted.
    session: Option<Session>,
    client: Option<VirtualClient>,
    /// Whether this peer holds one of the `max_connections` registrations.
    counted: bool,
    handles: HashMap<OutHandle, Sent>,
    last_seen: Instant,
    /// Why the task ends, once it must.
    done: Option<&'static str>,
    deliveries: Vec<Delivery>,
}

/// The Uri-Path or Uri-Query values of a request, as strings (invalid UTF-8 made lossy: it
/// then fails to match or validate, which is the right outcome).
fn option_strings(packet: &Packet, option: CoapOption) -> Vec<String> {
    packet
        .get_option(option)
        .map(|values| {
            values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A [`DeviceRequest`] as a CoAP request (the exchange sets type, id and token).
fn to_packet(request: &DeviceRequest) -> Packet {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Request(match request.method {
        Method::Get => RequestType::Get,
        Method::Post => RequestType::Post,
        Method::Put => RequestType::Put,
        Method::Delete => RequestType::Delete,
    });
    if let Some(observe) = request.observe {
        packet.add_option(CoapOption::Observe, uint(observe));
    }
    for segment in &request.path {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    if let Some(format) = request.content_format {
        packet.add_option(CoapOption::ContentFormat, uint(u32::from(format.0)));
    }
    for query in &request.queries {
        packet.add_option(CoapOption::UriQuery, query.as_bytes().to_vec());
    }
    if let Some(accept) = request.accept {
        packet.add_option(CoapOption::Accept, uint(u32::from(accept.0)));
    }
    packet.payload = request.payload.to_vec();
    packet
}

/// A CoAP response as the session sees it.
fn to_response(packet: Packet) -> DeviceResponse {
    let first_uint = |option| {
        packet
            .get_first_option(option)
            .and_then(|v: &Vec<u8>| read_uint(v))
    };
    let content_format = first_uint(CoapOption::ContentFormat)
        .and_then(|v| u16::try_from(v).ok().map(ContentFormat));
    let observe = first_uint(CoapOption::Observe);
    DeviceResponse {
        code: ResponseCode::from_byte(u8::from(packet.header.code)),
        content_format,
        observe,
        payload: Bytes::from(packet.payload),
    }
}

fn close_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Deregistered => "normal",
        // EMQX's word for a lifetime that ran out.
        CloseReason::LifetimeExpired => "timeout",
    }
}

fn login_failure(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::BAD_USERNAME_OR_PASSWORD => "bad_username_or_password",
        ReasonCode::NOT_AUTHORIZED => "not_authorized",
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => "client_identifier_not_valid",
        _ => "unspecified_error",
    }
}

impl Peer {
    async fn run(mut self, mut datagrams: mpsc::Receiver<Vec<u8>>, shutdown: CancellationToken) {
        loop {
            self.flush().await;
            if self.done.is_some() {
                break;
            }
            let deadline = self.deadline();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => self.done = Some("shutdown"),
                datagram = datagrams.recv() => {
                    let Some(datagram) = datagram else { break };
                    let now = now();
                    self.last_seen = now;
                    self.exchange.handle_datagram(now, &datagram);
                    self.process_events(now).await;
                }
                wake = wait_client(&mut self.client) => match wake {
                    Wake::Kicked(kind) => {
                        tracing::info!(peer = %self.addr, endpoint = self.endpoint(), ?kind, "lwm2m: device kicked (registered again elsewhere, or by an operator)");
                        // The broker already ended this client: nothing to disconnect.
                        self.client = None;
                        self.done = Some("takenover");
                    }
                    _ => self.deliver(now()),
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = now();
                    self.exchange.handle_timeout(now);
                    self.process_events(now).await;
                    if let Some(session) = &mut self.session {
                        session.handle_timeout(now);
                    }
                    self.drain_session(now);
                    if self.session.is_none()
                        && now >= self.last_seen + self.shared.config.idle_timeout
                    {
                        self.done = Some("idle_timeout");
                    }
                }
            }
        }
        // A last flush: the reply to a De-register, for instance.
        self.flush().await;
        let reason = self.done.unwrap_or("normal");
        if let Some(client) = self.client.take() {
            client.disconnect(reason);
        }
        if self.counted {
            self.shared.registered.fetch_sub(1, Ordering::Relaxed);
        }
        tracing::debug!(peer = %self.addr, endpoint = self.endpoint(), reason, "lwm2m: peer closed");
    }

    fn endpoint(&self) -> &str {
        self.session
            .as_ref()
            .and_then(Session::identity)
            .map_or("", |i| i.endpoint.as_str())
    }

    fn deadline(&self) -> Instant {
        let mut deadline = match &self.session {
            // A registered device's end is its lifetime, in the session's timeout.
            Some(session) => session.poll_timeout(),
            None => Some(self.last_seen + self.shared.config.idle_timeout),
        };
        if let Some(exchange) = self.exchange.poll_timeout() {
            deadline = Some(deadline.map_or(exchange, |d| d.min(exchange)));
        }
        // Nothing pending at all: wake up now and then anyway, harmlessly.
        deadline.unwrap_or_else(|| now() + self.shared.config.idle_timeout)
    }

    async fn flush(&mut self) {
        demux::flush(&mut self.exchange, &self.shared.socket, self.addr, "lwm2m").await;
    }

    async fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.exchange.poll_event() {
            match event {
                Event::Request { id, request } => self.handle_request(now, id, request).await,
                Event::Response { handle, response } => self.handle_response(now, handle, response),
                Event::Acked { handle } => {
                    if let (Some(sent), Some(session)) =
                        (self.handles.get(&handle), &mut self.session)
                    {
                        if !sent.answered {
                            session.handle_ack(now, sent.handle);
                        }
                    }
                }
                Event::TimedOut { handle } => {
                    if let (Some(sent), Some(session)) =
                        (self.handles.remove(&handle), &mut self.session)
                    {
                        tracing::debug!(peer = %self.addr, endpoint = session.identity().map_or("", |i| i.endpoint.as_str()), "lwm2m: request to device timed out");
                        session.handle_exchange_timeout(now, sent.handle);
                    }
                }
                Event::Reset { handle } => {
                    if let (Some(sent), Some(session)) =
                        (self.handles.remove(&handle), &mut self.session)
                    {
                        session.handle_reset(now, sent.handle);
                    }
                }
                _ => {}
            }
            self.drain_session(now);
        }
    }

    fn handle_response(&mut self, now: Instant, out: OutHandle, packet: Packet) {
        let Some(session) = &mut self.session else {
            return;
        };
        let Some(sent) = self.handles.get_mut(&out) else {
            return;
        };
        let response = to_response(packet);
        if !sent.answered {
            sent.answered = true;
            let handle = sent.handle;
            let cancelled = match &sent.observe {
                Some((1, path)) if response.code.is_success() => Some(path.clone()),
                _ => None,
            };
            // Only a response that starts an observation has followers. Otherwise the exchange
            // forgets the token too: an observe the device did not accept must not hold one
            // of the peer's outstanding slots.
            if response.observe.is_none() || !response.code.is_success() {
                self.handles.remove(&out);
                self.exchange.cancel(out);
            }
            session.handle_response(now, handle, response);
            if let Some(path) = cancelled {
                // The observation is over: forget its token now, so the exchange's slot is
                // free and a late notification gets a RST (RFC 7641 §3.6).
                let observing: Vec<OutHandle> = self
                    .handles
                    .iter()
                    .filter(|(_, s)| {
                        s.observe
                            .as_ref()
                            .is_some_and(|(o, p)| *o == 0 && *p == path)
                    })
                    .map(|(h, _)| *h)
                    .collect();
                for h in observing {
                    self.handles.remove(&h);
                    self.exchange.cancel(h);
                }
            }
        } else if !session.handle_notification(now, sent.handle, response) {
            // Cancelled: forget the token, so the device's next notification gets a RST.
            self.handles.remove(&out);
            self.exchange.cancel(out);
        }
    }

    fn respond(&mut self, now: Instant, id: &RequestId, reply: &DeviceReply) {
        let mut response = Packet::new();
        response.header.code = MessageClass::from(reply.code.class << 5 | reply.code.detail);
        for segment in &reply.location_path {
            response.add_option(CoapOption::LocationPath, segment.as_bytes().to_vec());
        }
        response.payload = reply.payload.as_bytes().to_vec();
        let _ = self.exchange.respond(now, id, response);
    }

    fn refuse(&mut self, now: Instant, id: &RequestId, code: ResponseCode, text: &str) {
        let reply = DeviceReply {
            code,
            location_path: Vec::new(),
            payload: text.to_owned(),
        };
        self.respond(now, id, &reply);
    }

    async fn handle_request(&mut self, now: Instant, id: RequestId, request: Packet) {
        let path = option_strings(&request, CoapOption::UriPath);
        let queries = option_strings(&request, CoapOption::UriQuery);
        let method = match request.header.code {
            MessageClass::Request(method) => method,
            _ => return,
        };
        match (method, path.first().map(String::as_str), path.len()) {
            (RequestType::Post, Some("rd"), 1) => {
                self.register(now, &id, &queries, &request.payload).await;
            }
            (RequestType::Post, Some("rd"), _) => {
                let reply = match &mut self.session {
                    Some(session) => session.handle_update(now, &path, &queries, &request.payload),
                    None => unknown_location(),
                };
                self.respond(now, &id, &reply);
            }
            (RequestType::Delete, Some("rd"), 2..) => {
                let reply = match &mut self.session {
                    Some(session) => session.handle_deregister(now, &path),
                    None => unknown_location(),
                };
                self.respond(now, &id, &reply);
            }
            (_, Some("rd"), _) => {
                self.refuse(now, &id, ResponseCode::new(4, 5), "");
            }
            _ => self.respond(now, &id, &unknown_location()),
        }
        self.drain_session(now);
    }

    async fn register(&mut self, now: Instant, id: &RequestId, queries: &[String], payload: &[u8]) {
        if let Some(session) = &mut self.session {
            // A re-register from the same address: the session merges it.
            let reply = session.handle_register(now, queries, payload);
            self.respond(now, id, &reply);
            return;
        }
        let shared = Arc::clone(&self.shared);
        let max = shared.config.max_connections;
        if shared
            .registered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            tracing::warn!(peer = %self.addr, max, "lwm2m: max_connections reached, register refused");
            self.refuse(
                now,
                id,
                ResponseCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
            );
            return;
        }
        self.counted = true;
        let mut session = Session::new(Arc::clone(&shared.settings), Arc::clone(&shared.registry));
        let reply = session.handle_register(now, queries, payload);
        let identity = match session.identity() {
            Some(identity) if reply.code.is_success() => identity.clone(),
            _ => {
                tracing::info!(peer = %self.addr, code = %reply.code.msg(), reason = reply.payload, "lwm2m: register refused");
                self.release();
                self.respond(now, id, &reply);
                return;
            }
        };
        let connect = VirtualConnect {
            client_id: ByteStr::from(identity.clientid.as_str()),
            username: Some(ByteStr::from(identity.username.as_str())),
            password: identity
                .password
                .as_ref()
                .map(|p| Bytes::copy_from_slice(p.as_bytes())),
            peer: self.addr,
            listener: Arc::clone(&shared.config.listener),
            protocol: Protocol::Lwm2m,
            transport: Transport::Udp,
            authenticate: true,
            clean_start: true,
            session_expiry: Duration::ZERO,
        };
        match shared.broker.connect_virtual(connect).await {
            Ok(client) => {
                tracing::info!(peer = %self.addr, endpoint = identity.endpoint, client_id = identity.clientid, lifetime = ?session.lifetime(), "lwm2m: device registered");
                self.respond(now, id, &reply);
                self.client = Some(client);
                self.session = Some(session);
            }
            Err(reason) => {
                tracing::info!(peer = %self.addr, endpoint = identity.endpoint, ?reason, "lwm2m: register refused by authentication");
                self.release();
                let text = format!("Login Failed: {}", login_failure(reason));
                self.refuse(now, id, ResponseCode::BAD_REQUEST, &text);
            }
        }
    }

    /// Gives back the registration slot taken for a Register that failed.
    fn release(&mut self) {
        if self.counted {
            self.counted = false;
            self.shared.registered.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Carries out what the session asks for.
    fn drain_session(&mut self, now: Instant) {
        loop {
            let Some(session) = &mut self.session else {
                return;
            };
            let Some(output) = session.poll_output() else {
                return;
            };
            match output {
                Output::Send { handle, request } => {
                    match self.exchange.send_request(now, to_packet(&request), true) {
                        Ok(out) => {
                            let observe = request.observe.map(|o| (o, request.path.clone()));
                            self.handles.insert(
                                out,
                                Sent {
                                    handle,
                                    answered: false,
                                    observe,
                                },
                            );
                        }
                        Err(error) => {
                            // Too many observations outstanding: the command fails as if the
                            // device never answered.
                            tracing::info!(peer = %self.addr, endpoint = session.identity().map_or("", |i| i.endpoint.as_str()), %error, "lwm2m: request to device not sent");
                            session.handle_exchange_timeout(now, handle);
                        }
                    }
                }
                Output::Publish {
                    topic,
                    payload,
                    qos,
                } => {
                    let Some(client) = &mut self.client else {
                        continue;
                    };
                    let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
                    if let Err(error) =
                        client.publish(&topic, Bytes::from(payload), qos, false, None)
                    {
                        tracing::info!(peer = %self.addr, client_id = %client.client_id(), topic, ?error, "lwm2m: publish refused");
                    }
                }
                Output::Subscribe { topic_filter, qos } => {
                    let Some(client) = &mut self.client else {
                        continue;
                    };
                    let options = SubscriptionOptions {
                        qos: QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce),
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: RetainHandling::SendAtSubscribe,
                    };
                    let code = client.subscribe(&topic_filter, options);
                    if code.is_error() {
                        tracing::warn!(peer = %self.addr, client_id = %client.client_id(), topic_filter, ?code, "lwm2m: command subscription refused");
                    }
                }
                Output::Close { reason } => {
                    tracing::info!(peer = %self.addr, endpoint = session.identity().map_or("", |i| i.endpoint.as_str()), ?reason, "lwm2m: registration ended");
                    self.done = Some(close_reason(reason));
                }
            }
        }
    }

    /// Hands commands that arrived on the command topic to the session.
    fn deliver(&mut self, now: Instant) {
        let (Some(client), Some(session)) = (&mut self.client, &mut self.session) else {
            return;
        };
        loop {
            self.deliveries.clear();
            let more = client.take_deliveries(&mut self.deliveries, DELIVERY_BATCH);
            for delivery in &self.deliveries {
                session.handle_command(now, &delivery.message.payload);
            }
            if !more {
                break;
            }
        }
        self.drain_session(now);
    }
}

fn unknown_location() -> DeviceReply {
    DeviceReply {
        code: ResponseCode::NOT_FOUND,
        location_path: Vec::new(),
        payload: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_request_becomes_a_coap_request_with_every_option() {
        let request = DeviceRequest {
            method: Method::Put,
            path: vec!["3".to_owned(), "0".to_owned(), "9".to_owned()],
            queries: vec!["pmin=1".to_owned(), "pmax=5".to_owned()],
            observe: Some(0),
            accept: Some(ContentFormat::LINK_FORMAT),
            content_format: Some(ContentFormat::TLV),
            payload: Bytes::from_static(b"\xC1\x09\x57"),
        };
        let packet = to_packet(&request);
        assert_eq!(packet.header.code, MessageClass::Request(RequestType::Put));
        assert_eq!(
            option_strings(&packet, CoapOption::UriPath),
            ["3", "0", "9"]
        );
        assert_eq!(
            option_strings(&packet, CoapOption::UriQuery),
            ["pmin=1", "pmax=5"]
        );
        let first = |o| packet.get_first_option(o).and_then(|v| read_uint(v));
        assert_eq!(first(CoapOption::Observe), Some(0));
        assert_eq!(first(CoapOption::Accept), Some(40));
        assert_eq!(first(CoapOption::ContentFormat), Some(11542));
        assert_eq!(packet.payload, b"\xC1\x09\x57");
    }

    #[test]
    fn coap_response_becomes_a_device_response() {
        let mut packet = Packet::new();
        packet.header.code = MessageClass::from(0x45);
        packet.add_option(CoapOption::Observe, uint(7));
        packet.add_option(CoapOption::ContentFormat, uint(0));
        packet.payload = b"21.5".to_vec();
        let response = to_response(packet);
        assert_eq!(response.code, ResponseCode::CONTENT);
        assert_eq!(response.observe, Some(7));
        assert_eq!(response.content_format, Some(ContentFormat(0)));
        assert_eq!(&response.payload[..], b"21.5");

        // A Content-Format beyond 16 bits is no format at all, not a panic.
        let mut packet = Packet::new();
        packet.header.code = MessageClass::from(0x84);
        packet.add_option(CoapOption::ContentFormat, uint(0x1_0000));
        let response = to_response(packet);
        assert_eq!(response.code, ResponseCode::NOT_FOUND);
        assert_eq!(response.content_format, None);
        assert_eq!(response.observe, None);
    }

    #[test]
    fn reply_codes_and_close_reasons() {
        assert_eq!(close_reason(CloseReason::Deregistered), "normal");
        assert_eq!(close_reason(CloseReason::LifetimeExpired), "timeout");
        assert_eq!(login_failure(ReasonCode::NOT_AUTHORIZED), "not_authorized");
        assert_eq!(unknown_location().code, ResponseCode::NOT_FOUND);
    }
}
