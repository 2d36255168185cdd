"""Minimisation at the source: the vehicle coarsens values to its region's precision before
they are collected, buffered or sent (``drivetrain.core.privacy_policy``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_edge_agent import SPEED, TEMP, Rig, regional_rig

from drivetrain.core.privacy_policy import active_policy
from drivetrain.core.vss import PRIVACY_CATEGORIES
from drivetrain.core.wire import MessageKind
from drivetrain.edge.consent import CONSENT_COMMAND

LATITUDE = "Vehicle.CurrentLocation.Latitude"
RAW_LATITUDE = 48.137154


@pytest.fixture
def eu_rig(tmp_path: Path) -> Iterator[Rig]:
    rig = regional_rig(tmp_path, "EU")
    yield rig
    rig.bus.close()


def test_an_eu_vehicle_sends_location_at_the_eu_precision_only(eu_rig: Rig) -> None:
    decimals = active_policy().for_region("EU").rule_for(LATITUDE)
    assert decimals is not None and decimals.decimals == 2
    # the driver consents to location (an EU car collects none before)
    eu_rig.deliver(
        *eu_rig.downlink(
            MessageKind.COMMAND,
            {
                "name": CONSENT_COMMAND,
                "args": {"categories": list(PRIVACY_CATEGORIES), "version": 1},
            },
        )
    )
    eu_rig.drive(2, {LATITUDE: RAW_LATITUDE, TEMP: 21.37})
    eu_rig.agent.flush(eu_rig.now)
    eu_rig.step(0)
    sent = [(p, v) for p, _, v in eu_rig.receiver.samples()]
    latitudes = {v for p, v in sent if p == LATITUDE}
    assert latitudes == {48.14}
    assert {v for p, v in sent if p == TEMP} == {21.37}  # no rule: kept as measured
    # every incoming latitude is coarsened, collected or not (the campaign keeps changes)
    assert eu_rig.agent.samples_coarsened >= len([p for p, _ in sent if p == LATITUDE]) > 0


def test_a_vehicle_without_a_region_keeps_its_values(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.drive(1, {LATITUDE: RAW_LATITUDE, SPEED: 51.3})
        rig.agent.flush(rig.now)
        rig.step(0)
        assert {v for p, _, v in rig.receiver.samples() if p == LATITUDE} == {RAW_LATITUDE}
        assert rig.agent.samples_coarsened == 0
    finally:
        rig.bus.close()
