//! The TCP listeners (`tcp`, `ssl`, `ws`, `wss`): one accept loop for all of them. Each
//! accepted socket goes through its listener's [`Handshake`] (nothing, TLS, a WebSocket
//! upgrade, or both) under a time limit, and the byte stream that comes out is handed to the
//! one MQTT driver, [`serve_mqtt`]. No transport knows MQTT.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::FutureExt;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_protocols::{Broker, CertField, ConnectionInfo, PeerCert, Transport, serve_mqtt};
use tributary_websocket::{UpgradeConfig, UpgradeError};

use crate::{
    BoundListener, StartError,
    metrics::{HandshakeFailure, ListenerMetrics},
    tls,
};

/// What a listener does to an accepted socket before MQTT starts.
pub(crate) enum Handshake {
    /// Plain TCP: nothing.
    Plain,
    /// TLS.
    Tls(TlsStep),
    /// A WebSocket upgrade.
    Ws(UpgradeConfig),
    /// TLS, then a WebSocket upgrade over it.
    Wss(TlsStep, UpgradeConfig),
}

impl Handshake {
    /// The transport a client of this listener connects over.
    fn transport(&self) -> Transport {
        match self {
            Self::Plain => Transport::Tcp,
            Self::Tls(_) => Transport::Ssl,
            Self::Ws(_) => Transport::Ws,
            Self::Wss(..) => Transport::Wss,
        }
    }
}

/// The TLS step of a listener, with what it makes of the client certificate.
pub(crate) struct TlsStep {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) username_from_cert: Option<CertField>,
    pub(crate) client_id_from_cert: Option<CertField>,
}

/// Why a handshake failed; logged with the listener and the peer.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("{0}")]
    WebSocket(#[from] UpgradeError),
    #[error("handshake not finished within {0:?}")]
    Timeout(Duration),
}

/// A TCP listener's settings, resolved.
pub(crate) struct TcpListenerSpec {
    /// Listener type: `tcp`, `ssl`, `ws` or `wss`.
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    pub(crate) max_connections: u64,
    pub(crate) handshake: Handshake,
    /// How long the handshake may take.
    pub(crate) handshake_timeout: Duration,
    /// The listener's counters.
    pub(crate) metrics: Arc<ListenerMetrics>,
}

