"""``/v1/audit``: the caller's tenant's audit log (scope ``audit:read``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from drivetrain.api.schemas import AuditEntryOut, AuditPage, ChainReport
from drivetrain.cloud.infra import Principal, Scope, list_audit, verify_chain
from drivetrain.cloud.infra.audit import MAX_LIST_LIMIT
from drivetrain.cloud.infra.http import Context, require_scopes

router = APIRouter(tags=["audit"])

Auditor = Annotated[Principal, require_scopes(Scope.AUDIT_READ)]


@router.get("", response_model=AuditPage, summary="Page through the audit log")
def get_audit(
    principal: Auditor,
    context: Context,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Return entries after this one.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    action: Annotated[str | None, Query(description="Only this action, e.g. client.create")] = None,
) -> AuditPage:
    """The caller's tenant's audit entries, oldest first, paged by sequence number."""
    with context.database.session() as session:
        entries = list_audit(
            session, principal.tenant, after_seq=after_seq, limit=limit, action=action
        )
    last = entries[-1].seq if len(entries) == limit else None
    return AuditPage(entries=[AuditEntryOut.of(e) for e in entries], next_after_seq=last)


@router.get("/verify", response_model=ChainReport,
            summary="Recompute the audit log's hash chains")
def get_audit_verification(principal: Auditor, context: Context) -> ChainReport:
    """Recompute the caller's tenant's hash chain and report the first broken entry."""
    with context.database.session() as session:
        result = verify_chain(session, principal.tenant)
    broken = result.first_broken
    return ChainReport(
        ok=result.ok,
        entries_checked=result.entries_checked,
        first_broken_seq=broken.seq if broken else None,
        reason=broken.reason if broken else None,
        unkeyed_entries=result.unkeyed_entries,
    )
