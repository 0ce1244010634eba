//! [`PeerCert`]: what a client's TLS certificate says about it, for the hooks and for
//! `peer_cert_as_username` / `peer_cert_as_clientid`.

use bytes::Bytes;

/// The client certificate a TLS transport verified. The transport parses it; the driver only
/// reads these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject's Common Name, if it has one (and it is text).
    pub common_name: Option<String>,
    /// The whole subject Distinguished Name, RFC 4514 text (`CN=dev1,O=Acme`).
    pub subject: String,
    /// The certificate, DER, for hooks that want more than the subject.
    pub der: Bytes,
}

/// Which part of the peer certificate stands in for a CONNECT field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertField {
    /// The subject's Common Name (`cn`).
    CommonName,
    /// The whole subject Distinguished Name (`dn`).
    Subject,
}

impl PeerCert {
    /// The value of `field`, if the certificate has it and it may stand for a user name or
    /// client id: not empty, and free of `+`, `#` and NUL, which would let a certificate widen an
    /// ACL pattern such as `%u/#` or forge a topic level.
    pub fn identity(&self, field: CertField) -> Option<&str> {
        let value = match field {
            CertField::CommonName => self.common_name.as_deref()?,
            CertField::Subject => self.subject.as_str(),
        };
        let usable = !value.is_empty() && !value.contains(['+', '#', '\0']);
        usable.then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, subject: &str) -> PeerCert {
        PeerCert {
            common_name: cn.map(str::to_owned),
            subject: subject.to_owned(),
            der: Bytes::new(),
        }
    }

    #[test]
    fn identity_is_validated() {
        let good = cert(Some("dev1"), "CN=dev1,O=Acme");
        assert_eq!(good.identity(CertField::CommonName), Some("dev1"));
        assert_eq!(good.identity(CertField::Subject), Some("CN=dev1,O=Acme"));
        assert_eq!(cert(None, "O=Acme").identity(CertField::CommonName), None);
        assert_eq!(cert(Some(""), "CN=").identity(CertField::CommonName), None);
        for bad in ["a/+", "#", "dev\0"] {
            assert_eq!(cert(Some(bad), "O=x").identity(CertField::CommonName), None);
        }
        assert_eq!(cert(None, "").identity(CertField::Subject), None);
    }
}
