//! `dashboard`: the HTTP API (EMQX's dashboard listener and its login), which serves the
//! management endpoints and the Prometheus metrics.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::de;

/// The port of EMQX's and Tributary's dashboard and HTTP API.
pub const DEFAULT_DASHBOARD_PORT: u16 = 18083;

/// `dashboard`: the HTTP API listener and the credentials of its management endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the dashboard settings"
)]
pub struct DashboardConfig {
    /// `dashboard.listeners`: where the HTTP API is served.
    pub listeners: DashboardListeners,
    /// `dashboard.default_username`: the user name the management endpoints (`/api/v5/clients`)
    /// accept through HTTP Basic authentication. Default `"admin"`, as in EMQX.
    pub default_username: String,
    /// `dashboard.default_password`: its password. Default `"public"`, as in EMQX: change it;
    /// the gateway logs a warning at start while it is the default.
    pub default_password: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            listeners: DashboardListeners::default(),
            default_username: "admin".to_owned(),
            default_password: "public".to_owned(),
        }
    }
}

/// `dashboard.listeners`: the HTTP API's listeners (HTTP only: put a TLS-terminating proxy in
/// front of it to reach it from outside a trusted network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the dashboard listeners"
)]
pub struct DashboardListeners {
    /// `dashboard.listeners.http`: the plain HTTP listener.
    pub http: HttpListener,
}

/// `dashboard.listeners.http`: the plain HTTP listener of the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct HttpListener {
    /// `enable`: serve the HTTP API. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: `IP:PORT`, or a port alone (every IPv4 interface). Default `"0.0.0.0:18083"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
}

impl Default for HttpListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_DASHBOARD_PORT)),
        }
    }
}
