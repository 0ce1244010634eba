//! The gateway's metrics, rendered in the Prometheus text format for
//! `GET /api/v5/prometheus/stats`.
//!
//! # Where the numbers live, and why not in a global recorder
//!
//! The hot counters stay where they are counted: the broker's [`Stats`] (relaxed atomics that
//! the connection tasks already bump, one `fetch_add` per message, no lock, no allocation, no
//! registry lookup) and one [`ListenerMetrics`] per listener, owned by that listener's accept
//! loop (one `fetch_add` per accept, handshake failure or close). Each [`Gateway`] owns its
//! own [`PrometheusRecorder`]; at scrape time, [`Metrics::render`] copies the atomics into it
//! (`Counter::absolute`, `Gauge::set`) and lets `metrics-exporter-prometheus` format the text.
//!
//! Two other designs were turned down. A global recorder fed through the `metrics` macros
//! would merge the numbers of every gateway in a process (tests run several; the architecture
//! allows no globals), and each `counter!` on the message path costs a registry lookup where a
//! relaxed `fetch_add` suffices. `metrics::with_local_recorder` scopes a recorder to one
//! thread's call stack, which does not follow a connection task across the runtime's workers.
//!
//! The binary, which runs one gateway per process, also installs that gateway's recorder as the
//! global one ([`Gateway::install_global_recorder`]), so anything a library crate emits through
//! the `metrics` facade appears in the same scrape.
//!
//! [`Gateway`]: crate::Gateway
//! [`Gateway::install_global_recorder`]: crate::Gateway::install_global_recorder

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tributary_protocols::{Broker, Stats};

/// Where the gauges and counters say they come from; the Prometheus recorder ignores it.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Why a connection ended before MQTT started on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    /// The TLS handshake failed (QUIC's included: it is TLS 1.3).
    Tls,
    /// The WebSocket upgrade was refused or broke.
    WebSocket,
    /// The handshake did not finish within the listener's limit.
    Timeout,
}

impl HandshakeFailure {
    fn label(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::WebSocket => "websocket",
            Self::Timeout => "timeout",
        }
    }

    /// The failures a listener of type `kind` can have: a plain TCP listener has no
    /// handshake, so it has no such series.
    fn possible(kind: &str) -> &'static [Self] {
        match kind {
            "ssl" | "quic" => &[Self::Tls, Self::Timeout],
            "ws" => &[Self::WebSocket, Self::Timeout],
            "wss" => &[Self::Tls, Self::WebSocket, Self::Timeout],
            _ => &[],
        }
    }
}

/// One listener's counters, owned by its accept loop. Relaxed atomics: statistics only, except
/// `open`, which the accept loop also reads to enforce `max_connections` (an approximate read
/// there is fine: the limit is a load shedder, not an invariant).
#[derive(Debug, Default)]
pub(crate) struct ListenerMetrics {
    /// Connections taken in (under `max_connections`).
    pub(crate) accepted: AtomicU64,
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Connections refused because the listener was at `max_connections`.
    pub(crate) refused_max_connections: AtomicU64,
    handshake_tls: AtomicU64,
    handshake_websocket: AtomicU64,
    handshake_timeout: AtomicU64,
}

impl ListenerMetrics {
    /// Counts a connection that ended before MQTT started on it.
    pub(crate) fn handshake_failed(&self, why: HandshakeFailure) {
        self.handshake_counter(why).fetch_add(1, Relaxed);
    }

    fn handshake_counter(&self, why: HandshakeFailure) -> &AtomicU64 {
        match why {
            HandshakeFailure::Tls => &self.handshake_tls,
            HandshakeFailure::WebSocket => &self.handshake_websocket,
            HandshakeFailure::Timeout => &self.handshake_timeout,
        }
    }
}

