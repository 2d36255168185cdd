"""The security posture over a window, as a UN R155 monitoring report needs it (7.2.2.2 (g)):
how many incidents of which severity are in which state, on how many vehicles, and how long
the fleet took from the vehicle's detection to the analyst's acknowledgement, to a response
sent to the cars, and to resolution.

Computed from the stored incidents, their actions and the response playbooks — nothing is
kept besides them. Detection is the first event of the incident as the vehicle timed it
(``first_ns``); a duration that would be negative (a vehicle clock ahead of the cloud's) counts
as zero.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.security.models import (
    SecurityIncidentActionRow,
    SecurityIncidentRow,
    SecurityResponseRow,
)
from drivetrain.cloud.security.service import SEVERITY_ORDER
from drivetrain.core.errors import BadInputError

INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
RESPONSE_STATUSES = ("proposed", "executed", "refused")
#: The longest window a report covers, days.
MAX_REPORT_DAYS = 3650


@dataclass(frozen=True)
class DurationStats:
    """How long a step took over the incidents that reached it, seconds (None when none did)."""

    count: int
    median_s: float | None
    p90_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, durations_s: list[float]) -> DurationStats:
        if not durations_s:
            return cls(0, None, None, None)
        ordered = sorted(durations_s)
        rank = max(1, math.ceil(0.9 * len(ordered)))  # nearest-rank 90th percentile
        return cls(len(ordered), float(median(ordered)), ordered[rank - 1], ordered[-1])


@dataclass(frozen=True)
class SecurityReport:
    """A tenant's security posture for incidents opened since ``since``.

    Attributes:
        incidents: incidents opened in the window.
        vehicles: distinct vehicles among them.
        events: security events folded into them.
        by_severity: severity -> status -> incidents (every severity and status, zeros kept).
        by_status: status -> incidents.
        to_acknowledge: detection -> first acknowledgement.
        to_respond: detection -> first executed response playbook covering the vehicle.
        to_resolve: detection -> resolution.
        responses: response status -> responses proposed in the window.
        awaiting_approval: responses still waiting for a second person.
    """

    tenant: str
    since: datetime
    generated_at: datetime
    incidents: int
    vehicles: int
    events: int
    by_severity: dict[str, dict[str, int]]
    by_status: dict[str, int]
    to_acknowledge: DurationStats
    to_respond: DurationStats
    to_resolve: DurationStats
    responses: dict[str, int]
    awaiting_approval: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"], out["generated_at"] = self.since.isoformat(), self.generated_at.isoformat()
        return out


def _seconds_after(detected_ns: int, at: datetime) -> float:
    return max(0.0, at.timestamp() - detected_ns / 1e9)


def security_report(
    session: Session, *, tenant: str, days: int = 30, now: datetime | None = None
) -> SecurityReport:
    """The posture of ``tenant`` over incidents opened in the last ``days`` days.

    Raises:
        BadInputError: ``days`` outside 1..3650.
    """
    if not 1 <= days <= MAX_REPORT_DAYS:
        raise BadInputError(f"days must be 1..{MAX_REPORT_DAYS}, got {days}")
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    incidents = list(session.scalars(
        select(SecurityIncidentRow).where(
            SecurityIncidentRow.tenant_id == tenant, SecurityIncidentRow.opened_at >= since)
    ))  # fmt: skip
    firsts: dict[tuple[int, str], datetime] = {}
    ids = [i.incident_id for i in incidents]
    for start in range(0, len(ids), 500):  # bounded IN lists
        for action in session.scalars(
            select(SecurityIncidentActionRow).where(
                SecurityIncidentActionRow.incident_id.in_(ids[start : start + 500]),
                SecurityIncidentActionRow.action.in_(("acknowledge", "resolve")),
            )
        ):
            key = (action.incident_id, action.action)
            if key not in firsts or action.at < firsts[key]:
                firsts[key] = action.at
    responses = list(session.scalars(
        select(SecurityResponseRow).where(
            SecurityResponseRow.tenant_id == tenant, SecurityResponseRow.created_at >= since)
    ))  # fmt: skip
    # (signature, vin) -> when the first response covering it was sent to the cars
    sent: dict[tuple[str, str], datetime] = {}
    for response in responses:
        if response.status != "executed" or response.decided_at is None:
            continue
        for vin in json.loads(response.vins):
            covered = (response.signature, str(vin))
            if covered not in sent or response.decided_at < sent[covered]:
                sent[covered] = response.decided_at

    by_severity: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(INCIDENT_STATUSES, 0))
    for severity in SEVERITY_ORDER:
        by_severity[severity]  # every severity listed, zeros included
    acknowledge, respond, resolve = [], [], []
    for incident in incidents:
        by_severity[incident.severity][incident.status] += 1
        if (at := firsts.get((incident.incident_id, "acknowledge"))) is not None:
            acknowledge.append(_seconds_after(incident.first_ns, at))
        if (at := firsts.get((incident.incident_id, "resolve"))) is not None:
            resolve.append(_seconds_after(incident.first_ns, at))
        if (at := sent.get((incident.signature, incident.vin))) is not None:
            respond.append(_seconds_after(incident.first_ns, at))
    statuses = Counter(i.status for i in incidents)
    response_statuses = Counter(r.status for r in responses)
    return SecurityReport(
        tenant=tenant, since=since, generated_at=now, incidents=len(incidents),
        vehicles=len({i.vin for i in incidents}), events=sum(i.event_count for i in incidents),
        by_severity={s: dict(c) for s, c in by_severity.items()},
        by_status={s: statuses.get(s, 0) for s in INCIDENT_STATUSES},
        to_acknowledge=DurationStats.of(acknowledge), to_respond=DurationStats.of(respond),
        to_resolve=DurationStats.of(resolve),
        responses={s: response_statuses.get(s, 0) for s in RESPONSE_STATUSES},
        awaiting_approval=response_statuses.get("proposed", 0),
    )  # fmt: skip
