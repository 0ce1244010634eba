//! `listeners`: where the broker accepts connections, by type and then by name, as in EMQX
//! (`listeners.tcp.default.bind = "0.0.0.0:1883"`).
//!
//! Only plain TCP exists today. Every listener type shares the fields of [`ListenerCommon`];
//! a type with extra settings (EMQX's `ssl_options` for `ssl`, `websocket` for `ws`) gets its own
//! struct that holds those fields beside its options block and implements the trait, and a map
//! beside [`ListenersConfig::tcp`]. A struct of its own per type, rather than one flattened
//! struct, keeps `deny_unknown_fields` working (serde cannot combine it with `flatten`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::de;
use crate::units::Limit;

/// The port of EMQX's and Tributary's default MQTT-over-TCP listener.
pub const DEFAULT_MQTT_PORT: u16 = 1883;

/// `listeners`: every listener, by type, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object of listener types, such as tcp"
)]
pub struct ListenersConfig {
    /// `listeners.tcp.<name>`: MQTT over plain TCP. The defaults hold one listener named
    /// `default` on `0.0.0.0:1883`; a file or environment variable adds more by naming them
    /// (`listeners.tcp.internal.bind = "127.0.0.1:11883"`). Turn one off with `enable = false`.
    pub tcp: BTreeMap<String, TcpListener>,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        Self {
            tcp: BTreeMap::from([("default".to_owned(), TcpListener::default())]),
        }
    }
}

/// The settings every listener type has, whatever its transport.
pub trait ListenerCommon {
    /// Whether the listener is started.
    fn enable(&self) -> bool;
    /// The address it binds.
    fn bind(&self) -> SocketAddr;
    /// The most connections it holds at once.
    fn max_connections(&self) -> Limit;
}

/// `listeners.tcp.<name>`: one MQTT-over-TCP listener. A listener given only some fields (for
/// example a new one added through the environment with just `bind`) takes the defaults below
/// for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct TcpListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the address to listen on, `IP:PORT` (`"0.0.0.0:1883"`, `"[::]:1883"`), or a port
    /// alone (`1883`), which binds every IPv4 interface as EMQX does. Port 0 picks a free port
    /// (tests use it). Default `"0.0.0.0:1883"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: the most connections this listener holds at once; more are refused.
    /// `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
}

impl Default for TcpListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_MQTT_PORT)),
            max_connections: Limit::Infinity,
        }
    }
}

impl ListenerCommon for TcpListener {
    fn enable(&self) -> bool {
        self.enable
    }

    fn bind(&self) -> SocketAddr {
        self.bind
    }

    fn max_connections(&self) -> Limit {
        self.max_connections
    }
}
