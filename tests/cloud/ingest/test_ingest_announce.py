"""Ingest's announcements on the fleet backbone: one per committed batch, keyed by its batch
id, acknowledged before the micro-batch is; a backbone that does not acknowledge makes the
micro-batch fail as "platform unavailable", and the retry announces the same ids again."""

from __future__ import annotations

import json

import pytest
from ingest_helpers import NOW_NS, SOC, SPEED, Fleet, telemetry

from drivetrain.cloud.ingest import IngestPipeline
from drivetrain.cloud.ingest.announce import Announcer
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


def test_each_committed_batch_is_announced_once_under_its_batch_id(
    pipeline: IngestPipeline, fleet: Fleet
) -> None:
    backbone = Backbone(refuse=1)  # the first try is lost: it is published again
    pipeline.announcer = Announcer(backbone, "worker-1", timeout_s=5)
    first = telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS - 10**9, 80.0)],
                      batch_id="a" * 32)
    second = telemetry(fleet.vin("eu2"), fleet.key("eu2"),
                       [(SPEED, NOW_NS - 10**9, 50.0), (SOC, NOW_NS - 10**9, 60.0)],
                       batch_id="b" * 32)
    pipeline.process([first, second])
    assert set(backbone.stored) == {"a" * 32, "b" * 32}
    (event,) = json.loads(backbone.stored["b" * 32])["events"]
    assert event["domain"] == "telemetry" and event["kind"] == "validated"
    assert event["subject"] == fleet.vin("eu2") and event["data"]["samples"] == 2
    assert event["origin"] == "worker-1" and event["tenant"] == "acme"
    pipeline.process([first])  # a redelivery: a duplicate, announced again under its id
    assert len(backbone.stored) == 2 and pipeline.announcer.published == 3


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
