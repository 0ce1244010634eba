//! Test certificates made with rcgen at test time: a CA, a server certificate it signed for
//! `localhost` and `127.0.0.1`, client certificates (valid or expired), and CRLs revoking some
//! of them, written as PEM files.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};

/// A certificate and its key, as PEM, and where they were written.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate file.
    pub cert_file: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
    /// The certificate's serial number, unique within its CA.
    pub serial: u64,
}

/// A test CA that issues server and client certificates into a directory.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
    dir: PathBuf,
    next_serial: AtomicU64,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA certificate file.
    pub cert_file: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA named `name`, its files under `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("create the PKI directory");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_pem = cert.pem();
        let cert_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert_file, &cert_pem).expect("write the CA file");
        Self {
            cert,
            key,
            dir: dir.to_path_buf(),
            next_serial: AtomicU64::new(1),
            cert_pem,
            cert_file,
        }
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn server(&self) -> Issued {
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, "server")
    }

    /// A client certificate whose subject is `CN=<common_name>, O=Tributary Tests`.
    pub fn client(&self, common_name: &str) -> Issued {
        self.client_with(common_name, |_| {})
    }

    /// A client certificate that expired on 2021-01-01 (valid from 2020-01-01).
    pub fn expired_client(&self, common_name: &str) -> Issued {
        self.client_with(common_name, |params| {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        })
    }

    /// A CRL from this CA revoking `revoked` (reason: key compromise), valid from 2024 to 2099,
    /// written to `<name>.crl.pem`; returns the file.
    pub fn crl(&self, name: &str, revoked: &[&Issued]) -> PathBuf {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|issued| RevokedCertParams {
                    serial_number: SerialNumber::from(issued.serial),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.cert, &self.key)
            .expect("sign the CRL");
        let file = self.dir.join(format!("{name}.crl.pem"));
        std::fs::write(&file, crl.pem().expect("CRL PEM")).expect("write the CRL");
        file
    }

    /// A client certificate as [`TestCa::client`], with `configure` applied to its parameters.
    pub fn client_with(
        &self,
        common_name: &str,
        configure: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Tributary Tests");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        configure(&mut params);
        // The name may hold characters a file name cannot (tests use `dev/+`).
        let stem: String = common_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.issue(params, &format!("client-{stem}"))
    }

    fn issue(&self, mut params: CertificateParams, stem: &str) -> Issued {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the certificate");
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: self.dir.join(format!("{stem}.pem")),
            key_file: self.dir.join(format!("{stem}.key")),
            serial,
        };
        std::fs::write(&issued.cert_file, &issued.cert_pem).expect("write the certificate");
        std::fs::write(&issued.key_file, &issued.key_pem).expect("write the key");
        issued
    }
}
