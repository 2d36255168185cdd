"""The broker settings that matter at fleet scale (docs/scale.md), on the real Mosquitto:
message expiry (MQTT 5 §3.3.2.3.3) — a QoS 1 message queued for a persistent session that is
away is dropped once its expiry interval has passed, one without expiry waits — and the
per-session queue limit, beyond which a broker drops QoS 1 messages it has already
acknowledged to the publisher."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivetrain.core.transport.testing import PrivateBroker, unique_name


def _client(url: str, client_id: str, session_expiry_s: int = 60) -> paho.Client:
    address = urlsplit(url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    connect = Properties(PacketTypes.CONNECT)
    connect.SessionExpiryInterval = session_expiry_s
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(address.hostname or "127.0.0.1", address.port or 1883, clean_start=False,
                   properties=connect)
    client.loop_start()
    assert connected.wait(10)
    return client


def test_a_queued_message_past_its_expiry_is_not_delivered_to_a_returning_session(
    mqtt_url: str,
) -> None:
    topic = f"test/{unique_name('expiry')}/x"
    worker_id = unique_name("worker")
    away = _client(mqtt_url, worker_id)
    away.subscribe(topic, qos=1)
    time.sleep(0.3)
    away.disconnect()  # the session stays at the broker: it queues QoS 1 messages
    away.loop_stop()
    sender = _client(mqtt_url, unique_name("sender"))
    expiring = Properties(PacketTypes.PUBLISH)
    expiring.MessageExpiryInterval = 1
    sender.publish(topic, b"expires", qos=1, properties=expiring).wait_for_publish(10)
    sender.publish(topic, b"stays", qos=1).wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()
    time.sleep(2.2)  # past the first message's expiry interval
    got: list[bytes] = []
    back = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=worker_id,
                       protocol=paho.MQTTv5)
    back.on_message = lambda client, userdata, message: got.append(message.payload)
    address = urlsplit(mqtt_url)
    end = Properties(PacketTypes.CONNECT)
    end.SessionExpiryInterval = 0  # resume, and let the broker forget the session after
    back.connect(address.hostname or "127.0.0.1", address.port or 1883, clean_start=False,
                 properties=end)
    back.loop_start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    back.disconnect()
    back.loop_stop()
    assert got == [b"stays"]


def _drain(url: str, client_id: str) -> list[bytes]:
    """Resume ``client_id``'s session, collect what the broker kept for it, end the session."""
    got: list[bytes] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    client.on_message = lambda c, userdata, message: got.append(message.payload)
    address = urlsplit(url)
    end = Properties(PacketTypes.CONNECT)
    end.SessionExpiryInterval = 0
    client.connect(address.hostname or "127.0.0.1", address.port or 1883, clean_start=False,
                   properties=end)
    client.loop_start()
    last, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline and (not got or len(got) != last):
        last = len(got)
        time.sleep(0.3)
    client.disconnect()
    client.loop_stop()
    return got


def test_beyond_the_session_queue_limit_the_broker_drops_acknowledged_messages(
    private_broker: PrivateBroker,
) -> None:
    private_broker.extra_config = "max_queued_messages 5"
    private_broker.restart()
    topic, worker_id = "dt/v1/test/limit", unique_name("worker")
    away = _client(private_broker.url, worker_id)
    away.subscribe(topic, qos=1)
    time.sleep(0.3)
    away.disconnect()
    away.loop_stop()
    sender = _client(private_broker.url, unique_name("sender"), session_expiry_s=0)
    for i in range(20):  # every one acknowledged by the broker (PUBACK)
        sender.publish(topic, f"m{i}".encode(), qos=1).wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()
    got = _drain(private_broker.url, worker_id)
    assert got == [f"m{i}".encode() for i in range(5)]  # the other 15 are gone

