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

/// The default LwM2M port (UDP), as EMQX's documentation.
pub const DEFAULT_LWM2M_PORT: u16 = 5783;

/// `gateway`: every protocol gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object of gateways, such as coap or lwm2m"
)]
pub struct GatewayConfig {
    /// `gateway.coap`: the CoAP gateway (`docs/coap.md`).
    pub coap: CoapGatewayConfig,
    /// `gateway.lwm2m`: the LwM2M gateway (`docs/lwm2m.md`).
    pub lwm2m: Lwm2mGatewayConfig,
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

string_enum! {
    /// `gateway.lwm2m.update_msg_publish_condition`: which Updates are published.
    pub enum Lwm2mUpdateCondition {
        /// `always`: every Update.
        Always = "always",
        /// `contains_object_list`: only an Update that carries an object list.
        ContainsObjectList = "contains_object_list",
    }
}

/// `gateway.lwm2m`: the LwM2M gateway, EMQX's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the LwM2M gateway settings"
)]
pub struct Lwm2mGatewayConfig {
    /// `enable`: run the gateway. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `xml_dir`: a directory of OMA object definition files (`*.xml`) loaded on top of the
    /// built-in ones. Default `""`: the built-in objects only.
    pub xml_dir: String,
    /// `mountpoint`: prefixed to every translator topic, with `${endpoint_name}`,
    /// `${clientid}` and `${username}` rendered. Default `"lwm2m/${endpoint_name}/"`.
    pub mountpoint: String,
    /// `lifetime_min`: a shorter registration lifetime is raised to it. Default `15s`.
    #[serde(deserialize_with = "de::duration")]
    pub lifetime_min: Duration,
    /// `lifetime_max`: a longer registration lifetime is refused with `4.00`; also the
    /// lifetime of `lt=0`. Default `86400s`.
    #[serde(deserialize_with = "de::duration")]
    pub lifetime_max: Duration,
    /// `qmode_time_window`: how long after an uplink a queue-mode device is taken to be
    /// awake. Default `22s`.
    #[serde(deserialize_with = "de::duration")]
    pub qmode_time_window: Duration,
    /// `auto_observe`: observe the registered objects after Register. Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub auto_observe: bool,
    /// `update_msg_publish_condition`: `always` or `contains_object_list`. Default
    /// `contains_object_list`, as EMQX 5.8.9 (which did not implement it).
    pub update_msg_publish_condition: Lwm2mUpdateCondition,
    /// `translators`: the MQTT topics, appended to the mountpoint.
    pub translators: Lwm2mTranslators,
    /// `listeners.udp.<name>`: UDP listeners. Default: `default` on `0.0.0.0:5783`.
    pub listeners: Lwm2mListeners,
}

impl Default for Lwm2mGatewayConfig {
    fn default() -> Self {
        Self {
            enable: true,
            xml_dir: String::new(),
            mountpoint: "lwm2m/${endpoint_name}/".to_owned(),
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86_400),
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_msg_publish_condition: Lwm2mUpdateCondition::ContainsObjectList,
            translators: Lwm2mTranslators::default(),
            listeners: Lwm2mListeners::default(),
        }
    }
}

/// `gateway.lwm2m.translators.<name>`: one MQTT topic of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with a topic and a qos")]
pub struct Lwm2mTranslator {
    /// `topic`: appended to the rendered mountpoint with no separator.
    pub topic: String,
    /// `qos`: 0, 1 or 2. Default `0`.
    #[serde(default, deserialize_with = "de::int::<_, _, 0, 2>")]
    pub qos: u8,
}

impl Lwm2mTranslator {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            qos: 0,
        }
    }
}

/// `gateway.lwm2m.translators`: the five topics, EMQX's documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with command, response, notify, register and update"
)]
pub struct Lwm2mTranslators {
    /// `command`: the downlink command filter. Default `dn/#`.
    pub command: Lwm2mTranslator,
    /// `response`: command responses. Default `up/resp`.
    pub response: Lwm2mTranslator,
    /// `notify`: notifications. Default `up/notify`.
    pub notify: Lwm2mTranslator,
    /// `register`: register events. Default `up/resp`.
    pub register: Lwm2mTranslator,
    /// `update`: update events. Default `up/update`.
    pub update: Lwm2mTranslator,
}

impl Default for Lwm2mTranslators {
    fn default() -> Self {
        Self {
            command: Lwm2mTranslator::new("dn/#"),
            response: Lwm2mTranslator::new("up/resp"),
            notify: Lwm2mTranslator::new("up/notify"),
            register: Lwm2mTranslator::new("up/resp"),
            update: Lwm2mTranslator::new("up/update"),
        }
    }
}

/// `gateway.lwm2m.listeners`: the LwM2M listeners by type and name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object of listener types, such as udp"
)]
pub struct Lwm2mListeners {
    /// `udp.<name>`: plain UDP listeners.
    pub udp: BTreeMap<String, Lwm2mUdpListener>,
}

impl Default for Lwm2mListeners {
    fn default() -> Self {
        Self {
            udp: BTreeMap::from([("default".to_owned(), Lwm2mUdpListener::default())]),
        }
    }
}

/// `gateway.lwm2m.listeners.udp.<name>`: one UDP listener (its own type, for its own default
/// port).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct Lwm2mUdpListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the UDP address, `IP:PORT` or a port alone. Default `"0.0.0.0:5783"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: the most registered devices at once; a Register beyond it gets
    /// `5.03`. Default `1024`, as EMQX.
    pub max_connections: Limit,
}

impl Default for Lwm2mUdpListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_LWM2M_PORT)),
            max_connections: Limit::Max(1024),
        }
    }
}
