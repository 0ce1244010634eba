//! [`ByteStr`]: a UTF-8 string that shares its bytes with the packet it was decoded from.

use std::{
    borrow::Borrow,
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
};

use bytes::Bytes;
use bytestring::ByteString;

/// An immutable UTF-8 string backed by [`Bytes`].
///
/// Topics, client ids and property strings are decoded as slices of the received packet, so a
/// PUBLISH routed to a thousand subscribers shares one topic allocation instead of copying it.
/// The UTF-8 check happens once, in [`ByteStr::from_utf8`]; afterwards the bytes are known valid
/// and reading the string costs nothing (`bytestring` holds that invariant, so this crate needs
/// no `unsafe`).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr(ByteString);

// Hashes as `str` does, as `Borrow<str>` requires: a `HashMap<ByteStr, _>` is then
// searchable with a plain `&str`.
impl Hash for ByteStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl ByteStr {
    /// An empty string.
    pub const fn new() -> Self {
        Self(ByteString::from_static(""))
    }

    /// Wraps `bytes` after checking that they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Self)
    }

    /// A string from a `'static` literal, without copying.
    pub const fn from_static(s: &'static str) -> Self {
        Self(ByteString::from_static(s))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes (shared, not copied).
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Consumes the string into its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        Self(ByteString::from(s))
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        Self(ByteString::from(s))
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(ByteStr::from("a/b"), 1);
        assert_eq!(map.get("a/b"), Some(&1));
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert!(ByteStr::from_utf8(Bytes::from_static(&[0xff, 0xfe])).is_err());
        assert_eq!(
            ByteStr::from_utf8(Bytes::from_static(b"a/b")).unwrap(),
            "a/b"
        );
    }
}
