//! [`serve_mqtt`]: the one MQTT connection driver, for every transport.

use std::{
    future::Future,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tributary_mqtt_core::{
    ByteStr, Packet, ReasonCode,
    connection::{Close, CloseKind, ConnectRequest, ConnectResult, Connection, Request},
};

use crate::{
    broker::{Attachment, Broker, Routing, now},
    hooks::AuthRequest,
    mailbox::FLOW_WAIT,
    peer_cert::{CertField, PeerCert},
    registry::{Protocol, Transport},
    stats::Stats,
};

/// Above this many bytes waiting to be written, the driver stops reading from the socket and
/// from the mailbox until the peer catches up: a slow reader gets backpressure (its mailbox
/// fills and applies its drop policy), never unbounded buffering.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// The read room of a connection with light traffic, 512 bytes, as a power of two. Such a
/// connection keeps no read buffer between packets (an idle client costs nothing here); a read
/// that fills its room doubles the room for the next one, up to 64 KiB ([`MAX_READ_SHIFT`]),
/// and a busy connection keeps its buffer and reads in large batches.
const MIN_READ_SHIFT: u8 = 9;
const MAX_READ_SHIFT: u8 = 16;

/// What a connection with no read buffer reads into: a buffer on the stack of the poll, so
/// that waiting holds no memory; what arrives is copied into a buffer made to its size.
const IDLE_READ_ROOM: usize = 1 << MIN_READ_SHIFT;

/// How long a closing connection may take to flush its last packets (the DISCONNECT that says
/// why) before the socket is dropped anyway.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A bidirectional byte stream that can carry MQTT: a TCP stream, a TLS stream, a WebSocket
/// adapter or a QUIC stream pair.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// Who is on the other end of a stream.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Remote address (for WebSocket behind a trusted proxy, the address the proxy reported).
    pub peer: SocketAddr,
    /// The listener that accepted it, as `type:name` (`tcp:default`).
    pub listener: Arc<str>,
    /// The transport.
    pub transport: Transport,
    /// The client certificate the TLS transport verified, if the client sent one.
    pub peer_cert: Option<Arc<PeerCert>>,
    /// With `peer_cert_as_username`: the certificate field that replaces the CONNECT user
    /// name. A client without a usable one is refused (0x86).
    pub username_from_cert: Option<CertField>,
    /// With `peer_cert_as_clientid`: the certificate field that replaces the CONNECT client id.
    /// A client without a usable one is refused (0x85).
    pub client_id_from_cert: Option<CertField>,
}

impl ConnectionInfo {
    /// A connection with no certificate and no substitutions.
    pub fn new(peer: SocketAddr, listener: Arc<str>, transport: Transport) -> Self {
        Self {
            peer,
            listener,
            transport,
            peer_cert: None,
            username_from_cert: None,
            client_id_from_cert: None,
        }
    }

