//! Route table and retained store micro-benchmarks, at 100,000 subscriptions.
//!
//! The subscriptions look like a fleet's: `site/{s}/dev/{d}/temp` exact filters for most
//! devices, plus `site/{s}/+/{d}/temp` and `site/{s}/dev/{d}/#` wildcard ones, so a match
//! walks both the exact index and the wildcard trie. The retained store holds one message per
//! device topic and is matched with a `+` filter and a `#` filter.

use criterion::{Criterion, Throughput};
use std::hint::black_box;
use tributary_mqtt_core::{
    ByteStr, RetainedStore, RouteTable, ShareStrategy, TopicFilter, TopicName,
};

const SUBSCRIPTIONS: u32 = 100_000;
const SITES: u32 = 100;

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(ByteStr::from(text), 64).unwrap_or_else(|e| unreachable!("{text}: {e}"))
}

fn topic(text: &str) -> TopicName {
    TopicName::new(ByteStr::from(text), 64).unwrap_or_else(|e| unreachable!("{text}: {e}"))
}

/// 80 % exact, 15 % `+`, 5 % `#`, spread over 100 sites.
fn table() -> RouteTable<u32, ()> {
    let table = RouteTable::new(ShareStrategy::RoundRobin);
    for i in 0..SUBSCRIPTIONS {
        let (site, device) = (i % SITES, i / SITES);
        let text = match i % 20 {
            0..=15 => format!("site/{site}/dev/{device}/temp"),
            16..=18 => format!("site/{site}/+/{device}/temp"),
            _ => format!("site/{site}/dev/{device}/#"),
        };
        table.subscribe(&filter(&text), None, i, ());
    }
    table
}

fn routes(c: &mut Criterion) {
    let table = table();
    let mut group = c.benchmark_group("routes_100k");
    group.throughput(Throughput::Elements(1));
    let hits: Vec<TopicName> = (0..1000)
        .map(|i| topic(&format!("site/{}/dev/{}/temp", i % SITES, (i * 7) % 1000)))
        .collect();
    let mut out = Vec::new();
    let mut next = 0;
    group.bench_function("match_hit", |b| {
        b.iter(|| {
            next = (next + 1) % hits.len();
            table.matches(&hits[next], "publisher", &mut out);
            let n = out.len();
            out.clear();
            black_box(n)
        });
    });
    let miss = topic("site/42/gateway/9/status");
    group.bench_function("match_miss", |b| {
        b.iter(|| {
            table.matches(black_box(&miss), "publisher", &mut out);
            let n = out.len();
            out.clear();
            black_box(n)
        });
    });
    group.finish();

    let retained = RetainedStore::new(usize::MAX);
    for i in 0..SUBSCRIPTIONS {
        let name = topic(&format!("site/{}/dev/{}/temp", i % SITES, i / SITES));
        retained.insert(&name, i).ok();
    }
    let mut group = c.benchmark_group("retained_100k");
    let mut found = Vec::new();
    for (label, text) in [
        ("match_plus", "site/42/dev/+/temp"),
        ("match_hash", "site/42/#"),
        ("match_exact", "site/42/dev/7/temp"),
    ] {
        let f = filter(text);
        group.bench_function(label, |b| {
            b.iter(|| {
                retained.matches(black_box(&f), &mut found);
                let n = found.len();
                found.clear();
                black_box(n)
            });
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    routes(&mut criterion);
    criterion.final_summary();
}
