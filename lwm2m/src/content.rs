//! Device payloads to EMQX's `content` JSON, and write/create values to TLV.
//!
//! A read, observe or notification payload becomes a list of `{"path": .., "value": ..}`, each
//! value typed from the object definitions (Integer → JSON integer, Boolean → true/false, Opaque
//! → base64 string, Objlnk → `"O:I"`...). A resource without a definition is an error, which the
//! response reports as `4.00 bad_request`, as EMQX does.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    link::{self, LinkLimits},
    object::{ObjectRegistry, ResourceType},
    oma_json,
    path::LwPath,
    senml, text,
    tlv::{self, Tlv, TlvKind, TlvValue},
};

/// A CoAP Content-Format number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentFormat(pub u16);

impl ContentFormat {
    /// `text/plain; charset=utf-8`.
    pub const TEXT: Self = Self(0);
    /// `application/link-format`.
    pub const LINK_FORMAT: Self = Self(40);
    /// `application/octet-stream`.
    pub const OCTET_STREAM: Self = Self(42);
    /// `application/json`.
    pub const JSON: Self = Self(50);
    /// `application/senml+json`.
    pub const SENML_JSON: Self = Self(110);
    /// `application/vnd.oma.lwm2m+tlv`.
    pub const TLV: Self = Self(11542);
    /// `application/vnd.oma.lwm2m+json`.
    pub const OMA_JSON: Self = Self(11543);
}

/// A value as a JSON-based format carries it, before typing.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// A number (`v`).
    Number(f64),
    /// A boolean (`bv`, `vb`).
    Bool(bool),
    /// A string (`sv`, `vs`).
    String(String),
    /// An object link `"O:I"` (`ov`, `vlo`).
    Objlnk(String),
    /// Bytes (`vd`).
    Opaque(Vec<u8>),
}

/// One decoded `path = value` of a JSON-based format.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Full path, e.g. `/3/0/1`.
    pub path: String,
    /// The value.
    pub value: RawValue,
}

/// Why a payload could not be decoded or a value encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ContentError {
    /// No object definition for a resource (EMQX: `no_xml_definition`).
    #[error("no definition for {0}")]
    NoDefinition(String),
    /// A path is not an LwM2M path, or not at the level the format needs.
    #[error("bad path {0}")]
    BadPath(String),
    /// The Content-Format is not one this crate decodes.
    #[error("unsupported content format {0}")]
    Unsupported(u16),
    /// The payload does not decode.
    #[error("{0}")]
    Malformed(String),
    /// A write value does not fit its type.
    #[error("bad {ty} value for {path}")]
    BadValue {
        /// The declared type.
        ty: String,
        /// The item's path.
        path: String,
    },
}

fn malformed(e: impl ToString) -> ContentError {
    ContentError::Malformed(e.to_string())
}

fn resource_type(registry: &ObjectRegistry, path: &LwPath) -> Result<ResourceType, ContentError> {
    let def = path
        .resource()
        .and_then(|r| registry.resource(path.object(), r))
        .ok_or_else(|| ContentError::NoDefinition(path.to_string()))?;
    Ok(def.ty)
}