    /// The user name and client id the certificate imposes, validated; `Err` is the CONNACK
    /// reason code for a client that lacks a usable one.
    fn cert_identity(
        &self,
        max_clientid_len: usize,
    ) -> Result<(Option<ByteStr>, Option<ByteStr>), ReasonCode> {
        let pick = |field: Option<CertField>, refuse: ReasonCode| match field {
            None => Ok(None),
            Some(field) => self
                .peer_cert
                .as_deref()
                .and_then(|cert| cert.identity(field))
                .map(|value| Some(ByteStr::from(value)))
                .ok_or(refuse),
        };
        let username = pick(
            self.username_from_cert,
            ReasonCode::BAD_USERNAME_OR_PASSWORD,
        )?;
        let client_id = pick(
            self.client_id_from_cert,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        )?
        .filter(|id| id.len() <= max_clientid_len);
        if self.client_id_from_cert.is_some() && client_id.is_none() {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        Ok((username, client_id))
    }
}

/// Serves one MQTT connection until it ends: decodes, answers, routes the client's publishes,
/// delivers from its session's mailbox, and hands the session back to the registry at the end.
///
/// Not an `async fn`: the driver is built before the future is, so the future holds the
/// stream, the connection info and the broker handle once, inside the driver, rather than
/// once more as the arguments an `async fn` keeps (bytes every connection's task carries).
pub fn serve_mqtt<S: ByteStream>(
    stream: S,
    info: ConnectionInfo,
    broker: Broker,
) -> impl Future<Output = ()> + Send + 'static {
    let connecting = Connecting {
        info,
        cancelled: Box::pin(broker.shutdown_token().clone().cancelled_owned()),
    };
    let mut driver = Driver {
        conn: Connection::new(
            Arc::clone(&broker.config().mqtt),
            now(),
            broker.next_conn_id(),
        ),
        broker,
        stage: Stage::Connecting(Box::new(connecting)),
        flow: Backpressure::Routing(Routing::default()),
    };
    let mut stream = stream;
    // The connection's loop is this block itself, not an `async fn` it awaits: such a call
    // keeps its references to the driver and the stream twice over (as its arguments and as
    // the locals they move into), bytes every connection's task carries.
    async move {
        Stats::incr(&driver.broker.stats().connections);
        // The loop's state is in a block of its own, so that it is gone by the `finish`.
        let close = {
            let mut input = BytesMut::new();
            // The read room, as a power of two: a byte, not a word, in every connection's task.
            let mut read_shift = MIN_READ_SHIFT;
            let mut unflushed = false;
            // One timer for the connection's life. It is moved only when a deadline comes earlier
            // than the one it is set for: the keep-alive deadline moves later with every packet,
            // so a busy connection's timer fires once per period, finds nothing due, and is set
            // again, instead of being re-registered on every turn of the loop.
            let first = driver
                .conn
                .poll_timeout()
                .map_or_else(far_future, tokio::time::Instant::from_std);
            let mut timer = pin!(tokio::time::sleep_until(first));
            // Whether `timer` is set for its deadline, not yet fired.
            let mut timer_set = true;
            loop {
                match driver.process_input(&mut input) {
                    Err(close) => break close,
                    Ok(Some(connect)) => {
                        // Boxed: a CONNECT (authentication, takeover) happens once per
                        // connection, and its future inline would be room every connection
                        // carries for its whole life. Then the input after it.
                        if let Err(close) = Box::pin(driver.connect(connect)).await {
                            break close;
                        }
                        continue;
                    }
                    Ok(None) => {}
                }
                if let Stage::Attached(attachment) = &driver.stage {
                    attachment.entry.mailbox.drain_into(
                        &mut driver.conn,
                        now(),
                        driver.broker.stats(),
                    );
                }
                let read_chunk = 1_usize << read_shift;
                let trickle = read_shift == MIN_READ_SHIFT;
                if input.is_empty() && (trickle || input.capacity() > 2 * read_chunk) {
                    // Nothing pending, and traffic is light or calmed down since a burst grew the
                    // buffer: give it back, so an idle connection holds no read buffer. The next
                    // read goes through a buffer on the stack (see `IDLE_READ_ROOM`), and the
                    // buffer grows from what it brings. Even an empty buffer with no room left
                    // goes: it still holds a share of the allocation its packets were cut
                    // from, and would keep that alive for as long as the connection is idle.
                    input = BytesMut::new();
                } else if input.capacity() - input.len() < read_chunk / 4 {
                    input.reserve(read_chunk);
                }
                // Flow control: while a subscriber this connection routed to is congested, its
                // socket is not read (for at most FLOW_WAIT), so ingress slows to egress.
                if let Backpressure::Routing(routing) = &mut driver.flow
                    && !routing.congested.is_empty()
                {
                    let congested = std::mem::take(&mut routing.congested);
                    let until = tokio::time::Instant::now() + FLOW_WAIT;
                    driver.flow = Backpressure::Holding(Box::pin(async move {
                        for entry in &congested {
                            entry.mailbox.wait_drained(until).await;
                        }
                    }));
                }
                // Whether there is a deadline (the timer is polled only then). In a block of its
                // own: a local in scope over the wait is room in every connection's task.
                let timed = match driver.conn.poll_timeout() {
                    Some(deadline) => {
                        let deadline = tokio::time::Instant::from_std(deadline);
                        if !timer_set || deadline < timer.deadline() {
                            timer.as_mut().reset(deadline);
                            timer_set = true;
                        }
                        true
                    }
                    None => false,
                };
                let pending_out = driver.conn.transmit().len();
                let wait = Wait {
                    driver: &mut driver,
                    stream: &mut stream,
                    input: &mut input,
                    timer: timed.then_some(timer.as_mut()),
                    write: pending_out > 0 || unflushed,
                    read: pending_out < HIGH_WATER,
                };
                match wait.await {
                    Event::Close(kind, code) => break driver.conn.close(kind, code),
                    Event::SocketClosed => break driver.conn.handle_socket_closed(),
                    Event::Wrote(n) => {
                        driver.conn.advance_transmit(n);
                        unflushed = true;
                    }
                    Event::Flushed => unflushed = false,
                    Event::Released => driver.flow = Backpressure::Routing(Routing::default()),
                    Event::Read { filled: true, .. } => {
                        read_shift = (read_shift + 1).min(MAX_READ_SHIFT);
                    }
                    Event::Read { n, .. } if n < (1 << read_shift) / 4 => {
                        read_shift = (read_shift - 1).max(MIN_READ_SHIFT);
                    }
                    Event::Read { .. } | Event::Mail => {}
                    Event::Timer => {
                        timer_set = false;
                        if let Err(close) = driver.conn.handle_timeout(now()) {
                            break close;
                        }
                    }
                }
            }
        };
        // Boxed: the compiler lays out a state used only here after all the loop's state,
        // not over it, and a connection ends once.
        Box::pin(driver.finish(close, &mut stream)).await;
        Stats::decr(&driver.broker.stats().connections);
    }
}

