"""The commerce domain's tables: catalogs, customer accounts, subscriptions, invoices and
their lines, the ledger, payment and usage events (idempotency), and issued entitlements.

Money columns are ``BigInteger`` minor units with their currency beside them; nothing here is
a float. Per-vehicle delivery of entitlements is the dispatcher's (``drivetrain.cloud.commands``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


def _tenant() -> Mapped[str]:
    return mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True)


class CatalogVersionRow(Base):
    """One version of a tenant's feature catalog (``FeatureCatalog.to_dict``, JSON)."""

    __tablename__ = "commerce_catalogs"

    tenant_id: Mapped[str] = _tenant()
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccountRow(Base):
    """A paying customer: the payment method the provider charges."""

    __tablename__ = "commerce_accounts"

    tenant_id: Mapped[str] = _tenant()
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_method: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionRow(Base):
    """A subscription of one account to one offer for one vehicle (``lifecycle``)."""

    __tablename__ = "commerce_subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True)
    vin: Mapped[str | None] = mapped_column(String(17), nullable=True, index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    offer_id: Mapped[str] = mapped_column(String(64))
    catalog_version: Mapped[int] = mapped_column(Integer)
    region: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    dunning_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InvoiceRow(Base):
    """An invoice: totals in minor units; its lines are ``InvoiceLineRow``."""

    __tablename__ = "commerce_invoices"

    invoice_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    subscription_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    vin: Mapped[str | None] = mapped_column(String(17), nullable=True)
    region: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    net_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_rate: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    payment_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)


class InvoiceLineRow(Base):
    """One line of an invoice."""

    __tablename__ = "commerce_invoice_lines"

    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("commerce_invoices.invoice_id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    feature: Mapped[str | None] = mapped_column(String(48), nullable=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    partner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partner_share_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntryRow(Base):
    """One entry of a balanced transaction (``ledger.Transaction``): debit > 0 > credit."""

    __tablename__ = "commerce_ledger"
    __table_args__ = (Index("ix_commerce_ledger_tenant_account", "tenant_id", "account"),)

    entry_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    transaction_id: Mapped[str] = mapped_column(String(40), index=True)
    account: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PaymentEventRow(Base):
    """A payment provider's event, stored once: a replayed event id changes nothing."""

    __tablename__ = "commerce_payment_events"

    tenant_id: Mapped[str] = _tenant()
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    invoice_id: Mapped[str] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageEventRow(Base):
    """Metered use of a pay-per-use feature, stored once per event id; invoiced once."""

    __tablename__ = "commerce_usage"

    tenant_id: Mapped[str] = _tenant()
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(40), index=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    invoice_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class EntitlementRow(Base):
    """Per vehicle and feature, the newest token issued (``seq`` increases with each)."""

    __tablename__ = "commerce_entitlements"

    tenant_id: Mapped[str] = _tenant()
    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    feature: Mapped[str] = mapped_column(String(48), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))
    token_id: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(Text)
    subscription_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    grace_s: Mapped[int] = mapped_column(Integer)


class CommerceJobRow(Base):
    """The tenant's continuous dispatcher job that carries entitlements to vehicles."""

    __tablename__ = "commerce_jobs"

    tenant_id: Mapped[str] = _tenant()
    job_id: Mapped[str] = mapped_column(String(40))
    wire_version: Mapped[int] = mapped_column(Integer, default=0)
