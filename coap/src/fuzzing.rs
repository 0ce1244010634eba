//! The CoAP datagram path for fuzzing (RELIABILITY.md test 14: "the CoAP decoder plus the
//! exchange layer"): shared by the cargo-fuzz target `fuzz/fuzz_targets/coap.rs` and the corpus
//! replay in `tests/fuzz_coap_corpus.rs`, so the replay runs exactly what the fuzzer runs.
//!
//! The input is a script of records, each an opcode byte and its operands: a datagram from the
//! peer (length byte, bytes), time passing (tenths of a second), an answer to the oldest
//! request (payload length), a notification, or a request of ours. Whatever the script, the
//! exchange must not panic, must keep its duplicate cache within bounds, and may only send
//! datagrams that decode.

use std::time::{Duration, Instant};

use coap_lite::{MessageClass, Packet, ResponseType};

use crate::exchange::{Event, Exchange, ExchangeConfig, RequestId};

/// What a run did, for the replay test to check that the corpus gets somewhere.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Requests the exchange reported.
    pub requests: usize,
    /// Datagrams the exchange sent.
    pub transmits: usize,
    /// Datagrams that did not decode.
    pub malformed: u64,
}

/// Runs the script `data` against a fresh exchange, simulated time starting at `start`.
pub fn run(start: Instant, data: &[u8]) -> Report {
    let config = ExchangeConfig {
        max_dedup: 16,
        max_body_size: 4096,
        ..ExchangeConfig::default()
    };
    let max_dedup = config.max_dedup;
    let mut exchange = Exchange::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 5683)),
        config,
        1,
    );
    let mut report = Report::default();
    let mut now = start;
    let mut pending: Vec<RequestId> = Vec::new();
    // The whole input as one datagram first: the decoder alone.
    exchange.handle_datagram(now, data);
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let mut take = |n: usize| {
            let n = n.min(rest.len());
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        match op % 6 {
            0 | 1 => {
                let len = take(1).first().copied().unwrap_or(0);
                let datagram = take(usize::from(len));
                exchange.handle_datagram(now, datagram);
            }
            2 => {
                let tenths = take(1).first().copied().unwrap_or(0);
                now += Duration::from_millis(100 * u64::from(tenths));
                exchange.handle_timeout(now);
            }
            3 => {
                let len = take(1).first().copied().unwrap_or(0);
                if !pending.is_empty() {
                    let id = pending.remove(0);
                    let mut response = Packet::new();
                    response.header.code = MessageClass::Response(ResponseType::Content);
                    response.payload = vec![b'x'; usize::from(len) * 8];
                    let _ = exchange.respond(now, &id, response);
                }
            }
            4 => {
                let mut note = Packet::new();
                note.header.code = MessageClass::Response(ResponseType::Content);
                note.set_token(take(2).to_vec());
                note.payload = vec![b'n'; 100];
                let _ = exchange.notify(now, note, op & 0x80 != 0, "ps/t");
            }
            _ => {
                let _ = exchange.send_request(now, Packet::new(), op & 0x80 != 0);
            }
        }
        while let Some(event) = exchange.poll_event() {
            if let Event::Request { id, .. } = event {
                report.requests += 1;
                pending.push(id);
            }
        }
        while let Some(datagram) = exchange.poll_transmit() {
            report.transmits += 1;
            assert!(
                Packet::from_bytes(&datagram).is_ok(),
                "the exchange sent a datagram that does not decode: {datagram:?}"
            );
        }
        assert!(
            exchange.dedup_len() <= max_dedup,
            "duplicate cache over its bound"
        );
        // The caller's own queue stays bounded too: old ids are dropped as the exchange would.
        if pending.len() > 64 {
            pending.remove(0);
        }
    }
    report.malformed = exchange.malformed();
    report
}
