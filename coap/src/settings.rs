//! [`CoapConfig`]: the runtime settings of a CoAP listener, which the gateway builds from
//! `gateway.coap` in the config file.

use std::{sync::Arc, time::Duration};

use tributary_mqtt_core::QoS;

use crate::exchange::ExchangeConfig;

/// How notifications are sent (`notify_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyType {
    /// `non`: always NON.
    Non,
    /// `con`: always CON, retransmitted until acknowledged.
    Con,
    /// `qos`: QoS 0 messages NON, QoS 1 and 2 CON.
    Qos,
}

/// How a request's message type becomes a QoS (`publish_qos`, `subscribe_qos`) when the
/// request has no `qos` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QosMapping {
    /// `coap`: CON is QoS 1, NON is QoS 0.
    Coap,
    /// `qos0`, `qos1`, `qos2`: always this QoS.
    Fixed(QoS),
}

impl QosMapping {
    /// The QoS of a request of this message type.
    pub fn qos(self, confirmable: bool) -> QoS {
        match self {
            Self::Coap if confirmable => QoS::AtLeastOnce,
            Self::Coap => QoS::AtMostOnce,
            Self::Fixed(qos) => qos,
        }
    }
}

/// The runtime settings of a CoAP listener.
#[derive(Debug, Clone)]
pub struct CoapConfig {
    /// Prefixed to every topic and filter on the MQTT side (`coap/`); may be empty.
    pub mountpoint: String,
    /// Whether clients must log in through `mqtt/connection`.
    pub connection_required: bool,
    /// A logged-in client expires after this long without a request.
    pub heartbeat: Duration,
    /// A connectionless peer's state (and its anonymous client) expires after this long
    /// without a datagram.
    pub idle_timeout: Duration,
    /// `notify_type`.
    pub notify_type: NotifyType,
    /// `subscribe_qos`.
    pub subscribe_qos: QosMapping,
    /// `publish_qos`.
    pub publish_qos: QosMapping,
    /// The most peers served at once; datagrams from more are dropped.
    pub max_connections: usize,
    /// The most observations per client.
    pub max_observations: usize,
    /// The most notifications queued per observation behind the CON one in flight.
    pub max_pending_notifications: usize,
    /// The listener, `udp:default`.
    pub listener: Arc<str>,
    /// The exchange layer's timers and limits.
    pub exchange: ExchangeConfig,
}

impl Default for CoapConfig {
    fn default() -> Self {
        Self {
            mountpoint: String::new(),
            connection_required: false,
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            notify_type: NotifyType::Qos,
            subscribe_qos: QosMapping::Coap,
            publish_qos: QosMapping::Coap,
            max_connections: 1024,
            max_observations: 32,
            max_pending_notifications: 100,
            listener: Arc::from("udp:default"),
            exchange: ExchangeConfig::default(),
        }
    }
}
