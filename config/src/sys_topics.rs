//! `sys_topics`: the broker's own `$SYS/...` messages.

use std::time::Duration;

use serde::Deserialize;

use crate::de;

/// `sys_topics`: how often the broker publishes its `$SYS` messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with the sys_topics settings"
)]
pub struct SysTopicsConfig {
    /// `sys_msg_interval`: how often statistics (`$SYS/brokers/...`) are published; `disabled`
    /// or `0s` (`None`) turns them off. Default `1m`.
    #[serde(deserialize_with = "de::duration_or_disabled")]
    pub sys_msg_interval: Option<Duration>,
    /// `sys_heartbeat_interval`: how often the uptime and datetime heartbeat is published;
    /// `disabled` or `0s` (`None`) turns it off. Default `30s`.
    #[serde(deserialize_with = "de::duration_or_disabled")]
    pub sys_heartbeat_interval: Option<Duration>,
}

impl Default for SysTopicsConfig {
    fn default() -> Self {
        Self {
            sys_msg_interval: Some(Duration::from_secs(60)),
            sys_heartbeat_interval: Some(Duration::from_secs(30)),
        }
    }
}
