"""The platform's consumer groups of the backbone, on the real NATS JetStream
($DRIVETRAIN_TEST_NATS_URL, or a nats-server node started for the module) and the real
state database: each announcement takes effect once — with two member processes sharing the
stream and one SIGKILLed mid-stream and restarted, on a replay from a point in time, and
after a restore of the state — and committed security events become incidents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ingest_helpers import NOW_NS, SOC, Fleet, telemetry
from test_ingest_security_events import _event, _send

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.bus import StatusEvent
from drivetrain.cloud.ingest import IngestPipeline
from drivetrain.cloud.ingest.announce import Announcer
from drivetrain.cloud.security import list_incidents
from drivetrain.cloud.streams import CONSUMERS, ConsumerGroups, vehicle_activity
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.transport.jetstream import JetStreamTransport
from drivetrain.core.transport.testing import unique_name

PROJECT = Path(__file__).resolve().parents[3]
TELEMETRY = CONSUMERS["lake-activity"].topic


@pytest.fixture
def link(nats_url: str) -> Iterator[JetStreamTransport]:
    # a namespace of the test's own: the shared server's streams hold other runs' messages
    transport = JetStreamTransport(nats_url, client_id=unique_name("consumers"),
                                   namespace=unique_name("ns"))
    yield transport
    transport.delete_streams()
    transport.close()


def _announce(link: JetStreamTransport, tenant: str, vin: str, batch_id: str, samples: int) -> None:
    event = StatusEvent(
        "telemetry",
        "validated",
        tenant,
        vin,
        datetime.now(UTC),
        {"batch_id": batch_id, "samples": samples},
        "test",
    )
    link.publish(TELEMETRY, json.dumps({"events": [event.to_dict()]}).encode(), msg_id=batch_id)


def _totals(database: Database, tenant: str) -> dict[str, tuple[int, int]]:
    with database.session() as session:
        return {
            a.vin: (a.lake_batches, a.lake_samples)
            for a in vehicle_activity(session, tenant=tenant)
        }


def _wait(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _member(tmp_path: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drivetrain",
                "worker",
                "consume",
                "--groups",
                "lake-activity",
                "--group-prefix",
                env["PREFIX"],
                "--client-id",
                name,
                "--status-interval-s",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=out,
            cwd=PROJECT,
        )
    _wait(lambda: "consuming" in log.read_text() or proc.poll() is not None, 60)
    assert proc.poll() is None, log.read_text()
    return proc, log


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_members_share_the_stream_and_one_killed_mid_stream_loses_and_repeats_nothing(
    tmp_path: Path,
    database_url: str,
    database: Database,
    link: JetStreamTransport,
    nats_url: str,
) -> None:
    tenant, prefix = unique_name("t")[:40], unique_name("kill") + "-"
    env = {
        **os.environ,
        "DRIVETRAIN_DATABASE_URL": database_url,
        "PREFIX": prefix,
        "DRIVETRAIN_BACKBONE_URL": nats_url,
        "DRIVETRAIN_BACKBONE_NAMESPACE": link.namespace,
        "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
        "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml"),
    }
    first, first_log = _member(tmp_path, "member-1", env)
    second, _ = _member(tmp_path, "member-2", env)
    vins = [f"WVWZZZ1JZXW{i:06d}" for i in range(8)]
    expected = {vin: [0, 0] for vin in vins}
    count = 400

    def publish() -> None:
        for i in range(count):
            vin = vins[i % len(vins)]
            _announce(link, tenant, vin, uuid.uuid4().hex, i % 13 + 1)
            expected[vin][0] += 1
            expected[vin][1] += i % 13 + 1
            time.sleep(0.005)

    publisher = threading.Thread(target=publish)
    try:
        publisher.start()
        _wait(lambda: sum(b for b, _ in _totals(database, tenant).values()) >= count // 4, 60)
        first.send_signal(signal.SIGKILL)  # mid-stream: what it held goes back to the stream
        first.wait(10)
        publisher.join(60)
        first, _ = _member(tmp_path, "member-1", env)  # the restart, same name
        # the killed member's unacknowledged messages come back after the ack wait (30 s)
        _wait(lambda: sum(b for b, _ in _totals(database, tenant).values()) >= count, 120)
        time.sleep(2)  # nothing more arrives: nothing was applied twice
        assert _totals(database, tenant) == {vin: tuple(v) for vin, v in expected.items()}
        assert "member-1" in first_log.read_text()
    finally:
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        for proc in (first, second):
            proc.wait(30)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_replay_from_a_time_applies_only_what_the_state_lacks(
    database_url: str,
    database: Database,
    link: JetStreamTransport,
    empty_database: Database,
) -> None:
    tenant, prefix = unique_name("t")[:40], unique_name("replay") + "-"
    since = datetime.now(UTC) - timedelta(seconds=1)
    members = ConsumerGroups(
        database, link, ["lake-activity", "twin-activity"], group_prefix=prefix
    ).start()
    try:
        for i in range(30):
            _announce(link, tenant, "WVWZZZ1JZXW000001", uuid.uuid4().hex, 2)
        twin = StatusEvent(
            "twins",
            "reported",
            tenant,
            "WVWZZZ1JZXW000001",
            datetime.now(UTC),
            {"paths": ["Vehicle.Speed"], "version": 3},
            "test",
        )
        link.publish("dt/platform/v1/twins", json.dumps({"events": [twin.to_dict()]}).encode())
        _wait(lambda: _totals(database, tenant).get("WVWZZZ1JZXW000001") == (30, 60), 30)
    finally:
        members.stop()
    # the same state replayed from before the messages: every one is found in the ledger
    again = ConsumerGroups(
        database, link, ["lake-activity"], since=since, group_prefix=prefix
    ).start()
    again.stop()
    stats = again.stats["lake-activity"]
    assert stats.replayed >= 30 and stats.duplicates >= 30
    assert _totals(database, tenant) == {"WVWZZZ1JZXW000001": (30, 60)}
    with database.session() as session:
        (activity,) = vehicle_activity(session, tenant=tenant)
        assert activity.twin_changes == 1 and activity.last_twin_at is not None
    # a state restored from before the messages (here: empty) gets each one back, once
    restored = ConsumerGroups(
        empty_database, link, ["lake-activity"], since=since, group_prefix=prefix
    )
    empty_database.upgrade()
    restored.start().stop()
    assert _totals(empty_database, tenant) == {"WVWZZZ1JZXW000001": (30, 60)}


def test_a_micro_batch_travels_in_a_few_chunks_and_each_batch_counts_once_across_retries(
    pipeline: IngestPipeline,
    fleet: Fleet,
    database: Database,
    link: JetStreamTransport,
) -> None:
    vins = [fleet.vin("eu1"), fleet.vin("eu2")]
    keys = [fleet.key("eu1"), fleet.key("eu2")]
    ids = [uuid.uuid4().hex for _ in range(40)]
    messages = [
        telemetry(vins[i % 2], keys[i % 2], [(SOC, NOW_NS - 10**9 + i, 50.0)] * (1 + i % 3),
                  batch_id=ids[i], seq=i // 2 + 1)
        for i in range(40)
    ]
    pipeline.announcer = Announcer(link, origin="test", max_batches=16)
    members = ConsumerGroups(
        database, link, ["lake-activity"], group_prefix=unique_name("chunk") + "-"
    ).start()
    try:
        pipeline.process(messages)
        assert pipeline.announcer.published == 40 and pipeline.announcer.messages == 3
        # the retry of a micro-batch composed otherwise: its chunks get other message ids,
        # so the stream keeps them and the consumer must skip the batches it applied
        pipeline.announcer.max_batches = 7
        pipeline.process(messages[5:30:2] + messages[::3])
        assert pipeline.announcer.messages > 3
        # a worker not yet upgraded announces one batch per message, under its batch id
        _announce(link, "acme", vins[0], ids[0], 1)
        expected = {
            vins[0]: (20, sum(1 + i % 3 for i in range(0, 40, 2))),
            vins[1]: (20, sum(1 + i % 3 for i in range(1, 40, 2))),
        }
        _wait(lambda: _totals(database, "acme") == expected, 30)
        time.sleep(1.0)  # nothing more arrives and counts twice
        assert _totals(database, "acme") == expected
        stats = members.stats["lake-activity"]
        assert stats.failed == 0 and stats.applied + stats.duplicates >= 3
    finally:
        members.stop()


def test_security_events_become_incidents_through_the_security_ops_group(
    pipeline: IngestPipeline,
    fleet: Fleet,
    database: Database,
    link: JetStreamTransport,
) -> None:
    pipeline.announcer = Announcer(link, origin="test")
    members = ConsumerGroups(
        database, link, ["security-ops"], group_prefix=unique_name("sec") + "-"
    ).start()
    try:
        _send(pipeline, fleet.vin("eu1"), fleet.key("eu1"), [_event(at_s=1.0), _event(at_s=2.0)])
        _send(pipeline, fleet.vin("eu2"), fleet.key("eu2"), [_event(at_s=3.0)], seq=2)

        def incidents() -> list[tuple[str, int]]:
            with database.session() as session:
                return sorted(
                    (i.vin, i.event_count) for i in list_incidents(session, tenant="acme")
                )

        _wait(lambda: len(incidents()) == 2, 30)
        assert incidents() == sorted([(fleet.vin("eu1"), 10), (fleet.vin("eu2"), 5)])
    finally:
        members.stop()


def test_an_unknown_group_or_a_naive_time_is_refused(
    database: Database, link: JetStreamTransport
) -> None:
    with pytest.raises(ConfigurationError, match="consumer group 'lake'"):
        ConsumerGroups(database, link, ["lake"])
    with pytest.raises(ConfigurationError, match="time zone"):
        ConsumerGroups(database, link, since=datetime(2026, 1, 1))
