//! What each kind of client does once connected: hold (conn), publish (pub), receive (sub).
//!
//! Each client is one tokio task running one `select!` loop over its socket, its send pace and
//! its stop signal, so a client reads its acknowledgements and deliveries while it writes.
//! Counters are kept locally for one batch and added to the shared [`Stats`] once per batch.

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tributary_mqtt_core::{Packet, PacketId, QoS};

use super::{
    client::{Client, ClientError, PublishTemplate, timestamp},
    stats::Stats,
};

/// Most PUBLISH packets a flat-out publisher puts into one write.
const BATCH: u64 = 64;

/// How long past its deadline a publisher may wait for the broker to take a write: a broker
/// that stops reading must not keep the run going.
const WRITE_GRACE: Duration = Duration::from_secs(1);

/// The run's clock: nanoseconds since one (tokio) `Instant`, shared by every task of the process, so
/// a subscriber can subtract a publisher's timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    /// Starts the clock now.
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds since the start.
    pub(crate) fn now_ns(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the start.
    pub(crate) fn at(self, nanos: u64) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// A PINGREQ timer for the keep alive (never fires when it is 0).
fn ping_timer(keep_alive: u16) -> Interval {
    let period = if keep_alive == 0 {
        Duration::from_secs(u32::MAX.into())
    } else {
        Duration::from_secs(keep_alive.into())
    };
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

/// Holds a connection open, answering nothing but keeping it alive, until `stop`.
pub(crate) async fn hold(
    mut client: Client,
    keep_alive: u16,
    stop: CancellationToken,
) -> Result<(), ClientError> {
    let mut ping = ping_timer(keep_alive);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = client.read() => {
                read?;
                while let Some(packet) = client.buffered()? {
                    if let Packet::Disconnect(_) = packet {
                        return Err(ClientError::Closed);
                    }
                }
            }
            _ = ping.tick() => {
                client.queue(&Packet::PingReq)?;
                client.flush().await?;
            }
        }
    }
    client.close().await;
    Ok(())
}

/// How one publisher publishes.
#[derive(Debug, Clone)]
pub(crate) struct PublishPlan {
    /// The encoded message.
    pub(crate) template: Arc<PublishTemplate>,
    /// QoS of the messages.
    pub(crate) qos: QoS,
    /// Pause between messages; zero: as fast as the broker takes them.
    pub(crate) interval: Duration,
    /// Messages this publisher sends at most.
    pub(crate) limit: u64,
    /// QoS 1 messages awaiting PUBACK at most.
    pub(crate) inflight: u64,
    /// When publishing stops.
    pub(crate) deadline: Instant,
    /// Keep alive in seconds.
    pub(crate) keep_alive: u16,
}

/// Waits for the next send slot: a tick when paced, at once when flat out.
async fn next_slot(pace: &mut Option<Interval>) {
    if let Some(pace) = pace {
        pace.tick().await;
    }
}

/// Publishes until the plan's limit or deadline; returns the number of PUBLISH packets sent.
pub(crate) async fn publish(
    mut client: Client,
    plan: PublishPlan,
    stats: Arc<Stats>,
    clock: Clock,
) -> (u64, Result<(), ClientError>) {
    let mut sent = 0;
    let result = publish_loop(&mut client, &plan, &stats, clock, &mut sent).await;
    if result.is_ok() {
        client.close().await;
    }
    (sent, result)
}

async fn publish_loop(
    client: &mut Client,
    plan: &PublishPlan,
    stats: &Stats,
    clock: Clock,
    sent: &mut u64,
) -> Result<(), ClientError> {
    let deadline = tokio::time::sleep_until(plan.deadline);
    tokio::pin!(deadline);
    let mut pace = (!plan.interval.is_zero()).then(|| {
        let mut pace = tokio::time::interval(plan.interval);
        // A late tick sends the missed messages at once, so the offered rate holds.
        pace.set_missed_tick_behavior(MissedTickBehavior::Burst);
        pace
    });
    let mut ping = ping_timer(plan.keep_alive);
    let acked = plan.qos != QoS::AtMostOnce;
    let mut inflight = 0;
    let mut packet_id = PacketId::FIRST;
    loop {
        if *sent >= plan.limit && inflight == 0 {
            return Ok(());
        }
        let room = if acked {
            plan.inflight.saturating_sub(inflight)
        } else {
            u64::MAX
        };
        let can_send = *sent < plan.limit && room > 0;
        tokio::select! {
            biased;
            () = &mut deadline => return Ok(()),
            read = client.read() => {
                read?;
                let mut acks = 0;
                while let Some(packet) = client.buffered()? {
                    match packet {
                        Packet::PubAck(_) => acks += 1,
                        Packet::Disconnect(_) => return Err(ClientError::Closed),
                        _ => {}
                    }
                }
                inflight = inflight.saturating_sub(acks);
                Stats::add(&stats.acked, acks);
            }
            () = next_slot(&mut pace), if can_send => {
                let n = if pace.is_some() { 1 } else { BATCH };
                let n = n.min(plan.limit - *sent).min(room);
                let now = clock.now_ns();
                for _ in 0..n {
                    plan.template.push(&mut client.wbuf, packet_id, now);
                    packet_id = packet_id.next();
                }
                tokio::time::timeout_at(plan.deadline + WRITE_GRACE, client.flush())
                    .await
                    .map_err(|_| ClientError::Timeout("the broker to read"))??;
                *sent += n;
                if acked {
                    inflight += n;
                }
                Stats::add(&stats.published, n);
                Stats::mark(&stats.last_publish_ns, clock.now_ns());
            }
            _ = ping.tick() => {
                client.queue(&Packet::PingReq)?;
                client.flush().await?;
            }
        }
    }
}

/// Receives until `stop`: counts deliveries, measures their latency from the payload's
/// timestamp when `latency` (the publishers share this process's clock), acknowledges QoS 1.
pub(crate) async fn receive(
    mut client: Client,
    keep_alive: u16,
    latency: bool,
    stats: Arc<Stats>,
    clock: Clock,
    stop: CancellationToken,
) -> Result<(), ClientError> {
    let mut ping = ping_timer(keep_alive);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = client.read() => {
                read?;
                // One clock read per batch: the packets of one read arrived together.
                let now = clock.now_ns();
                let mut count = 0;
                while let Some(packet) = client.buffered()? {
                    match packet {
                        Packet::Publish(publish) => {
                            count += 1;
                            if latency && let Some(sent) = timestamp(&publish.payload) {
                                stats.latency.record(now.saturating_sub(sent));
                            }
                            if let Some(id) = publish.packet_id {
                                client.queue_puback(id)?;
                            }
                        }
                        Packet::Disconnect(_) => return Err(ClientError::Closed),
                        _ => {}
                    }
                }
                client.flush().await?;
                if count > 0 {
                    Stats::add(&stats.delivered, count);
                    Stats::mark(&stats.last_delivery_ns, now);
                }
            }
            _ = ping.tick() => {
                client.queue(&Packet::PingReq)?;
                client.flush().await?;
            }
        }
    }
    client.close().await;
    Ok(())
}
