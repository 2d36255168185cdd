"""Binding one API read to its purpose: check it, and leave a trace either way.

:func:`bind_read` is what every route that returns vehicle data calls before it reads: it
parses the purpose, builds the :class:`ReadPermit` from the contract basis or the consent
ledger, refuses a request for categories or vehicles the purpose does not cover, and records
the decision in the tenant's audit log — ``privacy.read`` when allowed, ``privacy.read.refused``
when not (in its own transaction, so the refusal is kept although the request fails).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from drivetrain.cloud.infra import Database, Principal, Role, record_audit
from drivetrain.cloud.privacy.ledger import purpose_permit
from drivetrain.cloud.privacy.purposes import ReadPermit, parse_purpose
from drivetrain.cloud.privacy.regional import audit_vehicle
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.vss.privacy import privacy_category_for


def categories_of(paths: Iterable[str]) -> set[str]:
    """The privacy categories of VSS ``paths``."""
    return {privacy_category_for(p) for p in paths}


def bind_read(
    database: Database,
    principal: Principal,
    purpose: str | None,
    *,
    target: str,
    request_id: str | None,
    categories: Iterable[str] = (),
    vehicles: Mapping[str, str] | None = None,
) -> ReadPermit:
    """Check a read of ``target`` (e.g. ``telemetry:signals``) for ``purpose``; audit it.

    ``categories`` are those the request names explicitly (its paths); ``vehicles`` maps the
    pseudonyms it names to how the caller wrote them. A third-party app (role
    ``third_party_app``) reads only under grants that name its client id.

    Raises:
        PurposeRequiredError: no purpose, or an unknown one.
        PurposeNotAllowedError: the purpose does not cover a named category or vehicle.
    """
    third_party = principal.client_id if principal.role is Role.THIRD_PARTY_APP else None
    return bind_read_as(database, tenant=principal.tenant, actor=principal.client_id,
                        third_party=third_party, purpose=purpose, target=target,
                        request_id=request_id, categories=categories, vehicles=vehicles)


def bind_read_as(
    database: Database,
    *,
    tenant: str,
    actor: str,
    third_party: str | None,
    purpose: str | None,
    target: str,
    request_id: str | None,
    categories: Iterable[str] = (),
    vehicles: Mapping[str, str] | None = None,
) -> ReadPermit:
    """:func:`bind_read` for a caller named by tenant and actor (the CLI, with direct access
    to the state database, reads as ``cli:<user>``); ``third_party`` is a third-party app's
    client id, None for the tenant's own clients. Raises what :func:`bind_read` raises."""
    wanted = sorted(set(categories))
    details: dict[str, object] = {"purpose": purpose, "categories": wanted,
                                  "vehicles": sorted((vehicles or {}).values())}
    try:
        with database.session() as session:
            chosen = parse_purpose(purpose)
            permit = purpose_permit(session, tenant, chosen, third_party=third_party)
            permit.require_categories(wanted)
            if vehicles:
                permit.require_vehicles(vehicles, wanted or sorted(permit.categories))
            record_audit(session, tenant=tenant, actor=actor,
                         action="privacy.read", target=target, request_id=request_id,
                         details={**details, "allowed": sorted(permit.categories)})
        return permit
    except DrivetrainError as refusal:
        with database.session() as session:
            record_audit(session, tenant=tenant, actor=actor, action="privacy.read.refused",
                         target=target, request_id=request_id,
                         details={**details, "error": type(refusal).__name__,
                                  "detail": str(refusal)})
        raise


def record_refusal(
    database: Database, principal: Principal, *, target: str, request_id: str | None,
    details: Mapping[str, object], error: Exception, vin: str | None = None,
) -> None:
    """Record ``privacy.read.refused`` in the caller's audit log, in its own transaction (the
    request fails, the record stays); about ``vin`` alone: kept in its region store."""
    with database.session() as session:
        record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                     action="privacy.read.refused", target=target, request_id=request_id,
                     details={**details, "error": type(error).__name__, "detail": str(error)},
                     vehicle=None if vin is None else audit_vehicle(session, vin))
