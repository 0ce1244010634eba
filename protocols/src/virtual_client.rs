//! [`VirtualClient`]: a session driven by a gateway that does not speak MQTT (CoAP, LwM2M).
//!
//! A CoAP or LwM2M device is a client of the same broker as an MQTT device: it has a session in
//! the same registry (so an MQTT client with the same client id takes it over, and listings
//! show it with its protocol), its publishes go through the same ACL hook and route table, and
//! what matches its subscriptions queues in the same bounded mailbox. The gateway translates
//! between its protocol and these calls; it never sees MQTT bytes.
//!
//! Call order: [`Broker::connect_virtual`], then [`VirtualClient::take_deliveries`] once (a
//! resumed session may hold queued messages), then a loop around [`VirtualClient::wait`] and
//! the calls the device's requests ask for. Drop the client (or call
//! [`VirtualClient::disconnect`]) to hand the session back. The task that owns a client must
//! keep waiting on [`VirtualClient::wait`] while the device is connected: a takeover by
//! another connection with the same client id waits until this client lets go.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use tributary_mqtt_core::{
    ByteStr, QoS, ReasonCode, SubscriptionFilter, TopicName,
    connection::{CloseKind, FilterRequest},
    message::{Delivery, Message},
    packet::{PublishProperties, SubscriptionOptions},
    session::Session,
};

use crate::{
    broker::{Attachment, Broker, Routing, now},
    hooks::AuthRequest,
    registry::{ClientInfo, Protocol, Transport},
    stats::Stats,
};

/// How a gateway connects one of its devices.
#[derive(Debug, Clone)]
pub struct VirtualConnect {
    /// Client id (a device's endpoint name, or one the gateway made up).
    pub client_id: ByteStr,
    /// User name, if the device gave one.
    pub username: Option<ByteStr>,
    /// Password, if the device gave one.
    pub password: Option<Bytes>,
    /// The device's address.
    pub peer: SocketAddr,
    /// The gateway listener, as `type:name` (`udp:default`).
    pub listener: Arc<str>,
    /// CoAP or LwM2M.
    pub protocol: Protocol,
    /// UDP.
    pub transport: Transport,
    /// Whether to ask the authentication hook. A gateway mode without credentials (CoAP's
    /// connectionless mode) skips it; ACL applies either way.
    pub authenticate: bool,
    /// Whether to start a new session instead of resuming one with the same client id.
    pub clean_start: bool,
    /// How long the session outlives the device's disconnect (zero: it ends with it).
    pub session_expiry: Duration,
}

/// Why [`VirtualClient::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wake {
    /// Messages may be queued: call [`VirtualClient::take_deliveries`].
    Deliveries,
    /// Another connection took the session over or discarded it: drop the client now.
    Kicked(CloseKind),
}

/// Why a virtual client's publish was not routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The topic is not a valid topic name (empty, wildcards, too many levels, NUL).
    #[error("invalid topic")]
    InvalidTopic,
    /// The ACL hook refused it, or the topic is the broker's own (`$SYS/...`).
    #[error("not authorized")]
    NotAuthorized,
}

/// A device's session, held by the gateway task that serves the device. See the module docs.
#[derive(Debug)]
pub struct VirtualClient {
    broker: Broker,
    client_id: ByteStr,
    client: Arc<ClientInfo>,
    /// `Some` until the client is dropped or disconnected.
    attachment: Option<Attachment>,
    session: Option<Session>,
    session_present: bool,
    session_expiry: Duration,
    /// Reused by every publish this client routes. Gateways do not wait for congested
    /// subscribers (a datagram protocol has no stream to stop reading), so its `congested`
    /// list is cleared after each publish.
    routing: Routing,
}

impl Broker {
    /// Connects a gateway's device as a virtual client: authenticates it (if asked), then
    /// resumes, takes over or creates its session. `Err` is the reason it was refused.
    pub async fn connect_virtual(
        &self,
        connect: VirtualConnect,
    ) -> Result<VirtualClient, ReasonCode> {
        let auth = AuthRequest {
            client_id: connect.client_id.clone(),
            username: connect.username.clone(),
            password: connect.password,
            peer: connect.peer,
            listener: Arc::clone(&connect.listener),
            transport: connect.transport,
            protocol: connect.protocol,
            peer_cert: None,
        };
        if connect.authenticate {
            self.hooks().authenticate(&auth).await?;
        }
        let client_id = connect.client_id;
        let client = Arc::new(ClientInfo {
            username: connect.username,
            peer: connect.peer,
            listener: connect.listener,
            protocol: connect.protocol,
            transport: connect.transport,
        });
        let (session, session_present, attachment) = self
            .attach(&client_id, connect.clean_start, Arc::clone(&client))
            .await;
        tracing::debug!(
            %client_id,
            peer = %client.peer,
            listener = %client.listener,
            protocol = %client.protocol,
            session_present,
            "client connected"
        );
        Ok(VirtualClient {
            broker: self.clone(),
            client_id,
            client,
            attachment: Some(attachment),
            session: Some(session),
            session_present,
            session_expiry: connect.session_expiry,
            routing: Routing::default(),
        })
    }
}

impl VirtualClient {
    /// Who this client is.
    pub fn info(&self) -> &Arc<ClientInfo> {
        &self.client
    }

    /// The client id.
    pub fn client_id(&self) -> &ByteStr {
        &self.client_id
    }

