//! Client-side connectors for every transport, each giving a plain byte stream: TCP, TLS
//! (tokio-rustls), WebSocket (tokio-tungstenite), WebSocket over TLS, and QUIC (quinn).

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, Join, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use tributary_websocket::WsByteStream;

use crate::pki::Issued;

/// Every transport a listener type offers, by its config name.
pub const KINDS: [&str; 5] = ["tcp", "ssl", "ws", "wss", "quic"];

/// A client byte stream over any transport.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for T {}

/// A boxed client byte stream.
pub type BoxStream = Box<dyn ClientStream>;

/// A rustls client config (ring) that trusts `ca_pem` and, when given, presents `client`.
pub fn client_tls(ca_pem: &str, client: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
    };
    Arc::new(config)
}

/// Opens a byte stream to the listener of type `kind` at `addr`: TLS kinds trust `tls`'s
/// roots and present its client certificate, if any; WebSocket kinds upgrade on `/mqtt` with
/// the subprotocol `mqtt`.
pub async fn connect(
    kind: &str,
    addr: SocketAddr,
    tls: &Arc<ClientConfig>,
) -> io::Result<BoxStream> {
    match kind {
        "tcp" => Ok(Box::new(TcpStream::connect(addr).await?)),
        "ssl" => Ok(Box::new(connect_tls(addr, tls).await?)),
        "ws" => Ok(Box::new(
            upgrade(TcpStream::connect(addr).await?, "ws", addr, "mqtt").await?,
        )),
        "wss" => Ok(Box::new(
            upgrade(connect_tls(addr, tls).await?, "wss", addr, "mqtt").await?,
        )),
        "quic" => Ok(Box::new(connect_quic(addr, tls).await?)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown transport {other}"),
        )),
    }
}

/// A TLS client stream to `addr`, checking the server certificate for `localhost`.
pub async fn connect_tls(
    addr: SocketAddr,
    tls: &Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(Arc::clone(tls)).connect(name, tcp).await
}

/// Upgrades `stream` to a WebSocket on `/mqtt` offering `subprotocol`.
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    scheme: &str,
    addr: SocketAddr,
    subprotocol: &str,
) -> io::Result<WsByteStream<S>> {
    let mut request = format!("{scheme}://localhost:{}/mqtt", addr.port())
        .into_client_request()
        .map_err(io::Error::other)?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(subprotocol).map_err(io::Error::other)?,
    );
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(io::Error::other)?;
    Ok(WsByteStream::new(ws))
}

/// A QUIC connection's first bidirectional stream, holding the connection and endpoint open.
#[derive(Debug)]
pub struct QuicStream {
    stream: Join<quinn::RecvStream, quinn::SendStream>,
    /// The connection, closed when the stream is dropped.
    pub connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl Drop for QuicStream {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"");
    }
}

/// Connects to the QUIC listener at `addr` with ALPN `mqtt` and opens a bidirectional stream.
pub async fn connect_quic(addr: SocketAddr, tls: &Arc<ClientConfig>) -> io::Result<QuicStream> {
    let mut tls = (**tls).clone();
    tls.alpn_protocols = vec![b"mqtt".to_vec()];
    connect_quic_with(addr, tls).await
}

/// Connects to the QUIC listener at `addr` with the given rustls config (its ALPN as set).
pub async fn connect_quic_with(addr: SocketAddr, tls: ClientConfig) -> io::Result<QuicStream> {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(io::Error::other)?;
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint
        .connect(addr, "localhost")
        .map_err(io::Error::other)?
        .await
        .map_err(io::Error::other)?;
    let (send, recv) = connection.open_bi().await.map_err(io::Error::other)?;
    Ok(QuicStream {
        stream: tokio::io::join(recv, send),
        connection,
        _endpoint: endpoint,
    })
}

impl AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
