//! MQTT over TLS: rumqttc against the self-signed default listener, mutual TLS with rcgen
//! certificates, certificate identities, TLS versions, the handshake timeout, and refusing to
//! start on a bad certificate setup.

// Test helpers fail loudly: a failure is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tributary_config::{Config, PeerCertAs, SslListener, SslOptions, TlsVersion, Verify};
use tributary_gateway::Gateway;
use tributary_mqtt_core::{ProtocolVersion, ReasonCode, packet::Connect};
use tributary_tests::{
    mqtt::MqttClient,
    pki::{Issued, TestCa},
    start_gateway, start_gateway_with, temp_dir, test_config,
    transports::{self, client_tls, connect_tls},
};

const WAIT: Duration = Duration::from_secs(5);

/// Polls until `want` matches an incoming packet.
async fn until<T>(eventloop: &mut EventLoop, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(packet) = eventloop.poll().await.expect("connection failed") {
                if let Some(found) = want(&packet) {
                    return found;
                }
            }
        }
    })
    .await
    .expect("timed out")
}

/// A rumqttc client over TLS to `addr` (as `localhost`), trusting `ca_pem`.
fn rumqttc_tls(
    id: &str,
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&Issued>,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "localhost", addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: ca_pem.as_bytes().to_vec(),
        alpn: None,
        client_auth: client.map(|c| {
            (
                c.cert_pem.clone().into_bytes(),
                c.key_pem.clone().into_bytes(),
            )
        }),
    }));
    AsyncClient::new(options, 16)
}

