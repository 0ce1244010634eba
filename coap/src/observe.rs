//! [`Observations`]: the observations one CoAP client made on `ps/` topics (RFC 7641, server
//! side), with EMQX's sequence numbers and the reliability `notify_type` asks for.
//!
//! An observation is keyed by its MQTT topic filter, one token per filter, as in EMQX. Its
//! notifications carry Observe 1, 2, ... wrapping from 16777215 to 1. At most one CON
//! notification is in flight per observation; later ones wait in a small queue whose oldest
//! entry is dropped (and counted) when it is full. A CON notification that times out, or any
//! notification the client resets, ends the observation (RFC 7641 §4.5).

use std::{collections::VecDeque, time::Instant};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, Packet, ResponseType};

use crate::{
    block::uint,
    exchange::{Exchange, OutHandle},
};

/// The largest Observe sequence number EMQX sends before wrapping to 1.
pub const MAX_SEQ: u32 = 16_777_215;

/// The handles of NON notifications remembered per observation, so a RST to one of them can
/// be traced back.
const RECENT_HANDLES: usize = 8;

/// One observation.
#[derive(Debug)]
pub struct Observation {
    /// The MQTT topic filter (mountpoint included).
    pub filter: String,
    /// The CoAP path that was observed (for Block2 follow-ups).
    pub path: String,
    /// The client's token.
    pub token: Vec<u8>,
    seq: u32,
    inflight: Option<OutHandle>,
    recent: VecDeque<OutHandle>,
    pending: VecDeque<(Bytes, bool)>,
    dropped: u64,
}

impl Observation {
    /// The last sequence number sent (0: none yet).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Notifications dropped because the pending queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = if self.seq >= MAX_SEQ { 1 } else { self.seq + 1 };
        self.seq
    }

    fn owns(&self, handle: OutHandle) -> bool {
        self.inflight == Some(handle) || self.recent.contains(&handle)
    }
}

/// Why an observation could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The client already has the most observations allowed.
    #[error("too many observations")]
    Full,
}

/// The observations of one client. Call order: [`Observations::register`] when the client
/// observes; [`Observations::notify`] for each message; [`Observations::handle_acked`] and
/// [`Observations::handle_failed`] with the exchange's events.
#[derive(Debug)]
pub struct Observations {
    list: Vec<Observation>,
    max: usize,
    max_pending: usize,
}

impl Observations {
    /// At most `max` observations, each with at most `max_pending` queued notifications.
    pub fn new(max: usize, max_pending: usize) -> Self {
        Self {
            list: Vec::new(),
            max,
            max_pending: max_pending.max(1),
        }
    }

    /// Registers (or re-registers with a new token) the observation of `filter`.
    pub fn register(&mut self, filter: &str, path: &str, token: &[u8]) -> Result<(), ObserveError> {
        if let Some(existing) = self.list.iter_mut().find(|o| o.filter == filter) {
            existing.token = token.to_vec();
            existing.path = path.to_owned();
            return Ok(());
        }
        if self.list.len() >= self.max {
            return Err(ObserveError::Full);
        }
        self.list.push(Observation {
            filter: filter.to_owned(),
            path: path.to_owned(),
            token: token.to_vec(),
            seq: 0,
            inflight: None,
            recent: VecDeque::new(),
            pending: VecDeque::new(),
            dropped: 0,
        });
        Ok(())
    }

    /// Removes the observation of `filter`, stopping its notification in flight.
    pub fn deregister(&mut self, exchange: &mut Exchange, filter: &str) -> Option<Observation> {
        let index = self.list.iter().position(|o| o.filter == filter)?;
        let observation = self.list.swap_remove(index);
        if let Some(handle) = observation.inflight {
            exchange.cancel(handle);
        }
        Some(observation)
    }

    /// The observation of `filter`.
    pub fn get(&self, filter: &str) -> Option<&Observation> {
        self.list.iter().find(|o| o.filter == filter)
    }

    /// How many observations there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The filters observed.
    pub fn filters(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|o| o.filter.as_str())
    }

    /// Sends `payload` as a notification of the observation of `filter` (CON when
    /// `confirmable`), or queues it behind the CON notification in flight.
    pub fn notify(
        &mut self,
        now: Instant,
        exchange: &mut Exchange,
        filter: &str,
        payload: Bytes,
        confirmable: bool,
    ) {
        let max_pending = self.max_pending;
        let Some(observation) = self.list.iter_mut().find(|o| o.filter == filter) else {
            return;
        };
        if observation.inflight.is_some() {
            if observation.pending.len() >= max_pending {
                observation.pending.pop_front();
                observation.dropped += 1;
                tracing::debug!(peer = %exchange.peer(), filter, "notification queue full: oldest dropped");
            }
            observation.pending.push_back((payload, confirmable));
            return;
        }
        send(now, exchange, observation, payload, confirmable);
    }

    /// The exchange reported `handle` acknowledged: the next queued notification, if any, goes.
    pub fn handle_acked(&mut self, now: Instant, exchange: &mut Exchange, handle: OutHandle) {
        let Some(observation) = self.list.iter_mut().find(|o| o.inflight == Some(handle)) else {
            return;
        };
        observation.inflight = None;
        while observation.inflight.is_none() {
            let Some((payload, confirmable)) = observation.pending.pop_front() else {
                break;
            };
            send(now, exchange, observation, payload, confirmable);
        }
    }

    /// The exchange reported `handle` timed out or reset: its observation ends. Returns it.
    pub fn handle_failed(
        &mut self,
        exchange: &mut Exchange,
        handle: OutHandle,
    ) -> Option<Observation> {
        let index = self.list.iter().position(|o| o.owns(handle))?;
        let observation = self.list.swap_remove(index);
        if let Some(inflight) = observation.inflight.filter(|h| *h != handle) {
            exchange.cancel(inflight);
        }
        Some(observation)
    }
}

