"""HTTP bodies of ``/v1/commerce`` (Pydantic v2, at the edge only). Money travels as integer
minor units with the currency beside them, and as a decimal string for reading; never a float.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.commerce.billing import Invoice
from drivetrain.cloud.commerce.entitlements import Entitlement
from drivetrain.cloud.commerce.money import MAX_MINOR, format_amount
from drivetrain.cloud.commerce.service import Subscription
from drivetrain.cloud.commerce.usage import MAX_QUANTITY
from drivetrain.cloud.twins import TwinEntitlement

VIN_FIELD = Field(min_length=17, max_length=17, examples=["DTV14A5UXTRGXBBBA"])
ACCOUNT_FIELD = Field(min_length=1, max_length=64, examples=["driver:alice"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogOut(BaseModel):
    """The catalog in force and its version (docs/commerce.md describes the document)."""

    version: int
    features: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    tax_rates: dict[str, str]


class PaymentMethodIn(_Strict):
    """The payment method the provider charges for an account."""

    payment_method: str = Field(min_length=1, max_length=64, examples=["test_card_ok"])


class PaymentMethodOut(BaseModel):
    account_id: str
    provider: str


class PurchaseIn(_Strict):
    """Buy an offer for a vehicle, paid by an account."""

    vin: str = VIN_FIELD
    account_id: str = ACCOUNT_FIELD
    offer_id: str = Field(min_length=1, max_length=64, examples=["boost-monthly"])


class CancelIn(_Strict):
    at_period_end: bool = Field(True, description="Keep the feature until the paid period "
                                "ends (default), or end it now.")
    refund_unused: bool = Field(False, description="Ending now: refund the unused part of "
                                "the period, prorated to the second.")


class TransferIn(_Strict):
    new_account_id: str = ACCOUNT_FIELD


class SubscriptionOut(BaseModel):
    """A subscription (``price`` is a decimal string of ``price_minor``)."""

    subscription_id: str
    vin: str | None
    account_id: str
    offer_id: str
    features: list[str]
    billing: str
    region: str
    currency: str
    price_minor: int
    price: str
    status: Literal["trialing", "active", "past_due", "paused", "expired"]
    period_start: datetime
    period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    dunning_attempts: int
    next_retry_at: datetime | None
    end_reason: str | None
    created_at: datetime
    confirmed_by_car: list[str] | None = Field(
        default=None, description="Features of this subscription whose newest grant the car "
        "confirmed through its twin (it reports holding that very token); null where not "
        "read (the answers of changes).")

    @classmethod
    def of(cls, s: Subscription, confirmed: list[str] | None = None) -> SubscriptionOut:
        return cls(
            subscription_id=s.subscription_id, vin=s.vin, account_id=s.account_id,
            offer_id=s.offer_id, features=list(s.features), billing=s.billing, region=s.region,
            currency=s.currency, price_minor=s.price_minor,
            price=format_amount(s.price_minor, s.currency),
            status=s.status,  # type: ignore[arg-type]
            period_start=s.period_start, period_end=s.period_end, trial_end=s.trial_end,
            cancel_at_period_end=s.cancel_at_period_end, dunning_attempts=s.dunning_attempts,
            next_retry_at=s.next_retry_at, end_reason=s.end_reason, created_at=s.created_at,
            confirmed_by_car=confirmed)


class SubscriptionListOut(BaseModel):
    subscriptions: list[SubscriptionOut]


class InvoiceLineOut(BaseModel):
    description: str
    feature: str | None
    quantity: int
    unit_minor: int
    amount_minor: int
    partner: str | None
    partner_share_minor: int


class InvoiceOut(BaseModel):
    """An invoice: amounts in minor units of ``currency``; ``total`` for reading."""

    invoice_id: str
    account_id: str
    subscription_id: str | None
    vin: str | None
    region: str
    currency: str
    net_minor: int
    tax_minor: int
    total_minor: int
    total: str
    paid_minor: int
    refunded_minor: int
    tax_rate: str
    status: Literal["open", "paid", "refunded", "void"]
    issued_at: datetime
    paid_at: datetime | None
    lines: list[InvoiceLineOut]

    @classmethod
    def of(cls, i: Invoice) -> InvoiceOut:
        return cls(
            invoice_id=i.invoice_id, account_id=i.account_id, subscription_id=i.subscription_id,
            vin=i.vin, region=i.region, currency=i.currency, net_minor=i.net_minor,
            tax_minor=i.tax_minor, total_minor=i.total_minor, total=i.amount(i.total_minor),
            paid_minor=i.paid_minor, refunded_minor=i.refunded_minor, tax_rate=i.tax_rate,
            status=i.status, issued_at=i.issued_at, paid_at=i.paid_at,
            lines=[InvoiceLineOut(**asdict(line)) for line in i.lines])


class InvoiceListOut(BaseModel):
    invoices: list[InvoiceOut]


class PaymentEventIn(_Strict):
    """A payment provider's event (a webhook); stored once per (provider, event_id)."""

    provider: str = Field(min_length=1, max_length=32, examples=["test"])
    event_id: str = Field(min_length=1, max_length=100, examples=["evt_1PqR2s"])
    kind: Literal["payment_succeeded", "payment_failed", "refund"]
    invoice_id: str = Field(min_length=1, max_length=40)
    amount_minor: int = Field(ge=0, le=MAX_MINOR)
    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    detail: str = Field("", max_length=500)


