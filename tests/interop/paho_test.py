"""paho-mqtt (Python) against a running Tributary: python3 paho_test.py HOST PORT SSL_PORT CAFILE.

Each check connects real paho clients over TCP and asserts what they receive. Every wait is
bounded. Prints one line per check and a closing "N passed, N failed" line; exits non-zero on
any failure.
"""

import queue
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST, PORT = sys.argv[1], int(sys.argv[2])
SSL_PORT, CAFILE = int(sys.argv[3]), sys.argv[4]
WAIT = 5.0


class Peer:
    """A paho client whose received messages land in a queue."""

    def __init__(self, version, client_id=None, clean=True, will=None, keepalive=30):
        self.version = version
        self.client_id = client_id or f"paho-{uuid.uuid4().hex[:10]}"
        kwargs = {"protocol": version, "client_id": self.client_id}
        if version != mqtt.MQTTv5:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        self.messages = queue.Queue()
        self.connected = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.put((f, rc, p))
        if will:
            self.client.will_set(**will)
        self.keepalive = keepalive

    def connect(self, clean_start=True, properties=None):
        if self.version == mqtt.MQTTv5:
            self.client.connect(HOST, PORT, self.keepalive, clean_start=clean_start, properties=properties)
        else:
            self.client.connect(HOST, PORT, self.keepalive)
        self.client.loop_start()
        flags, rc, props = self.connected.get(timeout=WAIT)
        assert not rc.is_failure, f"connect refused: {rc}"
        return flags, props

    def subscribe(self, topic, qos=0, **options):
        if self.version == mqtt.MQTTv5:
            opts = mqtt.SubscribeOptions(qos=qos, **options)
            result, mid = self.client.subscribe(topic, options=opts)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.2)

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), "publish not acknowledged"

    def receive(self, timeout=WAIT):
        return self.messages.get(timeout=timeout)

    def nothing(self, timeout=0.5):
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {message.topic}")

    def stop(self, graceful=True):
        if graceful:
            self.client.disconnect()
        else:
            # Drop the socket without DISCONNECT: the broker sees an abnormal close.
            self.client.socket().close()
        self.client.loop_stop()


VERSIONS = {"3.1.1": mqtt.MQTTv311, "5.0": mqtt.MQTTv5}
results = []


def check(name):
    def run(fn):
        try:
            fn()
            results.append(True)
            print(f"ok    paho {name}")
        except Exception as error:  # noqa: BLE001 - report every failure and go on
            results.append(False)
            print(f"FAIL  paho {name}: {error!r}")
        return fn

    return run


for label, version in VERSIONS.items():

    @check(f"{label} QoS 0/1/2 round trip, in order")
    def _roundtrip(version=version, label=label):
        sub, pub = Peer(version), Peer(version)
        sub.connect()
        pub.connect()
        topic = f"interop/paho/{label}/rt"
        sub.subscribe(topic, qos=2)
        for qos in (0, 1, 2):
            pub.publish(topic, f"m{qos}".encode(), qos=qos)
        got = [(m.payload, m.qos) for m in (sub.receive(), sub.receive(), sub.receive())]
        assert got == [(b"m0", 0), (b"m1", 1), (b"m2", 2)], got
        sub.stop()
        pub.stop()

    @check(f"{label} wildcard subscription and downgrade")
    def _wildcards(version=version, label=label):
        sub, pub = Peer(version), Peer(version)
        sub.connect()
        pub.connect()
        sub.subscribe(f"interop/paho/{label}/w/+/temp", qos=0)
        pub.publish(f"interop/paho/{label}/w/kitchen/temp", b"21", qos=2)
        message = sub.receive()
        assert message.topic == f"interop/paho/{label}/w/kitchen/temp" and message.qos == 0
        pub.publish(f"interop/paho/{label}/w/kitchen/humidity", b"40", qos=1)
        assert sub.nothing()
        sub.stop()
        pub.stop()

    @check(f"{label} retained message on subscribe")
    def _retained(version=version, label=label):
        pub = Peer(version)
        pub.connect()
        topic = f"interop/paho/{label}/retained"
        pub.publish(topic, b"state", qos=1, retain=True)
        sub = Peer(version)
        sub.connect()
        sub.subscribe(topic, qos=1)
        message = sub.receive()
        assert message.payload == b"state" and message.retain
        pub.publish(topic, b"", qos=1, retain=True)
        sub.stop()
        pub.stop()

    @check(f"{label} will on abnormal close, not on DISCONNECT")
    def _will(version=version, label=label):
        topic = f"interop/paho/{label}/will"
        watcher = Peer(version)
        watcher.connect()
        watcher.subscribe(topic, qos=1)
        polite = Peer(version, will={"topic": topic, "payload": b"polite-gone", "qos": 1})
        polite.connect()
        polite.stop(graceful=True)
        assert watcher.nothing(timeout=1.0)
        rude = Peer(version, will={"topic": topic, "payload": b"rude-gone", "qos": 1})
        rude.connect()
        rude.stop(graceful=False)
        assert watcher.receive().payload == b"rude-gone"
        watcher.stop()

    @check(f"{label} persistent session queues while offline")
    def _offline(version=version, label=label):
        client_id = f"paho-persistent-{label}"
        topic = f"interop/paho/{label}/offline"
        props = None
        if version == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
        sub = Peer(version, client_id=client_id, clean=False)
        sub.connect(clean_start=False, properties=props)
        sub.subscribe(topic, qos=1)
        sub.stop()
        pub = Peer(version)
        pub.connect()
        pub.publish(topic, b"while-away", qos=1)
        pub.stop()
        back = Peer(version, client_id=client_id, clean=False)
        flags, _ = back.connect(clean_start=False, properties=props)
        assert flags.session_present, "session not resumed"
        assert back.receive().payload == b"while-away"
        back.stop()


