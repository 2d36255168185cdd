"""Ingest's announcements on the fleet backbone: one per committed batch, keyed by its batch
id, acknowledged before the micro-batch is; a backbone that does not acknowledge makes the
micro-batch fail as "platform unavailable", and the retry announces the same ids again."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from ingest_helpers import NOW_NS, SOC, SPEED, Fleet, telemetry

from drivetrain.cloud.infra.bus import StatusEvent
from drivetrain.cloud.ingest import IngestPipeline
from drivetrain.cloud.ingest.announce import TELEMETRY_TOPIC, Announcer, chunk_id, chunks
from drivetrain.cloud.ingest.isolation import is_transient
from drivetrain.core.errors import TransportError
from drivetrain.core.transport import PublishTicket


class Backbone:
    """Acknowledges a publish unless told to refuse the next ``refuse`` of them."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.stored: dict[str, bytes] = {}
        self.attempts = 0

    def publish_async(self, topic: str, payload: bytes, *, msg_id: str | None = None
                      ) -> PublishTicket:
        self.attempts += 1
        ticket = PublishTicket(topic, 1)
        if self.refuse > 0:
            self.refuse -= 1
            ticket.complete(TransportError("no acknowledgement (stream leader moving)"))
        else:
            assert msg_id is not None
            self.stored.setdefault(msg_id, payload)  # the stream's deduplication by id
            ticket.complete()
        return ticket


def test_one_batch_is_announced_under_its_batch_id_and_a_chunk_under_a_digest_of_its_ids(
    pipeline: IngestPipeline, fleet: Fleet
) -> None:
    backbone = Backbone(refuse=1)  # the first try is lost: it is published again
    pipeline.announcer = Announcer(backbone, "worker-1", timeout_s=5)
    first = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS - 10**9, 80.0)],
                      batch_id="a" * 32)
    second = telemetry(fleet.vin("eu2"), fleet.key("eu2"),
                       [(SPEED, NOW_NS - 10**9, 50.0), (SOC, NOW_NS - 10**9, 60.0)],
                       batch_id="b" * 32)
    pipeline.process([first, second])  # one message carries both
    chunk = chunk_id(["b" * 32, "a" * 32])
    assert set(backbone.stored) == {chunk} and chunk == chunk_id(["a" * 32, "b" * 32])
    one, two = json.loads(backbone.stored[chunk])["events"]
    assert one["data"]["batch_id"] == "a" * 32
    assert two["domain"] == "telemetry" and two["kind"] == "validated"
    assert two["subject"] == fleet.vin("eu2") and two["data"]["samples"] == 2
    assert two["origin"] == "worker-1" and two["tenant"] == "acme"
    pipeline.process([second, first])  # the same micro-batch again: the same message id
    assert set(backbone.stored) == {chunk}
    pipeline.process([first])  # a redelivery alone: a duplicate, announced under its id
    assert set(backbone.stored) == {chunk, "a" * 32}
    assert pipeline.announcer.published == 5 and pipeline.announcer.messages == 3


def test_a_backbone_that_never_acknowledges_fails_the_micro_batch_as_unavailable(
    pipeline: IngestPipeline, fleet: Fleet
) -> None:
    backbone = Backbone(refuse=10**6)
    pipeline.announcer = Announcer(backbone, timeout_s=0.3)
    message = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS - 10**9, 80.0)],
                        batch_id="c" * 32)
    with pytest.raises(TransportError, match="not acknowledged by the backbone") as failed:
        pipeline.process([message])
    assert is_transient(failed.value)  # the worker keeps the messages and retries
    backbone.refuse = 0
    pipeline.process([message])  # the retry: already committed, announced now
    assert backbone.stored.keys() == {"c" * 32}


def test_chunks_hold_at_most_max_batches_and_max_bytes_and_each_batch_once() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    events = [(TELEMETRY_TOPIC, StatusEvent("telemetry", "validated", "acme", "V" * 17, at,
                                            {"batch_id": f"{i:032x}", "samples": 1}))
              for i in range(25)]
    events.append(events[3])  # delivered twice within the micro-batch
    by_count = chunks(events, max_batches=10, max_bytes=10**6)
    assert [len(json.loads(p)["events"]) for _, p, _ in by_count] == [10, 10, 5]
    carried = [e["data"]["batch_id"] for _, p, _ in by_count for e in json.loads(p)["events"]]
    assert sorted(carried) == [f"{i:032x}" for i in range(25)]
    by_size = chunks(events, max_batches=100, max_bytes=1000)
    assert len(by_size) > 3 and all(len(p) <= 1000 for _, p, _ in by_size)
    assert len({i for _, _, i in by_size}) == len(by_size)
