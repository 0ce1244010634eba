//! Topic names, topic filters and shared-subscription filters (MQTT 5.0 §4.7, 3.1.1 §4.7).
//!
//! Parse, don't validate: a [`TopicName`] or [`TopicFilter`] can only be built through its
//! checking constructor, so the route table, the retained store and the ACL code never see an
//! empty topic, a wildcard in a topic name, a misplaced `#` or more levels than configured.
//!
//! Everything here is iterative: the level count of a topic is bounded only by configuration
//! and the 65535-byte string limit, so no function recurses on it (RELIABILITY.md, "no recursion
//! on depth").

use std::fmt;

use crate::ByteStr;

/// The longest topic a UTF-8 string field can carry on the wire (spec 1.5.4).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The group name given to EMQX's `$queue/{filter}` shared subscriptions.
pub const QUEUE_GROUP: &str = "$queue";

const SHARE_PREFIX: &str = "$share/";
const QUEUE_PREFIX: &str = "$queue/";

/// Why a topic name, topic filter or shared-subscription filter was refused.
///
/// For a PUBLISH topic the broker answers `0x90` Topic Name invalid; for a SUBSCRIBE filter,
/// `0x8F` Topic Filter invalid (3.1.1: close, or SUBACK `0x80`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic or filter is the empty string [MQTT-4.7.3-1].
    #[error("topic is empty")]
    Empty,
    /// Longer than a UTF-8 string field can carry.
    #[error("topic is {len} bytes, more than {MAX_TOPIC_LEN}")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// Contains U+0000 [MQTT-4.7.3-2].
    #[error("topic contains U+0000")]
    NullChar,
    /// More levels than the configured `max_topic_levels`.
    #[error("topic has {levels} levels, more than the limit of {max}")]
    TooManyLevels {
        /// Levels in the topic (`/` count + 1).
        levels: usize,
        /// The configured limit.
        max: usize,
    },
    /// A topic name contains `+` or `#` [MQTT-3.3.2-2].
    #[error("topic name contains a wildcard")]
    WildcardInTopicName,
    /// A `#` that is not the whole last level of a filter [MQTT-4.7.1-1].
    #[error("'#' must be the whole last level of a topic filter")]
    MisplacedMultiLevelWildcard,
    /// A `+` that is not a whole level of a filter [MQTT-4.7.1-2].
    #[error("'+' must occupy a whole level of a topic filter")]
    MisplacedSingleLevelWildcard,
    /// `$share//filter`: the share name is empty.
    #[error("shared subscription has an empty share name")]
    EmptyShareName,
    /// The share name contains `+` or `#` [MQTT-4.8.2-2].
    #[error("share name contains a wildcard")]
    InvalidShareName,
    /// `$share/group` or `$share/group/` or `$queue/`: no filter after the share name.
    #[error("shared subscription has no topic filter")]
    MissingSharedFilter,
}

/// Checks shared by names and filters: emptiness, byte length, U+0000 and the level count.
///
/// `max_levels == 0` means no level limit (the byte limit still bounds it to 32768 levels).
fn check_common(s: &str, max_levels: usize) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: s.len() });
    }
    let mut separators = 0usize;
    for b in s.bytes() {
        match b {
            0 => return Err(TopicError::NullChar),
            b'/' => separators += 1,
            _ => {}
        }
    }
    let levels = separators + 1;
    if max_levels != 0 && levels > max_levels {
        return Err(TopicError::TooManyLevels {
            levels,
            max: max_levels,
        });
    }
    Ok(())
}

/// Slices `s` without copying; the cut points are at ASCII `/`, so the slice is UTF-8.
fn sub_bytestr(s: &ByteStr, start: usize) -> ByteStr {
    let bytes = s.as_bytes();
    if start >= bytes.len() {
        return ByteStr::new();
    }
    // The re-check cannot fail at an ASCII boundary; copying is the non-panicking fallback.
    ByteStr::from_utf8(bytes.slice(start..))
        .unwrap_or_else(|_| ByteStr::from(s.as_str().get(start..).unwrap_or_default()))
}

