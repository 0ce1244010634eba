//! SenML JSON (`application/senml+json`, Content-Format 110), as LwM2M 1.1 §7.4.4 uses it:
//! an array of records with `bn`, `n`, `v`, `vs`, `vb`, `vd` (base64url) and `vlo` (objlnk).
//! EMQX does not decode it; Tributary does, beyond EMQX.

use serde::Deserialize;
use thiserror::Error;

use crate::content::{Entry, RawValue};

/// Most records accepted in one payload.
pub const MAX_RECORDS: usize = 4096;

/// Why a SenML payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SenmlError {
    /// Not JSON of the expected shape.
    #[error("SenML: {0}")]
    Syntax(String),
    /// A record has no value or more than one, or bad base64.
    #[error("SenML record {0:?} needs exactly one valid value")]
    Value(String),
    /// More than [`MAX_RECORDS`] records.
    #[error("SenML holds more than {MAX_RECORDS} records")]
    TooManyRecords,
}

#[derive(Deserialize)]
struct Record {
    bn: Option<String>,
    #[serde(default)]
    n: String,
    v: Option<f64>,
    vs: Option<String>,
    vb: Option<bool>,
    vd: Option<String>,
    vlo: Option<String>,
}

/// Decodes a SenML JSON payload into entries with full paths (base name carried over records).
pub fn decode(payload: &[u8]) -> Result<Vec<Entry>, SenmlError> {
    use base64::Engine as _;
    let records: Vec<Record> =
        serde_json::from_slice(payload).map_err(|e| SenmlError::Syntax(e.to_string()))?;
    if records.len() > MAX_RECORDS {
        return Err(SenmlError::TooManyRecords);
    }
    let mut base = String::new();
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        if let Some(bn) = record.bn {
            base = bn;
        }
        let path = format!("{base}{}", record.n);
        let value = match (record.v, record.vs, record.vb, record.vd, record.vlo) {
            (Some(v), None, None, None, None) => RawValue::Number(v),
            (None, Some(s), None, None, None) => RawValue::String(s),
            (None, None, Some(b), None, None) => RawValue::Bool(b),
            (None, None, None, Some(d), None) => {
                let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let bytes = engine
                    .decode(d.trim_end_matches('='))
                    .map_err(|_| SenmlError::Value(path.clone()))?;
                RawValue::Opaque(bytes)
            }
            (None, None, None, None, Some(o)) => RawValue::Objlnk(o),
            _ => return Err(SenmlError::Value(path)),
        };
        out.push(Entry { path, value });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_style_example() {
        // LwM2M 1.1 §7.4.4 style: Read /3/0 with a base name carried over records.
        let payload = br#"[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},
            {"n":"9","v":95},{"n":"6/0","v":1},{"n":"22/0","vlo":"3:1"},
            {"bn":"/5/0/","n":"0","vd":"AQID"},{"n":"4","vb":false}]"#;
        let entries = decode(payload).unwrap();
        assert_eq!(entries[0].path, "/3/0/0");
        assert_eq!(entries[1].value, RawValue::Number(95.0));
        assert_eq!(entries[2].path, "/3/0/6/0");
        assert_eq!(entries[3].value, RawValue::Objlnk("3:1".into()));
        assert_eq!(entries[4].path, "/5/0/0");
        assert_eq!(entries[4].value, RawValue::Opaque(vec![1, 2, 3]));
        assert_eq!(entries[5].value, RawValue::Bool(false));
    }

    #[test]
    fn refuses_bad_records() {
        assert!(matches!(decode(b"{}"), Err(SenmlError::Syntax(_))));
        assert!(matches!(
            decode(br#"[{"n":"x"}]"#),
            Err(SenmlError::Value(_))
        ));
        assert!(matches!(
            decode(br#"[{"n":"x","vd":"!!"}]"#),
            Err(SenmlError::Value(_))
        ));
    }
}
