//! The MQTT 3.1.1 and 5.0 codec: one packet model ([`crate::packet`]) for both versions.
//!
//! - [`Decoder`] turns one connection's inbound bytes into [`Packet`](crate::Packet)s. A
//!   server-side decoder learns the version from CONNECT (`MQIsdp`/3 is 3.1, `MQTT`/4 is 3.1.1,
//!   `MQTT`/5 is 5.0); a client-side one is told it. It is the first line of defence against
//!   hostile peers: a first packet that is not CONNECT is refused from its first byte, and an
//!   oversized packet from its fixed header, before any of its body is waited for or buffered.
//! - [`encode`] appends a packet's wire form to a buffer, and [`encoded_len`] says how many
//!   bytes that will be, so a sender can respect a peer's Maximum Packet Size.
//! - [`DecodeError`] says precisely what was wrong; `ReasonCode::from(&error)` is the one
//!   mapping to what a v5 peer is told.
//!
//! Decoded packets share the received bytes: each packet's bytes are frozen once, and its
//! topic, strings and payload are slices of them.
//!
//! What the codec does not check, because the answer is the connection's or the broker's and
//! often carries its own reason code: topic name and filter syntax (`0x90`, `0x8F`), Topic Alias
//! values (`0x94`), client identifier policy (`0x85`), which side may send which packet (`0x82`),
//! a second CONNECT, and whether a reason code suits its packet.

mod decode;
mod encode;
mod error;
mod properties;
#[cfg(test)]
mod tests;

pub use decode::{DEFAULT_MAX_USER_PROPERTIES, Decoder};
pub use encode::{MAX_REMAINING_LENGTH, encode, encode_publish, encoded_len};
pub use error::{DecodeError, EncodeError};
