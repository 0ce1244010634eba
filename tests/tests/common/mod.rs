//! Shared client helpers for the integration tests: rumqttc clients (v3.1.1 and v5) whose event
//! loops run in a task and forward every event into a channel, bounded waits on those events,
//! and (in [`raw`]) a raw-bytes client for the wire-level tests and what rumqttc cannot express.

// Test support fails loudly: a helper that cannot do its job is a failed test, so unwrap,
// expect and panic are the point here (clippy's allow-unwrap-in-tests covers only #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Each test binary uses a different part of this module, and `pub` here is for the binaries.
#![allow(dead_code, unreachable_pub)]

use std::{collections::VecDeque, fmt::Debug, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle};
use tributary_tests::TestGateway;

pub mod coap;
pub mod lwm2m;
pub mod raw;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long a test watches for something that must NOT arrive, where no later event can serve
/// as a barrier.
pub const QUIET: Duration = Duration::from_millis(300);

/// Events from a client's event loop, with the ones a wait skipped kept in order for later.
pub struct Events<E, X> {
    rx: mpsc::UnboundedReceiver<Result<E, X>>,
    buffered: VecDeque<Result<E, X>>,
}

impl<E: Debug, X: Debug> Events<E, X> {
    fn new(rx: mpsc::UnboundedReceiver<Result<E, X>>) -> Self {
        Self {
            rx,
            buffered: VecDeque::new(),
        }
    }

    /// The first event (buffered or new) that `pick` accepts, removed; the others stay
    /// buffered in order. `None` after `within` or when the event loop has ended.
    pub async fn try_wait_for<R>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(&Result<E, X>) -> Option<R>,
    ) -> Option<R> {
        if let Some(i) = self.buffered.iter().position(|e| pick(e).is_some()) {
            let event = self.buffered.remove(i).unwrap();
            return pick(&event);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()??;
            if let Some(found) = pick(&event) {
                return Some(found);
            }
            self.buffered.push_back(event);
        }
    }

    /// Like [`Events::try_wait_for`], but fails the test on timeout, naming `what`. A
    /// connection error that `pick` does not accept fails it at once.
    pub async fn wait_for<R>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Result<E, X>) -> Option<R>,
    ) -> R {
        let mut error = None;
        let found = self
            .try_wait_for(WAIT, |event| {
                let found = pick(event);
                if found.is_none() {
                    if let Err(e) = event {
                        error = Some(format!("{e:?}"));
                        // Accept it so the wait ends; reported below.
                        return Some(None);
                    }
                }
                found.map(Some)
            })
            .await;
        match (found, error) {
            (Some(Some(found)), _) => found,
            (_, Some(error)) => panic!("connection error while waiting for {what}: {error}"),
            _ => panic!(
                "timed out waiting for {what}; buffered events: {:?}",
                self.buffered
            ),
        }
    }

    /// Waits for the event loop to end and returns its error.
    pub async fn take_error(&mut self) -> X {
        if let Some(i) = self.buffered.iter().position(Result::is_err) {
            return self.buffered.remove(i).unwrap().unwrap_err();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Err(e))) => return e,
                Ok(Some(ok)) => self.buffered.push_back(ok),
                Ok(None) => panic!("event loop ended without an error"),
                Err(_) => panic!(
                    "timed out waiting for the connection to end; buffered: {:?}",
                    self.buffered
                ),
            }
        }
    }
}

/// Options for a v3.1.1 client of `gateway`.
pub fn v4_options(gateway: &TestGateway, client_id: &str) -> rumqttc::MqttOptions {
    let (host, port) = gateway.host_port();
    let mut options = rumqttc::MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Options for a v5 client of `gateway`.
pub fn v5_options(gateway: &TestGateway, client_id: &str) -> rumqttc::v5::MqttOptions {
    let (host, port) = gateway.host_port();
    let mut options = rumqttc::v5::MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// A v3.1.1 rumqttc client whose event loop runs in a task.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub events: Events<rumqttc::Event, rumqttc::ConnectionError>,
    pub connack: rumqttc::ConnAck,
    task: JoinHandle<()>,
}

/// A v5 rumqttc client whose event loop runs in a task.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: Events<rumqttc::v5::Event, rumqttc::v5::ConnectionError>,
    pub connack: rumqttc::v5::mqttbytes::v5::ConnAck,
    task: JoinHandle<()>,
}

