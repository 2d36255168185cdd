"""Namespaces of the JetStream backbone (``backbone_namespace``): two deployments on one real
JetStream server ($DRIVETRAIN_TEST_NATS_URL, else a node started here) with the same topics,
groups and stream names above the transport see only their own messages."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fleet_profile import FLEET, FleetServices

from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import load_settings
from drivetrain.core.transport import Message
from drivetrain.core.transport.jetstream import JetStreamTransport
from drivetrain.core.transport.jetstream_streams import (
    BACKBONE_STREAMS,
    NAMESPACE_MAX,
    backbone_topic,
    check_namespace,
    namespaced,
)
from drivetrain.core.transport.testing import unique_name


@pytest.fixture
def pair(nats_url: str) -> Iterator[tuple[JetStreamTransport, JetStreamTransport]]:
    links = [JetStreamTransport(nats_url, client_id=unique_name(side),
                                namespace=unique_name(side)) for side in ("a", "b")]
    yield links[0], links[1]
    for link in links:
        link.delete_streams()
        link.close()


def _wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_namespaces_on_one_server_see_only_their_own_messages(
    pair: tuple[JetStreamTransport, JetStreamTransport],
) -> None:
    a, b = pair
    since = datetime.now(UTC) - timedelta(seconds=1)
    got: dict[str, list[Message]] = {"a": [], "b": [], "a-fan": []}
    lock = threading.Lock()

    def into(key: str) -> Callable[[Message], None]:
        def handler(message: Message) -> None:
            with lock:
                got[key].append(message)
        return handler

    # the same group name and filter in both: each namespace's group is a consumer of its own
    a.subscribe("$share/lake/dt/platform/v1/telemetry", into("a"))
    b.subscribe("$share/lake/dt/platform/v1/telemetry", into("b"))
    a.subscribe("dt/platform/v1/#", into("a-fan"))
    for i in range(3):
        a.publish(backbone_topic("telemetry"), f"a{i}".encode(), msg_id=f"m{i}")
    # the same message ids in b: the duplicate windows are per namespace's stream too
    for i in range(2):
        b.publish(backbone_topic("telemetry"), f"b{i}".encode(), msg_id=f"m{i}")
    b.publish(backbone_topic("jobs"), b"b-status")
    _wait(lambda: len(got["a"]) == 3 and len(got["b"]) == 2 and len(got["a-fan"]) == 3)
    time.sleep(0.5)  # anything crossing over would have arrived by now
    assert sorted(m.payload for m in got["a"]) == [b"a0", b"a1", b"a2"]
    assert sorted(m.payload for m in got["b"]) == [b"b0", b"b1"]
    assert sorted(m.payload for m in got["a-fan"]) == [b"a0", b"a1", b"a2"]
    # above the transport the topic is the plain one, whatever the namespace
    assert {m.topic for m in got["a"] + got["b"]} == {"dt/platform/v1/telemetry"}
    assert a.stream_messages("telemetry-validated") == 3
    assert b.stream_messages("telemetry-validated") == 2
    assert a.stream_messages("platform-status") == 0
    assert b.stream_messages("platform-status") == 1
    assert a.stream_name("telemetry-validated") == f"{a.namespace}-telemetry-validated"

    replayed: list[Message] = []
    b.replay("dt/platform/v1/#", since, replayed.append)
    _wait(lambda: len(replayed) == 3)
    time.sleep(0.3)
    assert sorted(m.payload for m in replayed) == [b"b-status", b"b0", b"b1"]


def test_deleting_a_namespace_leaves_the_others(
    pair: tuple[JetStreamTransport, JetStreamTransport],
) -> None:
    a, b = pair
    a.publish(backbone_topic("twins"), b"a")
    b.publish(backbone_topic("twins"), b"b")
    deleted = a.delete_streams()
    assert sorted(deleted) == sorted(a.stream_name(s.name) for s in BACKBONE_STREAMS)
    assert b.stream_messages("twin-reported") == 1
    assert a.delete_streams() == []  # already gone


def test_the_plain_streams_are_not_deleted_by_a_namespace_cleanup(nats_url: str) -> None:
    with JetStreamTransport(nats_url, client_id=unique_name("plain")) as plain:
        with pytest.raises(ValueError, match="needs a namespace"):
            plain.delete_streams()
        assert plain.namespace == "" and plain.streams == BACKBONE_STREAMS


@pytest.mark.parametrize("bad", [
    "eu.1", "eu 1", "eu*", "eu>", "$SYS", "_INBOX", "-eu", "eu/1", "é", "x" * (NAMESPACE_MAX + 1),
])
def test_a_namespace_that_cannot_name_streams_is_refused_naming_the_setting(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="backbone_namespace"):
        load_settings(data_dir=tmp_path, backbone_namespace=bad)
    monkeypatch.setenv("DRIVETRAIN_BACKBONE_NAMESPACE", bad)
    with pytest.raises(ConfigurationError, match="backbone_namespace"):
        load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="namespace"):
        JetStreamTransport("nats://127.0.0.1:1", namespace=bad, connect_timeout_s=0.1)


def test_a_namespace_prefixes_stream_names_and_subjects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIVETRAIN_BACKBONE_NAMESPACE", raising=False)
    assert load_settings(data_dir=tmp_path).backbone_namespace == ""
    assert load_settings(data_dir=tmp_path, backbone_namespace="eu-1_b").backbone_namespace \
        == "eu-1_b"
    assert check_namespace("x" * NAMESPACE_MAX) == "x" * NAMESPACE_MAX
    spec = BACKBONE_STREAMS[0]
    assert namespaced(spec, "") is spec
    moved = namespaced(spec, "eu1")
    assert moved.name == f"eu1-{spec.name}" and moved.subject == f"eu1.{spec.subject}"


def test_the_fleet_run_cleans_up_a_test_namespace_and_gives_each_test_its_own(
    tmp_path: Path,
) -> None:
    if FLEET:  # the suite's fleet profile: this test runs in a namespace of its own
        namespace = os.environ["DRIVETRAIN_BACKBONE_NAMESPACE"]
        assert namespace.startswith("ns-") and load_settings().backbone_namespace == namespace
    services = FleetServices(tmp_path)
    try:
        url = services.backbone_url()
        with JetStreamTransport(url, client_id=unique_name("t"), namespace="gone") as used:
            used.publish(backbone_topic("twins"), b"x")
        with JetStreamTransport(url, client_id=unique_name("t"), namespace="kept") as kept:
            kept.publish(backbone_topic("twins"), b"y")
            services.drop_namespace("gone")
            services.drop_namespace("never-used")  # nothing to delete: no error
            assert kept.stream_messages("twin-reported") == 1
        with JetStreamTransport(url, client_id=unique_name("t"), streams=()) as plain:
            names = [namespaced(s, "gone").name for s in BACKBONE_STREAMS]
            assert plain.delete_streams(names) == []  # already deleted
            assert plain.delete_streams(["kept-twin-reported"]) == ["kept-twin-reported"]
    finally:
        services.close()
