//! The environment overlay: `TRIBUTARY_MQTT__MAX_INFLIGHT=64` sets `mqtt.max_inflight`, as EMQX's
//! `EMQX_` variables do.
//!
//! The name after the prefix is the dotted key, upper-cased, with `__` for each dot; keys are
//! lower-cased on the way in (listener names too). The value is read as a HOCON value, so `50`,
//! `true`, `30s`, `"quoted"`, `[...]` and `{...}` mean what they mean in the file; a value HOCON
//! cannot read alone (`127.0.0.1:2883`) is taken as a string. An unquoted string is always taken
//! verbatim: HOCON would cut `/var//lib` at its `//` comment. A value containing `${` is taken
//! verbatim too, so the overlay never resolves a substitution against the process environment.
//! An object merges into the object it replaces; anything else replaces it.
//!
//! Lists cannot be indexed (`..._TOPICS__0__QOS`); set the whole list
//! (`TRIBUTARY_AUTO_SUBSCRIBE__TOPICS=[{topic = "a"}]`).

use std::collections::HashMap;

use hocon_rs::Value;

/// The prefix of every variable this overlay reads.
pub const ENV_PREFIX: &str = "TRIBUTARY_";

/// One applied environment variable: which variable set which dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    /// The variable's name, e.g. `TRIBUTARY_MQTT__MAX_INFLIGHT`.
    var: String,
    /// The dotted key it set, e.g. `mqtt.max_inflight`.
    key: String,
}

impl Override {
    /// The last variable that set `key`, a parent of it, or a child of it: the one an error at
    /// `key` should blame.
    pub(crate) fn find(overrides: &[Self], key: &str) -> Option<String> {
        let within = |outer: &str, inner: &str| {
            inner == outer
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        overrides
            .iter()
            .rev()
            .find(|o| within(&o.key, key) || within(key, &o.key))
            .map(|o| o.var.clone())
    }
}

/// Applies every `TRIBUTARY_` variable of `env` to `tree`, in name order so the result does not
/// depend on the order the environment lists them. Variables whose first segment is not one of
/// `roots`, or with an empty segment, are skipped with a warning. Returns what was applied.
pub(crate) fn apply(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
    roots: &[&str],
    warnings: &mut Vec<String>,
) -> Vec<Override> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut applied = Vec::new();
    for (var, raw) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            warnings.push(format!(
                "ignoring environment variable {var}: the name must be {ENV_PREFIX} followed by \
                 a dotted key with __ for each dot, such as {ENV_PREFIX}MQTT__MAX_INFLIGHT"
            ));
            continue;
        }
        let Some(root) = path.first() else { continue };
        if !roots.contains(&root.as_str()) {
            warnings.push(format!(
                "ignoring environment variable {var}: unknown root key {root}; expected one of {}",
                roots.join(", ")
            ));
            continue;
        }
        set(tree, &path, parse_value(&raw));
        applied.push(Override {
            key: path.join("."),
            var,
        });
    }
    applied
}

/// Reads an environment value as HOCON, falling back to the text itself.
fn parse_value(raw: &str) -> Value {
    let text = raw.trim();
    if has_substitution(text) {
        return Value::String(text.to_owned());
    }
    let parsed = hocon_rs::Config::parse_str::<Value>(&format!("value = {text}\n"), None)
        .ok()
        .and_then(Value::into_object)
        .and_then(|mut object| object.remove("value"));
    match parsed {
        Some(Value::String(_)) if !text.starts_with('"') => Value::String(text.to_owned()),
        Some(value) => value,
        None => Value::String(text.to_owned()),
    }
}

/// Whether `text` holds a `${...}` outside a quoted string: a HOCON substitution, which
/// hocon-rs would resolve against the process environment.
fn has_substitution(text: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    let mut dollar = false;
    for c in text.chars() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '{' if dollar => return true,
            _ => {}
        }
        dollar = c == '$';
    }
    false
}

/// Sets `path` in `tree`, making objects on the way (and replacing a non-object in the way).
fn set(tree: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        let Some(object) = object_mut(node) else {
            return;
        };
        node = object
            .entry(key.clone())
            .or_insert_with(|| Value::Object(HashMap::new()));
    }
    let Some(object) = object_mut(node) else {
        return;
    };
    let merged = match object.remove(last) {
        Some(old @ Value::Object(_)) if matches!(value, Value::Object(_)) => {
            value.with_fallback(old)
        }
        _ => value,
    };
    object.insert(last.clone(), merged);
}

/// `value` as an object, after turning it into an empty one if it was anything else.
fn object_mut(value: &mut Value) -> Option<&mut HashMap<String, Value>> {
    if !matches!(value, Value::Object(_)) {
        *value = Value::Object(HashMap::new());
    }
    value.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_hocon_with_a_string_fallback() {
        let number = parse_value("50");
        assert_eq!(number.as_u64(), Some(50));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        assert_eq!(parse_value("30s"), Value::String("30s".into()));
        assert_eq!(parse_value("\"quoted\""), Value::String("quoted".into()));
        assert_eq!(
            parse_value("127.0.0.1:2883"),
            Value::String("127.0.0.1:2883".into())
        );
        assert_eq!(parse_value("[::]:1883"), Value::String("[::]:1883".into()));
        assert_eq!(parse_value("/var//lib"), Value::String("/var//lib".into()));
        assert_eq!(parse_value("${HOME}"), Value::String("${HOME}".into()));
        assert_eq!(parse_value("[${HOME}]"), Value::String("[${HOME}]".into()));
        assert!(matches!(
            parse_value(r#"["a\"${b}"]"#),
            Value::Array(items) if items == [Value::String("a\"${b}".into())]
        ));
        assert_eq!(parse_value(""), Value::String(String::new()));
        assert!(matches!(parse_value("[1, 2]"), Value::Array(items) if items.len() == 2));
        assert!(matches!(parse_value("{a = 1}"), Value::Object(_)));
    }

    #[test]
    fn set_makes_objects_and_merges_objects() {
        let mut tree = Value::Object(HashMap::new());
        set(&mut tree, &["a".into(), "b".into()], Value::Boolean(true));
        set(&mut tree, &["a".into()], parse_value("{c = 1}"));
        assert_eq!(tree.get_by_path(["a", "b"]), Some(&Value::Boolean(true)));
        assert_eq!(
            tree.get_by_path(["a", "c"]).and_then(Value::as_u64),
            Some(1)
        );
    }

    #[test]
    fn find_blames_the_variable_that_set_a_key_or_its_parent() {
        let overrides = [
            Override {
                var: "TRIBUTARY_MQTT".into(),
                key: "mqtt".into(),
            },
            Override {
                var: "TRIBUTARY_LISTENERS__TCP__X__BIND".into(),
                key: "listeners.tcp.x.bind".into(),
            },
        ];
        assert_eq!(
            Override::find(&overrides, "mqtt.max_inflight").as_deref(),
            Some("TRIBUTARY_MQTT")
        );
        assert_eq!(
            Override::find(&overrides, "listeners.tcp.x").as_deref(),
            Some("TRIBUTARY_LISTENERS__TCP__X__BIND")
        );
        assert_eq!(Override::find(&overrides, "mqttx"), None);
        assert_eq!(Override::find(&overrides, "log.console.level"), None);
    }
}
