"""The twin confirms entitlements: each token issued is the twin's desired state, the car's
report of the token it holds is its reported state, and a revocation reaches the car through
the twin's signed delta alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from commerce_kit import Shop
from rig import CLOUD_KEY

from drivetrain.cloud.commerce import cancel_subscription, list_entitlements, purchase
from drivetrain.cloud.commerce.entitlements import (
    confirmed_features,
    reported_features,
    twin_states,
)
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import (
    DesiredToken,
    Reconciler,
    get_delta,
    get_twin,
    set_desired,
    set_entitlements,
)
from drivetrain.core.entitlement_twin import token_path
from drivetrain.core.errors import BadInputError

BOOST = "performance_boost"


@pytest.fixture
def t0() -> datetime:
    """Now, when the test starts: the cars' reports must fall in ingestion's window."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def shop(database: Database) -> Iterator[Shop]:
    shop = Shop(database)
    yield shop
    shop.rig.close()


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


def _through_the_twin(shop: Shop, at: datetime) -> None:
    """The reconciler publishes the twins' deltas; the cars act and report (events flushed)."""
    Reconciler(shop.database, shop.rig.bus, CLOUD_KEY).run_once(at)
    shop.rig.vehicles_act(_ns(at))
    shop.rig.vehicles_act(_ns(at + timedelta(seconds=2)))


def _buy(shop: Shop, vin: str, t0: datetime) -> str:
    with shop.database.session() as session:
        return purchase(session, tenant="acme", actor="test", vin=vin,
                        account_id="driver:alice", offer_id="boost-monthly",
                        provider=shop.provider, now=t0).subscription_id


def test_a_grant_is_pending_in_the_twin_until_the_car_reports_holding_it(
    shop: Shop, t0: datetime
) -> None:
    vin = shop.rig.vins[0]
    sub_id = _buy(shop, vin, t0)
    shop.commerce_round(t0)
    with shop.database.session() as session:
        twin = twin_states(session, "acme", vin, t0)[BOOST]
        (grant,) = list_entitlements(session, "acme", vin)
        assert (twin.status, twin.desired_token, twin.reported_state) == (
            "pending", grant.token, None)
        assert get_delta(session, vin, tenant="acme", now=t0).values == {
            token_path(BOOST): grant.token}  # granted, not confirmed yet
        assert confirmed_features(session, "acme", vin, sub_id, t0) == []
    _through_the_twin(shop, t0)  # no dispatcher round: the twin alone carries it
    assert shop.rig.actuators[vin].features == {BOOST}
    with shop.database.session() as session:
        twin = twin_states(session, "acme", vin, t0)[BOOST]
        assert twin.confirmed and twin.reported_token == grant.token
        assert (twin.reported_state, twin.reported_seq) == ("enabled", 1)
        assert twin.reported_expires_s == int(grant.expires_at.timestamp())
        assert get_delta(session, vin, tenant="acme", now=t0).values == {}
        assert confirmed_features(session, "acme", vin, sub_id, t0) == [BOOST]
        reported = reported_features(session, "acme", vin)
        assert reported is not None and reported.enabled == (BOOST,)


def test_a_revocation_reaches_the_car_through_the_twin_and_is_confirmed(
    shop: Shop, t0: datetime
) -> None:
    vin = shop.rig.vins[0]
    sub_id = _buy(shop, vin, t0)
    shop.commerce_round(t0)
    _through_the_twin(shop, t0)
    later = t0 + timedelta(seconds=10)
    with shop.database.session() as session:
        cancel_subscription(session, tenant="acme", actor="test", subscription_id=sub_id,
                            at_period_end=False, now=later)
    shop.commerce_round(later)
    with shop.database.session() as session:
        twin = twin_states(session, "acme", vin, later)[BOOST]
        # Revoked in the cloud, still enabled in the car: the twin's delta shows it.
        assert (twin.status, twin.reported_state) == ("pending", "enabled")
        (revocation,) = list_entitlements(session, "acme", vin)
        assert revocation.status == "revoke" and twin.desired_token == revocation.token
    _through_the_twin(shop, later)
    assert shop.rig.actuators[vin].features == frozenset()
    with shop.database.session() as session:
        twin = twin_states(session, "acme", vin, later)[BOOST]
        assert twin.confirmed and (twin.reported_state, twin.reported_seq) == ("disabled", 2)


def test_entitlement_paths_cannot_be_written_as_ordinary_desired_state(
    shop: Shop, t0: datetime
) -> None:
    vin = shop.rig.vins[0]
    with shop.database.session() as session, pytest.raises(BadInputError):
        set_desired(session, vin, {token_path(BOOST): "eyJhbGciOiJFZERTQSJ9.e30.c2ln"},
                    tenant="acme", if_match=None, actor="operator")


def test_a_value_not_shaped_as_a_token_is_not_put_in_the_twin(shop: Shop, t0: datetime) -> None:
    vin = shop.rig.vins[0]
    with shop.database.session() as session, pytest.raises(BadInputError, match="entitlement"):
        set_entitlements(session, vin, [DesiredToken(BOOST, "revoke", t0)], tenant="acme",
                         actor="test", now=t0)


def test_replacing_the_desired_document_keeps_the_entitlement_tokens(
    shop: Shop, t0: datetime
) -> None:
    vin = shop.rig.vins[0]
    _buy(shop, vin, t0)
    shop.commerce_round(t0)
    with shop.database.session() as session:
        twin = set_desired(session, vin, {"Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature":
                                          21.0}, tenant="acme", if_match=None,
                           actor="operator", replace=True, now=t0)
        assert token_path(BOOST) in get_twin(session, vin, tenant="acme").desired
        assert twin.version >= 2
