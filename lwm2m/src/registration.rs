//! The per-device LwM2M session: registration interface, command delivery, information
//! reporting, as a sans-IO state machine.
//!
//! # Call order
//!
//! The driver owns one [`Session`] per registered endpoint and:
//! 1. feeds it with `handle_*` calls: `handle_register` / `handle_update` /
//!    `handle_deregister` for registration requests (each returns the [`DeviceReply`] to send
//!    back at once), `handle_command` for MQTT publishes on the command topic, `handle_response`
//!    / `handle_ack` / `handle_exchange_timeout` / `handle_reset` / `handle_notification` for
//!    the outcome of a [`DeviceRequest`] it sent (by the [`RequestHandle`] it was sent with), and
//!    `handle_timeout(now)` when [`Session::poll_timeout`] is reached;
//! 2. then drains [`Session::poll_output`] until `None`: requests to send to the device, MQTT
//!    publishes and subscriptions, and `Close`;
//! 3. sleeps until [`Session::poll_timeout`] or the next input.
//!
//! # Wiring (done by the driver, not here)
//!
//! The driver keeps the endpoint → session map: a Register for a new endpoint creates a
//! session (refuse it with 4.xx when the registration count is at its cap, RELIABILITY.md item
//! 38), one for an endpoint already registered from another address goes to that session;
//! Update and De-register are routed by their location path (`rd/{ep}`; unknown → 4.04). It maps
//! each [`RequestHandle`] to the CoAP token of the request it sent, forwards notifications with
//! the handle of the observe request that started them (and answers RST when
//! [`Session::handle_notification`] returns `false`), authenticates with [`Session::identity`]
//! after the first successful Register, and turns `Publish`/`Subscribe`/`Close` into broker
//! calls on the device's virtual client.
//!
//! # Delivery
//!
//! One CON command is outstanding at a time; later ones wait in a bounded FIFO
//! ([`Lwm2mSettings::max_queued_commands`]; beyond it a command is answered at once with
//! `5.03 service_unavailable`), each for at most [`Lwm2mSettings::command_ttl`] (then answered
//! with `5.04 gateway_timeout`). In queue mode (`b` ∈ {UQ, SQ, UQS} or a queue-mode `apn`)
//! commands are sent only within `qmode_time_window` after an uplink, and otherwise held until
//! the next uplink (Register, Update, a response or a notification).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::{
    command::{Command, DeviceRequest, MsgType, ResponseCode},
    content::{self, ContentFormat},
    link::{self, LinkLimits},
    object::ObjectRegistry,
    path::LwPath,
    settings::{Lwm2mSettings, UpdatePublishCondition, render_mountpoint},
};

/// Objects never auto-observed (`emqx_lwm2m_session` `IGNORE_OBJECT`).
pub const AUTO_OBSERVE_IGNORED: [u16; 9] = [0, 1, 2, 4, 5, 6, 7, 9, 15];

/// `apn` values that put a device in queue mode, as EMQX.
const QUEUE_MODE_APNS: [&str; 4] = [
    "Ctnb",
    "psmA.eDRX0.ctnb",
    "psmC.eDRX0.ctnb",
    "psmF.eDRXC.ctnb",
];

/// Most URI queries accepted on Register/Update, and the longest value.
const MAX_QUERIES: usize = 32;
const MAX_QUERY_LEN: usize = 256;

/// Query keys never published in register/update events (GATEWAYS.md defect 7).
const SENSITIVE_KEYS: [&str; 1] = ["password"];

/// Identifies a [`DeviceRequest`] the session asked to send; the driver reports the request's
/// outcome with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(pub u64);

/// The immediate reply to a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReply {
    /// The response code.
    pub code: ResponseCode,
    /// Location-Path segments (Register: `["rd", ep]`).
    pub location_path: Vec<String>,
    /// Diagnostic text (e.g. `Login Failed: invalid queries`), empty on success.
    pub payload: String,
}

impl DeviceReply {
    fn ok(code: ResponseCode) -> Self {
        Self {
            code,
            location_path: Vec::new(),
            payload: String::new(),
        }
    }

    fn error(code: ResponseCode, text: &str) -> Self {
        Self {
            code,
            location_path: Vec::new(),
            payload: text.to_owned(),
        }
    }
}