/// Decodes a device payload into EMQX's `content` JSON list.
///
/// `request_path` is the path that was read (or observed); TLV and text values are placed
/// under it. Link-format payloads become a list of link strings (Discover).
pub fn decode_content(
    format: Option<ContentFormat>,
    payload: &[u8],
    request_path: &LwPath,
    registry: &ObjectRegistry,
) -> Result<Value, ContentError> {
    let format = format.unwrap_or(ContentFormat::TEXT);
    let items: Vec<Value> = match format {
        ContentFormat::TEXT => {
            let ty = resource_type(registry, request_path)?;
            let value = text::decode_text(payload, ty).map_err(malformed)?;
            vec![json!({"path": request_path.to_string(), "value": value})]
        }
        ContentFormat::OCTET_STREAM => {
            let value = base64::engine::general_purpose::STANDARD.encode(payload);
            vec![json!({"path": request_path.to_string(), "value": value})]
        }
        ContentFormat::LINK_FORMAT => link::split_links(payload, LinkLimits::default())
            .map_err(malformed)?
            .into_iter()
            .map(Value::String)
            .collect(),
        ContentFormat::TLV => {
            let tlvs = tlv::decode(payload).map_err(malformed)?;
            let mut out = Vec::new();
            for element in &tlvs {
                let base = match element.kind {
                    TlvKind::ObjectInstance => truncate(request_path, 1),
                    TlvKind::Resource | TlvKind::MultipleResource => truncate(request_path, 2),
                    TlvKind::ResourceInstance => truncate(request_path, 3),
                }
                .ok_or_else(|| ContentError::BadPath(request_path.to_string()))?;
                walk_tlv(element, &base, registry, &mut out)?;
            }
            out
        }
        ContentFormat::OMA_JSON => {
            typed_entries(oma_json::decode(payload).map_err(malformed)?, registry)?
        }
        ContentFormat::SENML_JSON => {
            typed_entries(senml::decode(payload).map_err(malformed)?, registry)?
        }
        ContentFormat(other) => return Err(ContentError::Unsupported(other)),
    };
    Ok(Value::Array(items))
}

/// The first `depth` levels of `path`, or `None` when it is shallower.
fn truncate(path: &LwPath, depth: usize) -> Option<LwPath> {
    let mut out = path
        .ids()
        .first()
        .map(|o| LwPath::parse(&format!("/{o}")))?
        .ok()?;
    for id in path.ids().get(1..depth)? {
        out = out.child(*id)?;
    }
    Some(out)
}

fn walk_tlv(
    element: &Tlv,
    parent: &LwPath,
    registry: &ObjectRegistry,
    out: &mut Vec<Value>,
) -> Result<(), ContentError> {
    let path = parent
        .child(element.id)
        .ok_or_else(|| ContentError::BadPath(parent.to_string()))?;
    match &element.value {
        TlvValue::Children(children) => {
            for child in children {
                walk_tlv(child, &path, registry, out)?;
            }
        }
        TlvValue::Bytes(bytes) => {
            let ty = resource_type(registry, &path)?;
            let value = typed_tlv_value(bytes, ty).map_err(malformed)?;
            out.push(json!({"path": path.to_string(), "value": value}));
        }
    }
    Ok(())
}

