//! [`Broker`]: the shared state every connection task works on.

use std::{
    cell::Cell,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;
use tributary_mqtt_core::{
    ByteStr, QoS, ReasonCode, RetainedStore, RouteTable, ShareStrategy, SubscriptionFilter,
    connection::{CloseKind, ConnectRequest, ConnectResult, FilterRequest, WillMessage},
    message::{Delivery, Message, ShareOrigin},
    packet::{RetainHandling, SubscriptionOptions},
    session::{Session, SessionSubscription},
    settings::MqttSettings,
};

use crate::{
    hooks::{AllowAll, AuthRequest, Hooks},
    mailbox::{Mailbox, Subscriber},
    registry::{ClientInfo, Kick, SessionEntry, Slot},
    stats::Stats,
};

/// A broker-side subscription applied at connect (EMQX's `auto_subscribe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoSubscribe {
    /// Topic filter template; `${clientid}` and `${username}` are replaced.
    pub topic: String,
    /// Subscription options.
    pub options: SubscriptionOptions,
}

/// The broker's runtime configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Protocol settings.
    pub mqtt: Arc<MqttSettings>,
    /// Offline/pending queue length per session (`mqtt.max_mqueue_len`).
    pub max_mqueue_len: usize,
    /// Whether QoS 0 messages are queued for offline sessions (`mqtt.mqueue_store_qos0`).
    pub mqueue_store_qos0: bool,
    /// Shared subscription strategy.
    pub shared_subscription_strategy: ShareStrategy,
    /// Whether retained messages are stored (`retainer.enable`).
    pub retainer_enable: bool,
    /// Most retained messages (`retainer.max_retained_messages`; 0 = unlimited).
    pub max_retained_messages: usize,
    /// Largest retained payload (`retainer.max_payload_size`).
    pub max_retained_payload_size: usize,
    /// Default expiry of retained messages without one (`retainer.msg_expiry_interval`; zero = never).
    pub retained_msg_expiry: Duration,
    /// Broker-side subscriptions applied at connect.
    pub auto_subscribe: Vec<AutoSubscribe>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            mqtt: Arc::new(MqttSettings::default()),
            max_mqueue_len: 1000,
            mqueue_store_qos0: true,
            shared_subscription_strategy: ShareStrategy::RoundRobin,
            retainer_enable: true,
            max_retained_messages: 0,
            max_retained_payload_size: 1024 * 1024,
            retained_msg_expiry: Duration::ZERO,
            auto_subscribe: Vec::new(),
        }
    }
}

/// What a route points at: the subscription's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    options: SubscriptionOptions,
    subscription_id: Option<u32>,
    /// Set for a shared subscription, so its deliveries can be re-dispatched.
    share: Option<Arc<ShareOrigin>>,
}

/// What a publisher's routing leaves for it to do: the subscribers whose mailboxes asked it
/// to hold back (see `mailbox::Flow`).
#[derive(Debug, Default)]
pub(crate) struct Routing {
    /// Sessions with congested mailboxes this publisher routed to since it last waited for
    /// them.
    pub(crate) congested: Vec<Arc<SessionEntry>>,
}

thread_local! {
    /// The route lookup's matches, one buffer per thread for every publish routed on it:
    /// the publish path allocates nothing per message but the message itself, and a
    /// connection carries no buffer of its own for it.
    static MATCHES: Cell<Vec<(Subscriber, Route)>> = const { Cell::new(Vec::new()) };
}

/// The most congested mailboxes one publisher tracks at once: a fan-out publisher waits on
/// a few, not on every subscriber; the others are waited for on a later batch.
const MAX_CONGESTED: usize = 16;

/// A handle on the broker: the session registry, the route table, the retained store, the
/// hooks and the counters. Cheap to clone; every connection task holds one.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    hooks: Arc<dyn Hooks>,
    /// Read by every publish, written by subscribe/unsubscribe: see `RouteTable`.
    routes: RouteTable<Subscriber, Route>,
    retained: RetainedStore<Arc<Message>>,
    /// Client id to session. Lock-free reads: connects look up here, nothing on the publish
    /// path does.
    sessions: papaya::HashMap<ByteStr, Arc<SessionEntry>>,
    stats: Stats,
    next_generation: AtomicU64,
    conn_seed: u64,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("sessions", &self.inner.sessions.len())
            .finish_non_exhaustive()
    }
}