/// Binds a TCP listener and spawns its accept loop.
pub(crate) async fn start(
    spec: TcpListenerSpec,
    broker: &Broker,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<BoundListener, StartError> {
    let bind_error = |source| StartError::Bind {
        kind: spec.kind,
        name: spec.name.clone(),
        addr: spec.bind,
        source,
    };
    let listener = TcpListener::bind(spec.bind).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let bound = BoundListener {
        kind: spec.kind,
        name: spec.name.clone(),
        addr,
    };
    tasks.spawn(accept_loop(
        listener,
        Arc::new(spec),
        broker.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    spec: Arc<TcpListenerSpec>,
    broker: Broker,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let label: Arc<str> = Arc::from(format!("{}:{}", spec.kind, spec.name));
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
        if spec.metrics.open.load(Ordering::Relaxed) >= spec.max_connections {
            spec.metrics
                .refused_max_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(listener = %label, %peer, max_connections = spec.max_connections, "connection refused: listener at max_connections");
            drop(stream);
            continue;
        }
        spec.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        // Latency over tiny-packet coalescing: the driver already batches its writes.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let info = ConnectionInfo::new(peer, Arc::clone(&label), spec.handshake.transport());
        let guard = ConnectionGuard::new(&spec.metrics);
        spawn_serve(&tasks, stream, info, &spec, broker.clone(), guard);
    }
}

/// Spawns what serves one accepted connection: MQTT on the stream itself, or after the
/// listener's handshake. A plain TCP connection's task is the driver's future, the guard and
/// the tracker's token, and nothing more: no second copy of the stream, info and broker handle
/// as arguments, no room for the larger TLS and WebSocket futures (a TLS stream and the driver
/// generic over it are kilobytes larger), and no tag of an `Either` of the two, which alone
/// once took every idle TCP client's task a 128-byte step larger.
fn spawn_serve(
    tasks: &TaskTracker,
    stream: TcpStream,
    info: ConnectionInfo,
    spec: &Arc<TcpListenerSpec>,
    broker: Broker,
    guard: ConnectionGuard,
) {
    match spec.handshake {
        Handshake::Plain => {
            tasks.spawn(plain(stream, info, broker, guard));
        }
        _ => {
            let spec = Arc::clone(spec);
            tasks
                .spawn(handshake_then_serve(stream, info, spec, broker).map(move |()| drop(guard)));
        }
    }
}

/// What serves a plain TCP connection: the driver, and the guard that counts it open.
fn plain(
    stream: TcpStream,
    info: ConnectionInfo,
    broker: Broker,
    guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send + 'static {
    serve_mqtt(stream, info, broker).map(move |()| drop(guard))
}

/// Runs the listener's handshake on `stream`, then MQTT on what it yields.
async fn handshake_then_serve(
    stream: TcpStream,
    mut info: ConnectionInfo,
    spec: Arc<TcpListenerSpec>,
    broker: Broker,
) {
    let limit = spec.handshake_timeout;
    match &spec.handshake {
        Handshake::Plain => serve_mqtt(stream, info, broker).await,
        Handshake::Tls(step) => match bounded(limit, accept_tls(step, stream)).await {
            Ok((stream, cert)) => {
                step.apply(&mut info, cert);
                serve_mqtt(stream, info, broker).await;
            }
            Err(error) => fail(&info, &spec, &error),
        },
        Handshake::Ws(ws) => match bounded(limit, accept_ws(ws, stream)).await {
            Ok((stream, forwarded)) => {
                apply_forwarded(&mut info, forwarded);
                serve_mqtt(stream, info, broker).await;
            }
            Err(error) => fail(&info, &spec, &error),
        },
        Handshake::Wss(step, ws) => {
            let established = bounded(limit, async {
                let (stream, cert) = accept_tls(step, stream).await?;
                let (stream, forwarded) = accept_ws(ws, stream).await?;
                Ok((stream, cert, forwarded))
            })
            .await;
            match established {
                Ok((stream, cert, forwarded)) => {
                    step.apply(&mut info, cert);
                    apply_forwarded(&mut info, forwarded);
                    serve_mqtt(stream, info, broker).await;
                }
                Err(error) => fail(&info, &spec, &error),
            }
        }
    }
}

impl TlsStep {
    /// Records the verified certificate and what the listener makes of it.
    fn apply(&self, info: &mut ConnectionInfo, cert: Option<Arc<PeerCert>>) {
        info.peer_cert = cert;
        info.username_from_cert = self.username_from_cert;
        info.client_id_from_cert = self.client_id_from_cert;
    }
}

/// The handshake `step`, given `limit` to finish: a stalled handshake (slowloris) is dropped.
async fn bounded<T>(
    limit: Duration,
    step: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(limit, step)
        .await
        .unwrap_or(Err(HandshakeError::Timeout(limit)))
}

async fn accept_tls(
    step: &TlsStep,
    stream: TcpStream,
) -> Result<
    (
        tokio_rustls::server::TlsStream<TcpStream>,
        Option<Arc<PeerCert>>,
    ),
    HandshakeError,
> {
    let stream = step
        .acceptor
        .accept(stream)
        .await
        .map_err(HandshakeError::Tls)?;
    let cert = tls::peer_cert(stream.get_ref().1.peer_certificates());
    Ok((stream, cert))
}

async fn accept_ws<S: AsyncRead + AsyncWrite + Unpin>(
    config: &UpgradeConfig,
    stream: S,
) -> Result<
    (
        tributary_websocket::WsByteStream<S>,
        Option<std::net::IpAddr>,
    ),
    HandshakeError,
> {
    let upgraded = tributary_websocket::accept(stream, config).await?;
    Ok((upgraded.stream, upgraded.forwarded_for))
}

/// Behind a trusted proxy, the client is the address the proxy reported; its port is unknown.
fn apply_forwarded(info: &mut ConnectionInfo, forwarded: Option<std::net::IpAddr>) {
    if let Some(ip) = forwarded {
        tracing::debug!(listener = %info.listener, proxy = %info.peer, client = %ip, "client address from the proxy header");
        info.peer = SocketAddr::new(ip, 0);
    }
}

/// Counts and logs a connection that ended before MQTT started.
fn fail(info: &ConnectionInfo, spec: &TcpListenerSpec, error: &HandshakeError) {
    spec.metrics.handshake_failed(match error {
        HandshakeError::Tls(_) => HandshakeFailure::Tls,
        HandshakeError::WebSocket(_) => HandshakeFailure::WebSocket,
        HandshakeError::Timeout(_) => HandshakeFailure::Timeout,
    });
    tracing::info!(listener = %info.listener, peer = %info.peer, reason = %error, "connection closed before MQTT");
}

/// Counts a listener's open connections, down again however the task ends.
pub(crate) struct ConnectionGuard(Arc<ListenerMetrics>);

impl ConnectionGuard {
    pub(crate) fn new(metrics: &Arc<ListenerMetrics>) -> Self {
        metrics.open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(metrics))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tributary_protocols::AllowAll;

    use super::*;

    /// An idle TCP client's task is what the listener spawns for it, and tokio allocates a
    /// task as that future plus 104 bytes, rounded up to 128 (x86-64): at 536 bytes, 640;
    /// 8 bytes more and every connection pays 768 (docs/benchmarks.md, idle connections).
    /// The driver's own part is bounded in `tributary_protocols`; this bounds what the
    /// listener wraps around it. (A test build's `TcpStream` is 8 bytes larger.)
    #[tokio::test]
    async fn a_plain_connection_task_stays_in_its_step() {
        let broker = Broker::new(Default::default(), Arc::new(AllowAll));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let info = ConnectionInfo::new(addr, Arc::from("tcp:default"), Transport::Tcp);
        let guard = ConnectionGuard::new(&Arc::new(ListenerMetrics::default()));
        let task = TaskTracker::new().track_future(plain(stream, info, broker, guard));
        let size = std::mem::size_of_val(&task);
        let bound = if cfg!(debug_assertions) { 544 } else { 536 };
        assert!(
            size <= bound,
            "a plain TCP connection's task future is {size} bytes"
        );
    }
}
