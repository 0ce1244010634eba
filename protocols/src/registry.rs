//! The session registry: one entry per client id, attached to a connection or detached.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use tributary_mqtt_core::{
    ByteStr, ReasonCode,
    connection::{CloseKind, WillMessage},
    session::Session,
};

use crate::mailbox::Mailbox;

/// What the registry asks of a connection's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kick {
    /// Why, for the log.
    pub(crate) kind: CloseKind,
    /// The DISCONNECT reason code for a v5 client.
    pub(crate) code: ReasonCode,
}

/// Who is connected to a session: what client listings and logs show. (The client id is the
/// session's: [`Broker::clients`](crate::Broker::clients) lists it with this.) Every
/// connected client has one, so it is kept small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// User name, if the client gave one.
    pub username: Option<ByteStr>,
    /// Remote address.
    pub peer: SocketAddr,
    /// The listener that accepted it, as `type:name` (`tcp:default`, `udp:default`).
    pub listener: Arc<str>,
    /// The protocol the client speaks.
    pub protocol: Protocol,
    /// The transport under it.
    pub transport: Transport,
}

/// An enum whose variants each have a name: `as_str` and `Display` give it.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Its name in listings, logs and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// The protocol a client speaks.
    Protocol {
        /// MQTT (3.1, 3.1.1 or 5.0).
        Mqtt => "mqtt",
        /// CoAP, through the CoAP gateway.
        Coap => "coap",
        /// LwM2M, through the LwM2M gateway.
        Lwm2m => "lwm2m",
    }
}

named! {
    /// The transport a client connects over, named as the listener types of the
    /// configuration.
    Transport {
        /// Plain TCP.
        Tcp => "tcp",
        /// TLS over TCP.
        Ssl => "ssl",
        /// WebSocket.
        Ws => "ws",
        /// WebSocket over TLS.
        Wss => "wss",
        /// QUIC.
        Quic => "quic",
        /// UDP (the CoAP and LwM2M gateways).
        Udp => "udp",
    }
}

/// A session known to the broker.
///
/// The entry is the session's identity in the route table (for its mailbox): it stays the
/// same across connections, so routes survive a reconnect untouched. A discarded session's
/// entry is removed from the registry and a clean session gets a new entry (and mailbox), so a
/// publisher still holding an old route can never leak a message into the new session.
#[derive(Debug)]
pub(crate) struct SessionEntry {
    /// Inline: the entry and its mailbox live and die together (one allocation per session).
    pub(crate) mailbox: Mailbox,
    slot: Mutex<Slot>,
    /// Whether the slot holds a kick: what a connection looks at on every wake-up, without
    /// the lock.
    kick_pending: AtomicBool,
    /// Held by the connect (or expiry) in progress for this client id (see [`Self::serial`]).
    connecting: AtomicBool,
}

/// The right to change which connection owns a session: one connect (or expiry) at a time
/// per client id. Let go when dropped.
pub(crate) struct Serial<'a>(&'a SessionEntry);

impl Drop for Serial<'_> {
    fn drop(&mut self) {
        self.0.connecting.store(false, Ordering::Release);
        self.0.mailbox.waiters().notify_waiters();
    }
}

/// Where the session state is.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A connection owns the session state.
    Attached {
        generation: u64,
        client: Arc<ClientInfo>,
        /// A kick for that connection, when a takeover asks it to end. Kept here rather
        /// than in a channel per connection: a kick is rare, and every idle connection would
        /// pay for the channel. It wakes the connection through the mailbox's signal.
        kick: Option<Kick>,
    },
    /// No connection: the state waits here until a reconnect, expiry or discard.
    Detached {
        generation: u64,
        session: Box<Session>,
        will: Option<Box<WillMessage>>,
    },
    /// The session is gone; the entry is out of the registry.
    Discarded,
}

impl SessionEntry {
    pub(crate) fn new(mailbox: Mailbox) -> Self {
        Self {
            mailbox,
            slot: Mutex::new(Slot::Discarded),
            kick_pending: AtomicBool::new(false),
            connecting: AtomicBool::new(false),
        }
    }

