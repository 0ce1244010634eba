//! [`Mailbox`]: a session's bounded queue, shared with the publishers that fill it.

use std::{
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use tokio::sync::Notify;
use tributary_mqtt_core::{
    ByteStr, QoS,
    connection::{Connection, DeliveryOutcome},
    message::Delivery,
    mqueue::{MessageQueue, PushOutcome},
};

use crate::stats::Stats;

/// Most deliveries taken from the queue under one lock: big enough that a busy subscriber's
/// batch becomes one socket write, small enough that publishers never wait long on the lock.
const DRAIN_BATCH: usize = 256;

/// A session's inbox: publishers push deliveries into it from their own tasks; the session's
/// connection (when it has one) drains it.
///
/// It is the session's offline queue too: while no connection drains it, deliveries wait here,
/// bounded by `max_mqueue_len`, with the drop policy of [`MessageQueue`]. So a session has one
/// queue, whether its client is connected, slow, or away.
#[derive(Debug)]
pub struct Mailbox {
    client_id: ByteStr,
    state: Mutex<MailboxState>,
    notify: Notify,
}

#[derive(Debug)]
struct MailboxState {
    queue: MessageQueue,
    online: bool,
}

impl Mailbox {
    /// An empty mailbox for `client_id`.
    pub(crate) fn new(client_id: ByteStr, max_len: usize, store_qos0: bool) -> Self {
        Self {
            client_id,
            state: Mutex::new(MailboxState {
                queue: MessageQueue::new(max_len, store_qos0),
                online: false,
            }),
            notify: Notify::new(),
        }
    }

    /// The client id of the session.
    pub fn client_id(&self) -> &ByteStr {
        &self.client_id
    }

    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        // A panic while holding this lock cannot leave the queue half-updated (VecDeque
        // operations are atomic with respect to panics), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a delivery and wakes the connection; a drop is counted and logged.
    pub(crate) fn push(&self, delivery: Delivery, stats: &Stats) {
        let outcome = {
            let mut state = self.lock();
            let online = state.online;
            state.queue.push(delivery, online)
        };
        match outcome {
            PushOutcome::Queued => self.notify.notify_one(),
            PushOutcome::DroppedOldest(dropped) => {
                Stats::incr(&stats.delivery_dropped_queue_full);
                tracing::debug!(client_id = %self.client_id, topic = %dropped.message.topic, "queue full; oldest message dropped");
                self.notify.notify_one();
            }
            PushOutcome::Rejected(dropped) => {
                if dropped.qos == QoS::AtMostOnce {
                    Stats::incr(&stats.delivery_dropped_qos0_offline);
                } else {
                    Stats::incr(&stats.delivery_dropped_queue_full);
                }
                tracing::debug!(client_id = %self.client_id, topic = %dropped.message.topic, "message not queued");
            }
        }
    }

    /// Marks whether a connection is draining the mailbox (QoS 0 for an offline session is
    /// only kept with `mqueue_store_qos0`).
    pub(crate) fn set_online(&self, online: bool) {
        self.lock().online = online;
    }

    /// Applies the current queue limits.
    pub(crate) fn set_limits(&self, max_len: usize, store_qos0: bool) {
        self.lock().queue.set_limits(max_len, store_qos0);
    }

    /// Takes everything queued out (the session was discarded).
    pub(crate) fn take_all(&self) -> Vec<Delivery> {
        let mut state = self.lock();
        std::iter::from_fn(|| state.queue.pop()).collect()
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until something may have been queued.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Moves as many deliveries as the connection can take now into it: QoS 0 always, QoS > 0
    /// while the inflight window has room. Order is kept: a QoS 1 message that does not fit
    /// holds back everything behind it. Returns whether anything is left.
    /// `batch` is the caller's reusable buffer (empty on entry and on return), so draining
    /// allocates nothing per message.
    pub(crate) fn drain_into(
        &self,
        conn: &mut Connection,
        now: Instant,
        stats: &Stats,
        batch: &mut Vec<Delivery>,
    ) -> bool {
        loop {
            let more = {
                let mut state = self.lock();
                let mut free = conn.window_free();
                while batch.len() < DRAIN_BATCH {
                    let Some(front) = state.queue.front() else {
                        break;
                    };
                    if front.qos != QoS::AtMostOnce {
                        if free == 0 {
                            break;
                        }
                        free -= 1;
                    }
                    if let Some(delivery) = state.queue.pop() {
                        batch.push(delivery);
                    }
                }
                !state.queue.is_empty()
            };
            if batch.is_empty() {
                return more;
            }
            for delivery in batch.drain(..) {
                match conn.handle_delivery(now, delivery) {
                    DeliveryOutcome::Sent => Stats::incr(&stats.messages_sent),
                    DeliveryOutcome::Expired => Stats::incr(&stats.delivery_dropped_expired),
                    DeliveryOutcome::TooLarge => {
                        Stats::incr(&stats.delivery_dropped_too_large);
                        tracing::info!(client_id = %self.client_id, "message larger than the client's Maximum Packet Size dropped");
                    }
                }
            }
            if !more || conn.transmit().len() >= crate::driver::HIGH_WATER {
                return more;
            }
        }
    }
}

/// A route table key: a mailbox, compared by identity.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber(pub(crate) Arc<Mailbox>);

impl PartialEq for Subscriber {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Subscriber {}

impl Hash for Subscriber {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}
