//! Downlink JSON commands to [`DeviceRequest`]s, and the uplink JSON documents.
//!
//! A command is `{"reqID": <any>, "msgType": "<op>", "data": {...}}`; every top-level key but
//! `data` is echoed back, in the command's order, in the response, with `data` replaced by
//! `{"reqPath", "code", "codeMsg"[, "content"]}` (GATEWAYS.md §2). The echo keeps key order
//! without serde_json's `preserve_order` feature (which would change JSON key order for the
//! whole workspace): top-level keys are read into an ordered list and documents are written
//! key by key.

use std::fmt::{self, Write as _};

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use thiserror::Error;

use crate::{
    content::{self, ContentError, ContentFormat, WriteItem},
    path::LwPath,
};

/// A CoAP request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET (read, discover, observe).
    Get,
    /// POST (execute, create, batch write of an instance).
    Post,
    /// PUT (write, write-attributes).
    Put,
    /// DELETE.
    Delete,
}

/// A request to send to a device, transport-neutral: the CoAP exchange layer frames it (CON,
/// token, message id) and reports its outcome by the handle it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The method.
    pub method: Method,
    /// Uri-Path segments, e.g. `["3", "0", "1"]`.
    pub path: Vec<String>,
    /// Uri-Query values, e.g. `["pmin=1", "pmax=5"]`.
    pub queries: Vec<String>,
    /// The Observe option (0 = register, 1 = deregister).
    pub observe: Option<u32>,
    /// The Accept option.
    pub accept: Option<ContentFormat>,
    /// The Content-Format option.
    pub content_format: Option<ContentFormat>,
    /// The payload.
    pub payload: Bytes,
}

/// A CoAP response code, `class.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode {
    /// The class (2, 4 or 5).
    pub class: u8,
    /// The detail (0 to 31).
    pub detail: u8,
}

impl ResponseCode {
    /// 2.01 Created.
    pub const CREATED: Self = Self::new(2, 1);
    /// 2.02 Deleted.
    pub const DELETED: Self = Self::new(2, 2);
    /// 2.04 Changed.
    pub const CHANGED: Self = Self::new(2, 4);
    /// 2.05 Content.
    pub const CONTENT: Self = Self::new(2, 5);
    /// 4.00 Bad Request.
    pub const BAD_REQUEST: Self = Self::new(4, 0);
    /// 4.04 Not Found.
    pub const NOT_FOUND: Self = Self::new(4, 4);
    /// 5.03 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self::new(5, 3);
    /// 5.04 Gateway Timeout.
    pub const GATEWAY_TIMEOUT: Self = Self::new(5, 4);

    /// A code from its class and detail.
    pub const fn new(class: u8, detail: u8) -> Self {
        Self { class, detail }
    }

    /// The code from the CoAP code byte (`class << 5 | detail`).
    pub const fn from_byte(byte: u8) -> Self {
        Self::new(byte >> 5, byte & 0x1F)
    }

    /// Whether the class is 2 (success).
    pub fn is_success(self) -> bool {
        self.class == 2
    }

    /// EMQX's `codeMsg` for this code (`emqx_lwm2m_cmd:code/1`); `unknown` otherwise.
    pub fn msg(self) -> &'static str {
        match (self.class, self.detail) {
            (2, 1) => "created",
            (2, 2) => "deleted",
            (2, 3) => "valid",
            (2, 4) => "changed",
            (2, 5) => "content",
            (2, 31) => "continue",
            (4, 0) => "bad_request",
            (4, 1) => "unauthorized",
            (4, 2) => "bad_option",
            (4, 3) => "forbidden",
            (4, 4) => "not_found",
            (4, 5) => "method_not_allowed",
            (4, 6) => "not_acceptable",
            (4, 8) => "request_entity_incomplete",
            (4, 12) => "precondition_failed",
            (4, 13) => "request_entity_too_large",
            (4, 15) => "unsupported_content_format",
            (5, 0) => "internal_server_error",
            (5, 1) => "not_implemented",
            (5, 2) => "bad_gateway",
            (5, 3) => "service_unavailable",
            (5, 4) => "gateway_timeout",
            (5, 5) => "proxying_not_supported",
            _ => "unknown",
        }
    }
}

