"""Selling features end to end on a connected fleet: a purchase turns the feature on in the
car through the signed downlink; a lapsed payment turns it off after the grace period; a
cancellation revokes it and an older grant replayed is refused; payment events are applied
once; a resale keeps vehicle-bound features with the car; every tenant sees only its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from commerce_kit import LEASE_S, Shop
from rig import CLOUD_KEY

from drivetrain.cloud.commerce import (
    PaymentDeclinedError,
    cancel_subscription,
    change_offer,
    delivery_states,
    get_subscription,
    ledger_balances,
    list_entitlements,
    list_invoices,
    list_subscriptions,
    purchase,
    record_payment_event,
    record_usage,
    render_invoice_html,
    revenue_by_region,
    set_payment_method,
    transfer_vehicle,
)
from drivetrain.cloud.commerce.entitlements import reported_features
from drivetrain.cloud.commerce.models import InvoiceRow, SubscriptionRow
from drivetrain.cloud.infra import Database
from drivetrain.core.errors import ConflictError, NotFoundError
from drivetrain.edge.entitlements import EntitlementGate, TokenRefused

T0 = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def shop(database: Database) -> Iterator[Shop]:
    shop = Shop(database)
    yield shop
    shop.rig.close()


def _buy(shop: Shop, offer: str = "boost-monthly", account: str = "driver:alice",
         vin: str | None = None, now: datetime = T0) -> str:
    with shop.database.session() as session:
        return purchase(session, tenant="acme", actor="test", vin=vin or shop.rig.vins[0],
                        account_id=account, offer_id=offer, provider=shop.provider,
                        now=now).subscription_id


def _features(shop: Shop, vin: str) -> frozenset[str]:
    return shop.rig.actuators[vin].features


def test_a_purchase_turns_the_feature_on_in_the_car_and_is_invoiced_exactly(shop: Shop) -> None:
    vin = shop.rig.vins[0]
    sub_id = _buy(shop)
    shop.commerce_round(T0)
    shop.deliver(T0)
    assert _features(shop, vin) == {"performance_boost"}
    shop.rig.vehicles_act(int((T0 + timedelta(seconds=2)).timestamp() * 1e9))  # events flushed
    with shop.database.session() as session:
        assert delivery_states(session, "acme")[vin][0] == "succeeded"
        reported = reported_features(session, "acme", vin)  # the car's own word
        assert reported is not None and reported.enabled == ("performance_boost",)
        (invoice,) = list_invoices(session, "acme", subscription_id=sub_id)
        assert (invoice.net_minor, invoice.tax_minor, invoice.total_minor) == (999, 190, 1189)
        assert invoice.status == "paid"
        assert revenue_by_region(session, "acme") == [
            {"region": "EU", "currency": "EUR", "revenue_minor": 999, "revenue": "9.99"}]
        assert sum(ledger_balances(session, "acme").values()) == 0
        html = render_invoice_html(invoice, "Acme Motors")
        assert "11.89 EUR" in html and "19 %" in html
    assert shop.rig.actuators[shop.rig.vins[1]].features == frozenset()


def test_a_declined_card_buys_nothing(shop: Shop) -> None:
    with pytest.raises(PaymentDeclinedError, match="card_declined"):
        _buy(shop, account="driver:bob")
    with shop.database.session() as session:
        assert list_subscriptions(session, "acme") == []
        assert session.query(InvoiceRow).count() == 0


def test_a_lapsed_payment_turns_the_feature_off_after_the_grace_period(shop: Shop) -> None:
    vin = shop.rig.vins[0]
    sub_id = _buy(shop)
    with shop.database.session() as session:
        period_end = get_subscription(session, "acme", sub_id).period_end
        set_payment_method(session, tenant="acme", actor="test", account_id="driver:alice",
                           payment_method="test_card_declined", provider=shop.provider)
    assert period_end is not None
    shop.commerce_round(T0)
    shop.deliver(T0)
    # Half a lease before the period ends the grant is renewed up to the period end.
    before_end = period_end - timedelta(seconds=LEASE_S / 4)
    shop.commerce_round(before_end)
    shop.deliver(before_end)
    with shop.database.session() as session:
        (grant,) = list_entitlements(session, "acme", vin)
    assert grant.seq == 2 and grant.expires_at == period_end
    result = shop.commerce_round(period_end)  # the renewal is declined
    assert result.declined == 1
    with shop.database.session() as session:
        sub = get_subscription(session, "acme", sub_id)
        assert (sub.status, sub.dunning_attempts) == ("past_due", 1)
        assert list_entitlements(session, "acme", vin)[0].seq == 2  # no revocation
    shop.deliver(period_end + timedelta(seconds=300))
    assert _features(shop, vin) == {"performance_boost"}  # in the 600 s grace period
    shop.rig.vehicles_act(int((period_end + timedelta(seconds=601)).timestamp() * 1e9))
    assert _features(shop, vin) == frozenset()


def test_cancelling_now_revokes_and_an_older_grant_replayed_is_refused(shop: Shop) -> None:
    vin = shop.rig.vins[0]
    sub_id = _buy(shop)
    shop.commerce_round(T0)
    shop.deliver(T0)
    with shop.database.session() as session:
        old_grant = list_entitlements(session, "acme", vin)[0].token
        cancel_subscription(session, tenant="acme", actor="test", subscription_id=sub_id,
                            at_period_end=False, refund_unused=True, provider=shop.provider,
                            now=T0 + timedelta(days=10))
    later = T0 + timedelta(days=10, seconds=1)
    shop.commerce_round(later)
    shop.deliver(later)
    assert _features(shop, vin) == frozenset()
    with shop.database.session() as session:
        revoke = list_entitlements(session, "acme", vin)[0]
        invoice = list_invoices(session, "acme", subscription_id=sub_id)[0]
    assert revoke.status == "revoke"
    # The unused part of the period came back; what was kept and refunded sum to what was paid.
    assert 0 < invoice.refunded_minor < invoice.paid_minor
    # The car refuses the old grant however it arrives (a dealer tool, a copied message).
    gate = shop.rig.agents[vin].entitlements
    outcome = gate.offer(old_grant, int(later.timestamp() * 1e9))
    assert isinstance(outcome, TokenRefused) and outcome.reason == "rolled_back"
    # And another car refuses this car's token.
    other = EntitlementGate(shop.rig.vins[1], CLOUD_KEY.verify_key)
    outcome = other.offer(old_grant, int(T0.timestamp() * 1e9))
    assert isinstance(outcome, TokenRefused) and outcome.reason == "other_vehicle"


def test_a_replayed_payment_event_moves_money_once(shop: Shop) -> None:
    with shop.database.session() as session:
        shop.provider.check_method("test_card_ok")
        set_payment_method(session, tenant="acme", actor="test", account_id="driver:carol",
                           payment_method="test_card_declined", provider=shop.provider)
    with pytest.raises(PaymentDeclinedError):
        _buy(shop, account="driver:carol")
    sub_id = _buy(shop, offer="seats-yearly", account="driver:carol")  # a trial: no charge
    with shop.database.session() as session:
        row = session.get(SubscriptionRow, sub_id)
        assert row is not None and row.status == "trialing"
    end = T0 + timedelta(days=14)
    shop.commerce_round(end)  # the trial ends, the card is declined: an open invoice
    with shop.database.session() as session:
        (invoice,) = list_invoices(session, "acme", subscription_id=sub_id)
        assert invoice.status == "open" and invoice.total_minor == 99_00 + 18_81
        event = {"tenant": "acme", "provider": "test", "event_id": "evt_bank_transfer_1",
                 "kind": "payment_succeeded", "invoice_id": invoice.invoice_id,
                 "amount_minor": invoice.total_minor, "currency": "EUR", "now": end}
        first = record_payment_event(session, **event)  # type: ignore[arg-type]
        cash = ledger_balances(session, "acme", "cash:")
    with shop.database.session() as session:
        again = record_payment_event(session, **event)  # type: ignore[arg-type]
        assert (first.replayed, again.replayed) == (False, True)
        assert ledger_balances(session, "acme", "cash:") == cash
        assert list_invoices(session, "acme", subscription_id=sub_id)[0].paid_minor == \
            invoice.total_minor
        with pytest.raises(ConflictError, match="other facts"):
            record_payment_event(session, **{**event, "amount_minor": 1})  # type: ignore[arg-type]


def test_on_resale_vehicle_bound_features_stay_and_account_bound_ones_follow_the_owner(
    shop: Shop,
) -> None:
    vin = shop.rig.vins[0]
    boost = _buy(shop)
    assistant = _buy(shop, offer="range-monthly")
    shop.commerce_round(T0)
    shop.deliver(T0)
    assert _features(shop, vin) == {"performance_boost", "range_assistant"}
    with shop.database.session() as session:
        changed = transfer_vehicle(session, tenant="acme", actor="test", vin=vin,
                                   new_account_id="driver:dave", now=T0 + timedelta(hours=1))
    assert {(s.subscription_id, s.account_id, s.vin) for s in changed} == {
        (boost, "driver:dave", vin), (assistant, "driver:alice", None)}
    later = T0 + timedelta(hours=1, seconds=1)
    shop.commerce_round(later)
    shop.deliver(later)
    assert _features(shop, vin) == {"performance_boost"}
    with shop.database.session() as session:
        statuses = {e.feature: e.status for e in list_entitlements(session, "acme", vin)}
        assert statuses == {"performance_boost": "grant", "range_assistant": "revoke"}
        # The partner's share of the assistant was set aside when it was invoiced.
        assert ledger_balances(session, "acme", "payable:") == {("payable:routewise", "EUR"):
                                                                -149}


def test_tenants_see_and_sell_only_their_own(shop: Shop) -> None:
    sub_id = _buy(shop)
    with shop.database.session() as session:
        with pytest.raises(NotFoundError):
            get_subscription(session, "globex", sub_id)
        with pytest.raises(NotFoundError):
            purchase(session, tenant="acme", actor="test", vin=shop.rig.other_vins[0],
                     account_id="driver:alice", offer_id="boost-monthly",
                     provider=shop.provider)
        with pytest.raises(NotFoundError, match="no feature catalog"):
            purchase(session, tenant="globex", actor="test", vin=shop.rig.other_vins[0],
                     account_id="driver:alice", offer_id="boost-monthly",
                     provider=shop.provider)


def test_a_feature_the_vehicle_cannot_run_is_not_sold(shop: Shop) -> None:
    with pytest.raises(ConflictError, match='requirements of track_mode: model == "roadster"'):
        _buy(shop, offer="track-once")
    with pytest.raises(ConflictError, match="already has performance_boost"):
        _buy(shop)
        _buy(shop)


def test_usage_is_metered_once_per_event_and_invoiced_at_period_end(shop: Shop) -> None:
    sub_id = _buy(shop, offer="charging-usage")
    with shop.database.session() as session:
        for event_id, hours in (("u1", 3), ("u2", 2), ("u1", 3)):
            record_usage(session, tenant="acme", actor="test", subscription_id=sub_id,
                         event_id=event_id, quantity=hours, used_at=T0 + timedelta(days=1))
        period_end = get_subscription(session, "acme", sub_id).period_end
    assert period_end is not None
    shop.commerce_round(period_end)
    with shop.database.session() as session:
        (invoice,) = list_invoices(session, "acme", subscription_id=sub_id)
        assert (invoice.lines[0].quantity, invoice.net_minor, invoice.status) == (5, 250, "paid")


def test_when_dunning_gives_up_the_unpaid_invoice_is_voided_and_no_revenue_remains(
    shop: Shop,
) -> None:
    sub_id = _buy(shop)
    with shop.database.session() as session:
        period_end = get_subscription(session, "acme", sub_id).period_end
        set_payment_method(session, tenant="acme", actor="test", account_id="driver:alice",
                           payment_method="test_card_insufficient", provider=shop.provider)
    assert period_end is not None
    shop.commerce_round(T0)  # the car's grant
    now = period_end
    shop.commerce_round(now)
    for _ in range(3):  # every retry is declined
        with shop.database.session() as session:
            retry = get_subscription(session, "acme", sub_id).next_retry_at
        assert retry is not None
        now = retry
        shop.commerce_round(now)
    with shop.database.session() as session:
        sub = get_subscription(session, "acme", sub_id)
        assert sub.status == "expired" and "payment failed" in (sub.end_reason or "")
        assert [i.status for i in list_invoices(session, "acme", subscription_id=sub_id)] == \
            ["void", "paid"]
        assert revenue_by_region(session, "acme")[0]["revenue_minor"] == 999  # the paid month
        assert ledger_balances(session, "acme", "receivable:") == {
            ("receivable:driver:alice", "EUR"): 0}
        assert list_entitlements(session, "acme", shop.rig.vins[0])[0].status == "revoke"


def test_an_upgrade_refunds_the_unused_time_exactly_and_moves_the_entitlement(
    shop: Shop,
) -> None:
    vin = shop.rig.vins[0]
    monthly = _buy(shop)
    shop.commerce_round(T0)
    later = T0 + timedelta(days=10, hours=5)
    with shop.database.session() as session:
        yearly = change_offer(session, tenant="acme", actor="test", subscription_id=monthly,
                              offer_id="boost-yearly", provider=shop.provider, now=later)
        old = get_subscription(session, "acme", monthly)
        (old_invoice,) = list_invoices(session, "acme", subscription_id=monthly)
        (new_invoice,) = list_invoices(session, "acme", subscription_id=yearly.subscription_id)
        assert old.period_end is not None
        period_s = int((old.period_end - old.period_start).total_seconds())
        used_s = int((later - old.period_start).total_seconds())
        kept = old_invoice.paid_minor - old_invoice.refunded_minor
        assert kept == old_invoice.total_minor * used_s // period_s  # never a cent lost
        assert (old.status, old.end_reason) == ("expired", "changed to boost-yearly")
        assert (yearly.status, new_invoice.total_minor) == ("active", 99_00 + 18_81)
        assert sum(ledger_balances(session, "acme").values()) == 0
    shop.commerce_round(later + timedelta(seconds=1))
    shop.deliver(later + timedelta(seconds=1))
    assert _features(shop, vin) == {"performance_boost"}
    with shop.database.session() as session:
        (grant,) = list_entitlements(session, "acme", vin)
    assert (grant.status, grant.subscription_id, grant.seq) == ("grant", yearly.subscription_id,
                                                                2)


def test_a_declined_upgrade_changes_nothing(shop: Shop) -> None:
    monthly = _buy(shop)
    with shop.database.session() as session:
        set_payment_method(session, tenant="acme", actor="test", account_id="driver:alice",
                           payment_method="test_card_declined", provider=shop.provider)
    with pytest.raises(PaymentDeclinedError), shop.database.session() as session:
        change_offer(session, tenant="acme", actor="test", subscription_id=monthly,
                     offer_id="boost-yearly", provider=shop.provider)
    with shop.database.session() as session:
        assert get_subscription(session, "acme", monthly).status == "active"
        assert len(list_subscriptions(session, "acme")) == 1
