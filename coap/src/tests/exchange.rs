//! The exchange layer with simulated time: no sockets, no clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use coap_lite::RequestType;

use super::*;

fn start() -> Instant {
    // The one real clock read: an origin for simulated time; nothing depends on its value.
    Instant::now()
}

fn exchange() -> Exchange {
    Exchange::new(
        "127.0.0.1:5683".parse().unwrap(),
        ExchangeConfig::default(),
        7,
    )
}

fn request(kind: MessageType, mid: u16, token: &[u8], path: &str) -> Packet {
    let mut packet = Packet::new();
    packet.header.set_type(kind);
    packet.header.code = MessageClass::Request(RequestType::Post);
    packet.header.message_id = mid;
    packet.set_token(token.to_vec());
    for segment in path.split('/') {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    packet
}

fn bytes(packet: &Packet) -> Vec<u8> {
    packet.to_bytes_unlimited().unwrap()
}

fn sent(ex: &mut Exchange) -> Vec<Packet> {
    std::iter::from_fn(|| ex.poll_transmit())
        .map(|b| Packet::from_bytes(&b).unwrap())
        .collect()
}

fn events(ex: &mut Exchange) -> Vec<Event> {
    std::iter::from_fn(|| ex.poll_event()).collect()
}

fn the_request(ex: &mut Exchange) -> (RequestId, Packet) {
    match events(ex).as_slice() {
        [Event::Request { id, request }] => (id.clone(), request.clone()),
        other => panic!("expected one request, got {other:?}"),
    }
}

fn changed() -> Packet {
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Changed);
    response
}

fn empty_packet(kind: MessageType, mid: u16) -> Vec<u8> {
    let mut packet = Packet::new();
    packet.header.set_type(kind);
    packet.header.code = MessageClass::Empty;
    packet.header.message_id = mid;
    bytes(&packet)
}

#[test]
fn con_request_gets_a_piggybacked_response() {
    let now = start();
    let mut ex = exchange();
    ex.handle_datagram(
        now,
        &bytes(&request(MessageType::Confirmable, 10, b"tk", "ps/a")),
    );
    let (id, req) = the_request(&mut ex);
    assert_eq!(req.payload, b"");
    assert_eq!(id.path(), "ps/a");
    assert!(ex.respond(now, &id, changed()));
    let out = sent(&mut ex);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(out[0].header.message_id, 10);
    assert_eq!(out[0].get_token(), b"tk");
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    assert!(!ex.respond(now, &id, changed()), "answered once");
}

#[test]
fn duplicate_con_is_answered_from_the_cache_and_expires() {
    let now = start();
    let mut ex = exchange();
    let datagram = bytes(&request(MessageType::Confirmable, 11, b"t", "ps/a"));
    ex.handle_datagram(now, &datagram);
    let (id, _) = the_request(&mut ex);
    ex.respond(now, &id, changed());
    let first = sent(&mut ex);
    ex.handle_datagram(now + Duration::from_secs(3), &datagram);
    assert!(events(&mut ex).is_empty(), "a duplicate is no new request");
    assert_eq!(sent(&mut ex), first, "the same answer again");
    // After EXCHANGE_LIFETIME the message id is new again.
    let later = now + Duration::from_secs(248);
    ex.handle_timeout(later);
    assert_eq!(ex.dedup_len(), 0);
    ex.handle_datagram(later, &datagram);
    assert_eq!(events(&mut ex).len(), 1);
}

#[test]
fn duplicate_non_is_dropped() {
    let now = start();
    let mut ex = exchange();
    let datagram = bytes(&request(MessageType::NonConfirmable, 12, b"t", "ps/a"));
    ex.handle_datagram(now, &datagram);
    let (id, _) = the_request(&mut ex);
    ex.respond(now, &id, changed());
    let out = sent(&mut ex);
    assert_eq!(out[0].header.get_type(), MessageType::NonConfirmable);
    ex.handle_datagram(now, &datagram);
    assert!(events(&mut ex).is_empty());
    assert!(sent(&mut ex).is_empty());
}

/// RELIABILITY 37: a flood of new message ids keeps the cache at its bound.
#[test]
fn dedup_cache_is_bounded_under_a_flood() {
    let now = start();
    let mut ex = exchange();
    for mid in 0..=u16::MAX {
        ex.handle_datagram(
            now,
            &bytes(&request(MessageType::NonConfirmable, mid, b"", "x")),
        );
        for event in events(&mut ex) {
            if let Event::Request { id, .. } = event {
                ex.discard(&id);
            }
        }
        let _ = sent(&mut ex);
        assert!(ex.dedup_len() <= ExchangeConfig::default().max_dedup);
    }
    assert_eq!(ex.dedup_len(), ExchangeConfig::default().max_dedup);
}