@check("5.0 properties pass through untouched")
def _properties():
    sub, pub = Peer(mqtt.MQTTv5), Peer(mqtt.MQTTv5)
    sub.connect()
    pub.connect()
    sub.subscribe("interop/paho/props", qos=1)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    props.ContentType = "text/plain"
    props.ResponseTopic = "interop/paho/reply"
    props.CorrelationData = b"\x01\x02"
    props.MessageExpiryInterval = 60
    pub.publish("interop/paho/props", b"x", qos=1, properties=props)
    got = sub.receive().properties
    assert got.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")], got.UserProperty
    assert got.ContentType == "text/plain"
    assert got.ResponseTopic == "interop/paho/reply"
    assert got.CorrelationData == b"\x01\x02"
    assert 0 < got.MessageExpiryInterval <= 60
    sub.stop()
    pub.stop()


@check("5.0 shared subscription delivers each message once")
def _shared():
    members = [Peer(mqtt.MQTTv5) for _ in range(2)]
    for member in members:
        member.connect()
        member.subscribe("$share/workers/interop/paho/jobs", qos=1)
    pub = Peer(mqtt.MQTTv5)
    pub.connect()
    for i in range(10):
        pub.publish("interop/paho/jobs", f"job{i}".encode(), qos=1)
    time.sleep(0.5)
    got = []
    for member in members:
        while not member.messages.empty():
            got.append(member.messages.get().payload)
    assert sorted(got) == sorted(f"job{i}".encode() for i in range(10)), got
    assert all(not m.messages.qsize() for m in members)
    for member in members:
        member.stop()
    pub.stop()


@check("5.0 empty client id gets an assigned one")
def _assigned():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    connected = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connected.put((rc, p))
    client.connect(HOST, PORT, 30, clean_start=True)
    client.loop_start()
    rc, props = connected.get(timeout=WAIT)
    assert not rc.is_failure
    assert getattr(props, "AssignedClientIdentifier", ""), "no Assigned Client Identifier"
    client.disconnect()
    client.loop_stop()


for label, version in VERSIONS.items():

    @check(f"{label} over TLS, certificate verified against the broker's CA")
    def _tls(version=version, label=label):
        received = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-tls-{label}", protocol=version)
        # The broker's self-signed certificate names localhost and 127.0.0.1: verified in full.
        client.tls_set(ca_certs=CAFILE)
        connected = queue.Queue()
        client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
        client.on_message = lambda c, u, m: received.put(m)
        client.connect(HOST, SSL_PORT, 30)
        client.loop_start()
        rc = connected.get(timeout=WAIT)
        assert not rc.is_failure, rc
        client.subscribe(f"interop/paho/tls/{label}", qos=1)
        time.sleep(0.2)
        client.publish(f"interop/paho/tls/{label}", b"sealed", qos=1).wait_for_publish(timeout=WAIT)
        assert received.get(timeout=WAIT).payload == b"sealed"
        client.disconnect()
        client.loop_stop()


passed = sum(results)
failed = len(results) - passed
print(f"paho: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
