"""Invoices, payments and refunds, each posted to the ledger as one balanced transaction.

Payment events are stored once per (provider, event id): a provider's webhook delivered twice,
or a charge retried with the same idempotency key, is answered with the first outcome and
moves no money again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivetrain.cloud.commerce.ledger import (
    Transaction,
    credit_note,
    invoice_issued,
    payment_captured,
    refund_paid,
)
from drivetrain.cloud.commerce.models import (
    InvoiceLineRow,
    InvoiceRow,
    LedgerEntryRow,
    PaymentEventRow,
)
from drivetrain.cloud.commerce.money import allocate, check_minor, format_amount, tax_on
from drivetrain.cloud.commerce.payments import PaymentOutcome, PaymentProvider
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError

InvoiceStatus = Literal["open", "paid", "refunded", "void"]
PaymentEventKind = Literal["payment_succeeded", "payment_failed", "refund"]
PAYMENT_EVENT_KINDS: Final = ("payment_succeeded", "payment_failed", "refund")


class PaymentDeclinedError(ConflictError):
    """The payment provider declined the charge; nothing was bought (HTTP 409)."""


@dataclass(frozen=True, slots=True)
class LineDraft:
    """A line to invoice: ``quantity`` × ``unit_minor``; a partner's share when third-party."""

    description: str
    feature: str | None
    quantity: int
    unit_minor: int
    partner: str | None = None
    partner_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    feature: str | None
    quantity: int
    unit_minor: int
    amount_minor: int
    partner: str | None
    partner_share_minor: int


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice as readers see it (amounts in minor units, with ``currency``)."""

    invoice_id: str
    account_id: str
    subscription_id: str | None
    vin: str | None
    region: str
    currency: str
    net_minor: int
    tax_minor: int
    total_minor: int
    paid_minor: int
    refunded_minor: int
    tax_rate: str
    status: InvoiceStatus
    issued_at: datetime
    paid_at: datetime | None
    lines: tuple[InvoiceLine, ...]

    def amount(self, minor: int) -> str:
        """``minor`` as a decimal string in the invoice's currency."""
        return format_amount(minor, self.currency)


@dataclass(frozen=True, slots=True)
class PaymentEventResult:
    """What recording a payment event did: ``replayed`` when it was stored before."""

    event_id: str
    replayed: bool
    invoice_status: str


def post(session: Session, tenant: str, transaction: Transaction, now: datetime) -> str:
    """Store a balanced transaction; returns its id."""
    transaction_id = f"tx-{uuid.uuid4().hex[:16]}"
    session.add_all(
        LedgerEntryRow(tenant_id=tenant, transaction_id=transaction_id, account=e.account,
                       currency=e.currency, amount_minor=e.amount_minor,
                       memo=transaction.memo[:200], created_at=now)
        for e in transaction.entries
    )
    return transaction_id


def issue_invoice(
    session: Session, *, tenant: str, account_id: str, subscription_id: str | None,
    vin: str | None, region: str, currency: str, tax_rate: Decimal,
    lines: Sequence[LineDraft], now: datetime,
) -> InvoiceRow:
    """Issue an invoice: tax on the net total, partners' shares per line, posted to the ledger.

    Raises:
        BadInputError: no lines, or an amount out of range.
    """
    if not lines:
        raise BadInputError("an invoice needs at least one line")
    invoice_id = f"inv-{uuid.uuid4().hex[:12]}"
    rows: list[InvoiceLineRow] = []
    shares: dict[str, int] = {}
    for i, line in enumerate(lines, start=1):
        amount = check_minor(line.quantity * line.unit_minor, f"line {i} amount")
        share = 0
        if line.partner is not None and line.partner_rate is not None:
            share = int(Decimal(amount) * line.partner_rate)  # rounded down: never overpaid
            shares[line.partner] = shares.get(line.partner, 0) + share
        rows.append(InvoiceLineRow(invoice_id=invoice_id, line_no=i,
                                   description=line.description[:200], feature=line.feature,
                                   quantity=line.quantity, unit_minor=line.unit_minor,
                                   amount_minor=amount, partner=line.partner,
                                   partner_share_minor=share))
    net = sum(r.amount_minor for r in rows)
    tax = tax_on(net, tax_rate)
    invoice = InvoiceRow(
        invoice_id=invoice_id, tenant_id=tenant, account_id=account_id,
        subscription_id=subscription_id, vin=vin, region=region, currency=currency,
        net_minor=net, tax_minor=tax, total_minor=net + tax, paid_minor=0, refunded_minor=0,
        tax_rate=str(tax_rate), status="paid" if net + tax == 0 else "open", issued_at=now,
        paid_at=now if net + tax == 0 else None,
    )
    session.add(invoice)
    session.flush()
    session.add_all(rows)
    post(session, tenant, invoice_issued(f"invoice {invoice_id}", account_id, region, currency,
                                         net, tax, shares), now)
    return invoice


