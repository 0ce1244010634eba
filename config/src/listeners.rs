//! `listeners`: where the broker accepts connections, by type and then by name, as in EMQX
//! (`listeners.tcp.default.bind = "0.0.0.0:1883"`).
//!
//! Five types, each a map of named listeners: `tcp`, `ssl` (MQTT over TLS), `ws` (MQTT over
//! WebSocket), `wss` (WebSocket over TLS) and `quic`. Every type shares the fields of
//! [`ListenerCommon`]; a type with extra settings holds its own option blocks (`ssl_options`,
//! `websocket`) beside them. A struct of its own per type, rather than one flattened struct,
//! keeps `deny_unknown_fields` working (serde cannot combine it with `flatten`).
//!
//! This crate only checks shapes and ranges: whether a certificate file exists and parses, or a
//! cipher name is one the TLS library knows, is checked by the gateway when it starts the
//! listener, with an error that names the key.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::de::{self, string_enum};
use crate::units::Limit;

/// The port of EMQX's and Tributary's default MQTT-over-TCP listener.
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// The default MQTT-over-TLS port.
pub const DEFAULT_SSL_PORT: u16 = 8883;
/// The default MQTT-over-WebSocket port.
pub const DEFAULT_WS_PORT: u16 = 8083;
/// The default MQTT-over-secure-WebSocket port.
pub const DEFAULT_WSS_PORT: u16 = 8084;
/// The default MQTT-over-QUIC port (UDP), EMQX's.
pub const DEFAULT_QUIC_PORT: u16 = 14567;

/// `listeners`: every listener, by type, then by name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object of listener types, such as tcp"
)]
pub struct ListenersConfig {
    /// `listeners.tcp.<name>`: MQTT over plain TCP. The defaults hold one listener named
    /// `default` on `0.0.0.0:1883`; a file or environment variable adds more by naming them
    /// (`listeners.tcp.internal.bind = "127.0.0.1:11883"`). Turn one off with `enable = false`.
    pub tcp: BTreeMap<String, TcpListener>,
    /// `listeners.ssl.<name>`: MQTT over TLS. Default: `default` on `0.0.0.0:8883`.
    pub ssl: BTreeMap<String, SslListener>,
    /// `listeners.ws.<name>`: MQTT over WebSocket. Default: `default` on `0.0.0.0:8083`, path
    /// `/mqtt`.
    pub ws: BTreeMap<String, WsListener>,
    /// `listeners.wss.<name>`: MQTT over WebSocket over TLS. Default: `default` on
    /// `0.0.0.0:8084`, path `/mqtt`.
    pub wss: BTreeMap<String, WssListener>,
    /// `listeners.quic.<name>`: MQTT over QUIC (UDP), ALPN `mqtt`. Default: `default` on
    /// `0.0.0.0:14567`.
    pub quic: BTreeMap<String, QuicListener>,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        let default = "default".to_owned();
        Self {
            tcp: BTreeMap::from([(default.clone(), TcpListener::default())]),
            ssl: BTreeMap::from([(default.clone(), SslListener::default())]),
            ws: BTreeMap::from([(default.clone(), WsListener::default())]),
            wss: BTreeMap::from([(default.clone(), WssListener::default())]),
            quic: BTreeMap::from([(default, QuicListener::default())]),
        }
    }
}

impl ListenersConfig {
    /// Every listener, as `(type, name, common settings)`, types in the order tcp, ssl, ws,
    /// wss, quic.
    pub fn all(&self) -> Vec<(&'static str, &str, &dyn ListenerCommon)> {
        fn named<'a, L: ListenerCommon>(
            kind: &'static str,
            map: &'a BTreeMap<String, L>,
        ) -> impl Iterator<Item = (&'static str, &'a str, &'a dyn ListenerCommon)> {
            map.iter()
                .map(move |(name, l)| (kind, name.as_str(), l as &dyn ListenerCommon))
        }
        named("tcp", &self.tcp)
            .chain(named("ssl", &self.ssl))
            .chain(named("ws", &self.ws))
            .chain(named("wss", &self.wss))
            .chain(named("quic", &self.quic))
            .collect()
    }
}

