//! Sans-IO MQTT 3.1.1 and 5.0.
//!
//! This crate is the only place in Tributary that knows the MQTT wire format. It owns:
//!
//! - the codec ([`codec`]): one packet model ([`packet`]) for both protocol versions, the version
//!   being read from CONNECT, with limits (`max_packet_size`) checked from the fixed header before
//!   anything is buffered;
//! - [`ReasonCode`], the one vocabulary for errors on the wire, and the one mapping from decode
//!   errors to it;
//! - validated topic names and filters, the route table and the retained store;
//! - the per-connection protocol state machine and the session state machine.
//!
//! What it does not do: sockets, tasks, files or clocks. Time comes in as a `now: Instant`
//! parameter, so every behaviour is testable with simulated time.

pub mod codec;
pub mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod mqueue;
pub mod packet;
pub mod reason;
pub mod retained;
pub mod route;
pub mod session;
pub mod settings;
pub mod str;
pub mod topic;
mod trie;

#[cfg(test)]
mod tests;

pub use packet::{Packet, PacketId, ProtocolVersion, QoS};
pub use reason::ReasonCode;
pub use retained::{RetainedError, RetainedStore};
pub use route::{RouteTable, ShareStrategy};
pub use str::ByteStr;
pub use topic::{SubscriptionFilter, TopicError, TopicFilter, TopicName};

/// The hasher of the maps on the publish path (route table levels and exact topics, retained
/// index): foldhash, several times faster than SipHash on short keys, and seeded at random per
/// map, so a client cannot precompute topics that collide.
pub(crate) type FastHash = foldhash::fast::RandomState;
