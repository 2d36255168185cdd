"""Several commerce runners at once (one per API process) renew each period exactly once:
the renewal is claimed with a conditional update, so the second runner finds it renewed and
charges nothing. Runs against the real PostgreSQL, with each runner on its own connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from commerce_kit import LEASE_S, Shop
from rig import CLOUD_KEY
from sqlalchemy import func, select

from drivetrain.cloud.commerce import get_subscription, list_entitlements, purchase
from drivetrain.cloud.commerce.models import InvoiceRow
from drivetrain.cloud.commerce.runner import renew_subscription, run_commerce
from drivetrain.cloud.infra import Database

T0 = datetime.now(UTC).replace(microsecond=0)
RUNNERS = 2


@pytest.fixture
def shop(database: Database) -> Iterator[Shop]:
    shop = Shop(database)
    yield shop
    shop.rig.close()


def _together(database_url: str, work: object) -> list[object]:
    """Run ``work(database)`` on RUNNERS threads, each with a database of its own, released
    at the same moment; returns what each returned (or raised)."""
    databases = [Database(database_url) for _ in range(RUNNERS)]
    barrier = threading.Barrier(RUNNERS)
    results: list[object] = [None] * RUNNERS

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(databases[i])  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - reported by the test's assertion
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RUNNERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for d in databases:
        d.dispose()
    return results


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_runners_at_once_charge_each_period_exactly_once(
    shop: Shop, database_url: str
) -> None:
    subs = []
    with shop.database.session() as session:
        for vin in shop.rig.vins:
            subs.append(purchase(session, tenant="acme", actor="test", vin=vin,
                                 account_id="driver:alice", offer_id="boost-monthly",
                                 provider=shop.provider, now=T0))
    assert shop.provider.charges == len(subs)
    period_end = subs[0].period_end
    assert period_end is not None
    results = _together(database_url, lambda db: run_commerce(
        db, CLOUD_KEY, shop.provider, now=period_end, lease_s=LEASE_S))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.renewed for r in results) == len(subs)  # type: ignore[attr-defined]
    assert shop.provider.charges == 2 * len(subs)  # the purchase and one renewal each
    with shop.database.session() as session:
        invoices = dict(session.execute(select(InvoiceRow.subscription_id, func.count())
                                        .group_by(InvoiceRow.subscription_id)).all())
        assert invoices == {s.subscription_id: 2 for s in subs}
        for s in subs:
            renewed = get_subscription(session, "acme", s.subscription_id)
            assert (renewed.status, renewed.period_start) == ("active", period_end)
            assert [e.seq for e in list_entitlements(session, "acme", s.vin)] == [1]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_runners_deciding_the_same_renewal_charge_it_once(
    shop: Shop, database_url: str
) -> None:
    with shop.database.session() as session:
        sub = purchase(session, tenant="acme", actor="test", vin=shop.rig.vins[0],
                       account_id="driver:alice", offer_id="boost-monthly",
                       provider=shop.provider, now=T0)
    assert sub.period_end is not None
    end = sub.period_end
    for _ in range(3):  # three periods, each raced by both runners
        results = _together(database_url, lambda db, at=end: renew_subscription(
            db, shop.provider, sub.subscription_id, at))
        assert results == ["active", "active"]
        with shop.database.session() as session:
            renewed = get_subscription(session, "acme", sub.subscription_id)
        assert renewed.period_start == end and renewed.period_end is not None
        end = renewed.period_end
    assert shop.provider.charges == 1 + 3
    with shop.database.session() as session:
        count = session.scalar(select(func.count()).select_from(InvoiceRow).where(
            InvoiceRow.subscription_id == sub.subscription_id))
    assert count == 1 + 3