/// A device's response (piggybacked or separate) or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceResponse {
    /// The response code.
    pub code: ResponseCode,
    /// Its Content-Format option.
    pub content_format: Option<ContentFormat>,
    /// Its Observe option.
    pub observe: Option<u32>,
    /// Its payload.
    pub payload: Bytes,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The device sent De-register.
    Deregistered,
    /// The lifetime passed with no uplink (EMQX: `timeout`).
    LifetimeExpired,
}

/// What the session asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a request to the device (as CON) and report its outcome with `handle`.
    Send {
        /// The handle to report with.
        handle: RequestHandle,
        /// The request.
        request: DeviceRequest,
    },
    /// Publish an MQTT message.
    Publish {
        /// The full topic.
        topic: String,
        /// The JSON payload.
        payload: String,
        /// The QoS.
        qos: u8,
    },
    /// Subscribe the device's virtual client to a topic filter.
    Subscribe {
        /// The full topic filter.
        topic_filter: String,
        /// The QoS.
        qos: u8,
    },
    /// End the session (no MQTT message is due, as EMQX).
    Close {
        /// Why.
        reason: CloseReason,
    },
}

/// Who the device is, from its Register queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The endpoint name (`ep`).
    pub endpoint: String,
    /// The MQTT client id: `device_id` or `ep`.
    pub clientid: String,
    /// The username: `imei` or `ep`.
    pub username: String,
    /// The password, for authentication only (never published).
    pub password: Option<String>,
}

#[derive(Debug)]
struct Queued {
    command: Command,
    deadline: Instant,
}

#[derive(Debug)]
struct Registration {
    identity: Identity,
    /// Every query of the latest Register merged with later Updates.
    info: BTreeMap<String, String>,
    lifetime: Duration,
    alternate_path: Option<String>,
    objects: Option<Vec<String>>,
}

/// The state of one registered LwM2M device. See the module documentation for the call order.
#[derive(Debug)]
pub struct Session {
    settings: Arc<Lwm2mSettings>,
    registry: Arc<ObjectRegistry>,
    registration: Option<Registration>,
    mountpoint: String,
    subscribed: bool,
    last_uplink: Option<Instant>,
    queue: VecDeque<Queued>,
    inflight: Option<RequestHandle>,
    pending: BTreeMap<RequestHandle, Command>,
    observations: BTreeMap<RequestHandle, Command>,
    next_handle: u64,
    outputs: VecDeque<Output>,
    closed: bool,
}

