"""``/v1/data-act``, the operator's side: owner accounts bound to vehicles, business
recipients' standing (small or medium enterprise), and the compensation metering.

Binding owners and marking recipients needs ``privacy:write``, listing ``privacy:read``; all
act on the caller's own tenant (another tenant's vehicle or client answers 404). A third
party sees its own metering; an admin or privacy reader the tenant's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from drivetrain.cloud.infra import Principal, Role, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.cloud.privacy.data_act_log import Tariff, metering, parse_month, set_sme
from drivetrain.cloud.privacy.data_act_schemas import (
    MeterOut,
    OwnerIn,
    OwnerOut,
    RecipientIn,
    RecipientOut,
)
from drivetrain.cloud.privacy.owners import OwnerBinding, add_owner, list_owners, remove_owner
from drivetrain.core.errors import PermissionDeniedError

router = APIRouter(tags=["data-act"])

Reader = Annotated[Principal, require_scopes(Scope.PRIVACY_READ)]
Writer = Annotated[Principal, require_scopes(Scope.PRIVACY_WRITE)]
AnyCaller = Annotated[Principal, require_scopes()]
ClientId = Annotated[str, Path(min_length=1, max_length=128, description="A client id.")]
Vin = Annotated[str, Path(min_length=1, max_length=17, description="The vehicle's VIN.")]


def _owner(binding: OwnerBinding) -> OwnerOut:
    return OwnerOut(vin=binding.vin, client_id=binding.client_id, relation=binding.relation,
                    since=binding.since)


@router.post("/owners", response_model=OwnerOut, status_code=status.HTTP_201_CREATED,
             summary="Bind an owner account to a vehicle")
def post_owner(body: OwnerIn, principal: Writer, context: Context,
               request: Request) -> OwnerOut:
    """Bind a client of role ``owner`` to a vehicle of the tenant (owner, lessee or fleet)."""
    with context.database.session() as session:
        binding = add_owner(session, tenant=principal.tenant, vin=body.vin,
                            client_id=body.client_id, relation=body.relation,
                            actor=principal.client_id, request_id=request_id_of(request))
    return _owner(binding)


@router.get("/owners", response_model=list[OwnerOut], summary="Owner accounts of vehicles")
def get_owners(
    principal: Reader, context: Context,
    vin: Annotated[str | None, Query(min_length=1, max_length=17)] = None,
) -> list[OwnerOut]:
    """The tenant's owner bindings (of one vehicle with ``vin``)."""
    with context.database.session() as session:
        return [_owner(b) for b in list_owners(session, principal.tenant, vin)]


@router.delete("/owners/{vin}/{client_id}", response_model=OwnerOut,
               summary="Unbind an owner account from a vehicle")
def delete_owner(vin: Vin, client_id: ClientId, principal: Writer, context: Context,
                 request: Request) -> OwnerOut:
    """Remove the binding (the grants it gave stay in the ledger until revoked or expired)."""
    with context.database.session() as session:
        binding = remove_owner(session, tenant=principal.tenant, vin=vin, client_id=client_id,
                               actor=principal.client_id, request_id=request_id_of(request))
    return _owner(binding)


@router.put("/recipients/{client_id}", response_model=RecipientOut,
            summary="Mark a recipient a small or medium enterprise")
def put_recipient(client_id: ClientId, body: RecipientIn, principal: Writer, context: Context,
                  request: Request) -> RecipientOut:
    """A small or medium enterprise pays cost only; others cost plus the margin."""
    with context.database.session() as session:
        set_sme(session, tenant=principal.tenant, client_id=client_id, sme=body.sme,
                actor=principal.client_id, request_id=request_id_of(request))
    return RecipientOut(client_id=client_id, sme=body.sme)


@router.get("/metering", response_model=list[MeterOut],
            summary="What each recipient read per month, and its charge")
def get_metering(
    principal: AnyCaller, context: Context,
    month: Annotated[str | None, Query(min_length=7, max_length=7,
                                       description="YYYY-MM; default every month.")] = None,
) -> list[MeterOut]:
    """Requests, values and bytes per recipient and month with the charge of the tariff
    (settings ``data_act_cost_per_request_eur``, ``data_act_cost_per_mb_eur``,
    ``data_act_margin``). A third party sees only its own; others need ``privacy:read``."""
    own = principal.role is Role.THIRD_PARTY_APP
    if not own and not principal.has_scope(Scope.PRIVACY_READ):
        raise PermissionDeniedError(f"client {principal.client_id!r} lacks scope(s) "
                                    "'privacy:read' (or is a third party: its own metering)")
    settings = context.settings
    tariff = Tariff(settings.data_act_cost_per_request_eur, settings.data_act_cost_per_mb_eur,
                    settings.data_act_margin)
    with context.database.session() as session:
        rows = metering(session, principal.tenant, tariff, month=parse_month(month),
                        recipient=principal.client_id if own else None)
    return [MeterOut.model_validate(r) for r in rows]
