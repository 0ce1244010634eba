//! `auto_subscribe`: subscriptions made for every client when it connects, in EMQX's shape.

use serde::Deserialize;

use crate::de;

/// `auto_subscribe`: subscriptions the broker makes on a client's behalf at connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with the auto_subscribe settings"
)]
pub struct AutoSubscribeConfig {
    /// `topics`: the subscriptions, in order. Default `[]`.
    pub topics: Vec<AutoSubscribeTopic>,
}

/// One entry of `auto_subscribe.topics`:
/// `{ topic = "c/${clientid}", qos = 0, rh = 0, rap = 0, nl = 0 }`. `topic` is required; the
/// other fields default to 0.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object such as { topic = \"c/${clientid}\", qos = 0 }"
)]
pub struct AutoSubscribeTopic {
    /// `topic`: the topic filter. `${clientid}`, `${username}`, `${host}` and `${port}` are
    /// replaced per client, as in EMQX; write it quoted so HOCON does not substitute it. It is
    /// validated as a topic filter by the broker, not here (this crate does not know MQTT);
    /// here it must only be non-empty.
    pub topic: String,
    /// `qos`: the subscription's maximum QoS, 0 to 2. Default `0`.
    #[serde(default, deserialize_with = "de::int::<_, _, 0, 2>")]
    pub qos: u8,
    /// `rh`: v5 Retain Handling, 0 (send retained at subscribe), 1 (only if new) or 2 (never).
    /// Default `0`.
    #[serde(default, deserialize_with = "de::int::<_, _, 0, 2>")]
    pub rh: u8,
    /// `rap`: v5 Retain As Published, 0 or 1. Default `0`.
    #[serde(default, deserialize_with = "de::int::<_, _, 0, 1>")]
    pub rap: u8,
    /// `nl`: v5 No Local, 0 or 1. Default `0`.
    #[serde(default, deserialize_with = "de::int::<_, _, 0, 1>")]
    pub nl: u8,
}
