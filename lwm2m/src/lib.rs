//! Sans-IO LwM2M server core, EMQX-compatible on the MQTT side.
//!
//! This crate holds the transport-independent heart of Tributary's LwM2M gateway:
//!
//! - codecs for what devices send and receive: CoRE link format ([`link`]), OMA-TLV ([`tlv`]),
//!   OMA JSON ([`oma_json`]), SenML JSON ([`senml`]) and plain text ([`text`]), and the mapping of
//!   a payload to EMQX's `content` JSON by Content-Format ([`content`]);
//! - OMA object definitions and the registry of them ([`object`]), with built-in models embedded
//!   in the binary;
//! - the downlink JSON command to a transport-neutral [`DeviceRequest`] and the uplink JSON
//!   documents ([`command`]);
//! - the per-device registration state machine ([`registration`]) and its settings
//!   ([`settings`]);
//! - [`server::serve`], the thin async driver: it puts each registered device on a
//!   [`tributary_protocols::VirtualClient`] and runs its CoAP messages through the `coap`
//!   crate's exchange layer ([`tributary_coap::Exchange`]).
//!
//! Everything but [`server`] is sans-IO: time comes in as `now: Instant`. What the crate does
//! not do: bind sockets (the gateway hands [`server::serve`] a bound one), CoAP framing,
//! retransmission or block transfers (the exchange layer does that), MQTT bytes (the driver
//! publishes what [`registration::Session`] asks for through the broker's virtual-client API)
//! or config-file parsing (the `config` crate does that). The only file access is
//! [`object::ObjectRegistry::load_dir`], called once at start by the gateway.

pub mod command;
pub mod content;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod object;
pub mod oma_json;
pub mod path;
pub mod registration;
pub mod senml;
pub mod server;
pub mod settings;
pub mod text;
pub mod tlv;

pub use command::{Command, CommandError, DeviceRequest, Method, MsgType, ResponseCode};
pub use content::{ContentError, ContentFormat};
pub use object::{ObjectDef, ObjectRegistry, ResourceDef, ResourceType};
pub use path::LwPath;
pub use registration::{
    CloseReason, DeviceReply, DeviceResponse, Identity, Output, RequestHandle, Session,
};
pub use server::{Lwm2mConfig, serve};
pub use settings::{Lwm2mSettings, Translator, Translators, UpdatePublishCondition};
