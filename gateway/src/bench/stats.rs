//! The load tool's counters and its latency histogram.
//!
//! Every client task writes into one shared [`Stats`] with relaxed atomics: the tool is meant
//! to run pinned to one core, where an uncontended atomic add costs a few nanoseconds, and the
//! reporter reads snapshots once a second without stopping anyone.
//!
//! The histogram is log-linear, HdrHistogram-style, with no crate: values below 64 ns have a
//! bucket each; above that every power of two is cut into 32 equal buckets, so a bucket is at
//! most 1/32 (about 3 %) wide relative to its value. That is precise enough for p50..p99 and
//! costs one `leading_zeros` and one atomic add per sample.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sub-buckets per power of two, as a bit count (32 buckets).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values at or above 2^40 ns (about 18 minutes) land in the last bucket.
const MAX_BITS: u32 = 40;
/// Number of buckets: values `< 2 * SUB` one each, then `SUB` per extra bit up to `MAX_BITS`.
const BUCKETS: usize = ((MAX_BITS - SUB_BITS + 1) as usize) * SUB as usize;

/// The bucket a value (in nanoseconds) is counted in.
fn bucket_of(value: u64) -> usize {
    let value = value.min((1 << MAX_BITS) - 1);
    if value < 2 * SUB {
        return value as usize;
    }
    let bits = 64 - value.leading_zeros();
    let shift = bits - (SUB_BITS + 1);
    (shift as usize) * SUB as usize + (value >> shift) as usize
}

/// The largest value counted in bucket `index` (what a percentile reports: conservative).
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB {
        return index;
    }
    let shift = index / SUB - 1;
    let low = (index % SUB + SUB) << shift;
    low + (1 << shift) - 1
}

/// A latency histogram, in nanoseconds, that many tasks record into at once.
#[derive(Debug)]
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one sample.
    pub(crate) fn record(&self, nanos: u64) {
        if let Some(bucket) = self.buckets.get(bucket_of(nanos)) {
            bucket.fetch_add(1, Relaxed);
        }
        self.max.fetch_max(nanos, Relaxed);
    }

    /// A copy of the counts, to compute percentiles from or to diff with a later one.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            max: self.max.load(Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    counts: Vec<u64>,
    max: u64,
}

impl Snapshot {
    /// The samples counted since `earlier` (the max is this snapshot's: a max cannot be
    /// un-merged, so a live line shows the run's max so far).
    pub(crate) fn since(&self, earlier: &Snapshot) -> Snapshot {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| c.saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
            .collect();
        Snapshot {
            counts,
            max: self.max,
        }
    }

    /// Number of samples.
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The largest sample, exact.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at percentile `p` (0..=100): the upper edge of the bucket holding the sample
    /// of rank `ceil(p% of count)`, capped by the exact max. `None` without samples.
    pub(crate) fn percentile(&self, p: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // Rank of the sample, 1-based; float precision is ample for counts below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_high(index).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// Everything the clients count, shared by all of them and read by the reporter.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Connections attempted.
    pub(crate) connect_attempts: AtomicU64,
    /// Connections that got a successful CONNACK (and SUBACK, for subscribers).
    pub(crate) connected: AtomicU64,
    /// Connections that failed: refused, reset, timed out, or a CONNACK/SUBACK failure code.
    pub(crate) connect_failed: AtomicU64,
    /// Connections lost after being established.
    pub(crate) disconnected: AtomicU64,
    /// PUBLISH packets written by publishers.
    pub(crate) published: AtomicU64,
    /// PUBACKs received by QoS 1 publishers.
    pub(crate) acked: AtomicU64,
    /// PUBLISH packets received by subscribers.
    pub(crate) delivered: AtomicU64,
    /// Deliveries expected by the subscribers of this process (combined mode only).
    pub(crate) expected: AtomicU64,
    /// Nanoseconds since the run's start at which the last connection came up.
    pub(crate) last_connect_ns: AtomicU64,
    /// Nanoseconds since the run's start at which the last publish was written.
    pub(crate) last_publish_ns: AtomicU64,
    /// Nanoseconds since the run's start at which the last delivery was read.
    pub(crate) last_delivery_ns: AtomicU64,
    /// End-to-end latency of deliveries, from the timestamp in the payload.
    pub(crate) latency: Histogram,
    /// Set once the first error has been printed.
    pub(crate) first_error: std::sync::OnceLock<()>,
}

impl Stats {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Reads a counter.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Moves a "last event at" mark forward.
    pub(crate) fn mark(at: &AtomicU64, nanos: u64) {
        at.fetch_max(nanos, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous = 0;
        for value in [
            0,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            123_456,
            1 << 30,
            (1 << 40) - 1,
        ] {
            let bucket = bucket_of(value);
            assert!(bucket >= previous);
            previous = bucket;
            let high = bucket_high(bucket);
            assert!(high >= value, "{value} in bucket {bucket} with high {high}");
            // At most ~3 % above the value.
            assert!(high - value <= value / 32 + 1, "{value}: {high}");
            if bucket > 0 {
                assert!(bucket_high(bucket - 1) < value);
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::default();
        for micros in 1..=1000u64 {
            h.record(micros * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        assert_eq!(s.max(), 1_000_000);
        let within = |p: f64, expected: u64| {
            let got = s.percentile(p).unwrap();
            assert!(
                got >= expected && got <= expected + expected / 32,
                "p{p}: {got} vs {expected}"
            );
        };
        within(50.0, 500_000);
        within(90.0, 900_000);
        within(99.0, 990_000);
        assert_eq!(s.percentile(100.0), Some(1_000_000));
        assert_eq!(Snapshot::default().percentile(50.0), None);
    }

    #[test]
    fn since_counts_only_the_new_samples() {
        let h = Histogram::default();
        h.record(10);
        let first = h.snapshot();
        h.record(5_000);
        h.record(5_000);
        let delta = h.snapshot().since(&first);
        assert_eq!(delta.count(), 2);
        assert!(delta.percentile(50.0).unwrap() >= 5_000);
    }
}
