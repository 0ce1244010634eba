//! [`RetainedStore`]: the last retained message of each topic.
//!
//! Shared by every connection task: a retained PUBLISH writes here from the publisher's task, and
//! a SUBSCRIBE reads here from the subscriber's task. Writes can be frequent (devices often
//! publish their state retained), so replacing the message of a known topic takes no global
//! lock: values live in per-topic slots found through a lock-free `papaya` map. The topic trie,
//! used to answer wildcard filters without scanning every topic, is behind a `RwLock` that is
//! written only when a topic appears or disappears.
//!
//! Invariant: a topic is in the map if and only if its trie node holds the same slot; both
//! change together, under the trie's write lock. Lock order is always trie, then slot.

use std::sync::{
    Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    atomic::{AtomicUsize, Ordering},
};

use crate::{
    FastHash,
    topic::{TopicFilter, TopicName},
    trie::{ROOT, Trie, level_at},
};

/// Why a retained message was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetainedError {
    /// Storing a new topic would exceed `max_messages`; replacing an existing one never does.
    #[error("retained store is full ({max} messages)")]
    Full {
        /// The configured limit.
        max: usize,
    },
}

/// One topic's retained value; shared by the map and the trie so each sees replacements.
type Slot<V> = Arc<RwLock<V>>;

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic under these locks can only come from `V`'s code or allocation failure; the data
    // is still memory-safe, so carry on rather than fail every later call.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Marks a walk entry whose filter levels are all consumed.
const END: usize = usize::MAX;

/// Retained messages by topic. `V` is the stored message (in the broker, `Arc<Message>`, so
/// clones are cheap). All methods take `&self` and may be called from any number of threads.
pub struct RetainedStore<V> {
    /// At most this many topics; 0 for no limit.
    max_messages: usize,
    index: papaya::HashMap<Box<str>, Slot<V>, FastHash>,
    trie: RwLock<Trie<Option<Slot<V>>>>,
    len: AtomicUsize,
}

impl<V: Clone + Send + Sync> RetainedStore<V> {
    /// An empty store holding at most `max_messages` topics (0: no limit).
    pub fn new(max_messages: usize) -> Self {
        Self {
            max_messages,
            index: papaya::HashMap::with_hasher(FastHash::default()),
            trie: RwLock::new(Trie::default()),
            len: AtomicUsize::new(0),
        }
    }

