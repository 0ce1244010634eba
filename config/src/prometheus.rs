//! `prometheus`: the Prometheus endpoint of the HTTP API (`GET /api/v5/prometheus/stats`).

use serde::Deserialize;

use crate::de;

/// `prometheus`: who may read the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the prometheus settings"
)]
pub struct PrometheusConfig {
    /// `prometheus.enable_basic_auth`: require the dashboard credentials (HTTP Basic) on
    /// `/api/v5/prometheus/stats` too. Default `false`, as in EMQX, so that a Prometheus server
    /// scrapes it without them.
    #[serde(deserialize_with = "de::boolean")]
    pub enable_basic_auth: bool,
}
