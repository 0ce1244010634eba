//! [`Stats`]: the broker's counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters shared by every connection task. Relaxed atomics: they are statistics, read by
/// the metrics exporter and `$SYS` publisher, never used to make decisions.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and currently open (CONNECT or not).
    pub connections: AtomicU64,
    /// Sessions currently registered (attached or detached).
    pub sessions: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Messages dropped because a session's queue was full.
    pub delivery_dropped_queue_full: AtomicU64,
    /// QoS 0 messages not queued for an offline session (`mqueue_store_qos0 = false`).
    pub delivery_dropped_qos0_offline: AtomicU64,
    /// Messages dropped because they were larger than the client's Maximum Packet Size.
    pub delivery_dropped_too_large: AtomicU64,
    /// Messages dropped because they expired before delivery.
    pub delivery_dropped_expired: AtomicU64,
    /// Publishes that matched no subscriber.
    pub messages_dropped_no_subscribers: AtomicU64,
}

impl Stats {
    /// Adds one to `counter`.
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Subtracts one from `counter`.
    pub(crate) fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
