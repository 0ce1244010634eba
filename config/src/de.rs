//! Deserialization helpers that read a HOCON scalar leniently (the HOCON spec converts `"50"` to
//! 50 and `"true"` to true) and fail with the text of what was expected, so every bad value ends
//! in the same one-line error: `invalid config: KEY = VALUE: expected ...`.
//!
//! hocon-rs's deserializer answers every request with `deserialize_any`, so serde's derived
//! enums and `Option` do not work on it; the config enums use [`string_enum!`] instead.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::units::{DURATION_EXPECTED, duration_from_scalar};

/// One HOCON scalar, as the helpers see it. Arrays and objects become [`Scalar::Other`], which
/// every helper refuses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Negative(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string, quoted or not (`30s`, `1MB` and `infinity` are strings to HOCON).
    Str(String),
    /// Null, an array or an object.
    Other,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(v).map_or(Scalar::Negative(v), Scalar::Unsigned))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar::Other)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl Scalar {
    /// The value as a non-negative integer: an integer, or a string of digits.
    fn as_unsigned(&self) -> Option<u64> {
        match self {
            Self::Unsigned(v) => Some(*v),
            Self::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// A boolean: `true`/`false`, or the same words as a quoted string.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match Scalar::deserialize(deserializer)? {
        Scalar::Bool(v) => Ok(v),
        Scalar::Str(s) if s == "true" => Ok(true),
        Scalar::Str(s) if s == "false" => Ok(false),
        _ => Err(de::Error::custom("expected true or false")),
    }
}

/// An integer in `MIN..=MAX`, converted to the field's type.
pub(crate) fn int<'de, D, T, const MIN: u64, const MAX: u64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let scalar = Scalar::deserialize(deserializer)?;
    scalar
        .as_unsigned()
        .filter(|v| (MIN..=MAX).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| de::Error::custom(int_expected(MIN, MAX)))
}

/// "expected an integer between MIN and MAX", said the shortest way.
fn int_expected(min: u64, max: u64) -> String {
    match (min, max) {
        (0, u64::MAX) => "expected a non-negative integer".to_owned(),
        (min, u64::MAX) => format!("expected an integer of at least {min}"),
        (min, max) => format!("expected an integer between {min} and {max}"),
    }
}

/// A finite number greater than zero.
pub(crate) fn positive_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = match Scalar::deserialize(deserializer)? {
        Scalar::Float(v) => Some(v),
        #[allow(clippy::cast_precision_loss)] // config-sized integers are exact in an f64
        Scalar::Unsigned(v) => Some(v as f64),
        Scalar::Str(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    value
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| de::Error::custom("expected a number greater than 0, such as 1.5"))
}

/// A duration (`30s`, `2h`; a plain integer is milliseconds, as in EMQX).
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let scalar = Scalar::deserialize(deserializer)?;
    duration_from_scalar(&scalar).map_err(de::Error::custom)
}

/// A duration, or `disabled`; zero also means disabled. `None` is disabled.
pub(crate) fn duration_or_disabled<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let scalar = Scalar::deserialize(deserializer)?;
    if matches!(&scalar, Scalar::Str(s) if s.trim() == "disabled") {
        return Ok(None);
    }
    duration_from_scalar(&scalar)
        .map(|d| Some(d).filter(|d| !d.is_zero()))
        .map_err(|_| de::Error::custom(format!("{DURATION_EXPECTED}, or disabled")))
}

/// `disabled`, or a keepalive in whole seconds, 1..=65535 (EMQX's `server_keepalive`).
pub(crate) fn seconds_or_disabled<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    let scalar = Scalar::deserialize(deserializer)?;
    if matches!(&scalar, Scalar::Str(s) if s.trim() == "disabled") {
        return Ok(None);
    }
    scalar
        .as_unsigned()
        .filter(|v| *v >= 1)
        .and_then(|v| u16::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            de::Error::custom("expected disabled or a number of seconds between 1 and 65535")
        })
}

/// A list of strings: a HOCON list (`["a", "b"]`) or one comma-separated string (`"a, b"`, as
/// EMQX writes `check_origins`). Items are trimmed; empty items are dropped.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("expected a list of strings or a comma-separated string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Scalar>()? {
                match item {
                    Scalar::Str(s) if !s.trim().is_empty() => items.push(s.trim().to_owned()),
                    Scalar::Str(_) => {}
                    _ => {
                        return Err(de::Error::custom(
                            "expected a list of strings or a comma-separated string",
                        ));
                    }
                }
            }
            Ok(items)
        }
    }

    deserializer
        .deserialize_any(ListVisitor)
        .map_err(|_: D::Error| {
            de::Error::custom("expected a list of strings or a comma-separated string")
        })
}

/// A listen address: `IP:PORT` (`0.0.0.0:1883`, `[::]:1883`), or a port alone, which binds all
/// IPv4 interfaces as EMQX does.
pub(crate) fn bind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let expected =
        || de::Error::custom("expected IP:PORT such as 0.0.0.0:1883 or [::]:1883, or a port");
    match Scalar::deserialize(deserializer)? {
        Scalar::Unsigned(port) => u16::try_from(port)
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|_| expected()),
        Scalar::Str(text) => {
            let text = text.trim();
            if let Ok(port) = text.parse::<u16>() {
                return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
            }
            text.parse().map_err(|_| expected())
        }
        _ => Err(expected()),
    }
}

/// Defines a closed set of lower-case names as a Rust enum with `FromStr`, `Display`, `name()`
/// and a `Deserialize` whose error lists the accepted names.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written in the config file.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            fn expected() -> String {
                format!("expected one of {}", Self::NAMES.join(", "))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim() {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(Self::expected()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                match <crate::de::Scalar as ::serde::Deserialize>::deserialize(deserializer)? {
                    crate::de::Scalar::Str(text) => text.parse().map_err(::serde::de::Error::custom),
                    _ => Err(::serde::de::Error::custom(Self::expected())),
                }
            }
        }
    };
}
pub(crate) use string_enum;
