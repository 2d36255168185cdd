"""The operator's minimisation policy pushed to the cars: one signed ``privacy.policy`` job per
region through the dispatcher; the cars of that region apply and acknowledge it, the others
never get it; an unknown region or one the policy does not name is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rig import Rig

from drivetrain.cloud.commands import latest_deliveries
from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.audit import list_audit
from drivetrain.cloud.privacy.policy_push import push_policy
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.privacy_policy import MinimisationPolicy

LATITUDE = "Vehicle.CurrentLocation.Latitude"
OPERATOR = MinimisationPolicy.from_dict(
    {
        "format": "drivetrain.privacy-policy",
        "version": 1,
        "regions": {
            "EU": {
                "law": "operator",
                "default_off": ["cabin"],
                "precision": [{"signals": ["Vehicle.CurrentLocation.*"], "decimals": 1}],
            },
            "US": {"default_off": ["location"]},
        },
    },
    "operator.json",
)


@pytest.fixture
def rig(database: Database) -> Iterator[Rig]:
    rig = Rig(database, regions=("EU", "EU", "US"))
    yield rig
    rig.close()


def test_a_push_reaches_the_cars_of_its_region_only(rig: Rig, database: Database) -> None:
    eu, us = rig.vins[:2], rig.vins[2]
    with database.session() as session:
        pushes = push_policy(session, OPERATOR, tenant="acme", actor="test", regions=["EU"])
    assert [(p.region, p.vehicles) for p in pushes] == [("EU", 2)]
    rig.cycle()
    for vin in eu:
        rule = rig.agents[vin].minimisation.rule_for(LATITUDE)
        assert rule is not None and rule.decimals == 1
        assert rig.agents[vin].downlink.policy_record.version == pushes[0].version
    assert rig.agents[us].downlink.policy_record.version == -1  # the US car got nothing
    with database.session() as session:
        deliveries = latest_deliveries(session, pushes[0].job_id, tenant="acme")
        audit = list_audit(session, "acme", action="privacy.policy.push")
    assert {d.state for d in deliveries.values()} == {"succeeded"}
    assert all("policy EU version" in (d.detail or "") for d in deliveries.values())
    assert audit[-1].details["regions"] == {"EU": 2}


def test_every_region_of_the_policy_by_default(rig: Rig, database: Database) -> None:
    with database.session() as session:
        pushes = push_policy(session, OPERATOR, tenant="acme", actor="test")
    assert {p.region: p.vehicles for p in pushes} == {"EU": 2, "US": 1}
    rig.cycle()
    assert rig.agents[rig.vins[2]].minimisation.default_off == {"location"}


def test_a_later_push_wins_and_a_replayed_older_one_is_refused(
    rig: Rig, database: Database
) -> None:
    from datetime import timedelta

    from rig import utc

    with database.session() as session:
        newer = push_policy(
            session, OPERATOR, tenant="acme", actor="test", regions=["EU"], now=utc()
        )
    rig.cycle()
    lax = MinimisationPolicy.from_dict(
        {"format": "drivetrain.privacy-policy", "version": 1, "regions": {"EU": {}}}
    )
    with database.session() as session:  # dated before the one in force
        older = push_policy(
            session,
            lax,
            tenant="acme",
            actor="test",
            regions=["EU"],
            now=utc() - timedelta(minutes=1),
        )
    rig.cycle()
    vin = rig.vins[0]
    assert rig.agents[vin].downlink.policy_record.version == newer[0].version
    with database.session() as session:
        delivery = latest_deliveries(session, older[0].job_id, tenant="acme")[vin]
    assert delivery.state in ("failed", "queued") and "not newer" in (delivery.reason or "")


@pytest.mark.parametrize(
    ("regions", "error"),
    [
        (["XX"], "region 'XX' not known"),
        (["CN"], "names no rules for it"),
    ],
)
def test_bad_regions_are_refused(
    rig: Rig, database: Database, regions: list[str], error: str
) -> None:
    with database.session() as session, pytest.raises(BadInputError, match=error):
        push_policy(session, OPERATOR, tenant="acme", actor="test", regions=regions)


def test_an_unknown_tenant_is_refused(rig: Rig, database: Database) -> None:
    with database.session() as session, pytest.raises(NotFoundError):
        push_policy(session, OPERATOR, tenant="nobody", actor="test")