def _invoice_row(session: Session, tenant: str, invoice_id: str) -> InvoiceRow:
    row = session.get(InvoiceRow, invoice_id) if len(invoice_id) <= 40 else None
    if row is None or row.tenant_id != tenant:
        raise NotFoundError(f"invoice {invoice_id!r} does not exist")
    return row


def record_payment_event(
    session: Session, *, tenant: str, provider: str, event_id: str, kind: str,
    invoice_id: str, amount_minor: int, currency: str, detail: str = "", now: datetime,
) -> PaymentEventResult:
    """Apply a payment provider's event once; a replay (same provider and event id) changes
    nothing and says so.

    Raises:
        BadInputError: an unknown kind, a currency or amount that does not fit the invoice.
        NotFoundError: no such invoice of ``tenant``.
    """
    if kind not in PAYMENT_EVENT_KINDS:
        raise BadInputError(f"payment event kind {kind!r}; expected one of {PAYMENT_EVENT_KINDS}")
    if not event_id or len(event_id) > 100:
        raise BadInputError("payment event id must be 1-100 characters")
    check_minor(amount_minor, "amount_minor")
    known = session.get(PaymentEventRow, (tenant, provider, event_id))
    invoice = _invoice_row(session, tenant, invoice_id)
    if known is not None:
        if (known.invoice_id, known.kind, known.amount_minor) != (invoice_id, kind, amount_minor):
            raise ConflictError(f"payment event {event_id!r} was recorded before with other "
                                "facts; a provider never reuses an event id")
        return PaymentEventResult(event_id, True, invoice.status)
    if currency != invoice.currency:
        raise BadInputError(f"payment event in {currency}; invoice {invoice_id} is in "
                            f"{invoice.currency}")
    if kind == "payment_succeeded":
        due = invoice.total_minor - invoice.paid_minor
        if amount_minor > due:
            raise BadInputError(f"payment of {amount_minor} exceeds the {due} still due on "
                                f"invoice {invoice_id}")
        invoice.paid_minor += amount_minor
        post(session, tenant, payment_captured(f"payment {event_id}", invoice.account_id,
                                               provider, currency, amount_minor), now)
        if invoice.paid_minor == invoice.total_minor:
            invoice.status, invoice.paid_at, invoice.payment_reference = "paid", now, event_id
    elif kind == "refund":
        _apply_refund(session, invoice, provider, amount_minor, event_id, now)
    session.add(PaymentEventRow(tenant_id=tenant, provider=provider, event_id=event_id,
                                kind=kind, invoice_id=invoice_id, amount_minor=amount_minor,
                                currency=currency, outcome=detail[:500], received_at=now))
    session.flush()
    return PaymentEventResult(event_id, False, invoice.status)


