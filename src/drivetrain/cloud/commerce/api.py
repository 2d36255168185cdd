"""``/v1/commerce``: the feature catalog, subscriptions, invoices, payments, usage, the
entitlements each vehicle holds, and revenue.

A thin shell over the commerce service; every route acts for the caller's own tenant (another
tenant's subscription or invoice answers 404, another tenant's vehicle is an unknown
vehicle). Reads need ``commerce:read``, changes ``commerce:write``. Mounted by
``drivetrain.api.routers``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from drivetrain.cloud.commerce.api_schemas import (
    CancelIn,
    CatalogOut,
    ChangeOfferIn,
    EntitlementListOut,
    EntitlementOut,
    InvoiceListOut,
    InvoiceOut,
    PaymentEventIn,
    PaymentEventOut,
    PaymentMethodIn,
    PaymentMethodOut,
    PurchaseIn,
    RevenueOut,
    RevenueRow,
    StatementLineOut,
    StatementOut,
    SubscriptionListOut,
    SubscriptionOut,
    TransferIn,
    UsageIn,
    UsageOut,
)
from drivetrain.cloud.commerce.billing import (
    get_invoice,
    list_invoices,
    partner_statement,
    record_payment_event,
    revenue_by_region,
)
from drivetrain.cloud.commerce.entitlements import (
    confirmed_by_car,
    delivery_states,
    list_entitlements,
    reported_features,
    twin_states,
)
from drivetrain.cloud.commerce.invoice_html import render_invoice_html
from drivetrain.cloud.commerce.invoice_pdf import render_invoice_pdf
from drivetrain.cloud.commerce.lifecycle import SubscriptionStatus
from drivetrain.cloud.commerce.payments import payment_provider
from drivetrain.cloud.commerce.service import (
    MAX_PAGE,
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
from drivetrain.cloud.fleet import get_vehicle
from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes

router = APIRouter(tags=["commerce"])

Reader = Annotated[Principal, require_scopes(Scope.COMMERCE_READ)]
Writer = Annotated[Principal, require_scopes(Scope.COMMERCE_WRITE)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Vin = Annotated[str, Path(min_length=17, max_length=17)]
SubscriptionId = Annotated[str, Path(max_length=40)]
CATALOG_EXAMPLE = {
    "features": [{"code": "performance_boost", "name": "Performance boost",
                  "binding": "vehicle", "requires": 'model == "compact-bev"'}],
    "offers": [{"id": "boost-monthly", "features": ["performance_boost"], "billing": "monthly",
                "prices": {"EU": {"amount": "9.99", "currency": "EUR"}}, "grace_s": 259200}],
    "tax_rates": {"EU": "0.19"},
}


def _catalog_out(version: int, document: dict[str, object]) -> CatalogOut:
    return CatalogOut(version=version, **document)  # type: ignore[arg-type]


@router.put("/catalog", response_model=CatalogOut, summary="Replace the feature catalog")
def put_catalog_route(
    principal: Writer, context: Context, request: Request,
    document: Annotated[dict[str, object], Body(examples=[CATALOG_EXAMPLE])],
) -> CatalogOut:
    """Check the catalog document and store it as the next version (subscriptions keep the
    terms of the version they were bought under)."""
    with context.database.session() as session:
        version = put_catalog(session, tenant=principal.tenant, actor=principal.client_id,
                              document=document, request_id=request_id_of(request))
        _, catalog = get_catalog(session, principal.tenant, version)
    return _catalog_out(version, catalog.to_dict())


@router.get("/catalog", response_model=CatalogOut, summary="The feature catalog in force")
def get_catalog_route(principal: Reader, context: Context) -> CatalogOut:
    """Features, offers with prices per region, tax rates."""
    with context.database.session() as session:
        version, catalog = get_catalog(session, principal.tenant)
    return _catalog_out(version, catalog.to_dict())


@router.put("/accounts/{account_id}/payment-method", response_model=PaymentMethodOut,
            summary="Set an account's payment method")
def put_payment_method(
    account_id: Annotated[str, Path(max_length=64)], body: PaymentMethodIn, principal: Writer,
    context: Context, request: Request,
) -> PaymentMethodOut:
    """The method the payment provider charges for this customer's subscriptions."""
    provider = payment_provider(context.settings)
    with context.database.session() as session:
        set_payment_method(session, tenant=principal.tenant, actor=principal.client_id,
                           account_id=account_id, payment_method=body.payment_method,
                           provider=provider, request_id=request_id_of(request))
    return PaymentMethodOut(account_id=account_id, provider=provider.name)


