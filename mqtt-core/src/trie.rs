//! A level trie stored in a slab, shared by the route table and the retained store.
//!
//! Nodes live in one `Vec` and refer to each other by index, with a parent index on each node.
//! That keeps every walk iterative (the callers use explicit stacks), lets pruning climb from a
//! leaf without recursion, and makes dropping the whole trie a flat loop over a `Vec` instead of
//! a recursive drop of nested boxes, whose depth a client would control through topic levels.

use std::collections::HashMap;

use crate::FastHash;

/// The index of the root node, which always exists and stands for the empty prefix.
pub(crate) const ROOT: usize = 0;

/// One level of the trie.
#[derive(Debug)]
pub(crate) struct Node<T> {
    /// Index of the parent; `ROOT` for the root itself.
    parent: usize,
    /// The level this node stands for, the key of this node in its parent's `children`.
    token: Box<str>,
    /// Child nodes by level.
    children: HashMap<Box<str>, usize, FastHash>,
    /// What the user of the trie stores at this prefix.
    pub(crate) data: T,
}

impl<T: Default> Node<T> {
    fn new(parent: usize, token: Box<str>) -> Self {
        Self {
            parent,
            token,
            children: HashMap::default(),
            data: T::default(),
        }
    }
}

/// A trie keyed by `/`-separated levels, with payload `T` on every node.
#[derive(Debug)]
pub(crate) struct Trie<T> {
    nodes: Vec<Node<T>>,
    /// Slots of pruned nodes, reused before the slab grows.
    free: Vec<usize>,
    /// Nodes in use, the root excluded.
    live: usize,
}

impl<T: Default> Default for Trie<T> {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new(ROOT, Box::from(""))],
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T: Default> Trie<T> {
    /// The node at `id`, if that slot exists.
    pub(crate) fn node(&self, id: usize) -> Option<&Node<T>> {
        self.nodes.get(id)
    }

    /// The payload at `id`, if that slot exists.
    pub(crate) fn data_mut(&mut self, id: usize) -> Option<&mut T> {
        self.nodes.get_mut(id).map(|n| &mut n.data)
    }

    /// The child of `id` for `level`.
    pub(crate) fn child(&self, id: usize, level: &str) -> Option<usize> {
        self.nodes.get(id)?.children.get(level).copied()
    }

    /// The node for the whole path `levels`, if present.
    pub(crate) fn find<'a>(&self, levels: impl Iterator<Item = &'a str>) -> Option<usize> {
        let mut id = ROOT;
        for level in levels {
            id = self.child(id, level)?;
        }
        Some(id)
    }

    /// The node for the whole path `levels`, creating missing nodes.
    pub(crate) fn insert<'a>(&mut self, levels: impl Iterator<Item = &'a str>) -> usize {
        let mut id = ROOT;
        for level in levels {
            id = match self.child(id, level) {
                Some(child) => child,
                None => self.add_child(id, level),
            };
        }
        id
    }

    fn add_child(&mut self, parent: usize, level: &str) -> usize {
        let node = Node::new(parent, Box::from(level));
        let id = match self.free.pop() {
            Some(slot) => {
                if let Some(n) = self.nodes.get_mut(slot) {
                    *n = node;
                }
                slot
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.insert(Box::from(level), id);
        }
        self.live += 1;
        id
    }

    /// Removes `id` and then each ancestor in turn while it has no children and `is_empty` says
    /// its payload is empty. The root is never removed.
    pub(crate) fn prune(&mut self, mut id: usize, is_empty: impl Fn(&T) -> bool) {
        while id != ROOT {
            let Some(node) = self.nodes.get_mut(id) else {
                return;
            };
            if !node.children.is_empty() || !is_empty(&node.data) {
                return;
            }
            let parent = node.parent;
            let token = std::mem::take(&mut node.token);
            // Drop the payload and the child map now rather than when the slot is reused.
            *node = Node::new(ROOT, Box::from(""));
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.remove(&token);
            }
            self.free.push(id);
            self.live -= 1;
            id = parent;
        }
        if self.live == 0 {
            // Everything is gone: give the slab's memory back, not just its slots.
            self.nodes.truncate(1);
            self.nodes.shrink_to_fit();
            self.free = Vec::new();
        }
    }

    /// The children of `id` as (level, index) pairs.
    pub(crate) fn children(&self, id: usize) -> impl Iterator<Item = (&str, usize)> {
        self.nodes
            .get(id)
            .into_iter()
            .flat_map(|n| n.children.iter().map(|(k, &v)| (&**k, v)))
    }

    /// Nodes in use, the root excluded.
    #[cfg(test)]
    pub(crate) fn live_nodes(&self) -> usize {
        self.live
    }
}

/// The level starting at byte `start` of `s`, and the start of the next level, if any.
///
/// `s` is split on `/` without allocating: `a//b` yields `a`, `` and `b`, and `a/` yields `a`
/// then ``.
pub(crate) fn level_at(s: &str, start: usize) -> (&str, Option<usize>) {
    let rest = s.get(start..).unwrap_or_default();
    match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or_default(), Some(start + i + 1)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_prune() {
        let mut t: Trie<bool> = Trie::default();
        let ab = t.insert("a/b".split('/'));
        let ac = t.insert("a/c".split('/'));
        assert_eq!(t.live_nodes(), 3);
        assert_eq!(t.find("a/b".split('/')), Some(ab));
        *t.data_mut(ab).unwrap() = true;
        *t.data_mut(ac).unwrap() = true;
        *t.data_mut(ac).unwrap() = false;
        t.prune(ac, |d| !d);
        assert_eq!(t.live_nodes(), 2);
        assert_eq!(t.find("a/c".split('/')), None);
        // Reuses the freed slot.
        let ad = t.insert("a/d".split('/'));
        assert_eq!(ad, ac);
        t.prune(ad, |d| !d);
        *t.data_mut(ab).unwrap() = false;
        t.prune(ab, |d| !d);
        assert_eq!(t.live_nodes(), 0);
        assert_eq!(t.nodes.len(), 1);
        assert!(t.nodes[ROOT].children.is_empty());
    }

    #[test]
    fn levels() {
        assert_eq!(level_at("a//b", 0), ("a", Some(2)));
        assert_eq!(level_at("a//b", 2), ("", Some(3)));
        assert_eq!(level_at("a//b", 3), ("b", None));
        assert_eq!(level_at("a/", 2), ("", None));
    }

    #[test]
    fn deep_trie_drops_without_recursion() {
        let mut t: Trie<u8> = Trie::default();
        let deep = vec!["x"; 100_000].join("/");
        let leaf = t.insert(deep.split('/'));
        assert_eq!(t.live_nodes(), 100_000);
        t.prune(leaf, |d| *d == 0);
        assert_eq!(t.live_nodes(), 0);
        t.insert(deep.split('/'));
        drop(t);
    }
}