    /// Stores `value` as the retained message of `topic`, replacing any previous one.
    ///
    /// Fails with [`RetainedError::Full`] only when `topic` is new and the store already holds
    /// `max_messages` topics.
    pub fn insert(&self, topic: &TopicName, value: V) -> Result<(), RetainedError> {
        let index = self.index.pin();
        if let Some(slot) = index.get(topic.as_str()) {
            // The common case, a new state for a known topic: no global lock.
            replace(slot, value);
            return Ok(());
        }
        let mut trie = write(&self.trie);
        // Another writer may have added the topic between the lookup and the lock.
        if let Some(slot) = index.get(topic.as_str()) {
            replace(slot, value);
            return Ok(());
        }
        if self.max_messages != 0 && self.len.load(Ordering::Relaxed) >= self.max_messages {
            return Err(RetainedError::Full {
                max: self.max_messages,
            });
        }
        let slot = Arc::new(RwLock::new(value));
        let node = trie.insert(topic.levels());
        if let Some(data) = trie.data_mut(node) {
            *data = Some(Arc::clone(&slot));
        }
        index.insert(Box::from(topic.as_str()), slot);
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes the retained message of `topic` (a retained PUBLISH with an empty payload),
    /// returning it.
    pub fn remove(&self, topic: &str) -> Option<V> {
        let index = self.index.pin();
        // Deleting an absent topic is common (clients clear topics blindly): no write lock.
        index.get(topic)?;
        let mut trie = write(&self.trie);
        let value = read(index.remove(topic)?).clone();
        if let Some(node) = trie.find(topic.split('/')) {
            if let Some(data) = trie.data_mut(node) {
                *data = None;
            }
            trie.prune(node, Option::is_none);
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(value)
    }

    /// The retained message of `topic`.
    pub fn get(&self, topic: &str) -> Option<V> {
        self.index.pin().get(topic).map(|slot| read(slot).clone())
    }

    /// Appends the retained message of every topic matching `filter` to `out`.
    ///
    /// Wildcards follow [`TopicFilter::matches`]: `a/#` includes `a`, and a filter starting
    /// with a wildcard skips topics starting with `$`. A wildcard-free filter is one lookup.
    pub fn matches(&self, filter: &TopicFilter, out: &mut Vec<V>) {
        if !filter.has_wildcards() {
            out.extend(self.get(filter.as_str()));
            return;
        }
        let trie = read(&self.trie);
        let emit = |id: usize, out: &mut Vec<V>| {
            if let Some(Some(slot)) = trie.node(id).map(|n| &n.data) {
                out.push(read(slot).clone());
            }
        };
        // A `$` topic is a child of the root whose level starts with `$`.
        let visible = |parent: usize, level: &str| parent != ROOT || !level.starts_with('$');
        let f = filter.as_str();
        let mut stack: Vec<(usize, usize)> = vec![(ROOT, 0)];
        let mut subtree: Vec<usize> = Vec::new();
        while let Some((id, pos)) = stack.pop() {
            if pos == END {
                emit(id, out);
                continue;
            }
            let (level, next) = level_at(f, pos);
            let next = next.unwrap_or(END);
            match level {
                "#" => {
                    // This level (`a/#` matches `a`) and everything below it.
                    emit(id, out);
                    subtree.extend(
                        trie.children(id)
                            .filter(|(l, _)| visible(id, l))
                            .map(|(_, c)| c),
                    );
                    while let Some(node) = subtree.pop() {
                        emit(node, out);
                        subtree.extend(trie.children(node).map(|(_, c)| c));
                    }
                }
                "+" => {
                    for (l, child) in trie.children(id) {
                        if visible(id, l) {
                            stack.push((child, next));
                        }
                    }
                }
                literal => {
                    if let Some(child) = trie.child(id, literal) {
                        stack.push((child, next));
                    }
                }
            }
        }
    }

    /// The number of retained messages.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured limit (0: none).
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// Map entries plus trie nodes: 0 once every message is gone, or something leaked.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.index.pin().len() + read(&self.trie).live_nodes()
    }
}

/// Replaces a slot's value, dropping the old one after the lock is released.
fn replace<V>(slot: &RwLock<V>, value: V) {
    let old = std::mem::replace(&mut *write(slot), value);
    drop(old);
}

impl<V> std::fmt::Debug for RetainedStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainedStore")
            .field("max_messages", &self.max_messages)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::ByteStr;
    use crate::topic::strategies::{filter_strategy, topic_strategy};

