//! Support for the integration tests: a gateway on loopback port 0, one per test.
//!
//! Every test starts its own [`TestGateway`] (no shared state between tests), configured from
//! the embedded defaults with the TCP listener on `127.0.0.1:0` and a private data directory.
//! Test support fails loudly: a gateway that cannot start is a failed test.

#![allow(clippy::panic)]

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
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

    /// Graceful shutdown (clients get DISCONNECT 0x8B), then the data directory is removed.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A test config: defaults, TCP on `127.0.0.1:0`, a fresh data directory.
pub fn test_config() -> Config {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut config = Config::default();
    config.node.data_dir = std::env::temp_dir().join(format!(
        "tributary-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    for listener in config.listeners.tcp.values_mut() {
        listener.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    config
}

/// Starts a gateway with the test config.
pub async fn start_gateway() -> TestGateway {
    start_gateway_with(|_| {}).await
}

/// Starts a gateway with the test config as changed by `configure`.
pub async fn start_gateway_with(configure: impl FnOnce(&mut Config)) -> TestGateway {
    let mut config = test_config();
    configure(&mut config);
    let data_dir = config.node.data_dir.clone();
    let gateway = match Gateway::start(&config).await {
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
