//! WebSocket transport: the HTTP upgrade and a byte stream over binary frames.
//!
//! - [`accept`] reads the HTTP upgrade request on an accepted stream (plain TCP or TLS) and
//!   answers it: only the configured path is upgraded (others get 404), the `Origin` is
//!   checked when asked (403), and a `Sec-WebSocket-Protocol` is negotiated from the client's
//!   offer (400 when none fits and one is required). A trusted proxy's client address header is
//!   read on the way.
//! - [`WsByteStream`] turns the WebSocket into an `AsyncRead + AsyncWrite` byte stream: each
//!   binary message's payload is read as bytes in order, so one message may hold several
//!   packets of the carried protocol and one packet may span several messages; each write is
//!   sent as one binary message.
//!
//! What it does not do: know what the bytes are (MQTT is the caller's business), terminate TLS
//! or bind sockets (the gateway does both), or carry text frames (a text frame is an error, as
//! MQTT over WebSocket requires).

mod stream;
mod upgrade;

pub use stream::WsByteStream;
pub use upgrade::{UpgradeConfig, UpgradeError, Upgraded, accept};