fn typed_tlv_value(bytes: &[u8], ty: ResourceType) -> Result<Value, tlv::TlvError> {
    Ok(match ty {
        ResourceType::Integer | ResourceType::Time => Value::from(tlv::decode_integer(bytes)?),
        ResourceType::UnsignedInteger => match *bytes {
            [_] | [_, _] | [_, _, _, _] | [_, _, _, _, _, _, _, _] => {
                Value::from(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            }
            _ => {
                return Err(tlv::TlvError::BadValue {
                    ty: "Unsigned Integer",
                    len: bytes.len(),
                });
            }
        },
        ResourceType::Float => serde_json::Number::from_f64(tlv::decode_float(bytes)?)
            .map_or(Value::Null, Value::Number),
        ResourceType::Boolean => Value::Bool(tlv::decode_bool(bytes)?),
        ResourceType::Objlnk => {
            let (o, i) = tlv::decode_objlnk(bytes)?;
            Value::String(format!("{o}:{i}"))
        }
        ResourceType::Opaque => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        ResourceType::String | ResourceType::Corelnk | ResourceType::None => {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
    })
}

fn typed_entries(
    entries: Vec<Entry>,
    registry: &ObjectRegistry,
) -> Result<Vec<Value>, ContentError> {
    entries
        .into_iter()
        .map(|entry| {
            let path = LwPath::parse(&entry.path).map_err(|_| ContentError::BadPath(entry.path))?;
            let ty = resource_type(registry, &path)?;
            let value = match entry.value {
                RawValue::Number(v)
                    if matches!(
                        ty,
                        ResourceType::Integer | ResourceType::Time | ResourceType::UnsignedInteger
                    ) && v.fract() == 0.0
                        && v.abs() < 9.0e15 =>
                {
                    Value::from(v as i64)
                }
                RawValue::Number(v) => {
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
                }
                RawValue::Bool(b) => Value::Bool(b),
                RawValue::String(s) | RawValue::Objlnk(s) => Value::String(s),
                RawValue::Opaque(bytes) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            Ok(json!({"path": path.to_string(), "value": value}))
        })
        .collect()
}

/// One value of a write or create command: a path relative to the base path, its declared
/// type (`"Integer"`, `"Float"`, `"Time"`, `"String"`, `"Opaque"`, `"Boolean"`, `"Objlnk"`)
/// and its JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteItem {
    /// Path relative to the base path (`"1"`, `"/0/1"`).
    pub path: String,
    /// The declared type.
    pub ty: String,
    /// The value as given in the command.
    pub value: Value,
}

/// Encodes one write value as TLV value bytes (GATEWAYS.md "Value types for write/create").
pub fn encode_value(item: &WriteItem) -> Result<Vec<u8>, ContentError> {
    let bad = || ContentError::BadValue {
        ty: item.ty.clone(),
        path: item.path.clone(),
    };
    let number = || match &item.value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    Ok(match item.ty.as_str() {
        "Integer" | "Time" | "Unsigned Integer" => {
            let v = match &item.value {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(bad)?;
            tlv::encode_integer(v)
        }
        "Float" => tlv::encode_float(number().ok_or_else(bad)?),
        "String" => match &item.value {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Number(n) => n.to_string().into_bytes(),
            _ => return Err(bad()),
        },
        "Opaque" => match &item.value {
            Value::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| bad())?,
            _ => return Err(bad()),
        },
        "Boolean" => tlv::encode_bool(match &item.value {
            Value::String(s) if s == "true" => true,
            Value::String(s) if s == "false" => false,
            Value::Bool(b) => *b,
            _ => return Err(bad()),
        }),
        "Objlnk" => {
            let Value::String(s) = &item.value else {
                return Err(bad());
            };
            let (o, i) = s.split_once(':').ok_or_else(bad)?;
            tlv::encode_objlnk(o.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    })
}

/// Encodes write/create items under `base` as one TLV payload.
///
/// Each item's path is appended to `base`; the levels below `base` become TLV containers:
/// under an object, object instances holding resources; under an instance, resources; under
/// a resource, that multiple resource holding resource instances.
pub fn encode_write(base: &LwPath, items: &[WriteItem]) -> Result<Bytes, ContentError> {
    let mut top: Vec<Tlv> = Vec::new();
    for item in items {
        let rel: Vec<u16> = item
            .path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u16>()
                    .map_err(|_| ContentError::BadPath(item.path.clone()))
            })
            .collect::<Result<_, _>>()?;
        let depth = base.depth() + rel.len();
        // Create on an object may also carry bare resources (the device picks the instance).
        let bare_create = base.depth() == 1 && rel.len() == 1;
        if depth > 4 || rel.is_empty() || (depth < 3 && !bare_create) {
            return Err(ContentError::BadPath(format!("{base} + {}", item.path)));
        }
        let value = Bytes::from(encode_value(item)?);
        if bare_create {
            insert(&mut top, &[(TlvKind::Resource, rel[0])], value);
            continue;
        }
        // Levels below `base`: [instance,] [resource,] [resource instance].
        let mut levels: Vec<(TlvKind, u16)> = Vec::new();
        for (depth, id) in (base.depth() + 1..).zip(&rel) {
            let is_last = depth == base.depth() + rel.len();
            let kind = match depth {
                2 => TlvKind::ObjectInstance,
                3 if is_last => TlvKind::Resource,
                3 => TlvKind::MultipleResource,
                _ => TlvKind::ResourceInstance,
            };
            levels.push((kind, *id));
        }
        if base.depth() == 3 {
            // The base is the multiple resource itself.
            levels.insert(0, (TlvKind::MultipleResource, base.ids()[2]));
        }
        insert(&mut top, &levels, value);
    }
    let mut out = Vec::new();
    tlv::encode(&top, &mut out).map_err(malformed)?;
    Ok(Bytes::from(out))
}

fn insert(siblings: &mut Vec<Tlv>, levels: &[(TlvKind, u16)], value: Bytes) {
    let Some(((kind, id), rest)) = levels.split_first() else {
        return;
    };
    if rest.is_empty() {
        siblings.push(Tlv {
            kind: *kind,
            id: *id,
            value: TlvValue::Bytes(value),
        });
        return;
    }
    let position = siblings.iter().position(|t| t.kind == *kind && t.id == *id);
    let index = position.unwrap_or_else(|| {
        siblings.push(Tlv::container(*kind, *id, Vec::new()));
        siblings.len() - 1
    });
    if let TlvValue::Children(children) = &mut siblings[index].value {
        insert(children, rest, value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> LwPath {
        LwPath::parse(s).unwrap()
    }

    #[test]
    fn text_read_is_typed() {
        let registry = ObjectRegistry::builtin();
        let content =
            decode_content(Some(ContentFormat::TEXT), b"2048", &p("/3/0/10"), &registry).unwrap();
        assert_eq!(content, json!([{"path": "/3/0/10", "value": 2048}]));
        let content =
            decode_content(None, b"Lightweight M2M Client", &p("/3/0/1"), &registry).unwrap();
        assert_eq!(
            content,
            json!([{"path": "/3/0/1", "value": "Lightweight M2M Client"}])
        );
        assert_eq!(
            decode_content(None, b"1", &p("/31024/0/1"), &registry),
            Err(ContentError::NoDefinition("/31024/0/1".into()))
        );
    }

    #[test]
    fn tlv_instance_read_is_typed_and_placed() {
        let registry = ObjectRegistry::builtin();
        let payload = [
            0xC3, 0x03, b'1', b'.', b'0', 0x86, 0x06, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05, 0xC1,
            0x09, 0x64, 0xC4, 0x0D, 0x51, 0x82, 0x42, 0x8F,
        ];
        let content =
            decode_content(Some(ContentFormat::TLV), &payload, &p("/3/0"), &registry).unwrap();
        assert_eq!(
            content,
            json!([
                {"path": "/3/0/3", "value": "1.0"},
                {"path": "/3/0/6/0", "value": 1},
                {"path": "/3/0/6/1", "value": 5},
                {"path": "/3/0/9", "value": 100},
                {"path": "/3/0/13", "value": 1_367_491_215},
            ])
        );
        // The same resource read at resource level.
        let content = decode_content(
            Some(ContentFormat::TLV),
            &[0xC1, 0x09, 0x64],
            &p("/3/0/9"),
            &registry,
        )
        .unwrap();
        assert_eq!(content, json!([{"path": "/3/0/9", "value": 100}]));
        // An object read: object instance 0 holding a Boolean of 3311.
        let content = decode_content(
            Some(ContentFormat::TLV),
            &[0x04, 0x00, 0xE1, 0x16, 0xDA, 0x01],
            &p("/3311"),
            &registry,
        )
        .unwrap();
        assert_eq!(content, json!([{"path": "/3311/0/5850", "value": true}]));
    }

    #[test]
    fn opaque_objlnk_float_link_and_json_formats() {
        let registry = ObjectRegistry::builtin();
        let velocity = decode_content(
            Some(ContentFormat::TLV),
            &[0xC2, 0x04, 0x01, 0x02],
            &p("/6/0/4"),
            &registry,
        )
        .unwrap();
        assert_eq!(velocity, json!([{"path": "/6/0/4", "value": "AQI="}]));
        let ext = decode_content(
            Some(ContentFormat::TLV),
            &[0x84, 0x16, 0x44, 0x00, 0x00, 0x03, 0x00, 0x01],
            &p("/3/0/22"),
            &registry,
        );
        // 0x84 = multiple resource with 4 bytes of content, holding RI 0 of 4 bytes: truncated.
        assert!(ext.is_err());
        let ext = decode_content(
            Some(ContentFormat::TLV),
            &[0x86, 0x16, 0x44, 0x00, 0x00, 0x03, 0x00, 0x01],
            &p("/3/0/22"),
            &registry,
        )
        .unwrap();
        assert_eq!(ext, json!([{"path": "/3/0/22/0", "value": "3:1"}]));
        let links = decode_content(
            Some(ContentFormat::LINK_FORMAT),
            b"</3/0/7>;dim=8,</3/0/8>",
            &p("/3/0"),
            &registry,
        )
        .unwrap();
        assert_eq!(links, json!(["</3/0/7>;dim=8", "</3/0/8>"]));
        let json = decode_content(
            Some(ContentFormat::OMA_JSON),
            br#"{"bn":"/3303/0/","e":[{"n":"5700","v":21.5}]}"#,
            &p("/3303/0"),
            &registry,
        )
        .unwrap();
        assert_eq!(json, json!([{"path": "/3303/0/5700", "value": 21.5}]));
        let senml = decode_content(
            Some(ContentFormat::SENML_JSON),
            br#"[{"bn":"/3/0/","n":"9","v":95}]"#,
            &p("/3/0"),
            &registry,
        )
        .unwrap();
        assert_eq!(senml, json!([{"path": "/3/0/9", "value": 95}]));
        let raw = decode_content(
            Some(ContentFormat::OCTET_STREAM),
            b"\x00\xff",
            &p("/5/0/0"),
            &registry,
        )
        .unwrap();
        assert_eq!(raw, json!([{"path": "/5/0/0", "value": "AP8="}]));
        assert_eq!(
            decode_content(Some(ContentFormat(60)), b"", &p("/3/0"), &registry),
            Err(ContentError::Unsupported(60))
        );
    }

    fn item(path: &str, ty: &str, value: Value) -> WriteItem {
        WriteItem {
            path: path.into(),
            ty: ty.into(),
            value,
        }
    }

    #[test]
    fn write_values_encode_per_type() {
        assert_eq!(
            encode_value(&item("1", "Integer", json!("300"))).unwrap(),
            [0x01, 0x2C]
        );
        assert_eq!(encode_value(&item("1", "Time", json!(5))).unwrap(), [5]);
        assert_eq!(
            encode_value(&item("1", "Float", json!("1.5"))).unwrap(),
            1.5f32.to_be_bytes()
        );
        assert_eq!(
            encode_value(&item("1", "Boolean", json!("true"))).unwrap(),
            [1]
        );
        assert_eq!(
            encode_value(&item("1", "Boolean", json!("false"))).unwrap(),
            [0]
        );
        assert_eq!(
            encode_value(&item("1", "Opaque", json!("AQI="))).unwrap(),
            [1, 2]
        );
        assert_eq!(
            encode_value(&item("1", "Objlnk", json!("3:1"))).unwrap(),
            [0, 3, 0, 1]
        );
        assert_eq!(
            encode_value(&item("1", "String", json!("x"))).unwrap(),
            b"x"
        );
        assert!(encode_value(&item("1", "Boolean", json!("yes"))).is_err());
        assert!(encode_value(&item("1", "Integer", json!("x"))).is_err());
        assert!(encode_value(&item("1", "Complex", json!(1))).is_err());
    }

    #[test]
    fn write_payload_shapes() {
        // Single write /31024/11/1: base /31024/11, one resource.
        let single = encode_write(&p("/31024/11"), &[item("1", "String", json!("x"))]).unwrap();
        assert_eq!(&single[..], &[0xC1, 0x01, b'x']);
        // Batch with a 3-level base: a multiple resource of resource instances.
        let multi = encode_write(
            &p("/3/0/7"),
            &[
                item("0", "Integer", json!(1)),
                item("1", "Integer", json!(2)),
            ],
        )
        .unwrap();
        assert_eq!(
            &multi[..],
            &[0x86, 0x07, 0x41, 0x00, 0x01, 0x41, 0x01, 0x02]
        );
        // Create under /5: object instance 0 holding resource 1.
        let create = encode_write(&p("/5"), &[item("/0/1", "String", json!("u"))]).unwrap();
        assert_eq!(&create[..], &[0x03, 0x00, 0xC1, 0x01, b'u']);
        // Create with bare resources: the device picks the instance id.
        let bare = encode_write(&p("/5"), &[item("1", "String", json!("u"))]).unwrap();
        assert_eq!(&bare[..], &[0xC1, 0x01, b'u']);
        assert!(encode_write(&p("/5/0"), &[item("/1/2/3", "String", json!("u"))]).is_err());
        assert!(encode_write(&p("/5"), &[item("a", "String", json!("u"))]).is_err());
    }
}