impl fmt::Display for ResponseCode {
    /// `"2.05"`, as EMQX's `code` string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.class, self.detail)
    }
}

/// Why a command could not become a device request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The payload is not a JSON object.
    #[error("command is not a JSON object: {0}")]
    NotJson(String),
    /// `msgType` is missing or not a string.
    #[error("command has no msgType")]
    NoMsgType,
    /// `msgType` is not one of the known operations.
    #[error("unknown msgType {0:?}")]
    UnknownMsgType(String),
    /// A required `data` field is missing or of the wrong JSON type.
    #[error("command data has no valid {0:?}")]
    MissingField(&'static str),
    /// A path is not an LwM2M path or has the wrong depth.
    #[error("bad path {0:?}")]
    BadPath(String),
    /// A value could not be encoded.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// The operations of the downlink JSON (`msgType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// `read`.
    Read,
    /// `discover`.
    Discover,
    /// `write` (single or batch).
    Write,
    /// `write-attr`.
    WriteAttr,
    /// `execute`.
    Execute,
    /// `create`.
    Create,
    /// `delete`.
    Delete,
    /// `observe`.
    Observe,
    /// `cancel-observe`.
    CancelObserve,
}

impl MsgType {
    /// Parses the `msgType` string.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "read" => Self::Read,
            "discover" => Self::Discover,
            "write" => Self::Write,
            "write-attr" => Self::WriteAttr,
            "execute" => Self::Execute,
            "create" => Self::Create,
            "delete" => Self::Delete,
            "observe" => Self::Observe,
            "cancel-observe" => Self::CancelObserve,
            _ => return None,
        })
    }
}

/// A downlink command: its top-level keys in order (without `data`), and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    fields: Vec<(String, Value)>,
    data: Value,
}

struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    // A repeated key keeps its first position and its last value, as a map.
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value,
                        None => out.push((key, value)),
                    }
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

fn push_json(out: &mut String, key: &str, value: &Value) {
    if !out.ends_with('{') {
        out.push(',');
    }
    // Strings and values always serialize; a failure would be a serde_json bug.
    let _ = write!(
        out,
        "{}:{}",
        serde_json::to_string(key).unwrap_or_default(),
        serde_json::to_string(value).unwrap_or_default()
    );
}