    /// Waits for the connects (and expiry) before this one to finish with the session: a
    /// takeover storm queues here, each new connection waiting for the previous owner to hand
    /// the session back. Held across that wait, so a flag and the session's waiters' signal
    /// (the mailbox's) rather than a mutex of its own: every session pays for its room. Cancel-safe.
    pub(crate) async fn serial(&self) -> Serial<'_> {
        let take = || {
            self.connecting
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        };
        loop {
            if take() {
                return Serial(self);
            }
            let let_go = self.mailbox.waiters().notified();
            tokio::pin!(let_go);
            // Register interest before looking again, so a let-go between the look and the
            // wait is not missed.
            let_go.as_mut().enable();
            if take() {
                return Serial(self);
            }
            let_go.await;
        }
    }

    /// The client id of the session (its mailbox's).
    pub(crate) fn client_id(&self) -> &ByteStr {
        self.mailbox.client_id()
    }

    pub(crate) fn slot(&self) -> MutexGuard<'_, Slot> {
        // Slot transitions are single assignments; a poisoned lock holds a consistent value.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the session back from a connection that ended (only if that connection still
    /// owns it) and wakes a waiting takeover.
    pub(crate) fn release(
        &self,
        generation: u64,
        session: Session,
        will: Option<WillMessage>,
    ) -> bool {
        let mut slot = self.slot();
        let owned = matches!(&*slot, Slot::Attached { generation: g, .. } if *g == generation);
        if owned {
            *slot = Slot::Detached {
                generation,
                session: Box::new(session),
                will: will.map(Box::new),
            };
        }
        drop(slot);
        self.mailbox.waiters().notify_waiters();
        owned
    }

    /// Who is connected to the session now, if anyone.
    pub(crate) fn client(&self) -> Option<Arc<ClientInfo>> {
        match &*self.slot() {
            Slot::Attached { client, .. } => Some(Arc::clone(client)),
            Slot::Detached { .. } | Slot::Discarded => None,
        }
    }

    /// Takes the kick addressed to the connection of `generation`, if one came. Called on
    /// every wake-up of that connection: without a kick, it is one atomic load.
    pub(crate) fn take_kick(&self, generation: u64) -> Option<Kick> {
        if !self.kick_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.slot();
        let found = match &mut *slot {
            Slot::Attached {
                generation: g,
                kick,
                ..
            } if *g == generation => kick.take(),
            // A kick for an earlier owner left with it; none is pending for a later one.
            _ => None,
        };
        let pending = matches!(&*slot, Slot::Attached { kick: Some(_), .. });
        self.kick_pending.store(pending, Ordering::Release);
        found
    }

    /// Gives the session up without state (see `Broker::detach`).
    pub(crate) fn abandon(&self, generation: u64) {
        let mut slot = self.slot();
        if matches!(&*slot, Slot::Attached { generation: g, .. } if *g == generation) {
            *slot = Slot::Discarded;
        }
        drop(slot);
        self.mailbox.waiters().notify_waiters();
    }

    /// Waits until the current owner (if any) hands the session back, kicking it first.
    /// Called with the [`Serial`] held, so no other connect interleaves.
    pub(crate) async fn take_over(&self, kick: Kick) {
        loop {
            let released = self.mailbox.waiters().notified();
            tokio::pin!(released);
            // Register interest before looking, so a release between the look and the wait
            // is not missed.
            released.as_mut().enable();
            // The owner's task may be ending already; it releases either way.
            match &mut *self.slot() {
                Slot::Attached { kick: pending, .. } => {
                    *pending = Some(kick);
                    self.kick_pending.store(true, Ordering::Release);
                }
                Slot::Detached { .. } | Slot::Discarded => return,
            }
            // The owner is the mailbox's one consumer; the wake-up is kept if it is busy.
            self.mailbox.signal().wake();
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn one_connect_at_a_time_per_session() {
        let entry = Arc::new(SessionEntry::new(Mailbox::new(
            ByteStr::from("c"),
            10,
            false,
        )));
        let first = entry.serial().await;
        let waiting = {
            let entry = Arc::clone(&entry);
            tokio::spawn(async move { drop(entry.serial().await) })
        };
        settle().await;
        assert!(!waiting.is_finished(), "a second connect waits");
        // A hand-back shares the signal: the waiter looks again and keeps waiting.
        entry.mailbox.waiters().notify_waiters();
        settle().await;
        assert!(!waiting.is_finished(), "still held");
        // A waiter that gives up takes nothing with it.
        let given_up = tokio::time::timeout(Duration::from_millis(10), entry.serial()).await;
        assert!(given_up.is_err());
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        // Free again once the second is done.
        drop(entry.serial().await);
    }
}
