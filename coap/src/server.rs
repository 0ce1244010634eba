//! [`serve`]: the async driver of the CoAP gateway on one UDP socket.
//!
//! One task reads the socket and hands each datagram to the task of its peer (created on its
//! first datagram, at most `max_connections` of them). A peer task owns the peer's
//! [`Exchange`], its connection-mode [`Login`], its [`Observations`] and its
//! [`VirtualClient`], and is a small `select!` loop around them: datagrams in, deliveries from
//! the broker, timers. It ends when its client logs out, is kicked by a takeover, or stays
//! silent past `heartbeat` (logged in) or `idle_timeout` (connectionless), so the memory a
//! peer holds is bounded and released.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, Packet, ResponseType};
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_mqtt_core::{
    ByteStr, QoS, ReasonCode, TopicFilter,
    message::Delivery,
    packet::{RetainHandling, SubscriptionOptions},
};
use tributary_protocols::{
    Broker, Protocol, PublishError, Transport, VirtualClient, VirtualConnect, Wake,
};

use crate::{
    block::uint,
    demux::{self, now, wait_client},
    exchange::{Event, Exchange, RequestId},
    login::{self, Login, Verdict},
    mapping::{self, Op, Query},
    observe::Observations,
    rng::Rng,
    settings::{CoapConfig, NotifyType},
};

/// Deliveries taken from the mailbox per batch.
const DELIVERY_BATCH: usize = 64;

/// Serves CoAP on `socket` (already bound by the gateway) until `shutdown` is cancelled; then
/// every peer's client is disconnected and the peer tasks are awaited.
pub async fn serve(
    socket: UdpSocket,
    broker: Broker,
    config: CoapConfig,
    shutdown: CancellationToken,
) {
    let socket = Arc::new(socket);
    let config = Arc::new(config);
    let tasks = TaskTracker::new();
    demux::run(&socket, &shutdown, config.max_connections, "coap", |new| {
        let peer = Peer {
            addr: new.addr,
            socket: Arc::clone(&socket),
            broker: broker.clone(),
            exchange: Exchange::new(new.addr, config.exchange.clone(), new.seed),
            observations: Observations::new(
                config.max_observations,
                config.max_pending_notifications,
            ),
            config: Arc::clone(&config),
            client: None,
            login: None,
            last_seen: now(),
            rng: Rng::new(new.seed.rotate_left(32)),
            done: None,
            deliveries: Vec::new(),
        };
        tasks.spawn(peer.run(new.datagrams, shutdown.clone()));
    })
    .await;
    tasks.close();
    tasks.wait().await;
}

