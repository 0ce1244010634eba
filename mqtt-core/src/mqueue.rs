//! [`MessageQueue`]: a session's bounded queue of deliveries waiting to be sent.

use std::collections::VecDeque;

use crate::{QoS, message::Delivery};

/// The queue of deliveries a session has not yet sent: while its client is offline (the
/// offline queue, EMQX's mqueue) and while the inflight window is full.
///
/// It is bounded by `max_len`: when full, the oldest QoS 0 message is dropped first, else the
/// oldest message, so a slow or absent subscriber never grows memory without bound and never
/// slows a publisher. Every drop is reported to the caller, which counts and logs it.
#[derive(Debug)]
pub struct MessageQueue {
    items: VecDeque<Delivery>,
    /// How many of `items` are QoS 0: a full queue of QoS 1/2 messages (a slow subscriber's
    /// usual state) then drops without scanning for a QoS 0 victim on every push.
    qos0: u32,
    /// u32, as `qos0`: every session carries a queue, and no queue holds 4 billion.
    max_len: u32,
    store_qos0: bool,
}

/// What [`MessageQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum PushOutcome {
    /// Queued without dropping anything.
    Queued,
    /// Queued, and this older delivery was dropped to make room.
    DroppedOldest(Delivery),
    /// Not queued: a QoS 0 message for an offline session with `mqueue_store_qos0 = false`,
    /// or a queue of length 0.
    Rejected(Delivery),
}

impl MessageQueue {
    /// An empty queue holding at most `max_len` deliveries (0 = queue nothing).
    pub fn new(max_len: usize, store_qos0: bool) -> Self {
        Self {
            items: VecDeque::new(),
            qos0: 0,
            max_len: u32::try_from(max_len).unwrap_or(u32::MAX),
            store_qos0,
        }
    }

    /// Queues `delivery`; `online` says whether the session has a connection (QoS 0 messages
    /// for an offline session are only kept when `store_qos0` is set).
    pub fn push(&mut self, delivery: Delivery, online: bool) -> PushOutcome {
        if self.max_len == 0 || (!online && !self.store_qos0 && delivery.qos == QoS::AtMostOnce) {
            return PushOutcome::Rejected(delivery);
        }
        let dropped = if self.items.len() >= self.max_len() {
            // Drop QoS 0 first: it carries no delivery promise. Only on overflow, so the scan
            // is not on the common path.
            let victim = if self.qos0 == 0 {
                0
            } else {
                self.items
                    .iter()
                    .position(|d| d.qos == QoS::AtMostOnce)
                    .unwrap_or(0)
            };
            if delivery.qos == QoS::AtMostOnce
                && victim == 0
                && self.items[0].qos != QoS::AtMostOnce
            {
                // Everything queued is QoS 1/2 and the newcomer is QoS 0: it is the one to go.
                return PushOutcome::Rejected(delivery);
            }
            self.take(victim)
        } else {
            None
        };
        self.qos0 += u32::from(delivery.qos == QoS::AtMostOnce);
        self.items.push_back(delivery);
        match dropped {
            Some(old) => PushOutcome::DroppedOldest(old),
            None => PushOutcome::Queued,
        }
    }

    /// Puts deliveries back at the front, in order (they were taken but could not be sent).
    pub fn push_front_all(&mut self, items: impl DoubleEndedIterator<Item = Delivery>) {
        for item in items.rev() {
            self.qos0 += u32::from(item.qos == QoS::AtMostOnce);
            self.items.push_front(item);
        }
    }

    /// Takes the delivery at the front.
    pub fn pop(&mut self) -> Option<Delivery> {
        self.take(0)
    }

    fn take(&mut self, index: usize) -> Option<Delivery> {
        let taken = self.items.remove(index)?;
        self.qos0 -= u32::from(taken.qos == QoS::AtMostOnce);
        Some(taken)
    }

    /// The delivery at the front.
    pub fn front(&self) -> Option<&Delivery> {
        self.items.front()
    }

    /// The most deliveries it holds.
    pub fn max_len(&self) -> usize {
        usize::try_from(self.max_len).unwrap_or(usize::MAX)
    }

