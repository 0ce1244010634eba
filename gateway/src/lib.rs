//! The composition root of Tributary: turns the configuration into runtime structs, binds the
//! listeners and runs them until shutdown.
//!
//! The `tributary` binary (`main.rs`) adds what a process needs around this: the command
//! line, the log subscriber and the signals. Integration tests use [`Gateway`] directly, with
//! every listener on port 0, so several gateways can run in one test process.
//!
//! Beside the MQTT listeners it serves the HTTP API (`dashboard.listeners.http`, module `api`):
//! Prometheus metrics ([`Metrics`]) and the client listings.
//!
//! [`bench`] is the `tributary bench` load tool: a client of any broker through sockets only,
//! shipped in the same binary so that every install has it.

mod api;
pub mod bench;
mod certs;
mod listener;
mod metrics;
mod quic;
mod runtime;
mod tls;

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_config::{Config, SslOptions, WebsocketOptions};
use tributary_protocols::Broker;
use tributary_websocket::UpgradeConfig;

use listener::{Handshake, TcpListenerSpec, TlsStep};
use metrics::ListenerEntry;

pub use metrics::Metrics;
pub use runtime::broker_config;

/// How long shutdown waits for connections to say goodbye before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not bind its address.
    #[error("listeners.{kind}.{name}: cannot bind {addr}: {source}")]
    Bind {
        /// Listener type (`tcp`).
        kind: &'static str,
        /// Listener name.
        name: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The HTTP API could not bind its address.
    #[error("dashboard.listeners.http.bind = {addr}: cannot bind: {source}")]
    HttpBind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A gateway listener could not bind its address.
    #[error("{key}: cannot bind {addr}: {source}")]
    GatewayBind {
        /// The dotted config key (`gateway.coap.listeners.udp.default.bind`).
        key: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The LwM2M object definitions in `gateway.lwm2m.xml_dir` cannot be loaded.
    #[error("gateway.lwm2m.xml_dir = {dir:?}: {reason}")]
    ObjectDefinitions {
        /// The directory.
        dir: PathBuf,
        /// What is wrong (the file and the problem).
        reason: String,
    },
    /// The data directory could not be created.
    #[error("node.data_dir = {path:?}: cannot create it: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A configured certificate, key or CA file cannot be read or parsed.
    #[error("{key} = {file:?}: {reason}")]
    Certificate {
        /// The dotted config key (`listeners.ssl.default.ssl_options.certfile`).
        key: String,
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS settings that do not work together (versions and ciphers, for example).
    #[error("{key}: {reason}")]
    Tls {
        /// The dotted config key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The self-signed certificate could not be generated or written.
    #[error("cannot create the self-signed certificate {file:?}: {reason}")]
    SelfSigned {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

impl StartError {
    pub(crate) fn certificate(key: &str, file: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Certificate {
            key: key.to_owned(),
            file: file.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn tls(key: String, reason: impl std::fmt::Display) -> Self {
        Self::Tls {
            key,
            reason: reason.to_string(),
        }
    }
}

/// A running gateway: a broker and its listeners.
#[derive(Debug)]
pub struct Gateway {
    broker: Broker,
    listeners: Vec<BoundListener>,
    metrics: Arc<Metrics>,
    /// Where the HTTP API listens, when enabled.
    http_addr: Option<SocketAddr>,
    stop_accepting: CancellationToken,
    tasks: TaskTracker,
}

/// A listener that is accepting connections.
#[derive(Debug, Clone)]
pub struct BoundListener {
    /// Listener type: `tcp`, `ssl`, `ws`, `wss`, `quic`, `lwm2m` (a UDP listener of the LwM2M
    /// gateway, `gateway.lwm2m.listeners.udp.<name>`), or `coap` (a UDP listener of the CoAP
    /// gateway, `gateway.coap.listeners.udp.<name>`).
    pub kind: &'static str,
    /// Listener name from the config (`default`).
    pub name: String,
    /// The address it is bound to (the real port when the config said 0).
    pub addr: SocketAddr,
}

impl Gateway {
    /// Creates the data directory, builds the broker and binds every enabled listener: `tcp`,
    /// `ssl`, `ws`, `wss`, `quic`, and the CoAP gateway's UDP listeners (kind `coap`). TLS
    /// listeners without a configured certificate share a self-signed one generated into
    /// `<data_dir>/certs/` at first start. Everyone is allowed everything ([`AllowAll`]).
    ///
    /// [`AllowAll`]: tributary_protocols::AllowAll
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        Self::start_with_hooks(config, Arc::new(tributary_protocols::AllowAll)).await
    }

    /// [`Gateway::start`] with the authentication and authorization `hooks` every transport
    /// and gateway goes through.
    pub async fn start_with_hooks(
        config: &Config,
        hooks: Arc<dyn tributary_protocols::Hooks>,
    ) -> Result<Self, StartError> {
        let data_dir = &config.node.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let broker = Broker::new(broker_config(config), hooks);
        let stop_accepting = CancellationToken::new();
        let tasks = TaskTracker::new();
        let started = async {
            let mut listeners = Vec::new();
            let mut counted = Vec::new();
            for spec in tcp_specs(config)? {
                counted.push(ListenerEntry::new(spec.kind, &spec.name, &spec.metrics));
                listeners.push(listener::start(spec, &broker, &stop_accepting, &tasks).await?);
            }
            for spec in quic_specs(config)? {
                counted.push(ListenerEntry::new("quic", &spec.name, &spec.metrics));
                listeners.push(quic::start(spec, &broker, &stop_accepting, &tasks)?);
            }
            if config.gateway.coap.enable {
                for (name, l) in config
                    .gateway
                    .coap
                    .listeners
                    .udp
                    .iter()
                    .filter(|(_, l)| l.enable)
                {
                    let socket = tokio::net::UdpSocket::bind(l.bind)
                        .await
                        .map_err(|source| StartError::GatewayBind {
                            key: format!("gateway.coap.listeners.udp.{name}.bind"),
                            addr: l.bind,
                            source,
                        })?;
                    let addr = socket.local_addr().unwrap_or(l.bind);
                    let settings = runtime::coap_config(config, name, limit(l.max_connections));
                    tasks.spawn(tributary_coap::serve(
                        socket,
                        broker.clone(),
                        settings,
                        stop_accepting.clone(),
                    ));
                    listeners.push(BoundListener {
                        kind: "coap",
                        name: name.clone(),
                        addr,
                    });
                }
            }
            if config.gateway.lwm2m.enable {
                start_lwm2m(config, &broker, &stop_accepting, &tasks, &mut listeners).await?;
            }
            let metrics = Arc::new(Metrics::new(broker.clone(), counted));
            let http_addr = start_api(config, &broker, &metrics, &stop_accepting, &tasks).await?;
            Ok::<_, StartError>((listeners, metrics, http_addr))
        }
        .await;
        let (listeners, metrics, http_addr) = match started {
            Ok(started) => started,
            Err(error) => {
                // The listeners that did start stop again: a failed start leaves nothing bound.
                stop_accepting.cancel();
                return Err(error);
            }
        };
        for bound in &listeners {
            tracing::info!(listener = %format_args!("{}:{}", bound.kind, bound.name), addr = %bound.addr, "listener started");
        }
        let sys = tributary_protocols::SysTopics {
            node: config.node.name.clone(),
            msg_interval: config.sys_topics.sys_msg_interval,
            heartbeat_interval: config.sys_topics.sys_heartbeat_interval,
        };
        tasks.spawn(tributary_protocols::run_sys_topics(broker.clone(), sys));
        Ok(Self {
            broker,
            listeners,
            metrics,
            http_addr,
            stop_accepting,
            tasks,
        })
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The listeners, as bound.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// The address of the TCP listener `name`.
    pub fn tcp_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addr_of("tcp", name)
    }

    /// The bound address of the CoAP gateway's UDP listener `name`.
    pub fn coap_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addr_of("coap", name)
    }

    /// The bound address of the LwM2M gateway's UDP listener `name`.
    pub fn lwm2m_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addr_of("lwm2m", name)
    }

    /// The bound address of the listener `kind` (`tcp`, `ssl`, `ws`, `wss`, `quic`, `coap`,
    /// `lwm2m`) named `name`, if it is running; `("http", "default")` is the HTTP API's.
    pub fn addr_of(&self, kind: &str, name: &str) -> Option<SocketAddr> {
        if (kind, name) == ("http", "default") {
            return self.http_addr;
        }
        self.listeners
            .iter()
            .find(|l| l.kind == kind && l.name == name)
            .map(|l| l.addr)
    }

    /// The HTTP API's address, if `dashboard.listeners.http` is enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The gateway's metrics, as `GET /api/v5/prometheus/stats` renders them.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Installs this gateway's metrics recorder as the process's global `metrics` recorder, so
    /// that what library crates emit through the `metrics` facade is rendered with the
    /// gateway's own series. Only for a process with one gateway (the binary): `false` when a
    /// global recorder was installed already.
    pub fn install_global_recorder(&self) -> bool {
        ::metrics::set_global_recorder(self.metrics.recorder()).is_ok()
    }

    /// Graceful shutdown: stop accepting, tell every client (v5 DISCONNECT 0x8B), hand their
    /// sessions back, and wait for the connection tasks (at most a grace period).
    pub async fn shutdown(self) {
        self.stop_accepting.cancel();
        self.broker.shutdown();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tasks.len(),
                "shutdown grace period over; dropping connections"
            );
        }
    }
}

/// Starts the HTTP API when `dashboard.listeners.http.enable`; returns its address.
async fn start_api(
    config: &Config,
    broker: &Broker,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, StartError> {
    let dashboard = &config.dashboard;
    if !dashboard.listeners.http.enable {
        return Ok(None);
    }
    let defaults = tributary_config::DashboardConfig::default();
    if dashboard.default_username == defaults.default_username
        && dashboard.default_password == defaults.default_password
    {
        tracing::warn!(
            "the HTTP API accepts the well-known default credentials admin/public: set \
             dashboard.default_username and dashboard.default_password"
        );
    }
    let state = api::ApiState {
        broker: broker.clone(),
        metrics: Arc::clone(metrics),
        node: config.node.name.clone(),
        expected_auth: api::ApiState::basic_auth(
            &dashboard.default_username,
            &dashboard.default_password,
        ),
        metrics_auth: config.prometheus.enable_basic_auth,
    };
    let addr = api::start(dashboard.listeners.http.bind, state, stop, tasks).await?;
    tracing::info!(%addr, "HTTP API started");
    Ok(Some(addr))
}

/// The self-signed identity, generated (or read back) on first use and shared by every TLS
/// listener of this start.
struct SelfSigned<'a> {
    data_dir: &'a Path,
    loaded: Option<(certs::ServerIdentity, PathBuf)>,
}

impl SelfSigned<'_> {
    fn get(&mut self, listener: &str) -> Result<certs::ServerIdentity, StartError> {
        let (identity, file) = match &self.loaded {
            Some(loaded) => loaded.clone(),
            None => {
                let loaded = certs::self_signed(self.data_dir)?;
                self.loaded = Some(loaded.clone());
                loaded
            }
        };
        tls::warn_self_signed(listener, &file);
        Ok(identity)
    }
}

/// The rustls config of one TLS listener.
fn tls_config(
    kind: &str,
    name: &str,
    options: &SslOptions,
    self_signed: &mut SelfSigned<'_>,
) -> Result<rustls::ServerConfig, StartError> {
    let key = tls::listener_key(kind, name);
    tls::server_config(&key, options, &mut || self_signed.get(&key))
}

/// The WebSocket upgrade settings of a `ws` or `wss` listener. A message may hold one packet
/// of `mqtt.max_packet_size` (plus its fixed header): larger ones are refused by the WebSocket
/// layer before they are buffered whole.
fn upgrade_config(options: &WebsocketOptions, config: &Config) -> UpgradeConfig {
    let max_packet = usize::try_from(config.mqtt.max_packet_size.bytes()).unwrap_or(usize::MAX);
    UpgradeConfig {
        path: options.mqtt_path.clone(),
        subprotocols: options.supported_subprotocols.clone(),
        fail_if_no_subprotocol: options.fail_if_no_subprotocol,
        check_origins: options
            .check_origin_enable
            .then(|| options.check_origins.clone()),
        allow_origin_absence: options.allow_origin_absence,
        proxy_address_header: Some(options.proxy_address_header.clone()).filter(|h| !h.is_empty()),
        max_message_size: max_packet.saturating_add(5),
    }
}

fn limit(max: tributary_config::Limit) -> u64 {
    max.max().unwrap_or(u64::MAX)
}

/// Every enabled TCP-based listener, with its handshake.
fn tcp_specs(config: &Config) -> Result<Vec<TcpListenerSpec>, StartError> {
    let listeners = &config.listeners;
    let mut self_signed = SelfSigned {
        data_dir: &config.node.data_dir,
        loaded: None,
    };
    // A plain WebSocket upgrade is bounded like a socket that never sends CONNECT.
    let ws_timeout = config.mqtt.idle_timeout;
    let mut specs = Vec::new();
    for (name, l) in listeners.tcp.iter().filter(|(_, l)| l.enable) {
        specs.push(TcpListenerSpec {
            kind: "tcp",
            name: name.clone(),
            bind: l.bind,
            max_connections: limit(l.max_connections),
            handshake: Handshake::Plain,
            handshake_timeout: Duration::MAX,
            metrics: Arc::default(),
        });
    }
    for (name, l) in listeners.ssl.iter().filter(|(_, l)| l.enable) {
        let tls = tls_config("ssl", name, &l.ssl_options, &mut self_signed)?;
        specs.push(TcpListenerSpec {
            kind: "ssl",
            name: name.clone(),
            bind: l.bind,
            max_connections: limit(l.max_connections),
            handshake: Handshake::Tls(TlsStep {
                acceptor: TlsAcceptor::from(Arc::new(tls)),
                username_from_cert: tls::cert_field(l.peer_cert_as_username),
                client_id_from_cert: tls::cert_field(l.peer_cert_as_clientid),
            }),
            handshake_timeout: l.ssl_options.handshake_timeout,
            metrics: Arc::default(),
        });
    }
    for (name, l) in listeners.ws.iter().filter(|(_, l)| l.enable) {
        specs.push(TcpListenerSpec {
            kind: "ws",
            name: name.clone(),
            bind: l.bind,
            max_connections: limit(l.max_connections),
            handshake: Handshake::Ws(upgrade_config(&l.websocket, config)),
            handshake_timeout: ws_timeout,
            metrics: Arc::default(),
        });
    }
    for (name, l) in listeners.wss.iter().filter(|(_, l)| l.enable) {
        let tls = tls_config("wss", name, &l.ssl_options, &mut self_signed)?;
        specs.push(TcpListenerSpec {
            kind: "wss",
            name: name.clone(),
            bind: l.bind,
            max_connections: limit(l.max_connections),
            handshake: Handshake::Wss(
                TlsStep {
                    acceptor: TlsAcceptor::from(Arc::new(tls)),
                    username_from_cert: tls::cert_field(l.peer_cert_as_username),
                    client_id_from_cert: tls::cert_field(l.peer_cert_as_clientid),
                },
                upgrade_config(&l.websocket, config),
            ),
            handshake_timeout: l.ssl_options.handshake_timeout,
            metrics: Arc::default(),
        });
    }
    Ok(specs)
}

/// Every enabled QUIC listener.
fn quic_specs(config: &Config) -> Result<Vec<quic::QuicListenerSpec>, StartError> {
    let mut self_signed = SelfSigned {
        data_dir: &config.node.data_dir,
        loaded: None,
    };
    let mut specs = Vec::new();
    for (name, l) in config.listeners.quic.iter().filter(|(_, l)| l.enable) {
        specs.push(quic::QuicListenerSpec {
            name: name.clone(),
            bind: l.bind,
            max_connections: limit(l.max_connections),
            tls: tls_config("quic", name, &l.ssl_options, &mut self_signed)?,
            idle_timeout: l.idle_timeout,
            keep_alive_interval: l.keep_alive_interval,
            handshake_timeout: l.ssl_options.handshake_timeout,
            username_from_cert: tls::cert_field(l.peer_cert_as_username),
            client_id_from_cert: tls::cert_field(l.peer_cert_as_clientid),
            metrics: Arc::default(),
        });
    }
    Ok(specs)
}

/// Loads the object definitions (built-in, then `xml_dir`) and starts the LwM2M gateway's
/// enabled UDP listeners.
async fn start_lwm2m(
    config: &Config,
    broker: &Broker,
    stop_accepting: &CancellationToken,
    tasks: &TaskTracker,
    listeners: &mut Vec<BoundListener>,
) -> Result<(), StartError> {
    let lwm2m = &config.gateway.lwm2m;
    let mut registry = tributary_lwm2m::ObjectRegistry::builtin();
    if !lwm2m.xml_dir.is_empty() {
        let dir = PathBuf::from(&lwm2m.xml_dir);
        let loaded = registry
            .load_dir(&dir)
            .map_err(|error| StartError::ObjectDefinitions {
                dir: dir.clone(),
                reason: error.to_string(),
            })?;
        tracing::info!(dir = %dir.display(), loaded, "lwm2m: object definitions loaded");
    }
    let registry = Arc::new(registry);
    for (name, l) in lwm2m.listeners.udp.iter().filter(|(_, l)| l.enable) {
        let socket = tokio::net::UdpSocket::bind(l.bind)
            .await
            .map_err(|source| StartError::GatewayBind {
                key: format!("gateway.lwm2m.listeners.udp.{name}.bind"),
                addr: l.bind,
                source,
            })?;
        let addr = socket.local_addr().unwrap_or(l.bind);
        let settings = runtime::lwm2m_config(config, name, limit(l.max_connections));
        tasks.spawn(tributary_lwm2m::serve(
            socket,
            broker.clone(),
            settings,
            Arc::clone(&registry),
            stop_accepting.clone(),
        ));
        listeners.push(BoundListener {
            kind: "lwm2m",
            name: name.clone(),
            addr,
        });
    }
    Ok(())
}