impl ListenersConfig {
    /// The `ssl_options` of every TLS listener (ssl, wss, quic), as `(type, name, options)`.
    pub fn tls_options(&self) -> Vec<(&'static str, &str, &SslOptions)> {
        let ssl = self
            .ssl
            .iter()
            .map(|(n, l)| ("ssl", n.as_str(), &l.ssl_options));
        let wss = self
            .wss
            .iter()
            .map(|(n, l)| ("wss", n.as_str(), &l.ssl_options));
        let quic = self
            .quic
            .iter()
            .map(|(n, l)| ("quic", n.as_str(), &l.ssl_options));
        ssl.chain(wss).chain(quic).collect()
    }

    /// The `websocket` options of every WebSocket listener (ws, wss), as `(type, name,
    /// options)`.
    pub fn websocket_options(&self) -> Vec<(&'static str, &str, &WebsocketOptions)> {
        let ws = self
            .ws
            .iter()
            .map(|(n, l)| ("ws", n.as_str(), &l.websocket));
        let wss = self
            .wss
            .iter()
            .map(|(n, l)| ("wss", n.as_str(), &l.websocket));
        ws.chain(wss).collect()
    }
}

/// The settings every listener type has, whatever its transport.
pub trait ListenerCommon {
    /// Whether the listener is started.
    fn enable(&self) -> bool;
    /// The address it binds.
    fn bind(&self) -> SocketAddr;
    /// The most connections it holds at once.
    fn max_connections(&self) -> Limit;
    /// Whether it binds a UDP socket (QUIC) rather than a TCP one: two listeners may share an
    /// address when one is UDP and the other TCP.
    fn is_udp(&self) -> bool {
        false
    }
}

/// Implements [`ListenerCommon`] for a listener struct with `enable`, `bind` and
/// `max_connections` fields.
macro_rules! listener_common {
    ($type:ty, udp = $udp:literal) => {
        impl ListenerCommon for $type {
            fn enable(&self) -> bool {
                self.enable
            }

            fn bind(&self) -> SocketAddr {
                self.bind
            }

            fn max_connections(&self) -> Limit {
                self.max_connections
            }

            fn is_udp(&self) -> bool {
                $udp
            }
        }
    };
}

fn any_ipv4(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// `listeners.tcp.<name>`: one MQTT-over-TCP listener. A listener given only some fields (for
/// example a new one added through the environment with just `bind`) takes the defaults below
/// for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct TcpListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the address to listen on, `IP:PORT` (`"0.0.0.0:1883"`, `"[::]:1883"`), or a port
    /// alone (`1883`), which binds every IPv4 interface as EMQX does. Port 0 picks a free port
    /// (tests use it). Default `"0.0.0.0:1883"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: the most connections this listener holds at once; more are refused.
    /// `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
}

impl Default for TcpListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: any_ipv4(DEFAULT_MQTT_PORT),
            max_connections: Limit::Infinity,
        }
    }
}

listener_common!(TcpListener, udp = false);

/// `listeners.ssl.<name>`: one MQTT-over-TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct SslListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the address to listen on, as for `tcp`. Default `"0.0.0.0:8883"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
    /// `ssl_options`: certificates and client verification.
    pub ssl_options: SslOptions,
    /// `peer_cert_as_username`: use the client certificate's subject as the MQTT user name.
    /// Default `disabled`.
    pub peer_cert_as_username: PeerCertAs,
    /// `peer_cert_as_clientid`: use the client certificate's subject as the client id.
    /// Default `disabled`.
    pub peer_cert_as_clientid: PeerCertAs,
}

impl Default for SslListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: any_ipv4(DEFAULT_SSL_PORT),
            max_connections: Limit::Infinity,
            ssl_options: SslOptions::default(),
            peer_cert_as_username: PeerCertAs::Disabled,
            peer_cert_as_clientid: PeerCertAs::Disabled,
        }
    }
}

listener_common!(SslListener, udp = false);

/// `listeners.ws.<name>`: one MQTT-over-WebSocket listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct WsListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the address to listen on, as for `tcp`. Default `"0.0.0.0:8083"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
    /// `websocket`: the HTTP upgrade.
    pub websocket: WebsocketOptions,
}

impl Default for WsListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: any_ipv4(DEFAULT_WS_PORT),
            max_connections: Limit::Infinity,
            websocket: WebsocketOptions::default(),
        }
    }
}

listener_common!(WsListener, udp = false);

