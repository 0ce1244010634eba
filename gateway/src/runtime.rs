//! Configuration to the runtime structs each crate takes by value.

use std::sync::Arc;

use tributary_coap::{CoapConfig, ExchangeConfig, NotifyType, QosMapping};
use tributary_config::{CoapNotifyType, CoapQos, Config, Lwm2mTranslator, Lwm2mUpdateCondition};
use tributary_lwm2m::{
    Lwm2mConfig, Lwm2mSettings, Translator, Translators, UpdatePublishCondition,
};
use tributary_mqtt_core::{
    QoS, ShareStrategy,
    packet::{RetainHandling, SubscriptionOptions},
    settings::MqttSettings,
};
use tributary_protocols::{AutoSubscribe, BrokerConfig};

/// The broker's runtime configuration from the config file. The config crate has already
/// validated every range, so the conversions below only widen or pick enum variants.
pub fn broker_config(config: &Config) -> BrokerConfig {
    let mqtt = &config.mqtt;
    let settings = MqttSettings {
        max_packet_size: u32::try_from(mqtt.max_packet_size.bytes()).unwrap_or(u32::MAX),
        max_clientid_len: usize::from(mqtt.max_clientid_len),
        max_topic_levels: usize::from(mqtt.max_topic_levels),
        max_topic_alias: mqtt.max_topic_alias,
        max_qos_allowed: QoS::from_u8(mqtt.max_qos_allowed).unwrap_or(QoS::ExactlyOnce),
        retain_available: mqtt.retain_available,
        wildcard_subscription: mqtt.wildcard_subscription,
        shared_subscription: mqtt.shared_subscription,
        max_subscriptions: mqtt
            .max_subscriptions
            .max()
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX)),
        max_inflight: mqtt.max_inflight,
        max_awaiting_rel: usize::from(mqtt.max_awaiting_rel),
        await_rel_timeout: mqtt.await_rel_timeout,
        retry_interval: mqtt.retry_interval.duration(),
        session_expiry_interval: mqtt.session_expiry_interval,
        idle_timeout: mqtt.idle_timeout,
        keepalive_multiplier: mqtt.keepalive_multiplier,
        server_keepalive: mqtt.server_keepalive,
        max_keepalive: mqtt.max_keepalive,
        response_information: Some(mqtt.response_information.clone()).filter(|r| !r.is_empty()),
        max_user_properties: usize::from(mqtt.max_user_properties),
        upgrade_qos: mqtt.upgrade_qos,
        ignore_loop_deliver: mqtt.ignore_loop_deliver,
    };
    let auto_subscribe = config
        .auto_subscribe
        .topics
        .iter()
        .map(|t| AutoSubscribe {
            topic: t.topic.clone(),
            options: SubscriptionOptions {
                qos: QoS::from_u8(t.qos).unwrap_or_default(),
                no_local: t.nl != 0,
                retain_as_published: t.rap != 0,
                retain_handling: match t.rh {
                    1 => RetainHandling::SendIfNew,
                    2 => RetainHandling::DoNotSend,
                    _ => RetainHandling::SendAtSubscribe,
                },
            },
        })
        .collect();
    BrokerConfig {
        mqtt: Arc::new(settings),
        max_mqueue_len: usize::try_from(mqtt.max_mqueue_len).unwrap_or(usize::MAX),
        mqueue_store_qos0: mqtt.mqueue_store_qos0,
        shared_subscription_strategy: mqtt
            .shared_subscription_strategy
            .name()
            .parse()
            .unwrap_or(ShareStrategy::RoundRobin),
        retainer_enable: config.retainer.enable,
        max_retained_messages: usize::try_from(config.retainer.max_retained_messages)
            .unwrap_or(usize::MAX),
        max_retained_payload_size: usize::try_from(config.retainer.max_payload_size.bytes())
            .unwrap_or(usize::MAX),
        retained_msg_expiry: config.retainer.msg_expiry_interval,
        auto_subscribe,
    }
}

