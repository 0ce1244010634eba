//! Tributary's CoAP gateway, wire compatible with EMQX's (`docs/coap.md`).
//!
//! Two layers:
//! - [`Exchange`]: the sans-IO CoAP message layer of RFC 7252 for one peer (CON/NON/ACK/RST,
//!   deduplication, retransmission, separate responses, token matching), with block-wise
//!   transfer (RFC 7959) and the transport side of Observe (RFC 7641). It knows nothing of
//!   MQTT: the LwM2M gateway reuses it for the requests a server sends to devices
//!   ([`Exchange::send_request`]).
//! - the EMQX mapping: [`mapping`] (which operation a `ps/...` or `mqtt/connection` request
//!   asks for), [`login`] (connection mode), [`Observations`] (notifications per topic
//!   filter) and [`serve`], the async driver that puts each peer's device on a
//!   [`tributary_protocols::VirtualClient`].
//!
//! What it does not do: bind sockets (the gateway hands [`serve`] a bound one), read config
//! files, or see MQTT bytes.

pub mod block;
pub mod demux;
pub mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub mod login;
pub mod mapping;
pub mod observe;
mod rng;
pub mod server;
pub mod settings;

pub use coap_lite;
pub use exchange::{Event, Exchange, ExchangeConfig, OutHandle, RequestId, SendError};
pub use observe::Observations;
pub use rng::Rng;
pub use server::serve;
pub use settings::{CoapConfig, NotifyType, QosMapping};