/// A listener as the metrics see it.
#[derive(Debug)]
pub(crate) struct ListenerEntry {
    /// `tcp:default`.
    pub(crate) label: Arc<str>,
    /// `tcp`, `ssl`, `ws`, `wss` or `quic`.
    pub(crate) transport: &'static str,
    pub(crate) counters: Arc<ListenerMetrics>,
}

impl ListenerEntry {
    /// The entry of listener `kind`:`name`, reading `counters`.
    pub(crate) fn new(kind: &'static str, name: &str, counters: &Arc<ListenerMetrics>) -> Self {
        Self {
            label: Arc::from(format!("{kind}:{name}")),
            transport: kind,
            counters: Arc::clone(counters),
        }
    }
}

/// The series of the clients gauge: `(listener, protocol, transport)`.
type ClientSeries = (Arc<str>, &'static str, &'static str);

/// A gateway's metrics: its recorder and what it reads at scrape time.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    broker: Broker,
    listeners: Vec<ListenerEntry>,
    /// The client series rendered so far: one whose clients all left is set to 0, not left at
    /// its last value. Locked only by a scrape.
    client_series: Mutex<BTreeSet<ClientSeries>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `broker` and `listeners`, with a recorder of their own.
    pub(crate) fn new(broker: Broker, listeners: Vec<ListenerEntry>) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        for (name, help) in DESCRIPTIONS {
            recorder.describe_gauge(
                KeyName::from(*name),
                None::<Unit>,
                SharedString::from(*help),
            );
        }
        Self {
            recorder: Arc::new(recorder),
            broker,
            listeners,
            client_series: Mutex::new(BTreeSet::new()),
        }
    }

    /// The recorder, to install as the process's global one (the binary does).
    pub fn recorder(&self) -> Arc<PrometheusRecorder> {
        Arc::clone(&self.recorder)
    }

    /// Every series, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.sync_listeners();
        self.sync_broker();
        self.sync_clients();
        self.recorder.handle().render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .absolute(value);
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        // Counts far below 2^53, so exact as f64 (gauges are f64 in the `metrics` API).
        let value = value as f64;
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    fn sync_listeners(&self) {
        for entry in &self.listeners {
            let labels = || {
                vec![
                    Label::new("listener", Arc::clone(&entry.label)),
                    Label::new("transport", entry.transport),
                ]
            };
            let c = &entry.counters;
            self.counter(
                "tributary_listener_connections_accepted",
                labels(),
                c.accepted.load(Relaxed),
            );
            self.gauge(
                "tributary_listener_connections_count",
                labels(),
                c.open.load(Relaxed),
            );
            let mut refused = labels();
            refused.push(Label::new("reason", "max_connections"));
            self.counter(
                "tributary_listener_connections_refused",
                refused,
                c.refused_max_connections.load(Relaxed),
            );
            for why in HandshakeFailure::possible(entry.transport) {
                let mut failed = labels();
                failed.push(Label::new("reason", why.label()));
                self.counter(
                    "tributary_listener_handshake_failures",
                    failed,
                    c.handshake_counter(*why).load(Relaxed),
                );
            }
        }
    }

    fn sync_broker(&self) {
        let broker = &self.broker;
        let stats = broker.stats();
        let get = Stats::get;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.gauge(
            "tributary_connections_count",
            vec![],
            get(&stats.connections),
        );
        self.gauge(
            "tributary_sessions_count",
            vec![],
            count(broker.session_count()),
        );
        self.gauge(
            "tributary_subscriptions_count",
            vec![],
            count(broker.subscription_count()),
        );
        self.gauge(
            "tributary_retained_count",
            vec![],
            count(broker.retained_count()),
        );
        self.counter(
            "tributary_messages_received",
            vec![],
            get(&stats.messages_received),
        );
        self.counter("tributary_messages_sent", vec![], get(&stats.messages_sent));
        let no_subscribers = get(&stats.messages_dropped_no_subscribers);
        self.counter("tributary_messages_dropped", vec![], no_subscribers);
        self.counter(
            "tributary_messages_dropped_no_subscribers",
            vec![],
            no_subscribers,
        );
        let delivery = [
            (
                "tributary_delivery_dropped_queue_full",
                get(&stats.delivery_dropped_queue_full),
            ),
            (
                "tributary_delivery_dropped_qos0_msg",
                get(&stats.delivery_dropped_qos0_offline),
            ),
            (
                "tributary_delivery_dropped_too_large",
                get(&stats.delivery_dropped_too_large),
            ),
            (
                "tributary_delivery_dropped_expired",
                get(&stats.delivery_dropped_expired),
            ),
        ];
        let total = delivery
            .iter()
            .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
        self.counter("tributary_delivery_dropped", vec![], total);
        for (name, value) in delivery {
            self.counter(name, vec![], value);
        }
    }

    fn sync_clients(&self) {
        let mut now: BTreeMap<ClientSeries, u64> = BTreeMap::new();
        for (_, client) in self.broker.clients() {
            let series = (
                Arc::clone(&client.listener),
                client.protocol.as_str(),
                client.transport.as_str(),
            );
            *now.entry(series).or_default() += 1;
        }
        let mut seen = self
            .client_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.extend(now.keys().cloned());
        for series in seen.iter() {
            let (listener, protocol, transport) = series;
            let labels = vec![
                Label::new("listener", Arc::clone(listener)),
                Label::new("protocol", *protocol),
                Label::new("transport", *transport),
            ];
            let value = now.get(series).copied().unwrap_or(0);
            self.gauge("tributary_clients_count", labels, value);
        }
    }
}

