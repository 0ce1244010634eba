//! [`Mailbox`]: a session's bounded queue, shared with the publishers that fill it.

use std::{
    future::poll_fn,
    hash::{Hash, Hasher},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::task::AtomicWaker;

use tokio::sync::Notify;
use tributary_mqtt_core::{
    ByteStr, QoS,
    connection::{Connection, DeliveryOutcome},
    message::Delivery,
    mqueue::{MessageQueue, PushOutcome},
};

use crate::{registry::SessionEntry, stats::Stats};

/// Most deliveries taken from the queue under one lock: big enough that a busy subscriber's
/// batch becomes one socket write, small enough that publishers never wait long on the lock.
const DRAIN_BATCH: usize = 256;

thread_local! {
    /// The deliveries of one drain, one buffer per thread for every connection drained on it:
    /// draining allocates nothing per message, and a connection carries no buffer for it.
    static BATCH: std::cell::Cell<Vec<Delivery>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The high-water mark of flow control is half of `max_mqueue_len`, but at most this many
/// deliveries (see [`Flow`]) while any of them is QoS 1 or 2: those past the inflight window
/// only wait in the queue, where a deeper queue adds latency and cache misses, not throughput.
const FLOW_HIGH_WATER_CAP: usize = 128;

/// The cap while every queued delivery is QoS 0: such a queue is the subscriber's next socket
/// write, so letting it grow deeper before publishers hold back makes every write larger (a
/// fan-out to 500 subscribers wrote 74 deliveries per `sendto` at 128, 145 at 256).
const FLOW_HIGH_WATER_CAP_QOS0: usize = 256;

/// A wake-up for the one task that consumes something (a mailbox's connection), with a stored
/// permit: a notification while nobody waits is seen by the next wait.
///
/// As `tokio::sync::Notify::notify_one`, but waiting registers a waker in an atomic slot
/// instead of a waiter in a locked list, so a connection that waits on its mailbox in every
/// turn of its loop pays no lock for it, and a notification that finds one already pending
/// costs one atomic swap.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wakes the waiting task, or the next one to wait.
    pub(crate) fn notify(&self) {
        // Already set: a wake-up was sent when it was set, or the consumer will see the flag
        // when it next looks (it looks after registering).
        if !self.set.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Wakes the waiting task even if a notification is pending already: for what it must
    /// see while it does not take deliveries (a kick, the shutdown), see [`Signal::register`].
    pub(crate) fn wake(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers the task's waker without taking a pending notification: a task that cannot
    /// take deliveries now (its socket is not writable) is still woken by [`Signal::wake`].
    pub(crate) fn register(&self, cx: &mut Context<'_>) {
        self.waker.register(cx.waker());
    }

    /// Ready once a notification came since the last `Ready` (consuming it); registers the
    /// task's waker otherwise.
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A notification between the first look and the registration woke the old waker.
        if self.set.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

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
    /// Wakes the session's connection: deliveries were queued, or it is kicked.
    signal: Signal,
    /// Wakes whoever waits on this session: publishers held back by this mailbox, once it
    /// has drained (see [`Flow`]); and, for the registry entry around it, a takeover waiting
    /// for the connection to hand the session back, and a connect waiting for the one before
    /// it. Each looks again at what it waits for. One signal, not one per reason: every
    /// session pays for each.
    waiters: Notify,
}

#[derive(Debug)]
struct MailboxState {
    queue: MessageQueue,
    online: bool,
    /// Queue-full drops not yet logged, and when the last log line went out: a full queue
    /// is logged once per session per interval, not once per message.
    unlogged_drops: u32,
    last_drop_log: Option<Instant>,
    flow: Flow,
    /// When `flow` last became `Congested` or `Slow`.
    flow_since: Option<Instant>,
    /// Deliveries taken out so far, wrapping: a waiting publisher's measure of progress
    /// (equal before and after its wait when nothing was taken).
    popped: u32,
    /// Times in a row it was found slow without draining in between: how long until it is
    /// tried again (see [`SLOW_RETRY`]).
    slow_strikes: u32,
}

/// Flow control between publishers and one online subscriber.
///
/// A subscriber that cannot keep up because it gets too little CPU (one core shared with many
/// publishers, as in fan-in) should slow its publishers down rather than drop what they send:
/// once its queue passes its high-water mark (half of `max_mqueue_len`, at most
/// [`FLOW_HIGH_WATER_CAP`]), each publisher that routes to it stops reading its own socket
/// until the queue is back under half that, so ingress runs as fast as egress and nothing an
/// online subscriber can take is lost.
///
/// The hold is bounded, so one subscriber cannot stall a publisher (and every other
/// subscriber of its messages) for long: a subscriber that takes nothing at all for
/// [`FLOW_WAIT`] while publishers wait (a client that reads one message a second), or that is
/// still over its low-water mark [`FLOW_MAX_HOLD`] after it became congested (a client on a
/// slow link), is a slow consumer. It is marked `Slow` and holds nobody back (RELIABILITY 30:
/// a slow subscriber never slows a publisher for long); its queue applies the drop policy
/// until it has drained, or until it is tried again after [`SLOW_RETRY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Under the high-water mark.
    Open,
    /// Over it: publishers routing here wait for `drained`.
    Congested,
    /// Did not drain while publishers waited: holds nobody back until it has drained, or
    /// until [`SLOW_RETRY`] has passed.
    Slow,
}

/// How long publishers wait for a congested subscriber to take anything before it counts as
/// slow.
pub(crate) const FLOW_WAIT: Duration = Duration::from_millis(100);

/// How long a subscriber may take to get from its high-water mark back under its low-water
/// mark before it counts as slow. A subscriber that is only short of CPU drains in
/// milliseconds once its publishers wait (at the default `max_mqueue_len` of 1000, marks of
/// 128 and 64, this bound asks for 256 messages a second); one on a slow link, or reading slowly,
/// does not, and gets the drop policy rather than stalling its publishers, and through them
/// every other subscriber of their messages.
const FLOW_MAX_HOLD: Duration = Duration::from_millis(250);

/// How long a subscriber counts as a slow consumer before flow control tries it again (while
/// its queue is still over the high-water mark: publishers wait for it once more). One that
/// only stalled for a moment (its client or its task got no CPU for 100 ms) would otherwise
/// stay `Slow` for as long as its publishers keep its queue full, its messages dropped all
/// the while; one that is still slow is found so again within `FLOW_WAIT` or
/// `FLOW_MAX_HOLD`. The period doubles each time it is found slow again, up to 64 s, and
/// starts over once it drains: a subscriber that stays slow (RELIABILITY 30: one that reads
/// a message a second) costs its publishers 100 ms after 2 s, 4 s, 8 s... and then 100 ms a
/// minute.
const SLOW_RETRY: Duration = Duration::from_secs(2);

/// The most doublings of [`SLOW_RETRY`]: 2 s << 5 = 64 s.
const SLOW_RETRY_DOUBLINGS: u32 = 5;

/// How often a session with a full queue logs its drops.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Mailbox {
    /// An empty mailbox for `client_id`.
    pub(crate) fn new(client_id: ByteStr, max_len: usize, store_qos0: bool) -> Self {
        Self {
            client_id,
            state: Mutex::new(MailboxState {
                queue: MessageQueue::new(max_len, store_qos0),
                online: false,
                unlogged_drops: 0,
                last_drop_log: None,
                flow: Flow::Open,
                flow_since: None,
                popped: 0,
                slow_strikes: 0,
            }),
            signal: Signal::default(),
            waiters: Notify::new(),
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

    /// Queues a delivery and wakes the connection; a drop is counted, and logged once per
    /// session per minute.
    /// Returns whether the publisher should hold back until this mailbox drains (see
    /// [`Flow`]).
    pub(crate) fn push(&self, delivery: Delivery, stats: &Stats) -> bool {
        // A dropped delivery is freed after the lock is released: it may be the last owner of
        // its message.
        let (outcome, _dropped, drops_to_log, congested) = {
            let mut state = self.lock();
            let online = state.online;
            let (outcome, dropped) = match state.queue.push(delivery, online) {
                PushOutcome::Queued => (Pushed::Queued, None),
                PushOutcome::DroppedOldest(dropped) => (Pushed::Full, Some(dropped)),
                PushOutcome::Rejected(dropped) if !online && dropped.qos == QoS::AtMostOnce => {
                    (Pushed::Qos0Offline, Some(dropped))
                }
                PushOutcome::Rejected(dropped) => (Pushed::Full, Some(dropped)),
            };
            let mut drops_to_log = 0;
            if outcome == Pushed::Full {
                state.unlogged_drops += 1;
                let now = crate::broker::now();
                let due = state
                    .last_drop_log
                    .is_none_or(|at| now.saturating_duration_since(at) >= DROP_LOG_INTERVAL);
                if due {
                    state.last_drop_log = Some(now);
                    drops_to_log = std::mem::take(&mut state.unlogged_drops);
                }
            }
            let congested = online && state.congested();
            (outcome, dropped, drops_to_log, congested)
        };
        match outcome {
            Pushed::Queued => self.signal.notify(),
            Pushed::Full => {
                Stats::incr(&stats.delivery_dropped_queue_full);
                self.signal.notify();
            }
            // `mqueue_store_qos0 = false` asked for this: counted, not logged.
            Pushed::Qos0Offline => Stats::incr(&stats.delivery_dropped_qos0_offline),
        }
        if drops_to_log > 0 {
            tracing::warn!(
                client_id = %self.client_id,
                dropped = drops_to_log,
                "session queue full (mqtt.max_mqueue_len): oldest messages dropped"
            );
        }
        congested
    }

    /// The session's waiters' signal (see the field).
    pub(crate) fn waiters(&self) -> &Notify {
        &self.waiters
    }

    /// Waits until this mailbox has drained under its low-water mark, or its session went
    /// offline; `false` if `deadline` came first, and then the mailbox counts as a slow
    /// consumer (see [`Flow`]).
    pub(crate) async fn wait_drained(&self, deadline: tokio::time::Instant) -> bool {
        let popped_before = {
            let state = self.lock();
            // Already drained: the usual case for all but the first of many congested
            // mailboxes a publisher waits for in turn (a fan-out), so it costs one lock and
            // no registration.
            if state.flow != Flow::Congested {
                return true;
            }
            state.popped
        };
        loop {
            let drained = self.waiters.notified();
            tokio::pin!(drained);
            // Registered before looking, so a drain between the look and the wait is seen. A
            // wake for another waiter of the session comes back here to look again.
            drained.as_mut().enable();
            if self.lock().flow != Flow::Congested {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                let mut state = self.lock();
                // A subscriber that took nothing meanwhile, or has been congested too long,
                // is slow; one that is draining (short of CPU, or waiting for its acks) keeps
                // its publishers waiting, so what it will take is never dropped.
                let stuck = state.popped == popped_before
                    || state.flow_since.is_some_and(|since| {
                        crate::broker::now().saturating_duration_since(since) >= FLOW_MAX_HOLD
                    });
                if state.flow == Flow::Congested && stuck {
                    state.flow = Flow::Slow;
                    state.flow_since = Some(crate::broker::now());
                    state.slow_strikes = state.slow_strikes.saturating_add(1);
                    tracing::debug!(client_id = %self.client_id, "subscriber does not drain its queue: a slow consumer, publishers no longer wait for it");
                    return false;
                }
                return true;
            }
        }
    }

    /// After a drain: reopens the flow once the queue is under its low-water mark, waking
    /// the publishers that wait.
    fn after_drain(&self, state: &mut MailboxState, taken: usize) {
        // Truncated on purpose: only equality across one wait is asked of it.
        #[allow(clippy::cast_possible_truncation)]
        let taken = taken as u32;
        state.popped = state.popped.wrapping_add(taken);
        if state.flow != Flow::Open && state.queue.len() <= state.low_water() {
            let waiting = state.flow == Flow::Congested;
            state.flow = Flow::Open;
            state.slow_strikes = 0;
            if waiting {
                self.waiters.notify_waiters();
            }
        }
    }

    /// Marks whether a connection is draining the mailbox (QoS 0 for an offline session is
    /// only kept with `mqueue_store_qos0`).
    pub(crate) fn set_online(&self, online: bool) {
        let mut state = self.lock();
        state.online = online;
        if !online && state.flow == Flow::Congested {
            // Nobody drains an offline session: publishers stop waiting for it.
            state.flow = Flow::Open;
            self.waiters.notify_waiters();
        }
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

    /// Moves up to `max` queued deliveries, oldest first, into `out`; returns whether more
    /// are left. For adapters that deliver outside an MQTT connection (virtual clients).
    pub(crate) fn pop_into(&self, out: &mut Vec<Delivery>, max: usize) -> bool {
        let mut state = self.lock();
        let start = out.len();
        for _ in 0..max {
            match state.queue.pop() {
                Some(delivery) => out.push(delivery),
                None => break,
            }
        }
        self.after_drain(&mut state, out.len() - start);
        !state.queue.is_empty()
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wake-up of the session's connection: something may have been queued, or the
    /// connection may have been kicked (see `SessionEntry::take_kick`).
    pub(crate) fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Waits until something may have been queued (or a kick came).
    pub(crate) async fn notified(&self) {
        poll_fn(|cx| self.signal.poll_wait(cx)).await;
    }

    /// Moves as many deliveries as the connection can take now into it: QoS 0 always, QoS > 0
    /// while the inflight window has room. Order is kept: a QoS 1 message that does not fit
    /// holds back everything behind it. Returns whether anything is left.
    pub(crate) fn drain_into(&self, conn: &mut Connection, now: Instant, stats: &Stats) -> bool {
        // Taken out of its cell rather than borrowed, as `Broker::publish` does.
        let mut batch = BATCH.take();
        let more = self.drain_batches(conn, now, stats, &mut batch);
        BATCH.set(batch);
        more
    }

    /// [`Mailbox::drain_into`], in batches of at most [`DRAIN_BATCH`] taken under the lock.
    fn drain_batches(
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
                self.after_drain(&mut state, batch.len());
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

impl MailboxState {
    /// Whether publishers should hold back: the queue is over its high-water mark and not
    /// known to be a slow consumer.
    fn congested(&mut self) -> bool {
        if self.flow == Flow::Slow
            && self.flow_since.is_some_and(|since| {
                crate::broker::now().saturating_duration_since(since) >= self.slow_retry()
            })
        {
            // Tried again: see SLOW_RETRY.
            self.flow = Flow::Open;
        }
        match self.flow {
            Flow::Congested => true,
            Flow::Slow => false,
            Flow::Open => {
                if self.queue.max_len() > 1 && self.queue.len() > self.high_water() {
                    self.flow = Flow::Congested;
                    self.flow_since = Some(crate::broker::now());
                    true
                } else {
                    false
                }
            }
        }
    }

    /// How long a `Slow` mark lasts this time (see [`SLOW_RETRY`]).
    fn slow_retry(&self) -> Duration {
        let doublings = self
            .slow_strikes
            .saturating_sub(1)
            .min(SLOW_RETRY_DOUBLINGS);
        SLOW_RETRY * (1 << doublings)
    }

    fn high_water(&self) -> usize {
        let cap = if self.queue.qos0_len() == self.queue.len() {
            FLOW_HIGH_WATER_CAP_QOS0
        } else {
            FLOW_HIGH_WATER_CAP
        };
        (self.queue.max_len() / 2).min(cap)
    }

    fn low_water(&self) -> usize {
        self.high_water() / 2
    }
}

/// What became of a pushed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    Queued,
    Full,
    Qos0Offline,
}

/// A route table key: a session's entry (for its mailbox), compared by identity.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber(pub(crate) Arc<SessionEntry>);

impl Subscriber {
    pub(crate) fn mailbox(&self) -> &Mailbox {
        &self.0.mailbox
    }
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use bytes::Bytes;
    use tributary_mqtt_core::{TopicName, message::Message};

    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: TopicName::new(ByteStr::from("t"), 0).expect("topic"),
                payload: Bytes::from_static(b"x"),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Default::default(),
                expires_at: None,
                publisher: ByteStr::from("p"),
                wire: tributary_mqtt_core::message::WireCache::default(),
            }),
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
        }
    }

    #[test]
    fn a_queue_of_qos0_may_grow_deeper_before_it_holds_publishers_back() {
        let stats = Stats::default();
        let pushes_until_congested = |mailbox: &Mailbox| {
            (1..=1000)
                .find(|_| mailbox.push(delivery(), &stats))
                .unwrap_or(0)
        };
        let qos0 = Mailbox::new(ByteStr::from("a"), 1000, true);
        qos0.set_online(true);
        assert_eq!(pushes_until_congested(&qos0), FLOW_HIGH_WATER_CAP_QOS0 + 1);

        let mixed = Mailbox::new(ByteStr::from("b"), 1000, true);
        mixed.set_online(true);
        let mut qos1 = delivery();
        qos1.qos = QoS::AtLeastOnce;
        assert!(!mixed.push(qos1, &stats));
        assert_eq!(pushes_until_congested(&mixed), FLOW_HIGH_WATER_CAP);
        // Half of a small `max_mqueue_len` comes first.
        let small = Mailbox::new(ByteStr::from("c"), 100, true);
        small.set_online(true);
        assert_eq!(pushes_until_congested(&small), 51);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_is_tried_again_after_a_while() {
        let stats = Stats::default();
        let mailbox = Mailbox::new(ByteStr::from("sub"), 1000, true);
        mailbox.set_online(true);
        let congested: Vec<bool> = (0..=FLOW_HIGH_WATER_CAP_QOS0)
            .map(|_| mailbox.push(delivery(), &stats))
            .collect();
        assert_eq!(congested.iter().filter(|c| **c).count(), 1, "past the mark");
        // It takes nothing while a publisher waits: a slow consumer, nobody is held back.
        let until = tokio::time::Instant::now() + FLOW_WAIT;
        assert!(!mailbox.wait_drained(until).await);
        assert!(!mailbox.push(delivery(), &stats));
        tokio::time::advance(SLOW_RETRY / 2).await;
        assert!(!mailbox.push(delivery(), &stats), "still slow");
        // Tried again: still over the mark, so its publishers wait for it once more.
        tokio::time::advance(SLOW_RETRY / 2).await;
        assert!(mailbox.push(delivery(), &stats));
        assert_eq!(Stats::get(&stats.delivery_dropped_queue_full), 0);
        // Slow again: the next try comes after twice as long.
        let until = tokio::time::Instant::now() + FLOW_WAIT;
        assert!(!mailbox.wait_drained(until).await);
        tokio::time::advance(SLOW_RETRY).await;
        assert!(!mailbox.push(delivery(), &stats), "still slow after 2 s");
        tokio::time::advance(SLOW_RETRY).await;
        assert!(mailbox.push(delivery(), &stats), "tried again after 4 s");
        // Once it drains, it starts over.
        let mut conn_free = Vec::new();
        while mailbox.pop_into(&mut conn_free, 256) {}
        conn_free.clear();
        for _ in 0..=FLOW_HIGH_WATER_CAP_QOS0 {
            let _ = mailbox.push(delivery(), &stats);
        }
        let until = tokio::time::Instant::now() + FLOW_WAIT;
        assert!(!mailbox.wait_drained(until).await);
        tokio::time::advance(SLOW_RETRY).await;
        assert!(mailbox.push(delivery(), &stats), "tried again after 2 s");
    }
}