#[test]
fn pending_requests_are_capped_with_503() {
    let now = start();
    let mut ex = exchange();
    for mid in 0..17u16 {
        ex.handle_datagram(
            now,
            &bytes(&request(MessageType::Confirmable, mid, b"t", "ps/a")),
        );
    }
    assert_eq!(events(&mut ex).len(), 16);
    let out = sent(&mut ex);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(ResponseType::ServiceUnavailable)
    );
}

#[test]
fn slow_answer_goes_as_a_separate_response() {
    let now = start();
    let mut ex = exchange();
    ex.handle_datagram(
        now,
        &bytes(&request(MessageType::Confirmable, 20, b"sep", "ps/a")),
    );
    let (id, _) = the_request(&mut ex);
    assert_eq!(ex.poll_timeout(), Some(now + Duration::from_secs(1)));
    ex.handle_timeout(now + Duration::from_secs(1));
    let ack = sent(&mut ex);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(ack[0].header.code, MessageClass::Empty);
    assert_eq!(ack[0].header.message_id, 20);
    let later = now + Duration::from_millis(1500);
    assert!(ex.respond(later, &id, changed()));
    let response = sent(&mut ex);
    assert_eq!(response[0].header.get_type(), MessageType::Confirmable);
    assert_eq!(response[0].get_token(), b"sep");
    assert_ne!(response[0].header.message_id, 20);
    // Retransmitted until the peer acknowledges it.
    ex.handle_timeout(later + Duration::from_secs(3));
    assert_eq!(sent(&mut ex).len(), 1);
    ex.handle_datagram(
        later + Duration::from_secs(4),
        &empty_packet(MessageType::Acknowledgement, response[0].header.message_id),
    );
    assert!(
        events(&mut ex).is_empty(),
        "a separate response's ACK concerns nobody"
    );
    ex.handle_timeout(later + Duration::from_secs(100));
    assert!(sent(&mut ex).is_empty());
    assert!(ex.is_idle());
}

/// Defect 3 of EMQX: the back-off doubles from ACK_TIMEOUT × [1, 1.5), four times.
#[test]
fn con_retransmission_backs_off_exponentially_then_times_out() {
    let t0 = start();
    let mut ex = exchange();
    let mut get = request(MessageType::Confirmable, 0, b"", "3/0/1");
    get.header.code = MessageClass::Request(RequestType::Get);
    let handle = ex.send_request(t0, get, true).unwrap();
    let first = sent(&mut ex);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].get_token().len(), 8, "a random token was set");
    let mut at = ex.poll_timeout().unwrap();
    let initial = at - t0;
    assert!(
        initial >= Duration::from_secs(2) && initial < Duration::from_secs(3),
        "{initial:?}"
    );
    let mut previous = initial;
    for retransmit in 1..=4 {
        ex.handle_timeout(at);
        let again = sent(&mut ex);
        assert_eq!(
            again, first,
            "retransmission {retransmit} is the same message"
        );
        let next = ex.poll_timeout().unwrap();
        let interval = next - at;
        assert_eq!(interval, previous * 2, "retransmission {retransmit}");
        previous = interval;
        at = next;
    }
    assert!(events(&mut ex).is_empty());
    ex.handle_timeout(at);
    assert!(sent(&mut ex).is_empty());
    assert_eq!(events(&mut ex), vec![Event::TimedOut { handle }]);
    // Total: initial × 31, as RFC 7252 §4.8.2 computes MAX_TRANSMIT_WAIT.
    assert_eq!(at - t0, initial * 31);
}

