"""Commerce: features sold after the sale — the catalog, subscriptions, billing, and the
signed entitlements that switch features on in the car.

Public surface (everything else in this package is internal):

- Catalog: :func:`put_catalog`, :func:`get_catalog`, :class:`FeatureCatalog`,
  :class:`Feature`, :class:`Offer`.
- Customers and subscriptions: :func:`set_payment_method`, :func:`purchase`,
  :func:`cancel_subscription`, :func:`change_offer` (upgrade, downgrade),
  :func:`pause_subscription`, :func:`resume_subscription`,
  :func:`transfer_vehicle`, :func:`get_subscription`, :func:`list_subscriptions`,
  :func:`subscription_counts`, :class:`Subscription`.
- Billing: :func:`get_invoice`, :func:`list_invoices`, :func:`record_payment_event`,
  :func:`refund`, :func:`revenue_by_region`, :func:`partner_statement` (revenue share), :func:`ledger_balances`, :func:`render_invoice_html`,
  :class:`Invoice`, :class:`PaymentDeclinedError`; usage: :func:`record_usage`.
- Payments: :class:`PaymentProvider`, :class:`TestPaymentProvider`, :func:`payment_provider`
  (the one the settings name).
- Entitlements: :func:`list_entitlements`, :func:`delivery_states`, :func:`sync_vehicle`,
  :class:`Entitlement`; the runner: :class:`CommerceRunner`, :func:`run_commerce`.

See docs/commerce.md.
"""

from drivetrain.cloud.commerce.billing import (
    Invoice,
    PaymentDeclinedError,
    get_invoice,
    ledger_balances,
    list_invoices,
    partner_statement,
    record_payment_event,
    refund,
    revenue_by_region,
)
from drivetrain.cloud.commerce.catalog import Feature, FeatureCatalog, Offer
from drivetrain.cloud.commerce.entitlements import (
    Entitlement,
    delivery_states,
    list_entitlements,
    sync_vehicle,
)
from drivetrain.cloud.commerce.invoice_html import render_invoice_html
from drivetrain.cloud.commerce.payments import (
    PaymentProvider,
    TestPaymentProvider,
    payment_provider,
)
from drivetrain.cloud.commerce.runner import CommerceRunner, run_commerce
from drivetrain.cloud.commerce.service import (
    Subscription,
    cancel_subscription,
    change_offer,
    get_catalog,
    get_subscription,
    list_subscriptions,
    pause_subscription,
    purchase,
    put_catalog,
    resume_subscription,
    set_payment_method,
    subscription_counts,
    transfer_vehicle,
)
from drivetrain.cloud.commerce.usage import record_usage

__all__ = [
    "CommerceRunner",
    "Entitlement",
    "Feature",
    "FeatureCatalog",
    "Invoice",
    "Offer",
    "PaymentDeclinedError",
    "PaymentProvider",
    "Subscription",
    "TestPaymentProvider",
    "cancel_subscription",
    "change_offer",
    "delivery_states",
    "get_catalog",
    "get_invoice",
    "get_subscription",
    "ledger_balances",
    "list_entitlements",
    "list_invoices",
    "list_subscriptions",
    "partner_statement",
    "pause_subscription",
    "payment_provider",
    "purchase",
    "put_catalog",
    "record_payment_event",
    "record_usage",
    "refund",
    "render_invoice_html",
    "resume_subscription",
    "revenue_by_region",
    "run_commerce",
    "set_payment_method",
    "subscription_counts",
    "sync_vehicle",
    "transfer_vehicle",
]