struct Driver {
    conn: Connection,
    broker: Broker,
    stage: Stage,
    /// Flow control on the publishing side (see `mailbox::Flow`).
    flow: Backpressure,
}

/// Where a connection stands with its session.
enum Stage {
    /// Its CONNECT is not accepted yet. Boxed, so that the stage is no larger than an
    /// attachment: every connection's task carries it for its whole life, and the box goes
    /// once the CONNECT is accepted.
    Connecting(Box<Connecting>),
    /// It owns its session (to the end: the attachment says which session to hand back).
    Attached(Attachment),
}

impl Stage {
    /// The session it owns, once its CONNECT is accepted.
    fn attachment(&self) -> Option<&Attachment> {
        match self {
            Self::Attached(attachment) => Some(attachment),
            Self::Connecting(_) => None,
        }
    }
}

/// What a connection needs until its CONNECT is accepted.
struct Connecting {
    /// What the listener knows of the client. Once the CONNECT is accepted, the attachment's
    /// `ClientInfo` says the same (peer, listener, transport).
    info: ConnectionInfo,
    /// Until the CONNECT gives it a session, the connection waits on the shutdown token
    /// itself; after, the shutdown wakes it through its mailbox's signal, and it only looks
    /// at the token (a registered wait is room, and a lock per wake).
    cancelled: Cancelled,
}

/// Where a publishing connection stands with the subscribers it routes to.
enum Backpressure {
    /// Reading: the congested subscribers the publishes routed since the last wait ran into
    /// (usually none), which it must wait for before it reads more.
    Routing(Routing),
    /// Holding back for them (at most FLOW_WAIT). Boxed and made only when needed: every
    /// connection would otherwise carry its room.
    Holding(Hold),
}

