"""Collection campaigns end to end: checked against the tenant's catalog, approved, started,
delivered to exactly the vehicles the query selects (continuously), suspended, resumed,
finished and retired — every step on real agents and audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from campaign_kit import OLD_BMS, definition, later, run_round, states
from rig import Rig

from drivetrain.cloud.campaigns import (
    CampaignRunner,
    approve_campaign,
    change_status,
    create_campaign,
    get_campaign,
    list_campaigns,
    new_campaign_version,
    set_campaign_policy,
)
from drivetrain.cloud.commands import get_job
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.ingest.service import list_vehicle_events
from drivetrain.cloud.twins import set_ecu
from drivetrain.core.errors import (
    BadInputError,
    CampaignFormatError,
    ConflictError,
    PermissionDeniedError,
    QuerySyntaxError,
    StateTransitionError,
)

BMS = ["2.3.1", "2.3.9", "2.4.0"]  # vins[0], vins[1] old; vins[2] current


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    made = Rig(database, ["EU", "EU", "US"], bms=BMS)
    try:
        yield made
    finally:
        made.close()


def _create_and_approve(rig: Rig, data: dict | None = None) -> None:  # type: ignore[type-arg]
    with rig.database.session() as session:
        create_campaign(session, data or definition(), tenant="acme", actor="alice")
    with rig.database.session() as session:
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")


def _installed(rig: Rig, vin: str) -> dict[str, int]:
    engine = rig.agents[vin].engine
    return {c.id: c.version for c in engine.campaigns}


@pytest.mark.parametrize(("change", "field"), [
    ({"campaign": {"signals": ["Vehicle.Sped"]}}, "'signals'"),
    ({"campaign": {"triggers": [{"name": "t", "expression": "Vehicle.Speed >> 3"}]}},
     "expression"),
    ({"campaign": {"period_ms": 5}}, "'period_ms' is 5"),
    ({"end_at": "2020-01-01T00:00:00Z"}, "'end_at'"),
    ({"start_at": "2031-01-02T00:00:00Z", "end_at": "2031-01-01T00:00:00Z"},
     "not after 'start_at'"),
    ({"targeting": {"query": OLD_BMS, "max_vehicles": 0}}, "'targeting.max_vehicles'"),
    ({"dimensions": ["software"]}, "'dimensions'"),
    ({"destinations": [{"type": "webhook", "url": "http://example.com/x"}]}, "https://"),
    ({"campaign": {"upload": [{"name": "bulk", "signals": ["Vehicle.Speed"],
                               "when": "Vehicle.Nope == 1"}]}}, "partition 1 (bulk)"),
    ({"campaign": {"max_samples_per_signal": {"Vehicle.Speed": -1}}},
     "'max_samples_per_signal'"),
])
def test_a_campaign_is_checked_against_the_catalog_before_anything_is_stored(
    fleet: Rig, change: dict, field: str,  # type: ignore[type-arg]
) -> None:
    with fleet.database.session() as session, pytest.raises(BadInputError) as refused:
        create_campaign(session, definition(**change), tenant="acme", actor="alice")
    assert field in str(refused.value)
    with fleet.database.session() as session:
        assert list_campaigns(session, tenant="acme") == []


def test_a_bad_targeting_query_is_refused_naming_the_token(fleet: Rig) -> None:
    with fleet.database.session() as session, pytest.raises(QuerySyntaxError):
        create_campaign(session, definition(targeting={"query": 'software."BMS" <'}),
                        tenant="acme", actor="alice")


def test_an_approved_campaign_reaches_exactly_the_vehicles_the_query_selects(
    fleet: Rig,
) -> None:
    with fleet.database.session() as session:
        draft = create_campaign(session, definition(), tenant="acme", actor="alice")
    assert draft.status == "draft" and draft.version is None and draft.latest_version == 1
    run_round(fleet)
    assert states(fleet) == {}  # a draft goes nowhere
    with fleet.database.session() as session:
        approved = approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    assert approved.status == "approved" and approved.version == 1
    run_round(fleet)
    old, older, current = fleet.vins
    assert states(fleet) == {old: "active", older: "active"}
    assert "harsh-brake" in _installed(fleet, old) and "harsh-brake" not in _installed(
        fleet, current)
    with fleet.database.session() as session:
        view = get_campaign(session, "harsh-brake", tenant="acme")
        job = get_job(session, view.job_id or "", tenant="acme")
        actions = [e.action for e in list_audit(session, "acme") if "campaigns" in e.action]
    assert view.status == "running" and view.vehicles == {"active": 2}
    assert job.origin == "campaign" and job.status == "running"
    assert actions == ["campaigns.create", "campaigns.approve", "campaigns.start"]


def test_vehicles_that_match_later_are_picked_up_and_those_that_stop_are_withdrawn(
    fleet: Rig,
) -> None:
    _create_and_approve(fleet)
    run_round(fleet)
    old, _older, current = fleet.vins
    with fleet.database.session() as session:  # one car updated, another rolled back
        set_ecu(session, old, "BMS", tenant="acme", hardware_id=None, software_version="2.4.1",
                actor="ota")
        set_ecu(session, current, "BMS", tenant="acme", hardware_id=None,
                software_version="2.2.0", actor="ota")
    run_round(fleet)
    run_round(fleet)
    assert states(fleet)[old] == "withdrawn" and states(fleet)[current] == "active"
    assert "harsh-brake" not in _installed(fleet, old)
    assert "harsh-brake" in _installed(fleet, current)


def test_the_vehicle_cap_limits_how_many_vehicles_collect(fleet: Rig) -> None:
    _create_and_approve(fleet, definition(targeting={"query": OLD_BMS, "max_vehicles": 1}))
    run_round(fleet)
    assert list(states(fleet).values()) == ["active"]


def test_suspend_withdraws_and_resume_sends_a_newer_version(fleet: Rig) -> None:
    _create_and_approve(fleet)
    run_round(fleet)
    old = fleet.vins[0]
    first = _installed(fleet, old)["harsh-brake"]
    with fleet.database.session() as session:
        change_status(session, "harsh-brake", "suspend", tenant="acme", actor="bob",
                      reason="too much data")
    run_round(fleet)
    assert set(states(fleet).values()) == {"withdrawn"}
    assert _installed(fleet, old) == {}
    with fleet.database.session() as session:
        change_status(session, "harsh-brake", "resume", tenant="acme", actor="bob")
    run_round(fleet)
    assert set(states(fleet).values()) == {"active"}
    assert _installed(fleet, old)["harsh-brake"] > first


def test_a_campaign_finishes_at_its_end_time_and_records_it(fleet: Rig) -> None:
    end = later(3600)
    _create_and_approve(fleet, definition(end_at=end.isoformat()))
    run_round(fleet)
    CampaignRunner(fleet.database).run_once(later(3601))
    with fleet.database.session() as session:
        view = get_campaign(session, "harsh-brake", tenant="acme")
        job = get_job(session, view.job_id or "", tenant="acme")
    assert view.status == "finished" and view.ended_at is not None
    assert job.status == "finished"
    installed = fleet.agents[fleet.vins[0]].engine.campaigns[0]
    assert installed.expires_ns == int(end.timestamp()) * 10**9 + end.microsecond * 1000


def test_retiring_withdraws_from_every_vehicle_then_closes_the_job(fleet: Rig) -> None:
    _create_and_approve(fleet)
    run_round(fleet)
    with fleet.database.session() as session:
        change_status(session, "harsh-brake", "retire", tenant="acme", actor="bob")
    run_round(fleet)
    run_round(fleet)
    assert set(states(fleet).values()) == {"withdrawn"}
    with fleet.database.session() as session:
        view = get_campaign(session, "harsh-brake", tenant="acme")
        assert get_job(session, view.job_id or "", tenant="acme").status == "finished"
    with fleet.database.session() as session, pytest.raises(StateTransitionError):
        change_status(session, "harsh-brake", "resume", tenant="acme", actor="bob")


def test_a_second_person_must_approve_where_the_tenant_requires_it(fleet: Rig) -> None:
    with fleet.database.session() as session:
        set_campaign_policy(session, "acme", require_second_approver=True, actor="admin")
        create_campaign(session, definition(), tenant="acme", actor="alice")
    with fleet.database.session() as session, pytest.raises(PermissionDeniedError) as refused:
        approve_campaign(session, "harsh-brake", tenant="acme", actor="alice")
    assert "requires a second person" in str(refused.value)
    with fleet.database.session() as session:
        assert approve_campaign(session, "harsh-brake", tenant="acme",
                                actor="bob").status == "approved"


def test_a_new_version_takes_effect_on_the_vehicles_once_approved(fleet: Rig) -> None:
    _create_and_approve(fleet)
    run_round(fleet)
    old = fleet.vins[0]
    before = _installed(fleet, old)["harsh-brake"]
    with fleet.database.session() as session:
        draft = new_campaign_version(session, "harsh-brake",
                                     definition(campaign={"priority": 7}), tenant="acme",
                                     actor="alice")
    assert draft.version == 1 and draft.latest_version == 2
    run_round(fleet)
    assert _installed(fleet, old)["harsh-brake"] == before  # the draft is not in force
    with fleet.database.session() as session:
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    run_round(fleet)
    installed = fleet.agents[old].engine.campaigns[0]
    assert installed.version > before and installed.priority == 7


def test_writing_a_campaign_id_twice_is_a_conflict(fleet: Rig) -> None:
    with fleet.database.session() as session:
        create_campaign(session, definition(), tenant="acme", actor="alice")
    with fleet.database.session() as session, pytest.raises(ConflictError):
        create_campaign(session, definition(), tenant="acme", actor="alice")


def test_a_field_the_vehicle_would_refuse_is_a_campaign_format_error(fleet: Rig) -> None:
    with fleet.database.session() as session, pytest.raises(CampaignFormatError):
        create_campaign(session, definition(campaign={"priority": 12}), tenant="acme",
                        actor="alice")


def test_clearing_a_settled_message_from_a_vehicles_slot_is_not_taken_for_an_attack(
    fleet: Rig,
) -> None:
    _create_and_approve(fleet)
    run_round(fleet)
    run_round(fleet)  # the settled installs are cleared from the retained slots
    stats = fleet.agents[fleet.vins[0]].stats()
    assert set(stats.downlink_refused) <= {"cleared", "duplicate"}
    assert stats.downlink_refused.get("cleared", 0) >= 1
    for agent in fleet.agents.values():
        agent.flush()
    fleet.vehicles_act()
    with fleet.database.session() as session:
        refused = list_vehicle_events(session, tenant="acme", types=["edge.downlink.refused"])
    assert refused == []