/// The CoAP gateway's runtime settings for its UDP listener `name`.
pub(crate) fn coap_config(config: &Config, name: &str, max_connections: u64) -> CoapConfig {
    let coap = &config.gateway.coap;
    let qos = |q: CoapQos| match q {
        CoapQos::Coap => QosMapping::Coap,
        CoapQos::Qos0 => QosMapping::Fixed(QoS::AtMostOnce),
        CoapQos::Qos1 => QosMapping::Fixed(QoS::AtLeastOnce),
        CoapQos::Qos2 => QosMapping::Fixed(QoS::ExactlyOnce),
    };
    // A Block1 body becomes one MQTT message: never larger than the broker accepts.
    let max_body = coap
        .blockwise
        .max_body_size
        .bytes()
        .min(config.mqtt.max_packet_size.bytes());
    // 16..=1024, a power of two (checked by the config crate): exponent 0..=6.
    let block_szx = u8::try_from(coap.blockwise.max_block_size.max(16).trailing_zeros())
        .unwrap_or(10)
        .saturating_sub(4)
        .min(6);
    CoapConfig {
        mountpoint: coap.mountpoint.clone(),
        connection_required: coap.connection_required,
        heartbeat: coap.heartbeat,
        idle_timeout: coap.idle_timeout,
        notify_type: match coap.notify_type {
            CoapNotifyType::Non => NotifyType::Non,
            CoapNotifyType::Con => NotifyType::Con,
            CoapNotifyType::Qos => NotifyType::Qos,
        },
        subscribe_qos: qos(coap.subscribe_qos),
        publish_qos: qos(coap.publish_qos),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        max_observations: usize::from(coap.max_observations),
        listener: Arc::from(format!("udp:{name}")),
        exchange: ExchangeConfig {
            max_body_size: usize::try_from(max_body).unwrap_or(usize::MAX),
            block_szx,
            unverified_szx: block_szx.min(2),
            ..ExchangeConfig::default()
        },
        ..CoapConfig::default()
    }
}

/// The runtime settings of the LwM2M listener `name` (`gateway.lwm2m`).
pub(crate) fn lwm2m_config(config: &Config, name: &str, max_connections: u64) -> Lwm2mConfig {
    let lwm2m = &config.gateway.lwm2m;
    let translator = |t: &Lwm2mTranslator| Translator {
        topic: t.topic.clone(),
        qos: t.qos,
    };
    let t = &lwm2m.translators;
    Lwm2mConfig {
        settings: Lwm2mSettings {
            lifetime_min: lwm2m.lifetime_min,
            lifetime_max: lwm2m.lifetime_max,
            qmode_time_window: lwm2m.qmode_time_window,
            auto_observe: lwm2m.auto_observe,
            update_msg_publish_condition: match lwm2m.update_msg_publish_condition {
                Lwm2mUpdateCondition::Always => UpdatePublishCondition::Always,
                Lwm2mUpdateCondition::ContainsObjectList => {
                    UpdatePublishCondition::ContainsObjectList
                }
            },
            mountpoint: lwm2m.mountpoint.clone(),
            translators: Translators {
                command: translator(&t.command),
                response: translator(&t.response),
                notify: translator(&t.notify),
                register: translator(&t.register),
                update: translator(&t.update),
            },
            ..Lwm2mSettings::default()
        },
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        listener: Arc::from(format!("udp:{name}")),
        ..Lwm2mConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_settings() {
        let config = broker_config(&Config::default());
        assert_eq!(*config.mqtt, MqttSettings::default());
        assert_eq!(config.max_mqueue_len, 1000);
        assert!(config.mqueue_store_qos0);
        assert_eq!(
            config.shared_subscription_strategy,
            ShareStrategy::RoundRobin
        );
    }

    #[test]
    fn lwm2m_defaults_are_the_crate_defaults() {
        let lwm2m = lwm2m_config(&Config::default(), "default", 1024);
        assert_eq!(lwm2m.settings, Lwm2mSettings::default());
        assert_eq!(lwm2m.max_connections, 1024);
        assert_eq!(&*lwm2m.listener, "udp:default");
    }

    #[test]
    fn coap_defaults() {
        let coap = coap_config(&Config::default(), "default", 1024);
        assert_eq!(coap.exchange.block_szx, 6);
        assert_eq!(
            coap.exchange.max_body_size,
            1024 * 1024,
            "bounded by max_packet_size"
        );
        assert_eq!(coap.notify_type, NotifyType::Qos);
        assert_eq!(coap.publish_qos, QosMapping::Coap);
        assert_eq!(&*coap.listener, "udp:default");
    }
}