@router.post("/subscriptions", response_model=SubscriptionOut,
             status_code=status.HTTP_201_CREATED, summary="Buy an offer for a vehicle")
def post_subscription(body: PurchaseIn, principal: Writer, context: Context,
                      request: Request) -> SubscriptionOut:
    """Start a trial, or invoice and charge the first period; the vehicle receives its signed
    entitlement within seconds. A declined card answers 409 and buys nothing."""
    with context.database.session() as session:
        sub = purchase(session, tenant=principal.tenant, actor=principal.client_id,
                       vin=body.vin, account_id=body.account_id, offer_id=body.offer_id,
                       provider=payment_provider(context.settings),
                       request_id=request_id_of(request))
    return SubscriptionOut.of(sub)


@router.get("/subscriptions", response_model=SubscriptionListOut,
            summary="List subscriptions")
def get_subscriptions(
    principal: Reader, context: Context, limit: Limit = 100,
    vin: Annotated[str | None, Query(max_length=17)] = None,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[SubscriptionStatus | None, Query(alias="status")] = None,
) -> SubscriptionListOut:
    """The tenant's subscriptions, newest first."""
    with context.database.session() as session:
        subs = list_subscriptions(session, principal.tenant, vin=vin, account_id=account_id,
                                  status=status_, limit=limit)
        confirmed = confirmed_by_car(session, principal.tenant,
                                     [(s.subscription_id, s.vin) for s in subs])
    return SubscriptionListOut(subscriptions=[SubscriptionOut.of(s, confirmed[s.subscription_id])
                                              for s in subs])


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut,
            summary="One subscription")
def get_subscription_route(subscription_id: SubscriptionId, principal: Reader,
                           context: Context) -> SubscriptionOut:
    """Its status, period, dunning state and why it ended."""
    with context.database.session() as session:
        sub = get_subscription(session, principal.tenant, subscription_id)
        confirmed = confirmed_by_car(session, principal.tenant,
                                     [(sub.subscription_id, sub.vin)])
        return SubscriptionOut.of(sub, confirmed[sub.subscription_id])


@router.post("/subscriptions/{subscription_id}/cancel", response_model=SubscriptionOut,
             summary="Cancel a subscription")
def post_cancel(subscription_id: SubscriptionId, body: CancelIn, principal: Writer,
                context: Context, request: Request) -> SubscriptionOut:
    """At the end of the paid period (default) or now, optionally refunding the unused part;
    409 once it has ended."""
    with context.database.session() as session:
        sub = cancel_subscription(
            session, tenant=principal.tenant, actor=principal.client_id,
            subscription_id=subscription_id, at_period_end=body.at_period_end,
            refund_unused=body.refund_unused, provider=payment_provider(context.settings),
            request_id=request_id_of(request))
    return SubscriptionOut.of(sub)


@router.post("/subscriptions/{subscription_id}/change", response_model=SubscriptionOut,
             summary="Upgrade or downgrade to another offer")
def post_change(subscription_id: SubscriptionId, body: ChangeOfferIn, principal: Writer,
                context: Context, request: Request) -> SubscriptionOut:
    """The new offer is charged from now; the unused part of the old period is refunded,
    prorated to the second. Answers the new subscription; a declined card changes nothing."""
    with context.database.session() as session:
        sub = change_offer(session, tenant=principal.tenant, actor=principal.client_id,
                           subscription_id=subscription_id, offer_id=body.offer_id,
                           provider=payment_provider(context.settings),
                           request_id=request_id_of(request))
    return SubscriptionOut.of(sub)


