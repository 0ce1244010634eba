//! Graceful shutdown: v5 clients get DISCONNECT 0x8B, 3.1.1 clients a close, and the listener
//! stops accepting.

mod common;

use common::{
    raw::{Raw, connect_v5},
    *,
};
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use tributary_tests::start_gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_v5_clients_0x8b_and_closes_v4_clients() {
    let gw = start_gateway().await;
    let addr = gw.addr;
    let mut c5 = V5::connect(v5_options(&gw, "v5")).await;
    let mut c4 = V4::connect(v4_options(&gw, "v4")).await;
    let (mut raw, _) = Raw::handshake(addr, &connect_v5("raw5", 30, &[])).await;

    tokio::time::timeout(WAIT, gw.shutdown())
        .await
        .expect("shutdown finishes");

    assert_eq!(
        c5.server_disconnect().await,
        DisconnectReasonCode::ServerShuttingDown
    );
    let _ = c4.events.take_error().await;
    let seen = raw.until_closed().await;
    // Exactly one DISCONNECT 0x8B (a Reason String property may follow the code).
    assert_eq!(
        seen.iter()
            .map(|p| (p.first, p.body.first().copied()))
            .collect::<Vec<_>>(),
        [(0xe0, Some(0x8b))],
        "{seen:?}"
    );
    // Nothing listens any more.
    let refused = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect attempt is answered");
    assert!(refused.is_err(), "the listener is closed");
}
