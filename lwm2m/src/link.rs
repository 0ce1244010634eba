//! CoRE link format (RFC 6690): registration payloads and Discover results.
//!
//! Parsing is bounded: a payload longer than [`LinkLimits::max_len`] or with more than
//! [`LinkLimits::max_links`] links is refused, so a device cannot make the gateway hold an
//! unbounded object list (RELIABILITY.md item 38).

use thiserror::Error;

/// Bounds on a link-format payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimits {
    /// Most links accepted.
    pub max_links: usize,
    /// Most bytes accepted.
    pub max_len: usize,
}

impl Default for LinkLimits {
    fn default() -> Self {
        Self {
            max_links: 512,
            max_len: 16 * 1024,
        }
    }
}

/// Why a link-format payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The payload is longer than allowed.
    #[error("link-format payload of {0} bytes is too long")]
    TooLong(usize),
    /// The payload holds more links than allowed.
    #[error("link-format payload holds more than {0} links")]
    TooManyLinks(usize),
    /// The payload is not UTF-8.
    #[error("link-format payload is not UTF-8")]
    NotUtf8,
    /// A link is not `<target>[;attr...]`.
    #[error("malformed link {0:?}")]
    Malformed(String),
}

/// One parsed link: its target and its attributes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`.
    pub target: String,
    /// `name[=value]` attributes, quotes removed from quoted values.
    pub attributes: Vec<(String, Option<String>)>,
}

impl Link {
    /// The value of an attribute, if present with a value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// The object list of a Register or Update payload, EMQX's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectList {
    /// The alternate path (`rt="oma.lwm2m"` link), `/` by default.
    pub alternate_path: String,
    /// The object and instance links, alternate-path prefix removed, e.g. `/3/0`.
    pub objects: Vec<String>,
}

fn check_len(payload: &[u8], limits: LinkLimits) -> Result<&str, LinkError> {
    if payload.len() > limits.max_len {
        return Err(LinkError::TooLong(payload.len()));
    }
    std::str::from_utf8(payload).map_err(|_| LinkError::NotUtf8)
}

/// Splits a link-format payload into its link strings at the commas that are outside quotes
/// and angle brackets, each trimmed (Discover `content`).
pub fn split_links(payload: &[u8], limits: LinkLimits) -> Result<Vec<String>, LinkError> {
    let text = check_len(payload, limits)?;
    let mut out = Vec::new();
    let (mut quoted, mut angled, mut start) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' if !angled => quoted = !quoted,
            '<' if !quoted => angled = true,
            '>' if !quoted => angled = false,
            ',' if !quoted && !angled => {
                push_link(&mut out, &text[start..i], limits)?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push_link(&mut out, &text[start..], limits)?;
    Ok(out)
}

fn push_link(out: &mut Vec<String>, raw: &str, limits: LinkLimits) -> Result<(), LinkError> {
    let link = raw.trim();
    if link.is_empty() {
        return Ok(());
    }
    if out.len() >= limits.max_links {
        return Err(LinkError::TooManyLinks(limits.max_links));
    }
    out.push(link.to_owned());
    Ok(())
}

/// Parses a link-format payload (RFC 6690 §2) into links.
pub fn parse_links(payload: &[u8], limits: LinkLimits) -> Result<Vec<Link>, LinkError> {
    split_links(payload, limits)?
        .iter()
        .map(|raw| parse_link(raw))
        .collect()
}

fn parse_link(raw: &str) -> Result<Link, LinkError> {
    let malformed = || LinkError::Malformed(raw.chars().take(64).collect());
    let rest = raw.strip_prefix('<').ok_or_else(malformed)?;
    let end = rest.find('>').ok_or_else(malformed)?;
    let target = rest[..end].to_owned();
    let mut attributes = Vec::new();
    let mut params = rest[end + 1..].trim();
    while !params.is_empty() {
        params = params.strip_prefix(';').ok_or_else(malformed)?.trim_start();
        let name_end = params.find(['=', ';']).unwrap_or(params.len());
        let name = params[..name_end].trim().to_owned();
        if name.is_empty() {
            return Err(malformed());
        }
        params = &params[name_end..];
        let value = if let Some(after) = params.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let close = quoted.find('"').ok_or_else(malformed)?;
                params = quoted[close + 1..].trim_start();
                Some(quoted[..close].to_owned())
            } else {
                let value_end = after.find(';').unwrap_or(after.len());
                params = &after[value_end..];
                Some(after[..value_end].trim().to_owned())
            }
        } else {
            None
        };
        attributes.push((name, value));
    }
    Ok(Link { target, attributes })
}

