//! The HTTP API on `dashboard.listeners.http` (axum), with EMQX 5's paths and shapes:
//!
//! - `GET /api/v5/prometheus/stats`: every metric, Prometheus text format; no authentication
//!   unless `prometheus.enable_basic_auth` (EMQX's default is `false`), so a Prometheus server
//!   scrapes it as it scrapes EMQX.
//! - `GET /api/v5/clients?page=&limit=&protocol=&username=&ip_address=&like_clientid=`: the
//!   connected clients, paged (`{"data": [...], "meta": {"page", "limit", "count", "hasnext"}}`).
//! - `GET /api/v5/clients/{clientid}`: one client, or 404 `{"code": "CLIENTID_NOT_FOUND"}`.
//!
//! The client endpoints require HTTP Basic authentication with `dashboard.default_username`
//! and `dashboard.default_password` (401 otherwise).

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tributary_mqtt_core::ByteStr;
use tributary_protocols::{Broker, ClientInfo, Protocol};

use crate::{StartError, metrics::Metrics};

/// The page size when the request names none, and the largest one allowed (EMQX's).
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// What the handlers share.
pub(crate) struct ApiState {
    pub(crate) broker: Broker,
    pub(crate) metrics: Arc<Metrics>,
    /// This node's name, as EMQX's `node` field of a client.
    pub(crate) node: String,
    /// The `Authorization` header value that opens the management endpoints.
    pub(crate) expected_auth: String,
    /// `prometheus.enable_basic_auth`: the metrics need it too.
    pub(crate) metrics_auth: bool,
}

impl ApiState {
    /// `username` and `password` as the `Basic ...` header value a client sends.
    pub(crate) fn basic_auth(username: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64(format!("{username}:{password}").as_bytes())
        )
    }
}

/// Binds the API's listener and serves it until `stop` is cancelled; returns the bound
/// address.
pub(crate) async fn start(
    bind: SocketAddr,
    state: ApiState,
    stop: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<SocketAddr, StartError> {
    let bind_error = |source| StartError::HttpBind { addr: bind, source };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let app = router(Arc::new(state));
    let stop = stop.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "HTTP API stopped");
        }
    });
    Ok(addr)
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v5/prometheus/stats", get(prometheus_stats))
        .route("/api/v5/clients", get(clients))
        .route("/api/v5/clients/{clientid}", get(client))
        .with_state(state)
}

/// An error in EMQX's shape: `{"code": "...", "message": "..."}`.
fn error(status: StatusCode, code: &'static str, message: String) -> Response {
    #[derive(Serialize)]
    struct Body {
        code: &'static str,
        message: String,
    }
    (status, Json(Body { code, message })).into_response()
}

/// Whether the request carries the configured credentials.
fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let expected = state.expected_auth.as_bytes();
    // The scheme is case-insensitive; the credentials are compared in constant time.
    given.len() == expected.len()
        && given[..6].eq_ignore_ascii_case(&expected[..6])
        && given[6..]
            .iter()
            .zip(&expected[6..])
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// 401, with the challenge that makes browsers and curl ask for credentials.
fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "BAD_USERNAME_OR_PWD",
        "HTTP Basic authentication with dashboard.default_username and \
         dashboard.default_password required"
            .to_owned(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tributary\""),
    );
    response
}

