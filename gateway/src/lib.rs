//! The composition root of Tributary: turns the configuration into runtime structs, binds the
//! listeners and runs them until shutdown.
//!
//! The `tributary` binary (`main.rs`) adds what a process needs around this: the command
//! line, the log subscriber and the signals. Integration tests use [`Gateway`] directly, with
//! every listener on port 0, so several gateways can run in one test process.
//!
//! [`bench`] is the `tributary bench` load tool: a client of any broker through sockets only,
//! shipped in the same binary so that every install has it.

pub mod bench;
mod listener;
mod runtime;

use std::{io, net::SocketAddr, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_config::Config;
use tributary_protocols::Broker;

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
    /// The data directory could not be created.
    #[error("node.data_dir = {path:?}: cannot create it: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A running gateway: a broker and its listeners.
#[derive(Debug)]
pub struct Gateway {
    broker: Broker,
    listeners: Vec<BoundListener>,
    stop_accepting: CancellationToken,
    tasks: TaskTracker,
}

/// A listener that is accepting connections.
#[derive(Debug, Clone)]
pub struct BoundListener {
    /// Listener type (`tcp`).
    pub kind: &'static str,
    /// Listener name from the config (`default`).
    pub name: String,
    /// The address it is bound to (the real port when the config said 0).
    pub addr: SocketAddr,
}

impl Gateway {
    /// Creates the data directory, builds the broker and binds every enabled listener.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let data_dir = &config.node.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let broker = Broker::new(
            broker_config(config),
            std::sync::Arc::new(tributary_protocols::AllowAll),
        );
        let stop_accepting = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut listeners = Vec::new();
        for (name, tcp) in config.listeners.tcp.iter().filter(|(_, l)| l.enable) {
            let bound = listener::start_tcp(name, tcp, &broker, &stop_accepting, &tasks).await?;
            tracing::info!(listener = %format_args!("tcp:{name}"), addr = %bound.addr, "listener started");
            listeners.push(bound);
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
        self.listeners
            .iter()
            .find(|l| l.kind == "tcp" && l.name == name)
            .map(|l| l.addr)
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
