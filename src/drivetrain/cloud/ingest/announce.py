"""What ingest tells its consumers once a micro-batch is committed (the fleet profile).

In the fleet profile the consumers of ingest (the twins, security operations, analytics) read
durable backbone streams rather than calling into the ingest process. Each committed
telemetry batch becomes a ``telemetry``/``validated`` status event on
``dt/platform/v1/telemetry`` (stream ``telemetry-validated``) and each committed security
report (a batch of vehicle events) a ``security``/``reported`` one on
``dt/platform/v1/security`` (stream ``security-events``), in the status bus's JSON form
(``{"events": [...]}``), one message per batch, its ``Nats-Msg-Id`` the batch id.

Delivery is at least once and stored once: the :class:`Announcer` publishes after the commit
and waits until the stream acknowledged every message; one that is not acknowledged within
``timeout_s`` makes the micro-batch fail as "platform unavailable", so the worker keeps its
messages unacknowledged and retries. The retry finds the batches already committed
(duplicates) and announces them again — with the same message ids, which the stream drops
within its duplicate window, and consumers key on the batch id beyond it. A worker killed
between commit and announcement is covered the same way: the broker redelivers its messages.
"""

from __future__ import annotations

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


class Announcer:
    """Publishes the announcements of committed batches and waits for the backbone.

    Args:
        backbone: where they go (the fleet profile's ``JetStreamTransport``).
        origin: the announcing process (the status events' ``origin``).
        timeout_s: how long unacknowledged announcements are retried before the micro-batch
            fails as "platform unavailable".
    """

    def __init__(self, backbone: IdempotentPublisher, origin: str = "",
                 timeout_s: float = 30.0) -> None:
        self.backbone = backbone
        self.origin = origin
        self.timeout_s = timeout_s
        self.published = 0

    def announce(self, batches: Sequence[AuthenticBatch], at: datetime) -> int:
        """Publish one message per batch and wait until each is acknowledged; returns how
        many.

        Raises:
            TransportError: some were still not acknowledged after ``timeout_s`` (no cause
                attached: the ingest worker retries the micro-batch).
        """
        pending = [(topic, json.dumps({"events": [event.to_dict()]},
                                      separators=(",", ":")).encode(), event.data["batch_id"])
                   for topic, event in announcements(batches, at, self.origin)]
        total = len(pending)
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
                    f"{len(pending)} of {total} announcements not acknowledged by the "
                    f"backbone within {self.timeout_s:g} s ({last})")
            if pending:
                time.sleep(0.2)
        self.published += total
        return total