impl Driver {
    /// Handles the complete packets read so far, in order, carrying out what each asks of the
    /// broker before the next, up to a CONNECT: that one is given back for the caller to
    /// carry out (it waits) before it calls again for the rest, so a SUBSCRIBE right behind
    /// a CONNECT sees the session. Not async: the one wait is the caller's, and this
    /// function's state is not part of every connection's future.
    fn process_input(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<Box<ConnectRequest>>, Close> {
        // One clock read per batch of packets that arrived together, not one per packet.
        let at = now();
        // A congested subscriber stops the batch too, not only the next read: the rest waits
        // in `input` until it has drained.
        while self.conn.transmit().len() < HIGH_WATER
            && matches!(&self.flow, Backpressure::Routing(r) if r.congested.is_empty())
        {
            let Some(packet) = self.conn.decode(input)? else {
                break;
            };
            if matches!(packet, Packet::Publish(_)) {
                Stats::incr(&self.broker.stats().messages_received);
            }
            if let Some(request) = self.conn.handle_packet(at, packet)? {
                if let Some(connect) = self.execute(request)? {
                    return Ok(Some(connect));
                }
            }
        }
        Ok(None)
    }

    /// Authenticates a CONNECT and finds, takes over or creates its session. Boxed by the
    /// caller: it happens once per connection, and its future inline would be room every
    /// connection carries for its whole life.
    async fn connect(&mut self, mut request: Box<ConnectRequest>) -> Result<(), Close> {
        let max_clientid_len = self.broker.config().mqtt.max_clientid_len;
        let Stage::Connecting(connecting) = &self.stage else {
            // A second CONNECT is refused by the connection before it gets here.
            return Err(self
                .conn
                .close(CloseKind::ProtocolError, ReasonCode::PROTOCOL_ERROR));
        };
        let info = &connecting.info;
        match info.cert_identity(max_clientid_len) {
            Ok((username, client_id)) => {
                if username.is_some() {
                    request.username = username;
                }
                if let Some(client_id) = client_id {
                    if let Some(will) = &mut request.will {
                        will.message.publisher = client_id.clone();
                    }
                    self.conn.impose_client_id(client_id.clone());
                    request.client_id = client_id;
                    request.assigned_client_id = false;
                }
            }
            Err(code) => {
                tracing::info!(peer = %info.peer, listener = %info.listener, %code, "refused: the client certificate gives no usable user name or client id");
                self.conn
                    .handle_connect_result(now(), ConnectResult::Refused(code))?;
                return Ok(());
            }
        }
        let auth = AuthRequest {
            client_id: request.client_id.clone(),
            username: request.username.clone(),
            password: request.password.clone(),
            peer: info.peer,
            listener: Arc::clone(&info.listener),
            transport: info.transport,
            protocol: Protocol::Mqtt,
            peer_cert: info.peer_cert.clone(),
        };
        let (result, attachment) = self.broker.connect(&request, auth).await;
        if let Some(attachment) = attachment {
            self.stage = Stage::Attached(attachment);
        }
        self.conn.handle_connect_result(now(), result)?;
        if let Some(client) = self.stage.attachment().map(|a| &a.client) {
            tracing::debug!(
                client_id = %request.client_id,
                peer = %client.peer,
                listener = %client.listener,
                transport = %client.transport,
                version = ?request.version,
                clean_start = request.clean_start,
                "client connected"
            );
        }
        self.auto_subscribe();
        Ok(())
    }

    /// Routes a message the client published; returns to how many subscribers.
    fn route(&mut self, message: Arc<tributary_mqtt_core::message::Message>) -> usize {
        match &mut self.flow {
            Backpressure::Routing(routing) => self.broker.publish(message, routing),
            // Not reached: nothing is read while holding. Routed all the same, without a
            // wait for whom it congests.
            Backpressure::Holding(_) => self.broker.publish(message, &mut Routing::default()),
        }
    }

    /// The client's address and the listener that accepted it, for the log.
    fn peer(&self) -> (SocketAddr, &str) {
        match &self.stage {
            Stage::Attached(attachment) => (attachment.client.peer, &attachment.client.listener),
            Stage::Connecting(connecting) => (connecting.info.peer, &connecting.info.listener),
        }
    }

    /// Carries out what a packet asks of the broker, except a CONNECT, which it gives back
    /// for [`Driver::connect`] (the one request that waits).
    fn execute(&mut self, request: Request) -> Result<Option<Box<ConnectRequest>>, Close> {
        match request {
            Request::Connect(request) => return Ok(Some(request)),
            Request::Publish(publish) => {
                let qos = publish.message.qos;
                let username = self
                    .stage
                    .attachment()
                    .and_then(|a| a.client.username.as_deref());
                let allowed = self.broker.hooks().authorize_publish(
                    self.conn.client_id(),
                    username,
                    publish.message.topic.as_str(),
                );
                let reason = if !allowed {
                    ReasonCode::NOT_AUTHORIZED
                } else if self.route(publish.message) == 0 {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                } else {
                    ReasonCode::SUCCESS
                };
                self.conn
                    .handle_publish_result(qos, publish.packet_id, reason);
            }
            Request::Subscribe(subscribe) => {
                let codes = match (self.stage.attachment(), self.conn.session_mut()) {
                    (Some(attachment), Some(session)) => self.broker.subscribe(
                        &attachment.entry,
                        session,
                        attachment.client.username.as_deref(),
                        subscribe.subscription_id,
                        subscribe.filters,
                    ),
                    _ => vec![ReasonCode::UNSPECIFIED_ERROR; subscribe.filters.len()],
                };
                self.conn
                    .handle_subscribe_result(subscribe.packet_id, codes);
            }
            Request::Unsubscribe(unsubscribe) => {
                let codes = match (self.stage.attachment(), self.conn.session_mut()) {
                    (Some(attachment), Some(session)) => {
                        self.broker
                            .unsubscribe(&attachment.entry, session, &unsubscribe.filters)
                    }
                    _ => vec![ReasonCode::UNSPECIFIED_ERROR; unsubscribe.filters.len()],
                };
                self.conn
                    .handle_unsubscribe_result(unsubscribe.packet_id, codes);
            }
        }
        Ok(None)
    }

    /// Applies the broker-side subscriptions (no SUBACK: the client did not ask).
    fn auto_subscribe(&mut self) {
        if self.broker.config().auto_subscribe.is_empty() {
            return;
        }
        let Some(client) = self.stage.attachment().map(|a| &a.client) else {
            return;
        };
        let filters = self.broker.auto_subscriptions(
            self.conn.client_id(),
            client.username.as_deref(),
            client.peer,
        );
        let max_levels = self.broker.config().mqtt.max_topic_levels;
        let requests = filters
            .into_iter()
            .map(
                |(raw, options)| tributary_mqtt_core::connection::FilterRequest {
                    filter: tributary_mqtt_core::SubscriptionFilter::parse(&raw, max_levels)
                        .map_err(|_| ReasonCode::TOPIC_FILTER_INVALID),
                    raw,
                    options,
                },
            )
            .collect();
        if let (Some(attachment), Some(session)) =
            (self.stage.attachment(), self.conn.session_mut())
        {
            let codes = self.broker.subscribe(
                &attachment.entry,
                session,
                attachment.client.username.as_deref(),
                None,
                requests,
            );
            if codes.iter().any(|c| c.is_error()) {
                tracing::warn!(client_id = %self.conn.client_id(), ?codes, "auto_subscribe: some topics were refused");
            }
        }
    }

    /// Flushes the last packets (the CONNACK or DISCONNECT that says why), logs the end, and
    /// hands the session back.
    async fn finish<W: AsyncWrite + Unpin>(&mut self, close: Close, writer: &mut W) {
        if !self.conn.transmit().is_empty() && close.kind != CloseKind::SocketClosed {
            let flush = async {
                while !self.conn.transmit().is_empty() {
                    match writer.write(self.conn.transmit()).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.conn.advance_transmit(n),
                    }
                }
                let _ = writer.shutdown().await;
            };
            let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, flush).await;
        }
        let client_id = self.conn.client_id().clone();
        // One line per ended connection. Normal churn is debug; a client whose connection ends
        // on a timeout or a dropped socket is info; a client that breaks the protocol is a
        // warning, since it will not work until someone fixes it.
        let reason = close.kind.as_str();
        let (peer, listener) = self.peer();
        match close.kind {
            CloseKind::Normal
            | CloseKind::TakenOver
            | CloseKind::Discarded
            | CloseKind::ServerShutdown => {
                tracing::debug!(%client_id, %peer, listener, reason, code = %close.code, "connection closed");
            }
            CloseKind::MalformedPacket | CloseKind::ProtocolError | CloseKind::PacketTooLarge => {
                tracing::warn!(%client_id, %peer, listener, reason, code = %close.code, "connection closed");
            }
            _ => {
                tracing::info!(%client_id, %peer, listener, reason, code = %close.code, "connection closed");
            }
        }
        let Stage::Attached(attachment) = &self.stage else {
            return;
        };
        let will = self.conn.take_will().filter(|_| close.publish_will);
        let session = self.conn.take_session();
        self.broker
            .detach(attachment, session, will, self.conn.session_expiry());
    }
}

