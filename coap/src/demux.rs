//! One UDP socket, a task per peer: the receive loop both gateways (CoAP, and LwM2M on top of
//! it) run, so a peer's exchange, session and virtual client have a single owner.
//!
//! The loop reads a datagram, hands it to its peer's task through a small bounded queue (a
//! full queue drops it: the peer retransmits what is confirmable), and starts a task for a
//! new peer while fewer than `max_peers` are served. A peer whose task has ended (it logged
//! out, expired, de-registered) gets a new one on its next datagram. The helpers at the end
//! are what every peer task needs: the clock, its virtual client's wake-up, and sending what
//! its exchange has queued.

use std::{collections::HashMap, net::SocketAddr, time::Instant};

use tokio::{net::UdpSocket, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tributary_protocols::{VirtualClient, Wake};

use crate::{exchange::Exchange, rng::Rng};

/// The largest UDP datagram read.
pub const MAX_DATAGRAM: usize = 65_535;

/// Datagrams queued for one peer's task; more are dropped.
pub const PEER_QUEUE: usize = 32;

/// A new peer: its address, its datagram queue (the first datagram already in it), and a
/// seed for its tokens and message ids, different for every peer.
#[derive(Debug)]
pub struct NewPeer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Its datagrams, in order of arrival.
    pub datagrams: mpsc::Receiver<Vec<u8>>,
    /// A seed for the peer's random numbers.
    pub seed: u64,
}

/// Receives on `socket` until `shutdown`, calling `start` for every new peer (at most
/// `max_peers` at once; datagrams from more are dropped). `protocol` names the gateway in the
/// log lines. Returns when `shutdown` is cancelled; the caller then waits for its peer tasks.
pub async fn run(
    socket: &UdpSocket,
    shutdown: &CancellationToken,
    max_peers: usize,
    protocol: &'static str,
    mut start: impl FnMut(NewPeer),
) {
    let mut seeds = Rng::new(seed_of(socket));
    let mut peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; the socket
                    // itself is fine.
                    tracing::debug!(%error, protocol, "recv error");
                    continue;
                }
            },
        };
        let datagram = buf[..len].to_vec();
        let datagram = match peers.get(&peer) {
            Some(sender) => match sender.try_send(datagram) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(%peer, protocol, "peer queue full, datagram dropped");
                    continue;
                }
                // The peer's task ended: a new one takes over.
                Err(mpsc::error::TrySendError::Closed(datagram)) => {
                    peers.remove(&peer);
                    datagram
                }
            },
            None => datagram,
        };
        if peers.len() >= max_peers {
            peers.retain(|_, sender| !sender.is_closed());
            if peers.len() >= max_peers {
                tracing::warn!(%peer, protocol, max = max_peers, "too many peers, datagram dropped");
                continue;
            }
        }
        let (sender, datagrams) = mpsc::channel(PEER_QUEUE);
        if sender.try_send(datagram).is_err() {
            continue;
        }
        peers.insert(peer, sender);
        start(NewPeer {
            addr: peer,
            datagrams,
            seed: seeds.next_u64(),
        });
    }
}

/// The time for the sans-IO layers: tokio's clock, so tests can pause it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Waits for the peer's virtual client to wake up (deliveries, or a takeover); forever while
/// the peer has none.
pub async fn wait_client(client: &mut Option<VirtualClient>) -> Wake {
    match client {
        Some(client) => client.wait().await,
        None => std::future::pending().await,
    }
}

/// Sends `peer` every datagram its exchange has queued; a failed send is logged (the
/// exchange retransmits what is confirmable).
pub async fn flush(
    exchange: &mut Exchange,
    socket: &UdpSocket,
    peer: SocketAddr,
    protocol: &'static str,
) {
    while let Some(datagram) = exchange.poll_transmit() {
        if let Err(error) = socket.send_to(&datagram, peer).await {
            tracing::debug!(%peer, protocol, %error, "send failed");
        }
    }
}

/// A seed that differs between processes, gateways and sockets: std's hasher keys are random
/// per process and per `RandomState`.
fn seed_of(socket: &UdpSocket) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u16(socket.local_addr().map_or(0, |a| a.port()));
    hasher.finish()
}