/// One peer's state, owned by its task.
struct Peer {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    broker: Broker,
    config: Arc<CoapConfig>,
    exchange: Exchange,
    observations: Observations,
    client: Option<VirtualClient>,
    login: Option<Login>,
    last_seen: Instant,
    rng: Rng,
    /// Why the task ends, once it must.
    done: Option<&'static str>,
    deliveries: Vec<Delivery>,
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
                () = shutdown.cancelled() => {
                    self.done = Some("shutdown");
                }
                datagram = datagrams.recv() => {
                    let Some(datagram) = datagram else { break };
                    let now = now();
                    self.last_seen = now;
                    self.exchange.handle_datagram(now, &datagram);
                    self.process_events(now).await;
                }
                wake = wait_client(&mut self.client) => match wake {
                    Wake::Kicked(kind) => {
                        tracing::info!(peer = %self.addr, client_id = %self.client_id(), ?kind, "coap: client kicked");
                        self.client = None;
                        self.login = None;
                        self.observations = Observations::new(self.config.max_observations, self.config.max_pending_notifications);
                    }
                    _ => self.deliver(now()),
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = now();
                    self.exchange.handle_timeout(now);
                    self.process_events(now).await;
                    self.check_expiry(now);
                }
            }
        }
        let reason = self.done.unwrap_or("normal");
        if let Some(client) = self.client.take() {
            client.disconnect(reason);
        }
        tracing::debug!(peer = %self.addr, reason, "coap: peer closed");
    }

    fn client_id(&self) -> String {
        self.client
            .as_ref()
            .map(|c| c.client_id().to_string())
            .unwrap_or_default()
    }

    fn deadline(&self) -> Instant {
        let expiry = match &self.login {
            Some(login) => login.expires_at(),
            None => self.last_seen + self.config.idle_timeout,
        };
        self.exchange
            .poll_timeout()
            .map_or(expiry, |t| t.min(expiry))
    }

    fn check_expiry(&mut self, now: Instant) {
        match &self.login {
            Some(login) if login.is_expired(now) => {
                tracing::info!(peer = %self.addr, client_id = %login.client_id(), "coap: heartbeat timeout");
                self.done = Some("heartbeat_timeout");
            }
            None if now >= self.last_seen + self.config.idle_timeout => {
                self.done = Some("idle_timeout");
            }
            _ => {}
        }
    }

    async fn flush(&mut self) {
        demux::flush(&mut self.exchange, &self.socket, self.addr, "coap").await;
    }

    async fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.exchange.poll_event() {
            match event {
                Event::Request { id, request } => self.handle_request(now, id, request).await,
                Event::Acked { handle } => {
                    self.observations
                        .handle_acked(now, &mut self.exchange, handle);
                }
                Event::TimedOut { handle } | Event::Reset { handle } => {
                    if let Some(gone) = self.observations.handle_failed(&mut self.exchange, handle)
                    {
                        tracing::info!(peer = %self.addr, client_id = %self.client_id(), filter = gone.filter, "coap: observation cancelled (notification reset or unacknowledged)");
                        if let Some(client) = &mut self.client {
                            let _ = client.unsubscribe(&gone.filter);
                        }
                    }
                }
                // The CoAP gateway sends no requests of its own.
                _ => {}
            }
        }
    }

    fn respond(&mut self, now: Instant, id: &RequestId, code: ResponseType, message: &str) {
        let mut response = Packet::new();
        response.header.code = MessageClass::Response(code);
        response.payload = message.as_bytes().to_vec();
        let _ = self.exchange.respond(now, id, response);
    }

    async fn handle_request(&mut self, now: Instant, id: RequestId, request: Packet) {
        let parsed = match mapping::parse(&request) {
            Ok(parsed) => parsed,
            Err(refusal) => {
                tracing::debug!(peer = %self.addr, message = refusal.message, "coap: request refused");
                self.respond(now, &id, refusal.code, refusal.message);
                return;
            }
        };
        let query = parsed.query;
        if parsed.op == Op::Connect {
            self.connect(now, &id, &query).await;
            return;
        }
        if self.config.connection_required || self.login.is_some() {
            match login::check(self.login.as_ref(), &query) {
                Verdict::Allowed => {}
                Verdict::Drop => {
                    tracing::debug!(peer = %self.addr, "coap: request without token in connection mode dropped");
                    self.exchange.discard(&id);
                    return;
                }
                Verdict::Refuse(refusal) => {
                    self.respond(now, &id, refusal.code, refusal.message);
                    return;
                }
            }
            if let Some(login) = &mut self.login {
                login.touch(now);
            }
        } else if self.client.is_none() && !self.connect_anonymous(now, &id).await {
            return;
        }
        let confirmable = id.confirmable();
        match parsed.op {
            Op::Heartbeat => self.respond(now, &id, ResponseType::Changed, ""),
            Op::Disconnect => {
                self.respond(now, &id, ResponseType::Deleted, "");
                self.login = None;
                if let Some(client) = self.client.take() {
                    client.disconnect("normal");
                }
                self.done = Some("normal");
            }
            Op::Publish { topic } => {
                self.publish(now, &id, &topic, &query, request.payload, confirmable)
            }
            Op::Subscribe { filter } => self.subscribe(now, &id, &filter, &query, confirmable),
            Op::Unsubscribe { filter } => {
                let filter = format!("{}{filter}", self.config.mountpoint);
                if let Some(client) = &mut self.client {
                    let _ = client.unsubscribe(&filter);
                }
                let _ = self.observations.deregister(&mut self.exchange, &filter);
                let mut response = Packet::new();
                // 2.07, EMQX's non-standard "nocontent".
                response.header.code = MessageClass::Reserved(0x47);
                let _ = self.exchange.respond(now, &id, response);
            }
            Op::Read { topic } => self.read(now, &id, &topic),
            Op::Connect => {}
        }
    }

    async fn connect(&mut self, now: Instant, id: &RequestId, query: &Query) {
        if self.login.is_some() {
            self.respond(
                now,
                id,
                ResponseType::BadRequest,
                "Bad Request: client has connected",
            );
            return;
        }
        let Some(client_id) = query.client_id.clone().filter(|c| !c.is_empty()) else {
            self.respond(
                now,
                id,
                ResponseType::BadRequest,
                "Login Failed: missing clientid",
            );
            return;
        };
        // A connectionless client of this peer gives way to the logged-in one.
        if let Some(client) = self.client.take() {
            client.disconnect("normal");
        }
        let connect = VirtualConnect {
            client_id: ByteStr::from(client_id.as_str()),
            username: query.username.as_deref().map(ByteStr::from),
            password: query
                .password
                .as_ref()
                .map(|p| Bytes::copy_from_slice(p.as_bytes())),
            peer: self.addr,
            listener: Arc::clone(&self.config.listener),
            protocol: Protocol::Coap,
            transport: Transport::Udp,
            authenticate: true,
            clean_start: true,
            session_expiry: Duration::ZERO,
        };
        match self.broker.connect_virtual(connect).await {
            Ok(client) => {
                let token = loop {
                    let token = (self.rng.next_u64() & 0xFFFF_FFFF) as u32;
                    if token != 0 {
                        break token;
                    }
                };
                let login = Login::new(now, &client_id, token, self.config.heartbeat);
                tracing::info!(peer = %self.addr, client_id, "coap: client logged in");
                self.respond(now, id, ResponseType::Created, login.token());
                self.login = Some(login);
                self.client = Some(client);
                self.deliver(now);
            }
            Err(reason) => {
                tracing::info!(peer = %self.addr, client_id, ?reason, "coap: login refused");
                let message = format!("Login Failed: {}", login_failure(reason));
                self.respond(now, id, ResponseType::BadRequest, &message);
            }
        }
    }

    /// Connects the anonymous client of a connectionless peer: a random client id, no
    /// authentication (ACL still applies).
    async fn connect_anonymous(&mut self, now: Instant, id: &RequestId) -> bool {
        let client_id = format!("{:016x}", self.rng.next_u64());
        let connect = VirtualConnect {
            client_id: ByteStr::from(client_id.as_str()),
            username: None,
            password: None,
            peer: self.addr,
            listener: Arc::clone(&self.config.listener),
            protocol: Protocol::Coap,
            transport: Transport::Udp,
            authenticate: false,
            clean_start: true,
            session_expiry: Duration::ZERO,
        };
        match self.broker.connect_virtual(connect).await {
            Ok(client) => {
                tracing::debug!(peer = %self.addr, client_id, "coap: connectionless client");
                self.client = Some(client);
                true
            }
            Err(reason) => {
                tracing::info!(peer = %self.addr, ?reason, "coap: connectionless client refused");
                self.respond(now, id, ResponseType::ServiceUnavailable, "");
                false
            }
        }
    }

    fn publish(
        &mut self,
        now: Instant,
        id: &RequestId,
        topic: &str,
        query: &Query,
        payload: Vec<u8>,
        confirmable: bool,
    ) {
        let qos = query
            .qos
            .and_then(QoS::from_u8)
            .unwrap_or_else(|| self.config.publish_qos.qos(confirmable));
        let topic = format!("{}{topic}", self.config.mountpoint);
        let Some(client) = &mut self.client else {
            return;
        };
        match client.publish(
            &topic,
            Bytes::from(payload),
            qos,
            query.retain,
            query.expiry,
        ) {
            Ok(_) => self.respond(now, id, ResponseType::Changed, ""),
            Err(PublishError::NotAuthorized) => {
                tracing::info!(peer = %self.addr, client_id = %client.client_id(), topic, "coap: publish not authorized");
                self.respond(now, id, ResponseType::Unauthorized, "not authorized");
            }
            Err(_) => self.respond(now, id, ResponseType::BadRequest, "invalid topic"),
        }
    }

    fn subscribe(
        &mut self,
        now: Instant,
        id: &RequestId,
        filter: &str,
        query: &Query,
        confirmable: bool,
    ) {
        let qos = query
            .qos
            .and_then(QoS::from_u8)
            .unwrap_or_else(|| self.config.subscribe_qos.qos(confirmable));
        let filter = format!("{}{filter}", self.config.mountpoint);
        let options = SubscriptionOptions {
            qos,
            no_local: query.no_local,
            retain_as_published: false,
            retain_handling: match query.retain_handling {
                1 => RetainHandling::SendIfNew,
                2 => RetainHandling::DoNotSend,
                _ => RetainHandling::SendAtSubscribe,
            },
        };
        let Some(client) = &mut self.client else {
            return;
        };
        let existing = self.observations.get(&filter).is_some();
        if !existing && self.observations.len() >= self.config.max_observations {
            self.respond(now, id, ResponseType::BadRequest, "too many observations");
            return;
        }
        let code = client.subscribe(&filter, options);
        if code.is_error() {
            let (coap, message) = if code == ReasonCode::NOT_AUTHORIZED {
                (ResponseType::Unauthorized, "not authorized")
            } else {
                (ResponseType::BadRequest, "invalid topic")
            };
            self.respond(now, id, coap, message);
            return;
        }
        if self
            .observations
            .register(&filter, id.path(), id.token())
            .is_err()
        {
            self.respond(now, id, ResponseType::BadRequest, "too many observations");
            return;
        }
        let mut response = Packet::new();
        response.header.code = MessageClass::Response(ResponseType::Content);
        response.add_option(CoapOption::Observe, uint(0));
        let _ = self.exchange.respond(now, id, response);
        // Retained messages were queued by the subscription: they follow the response.
        self.deliver(now);
    }

    fn read(&mut self, now: Instant, id: &RequestId, topic: &str) {
        let topic = format!("{}{topic}", self.config.mountpoint);
        let Some(client) = &self.client else {
            return;
        };
        let client_id = client.client_id().to_string();
        let username = client.info().username.as_deref().map(str::to_owned);
        if !self
            .broker
            .hooks()
            .authorize_subscribe(&client_id, username.as_deref(), &topic)
        {
            self.respond(now, id, ResponseType::Unauthorized, "not authorized");
            return;
        }
        match self.broker.retained_message(&topic) {
            Some(message) => {
                let mut response = Packet::new();
                response.header.code = MessageClass::Response(ResponseType::Content);
                response.payload = message.payload.to_vec();
                let _ = self.exchange.respond(now, id, response);
            }
            None => self.respond(now, id, ResponseType::NotFound, ""),
        }
    }

    /// Turns queued deliveries into notifications of the observations they match.
    fn deliver(&mut self, now: Instant) {
        let Some(client) = &mut self.client else {
            return;
        };
        loop {
            self.deliveries.clear();
            let more = client.take_deliveries(&mut self.deliveries, DELIVERY_BATCH);
            for delivery in &self.deliveries {
                let topic = delivery.message.topic.as_str();
                let confirmable = match self.config.notify_type {
                    NotifyType::Non => false,
                    NotifyType::Con => true,
                    NotifyType::Qos => delivery.qos != QoS::AtMostOnce,
                };
                let matching: Vec<String> = self
                    .observations
                    .filters()
                    .filter(|filter| filter_matches(filter, topic))
                    .map(str::to_owned)
                    .collect();
                for filter in matching {
                    self.observations.notify(
                        now,
                        &mut self.exchange,
                        &filter,
                        delivery.message.payload.clone(),
                        confirmable,
                    );
                }
            }
            if !more {
                break;
            }
        }
    }
}

/// Whether `topic` matches the observed `filter` (a shared subscription matches by its
/// filter part).
fn filter_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
        None => filter.strip_prefix("$queue/").unwrap_or(filter),
    };
    TopicFilter::new(ByteStr::from(filter), 0).is_ok_and(|f| f.matches(topic))
}

fn login_failure(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::BAD_USERNAME_OR_PASSWORD => "bad_username_or_password",
        ReasonCode::NOT_AUTHORIZED => "not_authorized",
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => "client_identifier_not_valid",
        _ => "unspecified_error",
    }
}