/// A validated topic name, as carried by PUBLISH and Will messages.
///
/// Non-empty, at most [`MAX_TOPIC_LEN`] bytes, no `+`, `#` or U+0000, and at most the configured
/// number of levels. Backed by [`ByteStr`], so it shares bytes with the packet it came from.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(ByteStr);

impl TopicName {
    /// Validates `s` as a topic name with at most `max_levels` levels (`0`: no level limit).
    pub fn new(s: ByteStr, max_levels: usize) -> Result<Self, TopicError> {
        check_common(&s, max_levels)?;
        if s.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(TopicError::WildcardInTopicName);
        }
        Ok(Self(s))
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying shared string.
    pub fn as_bytestr(&self) -> &ByteStr {
        &self.0
    }

    /// Consumes the name into its shared string.
    pub fn into_bytestr(self) -> ByteStr {
        self.0
    }

    /// Whether the topic starts with `$` (server-reserved: not matched by a leading wildcard,
    /// [MQTT-4.7.2-1]).
    pub fn is_dollar(&self) -> bool {
        self.as_str().starts_with('$')
    }

    /// Whether the topic is `$SYS` or below it (broker statistics: clients may not publish here).
    pub fn is_sys(&self) -> bool {
        let s = self.as_str();
        s == "$SYS" || s.starts_with("$SYS/")
    }

    /// The levels, split on `/` (empty levels included: `a//b` has three).
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.as_str().split('/')
    }

    /// The number of levels.
    pub fn level_count(&self) -> usize {
        self.as_str().bytes().filter(|&b| b == b'/').count() + 1
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated topic filter, as carried by SUBSCRIBE and UNSUBSCRIBE (without any
/// `$share/{group}/` prefix: see [`SubscriptionFilter`]).
///
/// Non-empty, at most [`MAX_TOPIC_LEN`] bytes, no U+0000, `#` only as the whole last level, `+`
/// only as a whole level, and at most the configured number of levels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(ByteStr);

impl TopicFilter {
    /// Validates `s` as a topic filter with at most `max_levels` levels (`0`: no level limit).
    pub fn new(s: ByteStr, max_levels: usize) -> Result<Self, TopicError> {
        check_common(&s, max_levels)?;
        let mut levels = s.split('/').peekable();
        while let Some(level) = levels.next() {
            if level.contains('#') && (level != "#" || levels.peek().is_some()) {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
            if level.contains('+') && level != "+" {
                return Err(TopicError::MisplacedSingleLevelWildcard);
            }
        }
        Ok(Self(s))
    }

    /// The filter as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The underlying shared string.
    pub fn as_bytestr(&self) -> &ByteStr {
        &self.0
    }

    /// Consumes the filter into its shared string.
    pub fn into_bytestr(self) -> ByteStr {
        self.0
    }

    /// Whether the filter contains `+` or `#` (otherwise it matches exactly one topic name).
    pub fn has_wildcards(&self) -> bool {
        self.as_str().bytes().any(|b| b == b'+' || b == b'#')
    }

    /// Whether the first level is a wildcard, which keeps it away from `$` topics.
    pub fn starts_with_wildcard(&self) -> bool {
        self.as_str().starts_with(['+', '#'])
    }

    /// The levels, split on `/`.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.as_str().split('/')
    }

    /// Whether `topic` (a topic name) matches this filter, per MQTT §4.7.
    ///
    /// `+` matches exactly one level, which may be empty; `#` matches any number of levels,
    /// including none, so `a/#` matches `a`; and a filter that starts with a wildcard never
    /// matches a topic that starts with `$` [MQTT-4.7.2-1].
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') && self.starts_with_wildcard() {
            return false;
        }
        let mut filter_levels = self.levels();
        let mut topic_levels = topic.split('/');
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter as it appears in SUBSCRIBE: a [`TopicFilter`], possibly shared.
///
/// `$share/{group}/{filter}` (MQTT 5.0 §4.8.2) and EMQX's `$queue/{filter}` (group
/// [`QUEUE_GROUP`]) are shared; anything else is an ordinary filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionFilter {
    /// The topic filter proper, without the share prefix.
    pub filter: TopicFilter,
    /// The share name, for shared subscriptions.
    pub share_group: Option<ByteStr>,
}

impl SubscriptionFilter {
    /// Parses a SUBSCRIBE/UNSUBSCRIBE filter; `max_levels` applies to the filter proper.
    pub fn parse(raw: &ByteStr, max_levels: usize) -> Result<Self, TopicError> {
        let s = raw.as_str();
        if s.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong { len: s.len() });
        }
        if let Some(rest) = s.strip_prefix(SHARE_PREFIX) {
            let Some(slash) = rest.find('/') else {
                return Err(if rest.is_empty() {
                    TopicError::EmptyShareName
                } else {
                    TopicError::MissingSharedFilter
                });
            };
            let group = rest.get(..slash).unwrap_or_default();
            if group.is_empty() {
                return Err(TopicError::EmptyShareName);
            }
            if group.contains(['+', '#']) {
                return Err(TopicError::InvalidShareName);
            }
            if group.contains('\0') {
                return Err(TopicError::NullChar);
            }
            let filter_start = SHARE_PREFIX.len() + slash + 1;
            if filter_start >= s.len() {
                return Err(TopicError::MissingSharedFilter);
            }
            let filter = TopicFilter::new(sub_bytestr(raw, filter_start), max_levels)?;
            let group_bytes = raw
                .as_bytes()
                .slice(SHARE_PREFIX.len()..SHARE_PREFIX.len() + slash);
            let share_group =
                ByteStr::from_utf8(group_bytes).unwrap_or_else(|_| ByteStr::from(group));
            return Ok(Self {
                filter,
                share_group: Some(share_group),
            });
        }
        if s.starts_with(QUEUE_PREFIX) {
            if s.len() == QUEUE_PREFIX.len() {
                return Err(TopicError::MissingSharedFilter);
            }
            let filter = TopicFilter::new(sub_bytestr(raw, QUEUE_PREFIX.len()), max_levels)?;
            return Ok(Self {
                filter,
                share_group: Some(ByteStr::from_static(QUEUE_GROUP)),
            });
        }
        Ok(Self {
            filter: TopicFilter::new(raw.clone(), max_levels)?,
            share_group: None,
        })
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share_group.is_some()
    }
}