fn send(
    now: Instant,
    exchange: &mut Exchange,
    observation: &mut Observation,
    payload: Bytes,
    confirmable: bool,
) {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Response(ResponseType::Content);
    packet.set_token(observation.token.clone());
    packet.add_option(CoapOption::Observe, uint(observation.next_seq()));
    packet.payload = payload.to_vec();
    let tracked = confirmable || !exchange.is_verified();
    match exchange.notify(now, packet, confirmable, &observation.path) {
        Ok(handle) if tracked => observation.inflight = Some(handle),
        Ok(handle) => {
            if observation.recent.len() >= RECENT_HANDLES {
                observation.recent.pop_front();
            }
            observation.recent.push_back(handle);
        }
        Err(error) => {
            observation.dropped += 1;
            tracing::debug!(peer = %exchange.peer(), filter = observation.filter, %error, "notification dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

    use std::time::Duration;

    use coap_lite::MessageType;

    use super::*;
    use crate::{block::read_uint, exchange::ExchangeConfig};

    fn setup() -> (Instant, Exchange, Observations) {
        let now = Instant::now();
        let ex = Exchange::new("127.0.0.1:9".parse().unwrap(), ExchangeConfig::default(), 3);
        (now, ex, Observations::new(4, 2))
    }

    fn sent(ex: &mut Exchange) -> Vec<Packet> {
        std::iter::from_fn(|| ex.poll_transmit())
            .map(|b| Packet::from_bytes(&b).unwrap())
            .collect()
    }

    fn ack(mid: u16) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Acknowledgement);
        p.header.code = MessageClass::Empty;
        p.header.message_id = mid;
        p.to_bytes_unlimited().unwrap()
    }

    fn seq(p: &Packet) -> u32 {
        read_uint(p.get_first_option(CoapOption::Observe).unwrap()).unwrap()
    }

    #[test]
    fn sequence_increases_and_wraps_like_emqx() {
        let (now, mut ex, mut obs) = setup();
        obs.register("t", "ps/t", b"tok").unwrap();
        obs.list[0].seq = MAX_SEQ - 1;
        for expected in [MAX_SEQ, 1, 2] {
            obs.notify(now, &mut ex, "t", Bytes::from_static(b"x"), true);
            let note = sent(&mut ex).remove(0);
            assert_eq!(seq(&note), expected);
            assert_eq!(note.get_token(), b"tok");
            ex.handle_datagram(now, &ack(note.header.message_id));
            while let Some(event) = ex.poll_event() {
                if let crate::Event::Acked { handle } = event {
                    obs.handle_acked(now, &mut ex, handle);
                }
            }
        }
    }

    #[test]
    fn one_con_in_flight_a_bounded_queue_and_cancel_on_timeout() {
        let (now, mut ex, mut obs) = setup();
        obs.register("t", "ps/t", b"tok").unwrap();
        for i in 0..4u8 {
            obs.notify(now, &mut ex, "t", Bytes::from(vec![i]), true);
        }
        let first = sent(&mut ex);
        assert_eq!(first.len(), 1, "one CON notification in flight");
        assert_eq!(
            obs.get("t").unwrap().dropped(),
            1,
            "queue of 2: the oldest of 3 dropped"
        );
        ex.handle_datagram(now, &ack(first[0].header.message_id));
        let crate::Event::Acked { handle } = ex.poll_event().unwrap() else {
            panic!()
        };
        obs.handle_acked(now, &mut ex, handle);
        let second = sent(&mut ex);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].payload, vec![2], "payload 1 was dropped");
        // Never acknowledged: after MAX_RETRANSMIT the observation ends.
        let mut at = now;
        let handle = loop {
            at += Duration::from_secs(100);
            ex.handle_timeout(at);
            let _ = sent(&mut ex);
            if let Some(crate::Event::TimedOut { handle }) = ex.poll_event() {
                break handle;
            }
        };
        let gone = obs.handle_failed(&mut ex, handle).unwrap();
        assert_eq!(gone.filter, "t");
        assert!(obs.is_empty());
    }

    #[test]
    fn observations_are_capped_per_client() {
        let (_, mut ex, mut obs) = setup();
        for i in 0..4 {
            obs.register(&format!("t/{i}"), "p", b"k").unwrap();
        }
        assert_eq!(obs.register("t/9", "p", b"k"), Err(ObserveError::Full));
        obs.register("t/0", "p", b"new").unwrap();
        assert_eq!(obs.get("t/0").unwrap().token, b"new");
        assert!(obs.deregister(&mut ex, "t/1").is_some());
        obs.register("t/9", "p", b"k").unwrap();
    }
}