/// `listeners.wss.<name>`: one MQTT-over-WebSocket-over-TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct WssListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the address to listen on, as for `tcp`. Default `"0.0.0.0:8084"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
    /// `ssl_options`: certificates and client verification.
    pub ssl_options: SslOptions,
    /// `websocket`: the HTTP upgrade.
    pub websocket: WebsocketOptions,
    /// `peer_cert_as_username`: as for `ssl`. Default `disabled`.
    pub peer_cert_as_username: PeerCertAs,
    /// `peer_cert_as_clientid`: as for `ssl`. Default `disabled`.
    pub peer_cert_as_clientid: PeerCertAs,
}

impl Default for WssListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: any_ipv4(DEFAULT_WSS_PORT),
            max_connections: Limit::Infinity,
            ssl_options: SslOptions::default(),
            websocket: WebsocketOptions::default(),
            peer_cert_as_username: PeerCertAs::Disabled,
            peer_cert_as_clientid: PeerCertAs::Disabled,
        }
    }
}

listener_common!(WssListener, udp = false);

/// `listeners.quic.<name>`: one MQTT-over-QUIC listener (UDP). MQTT runs over the first
/// bidirectional stream the client opens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the listener settings"
)]
pub struct QuicListener {
    /// `enable`: start this listener. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `bind`: the UDP address to listen on, as for `tcp`. Default `"0.0.0.0:14567"`.
    #[serde(deserialize_with = "de::bind")]
    pub bind: SocketAddr,
    /// `max_connections`: `infinity` or a positive integer. Default `infinity`.
    pub max_connections: Limit,
    /// `ssl_options`: certificates and client verification; QUIC always uses TLS 1.3, so
    /// `versions` and TLS 1.2 `ciphers` do not apply.
    pub ssl_options: SslOptions,
    /// `idle_timeout`: the QUIC idle timeout this side offers: a connection that carries no
    /// packet for this long is closed. `0s` (`None`) offers none, and the MQTT keep alive
    /// (1.5 x the client's) closes a silent client. Default `0s`.
    #[serde(deserialize_with = "de::duration_or_disabled")]
    pub idle_timeout: Option<Duration>,
    /// `keep_alive_interval`: how often the server sends QUIC PINGs on an idle connection, to
    /// keep NAT bindings and the client's idle timeout from closing it; `0s` (`None`) sends
    /// none. Default `0s`.
    #[serde(deserialize_with = "de::duration_or_disabled")]
    pub keep_alive_interval: Option<Duration>,
    /// `peer_cert_as_username`: as for `ssl`. Default `disabled`.
    pub peer_cert_as_username: PeerCertAs,
    /// `peer_cert_as_clientid`: as for `ssl`. Default `disabled`.
    pub peer_cert_as_clientid: PeerCertAs,
}

impl Default for QuicListener {
    fn default() -> Self {
        Self {
            enable: true,
            bind: any_ipv4(DEFAULT_QUIC_PORT),
            max_connections: Limit::Infinity,
            ssl_options: SslOptions {
                versions: vec![TlsVersion::Tls13],
                ..SslOptions::default()
            },
            idle_timeout: None,
            keep_alive_interval: None,
            peer_cert_as_username: PeerCertAs::Disabled,
            peer_cert_as_clientid: PeerCertAs::Disabled,
        }
    }
}

listener_common!(QuicListener, udp = true);

string_enum! {
    /// `ssl_options.verify`: whether the server asks for a client certificate.
    pub enum Verify {
        /// `verify_none`: no client certificate is asked for.
        VerifyNone = "verify_none",
        /// `verify_peer`: a client certificate is asked for and, when given, must chain to
        /// `cacertfile`; with `fail_if_no_peer_cert` it is required.
        VerifyPeer = "verify_peer",
    }
}

string_enum! {
    /// A TLS protocol version in `ssl_options.versions`.
    pub enum TlsVersion {
        /// `tlsv1.3`.
        Tls13 = "tlsv1.3",
        /// `tlsv1.2`.
        Tls12 = "tlsv1.2",
    }
}

string_enum! {
    /// Which part of a client certificate's subject becomes the user name or client id.
    pub enum PeerCertAs {
        /// `disabled`: the client's own value is used.
        Disabled = "disabled",
        /// `cn`: the subject's Common Name.
        Cn = "cn",
        /// `dn`: the whole subject Distinguished Name, RFC 4514 text (`CN=dev1,O=Acme`).
        Dn = "dn",
    }
}

