"""Each sample lands in the lake under the campaign that collected it: the agent seals one
batch per campaign with the campaign's id in the signed header, ingestion writes it as the
``campaign`` column."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rig import Rig

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import RawMessage
from drivetrain.core.transport import TELEMETRY, vehicle_topic
from drivetrain.core.wire import MessageKind, encode_samples, samples_table, seal, seal_telemetry
from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.samples import Samples


@pytest.fixture
def fleet(database: Database) -> Iterator[Rig]:
    made = Rig(database, ["EU", "EU"])
    try:
        yield made
    finally:
        made.close()


def test_samples_are_filed_under_the_campaign_that_collected_them(fleet: Rig) -> None:
    with_campaign, default_only = (fleet.agents[v] for v in fleet.vins)
    with_campaign.install_local([Campaign.from_dict(
        {"id": "speed-only", "version": 1, "priority": 5, "signals": ["Vehicle.Speed"],
         "period_ms": 100}, fleet.catalog)])
    now = time.time_ns()
    for step in range(5):
        at = now + step * 200_000_000
        for agent in (with_campaign, default_only):
            agent.tick(at, samples=Samples.from_values(
                {"Vehicle.Speed": 50.0 + step, "Vehicle.Cabin.Light.IsDomeOn": False}, at))
    for agent in (with_campaign, default_only):
        agent.flush(now + 2_000_000_000)
    fleet.vehicles_act(now + 2_000_000_000)
    rows = fleet.pipeline.lake.rows("EU", "acme")  # type: ignore[attr-defined]
    assert rows is not None
    by_campaign: dict[str | None, set[str]] = {}
    for path, campaign in zip(rows.column("path").to_pylist(),
                              rows.column("campaign").to_pylist(), strict=True):
        by_campaign.setdefault(campaign, set()).add(path)
    assert by_campaign["speed-only"] == {"Vehicle.Speed"}
    assert by_campaign["default"] == {"Vehicle.Speed", "Vehicle.Cabin.Light.IsDomeOn"}
    assert set(by_campaign) == {"speed-only", "default"}


def test_a_batch_naming_a_malformed_campaign_is_refused_as_malformed(fleet: Rig) -> None:
    vin = fleet.vins[0]
    key = fleet.agents[vin].identity.signing_key
    table = samples_table(["Vehicle.Speed"], [0], [time.time_ns()], [10.0])
    good = seal_telemetry(vin, table, key=key, seq=1, campaign="harsh-brake")
    forged = seal(MessageKind.TELEMETRY, vin, encode_samples(table), body_encoding="arrow-ipc",
                  key=key, seq=2, extra_header={"campaign": "../../etc"})
    report = fleet.pipeline.process([RawMessage(vehicle_topic(vin, TELEMETRY), good),
                                     RawMessage(vehicle_topic(vin, TELEMETRY), forged)])
    assert [r.status for r in report.results] == ["stored", "refused"]
    assert "header field 'campaign'" in report.results[1].detail
    with pytest.raises(ValueError, match="not a campaign id"):
        seal_telemetry(vin, table, key=key, seq=3, campaign="Bad Id")