    fn t(s: &str) -> TopicName {
        TopicName::new(ByteStr::from(s), 128).unwrap()
    }

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(ByteStr::from(s), 128).unwrap()
    }

    fn found(store: &RetainedStore<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.matches(&f(filter), &mut out);
        out.sort();
        out
    }

    #[test]
    fn insert_get_remove() {
        let store = RetainedStore::new(0);
        store.insert(&t("a/b"), 1).unwrap();
        store.insert(&t("a/b"), 2).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("a/b"), Some(2));
        assert_eq!(store.get("a"), None);
        assert_eq!(store.remove("a"), None);
        assert_eq!(store.remove("a/b"), Some(2));
        assert_eq!(store.remove("a/b"), None);
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 0);
    }

    #[test]
    fn limit_applies_to_new_topics_only() {
        let store = RetainedStore::new(2);
        store.insert(&t("a"), 1).unwrap();
        store.insert(&t("b"), 1).unwrap();
        assert_eq!(
            store.insert(&t("c"), 1),
            Err(RetainedError::Full { max: 2 })
        );
        store.insert(&t("a"), 2).unwrap();
        assert_eq!(store.get("a"), Some(2));
        assert_eq!(store.get("c"), None);
        store.remove("b");
        store.insert(&t("c"), 3).unwrap();
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn wildcard_lookups() {
        let store = RetainedStore::new(0);
        for topic in [
            "a",
            "a/b",
            "a/b/c",
            "a//c",
            "/x",
            "b",
            "$SYS/uptime",
            "$SYS",
            "a/$x",
        ] {
            store.insert(&t(topic), topic.to_owned()).unwrap();
        }
        assert_eq!(
            found(&store, "#"),
            ["/x", "a", "a/$x", "a//c", "a/b", "a/b/c", "b"]
        );
        assert_eq!(found(&store, "a/#"), ["a", "a/$x", "a//c", "a/b", "a/b/c"]);
        assert_eq!(found(&store, "a/+"), ["a/$x", "a/b"]);
        assert_eq!(found(&store, "a/+/c"), ["a//c", "a/b/c"]);
        assert_eq!(found(&store, "+"), ["a", "b"]);
        assert_eq!(found(&store, "+/x"), ["/x"]);
        assert_eq!(found(&store, "+/+"), ["/x", "a/$x", "a/b"]);
        assert_eq!(found(&store, "$SYS/#"), ["$SYS", "$SYS/uptime"]);
        assert_eq!(found(&store, "$SYS/+"), ["$SYS/uptime"]);
        assert_eq!(found(&store, "+/uptime"), Vec::<String>::new());
        assert_eq!(found(&store, "$SYS"), ["$SYS"]);
        assert_eq!(found(&store, "a/b"), ["a/b"]);
        assert_eq!(found(&store, "nope"), Vec::<String>::new());
    }

    proptest! {
        #[test]
        fn matches_agrees_with_a_scan(
            ops in prop::collection::vec((topic_strategy(4), prop::bool::weighted(0.7)), 0..40),
            filters in prop::collection::vec(filter_strategy(4), 1..8),
        ) {
            let store = RetainedStore::new(0);
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            for (i, (topic, insert)) in ops.iter().enumerate() {
                if *insert {
                    store.insert(&t(topic), (topic.clone(), i)).unwrap();
                    model.insert(topic.clone(), i as u32);
                } else {
                    let got = store.remove(topic).map(|(_, n)| n as u32);
                    prop_assert_eq!(got, model.remove(topic));
                }
                prop_assert_eq!(store.len(), model.len());
            }
            for filter in &filters {
                let filter = f(filter);
                let mut out = Vec::new();
                store.matches(&filter, &mut out);
                let mut got: Vec<(String, u32)> =
                    out.into_iter().map(|(t, n)| (t, n as u32)).collect();
                got.sort();
                let want: Vec<(String, u32)> = model
                    .iter()
                    .filter(|(topic, _)| filter.matches(topic))
                    .map(|(topic, n)| (topic.clone(), *n))
                    .collect();
                prop_assert_eq!(got, want, "filter {}", filter);
            }
            for topic in model.keys() {
                prop_assert!(store.remove(topic).is_some());
            }
            prop_assert_eq!(store.len(), 0);
            prop_assert_eq!(store.node_count(), 0);
        }
    }

    #[test]
    fn concurrent_inserts_removes_and_lookups() {
        const ROUNDS: usize = 300;
        // Values are (topic index, writer round), so readers can tell topics apart.
        let store: Arc<RetainedStore<(usize, usize)>> = Arc::new(RetainedStore::new(8));
        let topics = ["r/a", "r/b", "r/a/x", "r", "$r/a"];
        let mut handles = Vec::new();
        for w in 0..3usize {
            let store = Arc::clone(&store);
            handles.push(std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    for (i, topic) in topics.iter().enumerate() {
                        // The limit is never hit: 5 topics, 8 slots.
                        store.insert(&t(topic), (i, w * ROUNDS + round)).unwrap();
                        if (round + i + w) % 2 == 0 {
                            store.remove(topic);
                        }
                    }
                }
            }));
        }
        for _ in 0..2 {
            let store = Arc::clone(&store);
            handles.push(std::thread::spawn(move || {
                let mut out = Vec::new();
                for _ in 0..ROUNDS * 2 {
                    for filter in ["r/#", "#"] {
                        out.clear();
                        store.matches(&f(filter), &mut out);
                        let mut seen: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
                        seen.sort_unstable();
                        seen.dedup();
                        // Each topic at most once, and never the `$` topic.
                        assert_eq!(seen.len(), out.len());
                        assert!(seen.iter().all(|&i| i < 4));
                    }
                }
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        let mut out = Vec::new();
        store.matches(&f("#"), &mut out);
        let mut dollar = Vec::new();
        store.matches(&f("$r/#"), &mut dollar);
        assert_eq!(out.len() + dollar.len(), store.len());
        for topic in topics {
            store.remove(topic);
        }
        assert_eq!(store.len(), 0);
        assert_eq!(store.node_count(), 0);
    }
}