    /// Number of queued QoS 0 deliveries.
    pub fn qos0_len(&self) -> usize {
        usize::try_from(self.qos0).unwrap_or(usize::MAX)
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops everything (session discarded).
    pub fn clear(&mut self) {
        self.items.clear();
        self.qos0 = 0;
    }

    /// Changes the limits (a resumed session gets the current configuration).
    pub fn set_limits(&mut self, max_len: usize, store_qos0: bool) {
        self.max_len = u32::try_from(max_len).unwrap_or(u32::MAX);
        self.store_qos0 = store_qos0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{ByteStr, message::Message, packet::PublishProperties, topic::TopicName};

    fn delivery(qos: QoS, payload: &'static str) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: TopicName::new(ByteStr::from("t"), 8).unwrap(),
                payload: Bytes::from_static(payload.as_bytes()),
                qos,
                retain: false,
                properties: PublishProperties::default(),
                expires_at: None,
                publisher: ByteStr::from("p"),
                wire: crate::message::WireCache::default(),
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
        }
    }

    fn payloads(queue: &mut MessageQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.pop())
            .map(|d| String::from_utf8(d.message.payload.to_vec()).unwrap())
            .collect()
    }

    fn dropped(outcome: PushOutcome) -> Option<String> {
        match outcome {
            PushOutcome::Queued => None,
            PushOutcome::DroppedOldest(d) | PushOutcome::Rejected(d) => {
                Some(String::from_utf8(d.message.payload.to_vec()).unwrap())
            }
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_qos0_first_then_the_oldest() {
        let mut queue = MessageQueue::new(3, true);
        assert_eq!(
            dropped(queue.push(delivery(QoS::AtLeastOnce, "a1"), true)),
            None
        );
        assert_eq!(
            dropped(queue.push(delivery(QoS::AtMostOnce, "b0"), true)),
            None
        );
        assert_eq!(
            dropped(queue.push(delivery(QoS::AtMostOnce, "c0"), true)),
            None
        );
        let outcome = queue.push(delivery(QoS::AtLeastOnce, "d1"), true);
        assert_eq!(
            dropped(outcome).as_deref(),
            Some("b0"),
            "the oldest QoS 0 goes"
        );
        let outcome = queue.push(delivery(QoS::ExactlyOnce, "e2"), true);
        assert_eq!(dropped(outcome).as_deref(), Some("c0"));
        // Only QoS 1/2 left: the oldest goes, and a QoS 0 newcomer is the one refused.
        let outcome = queue.push(delivery(QoS::AtLeastOnce, "f1"), true);
        assert_eq!(dropped(outcome).as_deref(), Some("a1"));
        let outcome = queue.push(delivery(QoS::AtMostOnce, "g0"), true);
        assert!(matches!(outcome, PushOutcome::Rejected(_)));
        assert_eq!(payloads(&mut queue), ["d1", "e2", "f1"]);
    }

    #[test]
    fn the_qos0_count_follows_every_way_in_and_out() {
        let mut queue = MessageQueue::new(2, true);
        let _ = queue.push(delivery(QoS::AtMostOnce, "a0"), true);
        let taken = queue.pop().unwrap();
        queue.push_front_all([taken].into_iter());
        let _ = queue.push(delivery(QoS::AtLeastOnce, "b1"), true);
        // The put-back QoS 0 message is still known as one: it is the one dropped.
        let outcome = queue.push(delivery(QoS::AtLeastOnce, "c1"), true);
        assert_eq!(dropped(outcome).as_deref(), Some("a0"));
        queue.clear();
        let _ = queue.push(delivery(QoS::AtLeastOnce, "d1"), true);
        let _ = queue.push(delivery(QoS::AtLeastOnce, "e1"), true);
        let outcome = queue.push(delivery(QoS::AtLeastOnce, "f1"), true);
        assert_eq!(dropped(outcome).as_deref(), Some("d1"));
    }

    #[test]
    fn offline_qos0_follows_store_qos0_and_a_zero_length_queue_keeps_nothing() {
        let mut queue = MessageQueue::new(4, false);
        assert!(matches!(
            queue.push(delivery(QoS::AtMostOnce, "a0"), false),
            PushOutcome::Rejected(_)
        ));
        assert_eq!(
            dropped(queue.push(delivery(QoS::AtMostOnce, "b0"), true)),
            None
        );
        assert_eq!(
            dropped(queue.push(delivery(QoS::AtLeastOnce, "c1"), false)),
            None
        );
        let mut none = MessageQueue::new(0, true);
        assert!(matches!(
            none.push(delivery(QoS::AtLeastOnce, "x"), true),
            PushOutcome::Rejected(_)
        ));
    }
}
