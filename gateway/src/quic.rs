//! The QUIC listeners: quinn with ALPN `mqtt`. A client's first bidirectional stream carries
//! MQTT: its two halves, joined into one byte stream, go to the one MQTT driver.
//!
//! Compared with EMQX's QUIC listener: one MQTT connection per QUIC connection on a single
//! bidirectional stream (EMQX's multi-stream mode, which spreads one client's topics over
//! several streams, is not supported: the server allows one bidirectional stream and no
//! unidirectional ones); 0-RTT is off; connection migration is on, so a client that changes
//! address keeps its MQTT session on the same connection.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use quinn::{Endpoint, IdleTimeout, TransportConfig, VarInt, crypto::rustls::QuicServerConfig};
use rustls_pki_types::CertificateDer;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_protocols::{Broker, CertField, ConnectionInfo, Transport, serve_mqtt};

use crate::{
    BoundListener, StartError,
    listener::ConnectionGuard,
    metrics::{HandshakeFailure, ListenerMetrics},
    tls,
};

/// The ALPN protocol id of MQTT over QUIC, as EMQX and NanoMQ use it.
pub(crate) const ALPN: &[u8] = b"mqtt";

/// How long the server keeps a QUIC connection open after MQTT ended on it, so that the last
/// packets (a DISCONNECT that says why) are delivered before the connection closes; a client
/// that closes first ends it sooner.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A QUIC listener's settings, resolved.
#[derive(Debug)]
pub(crate) struct QuicListenerSpec {
    pub(crate) name: String,
    pub(crate) bind: SocketAddr,
    pub(crate) max_connections: u64,
    /// The rustls config from `ssl_options` (TLS 1.3).
    pub(crate) tls: rustls::ServerConfig,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) keep_alive_interval: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) username_from_cert: Option<CertField>,
    pub(crate) client_id_from_cert: Option<CertField>,
    /// The listener's counters.
    pub(crate) metrics: Arc<ListenerMetrics>,
}

/// Binds a QUIC endpoint and spawns its accept loop.
pub(crate) fn start(
    mut spec: QuicListenerSpec,
    broker: &Broker,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<BoundListener, StartError> {
    let key = tls::listener_key("quic", &spec.name);
    spec.tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(spec.tls.clone())
        .map_err(|e| StartError::tls(format!("{key}.ssl_options"), e))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = TransportConfig::default();
    // MQTT uses one bidirectional stream; refusing more keeps a client from opening thousands.
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(spec.keep_alive_interval);
    let idle = spec
        .idle_timeout
        .map(IdleTimeout::try_from)
        .transpose()
        .map_err(|e| StartError::tls(format!("{key}.idle_timeout"), e))?;
    transport.max_idle_timeout(idle);
    server.transport_config(Arc::new(transport));
    server.migration(true);
    let endpoint = Endpoint::server(server, spec.bind).map_err(|source| StartError::Bind {
        kind: "quic",
        name: spec.name.clone(),
        addr: spec.bind,
        source,
    })?;
    let addr = endpoint.local_addr().map_err(|source| StartError::Bind {
        kind: "quic",
        name: spec.name.clone(),
        addr: spec.bind,
        source,
    })?;
    let bound = BoundListener {
        kind: "quic",
        name: spec.name.clone(),
        addr,
    };
    tasks.spawn(accept_loop(
        endpoint,
        Arc::new(spec),
        broker.clone(),
        stop.clone(),
        tasks.clone(),
    ));
    Ok(bound)
}

async fn accept_loop(
    endpoint: Endpoint,
    spec: Arc<QuicListenerSpec>,
    broker: Broker,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let label: Arc<str> = Arc::from(format!("quic:{}", spec.name));
    loop {
        let incoming = tokio::select! {
            () = stop.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        if spec.metrics.open.load(Ordering::Relaxed) >= spec.max_connections {
            spec.metrics
                .refused_max_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(listener = %label, peer = %incoming.remote_address(), max_connections = spec.max_connections, "connection refused: listener at max_connections");
            incoming.refuse();
            continue;
        }
        spec.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        let guard = ConnectionGuard::new(&spec.metrics);
        let (broker, spec, label, endpoint) = (
            broker.clone(),
            Arc::clone(&spec),
            Arc::clone(&label),
            endpoint.clone(),
        );
        tasks.spawn(async move {
            serve(incoming, &spec, label, broker).await;
            // Held until the connection is done, so the endpoint outlives it.
            drop(endpoint);
            drop(guard);
        });
    }
    // New connections are refused from here; live ones end with the broker's shutdown.
    endpoint.set_server_config(None);
}

/// Completes the QUIC handshake and waits for the client's first bidirectional stream (both
/// under the handshake timeout), then serves MQTT on it.
async fn serve(
    incoming: quinn::Incoming,
    spec: &QuicListenerSpec,
    label: Arc<str>,
    broker: Broker,
) {
    let peer = incoming.remote_address();
    let established = tokio::time::timeout(spec.handshake_timeout, async {
        let connection = incoming.await?;
        let (send, recv) = connection.accept_bi().await?;
        Ok::<_, quinn::ConnectionError>((connection, send, recv))
    })
    .await;
    let (connection, send, recv) = match established {
        Ok(Ok(established)) => established,
        Ok(Err(error)) => {
            spec.metrics.handshake_failed(HandshakeFailure::Tls);
            tracing::info!(listener = %label, %peer, reason = %error, "connection closed before MQTT");
            return;
        }
        Err(_) => {
            spec.metrics.handshake_failed(HandshakeFailure::Timeout);
            tracing::info!(listener = %label, %peer, reason = "handshake not finished in time", "connection closed before MQTT");
            return;
        }
    };
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    let mut info = ConnectionInfo::new(connection.remote_address(), label, Transport::Quic);
    info.peer_cert = tls::peer_cert(chain.as_deref().map(Vec::as_slice));
    info.username_from_cert = spec.username_from_cert;
    info.client_id_from_cert = spec.client_id_from_cert;
    serve_mqtt(tokio::io::join(recv, send), info, broker).await;
    let _ = tokio::time::timeout(CLOSE_LINGER, connection.closed()).await;
    connection.close(VarInt::from_u32(0), b"");
}
