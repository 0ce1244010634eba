//! Human units, as EMQX writes them: durations (`30s`, `2h`, `infinity`), byte sizes (`1MB`) and
//! counts that may be `infinity`.
//!
//! Each type parses from a string (`FromStr`) and deserializes from a HOCON value. A parse error
//! is the text of what was expected ("expected a byte size such as ..."), which the loader puts
//! after the key and the value.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::de::Scalar;

/// What a duration must look like; the tail of every duration error.
pub(crate) const DURATION_EXPECTED: &str =
    "expected a duration such as 100ms, 30s, 1m, 2h or 1d (a plain integer is milliseconds)";

/// Parses an EMQX duration: a number with a unit (`100ms`, `30s`, `1m`, `2h`, `1d`, `1w`, or
/// several, `1h30m`), or a plain non-negative integer, which EMQX reads as milliseconds.
///
/// Units are humantime's (`ms`, `s`, `m` = minute, `h`, `d`, `w`, ...). `infinity` is not a
/// duration; the fields that accept it use [`Timeout`].
///
/// # Errors
///
/// The returned text says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| DURATION_EXPECTED.to_owned());
    }
    humantime::parse_duration(text).map_err(|_| DURATION_EXPECTED.to_owned())
}

/// Reads a duration from a HOCON scalar: a string with a unit, or an integer (milliseconds).
pub(crate) fn duration_from_scalar(scalar: &Scalar) -> Result<Duration, String> {
    match scalar {
        Scalar::Unsigned(ms) => Ok(Duration::from_millis(*ms)),
        Scalar::Str(text) => parse_duration(text),
        _ => Err(DURATION_EXPECTED.to_owned()),
    }
}

/// A byte size, `1MB` style. `KB`, `MB`, `GB` and `TB` are powers of 1024, as in EMQX (`1MB` is
/// 1,048,576 bytes); the unit is case-insensitive, `K`/`M`/`G`/`T` and `B` are accepted too, and a
/// plain integer is a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// One kibibyte, 1024 bytes (EMQX's `1KB`).
    pub const KB: u64 = 1024;
    /// One mebibyte, 1,048,576 bytes (EMQX's `1MB`).
    pub const MB: u64 = 1024 * 1024;
    /// One gibibyte (EMQX's `1GB`).
    pub const GB: u64 = 1024 * 1024 * 1024;

    /// A size of `bytes` bytes.
    #[must_use]
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

/// What a byte size must look like; the tail of every byte-size error.
const BYTE_SIZE_EXPECTED: &str = "expected a byte size such as 512B, 64KB, 1MB or 2GB";

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits.parse().map_err(|_| BYTE_SIZE_EXPECTED.to_owned())?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => Self::KB,
            "m" | "mb" => Self::MB,
            "g" | "gb" => Self::GB,
            "t" | "tb" => Self::GB * 1024,
            _ => return Err(BYTE_SIZE_EXPECTED.to_owned()),
        };
        number
            .checked_mul(multiplier)
            .map(Self)
            .ok_or_else(|| BYTE_SIZE_EXPECTED.to_owned())
    }
}

impl ByteSize {
    fn from_scalar(scalar: &Scalar) -> Result<Self, String> {
        match scalar {
            Scalar::Unsigned(bytes) => Ok(Self(*bytes)),
            Scalar::Str(text) => text.parse(),
            _ => Err(BYTE_SIZE_EXPECTED.to_owned()),
        }
    }

    /// Deserializes a size and checks that it lies in `MIN..=MAX` bytes.
    pub(crate) fn deserialize_in<'de, D, const MIN: u64, const MAX: u64>(
        deserializer: D,
    ) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        let scalar = Scalar::deserialize(deserializer)?;
        let expected =
            || format!("expected a byte size between {MIN} and {MAX} bytes, such as 1MB");
        let size = Self::from_scalar(&scalar).map_err(|_| serde::de::Error::custom(expected()))?;
        if (MIN..=MAX).contains(&size.0) {
            Ok(size)
        } else {
            Err(serde::de::Error::custom(expected()))
        }
    }
}

