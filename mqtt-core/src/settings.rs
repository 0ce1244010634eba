//! [`MqttSettings`]: the protocol limits and features a connection enforces.

use std::time::Duration;

use crate::QoS;

/// The MQTT protocol settings of a listener (EMQX's `mqtt.*` keys), as plain values.
///
/// The gateway builds this from the config file; tests build it with
/// [`MqttSettings::default`], which holds the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// Largest packet accepted, and advertised in CONNACK (`mqtt.max_packet_size`).
    pub max_packet_size: u32,
    /// Longest client id accepted (`mqtt.max_clientid_len`).
    pub max_clientid_len: usize,
    /// Most topic levels in a topic name or filter (`mqtt.max_topic_levels`).
    pub max_topic_levels: usize,
    /// Topic Alias Maximum advertised to v5 clients (`mqtt.max_topic_alias`; 0 disables).
    pub max_topic_alias: u16,
    /// Highest QoS accepted and granted (`mqtt.max_qos_allowed`).
    pub max_qos_allowed: QoS,
    /// Whether retained messages are supported (`mqtt.retain_available`).
    pub retain_available: bool,
    /// Whether wildcard subscriptions are allowed (`mqtt.wildcard_subscription`).
    pub wildcard_subscription: bool,
    /// Whether shared subscriptions are allowed (`mqtt.shared_subscription`).
    pub shared_subscription: bool,
    /// Most subscriptions per session (`mqtt.max_subscriptions`; `None` = unlimited).
    pub max_subscriptions: Option<usize>,
    /// Outbound inflight window (`mqtt.max_inflight`); also advertised as Receive Maximum.
    pub max_inflight: u16,
    /// Most inbound QoS 2 messages waiting for PUBREL (`mqtt.max_awaiting_rel`).
    pub max_awaiting_rel: usize,
    /// How long an inbound QoS 2 id waits for PUBREL (`mqtt.await_rel_timeout`).
    pub await_rel_timeout: Duration,
    /// Resend unacknowledged QoS 1/2 messages after this long on a live connection
    /// (`mqtt.retry_interval`; `None` = only on reconnect, as the spec allows).
    pub retry_interval: Option<Duration>,
    /// Session expiry of 3.1.1 persistent sessions, and the cap for v5 requests
    /// (`mqtt.session_expiry_interval`). Whole seconds, as the protocol counts them: a
    /// fraction rounds up.
    pub session_expiry_interval: Duration,
    /// Time from accept to a complete CONNECT (`mqtt.idle_timeout`).
    pub idle_timeout: Duration,
    /// A connection is closed after this many keep-alive periods of silence
    /// (`mqtt.keepalive_multiplier`).
    pub keepalive_multiplier: f64,
    /// Keep alive imposed on v5 clients (`mqtt.server_keepalive`; `None` = the client's).
    pub server_keepalive: Option<u16>,
    /// Largest keep alive accepted (`mqtt.max_keepalive`).
    pub max_keepalive: u16,
    /// Response Information returned to v5 clients that request it (`mqtt.response_information`).
    pub response_information: Option<String>,
    /// Most user properties in one packet (bounds CPU spent on them).
    pub max_user_properties: usize,
    /// Whether a subscriber gets the publisher's QoS when it is higher than the granted one
    /// (`mqtt.upgrade_qos`).
    pub upgrade_qos: bool,
    /// Whether a client's own publishes are not delivered back to it (`mqtt.ignore_loop_deliver`).
    pub ignore_loop_deliver: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_topic_alias: 65535,
            max_qos_allowed: QoS::ExactlyOnce,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            max_subscriptions: None,
            max_inflight: 32,
            max_awaiting_rel: 100,
            await_rel_timeout: Duration::from_secs(300),
            retry_interval: None,
            session_expiry_interval: Duration::from_secs(2 * 3600),
            idle_timeout: Duration::from_secs(15),
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            max_keepalive: 65535,
            response_information: None,
            max_user_properties: 128,
            upgrade_qos: false,
            ignore_loop_deliver: false,
        }
    }
}