/// EMQX's object-list rule (`emqx_lwm2m_session:parse_object_list/1`): split on `,`, trim,
/// strip `<>`, drop `;attr` parts; a link with `rt="oma.lwm2m"` becomes the alternate path
/// (default `/`) and its prefix is removed from the other links.
pub fn object_list(payload: &[u8], limits: LinkLimits) -> Result<ObjectList, LinkError> {
    let links = parse_links(payload, limits)?;
    let alternate = links
        .iter()
        .find(|l| l.attribute("rt") == Some("oma.lwm2m"));
    let alternate_path = alternate.map_or_else(|| "/".to_owned(), |l| l.target.clone());
    let prefix = alternate_path.trim_end_matches('/');
    let objects = links
        .iter()
        .filter(|l| l.attribute("rt") != Some("oma.lwm2m"))
        .map(|l| match l.target.strip_prefix(prefix) {
            Some(stripped) if !prefix.is_empty() && stripped.starts_with('/') => {
                stripped.to_owned()
            }
            _ => l.target.clone(),
        })
        .collect();
    Ok(ObjectList {
        alternate_path,
        objects,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn object_list_of_the_emqx_register_example() {
        let list = object_list(b"</1>, </2>, </3>, </4>, </5>", LinkLimits::default()).unwrap();
        assert_eq!(list.alternate_path, "/");
        assert_eq!(list.objects, ["/1", "/2", "/3", "/4", "/5"]);
    }

    #[test]
    fn alternate_path_is_taken_and_stripped() {
        // LwM2M 1.0.2 §5.3.1 example with an alternate path.
        let payload =
            br#"</lwm2m>;rt="oma.lwm2m", </lwm2m/1/101>, </lwm2m/1/102>, </lwm2m/3/0>;ver=1.1"#;
        let list = object_list(payload, LinkLimits::default()).unwrap();
        assert_eq!(list.alternate_path, "/lwm2m");
        assert_eq!(list.objects, ["/1/101", "/1/102", "/3/0"]);
    }

    #[test]
    fn attributes_are_parsed_with_quotes_and_flags() {
        let links = parse_links(
            br#"</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/8>;obs;title="a,b""#,
            LinkLimits::default(),
        )
        .unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].target, "/3/0/7");
        assert_eq!(links[0].attribute("lt"), Some("42.2"));
        assert_eq!(links[1].attributes[0], ("obs".to_owned(), None));
        assert_eq!(links[1].attribute("title"), Some("a,b"));
    }

    #[test]
    fn discover_payload_splits_into_link_strings() {
        let links = split_links(
            b"</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2,</3/0/8>",
            LinkLimits::default(),
        )
        .unwrap();
        assert_eq!(
            links,
            ["</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2", "</3/0/8>"]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let limits = LinkLimits {
            max_links: 2,
            max_len: 20,
        };
        assert_eq!(
            split_links(b"</1>,</2>,</3>", limits),
            Err(LinkError::TooManyLinks(2))
        );
        assert_eq!(
            split_links(&[b'x'; 21], limits),
            Err(LinkError::TooLong(21))
        );
        assert_eq!(split_links(&[0xFF], limits), Err(LinkError::NotUtf8));
        assert!(matches!(
            parse_links(b"/1", limits),
            Err(LinkError::Malformed(_))
        ));
        assert!(matches!(
            parse_links(b"</1>x", limits),
            Err(LinkError::Malformed(_))
        ));
    }
}
