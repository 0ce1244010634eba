//! State-machine tests (ARCHITECTURE.md §6): [`Connection`](crate::connection::Connection)s
//! driven by simulated clients around a minimal in-memory broker, with simulated time: no
//! sockets, no tasks, no clock.
//!
//! [`harness`] holds the simulated world; the other files are the tests, by topic.

mod harness;

mod connect;
mod keepalive;
mod publish;
mod sequences;
mod session;
