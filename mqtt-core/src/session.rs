//! [`Session`]: the state of an MQTT session that outlives its connection.
//!
//! Call order: a connection sends a QoS > 0 delivery from the session's queue (only while
//! [`Session::has_window`]) with a packet id from [`Session::take_packet_id`], and records it
//! with [`Session::sent`]; it feeds the session the acks it receives with `handle_*`, inbound
//! QoS 2 publishes with [`Session::handle_incoming_qos2`] / [`Session::handle_pubrel`], and
//! time with [`Session::expire_awaiting_rel`]. On reconnect, [`Session::resume`] yields what
//! must be sent again (unacknowledged publishes with DUP, pending PUBRELs), in order.
//!
//! The session does not own the queue of deliveries waiting for it: that queue is shared with
//! publishers (they push into it from their own tasks), so it lives in the broker's mailbox.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use crate::{ByteStr, PacketId, QoS, message::Delivery, packet::SubscriptionOptions};

/// One subscription of the session, as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscription {
    /// Options (granted QoS, No Local, Retain As Published, Retain Handling).
    pub options: SubscriptionOptions,
    /// Subscription identifier (v5), if any.
    pub subscription_id: Option<u32>,
}

/// Where an outbound QoS > 0 message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outbound {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(Delivery),
    /// PUBREC received and PUBREL sent; waiting for PUBCOMP.
    Release,
}

/// Result of an inbound QoS 2 PUBLISH, for [`Session::handle_incoming_qos2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum IncomingQos2 {
    /// A new packet id: route the message, then answer PUBREC.
    New,
    /// The packet id is already awaiting PUBREL: a retransmission. Answer PUBREC again, do not
    /// route it a second time (exactly once).
    Duplicate,
    /// `max_awaiting_rel` ids are already waiting: refuse it (v5 PUBREC 0x93).
    Full,
}

/// Result of an acknowledgement from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum AckOutcome {
    /// The packet id was waiting for this ack: its slot in the window is free (PUBACK,
    /// PUBCOMP) or it moved on (PUBREC: send the PUBREL).
    Known,
    /// No message was waiting for this ack with this packet id; v5 answers PUBREL with
    /// 0x92, other acks are ignored (spec 4.3).
    Unknown,
}

/// The state of a session.
#[derive(Debug)]
pub struct Session {
    /// Ordered, so that listings come out sorted; looked up only on (un)subscribe.
    subscriptions: BTreeMap<ByteStr, SessionSubscription>,
    /// In send order, with when each was (last) sent, for `retry_interval`.
    inflight: VecDeque<(PacketId, Outbound, Instant)>,
    next_packet_id: PacketId,
    /// The window: the lower of `max_inflight` and the client's Receive Maximum (both u16).
    window: u16,
    /// Made on the first inbound QoS 2 message: most sessions never see one.
    #[allow(
        clippy::box_collection,
        reason = "boxed so that a session without QoS 2 carries a pointer, not an empty map"
    )]
    awaiting_rel: Option<Box<HashMap<PacketId, Instant>>>,
    /// The limits on inbound QoS 2, compact: every session carries them.
    max_awaiting_rel: u32,
    /// In milliseconds (`await_rel_timeout` is minutes, 49 days at most here).
    await_rel_timeout_ms: u32,
}

