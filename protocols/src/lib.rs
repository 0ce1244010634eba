//! The runtime seam every protocol adapter uses.
//!
//! - [`Broker`]: a cheap-to-clone handle on the shared state: the session registry (with
//!   takeover), the route table, the retained store and the hooks. Connection tasks call it
//!   directly: a publish is routed by the publisher's own task into each subscriber's bounded
//!   [`Mailbox`], so there is no central router task and routing runs on every core.
//! - [`serve_mqtt`]: the one MQTT connection driver, a small `select!` loop around the sans-IO
//!   `Connection` of `tributary-mqtt-core`, fed by any [`ByteStream`]: TCP, TLS, WebSocket and
//!   QUIC streams alike. A transport hands over the stream and a [`ConnectionInfo`] (who is on
//!   the other end, through which listener, with which verified certificate) and nothing else.
//! - [`Hooks`]: authentication and authorization, allow-all by default.
//! - [`VirtualClient`]: a session driven by a gateway that does not speak MQTT (CoAP, LwM2M
//!   devices): the same registry, hooks, route table and mailbox as an MQTT client.
//! - [`run_sys_topics`]: the broker's own `$SYS/brokers/<node>/...` messages.
//!
//! What it does not do: bind sockets, read files or the environment, or know any wire format
//! but through `tributary-mqtt-core`.

mod broker;
mod driver;
mod hooks;
mod mailbox;
mod peer_cert;
mod registry;
mod stats;
mod sys;
mod virtual_client;

pub use broker::{AutoSubscribe, Broker, BrokerConfig};
pub use driver::{ByteStream, ConnectionInfo, serve_mqtt};
pub use hooks::{AllowAll, AuthRequest, BoxFuture, Hooks};
pub use mailbox::Mailbox;
pub use peer_cert::{CertField, PeerCert};
pub use registry::{ClientInfo, Protocol, Transport};
pub use stats::Stats;
pub use sys::{SysTopics, run_sys_topics};
pub use virtual_client::{PublishError, VirtualClient, VirtualConnect, Wake};