@router.post("/subscriptions/{subscription_id}/pause", response_model=SubscriptionOut,
             summary="Pause a subscription")
def post_pause(subscription_id: SubscriptionId, principal: Writer, context: Context,
               request: Request) -> SubscriptionOut:
    """The feature goes off and the period stops; 409 unless active and recurring."""
    with context.database.session() as session:
        return SubscriptionOut.of(pause_subscription(
            session, tenant=principal.tenant, actor=principal.client_id,
            subscription_id=subscription_id, request_id=request_id_of(request)))


@router.post("/subscriptions/{subscription_id}/resume", response_model=SubscriptionOut,
             summary="Resume a paused subscription")
def post_resume(subscription_id: SubscriptionId, principal: Writer, context: Context,
                request: Request) -> SubscriptionOut:
    """The period is extended by the time paused; 409 unless paused."""
    with context.database.session() as session:
        return SubscriptionOut.of(resume_subscription(
            session, tenant=principal.tenant, actor=principal.client_id,
            subscription_id=subscription_id, request_id=request_id_of(request)))


@router.post("/vehicles/{vin}/transfer", response_model=SubscriptionListOut,
             summary="A vehicle changes owner")
def post_transfer(vin: Vin, body: TransferIn, principal: Writer, context: Context,
                  request: Request) -> SubscriptionListOut:
    """Vehicle-bound features stay with the car (billed to the new owner); account-bound
    ones follow the previous owner and leave the car."""
    with context.database.session() as session:
        changed = transfer_vehicle(session, tenant=principal.tenant, actor=principal.client_id,
                                   vin=vin, new_account_id=body.new_account_id,
                                   request_id=request_id_of(request))
    return SubscriptionListOut(subscriptions=[SubscriptionOut.of(s) for s in changed])


@router.get("/vehicles/{vin}/entitlements", response_model=EntitlementListOut,
            summary="The entitlements a vehicle holds")
def get_entitlements(vin: Vin, principal: Reader, context: Context) -> EntitlementListOut:
    """Per feature the newest signed token issued, whether the car acknowledged its message
    and confirmed it through its twin, and the features the car last reported running."""
    with context.database.session() as session:
        get_vehicle(session, vin, tenant=principal.tenant)
        entitlements = list_entitlements(session, principal.tenant, vin)
        delivery = delivery_states(session, principal.tenant).get(vin)
        reported = reported_features(session, principal.tenant, vin)
        twin = twin_states(session, principal.tenant, vin)
    return EntitlementListOut(entitlements=[EntitlementOut.of(e, delivery, twin.get(e.feature))
                                            for e in entitlements],
                              reported=list(reported.enabled) if reported else None,
                              reported_at_ns=reported.ts_ns if reported else None)


@router.get("/invoices", response_model=InvoiceListOut, summary="List invoices")
def get_invoices(
    principal: Reader, context: Context, limit: Limit = 100,
    account_id: Annotated[str | None, Query(max_length=64)] = None,
    subscription_id: Annotated[str | None, Query(max_length=40)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
) -> InvoiceListOut:
    """The tenant's invoices, newest first."""
    with context.database.session() as session:
        invoices = list_invoices(session, principal.tenant, account_id=account_id,
                                 subscription_id=subscription_id, status=status_, limit=limit)
    return InvoiceListOut(invoices=[InvoiceOut.of(i) for i in invoices])


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, summary="One invoice")
def get_invoice_route(invoice_id: Annotated[str, Path(max_length=40)], principal: Reader,
                      context: Context) -> InvoiceOut:
    """Lines, net, tax, total, paid and refunded, in minor units."""
    with context.database.session() as session:
        return InvoiceOut.of(get_invoice(session, principal.tenant, invoice_id))