#[test]
fn server_request_response_matching() {
    let now = start();
    let mut ex = exchange();
    let mut read = Packet::new();
    read.header.code = MessageClass::Request(RequestType::Get);
    read.set_token(vec![9, 9]);
    let handle = ex.send_request(now, read, true).unwrap();
    let req = sent(&mut ex).remove(0);
    assert_eq!(req.get_token(), &[9, 9]);
    // Piggy-backed response.
    let mut resp = Packet::new();
    resp.header.set_type(MessageType::Acknowledgement);
    resp.header.message_id = req.header.message_id;
    resp.header.code = MessageClass::Response(ResponseType::Content);
    resp.set_token(vec![9, 9]);
    resp.payload = b"v".to_vec();
    ex.handle_datagram(now, &bytes(&resp));
    assert!(
        matches!(events(&mut ex).as_slice(), [Event::Response { handle: h, response }] if *h == handle && response.payload == b"v")
    );
    assert!(ex.is_verified());
    assert!(ex.is_idle());

    // Separate: an empty ACK, then a CON response we acknowledge.
    let handle = ex.send_request(now, Packet::new(), true).unwrap();
    let req = sent(&mut ex).remove(0);
    ex.handle_datagram(
        now,
        &empty_packet(MessageType::Acknowledgement, req.header.message_id),
    );
    assert_eq!(events(&mut ex), vec![Event::Acked { handle }]);
    let mut separate = Packet::new();
    separate.header.set_type(MessageType::Confirmable);
    separate.header.message_id = 777;
    separate.header.code = MessageClass::Response(ResponseType::Content);
    separate.set_token(req.get_token().to_vec());
    ex.handle_datagram(now, &bytes(&separate));
    assert!(
        matches!(events(&mut ex).as_slice(), [Event::Response { handle: h, .. }] if *h == handle)
    );
    let ack = sent(&mut ex);
    assert_eq!(ack[0].header.get_type(), MessageType::Acknowledgement);
    assert_eq!(ack[0].header.message_id, 777);
    // Its duplicate is acknowledged again, not reported again.
    ex.handle_datagram(now, &bytes(&separate));
    assert!(events(&mut ex).is_empty());
    assert_eq!(sent(&mut ex).len(), 1);
    // A response nobody asked for gets a RST.
    let mut stray = separate.clone();
    stray.header.message_id = 778;
    stray.set_token(vec![1]);
    ex.handle_datagram(now, &bytes(&stray));
    let rst = sent(&mut ex);
    assert_eq!(rst[0].header.get_type(), MessageType::Reset);
    assert_eq!(rst[0].header.message_id, 778);
}

#[test]
fn observation_we_made_keeps_matching_notifications_until_cancelled() {
    let now = start();
    let mut ex = exchange();
    let mut observe = Packet::new();
    observe.header.code = MessageClass::Request(RequestType::Get);
    observe.add_option(CoapOption::Observe, vec![]);
    let handle = ex.send_request(now, observe, true).unwrap();
    let req = sent(&mut ex).remove(0);
    for seq in 1..=3u8 {
        let mut note = Packet::new();
        note.header.set_type(MessageType::NonConfirmable);
        note.header.message_id = 1000 + u16::from(seq);
        note.header.code = MessageClass::Response(ResponseType::Content);
        note.set_token(req.get_token().to_vec());
        note.add_option(CoapOption::Observe, vec![seq]);
        ex.handle_datagram(now, &bytes(&note));
        assert_eq!(events(&mut ex).len(), 1, "notification {seq}");
    }
    ex.cancel(handle);
    let mut note = Packet::new();
    note.header.set_type(MessageType::NonConfirmable);
    note.header.message_id = 2000;
    note.header.code = MessageClass::Response(ResponseType::Content);
    note.set_token(req.get_token().to_vec());
    ex.handle_datagram(now, &bytes(&note));
    assert!(events(&mut ex).is_empty());
    assert_eq!(
        sent(&mut ex)[0].header.get_type(),
        MessageType::Reset,
        "unknown now: RST"
    );
}

#[test]
fn rst_to_a_notification_is_reported() {
    let now = start();
    let mut ex = exchange();
    let mut note = Packet::new();
    note.header.code = MessageClass::Response(ResponseType::Content);
    note.set_token(vec![5]);
    let handle = ex.notify(now, note, true, "ps/t").unwrap();
    let out = sent(&mut ex).remove(0);
    ex.handle_datagram(
        now,
        &empty_packet(MessageType::Reset, out.header.message_id),
    );
    assert_eq!(events(&mut ex), vec![Event::Reset { handle }]);
}

#[test]
fn unverified_peer_gets_con_notifications_then_non() {
    let now = start();
    let mut ex = exchange();
    let mut note = Packet::new();
    note.header.code = MessageClass::Response(ResponseType::Content);
    let handle = ex.notify(now, note.clone(), false, "ps/t").unwrap();
    let out = sent(&mut ex).remove(0);
    assert_eq!(
        out.header.get_type(),
        MessageType::Confirmable,
        "amplification guard"
    );
    ex.handle_datagram(
        now,
        &empty_packet(MessageType::Acknowledgement, out.header.message_id),
    );
    assert_eq!(events(&mut ex), vec![Event::Acked { handle }]);
    ex.notify(now, note, false, "ps/t").unwrap();
    assert_eq!(
        sent(&mut ex)[0].header.get_type(),
        MessageType::NonConfirmable
    );
}

