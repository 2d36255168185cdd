"""What each platform consumer of the backbone does with a message, inside the transaction
that also records the message in the ledger (so each effect happens once).

- ``lake-activity`` reads ``telemetry-validated`` (one event per telemetry batch committed
  to the lake) and counts, per vehicle, the batches and samples stored and when the last one
  was committed.
- ``twin-activity`` reads ``twin-reported`` (committed twin changes) and counts, per vehicle,
  the changes and when the last one was committed.
- ``security-ops`` reads ``security-events`` and runs the correlator of each tenant named:
  the security events just stored become incidents without waiting for an analyst's
  ``correlate`` call.

Counters are updated under a row lock (``SELECT ... FOR UPDATE``), so replicas of a group
working on the same vehicle at once never lose an increment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.infra import get_tenant
from drivetrain.cloud.infra.bus import StatusEvent
from drivetrain.cloud.security import correlate
from drivetrain.cloud.streams.models import VehicleActivityRow
from drivetrain.core.errors import NotFoundError

log = logging.getLogger(__name__)

TELEMETRY_TOPIC: Final = "dt/platform/v1/telemetry"
SECURITY_TOPIC: Final = "dt/platform/v1/security"
TWINS_TOPIC: Final = "dt/platform/v1/twins"
#: Largest sample count one announcement may add (a micro-batch's envelope is far smaller).
_MAX_SAMPLES: Final = 10_000_000


@dataclass(frozen=True)
class StreamConsumer:
    """A consumer group of the platform: its name, the topic it reads, its effect."""

    group: str
    topic: str
    apply: Callable[[Session, Sequence[StatusEvent]], int]
    description: str


def _activity(session: Session, tenant: str, vin: str) -> VehicleActivityRow:
    row = session.get(VehicleActivityRow, (tenant, vin), with_for_update=True)
    if row is None:
        row = VehicleActivityRow(
            tenant_id=tenant, vin=vin, lake_batches=0, lake_samples=0, twin_changes=0
        )
        session.add(row)
    return row


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def count_lake_batches(session: Session, events: Sequence[StatusEvent]) -> int:
    """Add each announced telemetry batch to its vehicle's activity; returns how many."""
    applied = 0
    for event in sorted(events, key=lambda e: (e.tenant, e.subject)):
        if event.domain != "telemetry" or event.kind != "validated":
            continue
        samples = event.data.get("samples")
        if not isinstance(samples, int) or isinstance(samples, bool):
            samples = 0
        row = _activity(session, event.tenant, event.subject[:17])
        row.lake_batches += 1
        row.lake_samples += min(max(samples, 0), _MAX_SAMPLES)
        row.last_lake_at = _later(row.last_lake_at, event.at)
        applied += 1
    return applied


def count_twin_changes(session: Session, events: Sequence[StatusEvent]) -> int:
    """Add each reported twin change to its vehicle's activity; returns how many."""
    applied = 0
    for event in sorted(events, key=lambda e: (e.tenant, e.subject)):
        if event.domain != "twins" or event.kind != "reported":
            continue
        row = _activity(session, event.tenant, event.subject[:17])
        row.twin_changes += 1
        row.last_twin_at = _later(row.last_twin_at, event.at)
        applied += 1
    return applied


def correlate_security(session: Session, events: Sequence[StatusEvent]) -> int:
    """Correlate the new security events of each tenant named; returns events read. A tenant
    this database does not know (deleted since) is skipped: retrying would not help."""
    read = 0
    for tenant in sorted({e.tenant for e in events if e.domain == "security"}):
        try:
            get_tenant(session, tenant)
        except NotFoundError:
            log.warning("security-ops: no tenant %r here; its events are skipped", tenant)
            continue
        read += correlate(session, tenant=tenant).events_read
    return read


#: The platform's consumer groups of the backbone, by name.
CONSUMERS: Final = {
    c.group: c
    for c in (
        StreamConsumer(
            "lake-activity",
            TELEMETRY_TOPIC,
            count_lake_batches,
            "telemetry-validated: per-vehicle batches and samples in the lake",
        ),
        StreamConsumer(
            "twin-activity",
            TWINS_TOPIC,
            count_twin_changes,
            "twin-reported: per-vehicle twin changes",
        ),
        StreamConsumer(
            "security-ops",
            SECURITY_TOPIC,
            correlate_security,
            "security-events: incidents from new security events",
        ),
    )
}
