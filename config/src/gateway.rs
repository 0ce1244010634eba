//! `gateway`: the protocol gateways, with EMQX's names (`gateway.coap...`). Each gateway's
//! devices are virtual clients of the same broker.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use crate::de::{self, string_enum};
use crate::units::{ByteSize, Limit};

/// The default CoAP port (UDP).
pub const DEFAULT_COAP_PORT: u16 = 5683;

/// `gateway`: every protocol gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object of gateways, such as coap")]
pub struct GatewayConfig {
    /// `gateway.coap`: the CoAP gateway (`docs/coap.md`).
    pub coap: CoapGatewayConfig,
}

string_enum! {
    /// `gateway.coap.notify_type`: the message type of Observe notifications.
    pub enum CoapNotifyType {
        /// `non`: always NON.
        Non = "non",
        /// `con`: always CON, retransmitted until acknowledged.
        Con = "con",
        /// `qos`: NON for QoS 0 messages, CON for QoS 1 and 2.
        Qos = "qos",
    }
}

string_enum! {
    /// `gateway.coap.publish_qos` / `subscribe_qos`: the QoS of a request without a `qos`
    /// query.
    pub enum CoapQos {
        /// `coap`: CON requests are QoS 1, NON requests QoS 0.
        Coap = "coap",
        /// `qos0`.
        Qos0 = "qos0",
        /// `qos1`.
        Qos1 = "qos1",
        /// `qos2`.
        Qos2 = "qos2",
    }
}

/// `gateway.coap`: the CoAP gateway, EMQX's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the CoAP gateway settings"
)]
pub struct CoapGatewayConfig {
    /// `enable`: run the gateway. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `mountpoint`: prefixed to every topic and filter on the MQTT side (`"coap/"`).
    /// Default `""`.
    pub mountpoint: String,
    /// `connection_required`: clients must log in through `mqtt/connection` first.
    /// Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub connection_required: bool,
    /// `heartbeat`: a logged-in client expires after this long without a request.
    /// Default `30s`.
    #[serde(deserialize_with = "de::duration")]
    pub heartbeat: Duration,
    /// `idle_timeout`: a connectionless peer (and its anonymous client) is forgotten after
    /// this long without a datagram. Default `30s`.
    #[serde(deserialize_with = "de::duration")]
    pub idle_timeout: Duration,
    /// `notify_type`: `non`, `con` or `qos`. Default `qos`.
    pub notify_type: CoapNotifyType,
    /// `subscribe_qos`: `coap`, `qos0`, `qos1` or `qos2`. Default `coap`.
    pub subscribe_qos: CoapQos,
    /// `publish_qos`: `coap`, `qos0`, `qos1` or `qos2`. Default `coap`.
    pub publish_qos: CoapQos,
    /// `max_observations`: the most observations (subscriptions) per client; more get `4.00`.
    /// Default `32`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 65535>")]
    pub max_observations: u16,
    /// `blockwise`: block-wise transfer (RFC 7959).
    pub blockwise: BlockwiseConfig,
    /// `listeners.udp.<name>`: UDP listeners. Default: `default` on `0.0.0.0:5683`.
    pub listeners: CoapListeners,
}

impl Default for CoapGatewayConfig {
    fn default() -> Self {
        Self {
            enable: true,
            mountpoint: String::new(),
            connection_required: false,
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            notify_type: CoapNotifyType::Qos,
            subscribe_qos: CoapQos::Coap,
            publish_qos: CoapQos::Coap,
            max_observations: 32,
            blockwise: BlockwiseConfig::default(),
            listeners: CoapListeners::default(),
        }
    }
}

/// `gateway.coap.blockwise`: block-wise transfer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the block-wise settings"
)]
pub struct BlockwiseConfig {
    /// `max_block_size`: the block size of large responses and notifications, a power of two
    /// from 16 to 1024. Default `1024`.
    #[serde(deserialize_with = "de::int::<_, _, 16, 1024>")]
    pub max_block_size: u16,
    /// `max_body_size`: the largest Block1 body reassembled (further bounded by
    /// `mqtt.max_packet_size`); larger ones get `4.13`. Default `4MB`.
    pub max_body_size: ByteSize,
}

impl Default for BlockwiseConfig {
    fn default() -> Self {
        Self {
            max_block_size: 1024,
            max_body_size: ByteSize::from_bytes(4 * ByteSize::MB),
        }
    }
}

/// `gateway.coap.listeners`: the CoAP listeners by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object of listener types, such as udp"
)]
pub struct CoapListeners {
    /// `udp.<name>`: plain UDP listeners.
    pub udp: BTreeMap<String, UdpListener>,
}

impl Default for CoapListeners {
    fn default() -> Self {
        Self {
            udp: BTreeMap::from([("default".to_owned(), UdpListener::default())]),
        }
    }
}

/// `gateway.coap.listeners.udp.<name>`: one UDP listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct UdpListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the UDP address, `IP:PORT` or a port alone. Default `"0.0.0.0:5683"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: the most peers (virtual clients) served at once; datagrams from
    /// more are dropped. Default `1024`, as EMQX.
    pub max_connections: Limit,
}

impl Default for UdpListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_COAP_PORT)),
            max_connections: Limit::Max(1024),
        }
    }
}
