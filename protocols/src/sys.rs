//! `$SYS` topics: the broker describes itself, as EMQX does under `$SYS/brokers/<node>/...`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tributary_mqtt_core::{ByteStr, QoS, TopicName, message::Message, packet::PublishProperties};

use crate::{broker::Broker, stats::Stats};

/// What and how often to publish under `$SYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysTopics {
    /// The node name in the topics (`tributary@127.0.0.1`).
    pub node: String,
    /// Statistics and metrics interval (`sys_topics.sys_msg_interval`; `None` = off).
    pub msg_interval: Option<Duration>,
    /// Uptime and datetime interval (`sys_topics.sys_heartbeat_interval`; `None` = off).
    pub heartbeat_interval: Option<Duration>,
}

/// Publishes the `$SYS` messages until the broker shuts down: version, description, uptime
/// and datetime every heartbeat interval, statistics and metrics every message interval. Only
/// subscribers to `$SYS/...` filters get them: a leading wildcard never matches a `$` topic.
/// None is retained: the retained store, and its `retainer.max_retained_messages`, are the
/// users' alone.
pub async fn run_sys_topics(broker: Broker, config: SysTopics) {
    let started = tokio::time::Instant::now();
    let publisher = SysPublisher {
        broker: broker.clone(),
        prefix: format!("$SYS/brokers/{}", config.node),
    };

    let mut heartbeat = config.heartbeat_interval.map(interval);
    let mut stats = config.msg_interval.map(interval);
    let shutdown = broker.shutdown_token().clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tick(heartbeat.as_mut()) => {
                publisher.publish("/version", env!("CARGO_PKG_VERSION"));
                publisher.publish("/sysdescr", "Tributary, a multi-protocol IoT gateway broker");
                publisher.publish("/uptime", &started.elapsed().as_secs().to_string());
                publisher.publish("/datetime", &datetime());
            }
            () = tick(stats.as_mut()) => publisher.publish_stats(),
        }
    }
}

struct SysPublisher {
    broker: Broker,
    prefix: String,
}

impl SysPublisher {
    fn publish(&self, suffix: &str, payload: &str) {
        let topic = format!("{}{suffix}", self.prefix);
        let Ok(topic) = TopicName::new(ByteStr::from(topic), 0) else {
            tracing::warn!(prefix = %self.prefix, "node.name does not make a valid $SYS topic");
            return;
        };
        let message = Message {
            topic,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            publisher: ByteStr::from_static("$SYS"),
            wire: tributary_mqtt_core::message::WireCache::default(),
        };
        self.broker
            .publish(Arc::new(message), &mut crate::broker::Routing::default());
    }

    fn publish_stats(&self) {
        let broker = &self.broker;
        let stats = broker.stats();
        let counters: [(&str, u64); 11] = [
            ("/stats/connections/count", Stats::get(&stats.connections)),
            ("/stats/sessions/count", broker.session_count() as u64),
            (
                "/stats/subscriptions/count",
                broker.subscription_count() as u64,
            ),
            ("/stats/retained/count", broker.retained_count() as u64),
            (
                "/metrics/messages/received",
                Stats::get(&stats.messages_received),
            ),
            ("/metrics/messages/sent", Stats::get(&stats.messages_sent)),
            (
                "/metrics/messages/dropped/no_subscribers",
                Stats::get(&stats.messages_dropped_no_subscribers),
            ),
            (
                "/metrics/delivery/dropped/queue_full",
                Stats::get(&stats.delivery_dropped_queue_full),
            ),
            (
                "/metrics/delivery/dropped/qos0_msg",
                Stats::get(&stats.delivery_dropped_qos0_offline),
            ),
            (
                "/metrics/delivery/dropped/too_large",
                Stats::get(&stats.delivery_dropped_too_large),
            ),
            (
                "/metrics/delivery/dropped/expired",
                Stats::get(&stats.delivery_dropped_expired),
            ),
        ];
        for (suffix, value) in counters {
            self.publish(suffix, &value.to_string());
        }
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The current UTC time as RFC 3339 (`2026-11-23T10:50:46Z`).
#[allow(clippy::disallowed_methods)] // $SYS datetime is the wall clock by definition.
fn datetime() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC, with the civil-from-days algorithm
/// (Howard Hinnant's), rather than a date crate for one string.
fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_431_046), "2026-11-23T10:50:46Z");
    }
}
