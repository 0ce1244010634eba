//! Property tests: the Block option codec and topic percent-decoding round-trip, and any
//! request packet coap-lite can encode goes through the exchange as one request, once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Instant;

use proptest::prelude::*;
use tributary_coap::{
    Event, Exchange, ExchangeConfig,
    block::BlockValue,
    coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType},
    mapping::percent_decode,
};

proptest! {
    #[test]
    fn block_values_round_trip(num in 0u32..=BlockValue::MAX_NUM, more: bool, szx in 0u8..=6) {
        let value = BlockValue { num, more, szx };
        prop_assert_eq!(BlockValue::decode(&value.encode()), Some(value));
    }

    #[test]
    fn percent_encoding_round_trips(topic in "[a-z0-9/+#$ %é]{0,40}") {
        let encoded: String = topic
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'/' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        prop_assert_eq!(percent_decode(&encoded), Some(topic));
    }

    #[test]
    fn any_request_is_reported_once(
        mid: u16,
        token in proptest::collection::vec(any::<u8>(), 0..=8),
        path in proptest::collection::vec("[a-z%]{0,12}", 0..5),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        confirmable: bool,
    ) {
        let mut packet = Packet::new();
        packet.header.set_type(if confirmable { MessageType::Confirmable } else { MessageType::NonConfirmable });
        packet.header.code = MessageClass::Request(RequestType::Post);
        packet.header.message_id = mid;
        packet.set_token(token.clone());
        for segment in &path {
            packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
        }
        packet.payload = payload.clone();
        let bytes = packet.to_bytes_unlimited().unwrap();
        let now = Instant::now();
        let mut exchange = Exchange::new("127.0.0.1:1".parse().unwrap(), ExchangeConfig::default(), 9);
        exchange.handle_datagram(now, &bytes);
        exchange.handle_datagram(now, &bytes);
        let events: Vec<Event> = std::iter::from_fn(|| exchange.poll_event()).collect();
        prop_assert_eq!(events.len(), 1);
        let Event::Request { id, request } = &events[0] else { panic!("not a request") };
        prop_assert_eq!(id.token(), token.as_slice());
        prop_assert_eq!(&request.payload, &payload);
        prop_assert_eq!(id.path(), path.join("/"));
    }
}
