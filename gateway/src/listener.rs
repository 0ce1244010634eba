//! TCP listeners: accept, apply the connection limit, hand the stream to the MQTT driver.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_config::TcpListener as TcpListenerConfig;
use tributary_protocols::{Broker, ConnectionInfo, serve_mqtt};

use crate::{BoundListener, StartError};

/// Binds a TCP listener and spawns its accept loop.
pub(crate) async fn start_tcp(
    name: &str,
    config: &TcpListenerConfig,
    broker: &Broker,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<BoundListener, StartError> {
    let bind_error = |source| StartError::Bind {
        kind: "tcp",
        name: name.to_owned(),
        addr: config.bind,
        source,
    };
    let listener = TcpListener::bind(config.bind).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let label: Arc<str> = Arc::from(format!("tcp:{name}"));
    let max_connections = config.max_connections.max().unwrap_or(u64::MAX);
    tasks.spawn(accept_loop(
        listener,
        label,
        max_connections,
        broker.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    Ok(BoundListener {
        kind: "tcp",
        name: name.to_owned(),
        addr,
    })
}

async fn accept_loop(
    listener: TcpListener,
    label: Arc<str>,
    max_connections: u64,
    broker: Broker,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(AtomicU64::new(0));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %label, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= max_connections {
            tracing::warn!(listener = %label, %peer, max_connections, "connection refused: listener at max_connections");
            drop(stream);
            continue;
        }
        // Latency over tiny-packet coalescing: the driver already batches its writes.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let info = ConnectionInfo {
            peer,
            listener: Arc::clone(&label),
        };
        let guard = ConnectionGuard::new(&open);
        let broker = broker.clone();
        tasks.spawn(async move {
            serve_mqtt(stream, info, broker).await;
            drop(guard);
        });
    }
}

/// Counts a listener's open connections, down again however the task ends.
struct ConnectionGuard(Arc<AtomicU64>);

impl ConnectionGuard {
    fn new(open: &Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