#[test]
fn block1_reassembles_a_large_body() {
    let now = start();
    let mut ex = exchange();
    let body: Vec<u8> = (0..40u8).collect();
    for (num, chunk) in body.chunks(16).enumerate() {
        let mut req = request(MessageType::Confirmable, 30 + num as u16, b"b1", "ps/big");
        let more = (num + 1) * 16 < body.len();
        req.add_option(
            CoapOption::Block1,
            BlockValue {
                num: num as u32,
                more,
                szx: 0,
            }
            .encode(),
        );
        req.payload = chunk.to_vec();
        ex.handle_datagram(now, &bytes(&req));
        if more {
            assert!(events(&mut ex).is_empty());
            let cont = sent(&mut ex).remove(0);
            assert_eq!(
                cont.header.code,
                MessageClass::Response(ResponseType::Continue)
            );
            assert_eq!(
                BlockValue::of(&cont, CoapOption::Block1),
                Some(Some(BlockValue {
                    num: num as u32,
                    more: true,
                    szx: 0
                }))
            );
        }
    }
    let (id, req) = the_request(&mut ex);
    assert_eq!(req.payload, body);
    assert!(req.get_first_option(CoapOption::Block1).is_none());
    ex.respond(now, &id, changed());
    let resp = sent(&mut ex).remove(0);
    assert_eq!(
        BlockValue::of(&resp, CoapOption::Block1),
        Some(Some(BlockValue {
            num: 2,
            more: false,
            szx: 0
        }))
    );
}

#[test]
fn block1_refuses_too_large_and_out_of_order_bodies() {
    let now = start();
    let config = ExchangeConfig {
        max_body_size: 32,
        ..ExchangeConfig::default()
    };
    let mut ex = Exchange::new("127.0.0.1:1".parse().unwrap(), config, 1);
    let mut first = request(MessageType::Confirmable, 1, b"x", "ps/big");
    first.add_option(
        CoapOption::Block1,
        BlockValue {
            num: 0,
            more: true,
            szx: 0,
        }
        .encode(),
    );
    first.add_option(CoapOption::Size1, uint(100));
    first.payload = vec![0; 16];
    ex.handle_datagram(now, &bytes(&first));
    let resp = sent(&mut ex).remove(0);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::RequestEntityTooLarge)
    );
    assert_eq!(resp.get_first_option(CoapOption::Size1), Some(&uint(32)));

    let mut skip = request(MessageType::Confirmable, 2, b"x", "ps/big");
    skip.add_option(
        CoapOption::Block1,
        BlockValue {
            num: 3,
            more: true,
            szx: 0,
        }
        .encode(),
    );
    skip.payload = vec![0; 16];
    ex.handle_datagram(now, &bytes(&skip));
    let resp = sent(&mut ex).remove(0);
    assert_eq!(
        resp.header.code,
        MessageClass::Response(ResponseType::RequestEntityIncomplete)
    );

    // Blocks that add up past the limit without announcing Size1.
    for num in 0..3u32 {
        let mut block = request(MessageType::Confirmable, 10 + num as u16, b"x", "ps/big");
        block.add_option(
            CoapOption::Block1,
            BlockValue {
                num,
                more: true,
                szx: 0,
            }
            .encode(),
        );
        block.payload = vec![0; 16];
        ex.handle_datagram(now, &bytes(&block));
    }
    let codes: Vec<_> = sent(&mut ex).iter().map(|p| p.header.code).collect();
    assert_eq!(
        codes.last(),
        Some(&MessageClass::Response(ResponseType::RequestEntityTooLarge))
    );
    assert!(events(&mut ex).is_empty());
}

