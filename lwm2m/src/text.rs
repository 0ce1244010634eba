//! Plain-text (`text/plain`, 0) values, LwM2M 1.0.2 §6.4.1.

use crate::object::ResourceType;
use serde_json::Value;
use thiserror::Error;

/// A text value that does not parse as its resource type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
#[error("text value is not a valid {0}")]
pub struct TextError(pub &'static str);

/// Decodes a text/plain payload into the JSON value EMQX reports for `ty`.
///
/// Boolean accepts `0`/`1` (the LwM2M encoding) and `true`/`false`, mapped the right way round
/// (EMQX 5.8.9 inverts them: GATEWAYS.md defect 4). Opaque is reported as base64, Objlnk as
/// `"O:I"`, Integer, Unsigned Integer and Time as JSON integers, Float as a JSON number.
pub fn decode_text(payload: &[u8], ty: ResourceType) -> Result<Value, TextError> {
    use base64::Engine as _;
    if ty == ResourceType::Opaque {
        return Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(payload),
        ));
    }
    let text = std::str::from_utf8(payload).map_err(|_| TextError(ty.name()))?;
    let trimmed = text.trim();
    let bad = || TextError(ty.name());
    Ok(match ty {
        ResourceType::Integer | ResourceType::Time => {
            Value::from(trimmed.parse::<i64>().map_err(|_| bad())?)
        }
        ResourceType::UnsignedInteger => Value::from(trimmed.parse::<u64>().map_err(|_| bad())?),
        ResourceType::Float => {
            let v: f64 = trimmed.parse().map_err(|_| bad())?;
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(bad)?
        }
        ResourceType::Boolean => Value::Bool(match trimmed {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(bad()),
        }),
        ResourceType::Objlnk => {
            let (o, i) = trimmed.split_once(':').ok_or_else(bad)?;
            let o: u16 = o.parse().map_err(|_| bad())?;
            let i: u16 = i.parse().map_err(|_| bad())?;
            Value::String(format!("{o}:{i}"))
        }
        ResourceType::String | ResourceType::Corelnk | ResourceType::None => {
            Value::String(text.to_owned())
        }
        ResourceType::Opaque => return Err(bad()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_are_not_inverted_and_accept_digits() {
        assert_eq!(decode_text(b"1", ResourceType::Boolean), Ok(json!(true)));
        assert_eq!(decode_text(b"0", ResourceType::Boolean), Ok(json!(false)));
        assert_eq!(decode_text(b"true", ResourceType::Boolean), Ok(json!(true)));
        assert_eq!(
            decode_text(b"false", ResourceType::Boolean),
            Ok(json!(false))
        );
        assert!(decode_text(b"yes", ResourceType::Boolean).is_err());
    }

    #[test]
    fn typed_values() {
        assert_eq!(decode_text(b"2048", ResourceType::Integer), Ok(json!(2048)));
        assert_eq!(decode_text(b"-5", ResourceType::Time), Ok(json!(-5)));
        assert_eq!(decode_text(b"42.5", ResourceType::Float), Ok(json!(42.5)));
        assert_eq!(decode_text(b"3:0", ResourceType::Objlnk), Ok(json!("3:0")));
        assert_eq!(
            decode_text(b"\x01\x02", ResourceType::Opaque),
            Ok(json!("AQI="))
        );
        assert_eq!(
            decode_text(b"Lightweight M2M Client", ResourceType::String),
            Ok(json!("Lightweight M2M Client"))
        );
        assert!(decode_text(b"x", ResourceType::Integer).is_err());
        assert!(decode_text(b"NaN", ResourceType::Float).is_err());
        assert!(decode_text(&[0xFF], ResourceType::String).is_err());
    }
}