/// The shutdown token's wait, while the connection has no session to be woken through.
type Cancelled = Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>;

/// A publisher's wait for the congested subscribers it routed to.
type Hold = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A deadline that never comes, for a timer with nothing to time yet.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// What woke a connection.
enum Event {
    /// The broker ends it (shutdown, takeover).
    Close(CloseKind, ReasonCode),
    /// The socket closed or failed.
    SocketClosed,
    /// Wrote this many bytes of the transmit buffer.
    Wrote(usize),
    /// Flushed what the stream had buffered.
    Flushed,
    /// The flow-control hold is over.
    Released,
    /// Read `n` bytes; `filled`: as many as there was room for.
    Read { n: usize, filled: bool },
    /// Deliveries may be waiting in the mailbox.
    Mail,
    /// The timer fired.
    Timer,
}

/// One wait of the driver for whichever comes first, in this order: shutdown or a kick, room
/// to write, the end of a flow-control hold, bytes to read, deliveries, the timer.
///
/// Polled by hand rather than with `select!` over futures made anew on every turn of the
/// loop: a registration made once (the mailbox's waker slot, the timer) stays made across
/// turns, so a busy connection takes no lock to wait, and an idle connection's task holds
/// nothing for the wait but these references.
struct Wait<'a, S> {
    driver: &'a mut Driver,
    stream: &'a mut S,
    input: &'a mut BytesMut,
    timer: Option<Pin<&'a mut tokio::time::Sleep>>,
    /// Whether there is something to write or flush.
    write: bool,
    /// Whether to read the socket and take deliveries (the transmit buffer has room).
    read: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Wait<'_, S> {
    type Output = Event;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Event> {
        let this = self.get_mut();
        let shutdown = match &mut this.driver.stage {
            Stage::Connecting(connecting) => connecting.cancelled.as_mut().poll(cx).is_ready(),
            Stage::Attached(_) => this.driver.broker.shutdown_token().is_cancelled(),
        };
        if shutdown {
            return Poll::Ready(Event::Close(
                CloseKind::ServerShutdown,
                ReasonCode::SERVER_SHUTTING_DOWN,
            ));
        }
        if let Stage::Attached(attachment) = &this.driver.stage {
            if let Some(kick) = attachment.entry.take_kick(attachment.generation) {
                return Poll::Ready(Event::Close(kick.kind, kick.code));
            }
        }
        // TLS, WebSocket and QUIC streams may hold accepted bytes in their own buffers (a TLS
        // record the socket would not take yet, a WebSocket frame): once the transmit buffer
        // is empty, they are flushed, or the peer could wait forever for the tail of a reply.
        // A flush of a TCP stream is a no-op.
        if this.write {
            let out = this.driver.conn.transmit();
            let stream = Pin::new(&mut *this.stream);
            let sent = if out.is_empty() {
                stream.poll_flush(cx).map_ok(|()| Event::Flushed)
            } else {
                stream.poll_write(cx, out).map_ok(Event::Wrote)
            };
            match sent {
                Poll::Ready(Ok(Event::Wrote(0)) | Err(_)) => {
                    return Poll::Ready(Event::SocketClosed);
                }
                Poll::Ready(Ok(event)) => return Poll::Ready(event),
                Poll::Pending => {}
            }
        }
        let holding = matches!(this.driver.flow, Backpressure::Holding(_));
        if let Backpressure::Holding(hold) = &mut this.driver.flow {
            if hold.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Released);
            }
        }
        if this.read && !holding {
            let stream = Pin::new(&mut *this.stream);
            let room = match this.input.capacity() {
                0 => IDLE_READ_ROOM,
                capacity => capacity - this.input.len(),
            };
            let read = if this.input.capacity() == 0 {
                let mut stack = [0_u8; IDLE_READ_ROOM];
                let mut buf = ReadBuf::new(&mut stack);
                stream.poll_read(cx, &mut buf).map_ok(|()| {
                    this.input.extend_from_slice(buf.filled());
                    buf.filled().len()
                })
            } else {
                tokio_util::io::poll_read_buf(stream, cx, this.input)
            };
            match read {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Event::SocketClosed),
                Poll::Ready(Ok(n)) => {
                    return Poll::Ready(Event::Read {
                        n,
                        filled: n >= room,
                    });
                }
                Poll::Pending => {}
            }
        }
        if let Stage::Attached(attachment) = &this.driver.stage {
            let signal = attachment.entry.mailbox.signal();
            if !this.read {
                // No room for deliveries: only a kick or the shutdown may wake it here.
                signal.register(cx);
            } else if signal.poll_wait(cx).is_ready() {
                // A kick shares the signal: look again, or it would wait for the next wake.
                if let Some(kick) = attachment.entry.take_kick(attachment.generation) {
                    return Poll::Ready(Event::Close(kick.kind, kick.code));
                }
                return Poll::Ready(Event::Mail);
            }
        }
        if let Some(timer) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cn: Option<&str>) -> ConnectionInfo {
        let mut info = ConnectionInfo::new(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            Arc::from("ssl:default"),
            Transport::Ssl,
        );
        info.peer_cert = Some(Arc::new(PeerCert {
            common_name: cn.map(str::to_owned),
            subject: cn.map_or_else(|| "O=x".to_owned(), |cn| format!("CN={cn}")),
            der: bytes::Bytes::new(),
        }));
        info
    }

    #[test]
    fn certificate_identities_are_validated() {
        let mut good = info(Some("dev1"));
        good.client_id_from_cert = Some(CertField::CommonName);
        good.username_from_cert = Some(CertField::Subject);
        let (username, client_id) = good.cert_identity(64).unwrap();
        assert_eq!(username.as_deref(), Some("CN=dev1"));
        assert_eq!(client_id.as_deref(), Some("dev1"));
        assert_eq!(
            good.cert_identity(3).unwrap_err(),
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "longer than max_clientid_len"
        );

        let mut bad_id = info(Some("a#"));
        bad_id.client_id_from_cert = Some(CertField::CommonName);
        assert_eq!(
            bad_id.cert_identity(64).unwrap_err(),
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
        );
        let mut no_cn = info(None);
        no_cn.username_from_cert = Some(CertField::CommonName);
        assert_eq!(
            no_cn.cert_identity(64).unwrap_err(),
            ReasonCode::BAD_USERNAME_OR_PASSWORD
        );
        let mut no_cert = info(None);
        no_cert.peer_cert = None;
        no_cert.client_id_from_cert = Some(CertField::Subject);
        assert_eq!(
            no_cert.cert_identity(64).unwrap_err(),
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
        );
        assert_eq!(info(Some("x")).cert_identity(64).unwrap(), (None, None));
    }
}