/// RELIABILITY 35: a large answer to an unverified peer goes in 64-byte blocks; the rest is
/// fetched with Block2.
#[test]
fn block2_serves_a_large_response_in_small_blocks() {
    let now = start();
    let mut ex = exchange();
    let mut get = request(MessageType::Confirmable, 40, b"g", "ps/retained");
    get.header.code = MessageClass::Request(RequestType::Get);
    ex.handle_datagram(now, &bytes(&get));
    let (id, _) = the_request(&mut ex);
    let body: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    let mut content = Packet::new();
    content.header.code = MessageClass::Response(ResponseType::Content);
    content.payload = body.clone();
    ex.respond(now, &id, content);
    let first = sent(&mut ex).remove(0);
    assert_eq!(first.payload.len(), 64);
    assert!(first.payload.len() * 3 < body.len() + 64 * 3);
    assert_eq!(first.get_first_option(CoapOption::Size2), Some(&uint(200)));
    let mut got = first.payload.clone();
    let mut block = BlockValue::of(&first, CoapOption::Block2).unwrap().unwrap();
    let mut mid = 41;
    while block.more {
        let mut next = request(MessageType::Confirmable, mid, b"g2", "ps/retained");
        next.header.code = MessageClass::Request(RequestType::Get);
        next.add_option(
            CoapOption::Block2,
            BlockValue {
                num: block.num + 1,
                more: false,
                szx: block.szx,
            }
            .encode(),
        );
        ex.handle_datagram(now, &bytes(&next));
        assert!(events(&mut ex).is_empty(), "served from the cache");
        let resp = sent(&mut ex).remove(0);
        assert_eq!(resp.get_token(), b"g2");
        got.extend_from_slice(&resp.payload);
        block = BlockValue::of(&resp, CoapOption::Block2).unwrap().unwrap();
        mid += 1;
    }
    assert_eq!(got, body);
}

#[test]
fn malformed_datagrams_are_rejected_or_dropped() {
    let now = start();
    let mut ex = exchange();
    // CON header with a token length of 9: a format error, RST.
    ex.handle_datagram(now, &[0x49, 0x01, 0x12, 0x34, 1, 2, 3]);
    let rst = sent(&mut ex);
    assert_eq!(rst.len(), 1);
    assert_eq!(rst[0].header.get_type(), MessageType::Reset);
    assert_eq!(rst[0].header.message_id, 0x1234);
    for garbage in [
        &[][..],
        &[0x40],
        &[0xFF; 3],
        &[0x50, 0x01, 0, 1, 0xF0],
        &[0x80, 1, 2, 3],
    ] {
        ex.handle_datagram(now, garbage);
    }
    assert!(events(&mut ex).is_empty());
    assert!(ex.malformed() >= 5);
    // A ping gets a RST.
    ex.handle_datagram(now, &empty_packet(MessageType::Confirmable, 99));
    assert_eq!(
        sent(&mut ex).last().unwrap().header.get_type(),
        MessageType::Reset
    );
}

#[test]
fn outstanding_messages_are_capped() {
    let now = start();
    let mut ex = exchange();
    for _ in 0..32 {
        ex.send_request(now, Packet::new(), true).unwrap();
    }
    assert_eq!(
        ex.send_request(now, Packet::new(), true),
        Err(SendError::Busy)
    );
    assert_eq!(
        ex.notify(now, Packet::new(), true, ""),
        Err(SendError::Busy)
    );
}

#[test]
fn a_response_in_block2_blocks_is_fetched_and_reported_whole() {
    let now = start();
    let mut ex = exchange();
    let mut read = Packet::new();
    read.header.code = MessageClass::Request(RequestType::Get);
    read.add_option(CoapOption::UriPath, b"3".to_vec());
    let handle = ex.send_request(now, read, true).unwrap();
    let body: Vec<u8> = (0..40u8).collect();
    let mut req = sent(&mut ex).remove(0);
    for (num, chunk) in body.chunks(16).enumerate() {
        assert_eq!(
            req.get_first_option(CoapOption::UriPath),
            Some(&b"3".to_vec())
        );
        if num > 0 {
            let asked = BlockValue::of(&req, CoapOption::Block2).unwrap().unwrap();
            assert_eq!(asked.num, num as u32);
        }
        let mut resp = Packet::new();
        resp.header.set_type(MessageType::Acknowledgement);
        resp.header.message_id = req.header.message_id;
        resp.header.code = MessageClass::Response(ResponseType::Content);
        resp.set_token(req.get_token().to_vec());
        let more = (num + 1) * 16 < body.len();
        resp.add_option(
            CoapOption::Block2,
            BlockValue {
                num: num as u32,
                more,
                szx: 0,
            }
            .encode(),
        );
        resp.payload = chunk.to_vec();
        ex.handle_datagram(now, &bytes(&resp));
        if more {
            assert!(
                events(&mut ex).is_empty(),
                "block {num} is not reported alone"
            );
            req = sent(&mut ex).remove(0);
        }
    }
    match events(&mut ex).as_slice() {
        [
            Event::Response {
                handle: h,
                response,
            },
        ] => {
            assert_eq!(*h, handle);
            assert_eq!(response.payload, body);
            assert!(response.get_first_option(CoapOption::Block2).is_none());
        }
        other => panic!("expected the whole response, got {other:?}"),
    }
    assert!(ex.is_idle());
}
