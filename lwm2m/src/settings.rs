//! [`Lwm2mSettings`]: the `gateway.lwm2m` keys this crate uses, as plain values.
