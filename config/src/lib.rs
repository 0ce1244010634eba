//! Tributary's configuration: a HOCON file with EMQX's key names, read into typed structs.
//!
//! [`Config::load`] builds the configuration from three layers, later ones winning:
//!
//! 1. the defaults embedded in the binary (`src/defaults.conf`), so the broker runs with no file;
//! 2. the config file, if one is given (`etc/tributary.conf` documents every key);
//! 3. environment variables: `TRIBUTARY_` + the dotted key upper-cased with `__` for each dot,
//!    e.g. `TRIBUTARY_MQTT__MAX_INFLIGHT=64` or `TRIBUTARY_LISTENERS__TCP__DEFAULT__BIND=2883`;
//!    the value is read as HOCON (see the `env` module's rules).
//!
//! Objects merge key by key across layers; any other value replaces the one below it. Values take
//! EMQX's human units: durations `30s`, `2h`, `100ms`, `1d` (a plain integer is milliseconds, as
//! in EMQX), `infinity` where a field allows it, and byte sizes `512B`, `64KB`, `1MB` (1024-based,
//! a plain integer is bytes); see [`units`].
//!
//! A bad configuration is refused with one line that names the dotted key, the value and what was
//! expected ([`ConfigError`]): unknown keys are errors, so a typo never silently falls back to a
//! default. A `TRIBUTARY_` variable whose first segment is no root key of the configuration is
//! not an error but a warning in [`Loaded::warnings`], since the environment is shared with other
//! software.
//!
//! What this crate does not do: it never reads the process environment itself (the gateway passes
//! `std::env::vars()` in), it reads no file but the one it is given (and what that file
//! `include`s), and it does not know MQTT: topic filters and the like are checked by the crates
//! that use them, after the gateway converts these plain structs into their runtime config. One
//! exception comes with HOCON itself: a `${NAME}` substitution in the file that names no key
//! falls back to the environment variable `NAME`, as the HOCON specification says.

mod de;

mod auto_subscribe;
mod dashboard;
mod env;
mod error;
mod force_shutdown;
mod gateway;
mod listeners;
mod log;
mod mqtt;
mod node;
mod prometheus;
mod retainer;
mod sys_topics;
pub mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use hocon_rs::{ConfigOptions, Value};
use serde::Deserialize;

pub use auto_subscribe::{AutoSubscribeConfig, AutoSubscribeTopic};
pub use dashboard::{DEFAULT_DASHBOARD_PORT, DashboardConfig, DashboardListeners, HttpListener};
pub use env::ENV_PREFIX;
pub use error::ConfigError;
pub use force_shutdown::ForceShutdownConfig;
pub use gateway::{
    BlockwiseConfig, CoapGatewayConfig, CoapListeners, CoapNotifyType, CoapQos, DEFAULT_COAP_PORT,
    DEFAULT_LWM2M_PORT, GatewayConfig, Lwm2mGatewayConfig, Lwm2mListeners, Lwm2mTranslator,
    Lwm2mTranslators, Lwm2mUdpListener, Lwm2mUpdateCondition, UdpListener,
};
pub use listeners::{
    DEFAULT_MQTT_PORT, DEFAULT_QUIC_PORT, DEFAULT_SSL_PORT, DEFAULT_WS_PORT, DEFAULT_WSS_PORT,
    ListenerCommon, ListenersConfig, PeerCertAs, QuicListener, SslListener, SslOptions,
    TcpListener, TlsVersion, Verify, WebsocketOptions, WsListener, WssListener,
};
pub use log::{ConsoleLog, LogConfig, LogFormatter, LogLevel};
pub use mqtt::{MAX_PACKET_SIZE_LIMIT, MqttConfig, SharedSubStrategy};
pub use node::NodeConfig;
pub use prometheus::PrometheusConfig;
pub use retainer::RetainerConfig;
pub use sys_topics::SysTopicsConfig;
pub use units::{ByteSize, Limit, Timeout};

use env::Override;

/// The embedded defaults, the bottom layer of every load.
pub const DEFAULTS: &str = include_str!("defaults.conf");

/// The name the embedded defaults go by in error messages.
const DEFAULTS_ORIGIN: &str = "<embedded defaults>";

/// The whole configuration. `Config::default()` is the embedded defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with the configuration")]
pub struct Config {
    /// `node`: this broker node.
    pub node: NodeConfig,
    /// `listeners`: where connections are accepted.
    pub listeners: ListenersConfig,
    /// `mqtt`: MQTT limits and session behaviour.
    pub mqtt: MqttConfig,
    /// `retainer`: retained messages.
    pub retainer: RetainerConfig,
    /// `auto_subscribe`: subscriptions made for every client at connect.
    pub auto_subscribe: AutoSubscribeConfig,
    /// `sys_topics`: the `$SYS` messages.
    pub sys_topics: SysTopicsConfig,
    /// `force_shutdown`: closing connections with too large a backlog.
    pub force_shutdown: ForceShutdownConfig,
    /// `log`: logging.
    pub log: LogConfig,
    /// `dashboard`: the HTTP API (metrics and management).
    pub dashboard: DashboardConfig,
    /// `prometheus`: the metrics endpoint of the HTTP API.
    pub prometheus: PrometheusConfig,
    /// `gateway`: the protocol gateways (CoAP).
    pub gateway: GatewayConfig,
}

