"""What ingest tells the rest of the platform once a micro-batch is committed.

In the fleet profile the consumers of ingest (the twins, security operations, analytics) read
durable backbone streams rather than calling into the ingest process. Each committed
telemetry batch becomes a ``telemetry``/``validated`` status event and each committed security
report (a batch of vehicle events) a ``security``/``reported`` one; the status bus's bridge
carries them to the ``telemetry-validated`` and ``security-events`` streams
(``drivetrain.core.transport.jetstream_streams``). They are published after the commit — a
worker killed in between has its messages redelivered, and the events then go out for the
re-delivery's own commit only if it stored something new (duplicates are skipped before
routing), so a consumer sees each batch id once per commit and can key on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import Engine

from drivetrain.cloud.infra.bus import StatusEvent, status_bus
from drivetrain.cloud.ingest.results import AuthenticBatch

TELEMETRY_DOMAIN: Final = "telemetry"
SECURITY_DOMAIN: Final = "security"


def announcements(batches: Sequence[AuthenticBatch], at: datetime) -> list[StatusEvent]:
    """The status events of committed ``batches`` (telemetry and events; acks say nothing)."""
    out = []
    for batch in batches:
        vehicle = batch.vehicle
        if batch.telemetry is not None:
            out.append(StatusEvent(
                TELEMETRY_DOMAIN, "validated", vehicle.tenant, vehicle.vin, at,
                {"batch_id": batch.batch_id, "samples": len(batch.telemetry),
                 "region": vehicle.region, "campaign": batch.campaign}))
        elif batch.events:
            out.append(StatusEvent(
                SECURITY_DOMAIN, "reported", vehicle.tenant, vehicle.vin, at,
                {"batch_id": batch.batch_id,
                 "events": [{"type": e.type, "severity": e.severity, "ts_ns": e.ts_ns}
                            for e in batch.events]}))
    return out


def publish_announcements(
    engine: Engine, batches: Sequence[AuthenticBatch], at: datetime
) -> None:
    """Publish the announcements of ``batches`` on ``engine``'s status bus (after commit)."""
    events = announcements(batches, at)
    if events:
        status_bus(engine).publish(events)