async fn prometheus_stats(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if state.metrics_auth && !authorized(&state, &headers) {
        return unauthorized();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The query of `GET /api/v5/clients`.
#[derive(Debug, Deserialize)]
struct ClientsQuery {
    page: Option<usize>,
    limit: Option<usize>,
    /// `mqtt`, `coap` or `lwm2m`.
    protocol: Option<String>,
    username: Option<String>,
    ip_address: Option<String>,
    like_clientid: Option<String>,
}

/// A client in EMQX's shape, with the fields Tributary can fill truthfully.
#[derive(Debug, Serialize)]
struct ClientView<'a> {
    node: &'a str,
    clientid: &'a str,
    username: Option<&'a str>,
    ip_address: String,
    port: u16,
    listener: &'a str,
    /// Tributary's protocol name: `mqtt`, `coap` or `lwm2m`.
    protocol: &'static str,
    /// EMQX's name for it: `MQTT`, `CoAP`, `LwM2M`.
    proto_name: &'static str,
    transport: &'static str,
    connected: bool,
}

impl<'a> ClientView<'a> {
    fn new(node: &'a str, client_id: &'a str, client: &'a ClientInfo) -> Self {
        Self {
            node,
            clientid: client_id,
            username: client.username.as_deref(),
            ip_address: client.peer.ip().to_string(),
            port: client.peer.port(),
            listener: &client.listener,
            protocol: client.protocol.as_str(),
            proto_name: match client.protocol {
                Protocol::Mqtt => "MQTT",
                Protocol::Coap => "CoAP",
                Protocol::Lwm2m => "LwM2M",
            },
            transport: client.transport.as_str(),
            connected: true,
        }
    }
}

async fn clients(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<ClientsQuery>, QueryRejection>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                rejection.body_text(),
            );
        }
    };
    let page = query.page.unwrap_or(1);
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if page == 0 || !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("expected page >= 1 and limit between 1 and {MAX_LIMIT}"),
        );
    }
    let mut matching: Vec<(ByteStr, Arc<ClientInfo>)> = state
        .broker
        .clients()
        .into_iter()
        .filter(|(_, c)| {
            query
                .protocol
                .as_deref()
                .is_none_or(|p| c.protocol.as_str() == p)
        })
        .filter(|(_, c)| {
            query
                .username
                .as_deref()
                .is_none_or(|u| c.username.as_deref() == Some(u))
        })
        .filter(|(_, c)| {
            query
                .ip_address
                .as_deref()
                .is_none_or(|ip| c.peer.ip().to_string() == ip)
        })
        .filter(|(client_id, _)| {
            query
                .like_clientid
                .as_deref()
                .is_none_or(|part| client_id.contains(part))
        })
        .collect();
    // A stable order, so that pages do not overlap while the set is unchanged.
    matching.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    let count = matching.len();
    let start = (page - 1).saturating_mul(limit).min(count);
    let end = start.saturating_add(limit).min(count);
    let data: Vec<ClientView<'_>> = matching[start..end]
        .iter()
        .map(|(client_id, c)| ClientView::new(&state.node, client_id, c))
        .collect();
    Json(serde_json::json!({
        "data": data,
        "meta": {"page": page, "limit": limit, "count": count, "hasnext": end < count},
    }))
    .into_response()
}

async fn client(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(clientid): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    match state.broker.client(&clientid) {
        Some(client) => Json(ClientView::new(&state.node, &clientid, &client)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "CLIENTID_NOT_FOUND",
            "Client ID not found".to_owned(),
        ),
    }
}

/// Standard base64 with padding (RFC 4648), for the expected `Authorization` value; a few
/// lines here rather than a crate for one string made at start.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(
            ApiState::basic_auth("admin", "public"),
            "Basic YWRtaW46cHVibGlj"
        );
    }

    #[test]
    fn authorization_needs_the_exact_credentials() {
        let state = ApiState {
            broker: Broker::with_defaults(),
            metrics: Arc::new(Metrics::new(Broker::with_defaults(), Vec::new())),
            node: "n".to_owned(),
            expected_auth: ApiState::basic_auth("admin", "public"),
            metrics_auth: false,
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            authorized(&state, &headers)
        };
        assert!(with("Basic YWRtaW46cHVibGlj"));
        assert!(
            with("basic YWRtaW46cHVibGlj"),
            "the scheme is case-insensitive"
        );
        assert!(!with("Basic YWRtaW46cHVibGlk"));
        assert!(!with("Basic YWRtaW46cHVibGljeA=="));
        assert!(!with("Bearer YWRtaW46cHVibGlj"));
        assert!(!with(""));
        assert!(!authorized(&state, &HeaderMap::new()));
        let refused = unauthorized();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
