//! Support for the integration tests: a gateway on loopback port 0, one per test, and clients
//! for every transport.
//!
//! Every test starts its own [`TestGateway`] (no shared state between tests), configured from
//! the embedded defaults with every listener (tcp, ssl, ws, wss, quic, and the HTTP API) on
//! `127.0.0.1:0` and a private data directory, where the TLS listeners' self-signed certificate
//! is generated.
//! Test support fails loudly: a gateway that cannot start, or a client that cannot connect, is a
//! failed test.

// Test support: a failure is a failed test, so panicking is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod mqtt;
pub mod pki;
pub mod transports;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tributary_config::Config;
use tributary_gateway::Gateway;

/// A running gateway for one test. Shut it down with [`TestGateway::shutdown`] to test
/// graceful shutdown; dropping it stops the listeners' tasks with the test's runtime.
#[derive(Debug)]
pub struct TestGateway {
    gateway: Gateway,
    /// Address of the default TCP listener.
    pub addr: SocketAddr,
    data_dir: PathBuf,
}

impl TestGateway {
    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Host and port of the default TCP listener, as clients take them.
    pub fn host_port(&self) -> (String, u16) {
        (self.addr.ip().to_string(), self.addr.port())
    }

    /// The bound address of listener `kind` (`tcp`, `ssl`, `ws`, `wss`, `quic`) named `name`.
    pub fn addr_of(&self, kind: &str, name: &str) -> SocketAddr {
        self.gateway
            .addr_of(kind, name)
            .unwrap_or_else(|| panic!("no {kind}:{name} listener"))
    }

    /// The bound address of the CoAP gateway's default UDP listener.
    pub fn coap_addr(&self) -> SocketAddr {
        self.addr_of("coap", "default")
    }

    /// The bound address of the LwM2M gateway's default UDP listener.
    pub fn lwm2m_addr(&self) -> SocketAddr {
        self.addr_of("lwm2m", "default")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The self-signed certificate the TLS listeners serve when none is configured, PEM; a
    /// client trusts it as its root.
    pub fn self_signed_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("certs/self-signed.pem"))
            .expect("the self-signed certificate")
    }

    /// A rustls client config that trusts the self-signed certificate.
    pub fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        transports::client_tls(&self.self_signed_pem(), None)
    }

    /// Graceful shutdown (clients get DISCONNECT 0x8B), then the data directory is removed.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A fresh directory under the system temp directory, unique in this process.
pub fn temp_dir(purpose: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "tributary-{purpose}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A test config: defaults, every listener (the HTTP API's too) on `127.0.0.1:0`, a fresh
/// data directory.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.node.data_dir = temp_dir("test");
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = &mut config.listeners;
    listeners.tcp.values_mut().for_each(|l| l.bind = loopback);
    listeners.ssl.values_mut().for_each(|l| l.bind = loopback);
    listeners.ws.values_mut().for_each(|l| l.bind = loopback);
    listeners.wss.values_mut().for_each(|l| l.bind = loopback);
    listeners.quic.values_mut().for_each(|l| l.bind = loopback);
    config.dashboard.listeners.http.bind = loopback;
    config
        .gateway
        .coap
        .listeners
        .udp
        .values_mut()
        .for_each(|l| l.bind = loopback);
    config
        .gateway
        .lwm2m
        .listeners
        .udp
        .values_mut()
        .for_each(|l| l.bind = loopback);
    config
}

/// Starts a gateway with the test config.
pub async fn start_gateway() -> TestGateway {
    start_gateway_with(|_| {}).await
}

/// Starts a gateway with the test config as changed by `configure`.
pub async fn start_gateway_with(configure: impl FnOnce(&mut Config)) -> TestGateway {
    start_gateway_with_hooks(configure, Arc::new(tributary_protocols::AllowAll)).await
}

/// Starts a gateway with the test config as changed by `configure`, and `hooks` for
/// authentication and authorization.
pub async fn start_gateway_with_hooks(
    configure: impl FnOnce(&mut Config),
    hooks: Arc<dyn tributary_protocols::Hooks>,
) -> TestGateway {
    let mut config = test_config();
    configure(&mut config);
    let data_dir = config.node.data_dir.clone();
    let gateway = match Gateway::start_with_hooks(&config, hooks).await {
        Ok(gateway) => gateway,
        Err(error) => panic!("gateway failed to start: {error}"),
    };
    let addr = gateway
        .tcp_addr("default")
        .unwrap_or_else(|| panic!("no default tcp listener"));
    TestGateway {
        gateway,
        addr,
        data_dir,
    }
}
