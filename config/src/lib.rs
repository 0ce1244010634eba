//! Tributary's configuration: a HOCON file with EMQX's key names, read into typed structs.
//!
//! This step holds the human units (durations, byte sizes, `infinity`) and the lenient scalar
//! readers the config sections build on.

mod de;

pub mod units;

pub use units::{ByteSize, Limit, Timeout};