class PaymentEventOut(BaseModel):
    event_id: str
    replayed: bool = Field(description="True when this event was applied before: nothing "
                           "changed now.")
    invoice_status: str


class UsageIn(_Strict):
    """Metered use of a pay-per-use subscription; stored once per event_id."""

    subscription_id: str = Field(min_length=1, max_length=40)
    event_id: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    used_at: datetime


class UsageOut(BaseModel):
    recorded: bool = Field(description="False: a duplicate event id, nothing counted.")


class EntitlementOut(BaseModel):
    """The newest token issued for a feature of a vehicle, and whether the car has it."""

    vin: str
    feature: str
    seq: int
    status: Literal["grant", "revoke"]
    subscription_id: str | None
    issued_at: datetime
    expires_at: datetime
    grace_s: int
    delivery: str | None = Field(description="The state of the vehicle's newest entitlements "
                                 "message (succeeded: the car acknowledged it).")
    vehicle_detail: str | None
    twin: Literal["confirmed", "pending", "failed"] | None = Field(
        description="This token in the vehicle's twin: confirmed (the car reports holding "
        "it), pending (desired, not confirmed yet), failed (not confirmed before it expired, "
        "or the car refused it); null when the twin holds another token.")
    car_state: Literal["enabled", "grace", "disabled"] | None = Field(
        description="The feature as the car last reported it to its twin (null: never).")
    car_seq: int | None = Field(description="The seq of the token the car reports holding.")
    token: str

    @classmethod
    def of(cls, e: Entitlement, delivery: tuple[str, str | None] | None,
           twin: TwinEntitlement | None = None) -> EntitlementOut:
        status = None
        if twin is not None and twin.desired_token == e.token and twin.status is not None:
            status = "confirmed" if twin.status == "converged" else twin.status
        return cls(vin=e.vin, feature=e.feature, seq=e.seq,
                   status=e.status,  # type: ignore[arg-type]
                   subscription_id=e.subscription_id, issued_at=e.issued_at,
                   expires_at=e.expires_at, grace_s=e.grace_s,
                   delivery=delivery[0] if delivery else None,
                   vehicle_detail=delivery[1] if delivery else None,
                   twin=status,
                   car_state=twin.reported_state if twin else None,  # type: ignore[arg-type]
                   car_seq=twin.reported_seq if twin else None, token=e.token)


class EntitlementListOut(BaseModel):
    entitlements: list[EntitlementOut]
    reported: list[str] | None = Field(description="The features the vehicle last reported "
                                       "running to its twin (enabled or in grace; null: it "
                                       "never reported one).")
    reported_at_ns: int | None


class RevenueRow(BaseModel):
    region: str
    currency: str
    revenue_minor: int
    revenue: str


class RevenueOut(BaseModel):
    """Recognised revenue per region (net of tax, refunds and partners' shares)."""

    regions: list[RevenueRow]
    subscriptions: dict[str, int] = Field(description="Subscriptions by status.")


class ChangeOfferIn(_Strict):
    offer_id: str = Field(min_length=1, max_length=64, examples=["boost-yearly"])


class StatementLineOut(BaseModel):
    invoice_id: str
    issued_at: datetime
    description: str
    currency: str
    amount_minor: int
    share_minor: int
    refunded: bool


class StatementOut(BaseModel):
    """A partner's revenue-share statement for a period: its lines and totals per currency."""

    partner: str
    since: datetime
    until: datetime
    lines: list[StatementLineOut]
    share_minor: dict[str, int] = Field(description="The partner's share per currency.")