#[cfg(test)]
mod footprint {
    use super::*;

    /// Every connection's task holds its driver's future for its whole life, idle or not:
    /// what goes into it is memory per connection (docs/benchmarks.md, idle connections).
    /// Something large held across an await (a future made inline rather than boxed) shows
    /// up here first.
    ///
    /// The bound is a step, not a budget: tokio allocates a task as its future plus 104
    /// bytes, rounded up to 128 (x86-64), and the TCP listener wraps this future in 16 bytes
    /// more. At 520 bytes the task is 640; 8 bytes more and every connection pays 768. (A
    /// test build's `TcpStream` is 8 bytes larger than a release build's.)
    #[tokio::test]
    async fn an_idle_connection_stays_small() {
        let broker = Broker::new(Default::default(), Arc::new(crate::AllowAll));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let info = ConnectionInfo::new(addr, Arc::from("tcp:default"), Transport::Tcp);
        let task = serve_mqtt(stream, info, broker);
        let size = std::mem::size_of_val(&task);
        let bound = if cfg!(debug_assertions) { 528 } else { 520 };
        assert!(size <= bound, "serve_mqtt's future is {size} bytes");
        let conn = std::mem::size_of::<Connection>();
        assert!(conn <= 232, "Connection is {conn} bytes");
    }
}