/// `ssl_options`: the TLS settings of an `ssl`, `wss` or `quic` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the ssl_options settings"
)]
pub struct SslOptions {
    /// `certfile`: the server's certificate chain, PEM, leaf first. Empty (the default) with an
    /// empty `keyfile`: a self-signed certificate generated at first start into
    /// `<node.data_dir>/certs/` is used, with a warning in the log.
    pub certfile: PathBuf,
    /// `keyfile`: the server's private key, PEM (PKCS#8, PKCS#1 or SEC1). Default empty.
    pub keyfile: PathBuf,
    /// `cacertfile`: the CAs that client certificates must chain to, PEM. Required (and must
    /// hold at least one certificate) with `verify = verify_peer`. Default empty.
    pub cacertfile: PathBuf,
    /// `crlfile`: certificate revocation lists (PEM, one or more `X509 CRL` blocks) issued by
    /// the CAs of `cacertfile`; with `verify = verify_peer`, a client certificate they revoke
    /// is refused. Empty (the default) checks no revocation. A file that cannot be read or
    /// holds no valid CRL stops the broker.
    pub crlfile: PathBuf,
    /// `verify`: `verify_none` or `verify_peer`. Default `verify_none`.
    pub verify: Verify,
    /// `fail_if_no_peer_cert`: with `verify_peer`, refuse a client that sends no certificate.
    /// Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub fail_if_no_peer_cert: bool,
    /// `versions`: the TLS versions offered, from `tlsv1.3` and `tlsv1.2`. Default both.
    pub versions: Vec<TlsVersion>,
    /// `ciphers`: the cipher suites offered, by IANA (`TLS_AES_128_GCM_SHA256`) or OpenSSL
    /// (`ECDHE-RSA-AES128-GCM-SHA256`) name, as a list or one comma-separated string; empty
    /// offers every suite the TLS library supports. Default empty.
    #[serde(deserialize_with = "de::string_list")]
    pub ciphers: Vec<String>,
    /// `handshake_timeout`: how long a client may take to complete the TLS handshake (and, for
    /// `wss`, the WebSocket upgrade after it) before it is dropped. Default `15s`.
    #[serde(deserialize_with = "de::duration")]
    pub handshake_timeout: Duration,
}

impl Default for SslOptions {
    fn default() -> Self {
        Self {
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            cacertfile: PathBuf::new(),
            crlfile: PathBuf::new(),
            verify: Verify::VerifyNone,
            fail_if_no_peer_cert: false,
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            ciphers: Vec::new(),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// `websocket`: the HTTP upgrade of a `ws` or `wss` listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "an object with the websocket settings"
)]
pub struct WebsocketOptions {
    /// `mqtt_path`: the only HTTP path upgraded; other paths get 404. Default `"/mqtt"`.
    pub mqtt_path: String,
    /// `supported_subprotocols`: the `Sec-WebSocket-Protocol` values accepted, as a list or a
    /// comma-separated string; the first the client offers that is in this list is chosen.
    /// Default `"mqtt, mqttv3.1, mqttv5"`.
    #[serde(deserialize_with = "de::string_list")]
    pub supported_subprotocols: Vec<String>,
    /// `fail_if_no_subprotocol`: refuse an upgrade that offers none of the supported
    /// subprotocols (HTTP 400). Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub fail_if_no_subprotocol: bool,
    /// `check_origin_enable`: refuse an upgrade whose `Origin` header is not in
    /// `check_origins` (HTTP 403). Default `false`.
    #[serde(deserialize_with = "de::boolean")]
    pub check_origin_enable: bool,
    /// `allow_origin_absence`: with `check_origin_enable`, accept an upgrade with no `Origin`
    /// header (clients that are not browsers send none). Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub allow_origin_absence: bool,
    /// `check_origins`: the accepted origins (`"https://app.example.com"`), as a list or a
    /// comma-separated string. Default empty.
    #[serde(deserialize_with = "de::string_list")]
    pub check_origins: Vec<String>,
    /// `proxy_address_header`: the HTTP header a trusted reverse proxy puts the client's
    /// address in (`x-forwarded-for`; its first address is used). Empty (the default) ignores
    /// such headers: any client could forge one, so set it only behind a proxy that sets it.
    pub proxy_address_header: String,
}

impl Default for WebsocketOptions {
    fn default() -> Self {
        Self {
            mqtt_path: "/mqtt".to_owned(),
            supported_subprotocols: vec!["mqtt".into(), "mqttv3.1".into(), "mqttv5".into()],
            fail_if_no_subprotocol: true,
            check_origin_enable: false,
            allow_origin_absence: true,
            check_origins: Vec::new(),
            proxy_address_header: String::new(),
        }
    }
}