    /// Whether an earlier session was resumed.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// Publishes a message as this client, through the ACL hook. Returns the number of
    /// sessions it was queued for.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        expiry: Option<Duration>,
    ) -> Result<usize, PublishError> {
        let max_levels = self.broker.config().mqtt.max_topic_levels;
        let topic = TopicName::new(ByteStr::from(topic), max_levels)
            .map_err(|_| PublishError::InvalidTopic)?;
        let allowed = !topic.is_sys()
            && self.broker.hooks().authorize_publish(
                &self.client_id,
                self.client.username.as_deref(),
                topic.as_str(),
            );
        if !allowed {
            return Err(PublishError::NotAuthorized);
        }
        Stats::incr(&self.broker.stats().messages_received);
        let message = Message {
            topic,
            payload,
            qos,
            retain,
            properties: PublishProperties::default(),
            expires_at: expiry.map(|e| now() + e),
            publisher: self.client_id.clone(),
            wire: tributary_mqtt_core::message::WireCache::default(),
        };
        let routed = self.broker.publish(Arc::new(message), &mut self.routing);
        self.routing.congested.clear();
        Ok(routed)
    }

    /// Subscribes this client to `filter` (shared-subscription syntax included), through the
    /// ACL hook; matching retained messages are queued as for an MQTT subscriber. Returns the
    /// granted QoS as a reason code, or the refusal.
    pub fn subscribe(&mut self, filter: &str, options: SubscriptionOptions) -> ReasonCode {
        let max_levels = self.broker.config().mqtt.max_topic_levels;
        let raw = ByteStr::from(filter);
        let request = FilterRequest {
            filter: SubscriptionFilter::parse(&raw, max_levels)
                .map_err(|_| ReasonCode::TOPIC_FILTER_INVALID),
            raw,
            options,
        };
        let (Some(attachment), Some(session)) = (&self.attachment, &mut self.session) else {
            return ReasonCode::UNSPECIFIED_ERROR;
        };
        self.broker
            .subscribe(
                &attachment.entry,
                session,
                self.client.username.as_deref(),
                None,
                vec![request],
            )
            .pop()
            .unwrap_or(ReasonCode::UNSPECIFIED_ERROR)
    }

    /// Removes this client's subscription to `filter`.
    pub fn unsubscribe(&mut self, filter: &str) -> ReasonCode {
        let (Some(attachment), Some(session)) = (&self.attachment, &mut self.session) else {
            return ReasonCode::UNSPECIFIED_ERROR;
        };
        self.broker
            .unsubscribe(&attachment.entry, session, &[ByteStr::from(filter)])
            .pop()
            .unwrap_or(ReasonCode::UNSPECIFIED_ERROR)
    }

    /// Whether this client has a subscription to exactly `filter`.
    pub fn is_subscribed(&self, filter: &str) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.subscriptions().contains_key(filter))
    }

    /// Moves up to `max` queued deliveries, oldest first, into `out`; returns whether more
    /// are left. Expired messages are dropped here, counted. Each delivery's `qos` is the one
    /// its subscription granted; how the gateway acknowledges it is the gateway's protocol.
    pub fn take_deliveries(&mut self, out: &mut Vec<Delivery>, max: usize) -> bool {
        let Some(attachment) = &self.attachment else {
            return false;
        };
        let start = out.len();
        let more = attachment.entry.mailbox.pop_into(out, max);
        let now = now();
        let stats = self.broker.stats();
        let mut index = 0;
        out.retain(|delivery| {
            let ours = index >= start;
            index += 1;
            if !ours {
                return true;
            }
            if delivery.message.is_expired(now) {
                Stats::incr(&stats.delivery_dropped_expired);
                false
            } else {
                Stats::incr(&stats.messages_sent);
                true
            }
        });
        more
    }

    /// Waits until messages may be queued or another connection takes the session over.
    pub async fn wait(&mut self) -> Wake {
        let Some(attachment) = &self.attachment else {
            return Wake::Kicked(CloseKind::Discarded);
        };
        let (entry, generation) = (&attachment.entry, attachment.generation);
        // A kick wakes the mailbox's signal too: it is looked for before the wait (one that
        // came while the client was busy) and after it.
        if let Some(kick) = entry.take_kick(generation) {
            return Wake::Kicked(kick.kind);
        }
        entry.mailbox.notified().await;
        match entry.take_kick(generation) {
            Some(kick) => Wake::Kicked(kick.kind),
            None => Wake::Deliveries,
        }
    }

    /// Hands the session back, logging why (`reason` in EMQX's vocabulary: `normal`,
    /// `heartbeat_timeout`, `takenover`...). Dropping the client does the same, logged as
    /// `normal`.
    pub fn disconnect(mut self, reason: &str) {
        self.detach(reason);
    }

    fn detach(&mut self, reason: &str) {
        let Some(attachment) = self.attachment.take() else {
            return;
        };
        tracing::debug!(
            client_id = %self.client_id,
            peer = %self.client.peer,
            listener = %self.client.listener,
            protocol = %self.client.protocol,
            reason,
            "client disconnected"
        );
        self.broker
            .detach(&attachment, self.session.take(), None, self.session_expiry);
    }
}

impl Drop for VirtualClient {
    fn drop(&mut self) {
        self.detach("normal");
    }
}
