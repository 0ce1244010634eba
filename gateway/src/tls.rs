//! TLS for the `ssl`, `wss` and `quic` listeners: `ssl_options` to a rustls server config, and
//! the verified client certificate to a [`PeerCert`].

use std::{path::Path, sync::Arc};

use rustls::{
    ServerConfig, SupportedCipherSuite, SupportedProtocolVersion, crypto::CryptoProvider,
    server::WebPkiClientVerifier,
};
use rustls_pki_types::CertificateDer;
use tributary_config::{PeerCertAs, SslOptions, TlsVersion, Verify};
use tributary_protocols::{CertField, PeerCert};
use x509_cert::der::{
    Decode as _, Tag, Tagged as _,
    asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef},
};

use crate::{
    StartError,
    certs::{self, ServerIdentity},
};

/// Builds the rustls server config of the listener whose options live under `key`
/// (`listeners.ssl.default`). `fallback` is the self-signed identity, used when no certificate
/// is configured.
pub(crate) fn server_config(
    key: &str,
    options: &SslOptions,
    fallback: &mut dyn FnMut() -> Result<ServerIdentity, StartError>,
) -> Result<ServerConfig, StartError> {
    let provider = Arc::new(provider(key, options)?);
    let versions: Vec<&'static SupportedProtocolVersion> = options
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls13 => &rustls::version::TLS13,
            TlsVersion::Tls12 => &rustls::version::TLS12,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| StartError::tls(format!("{key}.ssl_options.ciphers"), e))?;
    let builder = match options.verify {
        Verify::VerifyNone => builder.with_no_client_auth(),
        Verify::VerifyPeer => {
            let ca_key = format!("{key}.ssl_options.cacertfile");
            let roots = certs::load_roots(&ca_key, &options.cacertfile)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if options.crlfile.as_os_str().is_empty() {
                verifier
            } else {
                let crl_key = format!("{key}.ssl_options.crlfile");
                let crls = certs::load_crls(&crl_key, &options.crlfile)?;
                // The leaf only, as OpenSSL's `crl_check` (EMQX's) does; a leaf whose issuer
                // has no CRL in the file is refused (unknown status is denied), not waved on.
                verifier.with_crls(crls).only_check_end_entity_revocation()
            };
            let verifier = if options.fail_if_no_peer_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| match e {
                // A CRL webpki cannot use (a bad signature algorithm, a broken extension).
                rustls::server::VerifierBuilderError::InvalidCrl(_) => StartError::certificate(
                    &format!("{key}.ssl_options.crlfile"),
                    &options.crlfile,
                    e,
                ),
                _ => StartError::tls(ca_key, e),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let identity = if options.certfile.as_os_str().is_empty() {
        fallback()?
    } else {
        ServerIdentity {
            chain: certs::load_chain(&format!("{key}.ssl_options.certfile"), &options.certfile)?,
            key: certs::load_key(&format!("{key}.ssl_options.keyfile"), &options.keyfile)?,
        }
    };
    builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| {
            StartError::certificate(
                &format!("{key}.ssl_options.keyfile"),
                &options.keyfile,
                format!("the key does not fit the certificate: {e}"),
            )
        })
}

/// The ring provider, with the cipher suites `ssl_options.ciphers` names (all when empty).
fn provider(key: &str, options: &SslOptions) -> Result<CryptoProvider, StartError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if options.ciphers.is_empty() {
        return Ok(provider);
    }
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in &options.ciphers {
        match provider.cipher_suites.iter().find(|suite| {
            suite_names(**suite)
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
        }) {
            Some(suite) if !chosen.contains(suite) => chosen.push(*suite),
            Some(_) => {}
            // EMQX's default list names suites rustls does not implement (CBC, DHE...): those
            // are skipped, so that such a list can be pasted in.
            None => tracing::warn!(
                key = %format_args!("{key}.ssl_options.ciphers"),
                cipher = %name,
                "cipher suite not supported; skipped"
            ),
        }
    }
    if chosen.is_empty() {
        let supported: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter_map(|s| suite_names(*s).into_iter().next())
            .collect();
        return Err(StartError::Tls {
            key: format!("{key}.ssl_options.ciphers"),
            reason: format!(
                "no supported cipher suite named; expected some of {}",
                supported.join(", ")
            ),
        });
    }
    provider.cipher_suites = chosen;
    Ok(provider)
}

/// The names a suite goes by: IANA's, rustls's (`TLS13_...`) and OpenSSL's.
fn suite_names(suite: SupportedCipherSuite) -> Vec<String> {
    let Some(rustls_name) = suite.suite().as_str() else {
        return Vec::new();
    };
    let iana = rustls_name.replacen("TLS13_", "TLS_", 1);
    let openssl = match iana.as_str() {
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => Some("ECDHE-ECDSA-AES256-GCM-SHA384"),
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => Some("ECDHE-ECDSA-AES128-GCM-SHA256"),
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => Some("ECDHE-ECDSA-CHACHA20-POLY1305"),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => Some("ECDHE-RSA-AES256-GCM-SHA384"),
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => Some("ECDHE-RSA-AES128-GCM-SHA256"),
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => Some("ECDHE-RSA-CHACHA20-POLY1305"),
        _ => None,
    };
    let mut names = vec![iana.clone(), rustls_name.to_owned()];
    names.extend(openssl.map(str::to_owned));
    names
}