/// Random topic names and filters over a small alphabet (empty levels, `$` levels, `+`, `#`),
/// so that matches are frequent: for the property tests of every matcher.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    /// Topic names of 1 to `max_levels - 1` levels.
    pub(crate) fn topic_strategy(max_levels: usize) -> impl Strategy<Value = String> {
        (
            prop::bool::weighted(0.2),
            prop::collection::vec(
                prop::sample::select(vec!["", "a", "b", "$c"]),
                1..max_levels,
            ),
        )
            .prop_map(|(dollar, levels)| {
                let t = levels.join("/");
                if dollar { format!("${t}") } else { t }
            })
            .prop_filter("non-empty", |t| !t.is_empty())
    }

    /// Filters of 1 to `max_levels - 1` levels, some ending in `#`, and `#` alone.
    pub(crate) fn filter_strategy(max_levels: usize) -> impl Strategy<Value = String> {
        let levels = (
            prop::collection::vec(
                prop::sample::select(vec!["", "a", "b", "$a", "+"]),
                1..max_levels,
            ),
            prop::bool::ANY,
        )
            .prop_map(|(levels, hash)| {
                let mut f = levels.join("/");
                if hash {
                    f.push_str("/#");
                }
                f
            })
            .prop_filter("non-empty", |f| !f.is_empty());
        prop_oneof![9 => levels, 1 => Just("#".to_owned())]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{strategies::*, *};

    const MAX: usize = 128;

    fn name(s: &str) -> Result<TopicName, TopicError> {
        TopicName::new(ByteStr::from(s), MAX)
    }

    fn filter(s: &str) -> Result<TopicFilter, TopicError> {
        TopicFilter::new(ByteStr::from(s), MAX)
    }

    fn m(f: &str, t: &str) -> bool {
        let f = filter(f).unwrap();
        name(t).unwrap();
        f.matches(t)
    }

    #[test]
    fn topic_names() {
        assert_eq!(name(""), Err(TopicError::Empty));
        assert_eq!(name("a/+"), Err(TopicError::WildcardInTopicName));
        assert_eq!(name("a/#"), Err(TopicError::WildcardInTopicName));
        assert_eq!(name("a+b"), Err(TopicError::WildcardInTopicName));
        assert_eq!(name("a\0b"), Err(TopicError::NullChar));
        assert_eq!(
            name(&"a".repeat(MAX_TOPIC_LEN + 1)),
            Err(TopicError::TooLong {
                len: MAX_TOPIC_LEN + 1
            })
        );
        for ok in [
            "/", "a", "/finance", "a//b", "a/", "$SYS/x", "$foo", " ", "ü/€",
        ] {
            assert_eq!(name(ok).unwrap().as_str(), ok);
        }
        let n = name("$SYS/broker/uptime").unwrap();
        assert!(n.is_dollar() && n.is_sys());
        assert!(name("$SYS").unwrap().is_sys());
        let n = name("$SYSTEM/x").unwrap();
        assert!(n.is_dollar() && !n.is_sys());
        assert!(!name("a/$SYS").unwrap().is_dollar());
        assert_eq!(
            name("a//b").unwrap().levels().collect::<Vec<_>>(),
            ["a", "", "b"]
        );
        assert_eq!(name("/").unwrap().level_count(), 2);
    }

    #[test]
    fn level_limits() {
        let at_limit = vec!["x"; MAX].join("/");
        let over = vec!["x"; MAX + 1].join("/");
        assert!(name(&at_limit).is_ok());
        assert!(filter(&at_limit).is_ok());
        assert_eq!(
            name(&over),
            Err(TopicError::TooManyLevels {
                levels: MAX + 1,
                max: MAX
            })
        );
        assert!(matches!(
            filter(&over),
            Err(TopicError::TooManyLevels { .. })
        ));
        // Empty levels count: 128 slashes are 129 levels.
        assert!(name(&"/".repeat(MAX)).is_err());
        assert!(name(&"/".repeat(MAX - 1)).is_ok());
        // 0 disables the level limit; the byte limit still applies.
        assert!(TopicName::new(ByteStr::from("/".repeat(30_000)), 0).is_ok());
        assert!(TopicName::new(ByteStr::from("a/b"), 1).is_err());
    }

    #[test]
    fn topic_filters() {
        for ok in [
            "#",
            "+",
            "+/+",
            "/+",
            "a/#",
            "a/+/b",
            "+/tennis/#",
            "sport/tennis/player1/#",
            "$SYS/#",
            "a//+",
            "/",
        ] {
            let f = filter(ok).unwrap();
            assert_eq!(f.as_str(), ok);
        }
        assert_eq!(filter(""), Err(TopicError::Empty));
        assert_eq!(filter("a\0"), Err(TopicError::NullChar));
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "#/a",
            "a/b#",
            "##",
        ] {
            assert_eq!(
                filter(bad),
                Err(TopicError::MisplacedMultiLevelWildcard),
                "{bad}"
            );
        }
        for bad in ["sport+", "a/b+/c", "++", "+a"] {
            assert_eq!(
                filter(bad),
                Err(TopicError::MisplacedSingleLevelWildcard),
                "{bad}"
            );
        }
        assert!(filter("a/+").unwrap().has_wildcards());
        assert!(!filter("a/b").unwrap().has_wildcards());
    }

    #[test]
    fn spec_matching_examples() {
        // §4.7.1.2
        let f = "sport/tennis/player1/#";
        assert!(m(f, "sport/tennis/player1"));
        assert!(m(f, "sport/tennis/player1/ranking"));
        assert!(m(f, "sport/tennis/player1/score/wimbledon"));
        assert!(!m(f, "sport/tennis/player2"));
        assert!(m("sport/#", "sport"));
        assert!(m("#", "sport/tennis"));
        // §4.7.1.3
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(m("sport/tennis/+", "sport/tennis/player2"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(m("+/tennis/#", "sport/tennis"));
        // §4.7.2: `$` topics.
        assert!(!m("#", "$SYS/broker/uptime"));
        assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS"));
        assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!m("+", "$foo"));
        assert!(m("$foo", "$foo"));
        // A `$` deeper than the first level is an ordinary character.
        assert!(m("a/+", "a/$b"));
        assert!(m("#", "a/$b"));
        // Case sensitivity and empty levels.
        assert!(!m("ACCOUNTS", "Accounts"));
        assert!(m("a/+/c", "a//c"));
        assert!(m("a//b", "a//b"));
        assert!(!m("a/b", "a/b/"));
        assert!(m("a/b/+", "a/b/"));
        assert!(m("a/b/#", "a/b/"));
    }

    fn shared(s: &str) -> Result<SubscriptionFilter, TopicError> {
        SubscriptionFilter::parse(&ByteStr::from(s), MAX)
    }

    #[test]
    fn shared_filters() {
        let s = shared("$share/g/a/b").unwrap();
        assert_eq!(s.filter.as_str(), "a/b");
        assert_eq!(s.share_group.as_deref(), Some("g"));
        assert!(s.is_shared());
        let s = shared("$share/g/#").unwrap();
        assert_eq!(s.filter.as_str(), "#");
        let s = shared("$share/g//").unwrap();
        assert_eq!(s.filter.as_str(), "/");
        let s = shared("$queue/a/b").unwrap();
        assert_eq!(s.filter.as_str(), "a/b");
        assert_eq!(s.share_group.as_deref(), Some(QUEUE_GROUP));
        let s = shared("a/+").unwrap();
        assert!(!s.is_shared());
        assert_eq!(s.filter.as_str(), "a/+");
        // `$share` without the trailing slash is an ordinary topic level.
        assert!(!shared("$share").unwrap().is_shared());
        assert!(!shared("$sharex/g/a").unwrap().is_shared());

        assert_eq!(shared("$share//a"), Err(TopicError::EmptyShareName));
        assert_eq!(shared("$share/"), Err(TopicError::EmptyShareName));
        assert_eq!(shared("$share/g"), Err(TopicError::MissingSharedFilter));
        assert_eq!(shared("$share/g/"), Err(TopicError::MissingSharedFilter));
        assert_eq!(shared("$share/g+/a"), Err(TopicError::InvalidShareName));
        assert_eq!(shared("$share/#/a"), Err(TopicError::InvalidShareName));
        assert_eq!(shared("$share/g\0/a"), Err(TopicError::NullChar));
        assert_eq!(
            shared("$share/g/a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(shared("$queue/"), Err(TopicError::MissingSharedFilter));
        assert!(matches!(
            SubscriptionFilter::parse(&ByteStr::from("$share/g/a/b/c"), 2),
            Err(TopicError::TooManyLevels { levels: 3, max: 2 })
        ));
    }

    #[test]
    fn shared_filter_shares_bytes() {
        let raw = ByteStr::from("$share/group/a/b");
        let s = SubscriptionFilter::parse(&raw, MAX).unwrap();
        let base = raw.as_bytes().as_ptr() as usize;
        assert_eq!(
            s.filter.as_bytestr().as_bytes().as_ptr() as usize,
            base + 13
        );
        let group = s.share_group.unwrap();
        assert_eq!(group.as_bytes().as_ptr() as usize, base + 7);
    }

    /// The reference: split both into vectors and compare index by index.
    fn naive_matches(filter: &str, topic: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
            return false;
        }
        for (i, level) in f.iter().enumerate() {
            if *level == "#" {
                return true;
            }
            match t.get(i) {
                None => return false,
                Some(tl) if *level != "+" && level != tl => return false,
                Some(_) => {}
            }
        }
        f.len() == t.len()
    }

    proptest! {
        #[test]
        fn matches_agrees_with_reference(f in filter_strategy(5), t in topic_strategy(5)) {
            let filter = filter(&f).unwrap();
            name(&t).unwrap();
            prop_assert_eq!(filter.matches(&t), naive_matches(&f, &t), "{} vs {}", f, t);
        }

        #[test]
        fn parsing_never_panics(s in "[a-c$/+#\\x00]{0,12}") {
            let raw = ByteStr::from(s.as_str());
            let _ = TopicName::new(raw.clone(), 4);
            let _ = TopicFilter::new(raw.clone(), 4);
            let _ = SubscriptionFilter::parse(&raw, 4);
            let _ = SubscriptionFilter::parse(&ByteStr::from(format!("$share/{s}")), 4);
        }
    }
}