def _apply_refund(session: Session, invoice: InvoiceRow, provider: str, amount_minor: int,
                  event_id: str, now: datetime) -> None:
    refundable = invoice.paid_minor - invoice.refunded_minor
    if amount_minor > refundable:
        raise BadInputError(f"refund of {amount_minor} exceeds the {refundable} paid and not "
                            f"yet refunded on invoice {invoice.invoice_id}")
    # Split the refund between net and tax in the invoice's proportion, exactly.
    if invoice.total_minor:
        net, tax = allocate(amount_minor, [invoice.net_minor, invoice.tax_minor])
    else:
        net, tax = 0, 0
    post(session, invoice.tenant_id, refund_paid(f"refund {event_id}", provider, invoice.region,
                                                 invoice.currency, net, tax), now)
    invoice.refunded_minor += amount_minor
    if invoice.refunded_minor == invoice.total_minor:
        invoice.status = "refunded"


def void_invoice(session: Session, invoice: InvoiceRow, now: datetime) -> None:
    """Void an open invoice never paid (dunning gave up): a credit note takes back its
    revenue and tax, so the customer owes nothing and nothing is recognised."""
    if invoice.status != "open" or invoice.paid_minor:
        return
    post(session, invoice.tenant_id, credit_note(f"void {invoice.invoice_id}",
                                                 invoice.account_id, invoice.region,
                                                 invoice.currency, invoice.net_minor,
                                                 invoice.tax_minor), now)
    invoice.status = "void"


def collect(session: Session, provider: PaymentProvider, invoice: InvoiceRow,
            payment_method: str, attempt: int, now: datetime,
            idempotency_key: str | None = None) -> PaymentOutcome:
    """Charge what is due on ``invoice`` (attempt ``attempt``: a retry is a new charge; the
    same attempt asked twice is one) and record the provider's answer as a payment event.
    ``idempotency_key``: the provider's key (default: the invoice and the attempt)."""
    due = invoice.total_minor - invoice.paid_minor
    if due <= 0:
        return PaymentOutcome(True, invoice.payment_reference or "nothing-due")
    outcome = provider.charge(invoice.account_id, payment_method, due, invoice.currency,
                              idempotency_key or
                              f"{invoice.tenant_id}:{invoice.invoice_id}:{attempt}")
    record_payment_event(
        session, tenant=invoice.tenant_id, provider=provider.name, event_id=outcome.reference,
        kind="payment_succeeded" if outcome.succeeded else "payment_failed",
        invoice_id=invoice.invoice_id, amount_minor=due, currency=invoice.currency,
        detail=outcome.reason or "", now=now,
    )
    return outcome


def refund(session: Session, provider: PaymentProvider, tenant: str, invoice_id: str,
           amount_minor: int | None, now: datetime) -> InvoiceRow:
    """Refund ``amount_minor`` (default: everything paid and not refunded) of an invoice.

    Raises:
        NotFoundError: no such invoice of ``tenant``.
        BadInputError: more than is refundable, or nothing paid.
    """
    invoice = _invoice_row(session, tenant, invoice_id)
    refundable = invoice.paid_minor - invoice.refunded_minor
    amount = refundable if amount_minor is None else amount_minor
    if amount <= 0:
        raise BadInputError(f"invoice {invoice_id} has nothing paid left to refund")
    reference = invoice.payment_reference or invoice_id
    outcome = provider.refund(reference, amount, invoice.currency,
                              f"{tenant}:{invoice_id}:refund:{invoice.refunded_minor}")
    record_payment_event(session, tenant=tenant, provider=provider.name,
                         event_id=outcome.reference, kind="refund", invoice_id=invoice_id,
                         amount_minor=amount, currency=invoice.currency, now=now)
    return invoice


