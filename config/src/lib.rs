//! Placeholder until the config helper lands.