fn split_path(path: &str) -> (&str, Vec<String>) {
    match path.split_once('?') {
        Some((p, q)) => (
            p,
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        None => (path, Vec::new()),
    }
}

impl Command {
    /// Parses a command payload; only the outer shape (a JSON object) is checked here, so that
    /// an invalid command can still be answered with its keys echoed.
    pub fn parse(payload: &[u8]) -> Result<Self, CommandError> {
        let Ordered(mut fields) =
            serde_json::from_slice(payload).map_err(|e| CommandError::NotJson(e.to_string()))?;
        let data = match fields.iter().position(|(k, _)| k == "data") {
            Some(i) => fields.remove(i).1,
            None => Value::Null,
        };
        Ok(Self { fields, data })
    }

    /// A command built by the gateway itself (auto-observe): `{"msgType", extra..., "data"}`.
    pub fn synthetic(msg_type: &str, extra: Vec<(String, Value)>, data: Value) -> Self {
        let mut fields = vec![("msgType".to_owned(), Value::String(msg_type.to_owned()))];
        fields.extend(extra);
        Self { fields, data }
    }

    /// The `msgType` string, if any.
    pub fn msg_type_str(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == "msgType")
            .and_then(|(_, v)| v.as_str())
    }

    /// The operation.
    pub fn msg_type(&self) -> Result<MsgType, CommandError> {
        let text = self.msg_type_str().ok_or(CommandError::NoMsgType)?;
        MsgType::parse(text).ok_or_else(|| CommandError::UnknownMsgType(text.to_owned()))
    }

    /// The original `data`.
    pub fn data(&self) -> &Value {
        &self.data
    }

    fn data_str(&self, key: &'static str) -> Result<&str, CommandError> {
        self.data
            .get(key)
            .and_then(Value::as_str)
            .ok_or(CommandError::MissingField(key))
    }

    /// `reqPath`: `data.path` (or `data.basePath`) without its query.
    pub fn req_path(&self) -> String {
        let raw = self
            .data_str("path")
            .or_else(|_| self.data_str("basePath"))
            .unwrap_or("");
        split_path(raw).0.to_owned()
    }

    /// The LwM2M path the command targets (without query).
    pub fn lw_path(&self) -> Result<LwPath, CommandError> {
        let path = self.req_path();
        LwPath::parse(&path).map_err(|_| CommandError::BadPath(path))
    }

    /// The device request for this command (GATEWAYS.md §2, `emqx_lwm2m_cmd:mqtt_to_coap/2`).
    pub fn to_request(&self) -> Result<DeviceRequest, CommandError> {
        let msg_type = self.msg_type()?;
        let key = match msg_type {
            MsgType::Create => "basePath",
            MsgType::Write if self.data.get("basePath").is_some() => "basePath",
            _ => "path",
        };
        let raw = self.data_str(key)?;
        let (path_text, mut queries) = split_path(raw);
        let path = LwPath::parse(path_text).map_err(|_| CommandError::BadPath(raw.to_owned()))?;
        let mut request = DeviceRequest {
            method: Method::Get,
            path: path.ids().iter().map(u16::to_string).collect(),
            queries: Vec::new(),
            observe: None,
            accept: None,
            content_format: None,
            payload: Bytes::new(),
        };
        match msg_type {
            MsgType::Read => {}
            MsgType::Discover => request.accept = Some(ContentFormat::LINK_FORMAT),
            MsgType::Observe => request.observe = Some(0),
            MsgType::CancelObserve => request.observe = Some(1),
            MsgType::Delete => request.method = Method::Delete,
            MsgType::Execute => {
                request.method = Method::Post;
                request.content_format = Some(ContentFormat::TEXT);
                if let Some(args) = self.data.get("args").and_then(Value::as_str) {
                    request.payload = Bytes::copy_from_slice(args.as_bytes());
                }
            }
            MsgType::WriteAttr => {
                request.method = Method::Put;
                for attr in ["pmin", "pmax", "gt", "lt", "st"] {
                    match self.data.get(attr) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => queries.push(format!("{attr}={s}")),
                        Some(Value::Number(n)) => queries.push(format!("{attr}={n}")),
                        Some(_) => return Err(CommandError::MissingField(attr)),
                    }
                }
            }
            MsgType::Write if key == "basePath" => {
                request.method = match path.depth() {
                    2 => Method::Post,
                    3 => Method::Put,
                    _ => return Err(CommandError::BadPath(raw.to_owned())),
                };
                request.content_format = Some(ContentFormat::TLV);
                request.payload = content::encode_write(&path, &self.items()?)?;
            }
            MsgType::Write => {
                let (Some(parent), Some(last)) = (path.parent(), path.ids().last()) else {
                    return Err(CommandError::BadPath(raw.to_owned()));
                };
                if path.depth() < 3 {
                    return Err(CommandError::BadPath(raw.to_owned()));
                }
                let item = WriteItem {
                    path: last.to_string(),
                    ty: self.data_str("type")?.to_owned(),
                    value: self
                        .data
                        .get("value")
                        .cloned()
                        .ok_or(CommandError::MissingField("value"))?,
                };
                request.method = Method::Put;
                request.content_format = Some(ContentFormat::TLV);
                request.payload = content::encode_write(&parent, &[item])?;
            }
            MsgType::Create => {
                request.method = Method::Post;
                request.content_format = Some(ContentFormat::TLV);
                request.payload = content::encode_write(&path, &self.items()?)?;
            }
        }
        request.queries = queries;
        Ok(request)
    }

    fn items(&self) -> Result<Vec<WriteItem>, CommandError> {
        let list = self
            .data
            .get("content")
            .and_then(Value::as_array)
            .ok_or(CommandError::MissingField("content"))?;
        list.iter()
            .map(|entry| {
                let field = |k: &'static str| {
                    entry
                        .get(k)
                        .and_then(Value::as_str)
                        .ok_or(CommandError::MissingField(k))
                };
                Ok(WriteItem {
                    path: field("path")?.to_owned(),
                    ty: field("type")?.to_owned(),
                    value: entry
                        .get("value")
                        .cloned()
                        .ok_or(CommandError::MissingField("value"))?,
                })
            })
            .collect()
    }

    fn envelope(&self, msg_type: Option<&str>, seq_num: Option<u32>, data: &str) -> String {
        let mut out = String::from("{");
        for (key, value) in &self.fields {
            match (key.as_str(), msg_type) {
                ("msgType", Some(replacement)) => {
                    push_json(&mut out, key, &Value::String(replacement.to_owned()));
                }
                _ => push_json(&mut out, key, value),
            }
        }
        if let Some(seq) = seq_num {
            push_json(&mut out, "seqNum", &Value::from(seq));
        }
        if !out.ends_with('{') {
            out.push(',');
        }
        out.push_str("\"data\":");
        out.push_str(data);
        out.push('}');
        out
    }

    /// The response document: the command's keys, then `seqNum` when given (an observe
    /// response whose Observe option is not 0), then `data` =
    /// `{"reqPath","code","codeMsg"[,"content"]}`.
    pub fn response_json(
        &self,
        code: ResponseCode,
        content: Option<&Value>,
        seq_num: Option<u32>,
    ) -> String {
        self.envelope(
            None,
            seq_num,
            &response_data(&self.req_path(), code, content),
        )
    }

    /// A notification of this observe command: `msgType` `notify`, `seqNum`, and `data`.
    pub fn notify_json(&self, seq_num: u32, code: ResponseCode, content: Option<&Value>) -> String {
        let data = response_data(&self.req_path(), code, content);
        self.envelope(Some("notify"), Some(seq_num), &data)
    }

    /// A transport event (`ack`, `coap_timeout`, `coap_reset`): the command with `msgType`
    /// replaced and its original `data`.
    pub fn event_json(&self, msg_type: &str) -> String {
        let data = serde_json::to_string(&self.data).unwrap_or_else(|_| "null".to_owned());
        self.envelope(Some(msg_type), None, &data)
    }
}

