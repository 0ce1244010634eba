//! `force_shutdown`: closing a connection that holds too much.

use serde::Deserialize;

use crate::de;

/// `force_shutdown`: when a connection's backlog forces it closed (EMQX). Accepted and checked,
/// but not applied: a Tributary mailbox is the session queue, bounded by `mqtt.max_mqueue_len`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with the force_shutdown settings"
)]
pub struct ForceShutdownConfig {
    /// `enable`: close a connection whose mailbox passes `max_mailbox_size` (reason
    /// `force_shutdown`). Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `max_mailbox_size`: the most messages waiting in one connection's mailbox, at least 1.
    /// Default `1000`.
    #[serde(deserialize_with = "de::int::<_, _, 1, 4_294_967_295>")]
    pub max_mailbox_size: u32,
}

impl Default for ForceShutdownConfig {
    fn default() -> Self {
        Self {
            enable: true,
            max_mailbox_size: 1000,
        }
    }
}
