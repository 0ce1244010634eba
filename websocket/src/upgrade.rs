//! [`accept`]: the HTTP upgrade, with path, origin and subprotocol checks.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{
    Error as WsError,
    handshake::server::{ErrorResponse, Request, Response},
    http::{HeaderValue, StatusCode, header},
    protocol::WebSocketConfig,
};

use crate::WsByteStream;

/// What an upgrade must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeConfig {
    /// The only path upgraded (`/mqtt`); any other gets 404.
    pub path: String,
    /// The subprotocols accepted; the first one the client offers that is in this list is
    /// chosen.
    pub subprotocols: Vec<String>,
    /// Refuse (400) an upgrade that offers none of `subprotocols`.
    pub fail_if_no_subprotocol: bool,
    /// When set, the `Origin` values accepted (403 for any other).
    pub check_origins: Option<Vec<String>>,
    /// With `check_origins`, accept an upgrade that has no `Origin` header.
    pub allow_origin_absence: bool,
    /// When set, the header a trusted proxy puts the client address in (`x-forwarded-for`).
    pub proxy_address_header: Option<String>,
    /// The largest message (and frame) accepted, in bytes.
    pub max_message_size: usize,
}

/// An accepted upgrade.
#[derive(Debug)]
pub struct Upgraded<S> {
    /// The byte stream over the WebSocket.
    pub stream: WsByteStream<S>,
    /// The subprotocol chosen, if any.
    pub subprotocol: Option<String>,
    /// The client address from the proxy header, when one is configured and the request had a
    /// valid one.
    pub forwarded_for: Option<IpAddr>,
}

/// Why an upgrade failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request was answered with an HTTP error (wrong path, origin or subprotocol).
    #[error("upgrade refused with HTTP {status}: {reason}")]
    Refused {
        /// The status sent.
        status: StatusCode,
        /// Why.
        reason: String,
    },
    /// The request was not a valid WebSocket upgrade, or the connection failed.
    #[error("websocket handshake failed: {0}")]
    Handshake(#[source] WsError),
}

/// Read buffer per connection: small, so that idle connections stay cheap.
const READ_BUFFER: usize = 4096;

/// Reads the upgrade request from `stream` and answers it.
///
/// # Errors
///
/// [`UpgradeError::Refused`] after answering with an HTTP error, or
/// [`UpgradeError::Handshake`] when the request is not a WebSocket upgrade or the stream fails.
/// The caller bounds the time this may take.
pub async fn accept<S>(stream: S, config: &UpgradeConfig) -> Result<Upgraded<S>, UpgradeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut subprotocol = None;
    let mut forwarded_for = None;
    let mut refusal = None;
    // The callback's signature is tungstenite's: it answers with a whole HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        check(
            request,
            response,
            config,
            &mut subprotocol,
            &mut forwarded_for,
        )
        .map_err(|(status, reason)| {
            refusal = Some((status, reason.clone()));
            error_response(status, reason)
        })
    };
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Each write is one message, flushed by the caller: no extra buffering.
        .write_buffer_size(0)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)).await {
        Ok(ws) => Ok(Upgraded {
            stream: WsByteStream::new(ws),
            subprotocol,
            forwarded_for,
        }),
        Err(error) => Err(match refusal {
            Some((status, reason)) => UpgradeError::Refused { status, reason },
            None => UpgradeError::Handshake(error),
        }),
    }
}

fn error_response(status: StatusCode, reason: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason));
    *response.status_mut() = status;
    response
}

/// The checks, in the order a client would want to hear about them; fills in the chosen
/// subprotocol and the forwarded address.
fn check(
    request: &Request,
    mut response: Response,
    config: &UpgradeConfig,
    subprotocol: &mut Option<String>,
    forwarded_for: &mut Option<IpAddr>,
) -> Result<Response, (StatusCode, String)> {
    if request.uri().path() != config.path {
        return Err((StatusCode::NOT_FOUND, "Not Found".to_owned()));
    }
    if let Some(origins) = &config.check_origins {
        match request.headers().get(header::ORIGIN) {
            None if config.allow_origin_absence => {}
            None => return Err((StatusCode::FORBIDDEN, "Origin required".to_owned())),
            Some(origin) => {
                let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
                let allowed = origins
                    .iter()
                    .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
                if !allowed {
                    return Err((StatusCode::FORBIDDEN, "Origin not allowed".to_owned()));
                }
            }
        }
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim);
    let chosen = offered
        .into_iter()
        .find(|offer| config.subprotocols.iter().any(|s| s == offer));
    match chosen {
        Some(chosen) => {
            let value = HeaderValue::from_str(chosen)
                .map_err(|_| (StatusCode::BAD_REQUEST, "Bad subprotocol".to_owned()))?;
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
            *subprotocol = Some(chosen.to_owned());
        }
        None if config.fail_if_no_subprotocol => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "Sec-WebSocket-Protocol must offer one of: {}",
                    config.subprotocols.join(", ")
                ),
            ));
        }
        None => {}
    }
    if let Some(name) = &config.proxy_address_header {
        *forwarded_for = request
            .headers()
            .get(name.as_str())
            .and_then(|value| value.to_str().ok())
            .and_then(first_address);
    }
    Ok(response)
}

