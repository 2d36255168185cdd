"""Response playbooks: what the fleet does about an incident signature, through the one
dispatcher every domain reuses (``drivetrain.cloud.commands``): a signed command to each
affected vehicle, rolled out and followed per vehicle like any job.

A playbook is either **automatic** (it runs when proposed) or **requires approval** by a second
person (the two-person rule: the approver may not be the one who proposed it). A response
that needs approval and has none is refused — nothing is sent. Every step (propose, approve,
refuse) is recorded with the response and in the tenant's audit chain, with who did it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.commands import Payload, create_job
from drivetrain.cloud.infra import record_audit
from drivetrain.cloud.security.models import SecurityIncidentRow, SecurityResponseRow
from drivetrain.core.errors import BadInputError, NotFoundError, StateTransitionError

Approval = Literal["automatic", "required"]
_FUNCTION = re.compile(r"[a-z0-9][a-z0-9_.-]{0,79}")


@dataclass(frozen=True)
class Playbook:
    """One response: the command each affected vehicle receives, and who must agree."""

    name: str
    command: str
    approval: Approval
    needs_function: bool
    summary: str


PLAYBOOKS: dict[str, Playbook] = {
    p.name: p
    for p in (
        Playbook("disable_function", "security.disable_function", "required", True,
                 "disable a vulnerable vehicle function until a fix ships"),
        Playbook("security_channel", "security.restrict_channel", "required", False,
                 "restrict the vehicle link to the security-only channel"),
        Playbook("collect_evidence", "security.collect_evidence", "automatic", False,
                 "upload the detector's recent evidence frames"),
    )
}


@dataclass(frozen=True)
class Response:
    response_id: int
    tenant: str
    signature: str
    playbook: str
    args: dict[str, Any]
    vins: tuple[str, ...]
    status: str
    requested_by: str
    decided_by: str | None
    job_id: str | None
    created_at: datetime
    decided_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["vins"] = list(self.vins)
        out["created_at"] = self.created_at.isoformat()
        out["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return out


def _response(row: SecurityResponseRow) -> Response:
    return Response(
        row.response_id, row.tenant_id, row.signature, row.playbook, json.loads(row.args),
        tuple(json.loads(row.vins)), row.status, row.requested_by, row.decided_by, row.job_id,
        row.created_at, row.decided_at,
    )  # fmt: skip


def propose_response(
    session: Session,
    *,
    tenant: str,
    signature: str,
    playbook: str,
    actor: str,
    function: str | None = None,
    now: datetime | None = None,
) -> Response:
    """Propose ``playbook`` for every vehicle with an unresolved incident of ``signature``; an
    automatic playbook is executed at once.

    Raises:
        BadInputError: an unknown playbook, a missing or malformed function name.
        NotFoundError: no unresolved incident of that signature in the tenant.
    """
    now = now or datetime.now(UTC)
    book = PLAYBOOKS.get(playbook)
    if book is None:
        raise BadInputError(f"playbook {playbook!r} is not known; expected one of {sorted(PLAYBOOKS)}")
    args: dict[str, Any] = {"signature": signature}
    if book.needs_function:
        if function is None or not _FUNCTION.fullmatch(function):
            raise BadInputError(
                f"playbook {playbook} needs a function name like 'reverse_assist', got {function!r}"
            )
        args["function"] = function
    vins = sorted(set(session.scalars(
        select(SecurityIncidentRow.vin).where(
            SecurityIncidentRow.tenant_id == tenant, SecurityIncidentRow.signature == signature,
            SecurityIncidentRow.status != "resolved",
        )
    )))  # fmt: skip
    if not vins:
        raise NotFoundError(f"no unresolved incident of signature {signature!r} in tenant {tenant!r}")
    row = SecurityResponseRow(
        tenant_id=tenant, signature=signature, playbook=playbook,
        args=json.dumps(args, sort_keys=True), vins=json.dumps(vins), status="proposed",
        requested_by=actor, decided_by=None, job_id=None, created_at=now, decided_at=None,
    )  # fmt: skip
    session.add(row)
    session.flush()
    record_audit(
        session, tenant=tenant, actor=actor, action="security.response.propose",
        target=f"security_response:{row.response_id}",
        details={"playbook": playbook, "signature": signature, "vehicles": len(vins)}, now=now,
    )  # fmt: skip
    if book.approval == "automatic":
        _execute(session, row, book, decided_by=f"playbook:{playbook}", now=now)
    return _response(row)


def approve_response(
    session: Session, *, tenant: str, response_id: int, actor: str, now: datetime | None = None
) -> Response:
    """Approve a proposed response and execute it (one signed command per vehicle).

    Raises:
        NotFoundError: no such response in this tenant.
        StateTransitionError: it was already executed or refused.
        PermissionDeniedError: the approver proposed it (two people must agree).
    """
    from drivetrain.core.errors import PermissionDeniedError

    now = now or datetime.now(UTC)
    row = _row(session, tenant, response_id)
    if row.status != "proposed":
        raise StateTransitionError(f"response {response_id} is {row.status}; only a proposed one can be approved")
    if actor == row.requested_by:
        raise PermissionDeniedError(
            f"response {response_id} was proposed by {actor!r}; another person must approve it"
        )
    _execute(session, row, PLAYBOOKS[row.playbook], decided_by=actor, now=now)
    return _response(row)


def execute_response(session: Session, *, tenant: str, response_id: int, actor: str) -> Response:
    """Run a response now. Only an automatic playbook (or an approved response) runs.

    Raises:
        StateTransitionError: the playbook requires approval and has none (nothing is sent).
    """
    row = _row(session, tenant, response_id)
    book = PLAYBOOKS[row.playbook]
    if row.status != "executed" and book.approval == "required":
        raise StateTransitionError(
            f"response {response_id} ({row.playbook}) requires approval by a second person; "
            "nothing was sent"
        )
    return _response(row)


def refuse_response(
    session: Session, *, tenant: str, response_id: int, actor: str, now: datetime | None = None
) -> Response:
    """Refuse a proposed response (nothing is sent).

    Raises:
        NotFoundError: no such response in this tenant.
        StateTransitionError: it was already executed or refused.
    """
    now = now or datetime.now(UTC)
    row = _row(session, tenant, response_id)
    if row.status != "proposed":
        raise StateTransitionError(f"response {response_id} is {row.status}; only a proposed one can be refused")
    row.status, row.decided_by, row.decided_at = "refused", actor, now
    record_audit(session, tenant=tenant, actor=actor, action="security.response.refuse",
                 target=f"security_response:{response_id}", details={}, now=now)
    session.flush()
    return _response(row)


def list_responses(session: Session, *, tenant: str, limit: int = 100) -> list[Response]:
    """A tenant's responses, newest first.

    Raises:
        BadInputError: a limit outside 1..1000.
    """
    if not 1 <= limit <= 1000:
        raise BadInputError(f"limit must be 1..1000, got {limit}")
    query = (
        select(SecurityResponseRow).where(SecurityResponseRow.tenant_id == tenant)
        .order_by(SecurityResponseRow.response_id.desc()).limit(limit)
    )  # fmt: skip
    return [_response(r) for r in session.scalars(query)]


def _row(session: Session, tenant: str, response_id: int) -> SecurityResponseRow:
    row = session.get(SecurityResponseRow, response_id)
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"security response {response_id} not found in tenant {tenant!r}")
    return row


def _execute(
    session: Session, row: SecurityResponseRow, book: Playbook, *, decided_by: str, now: datetime
) -> None:
    args = json.loads(row.args)
    job = create_job(
        session, tenant=row.tenant_id, actor=decided_by,
        payload=Payload.command(book.command, args), vins=json.loads(row.vins),
        name=f"security-response-{row.response_id}", origin="security", now=now,
    )  # fmt: skip
    row.status, row.decided_by, row.decided_at, row.job_id = "executed", decided_by, now, job.job_id
    record_audit(
        session, tenant=row.tenant_id, actor=decided_by, action="security.response.execute",
        target=f"security_response:{row.response_id}",
        details={"playbook": row.playbook, "job_id": job.job_id, "requested_by": row.requested_by},
        now=now,
    )  # fmt: skip
    session.flush()