/// The `# HELP` line of every series (docs/metrics.md says the same, at more length).
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "tributary_listener_connections_accepted",
        "Connections a listener accepted (under max_connections), since start",
    ),
    (
        "tributary_listener_connections_count",
        "Connections open on a listener now, before and after MQTT CONNECT",
    ),
    (
        "tributary_listener_connections_refused",
        "Connections a listener refused, by reason, since start",
    ),
    (
        "tributary_listener_handshake_failures",
        "Connections that ended in the TLS handshake or WebSocket upgrade, by reason",
    ),
    (
        "tributary_connections_count",
        "Connections served by the MQTT driver now, all listeners",
    ),
    (
        "tributary_sessions_count",
        "Sessions registered now, connected or not",
    ),
    (
        "tributary_subscriptions_count",
        "Subscriptions in the route table now",
    ),
    ("tributary_retained_count", "Retained messages stored now"),
    (
        "tributary_messages_received",
        "PUBLISH packets received from clients, since start",
    ),
    (
        "tributary_messages_sent",
        "PUBLISH packets sent to clients, since start",
    ),
    (
        "tributary_messages_dropped",
        "Published messages dropped before delivery, since start",
    ),
    (
        "tributary_messages_dropped_no_subscribers",
        "Published messages that matched no subscriber, since start",
    ),
    (
        "tributary_delivery_dropped",
        "Messages dropped at delivery to a session, all reasons, since start",
    ),
    (
        "tributary_delivery_dropped_queue_full",
        "Messages dropped because a session's queue was full",
    ),
    (
        "tributary_delivery_dropped_qos0_msg",
        "QoS 0 messages not queued for an offline session (mqueue_store_qos0 = false)",
    ),
    (
        "tributary_delivery_dropped_too_large",
        "Messages dropped as larger than the client's Maximum Packet Size",
    ),
    (
        "tributary_delivery_dropped_expired",
        "Messages dropped because they expired before delivery",
    ),
    (
        "tributary_clients_count",
        "Clients connected now, by listener, protocol and transport",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(kind: &'static str, name: &str) -> (ListenerEntry, Arc<ListenerMetrics>) {
        let counters = Arc::new(ListenerMetrics::default());
        let entry = ListenerEntry {
            label: Arc::from(format!("{kind}:{name}")),
            transport: kind,
            counters: Arc::clone(&counters),
        };
        (entry, counters)
    }

    /// The value of the one line that starts with `series` (name and labels, as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn listener_series_carry_listener_and_transport_labels() {
        let (tcp, tcp_counters) = listener("tcp", "default");
        let (wss, wss_counters) = listener("wss", "edge");
        let metrics = Metrics::new(Broker::with_defaults(), vec![tcp, wss]);
        tcp_counters.accepted.fetch_add(3, Relaxed);
        tcp_counters.open.fetch_add(2, Relaxed);
        tcp_counters.refused_max_connections.fetch_add(1, Relaxed);
        wss_counters.handshake_failed(HandshakeFailure::Tls);
        wss_counters.handshake_failed(HandshakeFailure::Tls);
        wss_counters.handshake_failed(HandshakeFailure::Timeout);
        let text = metrics.render();
        let tcp = r#"{listener="tcp:default",transport="tcp"}"#;
        assert_eq!(
            value(
                &text,
                &format!("tributary_listener_connections_accepted{tcp}")
            ),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value(&text, &format!("tributary_listener_connections_count{tcp}")),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"tributary_listener_connections_refused{listener="tcp:default",transport="tcp",reason="max_connections"}"#
            ),
            Some(1.0)
        );
        let wss = |reason: &str| {
            format!(
                r#"tributary_listener_handshake_failures{{listener="wss:edge",transport="wss",reason="{reason}"}}"#
            )
        };
        assert_eq!(value(&text, &wss("tls")), Some(2.0));
        assert_eq!(value(&text, &wss("websocket")), Some(0.0));
        assert_eq!(value(&text, &wss("timeout")), Some(1.0));
        assert!(
            !text.contains(r#"tributary_listener_handshake_failures{listener="tcp:default""#),
            "plain TCP has no handshake"
        );
        assert!(text.contains("# TYPE tributary_listener_connections_accepted counter"));
        assert!(text.contains("# TYPE tributary_listener_connections_count gauge"));
        assert!(text.contains("# HELP tributary_sessions_count "));
    }

    #[test]
    fn broker_series_follow_the_stats() {
        let broker = Broker::with_defaults();
        let metrics = Metrics::new(broker.clone(), Vec::new());
        for _ in 0..4 {
            broker.stats().messages_received.fetch_add(1, Relaxed);
        }
        broker
            .stats()
            .delivery_dropped_queue_full
            .fetch_add(2, Relaxed);
        broker
            .stats()
            .delivery_dropped_expired
            .fetch_add(1, Relaxed);
        let text = metrics.render();
        assert_eq!(value(&text, "tributary_messages_received"), Some(4.0));
        assert_eq!(value(&text, "tributary_messages_sent"), Some(0.0));
        assert_eq!(value(&text, "tributary_delivery_dropped"), Some(3.0));
        assert_eq!(
            value(&text, "tributary_delivery_dropped_queue_full"),
            Some(2.0)
        );
        assert_eq!(value(&text, "tributary_sessions_count"), Some(0.0));
        assert_eq!(value(&text, "tributary_connections_count"), Some(0.0));
        // A second scrape reads the counters again.
        broker.stats().messages_sent.fetch_add(5, Relaxed);
        assert_eq!(
            value(&metrics.render(), "tributary_messages_sent"),
            Some(5.0)
        );
    }

    #[test]
    fn two_gateways_metrics_do_not_mix() {
        let (a, a_counters) = listener("tcp", "default");
        let (b, _) = listener("tcp", "default");
        let first = Metrics::new(Broker::with_defaults(), vec![a]);
        let second = Metrics::new(Broker::with_defaults(), vec![b]);
        a_counters.accepted.fetch_add(7, Relaxed);
        let series =
            r#"tributary_listener_connections_accepted{listener="tcp:default",transport="tcp"}"#;
        assert_eq!(value(&first.render(), series), Some(7.0));
        assert_eq!(value(&second.render(), series), Some(0.0));
    }
}