/// The config's `peer_cert_as_*` value as the driver's field choice.
pub(crate) fn cert_field(value: PeerCertAs) -> Option<CertField> {
    match value {
        PeerCertAs::Disabled => None,
        PeerCertAs::Cn => Some(CertField::CommonName),
        PeerCertAs::Dn => Some(CertField::Subject),
    }
}

/// The client's leaf certificate, as the driver and hooks see it. rustls has verified it
/// already; a certificate x509-cert cannot parse (rustls accepted it, so this is unlikely) is
/// passed with an empty subject, which no `peer_cert_as_*` accepts.
pub(crate) fn peer_cert(chain: Option<&[CertificateDer<'_>]>) -> Option<Arc<PeerCert>> {
    let leaf = chain?.first()?;
    let (common_name, subject) = match x509_cert::Certificate::from_der(leaf.as_ref()) {
        Ok(cert) => {
            let subject = &cert.tbs_certificate.subject;
            let common_name = subject
                .0
                .iter()
                .flat_map(|rdn| rdn.0.iter())
                .find(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::CN)
                .and_then(|atv| match atv.value.tag() {
                    Tag::Utf8String => Utf8StringRef::try_from(&atv.value)
                        .ok()
                        .map(|s| s.as_str().to_owned()),
                    Tag::PrintableString => PrintableStringRef::try_from(&atv.value)
                        .ok()
                        .map(|s| s.as_str().to_owned()),
                    Tag::Ia5String => Ia5StringRef::try_from(&atv.value)
                        .ok()
                        .map(|s| s.as_str().to_owned()),
                    _ => None,
                });
            (common_name, subject.to_string())
        }
        Err(error) => {
            tracing::debug!(%error, "client certificate subject unreadable");
            (None, String::new())
        }
    };
    Some(Arc::new(PeerCert {
        common_name,
        subject,
        der: bytes::Bytes::copy_from_slice(leaf.as_ref()),
    }))
}

/// The key of a listener, for messages: `listeners.ssl.default`.
pub(crate) fn listener_key(kind: &str, name: &str) -> String {
    format!("listeners.{kind}.{name}")
}

/// Logs, once per listener, that it serves the generated certificate.
pub(crate) fn warn_self_signed(key: &str, file: &Path) {
    tracing::warn!(
        listener = %key,
        certfile = %file.display(),
        "no ssl_options.certfile configured: serving a generated self-signed certificate that \
         clients cannot verify; configure certfile and keyfile for production"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ServerIdentity {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        ServerIdentity {
            chain: vec![generated.cert.der().clone()],
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into()),
        }
    }

    #[test]
    fn ciphers_are_named_the_iana_or_openssl_way() {
        let options = SslOptions {
            ciphers: vec![
                "TLS_AES_256_GCM_SHA384".into(),
                "ECDHE-RSA-AES128-GCM-SHA256".into(),
                "ECDHE-ECDSA-AES256-SHA384".into(),
            ],
            ..SslOptions::default()
        };
        let chosen = provider("listeners.ssl.default", &options).unwrap();
        assert_eq!(chosen.cipher_suites.len(), 2, "the CBC suite is skipped");
        let none = SslOptions {
            ciphers: vec!["DHE-RSA-AES256-SHA".into()],
            ..SslOptions::default()
        };
        let error = provider("listeners.ssl.default", &none)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("listeners.ssl.default.ssl_options.ciphers: no supported cipher"),
            "{error}"
        );
    }

    #[test]
    fn versions_and_ciphers_must_agree() {
        let options = SslOptions {
            versions: vec![TlsVersion::Tls13],
            ciphers: vec!["ECDHE-RSA-AES128-GCM-SHA256".into()],
            ..SslOptions::default()
        };
        let error = server_config("listeners.ssl.x", &options, &mut || Ok(identity()))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("listeners.ssl.x.ssl_options.ciphers: "),
            "{error}"
        );
    }

    #[test]
    fn verify_peer_needs_a_readable_ca() {
        let options = SslOptions {
            verify: Verify::VerifyPeer,
            cacertfile: "/nonexistent/ca.pem".into(),
            ..SslOptions::default()
        };
        let error = server_config("listeners.wss.default", &options, &mut || Ok(identity()))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "listeners.wss.default.ssl_options.cacertfile = \"/nonexistent/ca.pem\": "
            ),
            "{error}"
        );
    }

    #[test]
    fn peer_cert_reads_cn_and_dn() {
        let mut params = rcgen::CertificateParams::new(vec!["dev1".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dev1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let peer = peer_cert(Some(&[cert.der().clone()])).unwrap();
        assert_eq!(peer.common_name.as_deref(), Some("dev1"));
        assert!(peer.subject.contains("CN=dev1"), "{}", peer.subject);
        assert!(peer.subject.contains("O=Acme"), "{}", peer.subject);
        assert!(peer_cert(None).is_none());
    }
}