/// Subscribes and publishes to itself, checking the message comes back.
async fn round_trip(client: &AsyncClient, eventloop: &mut EventLoop, topic: &str) {
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    until(eventloop, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    client
        .publish(topic, QoS::AtLeastOnce, false, "over tls")
        .await
        .unwrap();
    let payload = until(eventloop, |p| match p {
        Packet::Publish(publish) => Some(publish.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&payload[..], b"over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_connects_over_tls_with_the_generated_certificate() {
    let gateway = start_gateway().await;
    let ca = gateway.self_signed_pem();
    let (client, mut eventloop) =
        rumqttc_tls("tls-v311", gateway.addr_of("ssl", "default"), &ca, None);
    round_trip(&client, &mut eventloop, "tls/v311").await;

    // MQTT 5 on the same listener.
    let mut options = rumqttc::v5::MqttOptions::new(
        "tls-v5",
        "localhost",
        gateway.addr_of("ssl", "default").port(),
    );
    options.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: ca.into_bytes(),
        alpn: None,
        client_auth: None,
    }));
    let mut client = common::V5::connect(options).await;
    client.subscribe("tls/v5", V5QoS::AtLeastOnce).await;
    client
        .publish("tls/v5", V5QoS::AtLeastOnce, false, b"v5 over tls")
        .await;
    assert_eq!(&client.next_publish().await.payload[..], b"v5 over tls");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_is_generated_into_the_data_dir_and_private() {
    let gateway = start_gateway().await;
    let key = gateway.data_dir().join("certs/self-signed.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    gateway.shutdown().await;
}

/// A listener `mtls` that requires a client certificate from `ca`, with `configure` applied.
fn mtls_listener(
    ca: &TestCa,
    server: &Issued,
    configure: impl FnOnce(&mut SslListener),
) -> impl FnOnce(&mut Config) {
    let mut listener = SslListener {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        ssl_options: SslOptions {
            certfile: server.cert_file.clone(),
            keyfile: server.key_file.clone(),
            cacertfile: ca.cert_file.clone(),
            verify: Verify::VerifyPeer,
            fail_if_no_peer_cert: true,
            ..SslOptions::default()
        },
        ..SslListener::default()
    };
    configure(&mut listener);
    move |config: &mut Config| {
        config.listeners.ssl.insert("mtls".to_owned(), listener);
    }
}

/// Whether an MQTT CONNECT over a TLS connection made with `tls` gets a successful CONNACK.
async fn mqtt_over_tls_accepted(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    client_id: &str,
) -> bool {
    let Ok(stream) = connect_tls(addr, tls).await else {
        return false;
    };
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 30,
        client_id: client_id.into(),
        ..Connect::default()
    };
    let (_, connack) = MqttClient::try_connect(Box::new(stream), connect).await;
    connack.is_some_and(|c| c.reason == ReasonCode::SUCCESS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_a_good_certificate_and_refuses_none_or_another_ca() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "trusted");
    let other = TestCa::new(&dir, "other");
    let server = ca.server();
    let gateway = start_gateway_with(mtls_listener(&ca, &server, |_| {})).await;
    let addr = gateway.addr_of("ssl", "mtls");

    let good = ca.client("device-1");
    assert!(mqtt_over_tls_accepted(addr, &client_tls(&ca.cert_pem, Some(&good)), "good").await);
    assert!(
        !mqtt_over_tls_accepted(addr, &client_tls(&ca.cert_pem, None), "no-cert").await,
        "a client without a certificate is refused"
    );
    let stranger = other.client("device-1");
    assert!(
        !mqtt_over_tls_accepted(addr, &client_tls(&ca.cert_pem, Some(&stranger)), "other-ca").await,
        "a certificate from another CA is refused"
    );

    // rumqttc with its own client certificate.
    let (client, mut eventloop) = rumqttc_tls("rumqttc-mtls", addr, &ca.cert_pem, Some(&good));
    round_trip(&client, &mut eventloop, "mtls/rumqttc").await;
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_peer_without_fail_if_no_peer_cert_lets_anonymous_clients_in() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "optional");
    let server = ca.server();
    let gateway = start_gateway_with(mtls_listener(&ca, &server, |l| {
        l.ssl_options.fail_if_no_peer_cert = false;
    }))
    .await;
    let addr = gateway.addr_of("ssl", "mtls");
    assert!(mqtt_over_tls_accepted(addr, &client_tls(&ca.cert_pem, None), "anonymous").await);
    let stranger = TestCa::new(&dir, "stranger").client("x");
    assert!(
        !mqtt_over_tls_accepted(addr, &client_tls(&ca.cert_pem, Some(&stranger)), "bad-cert").await,
        "a certificate that is presented must still verify"
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_cert_as_clientid_imposes_the_common_name() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "ids");
    let server = ca.server();
    let gateway = start_gateway_with(mtls_listener(&ca, &server, |l| {
        l.peer_cert_as_clientid = PeerCertAs::Cn;
        l.peer_cert_as_username = PeerCertAs::Dn;
    }))
    .await;
    let addr = gateway.addr_of("ssl", "mtls");
    let device = ca.client("device-7");
    let tls = client_tls(&ca.cert_pem, Some(&device));

    // Two connections with different client ids but the same certificate: the second takes
    // the first one's session over, so both were "device-7".
    let stream = connect_tls(addr, &tls).await.unwrap();
    let mut first = MqttClient::connect(Box::new(stream), ProtocolVersion::V5, "chosen-a").await;
    let stream = connect_tls(addr, &tls).await.unwrap();
    let _second = MqttClient::connect(Box::new(stream), ProtocolVersion::V5, "chosen-b").await;
    match first.recv().await {
        Some(tributary_mqtt_core::Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER);
        }
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }

    // A Common Name that could widen an ACL is refused, not used. The subject (the user name
    // here) holds the `+` too, and the user name is checked first: 0x86.
    let sneaky = ca.client("dev/+");
    let stream = connect_tls(addr, &client_tls(&ca.cert_pem, Some(&sneaky)))
        .await
        .unwrap();
    let (_, connack) = MqttClient::try_connect(
        Box::new(stream),
        Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            client_id: "whatever".into(),
            ..Connect::default()
        },
    )
    .await;
    assert_eq!(
        connack.map(|c| c.reason),
        Some(ReasonCode::BAD_USERNAME_OR_PASSWORD)
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_are_enforced() {
    let gateway = start_gateway_with(|config| {
        let only_13 = SslListener {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ssl_options: SslOptions {
                versions: vec![TlsVersion::Tls13],
                ..SslOptions::default()
            },
            ..SslListener::default()
        };
        config.listeners.ssl.insert("v13".to_owned(), only_13);
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_slice_iter(gateway.self_signed_pem().as_bytes())
    {
        roots.add(cert.unwrap()).unwrap();
    }
    use rustls_pki_types::pem::PemObject as _;
    let tls12_only = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    assert!(
        mqtt_over_tls_accepted(gateway.addr_of("ssl", "default"), &tls12_only, "tls12").await,
        "the default listener offers TLS 1.2"
    );
    assert!(
        !mqtt_over_tls_accepted(gateway.addr_of("ssl", "v13"), &tls12_only, "tls12").await,
        "a TLS 1.3-only listener refuses TLS 1.2"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_dropped_at_the_handshake_timeout() {
    let gateway = start_gateway_with(|config| {
        for listener in config.listeners.ssl.values_mut() {
            listener.ssl_options.handshake_timeout = Duration::from_millis(300);
        }
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(gateway.addr_of("ssl", "default"))
        .await
        .unwrap();
    // The start of a ClientHello record, then nothing.
    socket.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf))
        .await
        .expect("the server should close a stalled handshake");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    gateway.shutdown().await;
}

/// Starts a gateway whose `ssl.default` has `options`, expecting it to refuse.
async fn start_error(options: SslOptions) -> String {
    let mut config = test_config();
    config.listeners.ssl.get_mut("default").unwrap().ssl_options = options;
    let error = Gateway::start(&config)
        .await
        .expect_err("the gateway should refuse to start");
    let _ = std::fs::remove_dir_all(&config.node.data_dir);
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_refuse_to_start() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "start");
    let server = ca.server();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();

    let error = start_error(SslOptions {
        verify: Verify::VerifyPeer,
        cacertfile: empty.clone(),
        ..SslOptions::default()
    })
    .await;
    assert_eq!(
        error,
        format!(
            "listeners.ssl.default.ssl_options.cacertfile = {empty:?}: no PEM certificate in the file"
        )
    );

    let missing = dir.join("missing.pem");
    let error = start_error(SslOptions {
        certfile: missing.clone(),
        keyfile: server.key_file.clone(),
        ..SslOptions::default()
    })
    .await;
    assert!(
        error.starts_with(&format!(
            "listeners.ssl.default.ssl_options.certfile = {missing:?}: "
        )),
        "{error}"
    );

    // A key that is not the certificate's.
    let stranger = ca.client("stranger");
    let error = start_error(SslOptions {
        certfile: server.cert_file.clone(),
        keyfile: stranger.key_file.clone(),
        ..SslOptions::default()
    })
    .await;
    assert!(
        error.starts_with("listeners.ssl.default.ssl_options.keyfile = "),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_certificates_are_served() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "served");
    let server = ca.server();
    let gateway = start_gateway_with(|config| {
        let options = &mut config.listeners.ssl.get_mut("default").unwrap().ssl_options;
        options.certfile = server.cert_file.clone();
        options.keyfile = server.key_file.clone();
    })
    .await;
    let addr = gateway.addr_of("ssl", "default");
    assert!(
        mqtt_over_tls_accepted(
            addr,
            &transports::client_tls(&ca.cert_pem, None),
            "ca-trusting"
        )
        .await
    );
    assert!(
        !mqtt_over_tls_accepted(addr, &gateway.client_tls(), "self-signed-trusting").await,
        "the configured certificate replaces the generated one"
    );
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 3.1.1 CONNECT with client id `c`.
const CONNECT_311: [u8; 15] = [
    0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x01, b'c',
];

/// The TLS alert in an error from tokio-rustls, if that is what it is.
fn alert_in(error: &std::io::Error) -> Option<rustls::AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Opens TLS to `addr` with `tls`, sends `probe` and reads: `Ok` with the first bytes the
/// server answers, or `Err` with the TLS alert it sent (`None`: closed without one). In TLS 1.3
/// the server checks the client certificate after the client's Finished, so a refusal may
/// arrive only with the first read.
async fn tls_outcome(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    probe: &[u8],
) -> Result<Vec<u8>, Option<rustls::AlertDescription>> {
    let mut stream = connect_tls(addr, tls).await.map_err(|e| alert_in(&e))?;
    // A refused client may find the socket closed under its write; the read says why.
    let _ = stream.write_all(probe).await;
    let mut buf = vec![0u8; 256];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Err(_) => Err(None),
        Ok(Ok(n)) => Ok(buf[..n].to_vec()),
        Ok(Err(error)) => Err(alert_in(&error)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_client_certificates_are_refused_with_an_alert_on_ssl_wss_and_quic() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "crl");
    let server = ca.server();
    let good = ca.client("device-good");
    let revoked = ca.client("device-revoked");
    let expired = ca.expired_client("device-expired");
    let crlfile = ca.crl("crl", &[&revoked]);
    let options = SslOptions {
        certfile: server.cert_file.clone(),
        keyfile: server.key_file.clone(),
        cacertfile: ca.cert_file.clone(),
        crlfile,
        verify: Verify::VerifyPeer,
        fail_if_no_peer_cert: true,
        ..SslOptions::default()
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let gateway = start_gateway_with(|config| {
        config.listeners.ssl.insert(
            "crl".to_owned(),
            SslListener {
                bind: loopback,
                ssl_options: options.clone(),
                ..SslListener::default()
            },
        );
        config.listeners.wss.insert(
            "crl".to_owned(),
            tributary_config::WssListener {
                bind: loopback,
                ssl_options: options.clone(),
                ..tributary_config::WssListener::default()
            },
        );
        config.listeners.quic.insert(
            "crl".to_owned(),
            tributary_config::QuicListener {
                bind: loopback,
                ssl_options: SslOptions {
                    versions: vec![TlsVersion::Tls13],
                    ..options.clone()
                },
                ..tributary_config::QuicListener::default()
            },
        );
    })
    .await;
    let tls = |issued: &Issued| client_tls(&ca.cert_pem, Some(issued));
    let ws_probe = b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    for (kind, probe) in [("ssl", &CONNECT_311[..]), ("wss", &ws_probe[..])] {
        let addr = gateway.addr_of(kind, "crl");
        let answer = tls_outcome(addr, &tls(&good), probe).await;
        assert!(
            answer.is_ok(),
            "{kind}: the valid certificate is accepted: {answer:?}"
        );
        assert_eq!(
            tls_outcome(addr, &tls(&revoked), probe).await,
            Err(Some(rustls::AlertDescription::CertificateRevoked)),
            "{kind}: the revoked certificate"
        );
        assert_eq!(
            tls_outcome(addr, &tls(&expired), probe).await,
            Err(Some(rustls::AlertDescription::CertificateExpired)),
            "{kind}: the expired certificate"
        );
    }
    // The valid certificate gets a CONNACK 0 over ssl.
    let ssl = gateway.addr_of("ssl", "crl");
    assert_eq!(
        tls_outcome(ssl, &tls(&good), &CONNECT_311).await,
        Ok(vec![0x20, 0x02, 0x00, 0x00])
    );
    // And an MQTT connection over wss with it is accepted.
    let stream = transports::connect("wss", gateway.addr_of("wss", "crl"), &tls(&good))
        .await
        .unwrap();
    let _client = MqttClient::connect(stream, ProtocolVersion::V5, "wss-good").await;
    // QUIC shares the TLS settings: the same certificates get the same answers.
    let quic = gateway.addr_of("quic", "crl");
    for (issued, accepted) in [(&good, true), (&revoked, false), (&expired, false)] {
        let connack = match transports::connect("quic", quic, &tls(issued)).await {
            Ok(stream) => {
                let connect = Connect {
                    protocol: ProtocolVersion::V5,
                    clean_start: true,
                    client_id: format!("quic-{}", issued.serial).into(),
                    ..Connect::default()
                };
                MqttClient::try_connect(stream, connect).await.1
            }
            Err(_) => None,
        };
        assert_eq!(
            connack.is_some_and(|c| c.reason == ReasonCode::SUCCESS),
            accepted,
            "quic: certificate {}",
            issued.cert_file.display()
        );
    }
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crl_file_refuses_to_start() {
    let dir = temp_dir("pki");
    let ca = TestCa::new(&dir, "badcrl");
    let garbage = dir.join("garbage.crl.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
    )
    .unwrap();
    // A certificate where a CRL should be: no CRL block in the file.
    for file in [dir.join("missing.crl.pem"), garbage, ca.cert_file.clone()] {
        let error = start_error(SslOptions {
            verify: Verify::VerifyPeer,
            cacertfile: ca.cert_file.clone(),
            crlfile: file.clone(),
            ..SslOptions::default()
        })
        .await;
        assert!(
            error.starts_with(&format!(
                "listeners.ssl.default.ssl_options.crlfile = {file:?}: "
            )),
            "{error}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
