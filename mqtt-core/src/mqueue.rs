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
    max_len: usize,
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
            max_len,
            store_qos0,
        }
    }

    /// Queues `delivery`; `online` says whether the session has a connection (QoS 0 messages
    /// for an offline session are only kept when `store_qos0` is set).
    pub fn push(&mut self, delivery: Delivery, online: bool) -> PushOutcome {
        if self.max_len == 0 || (!online && !self.store_qos0 && delivery.qos == QoS::AtMostOnce) {
            return PushOutcome::Rejected(delivery);
        }
        let dropped = if self.items.len() >= self.max_len {
            // Drop QoS 0 first: it carries no delivery promise. Only on overflow, so the scan
            // is not on the common path.
            let victim = self
                .items
                .iter()
                .position(|d| d.qos == QoS::AtMostOnce)
                .unwrap_or(0);
            if delivery.qos == QoS::AtMostOnce
                && victim == 0
                && self.items[0].qos != QoS::AtMostOnce
            {
                // Everything queued is QoS 1/2 and the newcomer is QoS 0: it is the one to go.
                return PushOutcome::Rejected(delivery);
            }
            self.items.remove(victim)
        } else {
            None
        };
        self.items.push_back(delivery);
        match dropped {
            Some(old) => PushOutcome::DroppedOldest(old),
            None => PushOutcome::Queued,
        }
    }

    /// Puts deliveries back at the front, in order (they were taken but could not be sent).
    pub fn push_front_all(&mut self, items: impl DoubleEndedIterator<Item = Delivery>) {
        for item in items.rev() {
            self.items.push_front(item);
        }
    }

    /// Takes the delivery at the front.
    pub fn pop(&mut self) -> Option<Delivery> {
        self.items.pop_front()
    }

    /// The delivery at the front.
    pub fn front(&self) -> Option<&Delivery> {
        self.items.front()
    }

    /// The most deliveries it holds.
    pub fn max_len(&self) -> usize {
        self.max_len
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
    }

    /// Changes the limits (a resumed session gets the current configuration).
    pub fn set_limits(&mut self, max_len: usize, store_qos0: bool) {
        self.max_len = max_len;
        self.store_qos0 = store_qos0;
    }
}
