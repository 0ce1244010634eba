//! [`RouteTable`]: which subscriptions match a published topic.
//!
//! The table is shared by every connection task (the broker keeps it in an `Arc`): each task
//! routes its own publishes (ARCHITECTURE.md §2), so reads come from every core at once, while
//! writes come only from SUBSCRIBE and UNSUBSCRIBE. It is therefore built for reads:
//!
//! - Wildcard-free filters, usually the large majority, live in a lock-free `papaya` map from
//!   the filter to a bucket. A publish finds its bucket without a lock, then holds that bucket's
//!   read lock while it copies the subscribers out; writers hold a bucket's write lock only for
//!   one insert or remove in that bucket, so they cannot stall readers for long, and writers on
//!   different filters never meet.
//! - Wildcard filters live in one level trie behind a `RwLock`. Readers hold the read lock for
//!   one walk; a writer holds the write lock for one insert or remove. When there are no
//!   wildcard subscriptions at all, readers skip the lock entirely.
//!
//! The only user code run while a lock is held is `K`'s and `V`'s `Clone`, `Hash`, `Eq` and
//! `Drop`; they must not call back into the table. A walk allocates nothing beyond pushing to
//! the caller's output `Vec` (its stack is inline up to 64 entries, enough for any topic of
//! fewer than 63 levels).
//!
//! Nothing is left behind on removal: an emptied share group, bucket or trie node is pruned in
//! the same call, whether the filter held shared subscriptions, normal ones or both (the
//! CVE-2024-8376 sequences, RELIABILITY.md test 15).

use std::{
    collections::{HashMap, hash_map::RandomState},
    fmt,
    hash::{BuildHasher, Hash},
    str::FromStr,
    sync::{
        PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use smallvec::SmallVec;

use crate::{
    ByteStr, FastHash,
    topic::{TopicFilter, TopicName},
    trie::{ROOT, Trie, level_at},
};

/// How a shared subscription group picks the one member that receives a message.
///
/// The names are EMQX's (`broker.shared_subscription_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ShareStrategy {
    /// A uniformly random member (`random`).
    Random,
    /// Members in turn, one counter per group (`round_robin`).
    #[default]
    RoundRobin,
    /// The same member until it leaves the group, then a new random one (`sticky`).
    Sticky,
    /// A stable hash of the publisher's client id (`hash_clientid`): one publisher's messages
    /// all go to one member while the membership is unchanged.
    HashClientId,
    /// A stable hash of the topic (`hash_topic`): one topic's messages all go to one member
    /// while the membership is unchanged.
    HashTopic,
}

impl ShareStrategy {
    /// Every strategy, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Random,
        Self::RoundRobin,
        Self::Sticky,
        Self::HashClientId,
        Self::HashTopic,
    ];

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::RoundRobin => "round_robin",
            Self::Sticky => "sticky",
            Self::HashClientId => "hash_clientid",
            Self::HashTopic => "hash_topic",
        }
    }
}

