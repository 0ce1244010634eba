//! OMA JSON (`application/vnd.oma.lwm2m+json`, Content-Format 11543), LwM2M 1.0.2 §6.4.4:
//! `{"bn": base name, "e": [{"n": name, "v"|"bv"|"ov"|"sv": value, "t": time}]}`.

use serde::Deserialize;
use thiserror::Error;

use crate::content::{Entry, RawValue};

/// Most entries accepted in one payload.
pub const MAX_ENTRIES: usize = 4096;

/// Why an OMA JSON payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OmaJsonError {
    /// Not JSON of the expected shape.
    #[error("OMA JSON: {0}")]
    Syntax(String),
    /// An entry has no value or more than one.
    #[error("OMA JSON entry {0:?} needs exactly one of v, bv, ov, sv")]
    Value(String),
    /// More than [`MAX_ENTRIES`] entries.
    #[error("OMA JSON holds more than {MAX_ENTRIES} entries")]
    TooManyEntries,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    bn: String,
    e: Vec<Element>,
}

#[derive(Deserialize)]
struct Element {
    #[serde(default)]
    n: String,
    v: Option<f64>,
    bv: Option<bool>,
    ov: Option<String>,
    sv: Option<String>,
    // `t` (time) is accepted and ignored, as EMQX: unknown fields are skipped.
}

/// Decodes an OMA JSON payload into entries with full paths (`bn` + `n`).
pub fn decode(payload: &[u8]) -> Result<Vec<Entry>, OmaJsonError> {
    let doc: Doc =
        serde_json::from_slice(payload).map_err(|e| OmaJsonError::Syntax(e.to_string()))?;
    if doc.e.len() > MAX_ENTRIES {
        return Err(OmaJsonError::TooManyEntries);
    }
    doc.e
        .into_iter()
        .map(|e| {
            let path = format!("{}{}", doc.bn, e.n);
            let value = match (e.v, e.bv, e.ov, e.sv) {
                (Some(v), None, None, None) => RawValue::Number(v),
                (None, Some(b), None, None) => RawValue::Bool(b),
                (None, None, Some(o), None) => RawValue::Objlnk(o),
                (None, None, None, Some(s)) => RawValue::String(s),
                _ => return Err(OmaJsonError::Value(path)),
            };
            Ok(Entry { path, value })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_device_example() {
        // LwM2M 1.0.2 §6.4.4, Read /3/0 in JSON (abridged).
        let payload = br#"{"bn":"/3/0/","e":[
            {"n":"0","sv":"Open Mobile Alliance"},
            {"n":"6/0","v":1},
            {"n":"9","v":100},
            {"n":"13","v":1367491215},
            {"n":"22/0","ov":"3:1"},
            {"n":"99","bv":true}]}"#;
        let entries = decode(payload).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[0].path, "/3/0/0");
        assert_eq!(
            entries[0].value,
            RawValue::String("Open Mobile Alliance".into())
        );
        assert_eq!(entries[1].path, "/3/0/6/0");
        assert_eq!(entries[3].value, RawValue::Number(1_367_491_215.0));
        assert_eq!(entries[4].value, RawValue::Objlnk("3:1".into()));
        assert_eq!(entries[5].value, RawValue::Bool(true));
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(matches!(decode(b"[]"), Err(OmaJsonError::Syntax(_))));
        assert!(matches!(
            decode(br#"{"e":[{"n":"1"}]}"#),
            Err(OmaJsonError::Value(_))
        ));
        assert!(matches!(
            decode(br#"{"e":[{"n":"1","v":1,"sv":"x"}]}"#),
            Err(OmaJsonError::Value(_))
        ));
    }
}