def invoice_of(session: Session, row: InvoiceRow) -> Invoice:
    lines = session.scalars(select(InvoiceLineRow).where(InvoiceLineRow.invoice_id ==
                                                         row.invoice_id)
                            .order_by(InvoiceLineRow.line_no)).all()
    return Invoice(
        row.invoice_id, row.account_id, row.subscription_id, row.vin, row.region, row.currency,
        row.net_minor, row.tax_minor, row.total_minor, row.paid_minor, row.refunded_minor,
        row.tax_rate, row.status, row.issued_at, row.paid_at,  # type: ignore[arg-type]
        tuple(InvoiceLine(r.description, r.feature, r.quantity, r.unit_minor, r.amount_minor,
                          r.partner, r.partner_share_minor) for r in lines),
    )


def get_invoice(session: Session, tenant: str, invoice_id: str) -> Invoice:
    """Raises ``NotFoundError`` for another tenant's invoice as for none."""
    return invoice_of(session, _invoice_row(session, tenant, invoice_id))


def list_invoices(session: Session, tenant: str, *, account_id: str | None = None,
                  subscription_id: str | None = None, status: str | None = None,
                  limit: int = 100) -> list[Invoice]:
    """``tenant``'s invoices, newest first."""
    query = select(InvoiceRow).where(InvoiceRow.tenant_id == tenant)
    if account_id is not None:
        query = query.where(InvoiceRow.account_id == account_id)
    if subscription_id is not None:
        query = query.where(InvoiceRow.subscription_id == subscription_id)
    if status is not None:
        query = query.where(InvoiceRow.status == status)
    rows = session.scalars(query.order_by(InvoiceRow.issued_at.desc(),
                                          InvoiceRow.invoice_id.desc()).limit(limit)).all()
    return [invoice_of(session, r) for r in rows]


def ledger_balances(session: Session, tenant: str, prefix: str = "") -> dict[tuple[str, str], int]:
    """Per (account, currency), debits minus credits, for accounts starting with ``prefix``."""
    e = LedgerEntryRow
    rows = session.execute(
        select(e.account, e.currency, func.sum(e.amount_minor))
        .where(e.tenant_id == tenant, e.account.startswith(prefix))
        .group_by(e.account, e.currency)
    ).all()
    return {(a, c): int(total) for a, c, total in rows}


def revenue_by_region(session: Session, tenant: str) -> list[Mapping[str, Any]]:
    """Recognised revenue per region and currency (net of refunds, credit notes and partners'
    shares), largest first."""
    out = [{"region": account.split(":", 1)[1], "currency": currency, "revenue_minor": -total,
            "revenue": format_amount(-total, currency)}
           for (account, currency), total in ledger_balances(session, tenant, "revenue:").items()]
    return sorted(out, key=lambda r: (-int(r["revenue_minor"]), str(r["region"])))


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One invoiced line of a partner's feature: the net amount and the partner's share."""

    invoice_id: str
    issued_at: datetime
    description: str
    currency: str
    amount_minor: int
    share_minor: int
    refunded: bool


def partner_statement(session: Session, tenant: str, partner: str, since: datetime,
                      until: datetime) -> list[StatementLine]:
    """The revenue-share statement of ``partner`` for invoices issued in [since, until):
    every line of its features with the share booked to ``payable:{partner}``. Void
    invoices are left out; a refunded one is listed and flagged.

    Raises:
        BadInputError: a naive time or an empty period.
    """
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise BadInputError("statement period: give timezone-aware since < until")
    rows = session.execute(
        select(InvoiceRow, InvoiceLineRow)
        .join(InvoiceLineRow, InvoiceLineRow.invoice_id == InvoiceRow.invoice_id)
        .where(InvoiceRow.tenant_id == tenant, InvoiceLineRow.partner == partner,
               InvoiceRow.issued_at >= since, InvoiceRow.issued_at < until,
               InvoiceRow.status != "void")
        .order_by(InvoiceRow.issued_at, InvoiceRow.invoice_id, InvoiceLineRow.line_no)
    ).all()
    return [StatementLine(i.invoice_id, i.issued_at, line.description, i.currency,
                          line.amount_minor, line.partner_share_minor, i.refunded_minor > 0)
            for i, line in rows]