impl fmt::Display for ShareStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared-subscription strategy name that is not one of [`ShareStrategy::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown shared subscription strategy {0:?} (expected random, round_robin, sticky, \
     hash_clientid or hash_topic)"
)]
pub struct UnknownShareStrategy(pub String);

impl FromStr for ShareStrategy {
    type Err = UnknownShareStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == s)
            .ok_or_else(|| UnknownShareStrategy(s.to_owned()))
    }
}

/// FNV-1a, 64 bits: stable across processes and releases, unlike `std`'s seeded hashers, so a
/// `hash_*` strategy keeps choosing the same member after a restart.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64 over a shared atomic state: small, lock-free and good enough to spread load.
fn next_random(state: &AtomicU64) -> u64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut z = state
        .fetch_add(GAMMA, Ordering::Relaxed)
        .wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `x mod len` as an index; `len` is never 0 here.
fn index(x: u64, len: usize) -> usize {
    (x % (len.max(1) as u64)) as usize
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic under the lock can only come from `K`/`V` code or allocation failure; the
    // structure is still memory-safe, and routing on beats taking every connection down.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// What a group needs to choose a member for one message.
struct Pick<'a> {
    strategy: ShareStrategy,
    topic: &'a str,
    publisher: &'a str,
    rng: &'a AtomicU64,
}

/// `sticky` when no member has been chosen yet (or the chosen one left).
const NO_STICKY: usize = usize::MAX;

/// The members of one share group on one filter.
struct ShareGroup<K, V> {
    /// In join order, which removal preserves, so the `hash_*` strategies stay stable for
    /// everyone but the members that joined or left.
    members: Vec<(K, V)>,
    /// The round-robin counter. Atomic because readers advance it under the read lock.
    next: AtomicUsize,
    /// Index of the sticky member, or [`NO_STICKY`]. Readers set it under the read lock;
    /// writers fix it up when members move.
    sticky: AtomicUsize,
}

impl<K: Eq, V> ShareGroup<K, V> {
    fn new() -> Self {
        Self {
            members: Vec::new(),
            next: AtomicUsize::new(0),
            sticky: AtomicUsize::new(NO_STICKY),
        }
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => Some(std::mem::replace(&mut member.1, value)),
            None => {
                self.members.push((key, value));
                None
            }
        }
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.members.iter().position(|(k, _)| k == key)?;
        let (_, value) = self.members.remove(i);
        let sticky = self.sticky.get_mut();
        if *sticky == i {
            *sticky = NO_STICKY;
        } else if *sticky != NO_STICKY && *sticky > i {
            *sticky -= 1;
        }
        Some(value)
    }

    fn pick(&self, p: &Pick<'_>) -> Option<&(K, V)> {
        let len = self.members.len();
        if len == 0 {
            return None;
        }
        let i = match p.strategy {
            ShareStrategy::Random => index(next_random(p.rng), len),
            ShareStrategy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % len,
            ShareStrategy::Sticky => {
                let current = self.sticky.load(Ordering::Relaxed);
                if current < len {
                    current
                } else {
                    let chosen = index(next_random(p.rng), len);
                    // Two readers may race to choose; both then use the winner's choice.
                    match self.sticky.compare_exchange(
                        current,
                        chosen,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Err(winner) if winner < len => winner,
                        _ => chosen,
                    }
                }
            }
            ShareStrategy::HashClientId => index(fnv1a(p.publisher), len),
            ShareStrategy::HashTopic => index(fnv1a(p.topic), len),
        };
        self.members.get(i)
    }
}

/// All subscriptions on one filter: normal ones by subscriber, shared ones by group.
struct Subscribers<K, V> {
    plain: HashMap<K, V, FastHash>,
    groups: HashMap<Box<str>, ShareGroup<K, V>, FastHash>,
}

impl<K, V> Default for Subscribers<K, V> {
    fn default() -> Self {
        Self {
            plain: HashMap::default(),
            groups: HashMap::default(),
        }
    }
}

impl<K: Clone + Eq + Hash, V: Clone> Subscribers<K, V> {
    fn insert(&mut self, group: Option<&str>, key: K, value: V) -> Option<V> {
        match group {
            None => self.plain.insert(key, value),
            Some(name) => {
                if let Some(group) = self.groups.get_mut(name) {
                    return group.insert(key, value);
                }
                let mut group = ShareGroup::new();
                group.insert(key, value);
                self.groups.insert(Box::from(name), group);
                None
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, key: &K) -> Option<V> {
        match group {
            None => self.plain.remove(key),
            Some(name) => {
                let group = self.groups.get_mut(name)?;
                let removed = group.remove(key);
                if group.members.is_empty() {
                    self.groups.remove(name);
                }
                removed
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }

    /// Appends the normal subscriptions and one member per share group; returns how many
    /// sources contributed (the normal ones, as one, and each group): a subscriber appears at
    /// most once per source.
    fn collect(&self, pick: &Pick<'_>, out: &mut Vec<(K, V)>) -> usize {
        let mut sources = usize::from(!self.plain.is_empty());
        out.extend(self.plain.iter().map(|(k, v)| (k.clone(), v.clone())));
        for group in self.groups.values() {
            if let Some((k, v)) = group.pick(pick) {
                out.push((k.clone(), v.clone()));
                sources += 1;
            }
        }
        sources
    }
}

/// The subscriptions on one wildcard-free filter.
struct Bucket<K, V> {
    state: RwLock<BucketState<K, V>>,
}

struct BucketState<K, V> {
    /// Set, under the write lock, by the writer that empties the bucket and removes it from the
    /// map. A writer that then locks this stale bucket retries on the map instead of inserting
    /// into a bucket no reader will ever find again.
    dead: bool,
    subs: Subscribers<K, V>,
}

impl<K, V> Bucket<K, V> {
    fn new() -> Self {
        Self {
            state: RwLock::new(BucketState {
                dead: false,
                subs: Subscribers::default(),
            }),
        }
    }
}

/// Walk stack entries: a trie node and the byte offset of the next topic level, or [`END`]
/// once every level is consumed.
type Frame = (usize, usize);
const END: usize = usize::MAX;
/// Frames kept on the stack of a walk (a topic of `n` levels needs at most `n + 1`); a
/// deeper walk spills to the heap. Not initialised until pushed: a walk of a short topic
/// costs nothing for the room it does not use.
type Walk = SmallVec<[Frame; 32]>;

/// The route table: subscriptions by filter, with shared-subscription groups.
///
/// `K` identifies a subscriber (in the broker, an `Arc` handle to a session's mailbox compared
/// by pointer); `V` is per-subscription data (options, subscription identifier). All methods
/// take `&self` and may be called from any number of threads at once; see the module
/// documentation for how readers and writers share the structure.
pub struct RouteTable<K, V> {
    strategy: ShareStrategy,
    exact: papaya::HashMap<Box<str>, Bucket<K, V>, FastHash>,
    wildcard: RwLock<Trie<Subscribers<K, V>>>,
    /// Subscriptions in `wildcard`; while 0, readers skip its lock.
    wildcard_len: AtomicUsize,
    /// All subscriptions.
    len: AtomicUsize,
    /// State of the `random` (and first `sticky`) choice.
    rng: AtomicU64,
}

impl<K, V> RouteTable<K, V>
where
    K: Clone + Eq + Hash + Send + Sync,
    V: Clone + Send + Sync,
{
    /// An empty table whose share groups pick members with `strategy`.
    pub fn new(strategy: ShareStrategy) -> Self {
        Self {
            strategy,
            exact: papaya::HashMap::with_hasher(FastHash::default()),
            wildcard: RwLock::new(Trie::default()),
            wildcard_len: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            rng: AtomicU64::new(RandomState::new().hash_one(0x7269_6275_7461_7279_u64)),
        }
    }

    /// The strategy share groups use.
    pub fn strategy(&self) -> ShareStrategy {
        self.strategy
    }

    /// Adds the subscription of `key` to `filter` (in `share_group`, if shared), or replaces its
    /// value. Returns the previous value if the subscription already existed, which is what
    /// Retain Handling 1 ("send retained messages only for a new subscription") needs.
    pub fn subscribe(
        &self,
        filter: &TopicFilter,
        share_group: Option<&ByteStr>,
        key: K,
        value: V,
    ) -> Option<V> {
        let group = share_group.map(ByteStr::as_str);
        let previous = if filter.has_wildcards() {
            let mut trie = write(&self.wildcard);
            let node = trie.insert(filter.levels());
            let previous = trie
                .data_mut(node)
                .and_then(|subs| subs.insert(group, key, value));
            if previous.is_none() {
                self.wildcard_len.fetch_add(1, Ordering::Release);
            }
            previous
        } else {
            let exact = self.exact.pin();
            loop {
                let bucket = match exact.get(filter.as_str()) {
                    Some(bucket) => bucket,
                    None => exact.get_or_insert_with(Box::from(filter.as_str()), Bucket::new),
                };
                let mut state = write(&bucket.state);
                if state.dead {
                    continue;
                }
                break state.subs.insert(group, key, value);
            }
        };
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        previous
    }

    /// Removes the subscription of `key` to `filter` (in `share_group`, if shared), returning its
    /// value, and prunes whatever it leaves empty.
    pub fn unsubscribe(
        &self,
        filter: &TopicFilter,
        share_group: Option<&ByteStr>,
        key: &K,
    ) -> Option<V> {
        let group = share_group.map(ByteStr::as_str);
        let removed = if filter.has_wildcards() {
            let mut trie = write(&self.wildcard);
            let node = trie.find(filter.levels())?;
            let subs = trie.data_mut(node)?;
            let removed = subs.remove(group, key)?;
            trie.prune(node, Subscribers::is_empty);
            self.wildcard_len.fetch_sub(1, Ordering::Release);
            removed
        } else {
            let exact = self.exact.pin();
            loop {
                let bucket = exact.get(filter.as_str())?;
                let mut state = write(&bucket.state);
                if state.dead {
                    // Pruned by another writer since we looked it up; look again.
                    continue;
                }
                let removed = state.subs.remove(group, key)?;
                if state.subs.is_empty() {
                    state.dead = true;
                    // Removed while still holding the bucket's lock, so a writer that sees
                    // `dead` finds the map without this bucket when it retries.
                    let _ = exact.remove_if(filter.as_str(), |_, b| std::ptr::eq(b, bucket));
                }
                break removed;
            }
        };
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(removed)
    }

    /// Appends the subscriptions matching `topic` to `out`, as (subscriber, value) pairs.
    ///
    /// Every matching normal subscription appears once per matching filter, so a subscriber
    /// whose filters overlap appears several times (the broker merges them, per MQTT 5.0
    /// §3.3.4). Every matching share group, per (group, filter), contributes exactly one member,
    /// chosen by the table's [`ShareStrategy`]; `publisher` is the publishing client's id, used
    /// by [`ShareStrategy::HashClientId`]. Filters starting with a wildcard do not match topics
    /// starting with `$` [MQTT-4.7.2-1].
    ///
    /// Returns whether every subscriber appears at most once in what it appended (all of it
    /// came from the normal subscriptions of one filter): then there is nothing to merge, and
    /// a message to a topic with many subscribers on one filter (a fan-out) is not sorted.
    pub fn matches(&self, topic: &TopicName, publisher: &str, out: &mut Vec<(K, V)>) -> bool {
        let name = topic.as_str();
        let mut sources = 0;
        let pick = Pick {
            strategy: self.strategy,
            topic: name,
            publisher,
            rng: &self.rng,
        };
        {
            let exact = self.exact.pin();
            if let Some(bucket) = exact.get(name) {
                sources += read(&bucket.state).subs.collect(&pick, out);
            }
        }
        if self.wildcard_len.load(Ordering::Acquire) == 0 {
            return sources <= 1;
        }
        let trie = read(&self.wildcard);
        let dollar = topic.is_dollar();
        let emit = |id: usize, out: &mut Vec<(K, V)>| {
            trie.node(id)
                .map_or(0, |node| node.data.collect(&pick, out))
        };
        let mut stack = Walk::new();
        stack.push((ROOT, 0));
        while let Some((id, pos)) = stack.pop() {
            let wildcards_apply = !(dollar && id == ROOT);
            if wildcards_apply {
                // `#` matches the remaining levels, none included (`a/#` matches `a`).
                if let Some(hash) = trie.child(id, "#") {
                    sources += emit(hash, out);
                }
            }
            if pos == END {
                sources += emit(id, out);
                continue;
            }
            let (level, next) = level_at(name, pos);
            let next = next.unwrap_or(END);
            if let Some(child) = trie.child(id, level) {
                stack.push((child, next));
            }
            if wildcards_apply {
                if let Some(plus) = trie.child(id, "+") {
                    stack.push((plus, next));
                }
            }
        }
        sources <= 1
    }

    /// Picks one member of the share group `group` on `filter` for a message on `topic`, by the
    /// table's strategy: how the broker re-dispatches a message that a departed member of the
    /// group received but never acknowledged.
    pub fn pick_shared(
        &self,
        filter: &TopicFilter,
        group: &str,
        topic: &TopicName,
        publisher: &str,
    ) -> Option<(K, V)> {
        let pick = Pick {
            strategy: self.strategy,
            topic: topic.as_str(),
            publisher,
            rng: &self.rng,
        };
        let choose = |subs: &Subscribers<K, V>| {
            let (k, v) = subs.groups.get(group)?.pick(&pick)?;
            Some((k.clone(), v.clone()))
        };
        if filter.has_wildcards() {
            let trie = read(&self.wildcard);
            let node = trie.find(filter.levels())?;
            choose(&trie.node(node)?.data)
        } else {
            let exact = self.exact.pin();
            let bucket = exact.get(filter.as_str())?;
            choose(&read(&bucket.state).subs)
        }
    }

    /// The number of subscriptions (normal and shared members).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the table holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets plus trie nodes in use: 0 once every subscription is gone, or something leaked.
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.exact.pin().len() + read(&self.wildcard).live_nodes()
    }
}

