"""Campaign extras acted on in the cloud: ``dimensions`` (twin fields) are stamped on the
campaign's lake rows, and an MQTT ``destination`` streams exactly that campaign's samples,
on a topic scoped to the tenant."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from campaign_kit import definition, run_round
from rig import Rig

from drivetrain.cloud.campaigns import approve_campaign, create_campaign
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest.campaign_outputs import tenant_topic
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.core.transport import Message
from drivetrain.edge import Samples

BMS = ["2.3.1", "2.3.9", "2.4.0"]  # vins[0], vins[1] old; vins[2] current
BRAKE = "Vehicle.Acceleration.Longitudinal"


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    made = Rig(database, ["EU", "EU", "US"], bms=BMS)
    try:
        yield made
    finally:
        made.close()


def _brake(rig: Rig) -> None:
    """Every vehicle drives 2 s, brakes hard, drives on; what they send is ingested."""
    now = time.time_ns()
    for step in range(40):
        ts = now + step * 100_000_000
        values = {"Vehicle.Speed": 50.0, BRAKE: -6.0 if step == 20 else 0.0}
        for agent in rig.agents.values():
            agent.tick(ts, samples=Samples.from_values(values, ts))
    for agent in rig.agents.values():
        agent.flush(now + 40 * 100_000_000)
    rig.vehicles_act(now + 41 * 100_000_000)


def test_dimensions_are_stamped_on_the_campaigns_rows_and_the_stream_gets_only_its_data(
    fleet: Rig,
) -> None:
    streamed: list[Message] = []
    fleet.bus.subscribe("dt/campaigns/#", streamed.append)
    fleet.pipeline.stream_to = fleet.bus
    data = definition(dimensions=["model", "region", "software.BMS", "vin"],
                      destinations=[{"type": "mqtt", "topic": "dt/campaigns/harsh-brakes"}])
    with fleet.database.session() as session:
        create_campaign(session, data, tenant="acme", actor="alice")
    with fleet.database.session() as session:
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    run_round(fleet)
    _brake(fleet)
    fleet.bus.drain(10)
    rows = fleet.pipeline.lake.rows()  # type: ignore[attr-defined]
    assert rows is not None
    old, older, _current = fleet.vins
    with fleet.database.session() as session:
        pseudonyms = {vehicle_pseudonym(session, "acme", v): v for v in fleet.vins}
    stamped: dict[str, set[str | None]] = {}
    for vehicle, campaign, stamp in zip(rows.column("vehicle").to_pylist(),
                                        rows.column("campaign").to_pylist(),
                                        rows.column("dimensions").to_pylist(), strict=True):
        if campaign == "harsh-brake":
            stamped.setdefault(pseudonyms[vehicle], set()).add(stamp)
        else:
            assert stamp is None  # only the campaign's rows carry its dimensions
    assert set(stamped) == {old, older}
    (one,) = stamped[old]
    assert one is not None and json.loads(one) == {
        "model": "compact-bev", "region": "EU", "software.BMS": "2.3.1", "vin": None}
    topic = tenant_topic("acme", "dt/campaigns/harsh-brakes")
    assert topic == "dt/campaigns/acme/harsh-brakes"
    assert streamed and {m.topic for m in streamed} == {topic}
    bodies = [json.loads(m.payload) for m in streamed]
    assert {b["campaign"] for b in bodies} == {"harsh-brake"}
    assert {pseudonyms[b["vehicle"]] for b in bodies} == {old, older}
    sent = sum(len(b["samples"]) for b in bodies)
    in_lake = sum(1 for c in rows.column("campaign").to_pylist() if c == "harsh-brake")
    assert sent == in_lake > 0
    assert all(s["path"] in ("Vehicle.Speed", BRAKE) for b in bodies for s in b["samples"])
    assert fleet.pipeline.streamed == len(streamed)


def test_a_campaign_without_extras_stamps_and_streams_nothing(fleet: Rig) -> None:
    streamed: list[Message] = []
    fleet.bus.subscribe("dt/campaigns/#", streamed.append)
    fleet.pipeline.stream_to = fleet.bus
    with fleet.database.session() as session:
        create_campaign(session, definition(), tenant="acme", actor="alice")
    with fleet.database.session() as session:
        approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
    run_round(fleet)
    _brake(fleet)
    fleet.bus.drain(10)
    rows = fleet.pipeline.lake.rows()  # type: ignore[attr-defined]
    assert rows is not None and "harsh-brake" in rows.column("campaign").to_pylist()
    assert set(rows.column("dimensions").to_pylist()) == {None}
    assert streamed == []