impl Session {
    /// A new, empty session.
    pub fn new(max_awaiting_rel: usize, await_rel_timeout: Duration) -> Self {
        Self {
            subscriptions: BTreeMap::new(),
            inflight: VecDeque::new(),
            next_packet_id: PacketId::FIRST,
            window: 32,
            awaiting_rel: None,
            max_awaiting_rel: u32::try_from(max_awaiting_rel).unwrap_or(u32::MAX),
            await_rel_timeout_ms: u32::try_from(await_rel_timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Sets the outbound window for the connection now attached (the lower of `max_inflight`
    /// and the client's Receive Maximum; at least 1).
    pub fn set_window(&mut self, window: usize) {
        self.window = u16::try_from(window).unwrap_or(u16::MAX).max(1);
    }

    /// Whether a QoS > 0 message may be sent now.
    pub fn has_window(&self) -> bool {
        self.inflight.len() < usize::from(self.window)
    }

    /// Number of QoS > 0 messages sent and not yet fully acknowledged.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// The subscriptions, keyed by the filter as the client sent it (with any `$share/` prefix).
    pub fn subscriptions(&self) -> &BTreeMap<ByteStr, SessionSubscription> {
        &self.subscriptions
    }

    /// Records a subscription; returns the previous one on the same filter.
    pub fn add_subscription(
        &mut self,
        filter: ByteStr,
        subscription: SessionSubscription,
    ) -> Option<SessionSubscription> {
        self.subscriptions.insert(filter, subscription)
    }

    /// Forgets a subscription; returns it if it existed.
    pub fn remove_subscription(&mut self, filter: &str) -> Option<SessionSubscription> {
        self.subscriptions.remove(filter)
    }

    /// Takes the packet id for a QoS > 0 delivery about to be sent; once it is written,
    /// [`Session::sent`] takes the window slot. The caller checks [`Session::has_window`] first.
    pub fn take_packet_id(&mut self) -> PacketId {
        // The window is at most 65535 wide, so a free id always exists; the scan is short
        // because acks usually arrive in order and ids advance monotonically.
        let mut id = self.next_packet_id;
        for _ in 0..u16::MAX {
            if !self.inflight.iter().any(|(used, ..)| *used == id) {
                break;
            }
            id = id.next();
        }
        self.next_packet_id = id.next();
        id
    }

    /// Records a QoS > 0 delivery sent with `id` as in flight until the client acknowledges
    /// it: it takes a window slot, and is sent again on resume or `retry_interval`.
    pub fn sent(&mut self, now: Instant, id: PacketId, delivery: Delivery) {
        self.inflight
            .push_back((id, Outbound::Publish(delivery), now));
    }

    /// PUBACK from the client.
    pub fn handle_puback(&mut self, id: PacketId) -> AckOutcome {
        self.remove_inflight(
            id,
            |o| matches!(o, Outbound::Publish(d) if d.qos == QoS::AtLeastOnce),
        )
    }

    /// PUBREC from the client: the message moves to "waiting for PUBCOMP"; send PUBREL.
    /// A PUBREC for an id already released is answered with PUBREL again (idempotent).
    pub fn handle_pubrec(&mut self, id: PacketId) -> AckOutcome {
        match self.inflight.iter_mut().find(|(used, ..)| *used == id) {
            Some((_, state @ Outbound::Publish(_), _)) if is_qos2(state) => {
                *state = Outbound::Release;
                AckOutcome::Known
            }
            Some((_, Outbound::Release, _)) => AckOutcome::Known,
            _ => AckOutcome::Unknown,
        }
    }

    /// PUBREC with an error reason code (v5): the receiver refused the message, so the
    /// exchange ends here and the slot is freed.
    pub fn handle_pubrec_error(&mut self, id: PacketId) -> AckOutcome {
        self.remove_inflight(id, is_qos2)
    }

    /// PUBCOMP from the client.
    pub fn handle_pubcomp(&mut self, id: PacketId) -> AckOutcome {
        self.remove_inflight(id, |o| matches!(o, Outbound::Release))
    }

    fn remove_inflight(
        &mut self,
        id: PacketId,
        expected: impl Fn(&Outbound) -> bool,
    ) -> AckOutcome {
        match self
            .inflight
            .iter()
            .position(|(used, state, _)| *used == id && expected(state))
        {
            Some(index) => {
                self.inflight.remove(index);
                AckOutcome::Known
            }
            None => AckOutcome::Unknown,
        }
    }

    /// An inbound QoS 2 PUBLISH with packet id `id`.
    pub fn handle_incoming_qos2(&mut self, now: Instant, id: PacketId) -> IncomingQos2 {
        if self.is_awaiting_rel(id) {
            return IncomingQos2::Duplicate;
        }
        if self.awaiting_rel_len() >= self.max_awaiting_rel as usize {
            return IncomingQos2::Full;
        }
        self.awaiting_rel.get_or_insert_default().insert(id, now);
        IncomingQos2::New
    }

    /// PUBREL from the client: the exchange for `id` is over. Answer PUBCOMP either way
    /// (with 0x92 in v5 when the id was unknown).
    pub fn handle_pubrel(&mut self, id: PacketId) -> AckOutcome {
        match self.awaiting_rel.as_mut().and_then(|ids| ids.remove(&id)) {
            Some(_) => AckOutcome::Known,
            None => AckOutcome::Unknown,
        }
    }

    /// Whether the inbound QoS 2 packet id `id` is waiting for PUBREL.
    pub fn is_awaiting_rel(&self, id: PacketId) -> bool {
        self.awaiting_rel
            .as_ref()
            .is_some_and(|ids| ids.contains_key(&id))
    }

    /// Number of inbound QoS 2 packet ids waiting for PUBREL.
    pub fn awaiting_rel_len(&self) -> usize {
        self.awaiting_rel.as_ref().map_or(0, |ids| ids.len())
    }

    /// Forgets inbound QoS 2 ids that waited longer than `await_rel_timeout` for PUBREL
    /// (the client gave up on them); returns how many were dropped.
    pub fn expire_awaiting_rel(&mut self, now: Instant) -> usize {
        let timeout = self.await_rel_timeout();
        let Some(ids) = self.awaiting_rel.as_mut() else {
            return 0;
        };
        let before = ids.len();
        ids.retain(|_, since| now.saturating_duration_since(*since) < timeout);
        before - ids.len()
    }

    /// When the oldest inbound QoS 2 id times out, if any is waiting.
    pub fn next_awaiting_rel_deadline(&self) -> Option<Instant> {
        self.awaiting_rel
            .as_ref()?
            .values()
            .min()
            .map(|since| *since + self.await_rel_timeout())
    }

    fn await_rel_timeout(&self) -> Duration {
        Duration::from_millis(self.await_rel_timeout_ms.into())
    }

    /// What to send again on a resumed session, in the original order: unacknowledged
    /// PUBLISHes with DUP set, and PUBRELs for messages that were PUBREC'd (spec 4.4).
    pub fn resume(&self) -> impl Iterator<Item = Resend> + '_ {
        self.inflight
            .iter()
            .map(|(id, state, _)| resend(*id, state))
    }

    /// With `retry_interval` set: what was sent at least `interval` ago and is still not
    /// acknowledged, to send again now (DUP set), in order.
    pub fn retry_due(&mut self, now: Instant, interval: Duration) -> Vec<Resend> {
        let mut due = Vec::new();
        for (id, state, sent_at) in &mut self.inflight {
            if now.saturating_duration_since(*sent_at) >= interval {
                *sent_at = now;
                due.push(resend(*id, state));
            }
        }
        due
    }

    /// With `retry_interval` set: when the oldest unacknowledged packet is due again.
    pub fn next_retry(&self, interval: Duration) -> Option<Instant> {
        self.inflight
            .iter()
            .map(|(.., sent_at)| *sent_at + interval)
            .min()
    }

    /// Takes the unacknowledged deliveries out (a discarded session's shared-subscription
    /// messages can be given to another member of the group).
    pub fn take_unacked(&mut self) -> Vec<Delivery> {
        self.inflight
            .drain(..)
            .filter_map(|(_, state, _)| match state {
                Outbound::Publish(delivery) => Some(delivery),
                Outbound::Release => None,
            })
            .collect()
    }
}

/// A packet to send again on session resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// An unacknowledged PUBLISH: sent again with DUP set, under the same packet id.
    Publish {
        /// Its packet id.
        id: PacketId,
        /// What was sent.
        delivery: Delivery,
    },
    /// A PUBREL whose PUBCOMP never came.
    PubRel(PacketId),
}

fn resend(id: PacketId, state: &Outbound) -> Resend {
    match state {
        Outbound::Publish(delivery) => Resend::Publish {
            id,
            delivery: delivery.clone(),
        },
        Outbound::Release => Resend::PubRel(id),
    }
}

fn is_qos2(state: &Outbound) -> bool {
    matches!(state, Outbound::Publish(d) if d.qos == QoS::ExactlyOnce)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{message::Message, topic::TopicName};

    fn delivery(qos: QoS) -> Delivery {
        let message = Message {
            topic: TopicName::new(ByteStr::from("t"), 8).unwrap(),
            payload: Bytes::from_static(b"x"),
            qos,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            publisher: ByteStr::from("p"),
            wire: crate::message::WireCache::default(),
        };
        Delivery {
            message: Arc::new(message),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
        }
    }

    #[test]
    fn retry_resends_what_is_due_with_dup_and_in_order() {
        #[allow(clippy::disallowed_methods)] // Any instant serves as the simulated start.
        let start = Instant::now();
        let interval = Duration::from_secs(10);
        let mut session = Session::new(10, Duration::from_secs(300));
        let first = session.take_packet_id();
        session.sent(start, first, delivery(QoS::AtLeastOnce));
        let second = session.take_packet_id();
        session.sent(
            start + Duration::from_secs(5),
            second,
            delivery(QoS::ExactlyOnce),
        );
        assert_eq!(session.next_retry(interval), Some(start + interval));
        assert!(
            session
                .retry_due(start + Duration::from_secs(9), interval)
                .is_empty()
        );

        let due = session.retry_due(start + interval, interval);
        assert_eq!(due.len(), 1);
        match &due[0] {
            Resend::Publish { id, .. } => assert_eq!(*id, first),
            other => panic!("unexpected {other:?}"),
        }
        // The second is due 5 s later; the first is not due again until a full interval on.
        assert_eq!(
            session.next_retry(interval),
            Some(start + Duration::from_secs(15))
        );
        assert_eq!(session.handle_pubrec(second), AckOutcome::Known);
        let due = session.retry_due(start + Duration::from_secs(15), interval);
        assert_eq!(due, vec![Resend::PubRel(second)]);
        assert_eq!(session.handle_puback(first), AckOutcome::Known);
        assert_eq!(session.handle_pubcomp(second), AckOutcome::Known);
        assert_eq!(session.next_retry(interval), None);
    }
}
