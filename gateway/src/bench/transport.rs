//! The load tool's transports: TCP, TLS, WebSocket (and over TLS) and QUIC, each yielding one
//! byte stream the MQTT client writes to and reads from.
//!
//! TLS verifies the broker's certificate against `--cacertfile` when one is given. Without it
//! the certificate is not verified (the handshake and its signatures still are), as
//! emqtt-bench does: a load tool is pointed at test brokers with self-signed certificates, and
//! what it measures does not depend on who signed them.

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpSocket, TcpStream},
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
use tributary_websocket::WsByteStream;

use super::{BenchError, CommonArgs};

/// A connected byte stream of any transport.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How clients reach the broker.
#[derive(Clone)]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TCP, optionally TLS, optionally WebSocket on top.
    Layered {
        /// TLS client configuration and the name to present, for `--ssl`.
        tls: Option<(TlsConnector, ServerName<'static>)>,
        /// The WebSocket URL, for `--ws`.
        ws_url: Option<String>,
    },
    /// QUIC: one client endpoint per local address, the first bidirectional stream.
    Quic {
        /// Endpoints, used round robin like `--ifaddr`.
        endpoints: Vec<quinn::Endpoint>,
        /// The server name to present.
        server_name: String,
    },
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Transport {
    /// The transport the flags ask for.
    /// `remote` is the broker's address (its family picks the QUIC endpoints').
    pub(crate) fn from_args(common: &CommonArgs, remote: SocketAddr) -> Result<Self, BenchError> {
        if common.quic && (common.ssl || common.ws) {
            return Err(BenchError::Invalid(
                "--quic cannot be combined with --ssl or --ws".into(),
            ));
        }
        if common.quic {
            let mut tls = client_config(common.cacertfile.as_deref())?;
            tls.alpn_protocols = vec![b"mqtt".to_vec()];
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                .map_err(|e| BenchError::Invalid(format!("QUIC TLS configuration: {e}")))?;
            let client = quinn::ClientConfig::new(Arc::new(crypto));
            let locals: Vec<IpAddr> = if common.ifaddr.is_empty() {
                vec![if remote.is_ipv6() {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                }]
            } else {
                common.ifaddr.clone()
            };
            let endpoints = locals
                .into_iter()
                .map(|ip| {
                    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(ip, 0))
                        .map_err(|e| BenchError::Invalid(format!("QUIC endpoint on {ip}: {e}")))?;
                    endpoint.set_default_client_config(client.clone());
                    Ok(endpoint)
                })
                .collect::<Result<_, BenchError>>()?;
            return Ok(Self::Quic {
                endpoints,
                server_name: common.host.clone(),
            });
        }
        if !common.ssl && !common.ws {
            return Ok(Self::Tcp);
        }
        let tls = match common
            .ssl
            .then(|| client_config(common.cacertfile.as_deref()))
        {
            Some(config) => {
                let config = config?;
                let name = ServerName::try_from(common.host.clone()).map_err(|e| {
                    BenchError::Invalid(format!("-h {}: not a TLS server name: {e}", common.host))
                })?;
                Some((TlsConnector::from(Arc::new(config)), name))
            }
            None => None,
        };
        let ws_url = common.ws.then(|| {
            let scheme = if common.ssl { "wss" } else { "ws" };
            format!(
                "{scheme}://{}:{}{}",
                common.host, common.port, common.ws_path
            )
        });
        Ok(Self::Layered { tls, ws_url })
    }

    /// The transport's name, for errors and the summary.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Layered {
                tls: Some(_),
                ws_url: Some(_),
            } => "wss",
            Self::Layered { tls: Some(_), .. } => "ssl",
            Self::Layered { .. } => "ws",
            Self::Quic { .. } => "quic",
        }
    }

    /// Connects client `index` to `addr` (from `ifaddrs[index % len]` when given).
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        ifaddrs: &[IpAddr],
        index: u64,
    ) -> io::Result<Box<dyn Stream>> {
        if let Self::Quic {
            endpoints,
            server_name,
        } = self
        {
            let endpoint = pick(endpoints, index).ok_or_else(|| io::Error::other("no endpoint"))?;
            let connection = endpoint
                .connect(addr, server_name)
                .map_err(io::Error::other)?
                .await
                .map_err(io::Error::other)?;
            let (send, recv) = connection.open_bi().await.map_err(io::Error::other)?;
            return Ok(Box::new(QuicStream {
                stream: tokio::io::join(recv, send),
                _connection: connection,
            }));
        }
        let tcp = tcp_connect(addr, pick(ifaddrs, index).copied()).await?;
        let Self::Layered { tls, ws_url } = self else {
            return Ok(Box::new(tcp));
        };
        let stream: Box<dyn Stream> = match tls {
            Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
            None => Box::new(tcp),
        };
        let Some(url) = ws_url else {
            return Ok(stream);
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(io::Error::other)?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(io::Error::other)?;
        Ok(Box::new(WsByteStream::new(ws)))
    }
}

fn pick<T>(items: &[T], index: u64) -> Option<&T> {
    let len = u64::try_from(items.len()).ok().filter(|&len| len > 0)?;
    items.get(usize::try_from(index % len).ok()?)
}

async fn tcp_connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS verifying against the CAs in `cacertfile`, or not verifying the chain without one.
fn client_config(cacertfile: Option<&Path>) -> Result<ClientConfig, BenchError> {
    let Some(path) = cacertfile else {
        return unverified_config(provider());
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| BenchError::Invalid(format!("--cacertfile {}: {e}", path.display())))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(BenchError::Invalid(format!(
            "--cacertfile {}: no usable CA certificate in it",
            path.display()
        )));
    }
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| BenchError::Invalid(format!("TLS configuration: {e}")))
}

fn unverified_config(provider: Arc<CryptoProvider>) -> Result<ClientConfig, BenchError> {
    let verifier = Arc::new(AnyServerCert(Arc::clone(&provider)));
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        })
        .map_err(|e| BenchError::Invalid(format!("TLS configuration: {e}")))
}

/// Accepts any server certificate, but still checks the handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A QUIC stream pair as one byte stream; it holds the connection open.
struct QuicStream {
    stream: tokio::io::Join<quinn::RecvStream, quinn::SendStream>,
    _connection: quinn::Connection,
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