/// A session attached to a connection: what the driver holds while connected.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) entry: Arc<SessionEntry>,
    pub(crate) generation: u64,
    /// Who is connected (the same the registry lists): the user name for authorization.
    pub(crate) client: Arc<ClientInfo>,
}

impl Broker {
    /// A broker with the given configuration and hooks.
    pub fn new(config: BrokerConfig, hooks: Arc<dyn Hooks>) -> Self {
        let routes = RouteTable::new(config.shared_subscription_strategy);
        let retained = RetainedStore::new(config.max_retained_messages);
        // Seeds assigned client ids: unpredictable across restarts without a rand crate.
        let conn_seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(std::process::id().into());
            hasher.finish()
        };
        Self {
            inner: Arc::new(Inner {
                config,
                hooks,
                routes,
                retained,
                sessions: papaya::HashMap::new(),
                stats: Stats::default(),
                next_generation: AtomicU64::new(1),
                conn_seed,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// A broker with the default configuration that allows everything.
    pub fn with_defaults() -> Self {
        Self::new(BrokerConfig::default(), Arc::new(AllowAll))
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Cancelled when the broker shuts down: connections send DISCONNECT 0x8B and end.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Asks every connection to close with "server shutting down".
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        // A connection with a session waits on its mailbox's signal, not on the token: wake
        // each one to look at the token. One that attaches after this sweep sees the token
        // cancelled when it next goes round its loop.
        for entry in self.inner.sessions.pin().values() {
            entry.mailbox.signal().wake();
        }
    }

    /// Number of sessions (attached or detached).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Number of subscriptions in the route table.
    pub fn subscription_count(&self) -> usize {
        self.inner.routes.len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.inner.retained.len()
    }

    /// The clients connected now with their client ids, in no particular order (a snapshot,
    /// for listings).
    pub fn clients(&self) -> Vec<(ByteStr, Arc<ClientInfo>)> {
        self.inner
            .sessions
            .pin()
            .iter()
            .filter_map(|(client_id, entry)| Some((client_id.clone(), entry.client()?)))
            .collect()
    }

    /// The client connected with this client id, if any.
    pub fn client(&self, client_id: &str) -> Option<Arc<ClientInfo>> {
        self.inner.sessions.pin().get(client_id)?.client()
    }

    /// The retained message of `topic`, if one is stored and not expired.
    pub fn retained_message(&self, topic: &str) -> Option<Arc<Message>> {
        self.inner
            .retained
            .get(topic)
            .filter(|message| !message.is_expired(now()))
    }

    /// A fresh, hard-to-guess connection id.
    pub(crate) fn next_conn_id(&self) -> u64 {
        let n = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        splitmix(self.inner.conn_seed ^ n)
    }

    fn next_generation(&self) -> u64 {
        self.inner.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// The authentication and authorization hooks (a gateway checks a read of a retained
    /// message against `authorize_subscribe`).
    pub fn hooks(&self) -> &dyn Hooks {
        &*self.inner.hooks
    }

    /// Authenticates a CONNECT, then resumes, takes over or creates its session.
    pub(crate) async fn connect(
        &self,
        request: &ConnectRequest,
        auth: AuthRequest,
    ) -> (ConnectResult, Option<Attachment>) {
        if let Err(code) = self.inner.hooks.authenticate(&auth).await {
            return (ConnectResult::Refused(code), None);
        }
        let client = Arc::new(ClientInfo {
            username: request.username.clone(),
            peer: auth.peer,
            listener: Arc::clone(&auth.listener),
            protocol: auth.protocol,
            transport: auth.transport,
        });
        let (session, session_present, attachment) = self
            .attach(&request.client_id, request.clean_start, client)
            .await;
        (
            ConnectResult::Accepted {
                session,
                session_present,
            },
            Some(attachment),
        )
    }

    /// Resumes, takes over or creates the session of an authenticated client: returns the
    /// session state, whether it was resumed, and the attachment the caller holds until it
    /// hands the session back with [`Broker::detach`].
    pub(crate) async fn attach(
        &self,
        client_id: &ByteStr,
        clean_start: bool,
        client: Arc<ClientInfo>,
    ) -> (Session, bool, Attachment) {
        loop {
            let entry = self.entry_or_insert(client_id);
            let serial = entry.serial().await;
            if !self.is_current(&entry) {
                // Discarded while we waited for our turn: start over with the live entry.
                continue;
            }
            let kind = if clean_start {
                CloseKind::Discarded
            } else {
                CloseKind::TakenOver
            };
            entry
                .take_over(Kick {
                    kind,
                    code: ReasonCode::SESSION_TAKEN_OVER,
                })
                .await;

            let generation = self.next_generation();
            let attached = Slot::Attached {
                generation,
                client: Arc::clone(&client),
                kick: None,
            };
            let previous = std::mem::replace(&mut *entry.slot(), Slot::Discarded);
            if matches!(previous, Slot::Discarded) && !self.is_current(&entry) {
                // The previous owner's session ended while we waited for it (a session that
                // does not outlive its connection expires on release): the entry is dead,
                // so start over with a live one, or this session would be out of the registry.
                continue;
            }
            let (target, session, session_present) = match previous {
                Slot::Detached { session, will, .. } if !clean_start => {
                    // Resumed: a pending Will is cancelled by the reconnect [MQTT-3.1.3-9].
                    drop(will);
                    *entry.slot() = attached;
                    (Arc::clone(&entry), *session, true)
                }
                Slot::Detached { session, .. } => {
                    // Clean start: the old session goes, routes and queue with it, and the new
                    // one gets a new entry, attached before anyone can see it. The old entry's
                    // serial is still held, so a connect queued on it retries on the new one.
                    self.discard(&entry, *session);
                    let fresh = self.make_entry(client_id);
                    *fresh.slot() = attached;
                    self.inner
                        .sessions
                        .pin()
                        .insert(client_id.clone(), Arc::clone(&fresh));
                    (fresh, self.new_session(), false)
                }
                Slot::Discarded | Slot::Attached { .. } => {
                    *entry.slot() = attached;
                    (Arc::clone(&entry), self.new_session(), false)
                }
            };
            drop(serial);
            target.mailbox.set_limits(
                self.inner.config.max_mqueue_len,
                self.inner.config.mqueue_store_qos0,
            );
            target.mailbox.set_online(true);
            let attachment = Attachment {
                entry: target,
                generation,
                client,
            };
            return (session, session_present, attachment);
        }
    }

    fn new_session(&self) -> Session {
        let mqtt = &self.inner.config.mqtt;
        Session::new(mqtt.max_awaiting_rel, mqtt.await_rel_timeout)
    }

    fn entry_or_insert(&self, client_id: &ByteStr) -> Arc<SessionEntry> {
        let sessions = self.inner.sessions.pin();
        if let Some(entry) = sessions.get(client_id) {
            return Arc::clone(entry);
        }
        let entry = self.make_entry(client_id);
        let entry = sessions.get_or_insert(client_id.clone(), entry);
        Arc::clone(entry)
    }

    fn make_entry(&self, client_id: &ByteStr) -> Arc<SessionEntry> {
        let config = &self.inner.config;
        let mailbox = Mailbox::new(
            client_id.clone(),
            config.max_mqueue_len,
            config.mqueue_store_qos0,
        );
        Arc::new(SessionEntry::new(mailbox))
    }

    fn is_current(&self, entry: &Arc<SessionEntry>) -> bool {
        self.inner
            .sessions
            .pin()
            .get(entry.client_id())
            .is_some_and(|live| Arc::ptr_eq(live, entry))
    }

    /// Removes a session's routes and queued messages.
    fn discard(&self, entry: &Arc<SessionEntry>, mut session: Session) {
        let subscriber = Subscriber(Arc::clone(entry));
        let max_levels = self.inner.config.mqtt.max_topic_levels;
        for raw in session.subscriptions().keys() {
            if let Ok(parsed) = SubscriptionFilter::parse(raw, max_levels) {
                let _ = self.inner.routes.unsubscribe(
                    &parsed.filter,
                    parsed.share_group.as_ref(),
                    &subscriber,
                );
            }
        }
        // What the session got through a share group and never acknowledged goes to another
        // member of the group (EMQX's behaviour); everything else ends with the session.
        let unacked = session.take_unacked();
        let queued = entry.mailbox.take_all();
        for delivery in unacked.into_iter().chain(queued) {
            self.redispatch(delivery);
        }
    }

    fn redispatch(&self, mut delivery: Delivery) {
        let Some(share) = delivery.share.clone() else {
            return;
        };
        if delivery.qos == QoS::AtMostOnce || delivery.message.is_expired(now()) {
            return;
        }
        let message = &delivery.message;
        let picked = self.inner.routes.pick_shared(
            &share.filter,
            &share.group,
            &message.topic,
            &message.publisher,
        );
        if let Some((subscriber, route)) = picked {
            delivery.qos = message.qos.min(route.options.qos);
            delivery.subscription_ids = route.subscription_id.into_iter().collect();
            subscriber.mailbox().push(delivery, &self.inner.stats);
        }
    }

    /// Called by a connection's task when it ends: hands the session back to the registry,
    /// or discards it when it does not outlive the connection; schedules the Will and expiry.
    pub(crate) fn detach(
        &self,
        attachment: &Attachment,
        session: Option<Session>,
        will: Option<WillMessage>,
        expiry: Duration,
    ) {
        let Attachment {
            entry, generation, ..
        } = attachment;
        let generation = *generation;
        entry.mailbox.set_online(false);
        let Some(session) = session else {
            // The connection lost its session state (it cannot, but a takeover must never
            // wait for a release that does not come).
            entry.abandon(generation);
            return;
        };
        let will_delay = will.as_ref().map(|w| w.delay.min(expiry));
        if !entry.release(generation, session, will) {
            // Someone took the session over meanwhile: nothing is ours to schedule.
            return;
        }
        if let Some(delay) = will_delay {
            self.schedule(delay, entry, generation, Deadline::Will);
        }
        if expiry.is_zero() {
            self.expire(entry, generation);
        } else if expiry < Duration::from_secs(u64::from(u32::MAX)) {
            self.schedule(expiry, entry, generation, Deadline::Expiry);
        }
    }

    fn schedule(
        &self,
        after: Duration,
        entry: &Arc<SessionEntry>,
        generation: u64,
        what: Deadline,
    ) {
        if after.is_zero() && what == Deadline::Will {
            self.publish_pending_will(entry, generation);
            return;
        }
        let broker = Arc::downgrade(&self.inner);
        let entry = Arc::clone(entry);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(inner) = Weak::upgrade(&broker) else {
                return;
            };
            let broker = Broker { inner };
            match what {
                Deadline::Will => broker.publish_pending_will(&entry, generation),
                Deadline::Expiry => {
                    let _serial = entry.serial().await;
                    broker.expire(&entry, generation);
                }
            }
        });
    }

    /// Publishes the Will of a detached session, unless it was resumed since.
    fn publish_pending_will(&self, entry: &SessionEntry, generation: u64) {
        let will = match &mut *entry.slot() {
            Slot::Detached {
                generation: g,
                will,
                ..
            } if *g == generation => will.take(),
            _ => None,
        };
        if let Some(will) = will {
            self.publish_will(*will);
        }
    }

    /// Publishes a Will now.
    pub(crate) fn publish_will(&self, will: WillMessage) {
        let mut message = will.message;
        message.expires_at = will.expiry.map(|e| now() + e);
        let mut routing = Routing::default();
        if self
            .inner
            .hooks
            .authorize_publish(&message.publisher, None, message.topic.as_str())
        {
            self.publish(Arc::new(message), &mut routing);
        }
    }

    /// Ends a detached session whose time is up (or that never outlived its connection).
    fn expire(&self, entry: &Arc<SessionEntry>, generation: u64) {
        let (session, will) = {
            let mut slot = entry.slot();
            match &*slot {
                Slot::Detached { generation: g, .. } if *g == generation => {}
                _ => return,
            }
            let Slot::Detached { session, will, .. } =
                std::mem::replace(&mut *slot, Slot::Discarded)
            else {
                return;
            };
            // Out of the registry before the slot lock goes: a connect that finds the slot
            // discarded can then tell a dead entry from a new one (see `attach`).
            let sessions = self.inner.sessions.pin();
            let _ = sessions.remove_if(entry.client_id(), |_, live| Arc::ptr_eq(live, entry));
            (session, will)
        };
        // The Will goes out at the latest when the session ends [MQTT-3.1.3-9].
        if let Some(will) = will {
            self.publish_will(*will);
        }
        self.discard(entry, *session);
    }

    /// Routes a message to every matching subscription and stores it if retained. Returns the
    /// number of sessions it was queued for.
    pub(crate) fn publish(&self, message: Arc<Message>, routing: &mut Routing) -> usize {
        let inner = &*self.inner;
        let congested = &mut routing.congested;
        // Taken out of its cell, not borrowed: nothing below publishes again, but if it did,
        // it would get a buffer of its own rather than a panic.
        let mut matches = MATCHES.take();
        let scratch = &mut matches;
        if message.retain && inner.config.retainer_enable {
            self.retain(&message);
        }
        let distinct = inner
            .routes
            .matches(&message.topic, &message.publisher, scratch);
        if !distinct && scratch.len() > 1 {
            // Overlapping subscriptions of one session get one copy (spec 3.3.4): sort so a
            // session's matches are adjacent, then merge them below.
            scratch.sort_unstable_by_key(|(sub, _)| Arc::as_ptr(&sub.0));
        }
        let upgrade = inner.config.mqtt.upgrade_qos;
        let ignore_loop = inner.config.mqtt.ignore_loop_deliver;
        let mut delivered = 0;
        let mut i = 0;
        while i < scratch.len() {
            let sub = &scratch[i].0;
            let mut qos = None;
            let mut retain = false;
            let mut ids = Vec::new();
            let mut share = None;
            let mut j = i;
            while j < scratch.len() && Arc::ptr_eq(&scratch[j].0.0, &sub.0) {
                let route = &scratch[j].1;
                j += 1;
                let own = *sub.mailbox().client_id() == message.publisher;
                if own && (route.options.no_local || ignore_loop) {
                    continue;
                }
                let granted = if upgrade {
                    message.qos
                } else {
                    message.qos.min(route.options.qos)
                };
                qos = Some(qos.map_or(granted, |q: QoS| q.max(granted)));
                retain |= route.options.retain_as_published && message.retain;
                ids.extend(route.subscription_id);
                share.clone_from(&route.share);
            }
            if j - i > 1 {
                // Also matched by another subscription of the same session: it is that
                // session's message, not the group's, so it is never re-dispatched.
                share = None;
            }
            if let Some(qos) = qos {
                let hold_back = sub.mailbox().push(
                    Delivery {
                        message: Arc::clone(&message),
                        qos,
                        retain,
                        subscription_ids: ids,
                        share,
                    },
                    &inner.stats,
                );
                if hold_back
                    && congested.len() < MAX_CONGESTED
                    && !congested.iter().any(|c| Arc::ptr_eq(c, &sub.0))
                {
                    congested.push(Arc::clone(&sub.0));
                }
                delivered += 1;
            }
            i = j;
        }
        scratch.clear();
        MATCHES.set(matches);
        if delivered == 0 {
            Stats::incr(&inner.stats.messages_dropped_no_subscribers);
        }
        delivered
    }

    fn retain(&self, message: &Arc<Message>) {
        let inner = &*self.inner;
        if message.payload.is_empty() {
            inner.retained.remove(message.topic.as_str());
            return;
        }
        if message.payload.len() > inner.config.max_retained_payload_size {
            tracing::info!(topic = %message.topic, size = message.payload.len(), "retained payload over retainer.max_payload_size; not stored");
            return;
        }
        let mut stored = Message::clone(message);
        if stored.expires_at.is_none() && !inner.config.retained_msg_expiry.is_zero() {
            stored.expires_at = Some(now() + inner.config.retained_msg_expiry);
        }
        if let Err(error) = inner.retained.insert(&message.topic, Arc::new(stored)) {
            tracing::warn!(topic = %message.topic, %error, "retained message not stored");
        }
    }

    /// Carries out one SUBSCRIBE for a session: returns a reason code per filter and queues
    /// the retained messages the new subscriptions ask for.
    pub(crate) fn subscribe(
        &self,
        entry: &Arc<SessionEntry>,
        session: &mut Session,
        username: Option<&str>,
        subscription_id: Option<u32>,
        filters: Vec<FilterRequest>,
    ) -> Vec<ReasonCode> {
        let inner = &*self.inner;
        let subscriber = Subscriber(Arc::clone(entry));
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        for request in filters {
            let parsed = match request.filter {
                Ok(parsed) => parsed,
                Err(code) => {
                    codes.push(code);
                    continue;
                }
            };
            let exists = session.subscriptions().contains_key(&request.raw);
            if !exists
                && inner
                    .config
                    .mqtt
                    .max_subscriptions
                    .is_some_and(|max| session.subscriptions().len() >= max)
            {
                codes.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            }
            if !inner
                .hooks
                .authorize_subscribe(entry.client_id(), username, &request.raw)
            {
                codes.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            let share = parsed.share_group.as_ref().map(|group| {
                Arc::new(ShareOrigin {
                    group: group.clone(),
                    filter: parsed.filter.clone(),
                })
            });
            let route = Route {
                options: request.options,
                subscription_id,
                share,
            };
            let existed = inner
                .routes
                .subscribe(
                    &parsed.filter,
                    parsed.share_group.as_ref(),
                    subscriber.clone(),
                    route,
                )
                .is_some();
            let _ = session.add_subscription(
                request.raw.clone(),
                SessionSubscription {
                    options: request.options,
                    subscription_id,
                },
            );
            let send_retained = parsed.share_group.is_none()
                && match request.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained && inner.config.retainer_enable {
                inner.retained.matches(&parsed.filter, &mut retained);
                let now = now();
                for message in retained.drain(..) {
                    if message.is_expired(now) {
                        continue;
                    }
                    let qos = message.qos.min(request.options.qos);
                    let delivery = Delivery {
                        message,
                        qos,
                        // Retained messages sent for a new subscription carry RETAIN = 1
                        // [MQTT-3.3.1-8].
                        retain: true,
                        subscription_ids: subscription_id.into_iter().collect(),
                        share: None,
                    };
                    entry.mailbox.push(delivery, &inner.stats);
                }
            }
            codes.push(ReasonCode(request.options.qos as u8));
        }
        codes
    }

    /// Carries out one UNSUBSCRIBE for a session: a reason code per filter.
    pub(crate) fn unsubscribe(
        &self,
        entry: &Arc<SessionEntry>,
        session: &mut Session,
        filters: &[ByteStr],
    ) -> Vec<ReasonCode> {
        let inner = &*self.inner;
        let subscriber = Subscriber(Arc::clone(entry));
        filters
            .iter()
            .map(
                |raw| match SubscriptionFilter::parse(raw, inner.config.mqtt.max_topic_levels) {
                    Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                    Ok(parsed) => {
                        let known = session.remove_subscription(raw).is_some();
                        let removed = inner
                            .routes
                            .unsubscribe(&parsed.filter, parsed.share_group.as_ref(), &subscriber)
                            .is_some();
                        if known || removed {
                            ReasonCode::SUCCESS
                        } else {
                            ReasonCode::NO_SUBSCRIPTION_EXISTED
                        }
                    }
                },
            )
            .collect()
    }

    /// The auto-subscribe filters for a client, placeholders (`${clientid}`, `${username}`,
    /// `${host}`, `${port}`) filled in. A client id or user name containing `+`, `#` or `/`
    /// could widen the filter, so such a template is skipped for that client (the lesson of
    /// Mosquitto CVE-2017-7650).
    pub(crate) fn auto_subscriptions(
        &self,
        client_id: &str,
        username: Option<&str>,
        peer: std::net::SocketAddr,
    ) -> Vec<(ByteStr, SubscriptionOptions)> {
        let unsafe_value = |v: &str| v.contains(['+', '#', '/']);
        self.inner
            .config
            .auto_subscribe
            .iter()
            .filter_map(|auto| {
                let mut topic = auto.topic.clone();
                if topic.contains("${clientid}") {
                    if unsafe_value(client_id) {
                        return None;
                    }
                    topic = topic.replace("${clientid}", client_id);
                }
                if topic.contains("${username}") {
                    let username = username.filter(|u| !unsafe_value(u))?;
                    topic = topic.replace("${username}", username);
                }
                if topic.contains("${host}") {
                    topic = topic.replace("${host}", &peer.ip().to_string());
                }
                if topic.contains("${port}") {
                    topic = topic.replace("${port}", &peer.port().to_string());
                }
                Some((ByteStr::from(topic), auto.options))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Will,
    Expiry,
}

/// The current time for the sans-IO state machines: tokio's clock, so tests can pause it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
