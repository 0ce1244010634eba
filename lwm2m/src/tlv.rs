//! OMA-TLV (`application/vnd.oma.lwm2m+tlv`, Content-Format 11542), LwM2M 1.0.2 §6.4.3.
//!
//! Each element is a type byte (bits 7-6: kind; bit 5: 16-bit identifier; bits 4-3: length
//! field of 0, 8, 16 or 24 bits; bits 2-0: the length when that field is absent), the
//! identifier, the length and the value. Object instances and multiple resources nest; a
//! multiple resource holds resource instances only, so nesting is at most three deep.

use bytes::Bytes;
use thiserror::Error;

/// Most elements one payload may hold (bounds the work and memory of a decode).
pub const MAX_ELEMENTS: usize = 4096;

/// The kind of a TLV element (the top two bits of its type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvKind {
    /// An object instance holding resources (`00`).
    ObjectInstance,
    /// A resource instance inside a multiple resource (`01`).
    ResourceInstance,
    /// A multiple resource holding resource instances (`10`).
    MultipleResource,
    /// A single resource with a value (`11`).
    Resource,
}

/// One TLV element.
#[derive(Debug, Clone, PartialEq)]
pub struct Tlv {
    /// What the element is.
    pub kind: TlvKind,
    /// Its identifier (object instance, resource or resource instance id).
    pub id: u16,
    /// Its content.
    pub value: TlvValue,
}

/// The content of a [`Tlv`].
#[derive(Debug, Clone, PartialEq)]
pub enum TlvValue {
    /// The raw value of a resource or resource instance.
    Bytes(Bytes),
    /// The children of an object instance or multiple resource.
    Children(Vec<Tlv>),
}

/// Why a TLV payload or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The payload ends inside an element.
    #[error("TLV truncated")]
    Truncated,
    /// An element appears where its kind is not allowed.
    #[error("TLV element {0:?} not allowed here")]
    BadNesting(TlvKind),
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("TLV holds more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    /// A value's length does not fit its type.
    #[error("TLV value of {len} bytes is not a valid {ty}")]
    BadValue {
        /// The expected type.
        ty: &'static str,
        /// The length found.
        len: usize,
    },
    /// A value is too long to encode (24-bit length limit).
    #[error("TLV value too long")]
    TooLong,
}

impl Tlv {
    /// A resource with a raw value.
    pub fn resource(id: u16, value: impl Into<Bytes>) -> Self {
        Self {
            kind: TlvKind::Resource,
            id,
            value: TlvValue::Bytes(value.into()),
        }
    }

    /// A resource instance with a raw value.
    pub fn resource_instance(id: u16, value: impl Into<Bytes>) -> Self {
        Self {
            kind: TlvKind::ResourceInstance,
            id,
            value: TlvValue::Bytes(value.into()),
        }
    }

    /// A container (object instance or multiple resource) with children.
    pub fn container(kind: TlvKind, id: u16, children: Vec<Tlv>) -> Self {
        Self {
            kind,
            id,
            value: TlvValue::Children(children),
        }
    }
}

/// Decodes a whole TLV payload into its top-level elements.
pub fn decode(payload: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    let mut count = 0;
    decode_level(payload, None, &mut count)
}

fn decode_level(
    mut buf: &[u8],
    parent: Option<TlvKind>,
    count: &mut usize,
) -> Result<Vec<Tlv>, TlvError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        *count += 1;
        if *count > MAX_ELEMENTS {
            return Err(TlvError::TooManyElements);
        }
        let type_byte = buf[0];
        let kind = match type_byte >> 6 {
            0 => TlvKind::ObjectInstance,
            1 => TlvKind::ResourceInstance,
            2 => TlvKind::MultipleResource,
            _ => TlvKind::Resource,
        };
        let allowed = match parent {
            None => true,
            Some(TlvKind::ObjectInstance) => {
                matches!(kind, TlvKind::Resource | TlvKind::MultipleResource)
            }
            Some(TlvKind::MultipleResource) => kind == TlvKind::ResourceInstance,
            Some(_) => false,
        };
        if !allowed {
            return Err(TlvError::BadNesting(kind));
        }
        let id_len = if type_byte & 0x20 != 0 { 2 } else { 1 };
        let len_len = usize::from((type_byte >> 3) & 0x03);
        let header = 1 + id_len + len_len;
        if buf.len() < header {
            return Err(TlvError::Truncated);
        }
        let id = if id_len == 2 {
            u16::from_be_bytes([buf[1], buf[2]])
        } else {
            u16::from(buf[1])
        };
        let len = if len_len == 0 {
            usize::from(type_byte & 0x07)
        } else {
            buf[1 + id_len..header]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let rest = &buf[header..];
        if rest.len() < len {
            return Err(TlvError::Truncated);
        }
        let (body, after) = rest.split_at(len);
        let value = match kind {
            TlvKind::ObjectInstance | TlvKind::MultipleResource => {
                TlvValue::Children(decode_level(body, Some(kind), count)?)
            }
            TlvKind::Resource | TlvKind::ResourceInstance => {
                TlvValue::Bytes(Bytes::copy_from_slice(body))
            }
        };
        out.push(Tlv { kind, id, value });
        buf = after;
    }
    Ok(out)
}

