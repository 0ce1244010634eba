//! Integration test support: start a gateway on port 0.
