//! [`Message`]: an application message inside the broker, and [`Delivery`]: one subscriber's copy.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Instant,
};

use bytes::Bytes;

use crate::{
    ByteStr, PacketId, ProtocolVersion, QoS,
    packet::{PublishProperties, PublishRef},
    topic::{TopicFilter, TopicName},
};

/// An application message as the broker routes it: validated topic, payload and the
/// properties that travel with it.
///
/// Routed as `Arc<Message>`: a message delivered to many subscribers is one allocation, and
/// its payload and topic are slices of the packet it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic (aliases already resolved).
    pub topic: TopicName,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag it was published with.
    pub retain: bool,
    /// Properties forwarded to subscribers. `topic_alias` and `subscription_identifiers` are
    /// always empty here: both belong to one hop, not to the message.
    pub properties: PublishProperties,
    /// When the message expires (from the v5 Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
    /// Client id of the publisher (for No Local and shared-subscription hashing).
    pub publisher: ByteStr,
    /// The message encoded once for its many subscribers (see [`WireCache`]); build it with
    /// `WireCache::default()`.
    pub wire: WireCache,
}

/// A message's QoS 0 PUBLISH as every subscriber gets it who adds nothing of its own (no
/// subscription identifier, no topic alias, no expiry to count down), after the first byte
/// (which carries the RETAIN flag, set per subscriber), for one protocol version: encoded by
/// the first such subscriber of a message that has several, and copied by the others, so a
/// fan-out encodes once rather than once per subscriber.
///
/// It is a cache, not part of the message: clones start empty, and it takes no part in
/// equality.
#[derive(Default)]
pub struct WireCache(OnceLock<(ProtocolVersion, Bytes)>);

impl WireCache {
    /// The encoding for `version`: the cached one, or `encode`'s, cached if the cache is
    /// free. `None` when it holds another version's (a message whose subscribers speak both
    /// versions is cached for the first to ask).
    pub fn get_or_encode(
        &self,
        version: ProtocolVersion,
        encode: impl FnOnce() -> Bytes,
    ) -> Option<&Bytes> {
        let (cached, bytes) = self.0.get_or_init(|| (version, encode()));
        (*cached == version).then_some(bytes)
    }

    /// Whether an encoding is cached.
    pub fn is_filled(&self) -> bool {
        self.0.get().is_some()
    }
}

impl Clone for WireCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for WireCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WireCache {}

impl fmt::Debug for WireCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WireCache")
            .field(&self.0.get().map(|(version, bytes)| (version, bytes.len())))
            .finish()
    }
}

impl Message {
    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval to forward at `now`: the time left, rounded up so that a
    /// message that is still alive never goes out with 0 (which would mean "never expires" to
    /// nobody, but "already expired" to a careful reader).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
        })
    }
}

/// A message on its way to one subscriber, with what that subscription made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// The QoS to deliver with: the lower of the published QoS and the granted QoS.
    pub qos: QoS,
    /// The RETAIN flag to deliver with (Retain As Published, or a retained message sent
    /// because of a new subscription).
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions (v5).
    pub subscription_ids: Vec<u32>,
    /// The share group it was picked for, when a shared subscription alone matched: if the
    /// member's session ends before acknowledging it, the broker gives it to another member.
    pub share: Option<Arc<ShareOrigin>>,
}

impl Delivery {
    /// The PUBLISH that sends it at `now`: the message, with the QoS and RETAIN flag of this
    /// subscription, its subscription identifiers, and the expiry interval left.
    pub fn publish(&self, now: Instant, packet_id: Option<PacketId>) -> PublishRef<'_> {
        let message = &*self.message;
        PublishRef {
            dup: false,
            qos: self.qos,
            retain: self.retain,
            topic: message.topic.as_bytestr(),
            packet_id,
            properties: &message.properties,
            message_expiry_interval: message.remaining_expiry(now),
            topic_alias: None,
            subscription_identifiers: &self.subscription_ids,
            payload: &message.payload,
        }
    }
}

/// A share group on a filter (`$share/{group}/{filter}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareOrigin {
    /// The group name (`$queue` for `$queue/...`).
    pub group: ByteStr,
    /// The filter.
    pub filter: TopicFilter,
}
