"""What ingest tells its consumers once a micro-batch is committed (the fleet profile).

In the fleet profile the consumers of ingest (the twins, security operations, analytics) read
durable backbone streams rather than calling into the ingest process. Each committed
telemetry batch becomes a ``telemetry``/``validated`` status event on
``dt/platform/v1/telemetry`` (stream ``telemetry-validated``) and each committed security
report (a batch of vehicle events) a ``security``/``reported`` one on
``dt/platform/v1/security`` (stream ``security-events``), in the status bus's JSON form
(``{"events": [...]}``), each event carrying its ``batch_id``.

The events of a micro-batch travel in **chunks**: one message per topic carries the events of
up to :data:`MAX_BATCHES` batches and :data:`MAX_BYTES` of JSON (well under JetStream's
1 MiB default message size), because a message per batch cost the worker more CPU than the
rest of ingest. A chunk's ``Nats-Msg-Id`` is the batch id when it carries one batch (as every
message did before chunking) and otherwise a digest of its sorted batch ids, so a retry of the
same chunk is one the stream drops within its duplicate window. A retry that chunks
differently (other messages in the micro-batch) publishes some batches again under a new id:
consumers apply each batch once by its batch id (:mod:`drivetrain.cloud.streams.ledger`), and
read one-batch messages and chunks alike.

Delivery is at least once: the :class:`Announcer` publishes after the commit and waits until
the stream acknowledged every message; one that is not acknowledged within ``timeout_s``
makes the micro-batch fail as "platform unavailable", so the worker keeps its messages
unacknowledged and retries. The retry finds the batches already committed (duplicates) and
announces them again. A worker killed between commit and announcement is covered the same
way: the broker redelivers its messages.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol

from drivetrain.cloud.infra.bus import StatusEvent
from drivetrain.cloud.ingest.results import AuthenticBatch
from drivetrain.core.errors import TransportError
from drivetrain.core.transport import PublishTicket

TELEMETRY_DOMAIN: Final = "telemetry"
SECURITY_DOMAIN: Final = "security"
TELEMETRY_TOPIC: Final = "dt/platform/v1/telemetry"
SECURITY_TOPIC: Final = "dt/platform/v1/security"
#: Most batches one backbone message carries.
MAX_BATCHES: Final = 500
#: Most bytes of JSON one backbone message carries (JetStream's default limit is 1 MiB).
MAX_BYTES: Final = 512 * 1024


class IdempotentPublisher(Protocol):
    """A backbone that stores a message once per id (``JetStreamTransport``)."""

    def publish_async(self, topic: str, payload: bytes, *, msg_id: str | None = None
                      ) -> PublishTicket: ...


def announcements(
    batches: Sequence[AuthenticBatch], at: datetime, origin: str = ""
) -> list[tuple[str, StatusEvent]]:
    """``(topic, event)`` of each batch that says something (telemetry, events; not acks)."""
    out = []
    for batch in batches:
        vehicle = batch.vehicle
        if batch.telemetry is not None:
            out.append((TELEMETRY_TOPIC, StatusEvent(
                TELEMETRY_DOMAIN, "validated", vehicle.tenant, vehicle.vin, at,
                {"batch_id": batch.batch_id, "samples": len(batch.telemetry),
                 "region": vehicle.region, "campaign": batch.campaign}, origin)))
        elif batch.events:
            out.append((SECURITY_TOPIC, StatusEvent(
                SECURITY_DOMAIN, "reported", vehicle.tenant, vehicle.vin, at,
                {"batch_id": batch.batch_id,
                 "events": [{"type": e.type, "severity": e.severity, "ts_ns": e.ts_ns}
                            for e in batch.events]}, origin)))
    return out


def chunk_id(batch_ids: Sequence[str]) -> str:
    """The ``Nats-Msg-Id`` of a message carrying ``batch_ids``: the batch id itself for one,
    a digest of the sorted ids otherwise (the same set, the same id)."""
    if len(batch_ids) == 1:
        return batch_ids[0]
    digest = hashlib.sha256("\n".join(sorted(batch_ids)).encode()).hexdigest()
    return f"chunk-{digest[:32]}"


def chunks(
    events: Sequence[tuple[str, StatusEvent]], max_batches: int = MAX_BATCHES,
    max_bytes: int = MAX_BYTES,
) -> list[tuple[str, bytes, str]]:
    """``(topic, payload, msg_id)`` of the messages carrying ``events``, per topic in order,
    each with at most ``max_batches`` events and ``max_bytes`` (one larger event alone)."""
    out: list[tuple[str, bytes, str]] = []
    by_topic: dict[str, list[StatusEvent]] = {}
    seen: set[tuple[str, str]] = set()
    for topic, event in events:
        key = (topic, str(event.data["batch_id"]))
        if key not in seen:  # a batch delivered twice within the micro-batch: announced once
            seen.add(key)
            by_topic.setdefault(topic, []).append(event)
    for topic, items in by_topic.items():
        groups: list[list[tuple[str, str]]] = [[]]  # (event JSON, batch id) per message
        size = 0
        for event in items:
            text = json.dumps(event.to_dict(), separators=(",", ":"))
            if groups[-1] and (len(groups[-1]) >= max_batches
                               or size + len(text) + 16 > max_bytes):
                groups.append([])
                size = 0
            groups[-1].append((text, str(event.data["batch_id"])))
            size += len(text) + 1
        for group in groups:
            if group:
                payload = ('{"events":[' + ",".join(t for t, _ in group) + "]}").encode()
                out.append((topic, payload, chunk_id([i for _, i in group])))
    return out


class Announcer:
    """Publishes the announcements of committed batches and waits for the backbone.

    Args:
        backbone: where they go (the fleet profile's ``JetStreamTransport``).
        origin: the announcing process (the status events' ``origin``).
        timeout_s: how long unacknowledged announcements are retried before the micro-batch
            fails as "platform unavailable".
        max_batches, max_bytes: the most batches and bytes of JSON one message carries.
    """

    def __init__(self, backbone: IdempotentPublisher, origin: str = "",
                 timeout_s: float = 30.0, max_batches: int = MAX_BATCHES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.backbone = backbone
        self.origin = origin
        self.timeout_s = timeout_s
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.published = 0  # batches announced
        self.messages = 0  # backbone messages they took

    def announce(self, batches: Sequence[AuthenticBatch], at: datetime) -> int:
        """Publish the batches' events in chunks and wait until each chunk is acknowledged;
        returns how many batches were announced.

        Raises:
            TransportError: some were still not acknowledged after ``timeout_s`` (no cause
                attached: the ingest worker retries the micro-batch).
        """
        events = announcements(batches, at, self.origin)
        pending = chunks(events, self.max_batches, self.max_bytes)
        total, messages = len(events), len(pending)
        deadline = time.monotonic() + self.timeout_s
        last = ""
        while pending:
            tickets: list[tuple[tuple[str, bytes, str], PublishTicket | None]] = []
            for item in pending:
                try:
                    tickets.append((item, self.backbone.publish_async(item[0], item[1],
                                                                      msg_id=item[2])))
                except TransportError as e:
                    tickets.append((item, None))
                    last = str(e)
            failed = []
            for item, ticket in tickets:
                try:
                    if ticket is None:
                        raise TransportError(last)
                    ticket.wait(max(0.1, deadline - time.monotonic()))
                except TransportError as e:
                    failed.append(item)
                    last = str(e)
            pending = failed
            if pending and time.monotonic() >= deadline:
                raise TransportError(
                    f"{len(pending)} of {messages} announcements not acknowledged by the "
                    f"backbone within {self.timeout_s:g} s ({last})")
            if pending:
                time.sleep(0.2)
        self.published += total
        self.messages += messages
        return total