type V4Events = Events<rumqttc::Event, rumqttc::ConnectionError>;
type V5Events = Events<rumqttc::v5::Event, rumqttc::v5::ConnectionError>;

/// Runs an event loop until its first error (no automatic reconnect), forwarding every event.
macro_rules! spawn_loop {
    ($eventloop:expr) => {{
        let mut eventloop = $eventloop;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let end = event.is_err();
                if tx.send(event).is_err() || end {
                    break;
                }
            }
        });
        (Events::new(rx), task)
    }};
}

impl V4 {
    /// Connects and waits for a successful CONNACK.
    pub async fn connect(options: rumqttc::MqttOptions) -> Self {
        match Self::try_connect(options).await {
            Ok(client) => client,
            Err(error) => panic!("v4 connect failed: {error:?}"),
        }
    }

    /// Connects; the connection error when the broker refuses or closes.
    pub async fn try_connect(
        options: rumqttc::MqttOptions,
    ) -> Result<Self, rumqttc::ConnectionError> {
        let (client, eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (mut events, task): (V4Events, _) = spawn_loop!(eventloop);
        let connack = tokio::time::timeout(WAIT, async {
            loop {
                match events.rx.recv().await {
                    Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c)))) => {
                        return Ok(c);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => panic!("event loop ended before CONNACK"),
                }
            }
        })
        .await
        .expect("timed out waiting for CONNACK")?;
        Ok(Self {
            client,
            events,
            connack,
            task,
        })
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.suback().await
    }

    /// The next SUBACK's return codes.
    pub async fn suback(&mut self) -> Vec<rumqttc::SubscribeReasonCode> {
        self.events
            .wait_for("SUBACK", |e| match e {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => {
                    Some(s.return_codes.clone())
                }
                _ => None,
            })
            .await
    }

    /// Publishes and, for QoS > 0, waits for the PUBACK / PUBCOMP.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap();
        self.wait_published(qos).await;
    }

    /// Waits for the broker's acknowledgement of the last publish at `qos`.
    pub async fn wait_published(&mut self, qos: rumqttc::QoS) {
        use rumqttc::{Event, Outgoing, Packet, QoS};
        match qos {
            QoS::AtMostOnce => {
                self.events
                    .wait_for("the publish to go out", |e| match e {
                        Ok(Event::Outgoing(Outgoing::Publish(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
            QoS::AtLeastOnce => {
                self.events
                    .wait_for("PUBACK", |e| match e {
                        Ok(Event::Incoming(Packet::PubAck(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
            QoS::ExactlyOnce => {
                self.events
                    .wait_for("PUBCOMP", |e| match e {
                        Ok(Event::Incoming(Packet::PubComp(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
        }
    }

    /// The next PUBLISH from the broker.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        self.events
            .wait_for("PUBLISH", |e| match e {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// The next PUBLISH, or `None` if none arrives within `within`.
    pub async fn try_next_publish(&mut self, within: Duration) -> Option<rumqttc::Publish> {
        self.events
            .try_wait_for(within, |e| match e {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// Asserts no PUBLISH arrives for a short while.
    pub async fn assert_no_publish(&mut self) {
        if let Some(p) = self.try_next_publish(QUIET).await {
            panic!("unexpected PUBLISH: {p:?}");
        }
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ = self.events.take_error().await;
        self.task.abort();
    }

    /// Drops the connection without DISCONNECT (an abnormal close).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl V5 {
    /// Connects and waits for a successful CONNACK.
    pub async fn connect(options: rumqttc::v5::MqttOptions) -> Self {
        match Self::try_connect(options).await {
            Ok(client) => client,
            Err(error) => panic!("v5 connect failed: {error:?}"),
        }
    }

    /// Connects; the connection error when the broker refuses or closes.
    pub async fn try_connect(
        options: rumqttc::v5::MqttOptions,
    ) -> Result<Self, rumqttc::v5::ConnectionError> {
        use rumqttc::v5::{Event, mqttbytes::v5::Packet};
        let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, 100);
        let (mut events, task): (V5Events, _) = spawn_loop!(eventloop);
        let connack = tokio::time::timeout(WAIT, async {
            loop {
                match events.rx.recv().await {
                    Some(Ok(Event::Incoming(Packet::ConnAck(c)))) => return Ok(c),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => panic!("event loop ended before CONNACK"),
                }
            }
        })
        .await
        .expect("timed out waiting for CONNACK")?;
        Ok(Self {
            client,
            events,
            connack,
            task,
        })
    }

    /// Subscribes with `filter` (options included) and waits for the SUBACK.
    pub async fn subscribe_filter(
        &mut self,
        filter: rumqttc::v5::mqttbytes::v5::Filter,
        properties: Option<rumqttc::v5::mqttbytes::v5::SubscribeProperties>,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        match properties {
            Some(p) => self
                .client
                .subscribe_many_with_properties([filter], p)
                .await
                .unwrap(),
            None => self.client.subscribe_many([filter]).await.unwrap(),
        }
        self.suback().await
    }

    /// Subscribes with default options and waits for the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.suback().await
    }

    /// The next SUBACK's reason codes.
    pub async fn suback(&mut self) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        use rumqttc::v5::{Event, mqttbytes::v5::Packet};
        self.events
            .wait_for("SUBACK", |e| match e {
                Ok(Event::Incoming(Packet::SubAck(s))) => Some(s.return_codes.clone()),
                _ => None,
            })
            .await
    }

    /// Publishes and, for QoS > 0, waits for the PUBACK / PUBCOMP.
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
    ) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap();
        self.wait_published(qos).await;
    }

    /// Publishes with properties and waits as [`V5::publish`].
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
        properties: rumqttc::v5::mqttbytes::v5::PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, retain, payload.to_vec(), properties)
            .await
            .unwrap();
        self.wait_published(qos).await;
    }

    /// Waits for the broker's acknowledgement of the last publish at `qos`.
    pub async fn wait_published(&mut self, qos: rumqttc::v5::mqttbytes::QoS) {
        use rumqttc::v5::{Event, mqttbytes::QoS, mqttbytes::v5::Packet};
        match qos {
            QoS::AtMostOnce => {
                self.events
                    .wait_for("the publish to go out", |e| match e {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
            QoS::AtLeastOnce => {
                self.events
                    .wait_for("PUBACK", |e| match e {
                        Ok(Event::Incoming(Packet::PubAck(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
            QoS::ExactlyOnce => {
                self.events
                    .wait_for("PUBCOMP", |e| match e {
                        Ok(Event::Incoming(Packet::PubComp(_))) => Some(()),
                        _ => None,
                    })
                    .await
            }
        }
    }

    /// The next PUBLISH from the broker.
    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::{Event, mqttbytes::v5::Packet};
        self.events
            .wait_for("PUBLISH", |e| match e {
                Ok(Event::Incoming(Packet::Publish(p))) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// The next PUBLISH, or `None` if none arrives within `within`.
    pub async fn try_next_publish(
        &mut self,
        within: Duration,
    ) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        use rumqttc::v5::{Event, mqttbytes::v5::Packet};
        self.events
            .try_wait_for(within, |e| match e {
                Ok(Event::Incoming(Packet::Publish(p))) => Some(p.clone()),
                _ => None,
            })
            .await
    }

    /// Asserts no PUBLISH arrives for a short while.
    pub async fn assert_no_publish(&mut self) {
        if let Some(p) = self.try_next_publish(QUIET).await {
            panic!("unexpected PUBLISH: {p:?}");
        }
    }

    /// Sends DISCONNECT (normal, 0x00) and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        let _ = self.events.take_error().await;
        self.task.abort();
    }

    /// Drops the connection without DISCONNECT (an abnormal close).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// The reason code of the DISCONNECT the broker sent before closing.
    pub async fn server_disconnect(&mut self) -> rumqttc::v5::mqttbytes::v5::DisconnectReasonCode {
        match self.events.take_error().await {
            rumqttc::v5::ConnectionError::MqttState(
                rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
            ) => reason_code,
            other => panic!("expected a DISCONNECT from the server, got {other:?}"),
        }
    }
}

/// Payload as text, for readable assertions.
pub fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Polls `cond` until it holds; fails the test after [`WAIT`]. For broker state that no
/// packet announces (a session detached, a Will scheduled).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// v5 connect properties with a Session Expiry Interval.
pub fn expiry(seconds: u32) -> rumqttc::v5::mqttbytes::v5::ConnectProperties {
    let mut p = rumqttc::v5::mqttbytes::v5::ConnectProperties::new();
    p.session_expiry_interval = Some(seconds);
    p
}

/// Payload as a decimal number (tests that number their messages).
pub fn number(payload: &[u8]) -> usize {
    text(payload).parse().expect("a numbered payload")
}
