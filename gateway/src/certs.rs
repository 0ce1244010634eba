//! Certificate material for the TLS listeners: PEM files read into rustls types, and the
//! self-signed certificate generated at first start when none is configured.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use rustls::RootCertStore;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, pem::PemObject,
};

use crate::StartError;

/// Where the generated certificate and key live, under `node.data_dir`.
const CERTS_DIR: &str = "certs";
const SELF_SIGNED_CERT: &str = "self-signed.pem";
const SELF_SIGNED_KEY: &str = "self-signed.key";

/// A server certificate chain and its key.
#[derive(Debug)]
pub(crate) struct ServerIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Reads `file` for the config key `key`; the error names both.
fn read(key: &str, file: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(file).map_err(|error| StartError::certificate(key, file, error))
}

/// The certificate chain in `file` (PEM, leaf first): at least one certificate.
pub(crate) fn load_chain(
    key: &str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, StartError> {
    let pem = read(key, file)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| StartError::certificate(key, file, error))?;
    if chain.is_empty() {
        return Err(StartError::certificate(
            key,
            file,
            "no PEM certificate in the file",
        ));
    }
    Ok(chain)
}

/// The private key in `file` (PEM: PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(key: &str, file: &Path) -> Result<PrivateKeyDer<'static>, StartError> {
    let pem = read(key, file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| StartError::certificate(key, file, error))
}

/// The CAs in `file`: every certificate must parse as a trust anchor, and there must be at
/// least one. An empty or broken CA file is an error, never "trust nothing" or "verify
/// nothing" (Mosquitto 2.0.x let an empty CA file skip verification).
pub(crate) fn load_roots(key: &str, file: &Path) -> Result<RootCertStore, StartError> {
    let mut roots = RootCertStore::empty();
    for cert in load_chain(key, file)? {
        roots
            .add(cert)
            .map_err(|error| StartError::certificate(key, file, error))?;
    }
    Ok(roots)
}

/// The certificate revocation lists in `file` (PEM `X509 CRL` blocks): at least one. An empty
/// file is an error: a CRL file that revokes nothing by accident must not pass unnoticed.
pub(crate) fn load_crls(
    key: &str,
    file: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, StartError> {
    let pem = read(key, file)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| StartError::certificate(key, file, error))?;
    if crls.is_empty() {
        return Err(StartError::certificate(key, file, "no PEM CRL in the file"));
    }
    Ok(crls)
}

/// The self-signed identity under `data_dir`, generated on first use and reused after.
///
/// The files are created with mode 0600 on Unix: the key is a secret.
pub(crate) fn self_signed(data_dir: &Path) -> Result<(ServerIdentity, PathBuf), StartError> {
    let dir = data_dir.join(CERTS_DIR);
    let cert_file = dir.join(SELF_SIGNED_CERT);
    let key_file = dir.join(SELF_SIGNED_KEY);
    if !cert_file.exists() || !key_file.exists() {
        generate(&dir, &cert_file, &key_file)?;
    }
    let identity = ServerIdentity {
        chain: load_chain("self-signed certificate", &cert_file)?,
        key: load_key("self-signed key", &key_file)?,
    };
    Ok((identity, cert_file))
}

fn generate(dir: &Path, cert_file: &Path, key_file: &Path) -> Result<(), StartError> {
    let fail = |file: &Path, reason: String| StartError::SelfSigned {
        file: file.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| fail(cert_file, e.to_string()))?;
    write_private(key_file, generated.key_pair.serialize_pem().as_bytes())
        .map_err(|e| fail(key_file, e.to_string()))?;
    write_private(cert_file, generated.cert.pem().as_bytes())
        .map_err(|e| fail(cert_file, e.to_string()))?;
    Ok(())
}

/// Writes `contents` to a new `file` readable by its owner only.
fn write_private(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options.open(file)?;
    out.write_all(contents)?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tributary-certs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn self_signed_is_generated_once_and_private() {
        let dir = temp_dir("self-signed");
        let (first, file) = self_signed(&dir).unwrap();
        let (second, _) = self_signed(&dir).unwrap();
        assert_eq!(first.chain, second.chain, "reused on the next start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("certs/self-signed.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_errors_naming_key_and_file() {
        let dir = temp_dir("bad");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = "listeners.ssl.default.ssl_options.cacertfile";
        for file in [&empty, &garbage, &dir.join("missing.pem")] {
            let error = load_roots(key, file).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{key} = {file:?}: ")), "{error}");
        }
        let error = load_key("k", &empty).unwrap_err().to_string();
        assert!(error.starts_with("k = "), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
