//! `retainer`: the retained-message store.

use std::time::Duration;

use serde::Deserialize;

use crate::de;
use crate::units::ByteSize;

/// `retainer`: retained messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with the retainer settings"
)]
pub struct RetainerConfig {
    /// `enable`: store retained messages and deliver them to new subscribers. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `max_retained_messages`: the most retained messages stored; 0 is unlimited, as in EMQX.
    /// Default `0`.
    #[serde(deserialize_with = "de::int::<_, _, 0, { u64::MAX }>")]
    pub max_retained_messages: u64,
    /// `max_payload_size`: the largest payload stored as retained; larger ones are delivered
    /// but not retained. Default `1MB`.
    pub max_payload_size: ByteSize,
    /// `msg_expiry_interval`: how long a retained message is kept when its publisher set no
    /// Message Expiry Interval; `0s` keeps it until replaced or deleted. Default `0s`.
    #[serde(deserialize_with = "de::duration")]
    pub msg_expiry_interval: Duration,
}

impl Default for RetainerConfig {
    fn default() -> Self {
        Self {
            enable: true,
            max_retained_messages: 0,
            max_payload_size: ByteSize::from_bytes(ByteSize::MB),
            msg_expiry_interval: Duration::ZERO,
        }
    }
}