/// Appends the encoding of `tlvs` to `out`.
pub fn encode(tlvs: &[Tlv], out: &mut Vec<u8>) -> Result<(), TlvError> {
    for tlv in tlvs {
        let body = match &tlv.value {
            TlvValue::Bytes(bytes) => bytes.to_vec(),
            TlvValue::Children(children) => {
                let mut inner = Vec::new();
                encode(children, &mut inner)?;
                inner
            }
        };
        let len = body.len();
        if len > 0x00FF_FFFF {
            return Err(TlvError::TooLong);
        }
        let mut type_byte: u8 = match tlv.kind {
            TlvKind::ObjectInstance => 0x00,
            TlvKind::ResourceInstance => 0x40,
            TlvKind::MultipleResource => 0x80,
            TlvKind::Resource => 0xC0,
        };
        let wide_id = tlv.id > 0xFF;
        if wide_id {
            type_byte |= 0x20;
        }
        let len_bytes: &[u8] = &(len as u32).to_be_bytes();
        let len_field: &[u8] = if len < 8 {
            type_byte |= len as u8;
            &[]
        } else if len <= 0xFF {
            type_byte |= 0x08;
            &len_bytes[3..]
        } else if len <= 0xFFFF {
            type_byte |= 0x10;
            &len_bytes[2..]
        } else {
            type_byte |= 0x18;
            &len_bytes[1..]
        };
        out.push(type_byte);
        if wide_id {
            out.extend_from_slice(&tlv.id.to_be_bytes());
        } else {
            out.push(tlv.id as u8);
        }
        out.extend_from_slice(len_field);
        out.extend_from_slice(&body);
    }
    Ok(())
}

/// Encodes an Integer (or Time) value in the fewest of 1, 2, 4 or 8 bytes, two's complement.
pub fn encode_integer(value: i64) -> Vec<u8> {
    if let Ok(v) = i8::try_from(value) {
        v.to_be_bytes().to_vec()
    } else if let Ok(v) = i16::try_from(value) {
        v.to_be_bytes().to_vec()
    } else if let Ok(v) = i32::try_from(value) {
        v.to_be_bytes().to_vec()
    } else {
        value.to_be_bytes().to_vec()
    }
}