impl<K, V> Default for RouteTable<K, V>
where
    K: Clone + Eq + Hash + Send + Sync,
    V: Clone + Send + Sync,
{
    fn default() -> Self {
        Self::new(ShareStrategy::default())
    }
}

impl<K, V> fmt::Debug for RouteTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("strategy", &self.strategy)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, BTreeSet},
        sync::Arc,
    };

    use proptest::prelude::*;

    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(ByteStr::from(s), 128).unwrap()
    }

    fn t(s: &str) -> TopicName {
        TopicName::new(ByteStr::from(s), 128).unwrap()
    }

    fn g(s: &str) -> ByteStr {
        ByteStr::from(s)
    }

    fn hits<V: Clone + Send + Sync + Ord>(
        table: &RouteTable<u32, V>,
        topic: &str,
        publisher: &str,
    ) -> Vec<(u32, V)> {
        let mut out = Vec::new();
        table.matches(&t(topic), publisher, &mut out);
        out.sort();
        out
    }

    #[test]
    fn strategy_names() {
        for s in ShareStrategy::ALL {
            assert_eq!(s.as_str().parse::<ShareStrategy>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(ShareStrategy::default(), ShareStrategy::RoundRobin);
        assert!("roundrobin".parse::<ShareStrategy>().is_err());
    }

    #[test]
    fn exact_and_wildcard_matching() {
        let table = RouteTable::new(ShareStrategy::RoundRobin);
        assert_eq!(table.subscribe(&f("a/b"), None, 1, "exact"), None);
        assert_eq!(table.subscribe(&f("a/+"), None, 1, "plus"), None);
        assert_eq!(table.subscribe(&f("a/#"), None, 2, "hash"), None);
        assert_eq!(table.subscribe(&f("#"), None, 3, "all"), None);
        assert_eq!(table.subscribe(&f("+/+"), None, 4, "pp"), None);
        assert_eq!(table.subscribe(&f("$SYS/#"), None, 5, "sys"), None);
        assert_eq!(table.subscribe(&f("$SYS/x"), None, 6, "sysx"), None);
        assert_eq!(table.len(), 7);
        assert_eq!(
            hits(&table, "a/b", "p"),
            [
                (1, "exact"),
                (1, "plus"),
                (2, "hash"),
                (3, "all"),
                (4, "pp")
            ]
        );
        // `a/#` matches the parent level `a`; `+` matches an empty level.
        assert_eq!(hits(&table, "a", "p"), [(2, "hash"), (3, "all")]);
        assert_eq!(
            hits(&table, "a/", "p"),
            [(1, "plus"), (2, "hash"), (3, "all"), (4, "pp")]
        );
        assert_eq!(hits(&table, "/finance", "p"), [(3, "all"), (4, "pp")]);
        // No leading wildcard matches a `$` topic.
        assert_eq!(hits(&table, "$SYS/x", "p"), [(5, "sys"), (6, "sysx")]);
        assert_eq!(hits(&table, "$other/x", "p"), []);
        // Replacing returns the old value and does not count twice.
        assert_eq!(table.subscribe(&f("a/b"), None, 1, "exact2"), Some("exact"));
        assert_eq!(table.subscribe(&f("a/+"), None, 1, "plus2"), Some("plus"));
        assert_eq!(table.len(), 7);
        assert_eq!(table.unsubscribe(&f("a/b"), None, &9), None);
        assert_eq!(table.unsubscribe(&f("x/+"), None, &1), None);
        assert_eq!(table.unsubscribe(&f("a/+"), None, &1), Some("plus2"));
        assert_eq!(table.unsubscribe(&f("a/+"), None, &1), None);
        for (filter, key) in [("a/b", 1), ("a/#", 2), ("#", 3), ("+/+", 4)] {
            assert!(table.unsubscribe(&f(filter), None, &key).is_some());
        }
        for (filter, key) in [("$SYS/#", 5), ("$SYS/x", 6)] {
            assert!(table.unsubscribe(&f(filter), None, &key).is_some());
        }
        assert!(table.is_empty());
        assert_eq!(table.node_count(), 0);
    }

    /// `matches` says when nothing can repeat (every match from one filter's normal
    /// subscriptions), so the broker can skip merging; never when something might.
    #[test]
    fn matches_tells_when_no_subscriber_can_repeat() {
        let distinct = |table: &RouteTable<u32, u32>, topic: &str| {
            let mut out = Vec::new();
            table.matches(&t(topic), "p", &mut out)
        };
        let table = RouteTable::new(ShareStrategy::RoundRobin);
        assert!(distinct(&table, "a/b"), "no match at all");
        for subscriber in 1..=3 {
            table.subscribe(&f("a/b"), None, subscriber, 0);
        }
        assert!(distinct(&table, "a/b"), "one exact filter");
        table.subscribe(&f("w/+"), None, 1, 0);
        assert!(distinct(&table, "w/x"), "one wildcard filter");
        table.subscribe(&f("a/+"), None, 1, 1);
        assert!(!distinct(&table, "a/b"), "an exact and a wildcard filter");
        table.subscribe(&f("w/+"), Some(&g("g")), 1, 2);
        assert!(!distinct(&table, "w/x"), "normal and shared on one filter");
        table.subscribe(&f("s/#"), Some(&g("g")), 4, 0);
        assert!(distinct(&table, "s/x"), "one share group");
        table.subscribe(&f("s/#"), Some(&g("h")), 4, 0);
        assert!(!distinct(&table, "s/x"), "two share groups");
    }

    #[test]
    fn shared_and_normal_on_the_same_filter_are_separate() {
        let table = RouteTable::new(ShareStrategy::RoundRobin);
        table.subscribe(&f("t/+"), None, 1, 10);
        table.subscribe(&f("t/+"), Some(&g("g")), 1, 11);
        table.subscribe(&f("t/+"), Some(&g("h")), 1, 12);
        table.subscribe(&f("t/x"), Some(&g("g")), 1, 13);
        assert_eq!(table.len(), 4);
        assert_eq!(
            hits(&table, "t/x", "p"),
            [(1, 10), (1, 11), (1, 12), (1, 13)]
        );
        // Removing the shared one leaves the normal one, and the other way round.
        assert_eq!(table.unsubscribe(&f("t/+"), Some(&g("g")), &1), Some(11));
        assert_eq!(hits(&table, "t/x", "p"), [(1, 10), (1, 12), (1, 13)]);
        assert_eq!(table.unsubscribe(&f("t/+"), None, &1), Some(10));
        assert_eq!(table.unsubscribe(&f("t/+"), None, &1), None);
        assert_eq!(table.unsubscribe(&f("t/+"), Some(&g("h")), &1), Some(12));
        assert_eq!(table.unsubscribe(&f("t/x"), None, &1), None);
        assert_eq!(table.unsubscribe(&f("t/x"), Some(&g("g")), &1), Some(13));
        assert_eq!(table.node_count(), 0);
        assert!(table.is_empty());
    }

    fn picks(table: &RouteTable<u32, ()>, topic: &str, publisher: &str, n: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                let out = hits(table, topic, publisher);
                assert_eq!(out.len(), 1);
                out[0].0
            })
            .collect()
    }

    fn group_of(strategy: ShareStrategy, members: &[u32]) -> RouteTable<u32, ()> {
        let table = RouteTable::new(strategy);
        for &m in members {
            table.subscribe(&f("s/+"), Some(&g("g")), m, ());
        }
        table
    }

    #[test]
    fn round_robin_cycles() {
        let table = group_of(ShareStrategy::RoundRobin, &[1, 2, 3]);
        assert_eq!(picks(&table, "s/a", "p", 6), [1, 2, 3, 1, 2, 3]);
        table.unsubscribe(&f("s/+"), Some(&g("g")), &2);
        let next = picks(&table, "s/a", "p", 4);
        assert!(next.windows(2).all(|w| w[0] != w[1]), "{next:?}");
        assert_eq!(next.iter().collect::<BTreeSet<_>>().len(), 2);
    }

    #[test]
    fn sticky_stays_until_the_member_leaves() {
        let table = group_of(ShareStrategy::Sticky, &[1, 2, 3, 4]);
        let first = picks(&table, "s/a", "p", 1)[0];
        assert!(picks(&table, "s/b", "q", 20).iter().all(|&m| m == first));
        // Another member leaving does not move it, even when indices shift.
        let other = if first == 1 { 2 } else { 1 };
        table.unsubscribe(&f("s/+"), Some(&g("g")), &other);
        assert!(picks(&table, "s/a", "p", 20).iter().all(|&m| m == first));
        table.unsubscribe(&f("s/+"), Some(&g("g")), &first);
        let second = picks(&table, "s/a", "p", 1)[0];
        assert!(second != first && second != other);
        assert!(picks(&table, "s/a", "p", 20).iter().all(|&m| m == second));
    }

    #[test]
    fn hash_strategies_are_stable() {
        let by_client = group_of(ShareStrategy::HashClientId, &[1, 2, 3, 4]);
        let by_topic = group_of(ShareStrategy::HashTopic, &[1, 2, 3, 4]);
        let mut clients = BTreeSet::new();
        let mut topics = BTreeSet::new();
        for i in 0..64 {
            let publisher = format!("client-{i}");
            let topic = format!("s/{i}");
            let c = picks(&by_client, "s/a", &publisher, 1)[0];
            assert!(
                picks(&by_client, &topic, &publisher, 5)
                    .iter()
                    .all(|&m| m == c)
            );
            clients.insert(c);
            let tp = picks(&by_topic, &topic, "p", 1)[0];
            assert!(
                picks(&by_topic, &topic, &publisher, 5)
                    .iter()
                    .all(|&m| m == tp)
            );
            topics.insert(tp);
        }
        // Stable does not mean constant: the hash spreads over the members.
        assert!(clients.len() > 1 && topics.len() > 1);
        // Stable across tables (no per-process seed).
        let again = group_of(ShareStrategy::HashClientId, &[1, 2, 3, 4]);
        assert_eq!(
            picks(&again, "s/a", "client-7", 1),
            picks(&by_client, "s/a", "client-7", 1)
        );
    }

    #[test]
    fn random_reaches_every_member() {
        let table = group_of(ShareStrategy::Random, &[1, 2, 3]);
        let seen: BTreeSet<u32> = picks(&table, "s/a", "p", 200).into_iter().collect();
        assert_eq!(seen, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn pick_shared_chooses_a_current_member() {
        let table = group_of(ShareStrategy::RoundRobin, &[1, 2]);
        let _ = table.unsubscribe(&f("s/+"), Some(&g("g")), &1);
        for _ in 0..4 {
            let picked = table.pick_shared(&f("s/+"), "g", &t("s/x"), "p");
            assert_eq!(picked.map(|(k, ())| k), Some(2));
        }
        assert!(
            table
                .pick_shared(&f("s/+"), "other", &t("s/x"), "p")
                .is_none()
        );
        assert!(table.pick_shared(&f("s/x"), "g", &t("s/x"), "p").is_none());
    }

    #[test]
    fn queue_group_and_dollar_topics() {
        let table = RouteTable::new(ShareStrategy::RoundRobin);
        table.subscribe(&f("#"), Some(&g("$queue")), 1, ());
        table.subscribe(&f("$SYS/+"), Some(&g("g")), 2, ());
        assert_eq!(hits(&table, "$SYS/x", "p"), [(2, ())]);
        assert_eq!(hits(&table, "a/b", "p"), [(1, ())]);
    }

    #[test]
    fn deep_topics_spill_the_walk_stack() {
        let table = RouteTable::new(ShareStrategy::RoundRobin);
        let deep = vec!["+"; 200].join("/");
        let filter = TopicFilter::new(ByteStr::from(deep.as_str()), 0).unwrap();
        table.subscribe(&filter, None, 1, ());
        table.subscribe(&filter, Some(&g("g")), 2, ());
        let topic = TopicName::new(ByteStr::from(vec!["x"; 200].join("/")), 0).unwrap();
        let mut out = Vec::new();
        table.matches(&topic, "p", &mut out);
        out.sort();
        assert_eq!(out, [(1, ()), (2, ())]);
        table.unsubscribe(&filter, None, &1);
        table.unsubscribe(&filter, Some(&g("g")), &2);
        assert_eq!(table.node_count(), 0);
    }

    const FILTERS: [&str; 10] = [
        "a", "a/b", "a/+", "a/#", "#", "+/b", "+", "$s/a", "$s/#", "/+",
    ];
    const TOPICS: [&str; 9] = ["a", "a/b", "a/c", "b", "/b", "$s/a", "$s", "a/b/c", "/"];
    const GROUPS: [Option<&str>; 3] = [None, Some("g"), Some("h")];

    #[derive(Debug, Clone)]
    enum Op {
        Sub(usize, usize, u32, u32),
        Unsub(usize, usize, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let filter = 0..FILTERS.len();
        let group = 0..GROUPS.len();
        let key = 0u32..4;
        prop_oneof![
            (filter.clone(), group.clone(), key.clone(), any::<u32>())
                .prop_map(|(f, g, k, v)| Op::Sub(f, g, k, v)),
            (filter, group, key).prop_map(|(f, g, k)| Op::Unsub(f, g, k)),
        ]
    }

    /// The value carries its (filter, group) so that each output entry says where it came from.
    type Tagged = (usize, usize, u32);

    fn group_bs(i: usize) -> Option<ByteStr> {
        GROUPS[i].map(ByteStr::from)
    }

    proptest! {
        #[test]
        fn route_table_agrees_with_a_linear_model(
            ops in prop::collection::vec(op(), 0..60),
            strategy in prop::sample::select(ShareStrategy::ALL.to_vec()),
        ) {
            let table: RouteTable<u32, Tagged> = RouteTable::new(strategy);
            // (filter, group, key) -> value
            let mut model: BTreeMap<(usize, usize, u32), u32> = BTreeMap::new();
            for op in &ops {
                match *op {
                    Op::Sub(fi, gi, k, v) => {
                        let got = table.subscribe(&f(FILTERS[fi]), group_bs(gi).as_ref(), k, (fi, gi, v));
                        let want = model.insert((fi, gi, k), v).map(|old| (fi, gi, old));
                        prop_assert_eq!(got, want);
                    }
                    Op::Unsub(fi, gi, k) => {
                        let got = table.unsubscribe(&f(FILTERS[fi]), group_bs(gi).as_ref(), &k);
                        let want = model.remove(&(fi, gi, k)).map(|old| (fi, gi, old));
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for topic in TOPICS {
                let mut out = Vec::new();
                table.matches(&t(topic), "pub", &mut out);
                let mut plain: Vec<(u32, Tagged)> = out.iter().copied().filter(|(_, (_, gi, _))| *gi == 0).collect();
                plain.sort();
                let mut want_plain: Vec<(u32, Tagged)> = model
                    .iter()
                    .filter(|((fi, gi, _), _)| *gi == 0 && f(FILTERS[*fi]).matches(topic))
                    .map(|(&(fi, gi, k), &v)| (k, (fi, gi, v)))
                    .collect();
                want_plain.sort();
                prop_assert_eq!(plain, want_plain);

                let mut shared: BTreeMap<(usize, usize), Vec<(u32, u32)>> = BTreeMap::new();
                for (k, (fi, gi, v)) in out.iter().copied().filter(|(_, (_, gi, _))| *gi != 0) {
                    shared.entry((fi, gi)).or_default().push((k, v));
                }
                let want_groups: BTreeSet<(usize, usize)> = model
                    .keys()
                    .filter(|(fi, gi, _)| *gi != 0 && f(FILTERS[*fi]).matches(topic))
                    .map(|&(fi, gi, _)| (fi, gi))
                    .collect();
                prop_assert_eq!(shared.keys().copied().collect::<BTreeSet<_>>(), want_groups);
                for ((fi, gi), chosen) in shared {
                    prop_assert_eq!(chosen.len(), 1, "one member per group");
                    let (k, v) = chosen[0];
                    prop_assert_eq!(model.get(&(fi, gi, k)), Some(&v), "a current member");
                }
            }
            for (fi, gi, k) in model.keys().copied().collect::<Vec<_>>() {
                prop_assert!(table.unsubscribe(&f(FILTERS[fi]), group_bs(gi).as_ref(), &k).is_some());
            }
            prop_assert_eq!(table.len(), 0);
            prop_assert_eq!(table.node_count(), 0);
            for topic in TOPICS {
                prop_assert!(hits(&table, topic, "p").is_empty());
            }
        }
    }

    #[test]
    fn concurrent_writers_and_readers() {
        const WRITERS: u32 = 4;
        const ROUNDS: u32 = 300;
        let table: Arc<RouteTable<u32, u32>> = Arc::new(RouteTable::new(ShareStrategy::Sticky));
        let filters = ["c/x", "c/+", "c/#", "#"];
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let table = Arc::clone(&table);
            handles.push(std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    for (i, filter) in filters.iter().enumerate() {
                        let group = (round % 2 == 0).then(|| ByteStr::from("g"));
                        table.subscribe(&f(filter), group.as_ref(), w, round);
                        if (round + i as u32) % 3 != 0 {
                            table.unsubscribe(&f(filter), group.as_ref(), &w);
                        }
                    }
                }
                // Leave exactly one normal subscription per writer.
                for filter in filters {
                    table.unsubscribe(&f(filter), Some(&ByteStr::from("g")), &w);
                    table.unsubscribe(&f(filter), None, &w);
                }
                table.subscribe(&f("c/x"), None, w, u32::MAX);
            }));
        }
        for _ in 0..2 {
            let table = Arc::clone(&table);
            handles.push(std::thread::spawn(move || {
                let mut out = Vec::new();
                for _ in 0..ROUNDS * 4 {
                    out.clear();
                    table.matches(&t("c/x"), "p", &mut out);
                    // At most one normal entry per (writer, filter) and one per shared group.
                    assert!(out.len() <= (WRITERS as usize) * filters.len() + filters.len());
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(table.len(), WRITERS as usize);
        let want: Vec<(u32, u32)> = (0..WRITERS).map(|w| (w, u32::MAX)).collect();
        assert_eq!(hits(&table, "c/x", "p"), want);
        assert!(hits(&table, "c/y", "p").is_empty());
        for w in 0..WRITERS {
            table.unsubscribe(&f("c/x"), None, &w);
        }
        assert_eq!(table.node_count(), 0);
    }
}