/// `now + d`, saturating far in the future instead of panicking on a huge configured duration.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn parse_queries(queries: &[String]) -> Option<Vec<(String, String)>> {
    if queries.len() > MAX_QUERIES {
        return None;
    }
    queries
        .iter()
        .map(|q| {
            if q.len() > MAX_QUERY_LEN {
                return None;
            }
            let (k, v) = q.split_once('=').unwrap_or((q, ""));
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

impl Session {
    /// A session for a device that is about to register.
    pub fn new(settings: Arc<Lwm2mSettings>, registry: Arc<ObjectRegistry>) -> Self {
        Self {
            settings,
            registry,
            registration: None,
            mountpoint: String::new(),
            subscribed: false,
            last_uplink: None,
            queue: VecDeque::new(),
            inflight: None,
            pending: BTreeMap::new(),
            observations: BTreeMap::new(),
            next_handle: 1,
            outputs: VecDeque::new(),
            closed: false,
        }
    }

    /// The device's identity once registered.
    pub fn identity(&self) -> Option<&Identity> {
        self.registration.as_ref().map(|r| &r.identity)
    }

    /// The registration's location path (`["rd", ep]`) once registered.
    pub fn location(&self) -> Option<Vec<String>> {
        self.identity()
            .map(|i| vec!["rd".to_owned(), i.endpoint.clone()])
    }

    /// The rendered mountpoint (empty before Register).
    pub fn mountpoint(&self) -> &str {
        &self.mountpoint
    }

    /// The lifetime in force.
    pub fn lifetime(&self) -> Option<Duration> {
        self.registration.as_ref().map(|r| r.lifetime)
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Commands waiting to be sent.
    pub fn queued_commands(&self) -> usize {
        self.queue.len()
    }

    fn lifetime_of(&self, lt: &str) -> Result<Duration, ()> {
        let secs: u64 = lt.trim().parse().map_err(|_| ())?;
        let lifetime = Duration::from_secs(secs);
        if secs == 0 {
            Ok(self.settings.lifetime_max)
        } else if lifetime > self.settings.lifetime_max {
            Err(())
        } else {
            Ok(lifetime.max(self.settings.lifetime_min))
        }
    }

    fn object_list(&self, payload: &[u8]) -> Result<Option<link::ObjectList>, ResponseCode> {
        if payload.is_empty() {
            return Ok(None);
        }
        if payload.len() > self.settings.max_register_payload {
            return Err(ResponseCode::new(4, 13));
        }
        let limits = LinkLimits {
            max_links: self.settings.max_object_links,
            max_len: self.settings.max_register_payload,
        };
        link::object_list(payload, limits)
            .map(Some)
            .map_err(|_| ResponseCode::BAD_REQUEST)
    }

    /// A Register (`POST /rd?ep=..&lt=..&lwm2m=..`): validates, records, subscribes the command
    /// topic, publishes the register event and, with `auto_observe`, queues observes.
    ///
    /// Lifetime rule: `lt=0` means `lifetime_max`; an `lt` above `lifetime_max` is refused
    /// with 4.00; one below `lifetime_min` is raised to it.
    pub fn handle_register(
        &mut self,
        now: Instant,
        queries: &[String],
        payload: &[u8],
    ) -> DeviceReply {
        const INVALID: &str = "Login Failed: invalid queries";
        if self.closed {
            return DeviceReply::error(ResponseCode::NOT_FOUND, "");
        }
        let Some(pairs) = parse_queries(queries) else {
            return DeviceReply::error(ResponseCode::BAD_REQUEST, INVALID);
        };
        let get = |k: &str| {
            pairs
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let (Some(ep), Some(lt)) = (get("ep").filter(|e| !e.is_empty()), get("lt")) else {
            return DeviceReply::error(ResponseCode::BAD_REQUEST, INVALID);
        };
        if !matches!(get("lwm2m"), Some("1.0" | "1" | "1.1")) {
            return DeviceReply::error(ResponseCode::BAD_REQUEST, INVALID);
        }
        let Ok(lifetime) = self.lifetime_of(lt) else {
            return DeviceReply::error(ResponseCode::BAD_REQUEST, INVALID);
        };
        if let Some(reg) = &self.registration {
            if reg.identity.endpoint != ep {
                return DeviceReply::error(ResponseCode::BAD_REQUEST, INVALID);
            }
        }
        let objects = match self.object_list(payload) {
            Ok(objects) => objects,
            Err(code) => return DeviceReply::error(code, "Login Failed: invalid object list"),
        };
        let identity = Identity {
            endpoint: ep.to_owned(),
            clientid: get("device_id").unwrap_or(ep).to_owned(),
            username: get("imei").unwrap_or(ep).to_owned(),
            password: get("password").map(str::to_owned),
        };
        self.mountpoint = render_mountpoint(
            &self.settings.mountpoint,
            &identity.endpoint,
            &identity.clientid,
            &identity.username,
        );
        // A re-register on the same session merges with the previous registration.
        let mut info = self.registration.take().map(|r| r.info).unwrap_or_default();
        info.extend(pairs.iter().cloned());
        let (alternate_path, objects) = match objects {
            Some(list) => (Some(list.alternate_path), Some(list.objects)),
            None => (None, None),
        };
        self.registration = Some(Registration {
            identity,
            info,
            lifetime,
            alternate_path,
            objects,
        });
        self.touch(now);
        if !self.subscribed {
            self.subscribed = true;
            let command = &self.settings.translators.command;
            self.outputs.push_back(Output::Subscribe {
                topic_filter: format!("{}{}", self.mountpoint, command.topic),
                qos: command.qos,
            });
        }
        let register = self.settings.translators.register.clone();
        self.publish_event("register", &register.topic, register.qos);
        if self.settings.auto_observe {
            self.queue_auto_observe(now);
        }
        self.try_deliver(now);
        let mut reply = DeviceReply::ok(ResponseCode::CREATED);
        reply.location_path = self.location().unwrap_or_default();
        reply
    }

    fn queue_auto_observe(&mut self, now: Instant) {
        let objects = self
            .registration
            .as_ref()
            .and_then(|r| r.objects.clone())
            .unwrap_or_default();
        for entry in objects {
            let Ok(path) = LwPath::parse(&entry) else {
                continue;
            };
            if AUTO_OBSERVE_IGNORED.contains(&path.object())
                || self.registry.object(path.object()).is_none()
            {
                continue;
            }
            let command = Command::synthetic(
                "observe",
                vec![("is_auto_observe".to_owned(), Value::Bool(true))],
                serde_json::json!({ "path": entry }),
            );
            self.enqueue(now, command);
        }
    }

    fn registration_data(&self) -> Value {
        let mut data = Map::new();
        if let Some(reg) = &self.registration {
            for (key, value) in &reg.info {
                if SENSITIVE_KEYS.contains(&key.as_str()) {
                    continue;
                }
                let json = match key.as_str() {
                    "lt" => value
                        .parse::<u64>()
                        .map_or_else(|_| Value::from(value.as_str()), Value::from),
                    _ => Value::from(value.as_str()),
                };
                data.insert(key.clone(), json);
            }
            if let (Some(alt), Some(objects)) = (&reg.alternate_path, &reg.objects) {
                data.insert("alternatePath".to_owned(), Value::from(alt.as_str()));
                data.insert("objectList".to_owned(), Value::from(objects.clone()));
            }
        }
        Value::Object(data)
    }

    fn publish_event(&mut self, msg_type: &str, topic: &str, qos: u8) {
        // `{"msgType":..,"data":..}`: built by hand because a sorted map would put data first.
        let payload = format!(
            "{{\"msgType\":{},\"data\":{}}}",
            serde_json::to_string(msg_type).unwrap_or_default(),
            serde_json::to_string(&self.registration_data()).unwrap_or_default()
        );
        self.publish(topic, payload, qos);
    }

    fn publish(&mut self, topic: &str, payload: String, qos: u8) {
        self.outputs.push_back(Output::Publish {
            topic: format!("{}{topic}", self.mountpoint),
            payload,
            qos,
        });
    }

    fn location_matches(&self, location: &[String]) -> bool {
        self.location().is_some_and(|l| l == location)
    }

    /// An Update (`POST /rd/{ep}[?lt=..&b=..]` [+ links]): merges, answers 2.04, publishes the
    /// update event per `update_msg_publish_condition`, reports the command waiting for its
    /// ACK as `coap_timeout` (as EMQX) and sends queued commands. Unknown location → 4.04.
    pub fn handle_update(
        &mut self,
        now: Instant,
        location: &[String],
        queries: &[String],
        payload: &[u8],
    ) -> DeviceReply {
        if self.closed || !self.location_matches(location) {
            return DeviceReply::error(ResponseCode::NOT_FOUND, "");
        }
        let Some(pairs) = parse_queries(queries) else {
            return DeviceReply::error(ResponseCode::BAD_REQUEST, "invalid queries");
        };
        let mut lifetime = None;
        if let Some((_, lt)) = pairs.iter().rev().find(|(k, _)| k == "lt") {
            match self.lifetime_of(lt) {
                Ok(l) => lifetime = Some(l),
                Err(()) => return DeviceReply::error(ResponseCode::BAD_REQUEST, "invalid lt"),
            }
        }
        let objects = match self.object_list(payload) {
            Ok(objects) => objects,
            Err(code) => return DeviceReply::error(code, "invalid object list"),
        };
        let has_objects = objects.is_some();
        if let Some(reg) = &mut self.registration {
            for (key, value) in pairs {
                // The endpoint name is fixed by the location.
                if key != "ep" {
                    reg.info.insert(key, value);
                }
            }
            if let Some(l) = lifetime {
                reg.lifetime = l;
            }
            if let Some(list) = objects {
                reg.alternate_path = Some(list.alternate_path);
                reg.objects = Some(list.objects);
            }
        }
        self.touch(now);
        let publish = match self.settings.update_msg_publish_condition {
            UpdatePublishCondition::Always => true,
            UpdatePublishCondition::ContainsObjectList => has_objects,
        };
        if publish {
            let update = self.settings.translators.update.clone();
            self.publish_event("update", &update.topic, update.qos);
        }
        if let Some(handle) = self.inflight.take() {
            if let Some(command) = self.pending.remove(&handle) {
                self.publish_response_doc(command.event_json("coap_timeout"));
            }
        }
        self.try_deliver(now);
        DeviceReply::ok(ResponseCode::CHANGED)
    }

    /// A De-register (`DELETE /rd/{ep}`): 2.02 and `Close`; no MQTT message. Unknown
    /// location → 4.04.
    pub fn handle_deregister(&mut self, now: Instant, location: &[String]) -> DeviceReply {
        if self.closed || !self.location_matches(location) {
            return DeviceReply::error(ResponseCode::NOT_FOUND, "");
        }
        self.touch(now);
        self.close(CloseReason::Deregistered);
        DeviceReply::ok(ResponseCode::DELETED)
    }

    fn close(&mut self, reason: CloseReason) {
        self.closed = true;
        self.queue.clear();
        self.pending.clear();
        self.observations.clear();
        self.inflight = None;
        self.outputs.push_back(Output::Close { reason });
    }

    fn touch(&mut self, now: Instant) {
        self.last_uplink = Some(now);
    }

    fn publish_response_doc(&mut self, payload: String) {
        let response = self.settings.translators.response.clone();
        self.publish(&response.topic, payload, response.qos);
    }

    /// An MQTT message on the command topic. A payload that is not a JSON object is dropped (it
    /// has no keys to echo); a command that cannot become a request is answered at once with
    /// `4.00 bad_request`; a full queue answers `5.03 service_unavailable`.
    pub fn handle_command(&mut self, now: Instant, payload: &[u8]) {
        if self.closed || self.registration.is_none() {
            return;
        }
        let Ok(command) = Command::parse(payload) else {
            return;
        };
        if command.to_request().is_err() {
            let doc = command.response_json(ResponseCode::BAD_REQUEST, None, None);
            self.publish_response_doc(doc);
            return;
        }
        self.enqueue(now, command);
        self.try_deliver(now);
    }

    fn enqueue(&mut self, now: Instant, command: Command) {
        if self.queue.len() >= self.settings.max_queued_commands {
            let doc = command.response_json(ResponseCode::SERVICE_UNAVAILABLE, None, None);
            self.publish_response_doc(doc);
            return;
        }
        self.queue.push_back(Queued {
            command,
            deadline: now + self.settings.command_ttl,
        });
    }

    fn queue_mode(&self) -> bool {
        self.registration.as_ref().is_some_and(|r| {
            matches!(
                r.info.get("b").map(String::as_str),
                Some("UQ" | "SQ" | "UQS")
            ) || r
                .info
                .get("apn")
                .is_some_and(|apn| QUEUE_MODE_APNS.contains(&apn.as_str()))
        })
    }

    fn awake(&self, now: Instant) -> bool {
        !self.queue_mode()
            || self.last_uplink.is_some_and(|last| {
                now.saturating_duration_since(last) <= self.settings.qmode_time_window
            })
    }

    fn try_deliver(&mut self, now: Instant) {
        self.expire_queue(now);
        while self.inflight.is_none() && self.awake(now) {
            let Some(queued) = self.queue.pop_front() else {
                break;
            };
            match queued.command.to_request() {
                Ok(request) => {
                    let handle = RequestHandle(self.next_handle);
                    self.next_handle += 1;
                    self.inflight = Some(handle);
                    self.bound_pending();
                    self.pending.insert(handle, queued.command);
                    self.outputs.push_back(Output::Send { handle, request });
                }
                Err(_) => {
                    let doc = queued
                        .command
                        .response_json(ResponseCode::BAD_REQUEST, None, None);
                    self.publish_response_doc(doc);
                }
            }
        }
    }

    /// Requests acknowledged but still waiting for a separate response are bounded too.
    fn bound_pending(&mut self) {
        while self.pending.len() >= self.settings.max_queued_commands.max(1) {
            let Some((&oldest, _)) = self.pending.iter().next() else {
                break;
            };
            if let Some(command) = self.pending.remove(&oldest) {
                self.publish_response_doc(command.event_json("coap_timeout"));
            }
        }
    }

    fn expire_queue(&mut self, now: Instant) {
        while let Some(front) = self.queue.front() {
            // FIFO with one TTL: deadlines are in arrival order.
            if front.deadline > now {
                break;
            }
            if let Some(expired) = self.queue.pop_front() {
                let doc = expired
                    .command
                    .response_json(ResponseCode::GATEWAY_TIMEOUT, None, None);
                self.publish_response_doc(doc);
            }
        }
    }

    fn content_of(
        &self,
        command: &Command,
        response: &DeviceResponse,
    ) -> (ResponseCode, Option<Value>) {
        let wants_content = matches!(
            command.msg_type(),
            Ok(MsgType::Read | MsgType::Observe | MsgType::CancelObserve | MsgType::Discover)
        );
        if !response.code.is_success() || !wants_content {
            return (response.code, None);
        }
        let format = if command.msg_type() == Ok(MsgType::Discover) {
            Some(ContentFormat::LINK_FORMAT)
        } else {
            response.content_format
        };
        let decoded = command.lw_path().ok().and_then(|path| {
            content::decode_content(format, &response.payload, &path, &self.registry).ok()
        });
        match decoded {
            Some(content) => (response.code, Some(content)),
            None => (ResponseCode::BAD_REQUEST, None),
        }
    }

    /// The response to a request (piggybacked or separate): published on the response topic;
    /// a successful observe starts an observation under the same handle.
    pub fn handle_response(
        &mut self,
        now: Instant,
        handle: RequestHandle,
        response: DeviceResponse,
    ) {
        if self.closed {
            return;
        }
        self.touch(now);
        if let Some(command) = self.pending.remove(&handle) {
            if self.inflight == Some(handle) {
                self.inflight = None;
            }
            let (code, content) = self.content_of(&command, &response);
            let msg_type = command.msg_type().ok();
            let seq = match (msg_type, response.observe) {
                (Some(MsgType::Observe), Some(seq)) if seq != 0 => Some(seq),
                _ => None,
            };
            let doc = command.response_json(code, content.as_ref(), seq);
            self.publish_response_doc(doc);
            match msg_type {
                Some(MsgType::Observe) if response.code.is_success() => {
                    self.observations.insert(handle, command);
                }
                Some(MsgType::CancelObserve) => {
                    let path = command.req_path();
                    self.observations.retain(|_, c| c.req_path() != path);
                }
                _ => {}
            }
        }
        self.try_deliver(now);
    }

    /// An empty ACK of a request whose response will come separately: publishes the `ack`
    /// event and frees the CON slot.
    pub fn handle_ack(&mut self, now: Instant, handle: RequestHandle) {
        if self.closed {
            return;
        }
        self.touch(now);
        if let Some(command) = self.pending.get(&handle) {
            let doc = command.event_json("ack");
            self.publish_response_doc(doc);
        }
        if self.inflight == Some(handle) {
            self.inflight = None;
        }
        self.try_deliver(now);
    }

    /// Retransmissions of a request ran out (`coap_timeout`).
    pub fn handle_exchange_timeout(&mut self, now: Instant, handle: RequestHandle) {
        self.end_exchange(now, handle, "coap_timeout");
    }

    /// The device answered a request with RST (`coap_reset`).
    pub fn handle_reset(&mut self, now: Instant, handle: RequestHandle) {
        self.end_exchange(now, handle, "coap_reset");
    }

    fn end_exchange(&mut self, now: Instant, handle: RequestHandle, event: &str) {
        if self.closed {
            return;
        }
        self.observations.remove(&handle);
        if let Some(command) = self.pending.remove(&handle) {
            self.publish_response_doc(command.event_json(event));
        }
        if self.inflight == Some(handle) {
            self.inflight = None;
        }
        self.try_deliver(now);
    }

    /// A notification of the observation started by the request `handle`. Published on the
    /// notify topic, except Firmware Update (object 5): mountpoint + `/v1/up/dm`, QoS 0, as
    /// EMQX. Returns `false` when no observation has this handle (the driver may answer RST).
    pub fn handle_notification(
        &mut self,
        now: Instant,
        handle: RequestHandle,
        response: DeviceResponse,
    ) -> bool {
        if self.closed {
            return false;
        }
        self.touch(now);
        let Some(command) = self.observations.get(&handle) else {
            self.try_deliver(now);
            return false;
        };
        let (code, content) = self.content_of(command, &response);
        let doc = command.notify_json(response.observe.unwrap_or(0), code, content.as_ref());
        let firmware = command.lw_path().is_ok_and(|p| p.object() == 5);
        if firmware {
            self.publish("/v1/up/dm", doc, 0);
        } else {
            let notify = self.settings.translators.notify.clone();
            self.publish(&notify.topic, doc, notify.qos);
        }
        self.try_deliver(now);
        true
    }

    /// Time passed: ends the session when its lifetime has run out since the last uplink, and
    /// answers queued commands whose time-to-live has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let (Some(reg), Some(last)) = (&self.registration, self.last_uplink) {
            if now >= later(last, reg.lifetime) {
                self.close(CloseReason::LifetimeExpired);
                return;
            }
        }
        self.try_deliver(now);
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Session::handle_timeout`] is next due: the lifetime's end or the first queued
    /// command's expiry.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let lifetime_end = match (&self.registration, self.last_uplink) {
            (Some(reg), Some(last)) => Some(later(last, reg.lifetime)),
            _ => None,
        };
        let queue_end = self.queue.front().map(|q| q.deadline);
        match (lifetime_end, queue_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