/// The first (client) address of an `X-Forwarded-For`-style list: `IP` or `IP:PORT`.
fn first_address(value: &str) -> Option<IpAddr> {
    let first = value.split(',').next()?.trim();
    first
        .parse::<IpAddr>()
        .ok()
        .or_else(|| first.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> UpgradeConfig {
        UpgradeConfig {
            path: "/mqtt".to_owned(),
            subprotocols: vec!["mqtt".into(), "mqttv3.1".into(), "mqttv5".into()],
            fail_if_no_subprotocol: true,
            check_origins: None,
            allow_origin_absence: true,
            proxy_address_header: None,
            max_message_size: 1024,
        }
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn run(
        config: &UpgradeConfig,
        request: &Request,
    ) -> Result<(Response, Option<String>, Option<IpAddr>), StatusCode> {
        let (mut sub, mut fwd) = (None, None);
        check(request, Response::new(()), config, &mut sub, &mut fwd)
            .map(|r| (r, sub, fwd))
            .map_err(|(status, _)| status)
    }

    #[test]
    fn only_the_configured_path_is_upgraded() {
        let offer = [("sec-websocket-protocol", "mqtt")];
        assert!(run(&config(), &request("/mqtt", &offer)).is_ok());
        assert!(run(&config(), &request("/mqtt?x=1", &offer)).is_ok());
        assert_eq!(
            run(&config(), &request("/other", &offer)).unwrap_err(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_clients_first_supported_subprotocol_is_chosen() {
        let cases = [
            ("mqtt", Some("mqtt")),
            ("mqttv5", Some("mqttv5")),
            ("wamp, mqttv3.1, mqtt", Some("mqttv3.1")),
        ];
        for (offer, expected) in cases {
            let (response, chosen, _) = run(
                &config(),
                &request("/mqtt", &[("sec-websocket-protocol", offer)]),
            )
            .unwrap();
            assert_eq!(chosen.as_deref(), expected, "{offer}");
            assert_eq!(
                response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
                expected.unwrap()
            );
        }
        assert_eq!(
            run(
                &config(),
                &request("/mqtt", &[("sec-websocket-protocol", "wamp")])
            )
            .unwrap_err(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            run(&config(), &request("/mqtt", &[])).unwrap_err(),
            StatusCode::BAD_REQUEST
        );
        let lenient = UpgradeConfig {
            fail_if_no_subprotocol: false,
            ..config()
        };
        let (response, chosen, _) = run(&lenient, &request("/mqtt", &[])).unwrap();
        assert_eq!(chosen, None);
        assert!(
            !response
                .headers()
                .contains_key(header::SEC_WEBSOCKET_PROTOCOL)
        );
    }

    #[test]
    fn origins_are_checked_when_asked() {
        let strict = UpgradeConfig {
            check_origins: Some(vec!["https://app.example.com".into()]),
            allow_origin_absence: false,
            ..config()
        };
        let with_origin = |origin: &str| {
            request(
                "/mqtt",
                &[("sec-websocket-protocol", "mqtt"), ("origin", origin)],
            )
        };
        assert!(run(&strict, &with_origin("https://app.example.com")).is_ok());
        assert!(run(&strict, &with_origin("https://APP.example.com/")).is_ok());
        assert_eq!(
            run(&strict, &with_origin("https://evil.example.com")).unwrap_err(),
            StatusCode::FORBIDDEN
        );
        let no_origin = request("/mqtt", &[("sec-websocket-protocol", "mqtt")]);
        assert_eq!(run(&strict, &no_origin).unwrap_err(), StatusCode::FORBIDDEN);
        let absent_ok = UpgradeConfig {
            allow_origin_absence: true,
            ..strict
        };
        assert!(run(&absent_ok, &no_origin).is_ok());
    }

    #[test]
    fn the_proxy_header_is_read_only_when_configured() {
        let forwarded = request(
            "/mqtt",
            &[
                ("sec-websocket-protocol", "mqtt"),
                ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
            ],
        );
        let (_, _, ip) = run(&config(), &forwarded).unwrap();
        assert_eq!(ip, None, "not trusted unless configured");
        let proxied = UpgradeConfig {
            proxy_address_header: Some("x-forwarded-for".into()),
            ..config()
        };
        let (_, _, ip) = run(&proxied, &forwarded).unwrap();
        assert_eq!(ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(
            first_address("[2001:db8::1]:4711"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(first_address("garbage"), None);
    }
}
