//! [`LwPath`]: an LwM2M path `/O[/I[/R[/RI]]]`.

use std::fmt;

use thiserror::Error;

/// An LwM2M path: an object id, optionally an instance, a resource and a resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LwPath {
    ids: [u16; 4],
    len: u8,
}

/// A string that is not an LwM2M path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
#[error("invalid LwM2M path {0:?}")]
pub struct PathError(pub String);

impl LwPath {
    /// Parses `/3/0/1` (leading `/` optional, trailing `/` ignored, 1 to 4 numeric levels).
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let bad = || PathError(text.chars().take(64).collect());
        let trimmed = text.trim_start_matches('/').trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(bad());
        }
        let mut path = Self {
            ids: [0; 4],
            len: 0,
        };
        for part in trimmed.split('/') {
            let id: u16 = part.parse().map_err(|_| bad())?;
            path = path.child(id).ok_or_else(bad)?;
        }
        Ok(path)
    }

    /// The ids of this path, from the object down.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }

    /// How many levels (1 = object .. 4 = resource instance).
    pub fn depth(&self) -> usize {
        usize::from(self.len)
    }

    /// The object id.
    pub fn object(&self) -> u16 {
        self.ids[0]
    }

    /// The resource id, when the path goes that deep.
    pub fn resource(&self) -> Option<u16> {
        (self.len >= 3).then_some(self.ids[2])
    }

    /// This path extended by one level, or `None` past a resource instance.
    pub fn child(&self, id: u16) -> Option<Self> {
        if self.len >= 4 {
            return None;
        }
        let mut next = *self;
        next.ids[usize::from(self.len)] = id;
        next.len += 1;
        Some(next)
    }

    /// This path without its last level, or `None` for an object path.
    pub fn parent(&self) -> Option<Self> {
        if self.len <= 1 {
            return None;
        }
        let mut up = *self;
        up.len -= 1;
        up.ids[usize::from(up.len)] = 0;
        Some(up)
    }
}

impl fmt::Display for LwPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let path = LwPath::parse("/3/0/1").unwrap();
        assert_eq!(path.ids(), &[3, 0, 1]);
        assert_eq!(path.to_string(), "/3/0/1");
        assert_eq!(path.resource(), Some(1));
        assert_eq!(LwPath::parse("5/").unwrap().to_string(), "/5");
        assert_eq!(path.parent().unwrap().to_string(), "/3/0");
        assert!(LwPath::parse("/1/2/3/4/5").is_err());
        assert!(LwPath::parse("/a").is_err());
        assert!(LwPath::parse("/").is_err());
        assert!(LwPath::parse("/70000").is_err());
    }
}
