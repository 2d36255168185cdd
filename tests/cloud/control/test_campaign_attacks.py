"""Attacks on campaigns, one named test each: nothing is stored or changed, and the refusal
says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from campaign_kit import definition, run_round, states
from rig import Rig

from drivetrain.cloud.campaigns import (
    approve_campaign,
    create_campaign,
    edit_campaign,
    get_campaign,
    list_campaigns,
)
from drivetrain.cloud.commands import list_deliveries
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import RawMessage
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import NotFoundError, StateTransitionError
from drivetrain.core.transport import ACK, vehicle_topic
from drivetrain.core.wire import Ack, MessageKind, seal_json


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    made = Rig(database, ["EU", "EU"], bms=["2.3.1", "2.3.1"])
    try:
        yield made
    finally:
        made.close()


def _ack(rig: Rig, vin: str, ref: str, version: int | None, key: SigningKey | None = None,
         seq: int = 7) -> None:
    payload = seal_json(MessageKind.ACK, vin,
                        Ack(ref, "campaign", "applied", "harsh-brake: installed",
                            version).to_dict(),
                        key=key or rig.agents[vin].identity.signing_key, seq=seq)
    rig.pipeline.process([RawMessage(vehicle_topic(vin, ACK), payload)])
    rig.dispatcher.run_once()


def _pending_campaign(rig: Rig) -> tuple[str, str, int]:
    """The campaign delivered to vins[0] while it is offline: (job id, message id, version)."""
    rig.go_offline(rig.vins[0])
    with rig.database.session() as session:
        create_campaign(session, definition(targeting={"vins": [rig.vins[0]]}), tenant="acme",
                        actor="alice")
    with rig.database.session() as session:
        job_id = approve_campaign(session, "harsh-brake", tenant="acme",
                                  actor="bob").job_id
    run_round(rig)
    with rig.database.session() as session:
        job_id = get_campaign(session, "harsh-brake", tenant="acme").job_id or ""
        (delivery,) = list_deliveries(session, job_id, tenant="acme").deliveries
    assert delivery.state == "delivered" and delivery.message_id and delivery.version
    return job_id, delivery.message_id, delivery.version


def test_a_campaign_for_another_tenants_vehicles_is_refused_and_nothing_is_stored(
    fleet: Rig,
) -> None:
    foreign = fleet.other_vins[0]
    data = definition(targeting={"vins": [fleet.vins[0], foreign]})
    with fleet.database.session() as session, pytest.raises(NotFoundError) as refused:
        create_campaign(session, data, tenant="acme", actor="alice")
    assert f"{foreign} is not a vehicle of tenant 'acme'" in str(refused.value)
    with fleet.database.session() as session:
        assert list_campaigns(session, tenant="acme") == []
    # a query never selects another tenant's vehicles either
    with fleet.database.session() as session:
        create_campaign(session, definition(targeting={"query": f'vin == "{foreign}"'}),
                        tenant="acme", actor="alice")
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    run_round(fleet)
    assert states(fleet) == {}
    assert "harsh-brake" not in {c.id for c in fleet.agents[foreign].engine.campaigns}


def test_a_campaign_edited_after_approval_is_refused_a_new_version_must_be_approved(
    fleet: Rig,
) -> None:
    with fleet.database.session() as session:
        create_campaign(session, definition(), tenant="acme", actor="alice")
        edit_campaign(session, "harsh-brake", definition(campaign={"priority": 3}),
                      tenant="acme", actor="alice")  # a draft may change
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    with fleet.database.session() as session, pytest.raises(StateTransitionError) as refused:
        edit_campaign(session, "harsh-brake", definition(campaign={"priority": 9}),
                      tenant="acme", actor="mallory")
    assert "version 1 is approved" in str(refused.value) and "new version" in str(refused.value)
    with fleet.database.session() as session:
        view = get_campaign(session, "harsh-brake", tenant="acme")
    assert view.current.spec.document["priority"] == 3 and view.latest_version == 1


def test_a_forged_campaign_ack_changes_nothing(fleet: Rig) -> None:
    _job, ref, version = _pending_campaign(fleet)
    _ack(fleet, fleet.vins[0], ref, version, key=SigningKey.generate())
    assert states(fleet) == {fleet.vins[0]: "delivered"}


def test_a_replayed_campaign_ack_changes_nothing(fleet: Rig) -> None:
    _job, ref, version = _pending_campaign(fleet)
    _ack(fleet, fleet.vins[0], ref, version, seq=1)
    assert states(fleet) == {fleet.vins[0]: "active"}
    _ack(fleet, fleet.vins[0], ref, version, seq=2)
    assert states(fleet) == {fleet.vins[0]: "active"}
    assert [r.reason for r in fleet.dispatcher.stats.recent_refusals] == ["not_awaiting"]


def test_an_ack_for_a_campaign_the_vehicle_never_received_is_refused(fleet: Rig) -> None:
    _job, ref, version = _pending_campaign(fleet)
    other = fleet.vins[1]  # never targeted: claims the first car's campaign message
    _ack(fleet, other, ref, version)
    _ack(fleet, fleet.vins[0], ref, version + 5)  # the right car, a version never sent
    assert states(fleet) == {fleet.vins[0]: "delivered"}
    reasons = [r.reason for r in fleet.dispatcher.stats.recent_refusals]
    assert reasons == ["unknown_ref", "wrong_version"]


def test_a_vehicle_offline_during_delivery_gets_the_campaign_when_it_reconnects(
    fleet: Rig,
) -> None:
    _pending_campaign(fleet)
    fleet.come_online(fleet.vins[0])
    run_round(fleet)
    assert states(fleet) == {fleet.vins[0]: "active"}
    assert "harsh-brake" in {c.id for c in fleet.agents[fleet.vins[0]].engine.campaigns}