/// Decodes an Integer (or Time) value of 1, 2, 4 or 8 bytes.
pub fn decode_integer(bytes: &[u8]) -> Result<i64, TlvError> {
    match *bytes {
        [a] => Ok(i64::from(i8::from_be_bytes([a]))),
        [a, b] => Ok(i64::from(i16::from_be_bytes([a, b]))),
        [a, b, c, d] => Ok(i64::from(i32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Ok(i64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(TlvError::BadValue {
            ty: "Integer",
            len: bytes.len(),
        }),
    }
}

/// Encodes a Float as 4 bytes when `f32` holds it exactly, else 8 bytes (IEEE 754).
pub fn encode_float(value: f64) -> Vec<u8> {
    let narrow = value as f32;
    if f64::from(narrow) == value || value.is_nan() {
        narrow.to_be_bytes().to_vec()
    } else {
        value.to_be_bytes().to_vec()
    }
}

/// Decodes a Float of 4 or 8 bytes.
pub fn decode_float(bytes: &[u8]) -> Result<f64, TlvError> {
    match *bytes {
        [a, b, c, d] => Ok(f64::from(f32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(TlvError::BadValue {
            ty: "Float",
            len: bytes.len(),
        }),
    }
}

/// Encodes a Boolean as one byte 0 or 1.
pub fn encode_bool(value: bool) -> Vec<u8> {
    vec![u8::from(value)]
}

/// Decodes a Boolean: exactly one byte, 0 or 1.
pub fn decode_bool(bytes: &[u8]) -> Result<bool, TlvError> {
    match bytes {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(TlvError::BadValue {
            ty: "Boolean",
            len: bytes.len(),
        }),
    }
}

/// Encodes an Objlnk (object id, instance id) as two 16-bit big-endian integers.
pub fn encode_objlnk(object: u16, instance: u16) -> Vec<u8> {
    let mut out = object.to_be_bytes().to_vec();
    out.extend_from_slice(&instance.to_be_bytes());
    out
}

/// Decodes an Objlnk of exactly 4 bytes.
pub fn decode_objlnk(bytes: &[u8]) -> Result<(u16, u16), TlvError> {
    match *bytes {
        [a, b, c, d] => Ok((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
        _ => Err(TlvError::BadValue {
            ty: "Objlnk",
            len: bytes.len(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// LwM2M 1.0.2 §6.4.3.1, example "Single Object Instance Request": Read /3/0.
    const DEVICE_READ: &[u8] = &[
        0xC8, 0x00, 0x14, b'O', b'p', b'e', b'n', b' ', b'M', b'o', b'b', b'i', b'l', b'e', b' ',
        b'A', b'l', b'l', b'i', b'a', b'n', b'c', b'e', 0xC8, 0x01, 0x16, b'L', b'i', b'g', b'h',
        b't', b'w', b'e', b'i', b'g', b'h', b't', b' ', b'M', b'2', b'M', b' ', b'C', b'l', b'i',
        b'e', b'n', b't', 0xC8, 0x02, 0x09, b'3', b'4', b'5', b'0', b'0', b'0', b'1', b'2', b'3',
        0xC3, 0x03, b'1', b'.', b'0', 0x86, 0x06, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05, 0x88, 0x07,
        0x08, 0x42, 0x00, 0x0E, 0xD8, 0x42, 0x01, 0x13, 0x88, 0x87, 0x08, 0x41, 0x00, 0x7D, 0x42,
        0x01, 0x03, 0x84, 0xC1, 0x09, 0x64, 0xC1, 0x0A, 0x0F, 0x83, 0x0B, 0x41, 0x00, 0x00, 0xC4,
        0x0D, 0x51, 0x82, 0x42, 0x8F, 0xC6, 0x0E, b'+', b'0', b'2', b':', b'0', b'0', 0xC1, 0x10,
        b'U',
    ];

    fn bytes_of(tlv: &Tlv) -> &[u8] {
        match &tlv.value {
            TlvValue::Bytes(bytes) => bytes,
            TlvValue::Children(_) => panic!("not a value"),
        }
    }

    #[test]
    fn decodes_the_spec_device_example() {
        let tlvs = decode(DEVICE_READ).unwrap();
        assert_eq!(tlvs.len(), 13);
        assert_eq!(bytes_of(&tlvs[0]), b"Open Mobile Alliance");
        assert_eq!(bytes_of(&tlvs[1]), b"Lightweight M2M Client");
        assert_eq!(tlvs[4].kind, TlvKind::MultipleResource);
        let TlvValue::Children(voltages) = &tlvs[5].value else {
            panic!()
        };
        assert_eq!(voltages[0].id, 0);
        assert_eq!(decode_integer(bytes_of(&voltages[0])).unwrap(), 3800);
        assert_eq!(decode_integer(bytes_of(&voltages[1])).unwrap(), 5000);
        assert_eq!(decode_integer(bytes_of(&tlvs[7])).unwrap(), 100);
        assert_eq!(tlvs[10].id, 13);
        assert_eq!(decode_integer(bytes_of(&tlvs[10])).unwrap(), 1_367_491_215);
        assert_eq!(bytes_of(&tlvs[12]), b"U");
    }

    #[test]
    fn encodes_the_spec_device_example_byte_for_byte() {
        let tlvs = decode(DEVICE_READ).unwrap();
        let mut out = Vec::new();
        encode(&tlvs, &mut out).unwrap();
        assert_eq!(out, DEVICE_READ);
    }

    #[test]
    fn lengths_and_ids_of_every_width() {
        for len in [0usize, 7, 8, 255, 256, 65535, 65536] {
            for id in [0u16, 255, 256, 65535] {
                let tlv = Tlv::resource(id, vec![0xAB; len]);
                let mut out = Vec::new();
                encode(std::slice::from_ref(&tlv), &mut out).unwrap();
                let header = 1
                    + if id > 255 { 2 } else { 1 }
                    + match len {
                        0..=7 => 0,
                        8..=255 => 1,
                        256..=65535 => 2,
                        _ => 3,
                    };
                assert_eq!(out.len(), header + len);
                assert_eq!(decode(&out).unwrap(), vec![tlv]);
            }
        }
    }

    #[test]
    fn refuses_truncation_and_bad_nesting() {
        assert_eq!(decode(&[0xC8, 0x00, 0x05, b'a']), Err(TlvError::Truncated));
        assert_eq!(decode(&[0xE8, 0x00]), Err(TlvError::Truncated));
        // A resource instance inside an object instance.
        assert_eq!(
            decode(&[0x03, 0x00, 0x41, 0x00, 0x01]),
            Err(TlvError::BadNesting(TlvKind::ResourceInstance))
        );
        // An object instance inside an object instance.
        assert_eq!(
            decode(&[0x02, 0x00, 0x00, 0x00]),
            Err(TlvError::BadNesting(TlvKind::ObjectInstance))
        );
        let many = [0xC0u8, 0x00].repeat(MAX_ELEMENTS + 1);
        assert_eq!(decode(&many), Err(TlvError::TooManyElements));
    }

    #[test]
    fn typed_values() {
        assert_eq!(encode_integer(100), vec![0x64]);
        assert_eq!(encode_integer(3800), vec![0x0E, 0xD8]);
        assert_eq!(encode_integer(-1), vec![0xFF]);
        assert_eq!(encode_integer(1_367_491_215), vec![0x51, 0x82, 0x42, 0x8F]);
        assert_eq!(encode_integer(i64::MIN).len(), 8);
        assert!(decode_integer(&[0, 0, 0]).is_err());
        assert_eq!(encode_float(1.5), 1.5f32.to_be_bytes().to_vec());
        assert_eq!(encode_float(0.1), 0.1f64.to_be_bytes().to_vec());
        assert_eq!(decode_float(&encode_float(0.1)).unwrap(), 0.1);
        assert!(decode_float(&[0; 3]).is_err());
        assert_eq!(decode_bool(&[1]), Ok(true));
        assert!(decode_bool(&[2]).is_err());
        assert_eq!(encode_objlnk(3, 0x0102), vec![0, 3, 1, 2]);
        assert_eq!(decode_objlnk(&[0, 3, 1, 2]), Ok((3, 0x0102)));
    }

    fn leaf() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300)
    }

    fn object_instance() -> impl Strategy<Value = Tlv> {
        let resource = prop_oneof![
            (any::<u16>(), leaf()).prop_map(|(id, v)| Tlv::resource(id, v)),
            (
                any::<u16>(),
                proptest::collection::vec((any::<u16>(), leaf()), 0..4)
            )
                .prop_map(|(id, items)| Tlv::container(
                    TlvKind::MultipleResource,
                    id,
                    items
                        .into_iter()
                        .map(|(i, v)| Tlv::resource_instance(i, v))
                        .collect()
                )),
        ];
        (any::<u16>(), proptest::collection::vec(resource, 0..5))
            .prop_map(|(id, children)| Tlv::container(TlvKind::ObjectInstance, id, children))
    }

    proptest! {
        #[test]
        fn round_trips(tlvs in proptest::collection::vec(object_instance(), 0..4)) {
            let mut out = Vec::new();
            encode(&tlvs, &mut out).unwrap();
            prop_assert_eq!(decode(&out).unwrap(), tlvs);
        }

        #[test]
        fn integers_round_trip(v in any::<i64>()) {
            prop_assert_eq!(decode_integer(&encode_integer(v)).unwrap(), v);
        }

        #[test]
        fn floats_round_trip(v in any::<f64>().prop_filter("not NaN", |v| !v.is_nan())) {
            prop_assert_eq!(decode_float(&encode_float(v)).unwrap(), v);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }
    }
}
