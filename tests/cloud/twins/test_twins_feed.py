"""The change feed: committed changes only, filtered by tenant and kind, overflow counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twins_support import CHARGE_LIMIT, SOH, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, hub_for, set_desired
from drivetrain.cloud.twins.feed import ChangeHub, TwinChange


def test_changes_reach_subscribers_only_after_commit(database: Database, fleet: Fleet) -> None:
    subscription = hub_for(database.engine).subscribe(tenant="acme")
    vin = fleet.acme_vins[0]
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (90.0, datetime.now(UTC))}})
        assert subscription.get_batch(0) == []  # not yet committed
    batch = subscription.get_batch(1)
    assert [(c.kind, c.vin, c.paths) for c in batch] == [("reported", vin, (SOH,))]
    subscription.close()


def test_rolled_back_changes_are_never_published(database: Database, fleet: Fleet) -> None:
    subscription = hub_for(database.engine).subscribe(tenant="acme")
    with pytest.raises(RuntimeError), database.session() as session:
        set_desired(session, fleet.acme_vins[0], {CHARGE_LIMIT: 80}, tenant="acme",
                    if_match=0, actor="op")
        raise RuntimeError("abort the transaction")
    assert subscription.get_batch(0.1) == []
    subscription.close()


def test_subscribers_see_only_their_tenant_and_kinds(database: Database, fleet: Fleet) -> None:
    hub = hub_for(database.engine)
    acme_desired = hub.subscribe(tenant="acme", kinds=("desired",))
    globex_all = hub.subscribe(tenant="globex")
    with database.session() as session:
        apply_reported(session, {fleet.acme_vins[0]: {SOH: (90.0, datetime.now(UTC))}})
        set_desired(session, fleet.acme_vins[0], {CHARGE_LIMIT: 80}, tenant="acme",
                    if_match=0, actor="op")
    assert [c.kind for c in acme_desired.get_batch(1)] == ["desired"]
    assert globex_all.get_batch(0.1) == []
    acme_desired.close()
    globex_all.close()


def test_a_slow_subscriber_loses_the_oldest_changes_and_is_told_how_many() -> None:
    hub = ChangeHub()
    slow = hub.subscribe(tenant=None, max_queue=3)
    now = datetime.now(UTC)
    hub.publish(TwinChange("reported", f"V{i}", "acme", now) for i in range(5))
    assert [c.vin for c in slow.get_batch(0)] == ["V2", "V3", "V4"]
    assert slow.overflowed == 2


def test_a_closed_subscription_receives_nothing_more() -> None:
    hub = ChangeHub()
    subscription = hub.subscribe(tenant=None)
    subscription.close()
    hub.publish([TwinChange("reported", "V", "acme", datetime.now(UTC))])
    assert subscription.get_batch(0) == [] and hub.subscriber_count == 0
