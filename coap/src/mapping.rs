//! EMQX's CoAP URI scheme: which operation a request asks for (`ps/{topic}` publish, observe,
//! read; `mqtt/connection` connect, heartbeat, close), with its query parameters, or the error
//! code and diagnostic EMQX answers.

use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use crate::block::read_uint;

/// The query parameters EMQX reads, long or short names (`c`, `t`, `u`, `p`, `q`, `r`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `clientid` / `c`.
    pub client_id: Option<String>,
    /// `token` / `t`.
    pub token: Option<String>,
    /// `username` / `u`.
    pub username: Option<String>,
    /// `password` / `p`.
    pub password: Option<String>,
    /// `qos` / `q`.
    pub qos: Option<u8>,
    /// `retain` / `r`.
    pub retain: bool,
    /// `expiry`: message expiry, seconds.
    pub expiry: Option<Duration>,
    /// `nl`: No Local.
    pub no_local: bool,
    /// `rh`: Retain Handling (0, 1, 2).
    pub retain_handling: u8,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `POST mqtt/connection`: log in (connection mode).
    Connect,
    /// `PUT mqtt/connection`: heartbeat.
    Heartbeat,
    /// `DELETE mqtt/connection`: log out.
    Disconnect,
    /// `POST`/`PUT ps/{topic}`: publish the payload.
    Publish {
        /// The topic, percent-decoded, without the mountpoint.
        topic: String,
    },
    /// `GET ps/{filter}` with Observe 0: subscribe.
    Subscribe {
        /// The filter, percent-decoded, without the mountpoint.
        filter: String,
    },
    /// `GET ps/{filter}` with Observe 1: unsubscribe.
    Unsubscribe {
        /// The filter, percent-decoded, without the mountpoint.
        filter: String,
    },
    /// `GET ps/{topic}` without Observe: the retained message (beyond EMQX, which answers 4.00).
    Read {
        /// The topic, percent-decoded, without the mountpoint.
        topic: String,
    },
}

/// A request understood: the operation and its query.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The operation.
    pub op: Op,
    /// The query parameters.
    pub query: Query,
}

/// A request refused: the response code and its diagnostic payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The response code.
    pub code: ResponseType,
    /// The diagnostic payload (EMQX's wording where it has one).
    pub message: &'static str,
}

fn refuse(code: ResponseType, message: &'static str) -> Refusal {
    Refusal { code, message }
}

/// Works out what `request` asks for.
pub fn parse(request: &Packet) -> Result<Parsed, Refusal> {
    let MessageClass::Request(method) = request.header.code else {
        return Err(refuse(ResponseType::BadRequest, "not a request"));
    };
    let segments: Vec<String> = request
        .get_option(CoapOption::UriPath)
        .map(|list| {
            list.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let query = parse_query(request)?;
    let op = match segments.first().map(String::as_str) {
        Some("mqtt") if segments.len() == 2 && segments[1] == "connection" => match method {
            RequestType::Post => Op::Connect,
            RequestType::Put => Op::Heartbeat,
            RequestType::Delete => Op::Disconnect,
            _ => return Err(refuse(ResponseType::MethodNotAllowed, "method not allowed")),
        },
        Some("ps") => {
            let topic = percent_decode(&segments[1..].join("/"))
                .ok_or_else(|| refuse(ResponseType::BadRequest, "invalid topic"))?;
            if topic.is_empty() {
                return Err(refuse(ResponseType::BadRequest, "invalid topic"));
            }
            match method {
                RequestType::Post | RequestType::Put => Op::Publish { topic },
                RequestType::Get => match request.get_first_option(CoapOption::Observe) {
                    None => Op::Read { topic },
                    Some(value) => match read_uint(value) {
                        Some(0) if request.get_token().is_empty() => {
                            return Err(refuse(ResponseType::BadRequest, "observe without token"));
                        }
                        Some(0) => Op::Subscribe { filter: topic },
                        Some(1) => Op::Unsubscribe { filter: topic },
                        _ => return Err(refuse(ResponseType::BadRequest, "invalid observe value")),
                    },
                },
                _ => return Err(refuse(ResponseType::MethodNotAllowed, "method not allowed")),
            }
        }
        _ => return Err(refuse(ResponseType::BadRequest, "bad uri path")),
    };
    Ok(Parsed { op, query })
}

fn parse_query(request: &Packet) -> Result<Query, Refusal> {
    let mut query = Query::default();
    let Some(items) = request.get_option(CoapOption::UriQuery) else {
        return Ok(query);
    };
    for item in items {
        let item = String::from_utf8_lossy(item);
        let (key, value) = item.split_once('=').unwrap_or((&item, ""));
        let value = percent_decode(value)
            .ok_or_else(|| refuse(ResponseType::BadRequest, "invalid query"))?;
        match key {
            "clientid" | "c" => query.client_id = Some(value),
            "token" | "t" => query.token = Some(value),
            "username" | "u" => query.username = Some(value),
            "password" | "p" => query.password = Some(value),
            "qos" | "q" => {
                query.qos = Some(
                    value
                        .parse::<u8>()
                        .ok()
                        .filter(|q| *q <= 2)
                        .ok_or_else(|| refuse(ResponseType::BadRequest, "invalid qos"))?,
                );
            }
            "retain" | "r" => query.retain = value == "true" || value == "1",
            "expiry" => {
                let seconds = value
                    .parse::<u32>()
                    .map_err(|_| refuse(ResponseType::BadRequest, "invalid expiry"))?;
                query.expiry = (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)));
            }
            "nl" => query.no_local = value == "1" || value == "true",
            "rh" => {
                query.retain_handling = value
                    .parse::<u8>()
                    .ok()
                    .filter(|rh| *rh <= 2)
                    .ok_or_else(|| refuse(ResponseType::BadRequest, "invalid rh"))?;
            }
            // Unknown parameters are ignored, as EMQX does.
            _ => {}
        }
    }
    Ok(query)
}