/// A loaded configuration and what the loader noticed but did not refuse.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// One line per thing worth logging, e.g. a `TRIBUTARY_` variable naming no known root key.
    pub warnings: Vec<String>,
}

impl Config {
    /// The root keys of the configuration, in declaration order; an environment variable must
    /// start with one of them.
    pub const ROOT_KEYS: &'static [&'static str] = &[
        "node",
        "listeners",
        "mqtt",
        "retainer",
        "auto_subscribe",
        "sys_topics",
        "force_shutdown",
        "log",
        "dashboard",
        "prometheus",
        "gateway",
    ];

    /// Loads the embedded defaults, then `file` if given, then the `TRIBUTARY_` variables of
    /// `env` (other variables are ignored). Pass `std::env::vars()` for the process environment.
    ///
    /// Relative `include`s in the file are looked up beside it.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the file cannot be read, is not HOCON, has an unknown key, or has a
    /// value of the wrong type or out of range, from whichever layer.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut tree = parse(DEFAULTS, DEFAULTS_ORIGIN, None)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let layer = parse(&text, &path.display().to_string(), path.parent())?;
            tree = layer.with_fallback(tree);
        }
        let mut warnings = Vec::new();
        let overrides = env::apply(&mut tree, env, Self::ROOT_KEYS, &mut warnings);
        let config: Self = serde_path_to_error::deserialize(tree.clone())
            .map_err(|e| ConfigError::from_deserialize(&e, &tree, &overrides))?;
        config.validate(&tree, &overrides)?;
        Ok(Loaded { config, warnings })
    }

    /// The checks that span more than one value.
    fn validate(&self, tree: &Value, overrides: &[Override]) -> Result<(), ConfigError> {
        // TCP listeners (tcp, ssl, ws, wss) share one port space, UDP ones (quic) another.
        let mut bound: BTreeMap<(bool, SocketAddr), (&str, &str)> = BTreeMap::new();
        for (kind, name, listener) in self.listeners.all() {
            if !listener.enable() || listener.bind().port() == 0 {
                continue;
            }
            if let Some((other_kind, other)) =
                bound.insert((listener.is_udp(), listener.bind()), (kind, name))
            {
                return Err(ConfigError::invalid(
                    &format!("listeners.{kind}.{name}.bind"),
                    tree,
                    format!(
                        "expected an address no other listener binds (listeners.{other_kind}.{other} does)"
                    ),
                    overrides,
                ));
            }
        }
        let http = &self.dashboard.listeners.http;
        if http.enable && http.bind.port() != 0 {
            if let Some((kind, name)) = bound.get(&(false, http.bind)) {
                return Err(ConfigError::invalid(
                    "dashboard.listeners.http.bind",
                    tree,
                    format!(
                        "expected an address no other listener binds (listeners.{kind}.{name} does)"
                    ),
                    overrides,
                ));
            }
        }
        let coap = &self.gateway.coap;
        for (name, listener) in &coap.listeners.udp {
            if !listener.enable || listener.bind.port() == 0 {
                continue;
            }
            if let Some((other_kind, other)) = bound.insert((true, listener.bind), ("udp", name)) {
                return Err(ConfigError::invalid(
                    &format!("gateway.coap.listeners.udp.{name}.bind"),
                    tree,
                    format!(
                        "expected an address no other listener binds (listeners.{other_kind}.{other} does)"
                    ),
                    overrides,
                ));
            }
        }
        if self.dashboard.default_username.is_empty() {
            return Err(ConfigError::invalid(
                "dashboard.default_username",
                tree,
                "expected a non-empty user name".to_owned(),
                overrides,
            ));
        }
        let lwm2m = &self.gateway.lwm2m;
        for (name, listener) in &lwm2m.listeners.udp {
            if !listener.enable || listener.bind.port() == 0 {
                continue;
            }
            if let Some((other_kind, other)) = bound.insert((true, listener.bind), ("udp", name)) {
                return Err(ConfigError::invalid(
                    &format!("gateway.lwm2m.listeners.udp.{name}.bind"),
                    tree,
                    format!(
                        "expected an address no other listener binds (a {other_kind} listener {other} does)"
                    ),
                    overrides,
                ));
            }
        }
        if lwm2m.lifetime_min > lwm2m.lifetime_max {
            return Err(ConfigError::invalid(
                "gateway.lwm2m.lifetime_min",
                tree,
                "expected a duration no longer than gateway.lwm2m.lifetime_max".to_owned(),
                overrides,
            ));
        }
        if !coap.blockwise.max_block_size.is_power_of_two() {
            return Err(ConfigError::invalid(
                "gateway.coap.blockwise.max_block_size",
                tree,
                "expected a power of two from 16 to 1024".to_owned(),
                overrides,
            ));
        }
        for (kind, name, tls) in self.listeners.tls_options() {
            let key = |field: &str| format!("listeners.{kind}.{name}.ssl_options.{field}");
            if tls.certfile.as_os_str().is_empty() != tls.keyfile.as_os_str().is_empty() {
                let missing = if tls.certfile.as_os_str().is_empty() {
                    "certfile"
                } else {
                    "keyfile"
                };
                return Err(ConfigError::InvalidValue {
                    key: key(missing),
                    value: "\"\"".to_owned(),
                    expected: "expected a file: certfile and keyfile go together (leave both empty for a generated self-signed certificate)".to_owned(),
                    set_by: Override::find(overrides, &key(missing)),
                });
            }
            if tls.verify == Verify::VerifyPeer && tls.cacertfile.as_os_str().is_empty() {
                return Err(ConfigError::InvalidValue {
                    key: key("cacertfile"),
                    value: "\"\"".to_owned(),
                    expected: "expected a CA file: verify = verify_peer needs one to check client certificates against".to_owned(),
                    set_by: Override::find(overrides, &key("cacertfile")),
                });
            }
            if tls.verify == Verify::VerifyNone && !tls.crlfile.as_os_str().is_empty() {
                return Err(ConfigError::invalid(
                    &key("crlfile"),
                    tree,
                    "expected \"\" with verify = verify_none: a CRL checks client certificates, which only verify_peer asks for".to_owned(),
                    overrides,
                ));
            }
            if tls.versions.is_empty() {
                return Err(ConfigError::invalid(
                    &key("versions"),
                    tree,
                    "expected at least one of tlsv1.3, tlsv1.2".to_owned(),
                    overrides,
                ));
            }
            if kind == "quic" && !tls.versions.contains(&TlsVersion::Tls13) {
                return Err(ConfigError::invalid(
                    &key("versions"),
                    tree,
                    "expected tlsv1.3 in the list: QUIC runs on TLS 1.3 only".to_owned(),
                    overrides,
                ));
            }
        }
        for (kind, name, websocket) in self.listeners.websocket_options() {
            if !websocket.mqtt_path.starts_with('/') {
                return Err(ConfigError::invalid(
                    &format!("listeners.{kind}.{name}.websocket.mqtt_path"),
                    tree,
                    "expected an HTTP path starting with /, such as /mqtt".to_owned(),
                    overrides,
                ));
            }
            if websocket.supported_subprotocols.is_empty() {
                return Err(ConfigError::invalid(
                    &format!("listeners.{kind}.{name}.websocket.supported_subprotocols"),
                    tree,
                    "expected at least one subprotocol, such as mqtt".to_owned(),
                    overrides,
                ));
            }
        }
        for (i, entry) in self.auto_subscribe.topics.iter().enumerate() {
            if entry.topic.is_empty() {
                return Err(ConfigError::InvalidValue {
                    key: format!("auto_subscribe.topics[{i}].topic"),
                    value: "\"\"".to_owned(),
                    expected: "expected a non-empty topic filter".to_owned(),
                    set_by: Override::find(overrides, "auto_subscribe.topics"),
                });
            }
        }
        Ok(())
    }
}

