//! `mqtt`: protocol limits and session behaviour, with EMQX's names and defaults
//! (`apps/emqx/src/emqx_schema.erl`), where RELIABILITY.md's limits table explains each one.

use std::time::Duration;

use serde::Deserialize;

use crate::de::{self, string_enum};
use crate::units::{ByteSize, Limit, Timeout};

/// The largest MQTT packet the protocol can describe: a 4-byte remaining length tops out at
/// 268,435,455 bytes (256MB - 1).
pub const MAX_PACKET_SIZE_LIMIT: u64 = 268_435_455;

string_enum! {
    /// `mqtt.shared_subscription_strategy`: how a message on a shared subscription
    /// (`$share/group/topic`) picks one member of the group.
    pub enum SharedSubStrategy {
        /// `random`: a member at random.
        Random = "random",
        /// `round_robin`: each member in turn.
        RoundRobin = "round_robin",
        /// `sticky`: the member picked last, while it stays subscribed.
        Sticky = "sticky",
        /// `hash_clientid`: a member chosen by a hash of the publisher's client id.
        HashClientid = "hash_clientid",
        /// `hash_topic`: a member chosen by a hash of the topic.
        HashTopic = "hash_topic",
    }
}

/// `mqtt`: MQTT protocol limits and session behaviour, for every listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with the mqtt settings")]
pub struct MqttConfig {
    /// `max_packet_size`: the largest packet accepted, checked from the fixed header before
    /// anything is buffered; advertised to v5 clients in CONNACK. 1 byte to 268435455 bytes.
    /// Default `1MB`.
    #[serde(deserialize_with = "ByteSize::deserialize_in::<_, 1, { MAX_PACKET_SIZE_LIMIT }>")]
    pub max_packet_size: ByteSize,
    /// `max_clientid_len`: the longest client id accepted, 23 to 65535. Default `65535`.
    #[serde(deserialize_with = "de::int::<_, _, 23, 65535>")]
    pub max_clientid_len: u16,
    /// `max_topic_levels`: the most `/`-separated levels in a topic name or filter, at least 1.
    /// Default `128`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 65535>")]
    pub max_topic_levels: u16,
    /// `max_topic_alias`: the Topic Alias Maximum offered to v5 clients; 0 turns aliases off.
    /// Default `65535`.
    #[serde(deserialize_with = "de::int::<_, _, 0, 65535>")]
    pub max_topic_alias: u16,
    /// `max_qos_allowed`: the highest QoS the broker grants, 0 to 2. Default `2`.
    #[serde(deserialize_with = "de::int::<_, _, 0, 2>")]
    pub max_qos_allowed: u8,
    /// `retain_available`: whether retained messages are supported. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub retain_available: bool,
    /// `wildcard_subscription`: whether filters with `+` and `#` are allowed. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub wildcard_subscription: bool,
    /// `shared_subscription`: whether `$share/group/topic` subscriptions are allowed.
    /// Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub shared_subscription: bool,
    /// `shared_subscription_strategy`: how a shared subscription picks its receiver.
    /// Default `round_robin`.
    pub shared_subscription_strategy: SharedSubStrategy,
    /// `max_subscriptions`: the most subscriptions one client may hold, `infinity` or a positive
    /// integer; past it, SUBACK `0x97` Quota exceeded. Default `infinity`.
    pub max_subscriptions: Limit,
    /// `max_inflight`: the outbound window of unacknowledged QoS 1/2 messages per session,
    /// 1 to 65535 (the client's Receive Maximum lowers it). Default `32`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 65535>")]
    pub max_inflight: u16,
    /// `max_awaiting_rel`: the most inbound QoS 2 messages awaiting PUBREL per session, 1 to
    /// 65535; past it, PUBREC `0x93`. Unlike EMQX, `infinity` is refused: the bound is what
    /// stops CVE-2023-28366, and 16-bit packet ids cap it at 65535 anyway. Default `100`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 65535>")]
    pub max_awaiting_rel: u16,
    /// `await_rel_timeout`: how long an inbound QoS 2 message waits for its PUBREL before it
    /// is dropped. Default `300s`.
    #[serde(deserialize_with = "de::duration")]
    pub await_rel_timeout: Duration,
    /// `retry_interval`: how long before an unacknowledged QoS 1/2 message is resent on the same
    /// connection; `infinity` resends only on reconnect, as the spec allows. Default `infinity`.
    pub retry_interval: Timeout,
    /// `max_mqueue_len`: the most messages queued for a session while it is offline or its
    /// window is full; the oldest (QoS 0 first) are dropped past it. At least 1: unlike EMQX,
    /// there is no unbounded queue (EMQX reads 0 as unlimited; Tributary refuses 0 and
    /// `infinity`). Default `1000`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 4_294_967_295>")]
    pub max_mqueue_len: u32,
    /// `mqueue_store_qos0`: whether QoS 0 messages are queued for offline sessions too.
    /// Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub mqueue_store_qos0: bool,
    /// `session_expiry_interval`: how long a 3.1.1 persistent session (clean session = 0) lives
    /// after its connection ends, and the cap on what a v5 client may ask for. Default `2h`.
    #[serde(deserialize_with = "de::duration")]
    pub session_expiry_interval: Duration,
    /// `idle_timeout`: how long a new connection may take to send a complete CONNECT before it
    /// is closed (slowloris, CVE-2023-5632). Default `15s`.
    #[serde(deserialize_with = "de::duration")]
    pub idle_timeout: Duration,
    /// `keepalive_multiplier`: a connection silent for this many times its keepalive is closed
    /// with `keepalive_timeout`; a number greater than 0. Default `1.5`.
    #[serde(deserialize_with = "de::positive_float")]
    pub keepalive_multiplier: f64,
    /// `server_keepalive`: a keepalive in seconds (1 to 65535) the broker imposes on v5 clients
    /// through CONNACK's Server Keep Alive, or `disabled` (`None`) to accept the client's.
    /// Default `disabled`.
    #[serde(deserialize_with = "de::seconds_or_disabled")]
    pub server_keepalive: Option<u16>,
    /// `max_keepalive`: the longest keepalive, in seconds, a client may ask for, 1 to 65535; a v5
    /// client asking for more gets this in Server Keep Alive (CVE-2020-13849). Default `65535`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 65535>")]
    pub max_keepalive: u16,
    /// `ignore_loop_deliver`: whether a client's own publishes are kept from its own matching
    /// subscriptions (v3.1.1's equivalent of v5 No Local). Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub ignore_loop_deliver: bool,
    /// `response_information`: the v5 Response Information returned to clients that request
    /// it; empty sends none. Default `""`.
    pub response_information: String,
    /// `max_user_properties`: the most User Property pairs accepted in one packet, 0 to 65535
    /// (Mosquitto 2.0.12's CPU issue). Default `128`.
    #[serde(deserialize_with = "de::int::<_, _, 0, 65535>")]
    pub max_user_properties: u16,
    /// `upgrade_qos`: deliver at the subscription's QoS even when the message was published at
    /// a lower one. Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub upgrade_qos: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            max_packet_size: ByteSize::from_bytes(ByteSize::MB),
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_topic_alias: 65535,
            max_qos_allowed: 2,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            shared_subscription_strategy: SharedSubStrategy::RoundRobin,
            max_subscriptions: Limit::Infinity,
            max_inflight: 32,
            max_awaiting_rel: 100,
            await_rel_timeout: Duration::from_secs(300),
            retry_interval: Timeout::Infinity,
            max_mqueue_len: 1000,
            mqueue_store_qos0: true,
            session_expiry_interval: Duration::from_secs(2 * 60 * 60),
            idle_timeout: Duration::from_secs(15),
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            max_keepalive: 65535,
            ignore_loop_deliver: false,
            response_information: String::new(),
            max_user_properties: 128,
            upgrade_qos: false,
        }
    }
}