impl fmt::Display for ByteSize {
    /// Writes the largest whole unit: `1MB`, `64KB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, size) in [("GB", Self::GB), ("MB", Self::MB), ("KB", Self::KB)] {
            if bytes != 0 && bytes % size == 0 {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}B")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = Scalar::deserialize(deserializer)?;
        Self::from_scalar(&scalar).map_err(serde::de::Error::custom)
    }
}

/// A duration that may be `infinity` (EMQX's `duration() | infinity`), e.g. `mqtt.retry_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// Never time out (`infinity`).
    Infinity,
    /// Time out after this long.
    After(Duration),
}

impl Timeout {
    /// The finite duration, or `None` for `infinity`.
    #[must_use]
    pub const fn duration(self) -> Option<Duration> {
        match self {
            Self::Infinity => None,
            Self::After(duration) => Some(duration),
        }
    }
}

/// What a timeout must look like.
const TIMEOUT_EXPECTED: &str = "expected a duration such as 30s or 2h, or infinity";

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "infinity" {
            return Ok(Self::Infinity);
        }
        parse_duration(text)
            .map(Self::After)
            .map_err(|_| TIMEOUT_EXPECTED.to_owned())
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(deserializer)? {
            Scalar::Str(text) => text.parse().map_err(serde::de::Error::custom),
            Scalar::Unsigned(ms) => Ok(Self::After(Duration::from_millis(ms))),
            _ => Err(serde::de::Error::custom(TIMEOUT_EXPECTED)),
        }
    }
}

/// A count limit that may be `infinity` (EMQX's `pos_integer() | infinity`), e.g.
/// `listeners.tcp.<name>.max_connections` and `mqtt.max_subscriptions`. Zero is refused: a limit
/// of zero would refuse everything, which is better said with `enable = false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit (`infinity`).
    Infinity,
    /// At most this many (at least 1).
    Max(u64),
}

impl Limit {
    /// The finite limit, or `None` for `infinity`.
    #[must_use]
    pub const fn max(self) -> Option<u64> {
        match self {
            Self::Infinity => None,
            Self::Max(max) => Some(max),
        }
    }
}

/// What a limit must look like.
const LIMIT_EXPECTED: &str = "expected a positive integer or infinity";

impl FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "infinity" => Ok(Self::Infinity),
            other => match other.parse::<u64>() {
                Ok(max) if max > 0 => Ok(Self::Max(max)),
                _ => Err(LIMIT_EXPECTED.to_owned()),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(deserializer)? {
            Scalar::Str(text) => text.parse().map_err(serde::de::Error::custom),
            Scalar::Unsigned(max) if max > 0 => Ok(Self::Max(max)),
            _ => Err(serde::de::Error::custom(LIMIT_EXPECTED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_use_powers_of_1024() {
        assert_eq!("1MB".parse::<ByteSize>().unwrap().bytes(), 1_048_576);
        assert_eq!("1KB".parse::<ByteSize>().unwrap().bytes(), 1024);
        assert_eq!("512B".parse::<ByteSize>().unwrap().bytes(), 512);
        assert_eq!(
            "2GB".parse::<ByteSize>().unwrap().bytes(),
            2 * 1024 * 1024 * 1024
        );
        assert_eq!("64kb".parse::<ByteSize>().unwrap().bytes(), 64 * 1024);
        assert_eq!("4096".parse::<ByteSize>().unwrap().bytes(), 4096);
        assert!("10XB".parse::<ByteSize>().is_err());
        assert!("MB".parse::<ByteSize>().is_err());
        assert!("1.5MB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999TB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize::from_bytes(1_048_576).to_string(), "1MB");
        assert_eq!(ByteSize::from_bytes(1000).to_string(), "1000B");
    }

    #[test]
    fn durations_take_units_and_plain_milliseconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn timeouts_and_limits_accept_infinity() {
        assert_eq!("infinity".parse::<Timeout>().unwrap(), Timeout::Infinity);
        assert_eq!(
            "30s".parse::<Timeout>().unwrap().duration(),
            Some(Duration::from_secs(30))
        );
        assert!("never".parse::<Timeout>().is_err());
        assert_eq!("infinity".parse::<Limit>().unwrap(), Limit::Infinity);
        assert_eq!("10".parse::<Limit>().unwrap().max(), Some(10));
        assert!("0".parse::<Limit>().is_err());
    }
}