/// Parses one HOCON text into a tree; `dir` is where relative includes are looked up.
fn parse(text: &str, origin: &str, dir: Option<&Path>) -> Result<Value, ConfigError> {
    let options = ConfigOptions {
        classpath: std::rc::Rc::new(dir.map(|d| d.display().to_string()).into_iter().collect()),
        ..ConfigOptions::default()
    };
    hocon_rs::Config::parse_str::<Value>(text, Some(options))
        .map_err(|e| ConfigError::syntax(origin, &e))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const ETC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../etc/tributary.conf");

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Writes `text` to a fresh file in the temp directory, named `name`.
    fn temp_file(name: &str, text: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tributary-config-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        Config::load(Some(&temp_file("tributary.conf", text)), env(vars))
    }

    fn error_of(text: &str, vars: &[(&str, &str)]) -> String {
        let error = load_text(text, vars).unwrap_err().to_string();
        assert!(!error.contains('\n'), "not one line: {error}");
        error
    }

    #[test]
    fn embedded_defaults_parse_to_default() {
        let loaded = Config::load(None, no_env()).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn defaults_have_emqx_values() {
        let config = Config::default();
        let default = &config.listeners.tcp["default"];
        assert_eq!(default.bind, "0.0.0.0:1883".parse().unwrap());
        assert!(default.enable);
        assert_eq!(config.mqtt.max_packet_size.bytes(), 1_048_576);
        assert_eq!(config.mqtt.max_inflight, 32);
        assert_eq!(config.mqtt.retry_interval, Timeout::Infinity);
        assert_eq!(
            config.mqtt.session_expiry_interval,
            Duration::from_secs(7200)
        );
        assert_eq!(config.mqtt.idle_timeout, Duration::from_secs(15));
        assert_eq!(config.log.console.level, LogLevel::Warning);
    }

    #[test]
    fn gateway_coap_has_emqx_defaults_and_named_errors() {
        let coap = &Config::default().gateway.coap;
        assert!(coap.enable);
        assert!(!coap.connection_required);
        assert_eq!(coap.heartbeat, Duration::from_secs(30));
        assert_eq!(coap.notify_type, CoapNotifyType::Qos);
        assert_eq!(coap.publish_qos, CoapQos::Coap);
        let udp = &coap.listeners.udp["default"];
        assert_eq!(udp.bind, "0.0.0.0:5683".parse().unwrap());
        assert_eq!(udp.max_connections, Limit::Max(1024));
        let loaded = Config::load(
            None,
            env(&[
                ("TRIBUTARY_GATEWAY__COAP__MOUNTPOINT", "\"coap/\""),
                ("TRIBUTARY_GATEWAY__COAP__NOTIFY_TYPE", "con"),
                (
                    "TRIBUTARY_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND",
                    "5684",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.gateway.coap.mountpoint, "coap/");
        assert_eq!(loaded.config.gateway.coap.notify_type, CoapNotifyType::Con);
        let error = error_of("gateway.coap.notify_type = sometimes", &[]);
        assert!(error.contains("gateway.coap.notify_type"), "{error}");
        assert!(error.contains("non, con, qos"), "{error}");
        let error = error_of("gateway.coap.blockwise.max_block_size = 100", &[]);
        assert!(error.contains("power of two"), "{error}");
        let error = error_of("gateway.coap.listeners.udp.default.bind = 14567", &[]);
        assert!(
            error.contains("gateway.coap.listeners.udp.default.bind"),
            "{error}"
        );
    }

    #[test]
    fn gateway_lwm2m_has_emqx_defaults_and_named_errors() {
        let lwm2m = &Config::default().gateway.lwm2m;
        assert!(lwm2m.enable);
        assert_eq!(lwm2m.mountpoint, "lwm2m/${endpoint_name}/");
        assert_eq!(lwm2m.lifetime_min, Duration::from_secs(15));
        assert_eq!(lwm2m.lifetime_max, Duration::from_secs(86_400));
        assert_eq!(lwm2m.qmode_time_window, Duration::from_secs(22));
        assert!(!lwm2m.auto_observe);
        assert_eq!(lwm2m.xml_dir, "");
        assert_eq!(
            lwm2m.update_msg_publish_condition,
            Lwm2mUpdateCondition::ContainsObjectList
        );
        assert_eq!(lwm2m.translators.command.topic, "dn/#");
        assert_eq!(lwm2m.translators.register.topic, "up/resp");
        assert_eq!(lwm2m.translators.update.topic, "up/update");
        let udp = &lwm2m.listeners.udp["default"];
        assert_eq!(udp.bind, "0.0.0.0:5783".parse().unwrap());
        assert_eq!(udp.max_connections, Limit::Max(1024));
        let loaded = Config::load(
            None,
            env(&[
                ("TRIBUTARY_GATEWAY__LWM2M__MOUNTPOINT", "\"lwm2m/\""),
                (
                    "TRIBUTARY_GATEWAY__LWM2M__UPDATE_MSG_PUBLISH_CONDITION",
                    "always",
                ),
            ]),
        )
        .unwrap();
        let lwm2m = &loaded.config.gateway.lwm2m;
        assert_eq!(lwm2m.mountpoint, "lwm2m/");
        assert_eq!(
            lwm2m.update_msg_publish_condition,
            Lwm2mUpdateCondition::Always
        );
        let error = error_of(
            "gateway.lwm2m.translators.notify { topic = \"n\", qos = 3 }",
            &[],
        );
        assert!(
            error.contains("gateway.lwm2m.translators.notify.qos"),
            "{error}"
        );
        let error = error_of("gateway.lwm2m.update_msg_publish_condition = never", &[]);
        assert!(error.contains("always, contains_object_list"), "{error}");
        let error = error_of("gateway.lwm2m.lifetime_min = 2d", &[]);
        assert!(error.contains("gateway.lwm2m.lifetime_min"), "{error}");
        let error = error_of("gateway.lwm2m.listeners.udp.default.bind = 5683", &[]);
        assert!(
            error.contains("gateway.lwm2m.listeners.udp.default.bind"),
            "{error}"
        );
    }

    #[test]
    fn etc_file_loads_to_the_defaults() {
        let loaded = Config::load(Some(Path::new(ETC_FILE)), no_env()).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn root_keys_are_the_roots_of_the_defaults() {
        let tree = parse(DEFAULTS, DEFAULTS_ORIGIN, None).unwrap();
        let mut roots: Vec<&str> = tree
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        roots.sort_unstable();
        let mut expected = Config::ROOT_KEYS.to_vec();
        expected.sort_unstable();
        assert_eq!(roots, expected);
    }

    #[test]
    fn file_overrides_defaults_and_keeps_the_rest() {
        let loaded = load_text(
            "mqtt { max_inflight = 64, max_packet_size = 2MB }\n\
             listeners.tcp.default.bind = 2883\n\
             log.console.level = debug",
            &[],
        )
        .unwrap();
        let mut expected = Config::default();
        expected.mqtt.max_inflight = 64;
        expected.mqtt.max_packet_size = ByteSize::from_bytes(2 * 1_048_576);
        expected.listeners.tcp.get_mut("default").unwrap().bind = "0.0.0.0:2883".parse().unwrap();
        expected.log.console.level = LogLevel::Debug;
        assert_eq!(loaded.config, expected);
    }

    #[test]
    fn env_overrides_file() {
        let loaded = load_text(
            "mqtt.max_mqueue_len = 10\nmqtt.max_inflight = 16",
            &[
                ("TRIBUTARY_MQTT__MAX_MQUEUE_LEN", "50"),
                ("TRIBUTARY_LISTENERS__TCP__DEFAULT__BIND", "127.0.0.1:2883"),
                ("TRIBUTARY_LISTENERS__TCP__EXTRA__BIND", "[::]:8883"),
                ("TRIBUTARY_MQTT__RETRY_INTERVAL", "30s"),
                ("TRIBUTARY_MQTT__RESPONSE_INFORMATION", "\"hello world\""),
                ("TRIBUTARY_NODE__DATA_DIR", "/var//lib/tributary"),
                ("TRIBUTARY_MQTT__UPGRADE_QOS", "true"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        let config = loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(config.mqtt.max_mqueue_len, 50);
        assert_eq!(config.mqtt.max_inflight, 16, "file value kept");
        assert_eq!(
            config.listeners.tcp["default"].bind,
            "127.0.0.1:2883".parse().unwrap()
        );
        let extra = &config.listeners.tcp["extra"];
        assert_eq!(extra.bind, "[::]:8883".parse().unwrap());
        assert!(extra.enable, "a listener made by env takes the defaults");
        assert_eq!(extra.max_connections, Limit::Infinity);
        assert_eq!(
            config.mqtt.retry_interval,
            Timeout::After(Duration::from_secs(30))
        );
        assert_eq!(config.mqtt.response_information, "hello world");
        assert_eq!(config.node.data_dir, PathBuf::from("/var//lib/tributary"));
        assert!(config.mqtt.upgrade_qos);
    }

    #[test]
    fn env_objects_and_lists_are_hocon() {
        let loaded = Config::load(
            None,
            env(&[
                ("TRIBUTARY_MQTT", "{max_inflight = 8}"),
                (
                    "TRIBUTARY_AUTO_SUBSCRIBE__TOPICS",
                    r#"[{topic = "c/${clientid}", qos = 1}]"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.mqtt.max_inflight, 8);
        assert_eq!(loaded.config.mqtt.max_mqueue_len, 1000, "object merged");
        assert_eq!(
            loaded.config.auto_subscribe.topics,
            vec![AutoSubscribeTopic {
                topic: "c/${clientid}".into(),
                qos: 1,
                rh: 0,
                rap: 0,
                nl: 0,
            }]
        );
    }

    #[test]
    fn env_listener_names_are_lower_cased() {
        let loaded = Config::load(
            None,
            env(&[("TRIBUTARY_LISTENERS__TCP__Internal__BIND", "1884")]),
        )
        .unwrap();
        assert!(loaded.config.listeners.tcp.contains_key("internal"));
    }

    #[test]
    fn unknown_env_root_warns_and_is_skipped() {
        let loaded = Config::load(
            None,
            env(&[
                ("TRIBUTARY_MQTTT__MAX_INFLIGHT", "5"),
                ("TRIBUTARY_", "x"),
                ("OTHER_MQTT__MAX_INFLIGHT", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings.iter().any(|w| w.contains(
                "TRIBUTARY_MQTTT__MAX_INFLIGHT: unknown root key mqttt; expected one of node, listeners, mqtt"
            )),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let error = error_of("mqtt.max_inflght = 3", &[]);
        assert!(
            error.starts_with(
                "invalid config: unknown key mqtt.max_inflght; expected one of max_packet_size, "
            ),
            "{error}"
        );
        assert!(error.contains("max_inflight"), "{error}");
        let error = error_of("mqttt { max_inflight = 3 }", &[]);
        assert!(
            error.starts_with("invalid config: unknown key mqttt; expected one of node, "),
            "{error}"
        );
        let error = error_of("listeners.tls.default.bind = 8883", &[]);
        assert_eq!(
            error,
            "invalid config: unknown key listeners.tls; expected one of tcp, ssl, ws, wss, quic"
        );
        let error = error_of("listeners.ssl.default.ssl_options.certfle = x", &[]);
        assert!(
            error.starts_with(
                "invalid config: unknown key listeners.ssl.default.ssl_options.certfle; expected one of certfile, "
            ),
            "{error}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_key_value_and_expectation() {
        let cases = [
            (
                "mqtt.max_inflight = abc",
                r#"invalid config: mqtt.max_inflight = "abc": expected an integer between 1 and 65535"#,
            ),
            (
                "mqtt.max_inflight = 0",
                "invalid config: mqtt.max_inflight = 0: expected an integer between 1 and 65535",
            ),
            (
                "mqtt.max_clientid_len = 10",
                "invalid config: mqtt.max_clientid_len = 10: expected an integer between 23 and 65535",
            ),
            (
                "mqtt.max_packet_size = 10XB",
                r#"invalid config: mqtt.max_packet_size = "10XB": expected a byte size between 1 and 268435455 bytes, such as 1MB"#,
            ),
            (
                "mqtt.max_packet_size = 256MB",
                r#"invalid config: mqtt.max_packet_size = "256MB": expected a byte size between 1 and 268435455 bytes, such as 1MB"#,
            ),
            (
                "mqtt.idle_timeout = soon",
                r#"invalid config: mqtt.idle_timeout = "soon": expected a duration such as 100ms, 30s, 1m, 2h or 1d (a plain integer is milliseconds)"#,
            ),
            (
                "log.console.level = loud",
                r#"invalid config: log.console.level = "loud": expected one of debug, info, notice, warning, error, critical, alert, emergency"#,
            ),
            (
                "mqtt.shared_subscription_strategy = local",
                r#"invalid config: mqtt.shared_subscription_strategy = "local": expected one of random, round_robin, sticky, hash_clientid, hash_topic"#,
            ),
            (
                "mqtt.keepalive_multiplier = 0",
                "invalid config: mqtt.keepalive_multiplier = 0: expected a number greater than 0, such as 1.5",
            ),
            (
                "mqtt.max_topic_levels = 0",
                "invalid config: mqtt.max_topic_levels = 0: expected an integer between 1 and 65535",
            ),
            (
                "mqtt.retry_interval = never",
                r#"invalid config: mqtt.retry_interval = "never": expected a duration such as 30s or 2h, or infinity"#,
            ),
            (
                "mqtt.retain_available = yes",
                r#"invalid config: mqtt.retain_available = "yes": expected true or false"#,
            ),
            (
                "mqtt.max_mqueue_len = infinity",
                r#"invalid config: mqtt.max_mqueue_len = "infinity": expected an integer between 1 and 4294967295"#,
            ),
            (
                "listeners.tcp.default.bind = \"localhost\"",
                r#"invalid config: listeners.tcp.default.bind = "localhost": expected IP:PORT such as 0.0.0.0:1883 or [::]:1883, or a port"#,
            ),
            (
                "listeners.tcp.default.max_connections = 0",
                "invalid config: listeners.tcp.default.max_connections = 0: expected a positive integer or infinity",
            ),
            (
                "mqtt = 5",
                "invalid config: mqtt = 5: expected an object with the mqtt settings",
            ),
            (
                "auto_subscribe.topics = [{topic = a, qos = 3}]",
                "invalid config: auto_subscribe.topics[0].qos = 3: expected an integer between 0 and 2",
            ),
            (
                "auto_subscribe.topics = [{qos = 1}]",
                "invalid config: missing key auto_subscribe.topics[0].topic",
            ),
            (
                "auto_subscribe.topics = [{topic = \"\"}]",
                r#"invalid config: auto_subscribe.topics[0].topic = "": expected a non-empty topic filter"#,
            ),
            (
                "dashboard.listeners.http.bind = 1883",
                "invalid config: dashboard.listeners.http.bind = 1883: expected an address no other listener binds (listeners.tcp.default does)",
            ),
            (
                "dashboard.default_username = \"\"",
                r#"invalid config: dashboard.default_username = "": expected a non-empty user name"#,
            ),
            (
                "dashboard.listeners.http.enable = maybe",
                r#"invalid config: dashboard.listeners.http.enable = "maybe": expected true or false"#,
            ),
            (
                "node.data_dir = [1, 2]",
                "invalid config: node.data_dir = [1, 2]: expected path string",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error_of(text, &[]), expected, "for {text}");
        }
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let error = Config::load(None, env(&[("TRIBUTARY_MQTT__MAX_INFLIGHT", "abc")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            r#"invalid config: mqtt.max_inflight = "abc": expected an integer between 1 and 65535 (set by TRIBUTARY_MQTT__MAX_INFLIGHT)"#
        );
        let error = Config::load(None, env(&[("TRIBUTARY_MQTT__MAX_INFLGHT", "5")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid config: unknown key mqtt.max_inflght; expected one of ")
                && error.ends_with(" (set by TRIBUTARY_MQTT__MAX_INFLGHT)"),
            "{error}"
        );
    }

    #[test]
    fn units_are_read_like_emqx() {
        let config = load_text(
            "mqtt {\n\
               max_packet_size = 1MB\n\
               await_rel_timeout = 30s\n\
               session_expiry_interval = 2h\n\
               idle_timeout = 1500\n\
               retry_interval = 100ms\n\
               server_keepalive = 60\n\
               max_subscriptions = 10\n\
             }\n\
             retainer.max_payload_size = 512B\n\
             retainer.msg_expiry_interval = 1d\n\
             sys_topics { sys_msg_interval = disabled, sys_heartbeat_interval = 0s }",
            &[],
        )
        .unwrap()
        .config;
        assert_eq!(config.mqtt.max_packet_size.bytes(), 1_048_576);
        assert_eq!(config.mqtt.await_rel_timeout, Duration::from_secs(30));
        assert_eq!(
            config.mqtt.session_expiry_interval,
            Duration::from_secs(7200)
        );
        assert_eq!(config.mqtt.idle_timeout, Duration::from_millis(1500));
        assert_eq!(
            config.mqtt.retry_interval.duration(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(config.mqtt.server_keepalive, Some(60));
        assert_eq!(config.mqtt.max_subscriptions, Limit::Max(10));
        assert_eq!(config.retainer.max_payload_size.bytes(), 512);
        assert_eq!(
            config.retainer.msg_expiry_interval,
            Duration::from_secs(86_400)
        );
        assert_eq!(config.sys_topics.sys_msg_interval, None);
        assert_eq!(config.sys_topics.sys_heartbeat_interval, None);
    }

    #[test]
    fn bind_accepts_a_port_alone_and_ipv6() {
        let config = load_text(
            "listeners.tcp.default.bind = 1883\nlisteners.tcp.v6.bind = \"[::]:1884\"",
            &[],
        )
        .unwrap()
        .config;
        assert_eq!(
            config.listeners.tcp["default"].bind,
            "0.0.0.0:1883".parse().unwrap()
        );
        assert_eq!(
            config.listeners.tcp["v6"].bind,
            "[::]:1884".parse().unwrap()
        );
    }

    #[test]
    fn two_enabled_listeners_may_not_share_an_address() {
        let error = error_of("listeners.tcp.extra.bind = 1883", &[]);
        assert_eq!(
            error,
            r#"invalid config: listeners.tcp.extra.bind = 1883: expected an address no other listener binds (listeners.tcp.default does)"#
        );
        load_text(
            "listeners.tcp.extra.bind = 1883\nlisteners.tcp.default.enable = false",
            &[],
        )
        .unwrap();
        load_text("listeners.tcp { a.bind = 0, b.bind = 0 }", &[]).unwrap();
    }

    #[test]
    fn every_listener_type_has_a_default_listener_on_its_port() {
        let listeners = Config::default().listeners;
        let port = |kind: &str| {
            listeners
                .all()
                .into_iter()
                .find(|(k, name, _)| *k == kind && *name == "default")
                .map(|(_, _, l)| (l.bind().port(), l.is_udp()))
        };
        assert_eq!(port("tcp"), Some((1883, false)));
        assert_eq!(port("ssl"), Some((8883, false)));
        assert_eq!(port("ws"), Some((8083, false)));
        assert_eq!(port("wss"), Some((8084, false)));
        assert_eq!(port("quic"), Some((14567, true)));
        assert_eq!(listeners.ws["default"].websocket.mqtt_path, "/mqtt");
        assert_eq!(
            listeners.ssl["default"].ssl_options.versions,
            vec![TlsVersion::Tls13, TlsVersion::Tls12]
        );
        assert_eq!(
            listeners.ssl["default"].ssl_options.verify,
            Verify::VerifyNone
        );
        assert_eq!(
            listeners.ssl["default"].ssl_options.handshake_timeout,
            Duration::from_secs(15)
        );
    }

    #[test]
    fn tls_and_websocket_listeners_read_emqx_keys() {
        let config = load_text(
            r#"
            listeners.ssl.mtls {
              bind = 9883
              ssl_options {
                certfile = "/etc/certs/server.pem"
                keyfile = "/etc/certs/server.key"
                cacertfile = "/etc/certs/ca.pem"
                verify = verify_peer
                fail_if_no_peer_cert = true
                versions = ["tlsv1.3"]
                ciphers = "TLS_AES_256_GCM_SHA384, ECDHE-RSA-AES128-GCM-SHA256"
              }
              peer_cert_as_username = cn
              peer_cert_as_clientid = dn
            }
            listeners.wss.default.websocket {
              check_origin_enable = true
              check_origins = ["https://app.example.com", "http://localhost:3000"]
              proxy_address_header = x-forwarded-for
            }
            listeners.ws.default.websocket.mqtt_path = "/ws"
            listeners.quic.default { idle_timeout = 60s, keep_alive_interval = 20s }
            "#,
            &[("TRIBUTARY_LISTENERS__WS__EXTRA__BIND", "9083")],
        )
        .unwrap()
        .config;
        let mtls = &config.listeners.ssl["mtls"];
        assert_eq!(mtls.bind, "0.0.0.0:9883".parse().unwrap());
        assert!(mtls.enable, "unset fields take the defaults");
        assert_eq!(mtls.ssl_options.verify, Verify::VerifyPeer);
        assert!(mtls.ssl_options.fail_if_no_peer_cert);
        assert_eq!(mtls.ssl_options.versions, vec![TlsVersion::Tls13]);
        assert_eq!(
            mtls.ssl_options.ciphers,
            vec!["TLS_AES_256_GCM_SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            mtls.ssl_options.cacertfile,
            PathBuf::from("/etc/certs/ca.pem")
        );
        assert_eq!(mtls.peer_cert_as_username, PeerCertAs::Cn);
        assert_eq!(mtls.peer_cert_as_clientid, PeerCertAs::Dn);
        let wss = &config.listeners.wss["default"].websocket;
        assert!(wss.check_origin_enable);
        assert_eq!(wss.check_origins.len(), 2);
        assert_eq!(wss.proxy_address_header, "x-forwarded-for");
        assert_eq!(wss.mqtt_path, "/mqtt");
        assert_eq!(config.listeners.ws["default"].websocket.mqtt_path, "/ws");
        let extra = &config.listeners.ws["extra"];
        assert_eq!(extra.bind, "0.0.0.0:9083".parse().unwrap());
        assert_eq!(extra.websocket, WebsocketOptions::default());
        let quic = &config.listeners.quic["default"];
        assert_eq!(quic.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(quic.keep_alive_interval, Some(Duration::from_secs(20)));
    }

    #[test]
    fn bad_tls_and_websocket_settings_are_refused() {
        let cases = [
            (
                "listeners.ssl.default.ssl_options.verify = verify_all",
                r#"invalid config: listeners.ssl.default.ssl_options.verify = "verify_all": expected one of verify_none, verify_peer"#,
            ),
            (
                "listeners.ssl.default.ssl_options.versions = [\"tlsv1.1\"]",
                r#"invalid config: listeners.ssl.default.ssl_options.versions[0] = "tlsv1.1": expected one of tlsv1.3, tlsv1.2"#,
            ),
            (
                "listeners.ssl.default.ssl_options.versions = []",
                "invalid config: listeners.ssl.default.ssl_options.versions = []: expected at least one of tlsv1.3, tlsv1.2",
            ),
            (
                "listeners.quic.default.ssl_options.versions = [\"tlsv1.2\"]",
                r#"invalid config: listeners.quic.default.ssl_options.versions = ["tlsv1.2"]: expected tlsv1.3 in the list: QUIC runs on TLS 1.3 only"#,
            ),
            (
                "listeners.wss.default.ssl_options.verify = verify_peer",
                r#"invalid config: listeners.wss.default.ssl_options.cacertfile = "": expected a CA file: verify = verify_peer needs one to check client certificates against"#,
            ),
            (
                "listeners.ssl.default.ssl_options.certfile = \"/x.pem\"",
                r#"invalid config: listeners.ssl.default.ssl_options.keyfile = "": expected a file: certfile and keyfile go together (leave both empty for a generated self-signed certificate)"#,
            ),
            (
                "listeners.ssl.default.ssl_options.crlfile = \"/crl.pem\"",
                r#"invalid config: listeners.ssl.default.ssl_options.crlfile = "/crl.pem": expected "" with verify = verify_none: a CRL checks client certificates, which only verify_peer asks for"#,
            ),
            (
                "listeners.ssl.default.peer_cert_as_username = crt",
                r#"invalid config: listeners.ssl.default.peer_cert_as_username = "crt": expected one of disabled, cn, dn"#,
            ),
            (
                "listeners.ws.default.websocket.mqtt_path = mqtt",
                r#"invalid config: listeners.ws.default.websocket.mqtt_path = "mqtt": expected an HTTP path starting with /, such as /mqtt"#,
            ),
            (
                "listeners.ws.default.websocket.check_origins = 5",
                "invalid config: listeners.ws.default.websocket.check_origins = 5: expected a list of strings or a comma-separated string",
            ),
            (
                "listeners.quic.default.idle_timeout = later",
                r#"invalid config: listeners.quic.default.idle_timeout = "later": expected a duration such as 100ms, 30s, 1m, 2h or 1d (a plain integer is milliseconds), or disabled"#,
            ),
            (
                "listeners.ws.default.bind = 8883",
                "invalid config: listeners.ws.default.bind = 8883: expected an address no other listener binds (listeners.ssl.default does)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error_of(text, &[]), expected, "for {text}");
        }
        // A QUIC (UDP) listener may share its address with a TCP one.
        load_text("listeners.quic.default.bind = 1883", &[]).unwrap();
    }

    #[test]
    fn bad_syntax_names_the_file() {
        let path = temp_file("broken.conf", "mqtt {\n  max_inflight = \n}\n");
        let error = Config::load(Some(&path), no_env()).unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }));
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("invalid config file {}: ", path.display())),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let error =
            Config::load(Some(Path::new("/nonexistent/tributary.conf")), no_env()).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(
            error
                .to_string()
                .starts_with("cannot read config file /nonexistent/tributary.conf: "),
            "{error}"
        );
    }

    #[test]
    fn includes_are_found_beside_the_file() {
        let main = temp_file("main.conf", "include \"extra.conf\"\nmqtt.max_inflight = 7");
        let dir = main.parent().unwrap();
        std::fs::write(dir.join("extra.conf"), "mqtt.max_awaiting_rel = 9").unwrap();
        let config = Config::load(Some(&main), no_env()).unwrap().config;
        assert_eq!(config.mqtt.max_inflight, 7);
        assert_eq!(config.mqtt.max_awaiting_rel, 9);
    }
}
