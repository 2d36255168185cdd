"""Usage metering for pay-per-use features: events stored once per id, invoiced once.

A metering source (the vehicle's reports, a partner's service) sends ``{event_id, quantity}``
for a usage subscription; a repeated event id is a duplicate and counts nothing. At the end of
each monthly period the runner invoices the period's uninvoiced usage at the offer's unit
price and marks those events with the invoice, so an event is never billed twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.commerce.models import SubscriptionRow, UsageEventRow
from drivetrain.cloud.infra import record_audit
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError

#: Largest quantity one event may report (a guard against a unit mix-up, not a business cap).
MAX_QUANTITY: Final = 10**9


def record_usage(session: Session, *, tenant: str, actor: str, subscription_id: str,
                 event_id: str, quantity: int, used_at: datetime) -> bool:
    """Store one usage event; returns False when ``event_id`` was stored before (a duplicate,
    nothing counted).

    Raises:
        NotFoundError: no such subscription of ``tenant``.
        BadInputError: a bad event id or quantity, a naive time, or a subscription that is
            not pay-per-use.
        ConflictError: the event id was stored before with other facts.
    """
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 100:
        raise BadInputError("usage event_id must be 1-100 characters")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= \
            MAX_QUANTITY:
        raise BadInputError(f"usage quantity {quantity!r}; expected an integer 1 to "
                            f"{MAX_QUANTITY:,}")
    if used_at.tzinfo is None:
        raise BadInputError(f"used_at {used_at.isoformat()!r} has no timezone")
    row = session.get(SubscriptionRow, subscription_id) if len(subscription_id) <= 40 else None
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"subscription {subscription_id!r} does not exist")
    from drivetrain.cloud.commerce.service import offer_of  # service imports billing, not this

    offer = offer_of(session, row)
    if offer.billing != "usage":
        raise BadInputError(f"subscription {subscription_id} is {offer.billing}; usage is "
                            "metered for pay-per-use offers only")
    known = session.get(UsageEventRow, (tenant, event_id))
    if known is not None:
        if (known.subscription_id, known.quantity) != (subscription_id, quantity):
            raise ConflictError(f"usage event {event_id!r} was recorded before with other "
                                "facts")
        return False
    session.add(UsageEventRow(tenant_id=tenant, event_id=event_id,
                              subscription_id=subscription_id, quantity=quantity,
                              used_at=used_at))
    record_audit(session, tenant=tenant, actor=actor, action="commerce.usage.record",
                 target=f"subscription:{subscription_id}",
                 details={"event_id": event_id, "quantity": quantity}, now=used_at)
    return True


def uninvoiced_quantity(session: Session, tenant: str, subscription_id: str,
                        before: datetime) -> int:
    """The quantity used before ``before`` and not invoiced yet."""
    u = UsageEventRow
    total = session.scalar(select(func.sum(u.quantity)).where(
        u.tenant_id == tenant, u.subscription_id == subscription_id, u.invoice_id.is_(None),
        u.used_at < before))
    return int(total or 0)


def mark_invoiced(session: Session, tenant: str, subscription_id: str, before: datetime,
                  invoice_id: str) -> None:
    """Mark the uninvoiced usage before ``before`` as billed on ``invoice_id``."""
    u = UsageEventRow
    session.execute(update(u).where(
        u.tenant_id == tenant, u.subscription_id == subscription_id, u.invoice_id.is_(None),
        u.used_at < before).values(invoice_id=invoice_id))
