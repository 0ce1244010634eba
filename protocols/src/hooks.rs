//! [`Hooks`]: where authentication and authorization plug into the broker.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use bytes::Bytes;
use tributary_mqtt_core::{ByteStr, ReasonCode};

use crate::{PeerCert, Protocol, Transport};

/// A boxed, sendable future (what async hook methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a client presented when it connected.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Client id: the client's, or the certificate's with `peer_cert_as_clientid`.
    pub client_id: ByteStr,
    /// User name, if any: the client's, or the certificate's with `peer_cert_as_username`.
    pub username: Option<ByteStr>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// Remote address.
    pub peer: SocketAddr,
    /// Listener that accepted the connection (`tcp:default`), shared with the listener.
    pub listener: Arc<str>,
    /// Transport.
    pub transport: Transport,
    /// Protocol: MQTT, or CoAP / LwM2M for a gateway's virtual client.
    pub protocol: Protocol,
    /// The client certificate the TLS transport verified, if the client sent one.
    pub peer_cert: Option<Arc<PeerCert>>,
}

/// Authentication and authorization. The default, [`AllowAll`], lets everyone in and allows
/// everything.
///
/// `authorize_*` run on the publish and subscribe paths, so they are synchronous: an
/// implementation keeps its rules in memory.
pub trait Hooks: Send + Sync + 'static {
    /// Decides whether a client may connect: `Ok(())` or the CONNACK reason code.
    fn authenticate<'a>(
        &'a self,
        request: &'a AuthRequest,
    ) -> BoxFuture<'a, Result<(), ReasonCode>>;

    /// Whether `client_id` may publish to `topic`.
    fn authorize_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool;

    /// Whether `client_id` may subscribe to `filter`.
    fn authorize_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool;
}

/// Allows every connection, publish and subscription.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Hooks for AllowAll {
    fn authenticate<'a>(
        &'a self,
        _request: &'a AuthRequest,
    ) -> BoxFuture<'a, Result<(), ReasonCode>> {
        Box::pin(async { Ok(()) })
    }

    fn authorize_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn authorize_subscribe(
        &self,
        _client_id: &str,
        _username: Option<&str>,
        _filter: &str,
    ) -> bool {
        true
    }
}
