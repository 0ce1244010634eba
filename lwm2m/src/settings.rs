//! [`Lwm2mSettings`]: the `gateway.lwm2m` keys this crate uses, as plain values.

use std::time::Duration;

/// When an Update is published to the update topic (`update_msg_publish_condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePublishCondition {
    /// Every Update is published.
    Always,
    /// Only an Update that carries an object list (a payload) is published. EMQX 5.8.9 has this
    /// as its default but does not implement it (GATEWAYS.md defect 6); Tributary does.
    #[default]
    ContainsObjectList,
}

/// One translator: a topic (appended to the mountpoint) and a QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translator {
    /// The topic, concatenated to the rendered mountpoint with no separator.
    pub topic: String,
    /// QoS 0, 1 or 2.
    pub qos: u8,
}

impl Translator {
    fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            qos: 0,
        }
    }
}

/// The five translators (`translators.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translators {
    /// Downlink commands (subscribed at registration).
    pub command: Translator,
    /// Command responses and transport events.
    pub response: Translator,
    /// Notifications.
    pub notify: Translator,
    /// Register events.
    pub register: Translator,
    /// Update events.
    pub update: Translator,
}

/// The LwM2M gateway settings (EMQX's `gateway.lwm2m` keys plus Tributary's limits).
///
/// [`Lwm2mSettings::default`] holds the documented defaults (GATEWAYS.md §2). `xml_dir` is not
/// here: the gateway loads it into an [`crate::ObjectRegistry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lwm2mSettings {
    /// Shortest lifetime accepted; a shorter `lt` is raised to it (`lifetime_min`, 15s).
    pub lifetime_min: Duration,
    /// Longest lifetime accepted, and the lifetime when `lt` is 0 (`lifetime_max`, 86400s).
    /// A longer `lt` is refused with 4.00 (RELIABILITY.md item 38).
    pub lifetime_max: Duration,
    /// How long after its last uplink a queue-mode device is taken to be awake
    /// (`qmode_time_window`, 22s).
    pub qmode_time_window: Duration,
    /// Whether to observe the registered objects after Register (`auto_observe`, false).
    pub auto_observe: bool,
    /// When Updates are published (`update_msg_publish_condition`).
    pub update_msg_publish_condition: UpdatePublishCondition,
    /// Mountpoint with `${endpoint_name}`, `${clientid}`, `${username}` placeholders.
    pub mountpoint: String,
    /// The translators.
    pub translators: Translators,
    /// Most commands waiting per device (EMQX: unbounded, defect 9); a command beyond it is
    /// answered with `5.03 service_unavailable`.
    pub max_queued_commands: usize,
    /// How long a command may wait in the queue before it is answered with
    /// `5.04 gateway_timeout` (EMQX's expiry never fires, defect 8).
    pub command_ttl: Duration,
    /// Most links in a Register/Update payload.
    pub max_object_links: usize,
    /// Largest Register/Update payload, in bytes.
    pub max_register_payload: usize,
}

impl Default for Lwm2mSettings {
    fn default() -> Self {
        Self {
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86_400),
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_msg_publish_condition: UpdatePublishCondition::ContainsObjectList,
            mountpoint: "lwm2m/${endpoint_name}/".to_owned(),
            translators: Translators {
                command: Translator::new("dn/#"),
                response: Translator::new("up/resp"),
                notify: Translator::new("up/notify"),
                register: Translator::new("up/resp"),
                update: Translator::new("up/update"),
            },
            max_queued_commands: 100,
            command_ttl: Duration::from_secs(300),
            max_object_links: 512,
            max_register_payload: 16 * 1024,
        }
    }
}

/// Renders `${endpoint_name}`, `${clientid}` and `${username}` in a mountpoint.
pub fn render_mountpoint(
    mountpoint: &str,
    endpoint: &str,
    clientid: &str,
    username: &str,
) -> String {
    mountpoint
        .replace("${endpoint_name}", endpoint)
        .replace("${clientid}", clientid)
        .replace("${username}", username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rendering() {
        let s = Lwm2mSettings::default();
        assert_eq!(s.lifetime_max, Duration::from_secs(86_400));
        assert_eq!(s.translators.update.topic, "up/update");
        assert_eq!(
            s.update_msg_publish_condition,
            UpdatePublishCondition::ContainsObjectList
        );
        assert_eq!(
            render_mountpoint(&s.mountpoint, "urn:imei:123", "c", "u"),
            "lwm2m/urn:imei:123/"
        );
        assert_eq!(
            render_mountpoint("lwm2m/${username}", "e", "c", "u"),
            "lwm2m/u"
        );
        assert_eq!(render_mountpoint("${clientid}/", "e", "c", "u"), "c/");
    }
}
