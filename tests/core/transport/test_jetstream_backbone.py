"""The JetStream backbone behind the Transport interface, on one real nats-server node:
durable streams per domain, consumer groups, replay from a point in time, redelivery, and the
pure topic/subject mapping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from drivetrain.core.errors import InvalidTopicError, TransportError
from drivetrain.core.transport import Message
from drivetrain.core.transport.jetstream import JetStreamTransport, parse_nats_url
from drivetrain.core.transport.jetstream_local import LocalJetStream
from drivetrain.core.transport.jetstream_streams import (
    BACKBONE_STREAMS,
    backbone_topic,
    consumer_targets,
    subject_covers,
    subject_to_topic,
    topic_to_subject,
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalJetStream]:
    with LocalJetStream(tmp_path_factory.mktemp("nats"), nodes=1) as server:
        yield server


@pytest.fixture
def link(node: LocalJetStream, request: pytest.FixtureRequest) -> Iterator[JetStreamTransport]:
    transport = JetStreamTransport(node.url, client_id=request.node.name[:40])
    yield transport
    transport.close()


def _wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_each_domain_has_a_durable_stream_of_its_own(link: JetStreamTransport) -> None:
    names = {spec.name for spec in BACKBONE_STREAMS}
    assert {"telemetry-validated", "security-events", "twin-reported"} <= names
    assert backbone_topic("twins") == "dt/platform/v1/twins"
    assert backbone_topic("jobs") == "dt/platform/v1/status/jobs"
    before = link.stream_messages("security-events")
    link.publish(backbone_topic("security"), b'{"events":[]}', msg_id="sec-1")
    link.publish(backbone_topic("security"), b'{"events":[]}', msg_id="sec-1")  # a retry
    assert link.stream_messages("security-events") == before + 1


def test_a_consumer_group_splits_the_stream_and_a_new_member_resumes_where_it_stopped(
    node: LocalJetStream, link: JetStreamTransport,
) -> None:
    group = "$share/split/dt/platform/v1/status/split"
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    lock = threading.Lock()

    def member(name: str) -> Callable[[Message], None]:
        def handle(message: Message) -> None:
            with lock:
                got[name].append(message.payload)
            time.sleep(0.005)
        return handle

    other = JetStreamTransport(node.url, client_id="member-b")
    try:
        link.subscribe(group, member("a"))
        other.subscribe(group, member("b"))
        for i in range(40):  # each waiting member's pull takes what has arrived
            link.publish("dt/platform/v1/status/split", f"m{i}".encode())
            time.sleep(0.01)
        _wait(lambda: len(got["a"]) + len(got["b"]) == 40)
        assert sorted(got["a"] + got["b"]) == sorted(f"m{i}".encode() for i in range(40))
        assert got["a"] and got["b"]  # both members took a share
    finally:
        other.close()
    link.publish("dt/platform/v1/status/split", b"after")  # while one member is gone
    _wait(lambda: b"after" in got["a"])


def test_replay_reads_the_stream_again_from_a_point_in_time(link: JetStreamTransport) -> None:
    link.publish("dt/platform/v1/status/replay", b"before")
    time.sleep(0.05)
    since = datetime.now(UTC)
    link.publish("dt/platform/v1/status/replay", b"one")
    link.publish("dt/platform/v1/status/replay", b"two")
    seen: list[bytes] = []
    link.replay("dt/platform/v1/status/replay", since, lambda m: seen.append(m.payload))
    _wait(lambda: len(seen) == 2)
    assert seen == [b"one", b"two"]
    with pytest.raises(ValueError, match="timezone"):
        link.replay("dt/platform/v1/status/replay", datetime.now(), seen.append)


def test_a_handler_that_raises_gets_the_message_again(link: JetStreamTransport) -> None:
    attempts: list[int] = []

    def flaky(message: Message) -> None:
        attempts.append(message.attempt)
        if len(attempts) == 1:
            raise RuntimeError("consumer down for a moment")

    link.subscribe("$share/flaky/dt/platform/v1/status/flaky", flaky)
    link.publish("dt/platform/v1/status/flaky", b"x", msg_id="flaky-1")
    _wait(lambda: len(attempts) == 2)
    assert attempts == [1, 2] and link.stats().handler_errors == 1


def test_the_backbone_refuses_what_it_cannot_carry(link: JetStreamTransport) -> None:
    with pytest.raises(ValueError, match="retained"):
        link.publish("dt/platform/v1/twins", b"x", retain=True)
    with pytest.raises(InvalidTopicError):
        link.subscribe("dt/v1/+/telemetry", lambda m: None)  # not a backbone stream
    with pytest.raises(TransportError, match="no backbone stream"):
        link.publish("dt/v1/VIN/telemetry", b"x")


def test_topics_map_to_subjects_and_back() -> None:
    assert topic_to_subject("dt/platform/v1/+/x/#") == "dt.platform.v1.*.x.>"
    assert subject_to_topic("dt.platform.v1.*.x.>") == "dt/platform/v1/+/x/#"
    for bad in ("a.b", "a//b", "a/#/b", "a/b c", "a/*"):
        with pytest.raises(InvalidTopicError):
            topic_to_subject(bad)
    assert subject_covers("dt.platform.v1.>", "dt.platform.v1.status.>")
    assert not subject_covers("dt.platform.v1.status.>", "dt.platform.v1.>")
    spanning = consumer_targets("dt.platform.v1.>", BACKBONE_STREAMS)
    assert {t.stream for t in spanning} == {s.name for s in BACKBONE_STREAMS}
    assert all(t.filter_subject is None for t in spanning)
    (narrow,) = consumer_targets("dt.platform.v1.status.jobs", BACKBONE_STREAMS)
    assert narrow.stream == "platform-status" and narrow.filter_subject == "dt.platform.v1.status.jobs"


def test_backbone_urls_name_one_server_or_a_cluster() -> None:
    assert parse_nats_url("nats://10.0.0.1:4222,10.0.0.2") == [
        "nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]
    for bad in ("mqtt://x:1883", "nats://", "nats://a:1,,b:2", "nats://host:notaport"):
        with pytest.raises(Exception, match="backbone url"):
            parse_nats_url(bad)