/// Decodes `%XX` escapes (`%2B` is `+`, `%23` is `#`); `None` for a bad escape or bytes that
/// are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(method: RequestType, path: &str, queries: &[&str], observe: Option<u32>) -> Packet {
        let mut packet = Packet::new();
        packet.header.code = MessageClass::Request(method);
        packet.set_token(vec![1, 2]);
        for segment in path.split('/') {
            packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
        }
        for q in queries {
            packet.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        if let Some(observe) = observe {
            packet.add_option(CoapOption::Observe, crate::block::uint(observe));
        }
        packet
    }

    #[test]
    fn ps_paths_map_to_publish_observe_and_read() {
        let parsed = parse(&request(
            RequestType::Post,
            "ps/a/b",
            &["q=1", "r=true", "expiry=10", "c=dev", "t=42"],
            None,
        ))
        .unwrap();
        assert_eq!(
            parsed.op,
            Op::Publish {
                topic: "a/b".into()
            }
        );
        assert_eq!(parsed.query.qos, Some(1));
        assert!(parsed.query.retain);
        assert_eq!(parsed.query.expiry, Some(Duration::from_secs(10)));
        assert_eq!(parsed.query.client_id.as_deref(), Some("dev"));
        assert_eq!(parsed.query.token.as_deref(), Some("42"));
        let parsed = parse(&request(
            RequestType::Get,
            "ps/a/%2B/%23",
            &["qos=2", "nl=1", "rh=2"],
            Some(0),
        ))
        .unwrap();
        assert_eq!(
            parsed.op,
            Op::Subscribe {
                filter: "a/+/#".into()
            }
        );
        assert!(parsed.query.no_local);
        assert_eq!(parsed.query.retain_handling, 2);
        assert_eq!(
            parse(&request(RequestType::Get, "ps/a", &[], Some(1)))
                .unwrap()
                .op,
            Op::Unsubscribe { filter: "a".into() }
        );
        assert_eq!(
            parse(&request(RequestType::Get, "ps/a", &[], None))
                .unwrap()
                .op,
            Op::Read { topic: "a".into() }
        );
        assert_eq!(
            parse(&request(RequestType::Put, "ps/x", &[], None))
                .unwrap()
                .op,
            Op::Publish { topic: "x".into() }
        );
    }

    #[test]
    fn errors_use_emqx_codes() {
        let code = |p: Packet| parse(&p).unwrap_err().code;
        assert_eq!(
            code(request(RequestType::Delete, "ps/a", &[], None)),
            ResponseType::MethodNotAllowed
        );
        assert_eq!(
            code(request(RequestType::Get, "other/a", &[], None)),
            ResponseType::BadRequest
        );
        assert_eq!(
            code(request(RequestType::Get, "ps", &[], None)),
            ResponseType::BadRequest
        );
        assert_eq!(
            code(request(RequestType::Get, "ps/a", &[], Some(7))),
            ResponseType::BadRequest
        );
        assert_eq!(
            code(request(RequestType::Post, "ps/a", &["qos=3"], None)),
            ResponseType::BadRequest
        );
        let mut no_token = request(RequestType::Get, "ps/a", &[], Some(0));
        no_token.set_token(Vec::new());
        assert_eq!(
            parse(&no_token).unwrap_err().message,
            "observe without token"
        );
        assert_eq!(
            code(request(RequestType::Get, "mqtt/connection", &[], None)),
            ResponseType::MethodNotAllowed
        );
    }

    #[test]
    fn connection_uris() {
        let parsed = parse(&request(
            RequestType::Post,
            "mqtt/connection",
            &["clientid=c1", "username=u", "password=p"],
            None,
        ))
        .unwrap();
        assert_eq!(parsed.op, Op::Connect);
        assert_eq!(parsed.query.username.as_deref(), Some("u"));
        assert_eq!(parsed.query.password.as_deref(), Some("p"));
        assert_eq!(
            parse(&request(RequestType::Put, "mqtt/connection", &[], None))
                .unwrap()
                .op,
            Op::Heartbeat
        );
        assert_eq!(
            parse(&request(RequestType::Delete, "mqtt/connection", &[], None))
                .unwrap()
                .op,
            Op::Disconnect
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