@router.get("/invoices/{invoice_id}/html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {"schema": {
                "type": "string", "contentMediaType": "text/html"}}}}},
            summary="One invoice as a printable page")
def get_invoice_html(invoice_id: Annotated[str, Path(max_length=40)], principal: Reader,
                     context: Context) -> HTMLResponse:
    """The invoice as a self-contained HTML document."""
    with context.database.session() as session:
        invoice = get_invoice(session, principal.tenant, invoice_id)
    return HTMLResponse(render_invoice_html(invoice, principal.tenant))


@router.get("/invoices/{invoice_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {"schema": {
                "type": "string", "contentMediaType": "application/pdf"}}}}},
            summary="One invoice as a PDF document")
def get_invoice_pdf(invoice_id: Annotated[str, Path(max_length=40)], principal: Reader,
                    context: Context) -> Response:
    """The invoice as PDF (needs the ``commerce`` extra: fpdf2)."""
    with context.database.session() as session:
        invoice = get_invoice(session, principal.tenant, invoice_id)
    return Response(render_invoice_pdf(invoice, principal.tenant), media_type="application/pdf",
                    headers={"Content-Disposition":
                             f'inline; filename="{invoice.invoice_id}.pdf"'})


@router.post("/payment-events", response_model=PaymentEventOut,
             summary="Record a payment provider's event")
def post_payment_event(body: PaymentEventIn, principal: Writer, context: Context
                       ) -> PaymentEventOut:
    """Applied once per (provider, event id); a replay answers ``replayed: true`` and moves
    no money."""
    with context.database.session() as session:
        result = record_payment_event(
            session, tenant=principal.tenant, provider=body.provider, event_id=body.event_id,
            kind=body.kind, invoice_id=body.invoice_id, amount_minor=body.amount_minor,
            currency=body.currency, detail=body.detail, now=_utcnow())
    return PaymentEventOut(event_id=result.event_id, replayed=result.replayed,
                           invoice_status=result.invoice_status)


@router.post("/usage", response_model=UsageOut, summary="Meter use of a pay-per-use feature")
def post_usage(body: UsageIn, principal: Writer, context: Context) -> UsageOut:
    """Stored once per event id; billed at the end of the subscription's monthly period."""
    with context.database.session() as session:
        recorded = record_usage(session, tenant=principal.tenant, actor=principal.client_id,
                                subscription_id=body.subscription_id, event_id=body.event_id,
                                quantity=body.quantity, used_at=body.used_at)
    return UsageOut(recorded=recorded)


@router.get("/revenue", response_model=RevenueOut, summary="Revenue per region")
def get_revenue(principal: Reader, context: Context) -> RevenueOut:
    """Recognised revenue per region and currency, and subscriptions by status."""
    with context.database.session() as session:
        regions = revenue_by_region(session, principal.tenant)
        counts = subscription_counts(session, principal.tenant)
    return RevenueOut(regions=[RevenueRow(**r) for r in regions],
                      subscriptions=dict(counts))


@router.get("/partners/{partner}/statement", response_model=StatementOut,
            summary="A partner's revenue-share statement")
def get_statement(
    partner: Annotated[str, Path(max_length=64)], principal: Reader, context: Context,
    since: Annotated[datetime, Query(description="Start of the period (inclusive).")],
    until: Annotated[datetime, Query(description="End of the period (exclusive).")],
) -> StatementOut:
    """Every invoiced line of the partner's features in the period, with its share."""
    with context.database.session() as session:
        lines = partner_statement(session, principal.tenant, partner, since, until)
    totals: dict[str, int] = {}
    for line in lines:  # a refund does not take back a partner's share yet (flagged)
        totals[line.currency] = totals.get(line.currency, 0) + line.share_minor
    return StatementOut(partner=partner, since=since, until=until,
                        lines=[StatementLineOut(**asdict(line)) for line in lines],
                        share_minor=totals)


def _utcnow() -> datetime:
    return datetime.now(UTC)
