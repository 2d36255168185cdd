"""The pure core of commerce: exact money, a catalog that names what is wrong, the
subscription state machine, and a ledger that always balances — with properties checked by
Hypothesis (proration and allocation never create or lose a minor unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.commerce.catalog import FeatureCatalog
from drivetrain.cloud.commerce.ledger import (
    Entry,
    Transaction,
    UnbalancedTransactionError,
    balances,
    credit_note,
    invoice_issued,
    payment_captured,
    refund_paid,
)
from drivetrain.cloud.commerce.lifecycle import (
    DUNNING_RETRIES,
    add_period,
    cancel,
    pause,
    renew,
    renewal_due,
    resume,
    start,
)
from drivetrain.cloud.commerce.money import (
    allocate,
    format_amount,
    parse_amount,
    prorate,
    share_of,
    tax_on,
)
from drivetrain.core.errors import BadInputError, StateTransitionError

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def catalog_doc(**offer: Any) -> dict[str, Any]:
    return {
        "features": [
            {"code": "performance_boost", "name": "Performance boost",
             "requires": 'model == "DT-Sedan"'},
            {"code": "range_assistant", "name": "AI range assistant", "binding": "account",
             "provider": "routewise", "revenue_share": "0.30"},
        ],
        "offers": [
            {"id": "boost-monthly", "features": ["performance_boost"], "billing": "monthly",
             "prices": {"EU": {"amount": "9.99", "currency": "EUR"},
                        "US": {"amount": "10.99", "currency": "USD"}},
             "trial_days": 0, "grace_s": 600, **offer},
        ],
        "tax_rates": {"EU": "0.19", "US": "0.07"},
    }


# --- money --------------------------------------------------------------------------------------
def test_amounts_are_exact_minor_units_and_never_floats() -> None:
    assert parse_amount("9.99", "EUR") == 999
    assert parse_amount("1000", "JPY") == 1000
    assert format_amount(999, "EUR") == "9.99"
    with pytest.raises(BadInputError, match="more than 2 decimals"):
        parse_amount("9.999", "EUR")
    with pytest.raises(BadInputError, match="more than 0 decimals"):
        parse_amount("10.5", "JPY")
    with pytest.raises(BadInputError, match="decimal string"):
        parse_amount(9.99, "EUR")
    with pytest.raises(BadInputError, match="currency 'XXX'"):
        parse_amount("1", "XXX")
    assert tax_on(999, Decimal("0.19")) == 190  # 189.81 → 190


@settings(max_examples=400)
@given(st.integers(0, 10**12), st.integers(1, 10**8), st.data())
@example(1, 3, None)
def test_proration_never_creates_or_loses_a_minor_unit(amount: int, period: int,
                                                       data: Any) -> None:
    used_s = data.draw(st.integers(0, period)) if data is not None else 1
    used, left = prorate(amount, used_s, period)
    assert used + left == amount
    assert 0 <= used <= amount
    assert used * period <= amount * used_s  # never charged for time not used


@settings(max_examples=400)
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=12)
       .filter(lambda w: sum(w) > 0))
def test_allocation_hands_out_exactly_the_amount(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    assert all(p >= 0 for p in parts)
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)


@given(st.integers(0, 10**12), st.decimals(0, 1, places=6))
def test_a_revenue_share_and_the_rest_sum_to_the_amount(amount: int, rate: Decimal) -> None:
    share, rest = share_of(amount, rate)
    assert share + rest == amount and 0 <= share <= amount


# --- catalog ------------------------------------------------------------------------------------
def test_a_catalog_round_trips() -> None:
    catalog = FeatureCatalog.from_dict(catalog_doc())
    assert FeatureCatalog.from_dict(catalog.to_dict()) == catalog
    offer = catalog.offer("boost-monthly")
    assert offer.price_in("EU").amount_minor == 999
    assert catalog.features["range_assistant"].revenue_share == Decimal("0.30")


@pytest.mark.parametrize(("change", "message"), [
    ({"prices": {"EU": {"amount": 9.99, "currency": "EUR"}}}, "decimal string"),
    ({"prices": {"EU": {"amount": "9.999", "currency": "EUR"}}}, r"offers\[0\].prices.EU"),
    ({"billing": "weekly"}, "billing 'weekly'"),
    ({"features": ["teleport"]}, "feature 'teleport' is not in the catalog"),
    ({"trial_days": 7, "billing": "one_off"}, "trials are for monthly or yearly"),
    ({"grace_s": -1}, "grace_s -1"),
    ({"surprise": 1}, "unknown fields"),
])
def test_a_bad_catalog_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        FeatureCatalog.from_dict(catalog_doc(**change))


def test_a_requirement_that_is_not_a_fleet_query_is_refused() -> None:
    doc = catalog_doc()
    doc["features"][0]["requires"] = "model === 'x'"
    with pytest.raises(BadInputError, match="query"):
        FeatureCatalog.from_dict(doc)


# --- life cycle ---------------------------------------------------------------------------------
def test_monthly_periods_follow_the_calendar() -> None:
    assert add_period(NOW, "monthly") == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert add_period(NOW, "yearly") == datetime(2027, 1, 31, 12, tzinfo=UTC)


def test_a_trial_converts_when_paid_and_dunning_ends_it_when_never_paid() -> None:
    offer = FeatureCatalog.from_dict(catalog_doc(trial_days=7)).offer("boost-monthly")
    state = start(offer, NOW)
    assert state.status == "trialing" and state.entitled
    later = NOW + timedelta(days=7)
    assert renewal_due(state, later)
    paid = renew(state, offer, True, later)
    assert paid.status == "active" and paid.period_start == later
    declined = renew(paid, offer, False, paid.period_end)  # type: ignore[arg-type]
    assert declined.status == "past_due" and not declined.entitled
    for _ in DUNNING_RETRIES:
        assert declined.next_retry_at is not None
        declined = renew(declined, offer, False, declined.next_retry_at)
    assert declined.status == "expired" and "payment failed" in (declined.end_reason or "")


def test_cancel_at_period_end_keeps_the_feature_until_then() -> None:
    offer = FeatureCatalog.from_dict(catalog_doc()).offer("boost-monthly")
    state = cancel(start(offer, NOW), NOW, "sub-1", at_period_end=True)
    assert state.entitled and state.cancel_at_period_end
    assert state.period_end is not None
    ended = renew(state, offer, True, state.period_end)
    assert ended.status == "expired" and ended.end_reason == "canceled at period end"
    with pytest.raises(StateTransitionError, match="expired"):
        cancel(ended, NOW, "sub-1", at_period_end=False)


def test_a_pause_extends_the_period_by_the_time_paused() -> None:
    offer = FeatureCatalog.from_dict(catalog_doc()).offer("boost-monthly")
    state = start(offer, NOW)
    paused = pause(state, NOW + timedelta(days=3), "sub-1")
    assert not paused.entitled
    resumed = resume(paused, NOW + timedelta(days=5), "sub-1")
    assert resumed.period_end == state.period_end + timedelta(days=2)  # type: ignore[operator]


# --- ledger -------------------------------------------------------------------------------------
def test_an_unbalanced_transaction_cannot_exist() -> None:
    with pytest.raises(UnbalancedTransactionError):
        Transaction("bad", (Entry("cash:test", 100, "EUR"), Entry("revenue:EU", -99, "EUR")))


_OPS = st.lists(st.tuples(
    st.sampled_from(["invoice", "pay", "refund", "credit"]),
    st.sampled_from(["alice", "bob"]), st.sampled_from([("EU", "EUR"), ("US", "USD")]),
    st.integers(0, 10**9), st.decimals(0, Decimal("0.3"), places=4), st.booleans(),
), max_size=60)


@settings(max_examples=200)
@given(_OPS)
def test_the_ledger_always_balances_and_receivables_are_invoices_less_payments(
    ops: list[Any],
) -> None:
    transactions = []
    owed: dict[tuple[str, str], int] = {}
    for kind, customer, (region, currency), amount, rate, partner in ops:
        tax = tax_on(amount, rate)
        key = (f"receivable:{customer}", currency)
        if kind == "invoice":
            shares = {"routewise": share_of(amount, Decimal("0.3"))[0]} if partner else None
            transactions.append(invoice_issued("i", customer, region, currency, amount, tax,
                                               shares))
            owed[key] = owed.get(key, 0) + amount + tax
        elif kind == "pay":
            transactions.append(payment_captured("p", customer, "test", currency, amount))
            owed[key] = owed.get(key, 0) - amount
        elif kind == "refund":
            transactions.append(refund_paid("r", "test", region, currency, amount, tax))
        else:
            transactions.append(credit_note("c", customer, region, currency, amount, tax))
            owed[key] = owed.get(key, 0) - amount - tax
    totals: dict[str, int] = {}
    result = balances(transactions)
    for (_, currency), balance in result.items():
        totals[currency] = totals.get(currency, 0) + balance
    assert all(v == 0 for v in totals.values())
    for key, value in owed.items():
        assert result.get(key, 0) == value


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_document_is_a_catalog_or_bad_input_never_a_crash(document: Any) -> None:
    try:
        FeatureCatalog.from_dict(document)
    except BadInputError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["features", "offers", "tax_rates"]), st.integers(0, 5),
       st.text(max_size=12), _JSON)
def test_any_field_of_a_real_catalog_replaced_by_anything_is_named_or_accepted(
    section: str, index: int, key: str, value: Any,
) -> None:
    doc = catalog_doc()
    part = doc[section]
    if isinstance(part, list):
        target = part[index % len(part)]
        target[key if key else next(iter(target))] = value
    else:
        part[key or "EU"] = value
    try:
        catalog = FeatureCatalog.from_dict(doc)
    except BadInputError as e:
        assert str(e)
    else:
        assert FeatureCatalog.from_dict(catalog.to_dict()) == catalog


def _invoice() -> Any:
    from drivetrain.cloud.commerce.billing import Invoice, InvoiceLine

    line = InvoiceLine("Performance boost – Süd (monthly)", "performance_boost", 1, 999, 999,
                       None, 0)
    return Invoice("inv-1", "driver:alice", "sub-1", "DTV14A5UXTRGXBBBA", "EU", "EUR", 999, 190,
                   1189, 1189, 0, "0.19", "paid", NOW, NOW, (line,))


def test_an_invoice_renders_as_pdf_even_with_characters_the_pdf_fonts_lack() -> None:
    from drivetrain.cloud.commerce.invoice_pdf import render_invoice_pdf

    document = render_invoice_pdf(_invoice(), "Acme Motors")
    assert document.startswith(b"%PDF-") and document.rstrip().endswith(b"%%EOF")


def test_without_the_commerce_extra_a_pdf_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from drivetrain.cloud.commerce.invoice_pdf import MissingPdfExtraError, render_invoice_pdf

    monkeypatch.setitem(sys.modules, "fpdf", None)
    with pytest.raises(MissingPdfExtraError, match=r"drivetrain\[commerce\]"):
        render_invoice_pdf(_invoice(), "Acme Motors")
