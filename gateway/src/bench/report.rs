//! What the load tool tells its user: one line a second on stderr while it runs, and a JSON
//! summary on stdout at the end (the one thing on stdout, so scripts can parse it).

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{
    roles::Clock,
    stats::{Snapshot, Stats},
};

/// Prints a live line every second until `stop`.
pub(crate) async fn live(stats: Arc<Stats>, clock: Clock, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut previous = Counts::read(&stats);
    let mut previous_latency = stats.latency.snapshot();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let counts = Counts::read(&stats);
        let latency = stats.latency.snapshot();
        let window = latency.since(&previous_latency);
        let mut line = format!(
            "tributary bench: {:>4}s conn {} fail {} | pub {}/s | recv {}/s",
            clock.now_ns() / 1_000_000_000,
            counts.connected,
            counts.failed,
            counts.published - previous.published,
            counts.delivered - previous.delivered,
        );
        if window.count() > 0 {
            line.push_str(&format!(
                " | lat p50 {} p99 {} max {}",
                ms(window.percentile(50.0)),
                ms(window.percentile(99.0)),
                ms(Some(window.max())),
            ));
        }
        eprintln!("{line}");
        previous = counts;
        previous_latency = latency;
    }
}

/// Milliseconds with three decimals, for the live line.
fn ms(nanos: Option<u64>) -> String {
    nanos.map_or_else(|| "-".into(), |n| format!("{:.3}ms", millis(n)))
}

#[allow(clippy::cast_precision_loss)]
fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

struct Counts {
    connected: u64,
    failed: u64,
    published: u64,
    delivered: u64,
}

impl Counts {
    fn read(stats: &Stats) -> Self {
        Self {
            connected: Stats::get(&stats.connected),
            failed: Stats::get(&stats.connect_failed),
            published: Stats::get(&stats.published),
            delivered: Stats::get(&stats.delivered),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `conn`, `pub` or `sub`.
    pub mode: &'static str,
    /// Wall time of the whole run, connects and drain included.
    pub elapsed: Duration,
    /// Clients started (publishers and subscribers).
    pub clients: u64,
    /// Clients that connected (and subscribed).
    pub connected: u64,
    /// Clients that failed to connect (or subscribe).
    pub connect_failed: u64,
    /// Connections that dropped after they were up.
    pub disconnected: u64,
    /// Successful connects per second, from the first attempt to the last CONNACK.
    pub connect_rate: f64,
    /// PUBLISH packets sent.
    pub published: u64,
    /// Published per second, over the publishing phase.
    pub publish_rate: f64,
    /// PUBACKs received by QoS 1 publishers.
    pub acked: u64,
    /// PUBLISH packets received by subscribers.
    pub delivered: u64,
    /// Delivered per second, from the start of publishing to the last delivery.
    pub deliver_rate: f64,
    /// Deliveries expected (publishers and subscribers in one process only).
    pub expected: Option<u64>,
    /// Expected deliveries that never arrived.
    pub lost: Option<u64>,
    /// Latency of deliveries (publishers and subscribers in one process only).
    pub latency: Option<Latency>,
}

/// Latency percentiles in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of a histogram snapshot; `None` without samples.
    pub(crate) fn of(snapshot: &Snapshot) -> Option<Self> {
        Some(Self {
            count: snapshot.count(),
            p50: snapshot.percentile(50.0)?,
            p90: snapshot.percentile(90.0)?,
            p99: snapshot.percentile(99.0)?,
            max: snapshot.max(),
        })
    }
}

/// Rounds to three decimals so the JSON stays readable.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl Summary {
    /// The summary as JSON: rates per second, latency in milliseconds.
    pub fn to_json(&self) -> Value {
        json!({
            "mode": self.mode,
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "clients": self.clients,
            "connected": self.connected,
            "connect_failed": self.connect_failed,
            "disconnected": self.disconnected,
            "connect_rate": round3(self.connect_rate),
            "published": self.published,
            "publish_rate": round3(self.publish_rate),
            "acked": self.acked,
            "delivered": self.delivered,
            "deliver_rate": round3(self.deliver_rate),
            "expected": self.expected,
            "lost": self.lost,
            "latency_ms": self.latency.map(|l| json!({
                "count": l.count,
                "p50": round3(millis(l.p50)),
                "p90": round3(millis(l.p90)),
                "p99": round3(millis(l.p99)),
                "max": round3(millis(l.max)),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_has_the_documented_keys() {
        let summary = Summary {
            mode: "pub",
            elapsed: Duration::from_millis(1500),
            clients: 2,
            connected: 2,
            connect_failed: 0,
            disconnected: 0,
            connect_rate: 1000.0,
            published: 10,
            publish_rate: 10.0,
            acked: 0,
            delivered: 10,
            deliver_rate: 10.0,
            expected: Some(10),
            lost: Some(0),
            latency: Some(Latency {
                count: 10,
                p50: 1_500_000,
                p90: 2_000_000,
                p99: 2_000_000,
                max: 2_500_000,
            }),
        };
        let json = summary.to_json();
        assert_eq!(json["lost"], 0);
        assert_eq!(json["elapsed_s"], 1.5);
        assert_eq!(json["latency_ms"]["p50"], 1.5);
        assert_eq!(json["latency_ms"]["max"], 2.5);
    }
}
