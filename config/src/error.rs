//! [`ConfigError`]: why a configuration was refused, in one line that names the key.

use std::fmt::Write as _;
use std::path::PathBuf;

use hocon_rs::Value;
use serde_path_to_error::Segment;

use crate::env::Override;

/// Why a configuration was refused. `Display` is one line, fit for the log and the terminal:
/// `invalid config: mqtt.max_inflight = "abc": expected an integer between 1 and 65535`.
///
/// When the offending key was set by an environment variable, the line ends with
/// `(set by TRIBUTARY_...)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid HOCON.
    #[error("invalid config file {origin}: {message}")]
    Syntax {
        /// The file name (or `<embedded defaults>`).
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A key the configuration does not have (a typo, or a setting Tributary lacks).
    #[error("invalid config: unknown key {key}; expected one of {expected}{}", set_by_suffix(.set_by.as_deref()))]
    UnknownKey {
        /// The dotted key, e.g. `mqtt.max_inflght`.
        key: String,
        /// The keys accepted at that place, comma-separated.
        expected: String,
        /// The environment variable that set it, if one did.
        set_by: Option<String>,
    },
    /// A required key is missing (only possible in list entries and new map entries; every
    /// other key has a default).
    #[error("invalid config: missing key {key}{}", set_by_suffix(.set_by.as_deref()))]
    MissingKey {
        /// The dotted key, e.g. `auto_subscribe.topics[0].topic`.
        key: String,
        /// The environment variable that set its parent, if one did.
        set_by: Option<String>,
    },
    /// A value of the wrong type or out of range.
    #[error("invalid config: {key} = {value}: {expected}{}", set_by_suffix(.set_by.as_deref()))]
    InvalidValue {
        /// The dotted key, e.g. `mqtt.max_inflight`.
        key: String,
        /// The value as written, strings quoted.
        value: String,
        /// What was expected, e.g. `expected an integer between 1 and 65535`.
        expected: String,
        /// The environment variable that set it, if one did.
        set_by: Option<String>,
    },
}

/// The ` (set by VAR)` tail of a message.
fn set_by_suffix(var: Option<&str>) -> String {
    var.map(|var| format!(" (set by {var})"))
        .unwrap_or_default()
}

impl ConfigError {
    /// A syntax error, flattened to one line.
    pub(crate) fn syntax(origin: &str, error: &hocon_rs::Error) -> Self {
        Self::Syntax {
            origin: origin.to_owned(),
            message: one_line(&error.to_string()),
        }
    }

    /// An invalid value found by a check after deserializing.
    pub(crate) fn invalid(
        key: &str,
        tree: &Value,
        expected: String,
        overrides: &[Override],
    ) -> Self {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        Self::InvalidValue {
            key: key.to_owned(),
            value: lookup_keys(tree, &path).map_or_else(|| "?".to_owned(), render),
            expected,
            set_by: Override::find(overrides, key),
        }
    }

    /// Turns a deserialization error into the error that names the key, the value as written in
    /// `tree`, and what was expected.
    pub(crate) fn from_deserialize(
        error: &serde_path_to_error::Error<hocon_rs::Error>,
        tree: &Value,
        overrides: &[Override],
    ) -> Self {
        let key = error.path().to_string();
        let message = one_line(&error.inner().to_string());
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let expected = rest
                .split_once(", expected one of ")
                .or_else(|| rest.split_once(", expected "))
                .map_or("no keys here", |(_, list)| list)
                .replace('`', "");
            return Self::UnknownKey {
                set_by: Override::find(overrides, &key),
                key,
                expected,
            };
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.trim_end_matches('`');
            let key = if key == "." {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            };
            return Self::MissingKey {
                set_by: Override::find(overrides, &key),
                key,
            };
        }
        // Our own helpers say "expected ..."; serde's say "invalid type: ..., expected ...".
        let expected = match message.find("expected ") {
            Some(0) | None => message.clone(),
            Some(_) => message
                .rsplit_once(", expected ")
                .map_or(message.clone(), |(_, what)| format!("expected {what}")),
        };
        Self::InvalidValue {
            value: lookup(tree, error.path()).map_or_else(|| "?".to_owned(), render),
            set_by: Override::find(overrides, &key),
            key,
            expected,
        }
    }
}

/// The value at a serde path in the merged tree.
fn lookup<'a>(tree: &'a Value, path: &serde_path_to_error::Path) -> Option<&'a Value> {
    path.iter().try_fold(tree, |node, segment| match segment {
        Segment::Map { key } => node.as_object()?.get(key),
        Segment::Seq { index } => node.as_array()?.get(*index),
        _ => None,
    })
}

/// The value at a key path in the merged tree.
fn lookup_keys<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(tree, |node, key| node.as_object()?.get(key))
}

/// The longest rendering of a value put in an error line.
const MAX_RENDERED: usize = 200;

/// Renders a value on one line, strings quoted, object keys sorted.
pub(crate) fn render(value: &Value) -> String {
    let mut out = String::new();
    render_into(value, &mut out);
    if out.len() > MAX_RENDERED {
        let cut = (0..=MAX_RENDERED)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

fn render_into(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{key} = ");
                if let Some(item) = map.get(key) {
                    render_into(item, out);
                }
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Collapses whitespace runs (newlines included) to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
