"""The receive path of ``MqttTransport``: paho's client with reads ahead, our own PUBLISH
decoding and PUBACKs in one write (``mqtt_client``), and paho's plain client where the
installed paho is not the tested one."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from mqtt_helpers import Clients, Inbox, settle
from paho.mqtt import _packet
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivetrain.core.transport import mqtt_client
from drivetrain.core.transport.mqtt_client import ReadAheadClient, decode_publish
from drivetrain.core.transport.testing import unique_name

SESSION_S = 60


def _publish_packet(topic: bytes, mid: int, properties: Properties, payload: bytes) -> bytes:
    """A PUBLISH after its fixed header, as a broker sends it."""
    head = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if mid else b"")
    packed: bytes = properties.pack()  # type: ignore[no-untyped-call]
    return head + packed + payload


@pytest.mark.parametrize("qos", [0, 1])
def test_decode_publish_agrees_with_paho_on_every_publish_property(qos: int) -> None:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.PayloadFormatIndicator = 1
    properties.MessageExpiryInterval = 3600
    properties.TopicAlias = 7
    properties.ResponseTopic = "dt/v1/VIN1/reply"
    properties.CorrelationData = b"\x00\x01corr"
    properties.UserProperty = [("trace", "abc"), ("é", "ü")]
    properties.SubscriptionIdentifier = 300_000  # a 3-byte variable byte integer
    properties.SubscriptionIdentifier = 5  # a second identifier (overlapping filters)
    properties.ContentType = "application/vnd.apache.arrow"
    mid = 513 if qos else 0
    packet = _publish_packet(b"dt/v1/VIN1/telemetry", mid, properties, b"\x00payload\xff" * 50)

    topic, got_mid, ids, payload = decode_publish(packet, qos)

    theirs = _packet.decode_publish(qos << 1, packet, paho.MQTTv5)
    assert (topic, got_mid, payload) == (theirs.topic, theirs.mid, theirs.payload)
    sids = theirs.properties.SubscriptionIdentifier  # type: ignore[union-attr]
    assert list(ids) == sids == [300_000, 5]


def test_decode_publish_without_properties_or_payload() -> None:
    packet = _publish_packet(b"a/b", 1, Properties(PacketTypes.PUBLISH), b"")  # type: ignore[no-untyped-call]
    assert decode_publish(packet, 1) == (b"a/b", 1, (), b"")


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00",  # no room for the topic length
        b"\x00\x03a/b\x00",  # no room for the packet identifier
        b"\x00\x03a/b\x00\x01\x05\x0b",  # properties longer than the packet
        b"\x00\x03a/b\x00\x01\x02\x7f\x00",  # an unknown property
        b"\x00\x03a/b\x00\x01\x01\x08",  # a response topic cut off
        b"\x00\x03a/b\x00\x01\x02\x0b\x80",  # a subscription identifier cut off
    ],
)
def test_decode_publish_refuses_a_malformed_packet(packet: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_publish(packet, 1)


def test_the_tested_paho_gets_the_read_ahead_client(shared: Clients) -> None:
    assert mqtt_client.fast_path_supported()  # the pinned paho; a new one needs re-testing
    transport = shared.new()
    assert isinstance(transport._link.client, ReadAheadClient)


def test_a_burst_of_messages_arrives_complete_and_in_order(shared: Clients) -> None:
    topic = f"{unique_name('t')}/burst"
    inbox = Inbox()
    shared.new().subscribe(topic, inbox)
    pub = shared.new(max_inflight=1000)
    sizes = [0, 1, 127, 128, 16_383, 16_384, 70_000] * 30  # remaining-length edges, > 64 KiB
    tickets = [pub.publish_async(topic, bytes([i % 256]) * n) for i, n in enumerate(sizes)]
    for ticket in tickets:
        ticket.wait(30)
    got = inbox.wait_for(len(sizes), timeout_s=30)
    assert [m.payload for m in got] == [bytes([i % 256]) * n for i, n in enumerate(sizes)]


def test_acknowledge_sends_a_batch_of_pubacks_and_only_those(shared: Clients) -> None:
    client_id, topic = unique_name("ingest"), f"{unique_name('t')}/telemetry"
    worker = shared.new(client_id, session_expiry_s=SESSION_S)
    inbox = Inbox()
    worker.subscribe(topic, inbox, manual_ack=True)
    pub = shared.new()
    for i in range(20):
        pub.publish(topic, f"m{i}".encode())
    got = inbox.wait_for(20)
    worker.acknowledge(got[:12])
    worker.acknowledge(got[:3])  # acknowledging again changes nothing
    settle()
    worker.close()  # the other 8 were never acknowledged

    again = Inbox()
    restarted = shared.new(client_id, session_expiry_s=SESSION_S)
    restarted.subscribe(topic, again, manual_ack=True)
    redelivered = again.wait_for(8)
    settle()
    assert again.payloads == [f"m{i}".encode() for i in range(12, 20)]
    restarted.acknowledge(redelivered)
    restarted.close(end_session=True)


def test_paho_s_own_client_is_used_for_an_untested_paho(
    shared: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt_client, "TESTED_PAHO", frozenset({"0.0.0"}))
    client_id, topic = unique_name("ingest"), f"{unique_name('t')}/telemetry"
    worker = shared.new(client_id, session_expiry_s=SESSION_S)
    assert type(worker._link.client) is paho.Client
    inbox = Inbox()
    worker.subscribe(topic, inbox, manual_ack=True)
    pub = shared.new()
    for i in range(5):
        pub.publish(topic, f"m{i}".encode())
    got = inbox.wait_for(5)
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(5)]
    worker.acknowledge(got[:2])
    settle()
    worker.close()
    again = Inbox()
    restarted = shared.new(client_id, session_expiry_s=SESSION_S)
    restarted.subscribe(topic, again, manual_ack=True)
    again.wait_for(3)
    settle()
    assert again.payloads == [b"m2", b"m3", b"m4"]
    restarted.close(end_session=True)
