//! An LwM2M device simulator on coap-lite, for the gateway tests: it registers with objects 3
//! (Device) and 3303 (Temperature) in CoRE link format, and answers the server's requests as a
//! real client does: GET of a resource in text/plain, of an instance in OMA-TLV, discover in
//! link format, PUT/POST/DELETE, Observe 0/1 with a sequence number, and sends notifications.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::coap::{Coap, request};

/// Content-Format numbers a device uses.
pub const TEXT: u16 = 0;
/// CoRE link format.
pub const LINK: u16 = 40;
/// OMA-TLV.
pub const TLV: u16 = 11542;

/// The object list the simulator registers with.
pub const OBJECTS: &str = "</1/0>,</3/0>,</3303/0>";

/// A simulated LwM2M client.
pub struct Device {
    /// Its CoAP endpoint.
    pub coap: Coap,
    /// The endpoint name.
    pub ep: String,
    /// Resource values by path (`/3/0/0`), as text.
    pub values: BTreeMap<String, String>,
    /// Observations: path → (token, last sequence number).
    observations: BTreeMap<String, (Vec<u8>, u32)>,
    /// The requests it answered, for the test to inspect.
    pub seen: Vec<Packet>,
}

/// A big-endian unsigned option value, shortest form.
pub fn uint(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// An unsigned option's value.
pub fn option_uint(packet: &Packet, option: CoapOption) -> Option<u32> {
    packet
        .get_first_option(option)
        .map(|v| v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// The Uri-Path of a request, `/a/b`.
pub fn uri_path(packet: &Packet) -> String {
    let segments: Vec<String> = packet
        .get_option(CoapOption::UriPath)
        .map(|v| {
            v.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    format!("/{}", segments.join("/"))
}

/// The Uri-Query values of a request.
pub fn uri_queries(packet: &Packet) -> Vec<String> {
    packet
        .get_option(CoapOption::UriQuery)
        .map(|v| {
            v.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One OMA-TLV resource entry (values shorter than 256 bytes).
fn tlv_resource(id: u16, value: &[u8]) -> Vec<u8> {
    let len = u8::try_from(value.len()).unwrap();
    // Type byte: 11 = resource with value, then the identifier width (0: 8 bits, 1: 16 bits),
    // then the length: in the low 3 bits when below 8, else in one following byte.
    let mut kind = 0xC0;
    if id > 255 {
        kind |= 0x20;
    }
    if len < 8 {
        kind |= len;
    } else {
        kind |= 0x08;
    }
    let mut out = vec![kind];
    match u8::try_from(id) {
        Ok(id) => out.push(id),
        Err(_) => out.extend_from_slice(&id.to_be_bytes()),
    }
    if len >= 8 {
        out.push(len);
    }
    out.extend_from_slice(value);
    out
}

impl Device {
    /// A device named `ep` talking to the gateway's LwM2M listener at `server`.
    pub async fn new(server: SocketAddr, ep: &str) -> Self {
        let values = [
            ("/3/0/0", "Tributary"),
            ("/3/0/1", "Sim-1"),
            ("/3/0/9", "87"),
            ("/3/0/15", "UTC"),
            ("/3303/0/5700", "21.5"),
            ("/3303/0/5701", "Cel"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            coap: Coap::new(server).await,
            ep: ep.to_owned(),
            values,
            observations: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    /// Sends a Register with `queries` (`ep=..` included by the caller) and the object list;
    /// returns the answer.
    pub async fn register_with(&mut self, queries: &[&str], payload: &str) -> Packet {
        let mut packet = request(RequestType::Post, "rd", queries);
        packet.add_option(CoapOption::ContentFormat, uint(u32::from(LINK)));
        packet.payload = payload.as_bytes().to_vec();
        self.coap.con(packet).await
    }

    /// Registers as `ep` with lifetime `lt`, binding U, LwM2M 1.0; returns the answer.
    pub async fn register(&mut self, lt: u32) -> Packet {
        let ep = format!("ep={}", self.ep);
        let lt = format!("lt={lt}");
        self.register_with(&[&ep, &lt, "lwm2m=1.0", "b=U"], OBJECTS)
            .await
    }

    /// Sends an Update to `rd/{ep}` with `queries` and an optional object list.
    pub async fn update(&mut self, queries: &[&str], payload: Option<&str>) -> Packet {
        let mut packet = request(RequestType::Post, &format!("rd/{}", self.ep), queries);
        if let Some(payload) = payload {
            packet.add_option(CoapOption::ContentFormat, uint(u32::from(LINK)));
            packet.payload = payload.as_bytes().to_vec();
        }
        self.coap.con(packet).await
    }

    /// Sends a De-register.
    pub async fn deregister(&mut self) -> Packet {
        let packet = request(RequestType::Delete, &format!("rd/{}", self.ep), &[]);
        self.coap.con(packet).await
    }

    /// Waits for the gateway's next request and answers it; returns the request.
    pub async fn serve_one(&mut self) -> Packet {
        let req = loop {
            let packet = self.coap.recv().await;
            if matches!(packet.header.code, MessageClass::Request(_)) {
                break packet;
            }
        };
        let reply = self.answer(&req);
        self.send_reply(&req, reply).await;
        self.seen.push(req.clone());
        req
    }

    /// Waits for the gateway's next request and answers it with an empty ACK only, then the
    /// response separately (CON) after `delay`; returns the request.
    pub async fn serve_one_separately(&mut self, delay: Duration) -> Packet {
        let req = loop {
            let packet = self.coap.recv().await;
            if matches!(packet.header.code, MessageClass::Request(_)) {
                break packet;
            }
        };
        self.coap.ack(&req).await;
        tokio::time::sleep(delay).await;
        let mut reply = self.answer(&req);
        reply.set_token(req.get_token().to_vec());
        self.coap.send(&mut reply, MessageType::Confirmable).await;
        req
    }

    /// Waits for the gateway's next request and rejects it with a RST; returns the request.
    pub async fn reset_one(&mut self) -> Packet {
        let req = loop {
            let packet = self.coap.recv().await;
            if matches!(packet.header.code, MessageClass::Request(_)) {
                break packet;
            }
        };
        self.coap.reset(&req).await;
        req
    }

    async fn send_reply(&self, req: &Packet, mut reply: Packet) {
        reply.header.set_type(MessageType::Acknowledgement);
        reply.header.message_id = req.header.message_id;
        reply.set_token(req.get_token().to_vec());
        self.coap
            .send_raw(&reply.to_bytes_unlimited().unwrap())
            .await;
    }

    fn content(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        if let Some(value) = self.values.get(path) {
            return Some((TEXT, value.as_bytes().to_vec()));
        }
        // An object instance: every resource under it, in TLV.
        let prefix = format!("{path}/");
        let mut tlv = Vec::new();
        for (key, value) in self.values.range(prefix.clone()..) {
            let Some(id) = key.strip_prefix(&prefix) else {
                break;
            };
            let id: u16 = id.parse().ok()?;
            // Typed as the object model says: integers in the fewest of 1, 2, 4, 8 bytes,
            // floats in 8, strings as UTF-8.
            let bytes = if let Ok(n) = value.parse::<i64>() {
                if let Ok(n) = i8::try_from(n) {
                    n.to_be_bytes().to_vec()
                } else {
                    n.to_be_bytes().to_vec()
                }
            } else if let Ok(f) = value.parse::<f64>() {
                f.to_be_bytes().to_vec()
            } else {
                value.as_bytes().to_vec()
            };
            tlv.extend(tlv_resource(id, &bytes));
        }
        (!tlv.is_empty()).then_some((TLV, tlv))
    }

    fn response(code: ResponseType) -> Packet {
        let mut packet = Packet::new();
        packet.header.code = MessageClass::Response(code);
        packet
    }

    /// What a device answers to `req`.
    fn answer(&mut self, req: &Packet) -> Packet {
        let path = uri_path(req);
        let MessageClass::Request(method) = req.header.code else {
            return Self::response(ResponseType::BadRequest);
        };
        match method {
            RequestType::Get if option_uint(req, CoapOption::Accept) == Some(u32::from(LINK)) => {
                let prefix = format!("{path}/");
                let mut links = vec![format!("<{path}>")];
                links.extend(
                    self.values
                        .keys()
                        .filter(|k| k.starts_with(&prefix))
                        .map(|k| format!("<{k}>")),
                );
                let mut reply = Self::response(ResponseType::Content);
                reply.add_option(CoapOption::ContentFormat, uint(u32::from(LINK)));
                reply.payload = links.join(",").into_bytes();
                reply
            }
            RequestType::Get => {
                let Some((format, payload)) = self.content(&path) else {
                    return Self::response(ResponseType::NotFound);
                };
                let mut reply = Self::response(ResponseType::Content);
                match option_uint(req, CoapOption::Observe) {
                    Some(0) => {
                        let entry = self
                            .observations
                            .entry(path.clone())
                            .or_insert((Vec::new(), 0));
                        entry.0 = req.get_token().to_vec();
                        entry.1 += 1;
                        reply.add_option(CoapOption::Observe, uint(entry.1));
                    }
                    Some(1) => {
                        self.observations.remove(&path);
                    }
                    _ => {}
                }
                reply.add_option(CoapOption::ContentFormat, uint(u32::from(format)));
                reply.payload = payload;
                reply
            }
            RequestType::Put => {
                if !uri_queries(req).is_empty() {
                    // Write-Attributes.
                    return Self::response(ResponseType::Changed);
                }
                if self.values.contains_key(&path) {
                    Self::response(ResponseType::Changed)
                } else {
                    Self::response(ResponseType::NotFound)
                }
            }
            RequestType::Post => {
                if path == "/3/0/4" {
                    Self::response(ResponseType::Changed)
                } else if path == "/3303" {
                    Self::response(ResponseType::Created)
                } else if path == "/3/0/0" {
                    Self::response(ResponseType::MethodNotAllowed)
                } else {
                    Self::response(ResponseType::NotFound)
                }
            }
            RequestType::Delete => {
                if path == "/3303/1" {
                    Self::response(ResponseType::Deleted)
                } else {
                    Self::response(ResponseType::NotFound)
                }
            }
            _ => Self::response(ResponseType::MethodNotAllowed),
        }
    }

    /// Sends a CON notification of the observed `path` with `value` as text, and waits for the
    /// gateway's ACK (or RST); returns that answer.
    pub async fn notify(&mut self, path: &str, value: &str) -> Packet {
        self.values.insert(path.to_owned(), value.to_owned());
        let (token, seq) = self
            .observations
            .get_mut(path)
            .map(|(token, seq)| {
                *seq += 1;
                (token.clone(), *seq)
            })
            .expect("notify of an unobserved path");
        self.notify_raw(token, seq, value).await
    }

    /// Sends a CON notification with `token` and sequence `seq`; returns the gateway's
    /// answer (ACK or RST).
    pub async fn notify_raw(&mut self, token: Vec<u8>, seq: u32, value: &str) -> Packet {
        let mut note = Self::response(ResponseType::Content);
        note.set_token(token);
        note.add_option(CoapOption::Observe, uint(seq));
        note.add_option(CoapOption::ContentFormat, uint(u32::from(TEXT)));
        note.payload = value.as_bytes().to_vec();
        let mid = self.coap.send(&mut note, MessageType::Confirmable).await;
        loop {
            let answer = self.coap.recv().await;
            if answer.header.message_id == mid
                && matches!(
                    answer.header.get_type(),
                    MessageType::Acknowledgement | MessageType::Reset
                )
            {
                return answer;
            }
        }
    }

    /// The token of the observation of `path`, if any.
    pub fn observation_token(&self, path: &str) -> Option<Vec<u8>> {
        self.observations.get(path).map(|(t, _)| t.clone())
    }
}