fn response_data(req_path: &str, code: ResponseCode, content: Option<&Value>) -> String {
    let mut out = String::from("{");
    push_json(&mut out, "reqPath", &Value::String(req_path.to_owned()));
    push_json(&mut out, "code", &Value::String(code.to_string()));
    push_json(&mut out, "codeMsg", &Value::String(code.msg().to_owned()));
    if let Some(content) = content {
        push_json(&mut out, "content", content);
    }
    out.push('}');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(json: &str) -> DeviceRequest {
        Command::parse(json.as_bytes())
            .unwrap()
            .to_request()
            .unwrap()
    }

    fn segs(path: &[&str]) -> Vec<String> {
        path.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn read_discover_observe_delete() {
        let read = request(r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}"#);
        assert_eq!(
            (read.method, read.path.clone()),
            (Method::Get, segs(&["3", "0", "1"]))
        );
        assert_eq!(
            (read.observe, read.accept, read.payload.len()),
            (None, None, 0)
        );
        let discover = request(r#"{"msgType":"discover","data":{"path":"/3/0"}}"#);
        assert_eq!(discover.accept, Some(ContentFormat::LINK_FORMAT));
        let observe = request(r#"{"msgType":"observe","data":{"path":"/3/0/10"}}"#);
        assert_eq!((observe.method, observe.observe), (Method::Get, Some(0)));
        let cancel = request(r#"{"msgType":"cancel-observe","data":{"path":"/3/0/10"}}"#);
        assert_eq!(cancel.observe, Some(1));
        let delete = request(r#"{"msgType":"delete","data":{"path":"/5/0"}}"#);
        assert_eq!(
            (delete.method, delete.path),
            (Method::Delete, segs(&["5", "0"]))
        );
        let with_query = request(r#"{"msgType":"read","data":{"path":"/3/0/1?a=1&b"}}"#);
        assert_eq!(with_query.queries, ["a=1", "b"]);
        assert_eq!(with_query.path, segs(&["3", "0", "1"]));
    }

    #[test]
    fn writes() {
        let single = request(
            r#"{"msgType":"write","data":{"path":"/31024/11/1","type":"String","value":"x"}}"#,
        );
        assert_eq!(single.method, Method::Put);
        assert_eq!(single.content_format, Some(ContentFormat::TLV));
        assert_eq!(&single.payload[..], &[0xC1, 0x01, b'x']);
        let batch = request(
            r#"{"msgType":"write","data":{"basePath":"/31024/11","content":[
                {"path":"1","type":"String","value":"a"},{"path":"2","type":"Integer","value":2}]}}"#,
        );
        assert_eq!(batch.method, Method::Post);
        assert_eq!(&batch.payload[..], &[0xC1, 0x01, b'a', 0xC1, 0x02, 2]);
        let multi = request(
            r#"{"msgType":"write","data":{"basePath":"/3/0/7","content":[
                {"path":"0","type":"Integer","value":1}]}}"#,
        );
        assert_eq!(multi.method, Method::Put);
        assert_eq!(&multi.payload[..], &[0x83, 0x07, 0x41, 0x00, 0x01]);
        let boolean = request(
            r#"{"msgType":"write","data":{"path":"/3311/0/5850","type":"Boolean","value":"true"}}"#,
        );
        assert_eq!(&boolean.payload[..], &[0xE1, 0x16, 0xDA, 0x01]);
    }

    #[test]
    fn write_attr_execute_create() {
        let attr = request(
            r#"{"msgType":"write-attr","data":{"path":"/3/0/9","pmin":"1","pmax":"5","gt":null,"lt":"5","other":"x"}}"#,
        );
        assert_eq!(attr.method, Method::Put);
        assert_eq!(attr.queries, ["pmin=1", "pmax=5", "lt=5"]);
        let exec = request(r#"{"msgType":"execute","data":{"path":"/3/0/4","args":"2,7"}}"#);
        assert_eq!(
            (exec.method, exec.content_format),
            (Method::Post, Some(ContentFormat::TEXT))
        );
        assert_eq!(&exec.payload[..], b"2,7");
        let bare = request(r#"{"msgType":"execute","data":{"path":"/3/0/4"}}"#);
        assert!(bare.payload.is_empty());
        let create = request(
            r#"{"msgType":"create","data":{"basePath":"/5","content":[{"path":"/0/1","type":"String","value":"u"}]}}"#,
        );
        assert_eq!((create.method, create.path), (Method::Post, segs(&["5"])));
        assert_eq!(&create.payload[..], &[0x03, 0x00, 0xC1, 0x01, b'u']);
    }

    #[test]
    fn bad_commands() {
        let err = |json: &str| Command::parse(json.as_bytes()).and_then(|c| c.to_request());
        assert!(matches!(err("[1]"), Err(CommandError::NotJson(_))));
        assert!(matches!(err("{"), Err(CommandError::NotJson(_))));
        assert_eq!(err(r#"{"data":{}}"#), Err(CommandError::NoMsgType));
        assert_eq!(
            err(r#"{"msgType":"fly","data":{}}"#),
            Err(CommandError::UnknownMsgType("fly".into()))
        );
        assert_eq!(
            err(r#"{"msgType":"read"}"#),
            Err(CommandError::MissingField("path"))
        );
        assert!(matches!(
            err(r#"{"msgType":"read","data":{"path":"/x"}}"#),
            Err(CommandError::BadPath(_))
        ));
        assert!(matches!(
            err(r#"{"msgType":"write","data":{"path":"/3/0","type":"String","value":"x"}}"#),
            Err(CommandError::BadPath(_))
        ));
        assert!(matches!(
            err(r#"{"msgType":"write","data":{"path":"/3/0/1","type":"Boolean","value":"x"}}"#),
            Err(CommandError::Content(_))
        ));
    }

    #[test]
    fn response_documents_match_the_emqx_examples() {
        let read =
            Command::parse(br#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/1"}}"#).unwrap();
        assert_eq!(
            read.response_json(
                ResponseCode::CONTENT,
                Some(&json!([{"path":"/3/0/1","value":"Lightweight M2M Client"}])),
                None
            ),
            r#"{"reqID":1,"msgType":"read","data":{"reqPath":"/3/0/1","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/1","value":"Lightweight M2M Client"}]}}"#
        );
        let exec =
            Command::parse(br#"{"reqID":4,"msgType":"execute","data":{"path":"/3/0/4"}}"#).unwrap();
        assert_eq!(
            exec.response_json(ResponseCode::new(4, 1), None, None),
            r#"{"reqID":4,"msgType":"execute","data":{"reqPath":"/3/0/4","code":"4.01","codeMsg":"unauthorized"}}"#
        );
        let create = Command::parse(
            br#"{"reqID":6,"msgType":"create","data":{"basePath":"/5","content":[]}}"#,
        )
        .unwrap();
        assert_eq!(
            create.response_json(ResponseCode::CREATED, None, None),
            r#"{"reqID":6,"msgType":"create","data":{"reqPath":"/5","code":"2.01","codeMsg":"created"}}"#
        );
        let attr = Command::parse(
            br#"{"reqID":8,"msgType":"write-attr","data":{"path":"/3/0/9?pmin=1"}}"#,
        )
        .unwrap();
        assert_eq!(
            attr.response_json(ResponseCode::CHANGED, None, None),
            r#"{"reqID":8,"msgType":"write-attr","data":{"reqPath":"/3/0/9","code":"2.04","codeMsg":"changed"}}"#
        );
        let observe =
            Command::parse(br#"{"reqID":307,"msgType":"observe","data":{"path":"/3/0/10"}}"#)
                .unwrap();
        assert_eq!(
            observe.notify_json(
                3,
                ResponseCode::CONTENT,
                Some(&json!([{"path":"/3/0/10","value":4096}]))
            ),
            r#"{"reqID":307,"msgType":"notify","seqNum":3,"data":{"reqPath":"/3/0/10","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/10","value":4096}]}}"#
        );
        let ack = Command::parse(
            br#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"path":"/3/0/0"}}"#,
        )
        .unwrap();
        assert_eq!(
            ack.event_json("ack"),
            r#"{"requestID":206,"cacheID":206,"msgType":"ack","data":{"path":"/3/0/0"}}"#
        );
    }

    #[test]
    fn echo_keeps_command_order_and_puts_data_last() {
        let command = Command::parse(
            br#"{"data":{"path":"/3/0/1?x=1"},"cacheID":"c","msgType":"read","reqID":[1,{"b":2}]}"#,
        )
        .unwrap();
        assert_eq!(command.req_path(), "/3/0/1");
        assert_eq!(
            command.response_json(ResponseCode::new(5, 3), None, None),
            r#"{"cacheID":"c","msgType":"read","reqID":[1,{"b":2}],"data":{"reqPath":"/3/0/1","code":"5.03","codeMsg":"service_unavailable"}}"#
        );
        assert_eq!(
            command.event_json("coap_reset"),
            r#"{"cacheID":"c","msgType":"coap_reset","reqID":[1,{"b":2}],"data":{"path":"/3/0/1?x=1"}}"#
        );
    }

    #[test]
    fn every_code_string_and_message() {
        let table = [
            (2, 1, "created"),
            (2, 2, "deleted"),
            (2, 3, "valid"),
            (2, 4, "changed"),
            (2, 5, "content"),
            (2, 31, "continue"),
            (4, 0, "bad_request"),
            (4, 1, "unauthorized"),
            (4, 2, "bad_option"),
            (4, 3, "forbidden"),
            (4, 4, "not_found"),
            (4, 5, "method_not_allowed"),
            (4, 6, "not_acceptable"),
            (4, 8, "request_entity_incomplete"),
            (4, 12, "precondition_failed"),
            (4, 13, "request_entity_too_large"),
            (4, 15, "unsupported_content_format"),
            (5, 0, "internal_server_error"),
            (5, 1, "not_implemented"),
            (5, 2, "bad_gateway"),
            (5, 3, "service_unavailable"),
            (5, 4, "gateway_timeout"),
            (5, 5, "proxying_not_supported"),
        ];
        for (class, detail, msg) in table {
            assert_eq!(ResponseCode::new(class, detail).msg(), msg);
        }
        assert_eq!(ResponseCode::from_byte(0x45).to_string(), "2.05");
        assert_eq!(ResponseCode::new(2, 31).to_string(), "2.31");
        assert_eq!(ResponseCode::new(4, 13).to_string(), "4.13");
    }
}
