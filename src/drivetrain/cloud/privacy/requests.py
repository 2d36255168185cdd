"""Data subject requests: access (GDPR Art. 15, EU Data Act Art. 4) and erasure (Art. 17),
each with its legal deadline — one month from receipt (Art. 12(3)).

This module keeps the register: a request is opened (``open``), then completed or failed
with what was done. Carrying a request out spans domains (the state tables, the lake) and is
done by ``drivetrain.cloud.portability.rights``. An erasure request keeps the lake pseudonyms
of its vehicles, never their VINs, so that :func:`erased_pseudonyms` can tell a restored
backup which vehicles must be erased again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.cloud.privacy.models import DataRequestRow
from drivetrain.cloud.privacy.service import pseudonymiser
from drivetrain.core.errors import BadInputError, NotFoundError

RequestKind = Literal["access", "erasure"]
REQUEST_KINDS: Final[tuple[RequestKind, ...]] = get_args(RequestKind)
RequestStatus = Literal["open", "done", "failed"]
#: GDPR Art. 12(3): answer within one month of receipt (taken as 30 days).
RESPONSE_DAYS: Final = 30
#: Most vehicles one request may name.
MAX_SUBJECT_VINS: Final = 100


@dataclass(frozen=True, slots=True)
class DataRequest:
    """One request as registered; ``overdue`` is decided against a moment."""

    request_id: str
    tenant: str
    kind: RequestKind
    subjects: tuple[str, ...]
    requested_by: str
    received_at: datetime
    due_at: datetime
    status: RequestStatus
    completed_at: datetime | None
    outcome: dict[str, Any]

    def overdue(self, now: datetime) -> bool:
        """Still open after its deadline."""
        return self.status == "open" and now > self.due_at

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """JSON-ready form with ``overdue`` at ``now``."""
        return {
            "request_id": self.request_id, "kind": self.kind, "subjects": list(self.subjects),
            "requested_by": self.requested_by, "received_at": self.received_at.isoformat(),
            "due_at": self.due_at.isoformat(), "status": self.status,
            "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
            "overdue": self.overdue(now), "outcome": self.outcome,
        }


def _request(row: DataRequestRow) -> DataRequest:
    kind = parse_kind(row.kind)
    status: RequestStatus = "done" if row.status == "done" else \
        "failed" if row.status == "failed" else "open"
    return DataRequest(row.request_id, row.tenant_id, kind, tuple(row.subjects.split()),
                       row.requested_by, row.received_at, row.due_at, status, row.completed_at,
                       json.loads(row.outcome))


def parse_kind(kind: str) -> RequestKind:
    """``access`` or ``erasure``.

    Raises:
        BadInputError: anything else.
    """
    for known in REQUEST_KINDS:
        if kind == known:
            return known
    raise BadInputError(f"request kind {kind!r} is not known; expected one of "
                        f"{', '.join(REQUEST_KINDS)}")


def open_request(
    session: Session,
    *,
    tenant: str,
    kind: str,
    vins: Iterable[str],
    requested_by: str,
    now: datetime | None = None,
    request_id: str | None = None,
) -> DataRequest:
    """Register a request for ``vins`` (all of ``tenant``); records ``privacy.request.open``.

    Raises:
        BadInputError: an unknown kind, no VIN, or more than :data:`MAX_SUBJECT_VINS`.
        NotFoundError: the tenant does not exist.
    """
    chosen = parse_kind(kind)
    wanted = sorted(set(vins))
    if not wanted or len(wanted) > MAX_SUBJECT_VINS:
        raise BadInputError(f"a request names 1 to {MAX_SUBJECT_VINS} vehicles, got "
                            f"{len(wanted)}")
    get_tenant(session, tenant)
    now = now or datetime.now(UTC)
    subjects = wanted
    if chosen == "erasure":
        pseudonym = pseudonymiser(session, tenant)  # every key version: rows under each
        subjects = sorted({p for v in wanted for p in pseudonym.every(v)})
    row = DataRequestRow(
        request_id=uuid.uuid4().hex, tenant_id=tenant, kind=chosen, subjects=" ".join(subjects),
        requested_by=requested_by, received_at=now, due_at=now + timedelta(days=RESPONSE_DAYS),
        status="open", completed_at=None, outcome="{}",
    )
    session.add(row)
    session.flush()
    record_audit(session, tenant=tenant, actor=requested_by, action="privacy.request.open",
                 target=f"request:{row.request_id}", request_id=request_id, now=now,
                 details={"kind": chosen, "vehicles": len(wanted), "due_at": row.due_at.isoformat()})
    return _request(row)


def close_request(
    session: Session,
    *,
    tenant: str,
    request_id: str,
    ok: bool,
    outcome: dict[str, Any],
    actor: str,
    now: datetime | None = None,
) -> DataRequest:
    """Mark a request done (``ok``) or failed, with what was done or why it failed;
    records ``privacy.request.done`` or ``privacy.request.failed``.

    Raises:
        NotFoundError: no such request in ``tenant``.
    """
    row = session.get(DataRequestRow, request_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"data request {request_id!r} does not exist")
    now = now or datetime.now(UTC)
    row.status, row.completed_at = ("done" if ok else "failed"), now
    row.outcome = json.dumps(outcome, sort_keys=True)
    session.flush()
    record_audit(session, tenant=tenant, actor=actor,
                 action=f"privacy.request.{row.status}", target=f"request:{request_id}",
                 now=now, details={"kind": row.kind, "outcome": outcome})
    return _request(row)


def get_request(session: Session, tenant: str, request_id: str) -> DataRequest:
    """One request of ``tenant``.

    Raises:
        NotFoundError: none (another tenant's request looks the same).
    """
    row = session.get(DataRequestRow, request_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"data request {request_id!r} does not exist")
    return _request(row)


def list_requests(session: Session, tenant: str, *, limit: int = 100) -> list[DataRequest]:
    """``tenant``'s requests, newest first."""
    rows = session.scalars(select(DataRequestRow).where(DataRequestRow.tenant_id == tenant)
                           .order_by(DataRequestRow.received_at.desc()).limit(limit))
    return [_request(r) for r in rows]


def erased_pseudonyms(session: Session, tenant: str) -> set[str]:
    """Lake pseudonyms of every vehicle an erasure request of ``tenant`` named."""
    rows = session.scalars(select(DataRequestRow.subjects).where(
        DataRequestRow.tenant_id == tenant, DataRequestRow.kind == "erasure"))
    return {p for text in rows for p in text.split()}
