"""Collection off by default on the vehicle: before its first consent an agent collects only
what its region's policy leaves on (a new EU car sends no location); the consent command then
opens what the driver agreed to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_edge_agent import SPEED, TEMP, Rig, regional_rig

from drivetrain.core.privacy_policy import MinimisationPolicy, active_policy
from drivetrain.core.vss import PRIVACY_CATEGORIES
from drivetrain.core.wire import MessageKind
from drivetrain.edge.consent import CONSENT_COMMAND, CollectionConsent, region_default

LATITUDE = "Vehicle.CurrentLocation.Latitude"
SEAT = "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"


@pytest.fixture
def eu_rig(tmp_path: Path) -> Iterator[Rig]:
    rig = regional_rig(tmp_path, "EU")
    yield rig
    rig.bus.close()


def _sent(rig: Rig, since_ns: int = 0) -> set[str]:
    rig.agent.flush(rig.now)
    rig.step(0)
    return {p for p, ts, _ in rig.receiver.samples() if ts > since_ns}


def test_a_new_eu_car_collects_no_location_before_consent(eu_rig: Rig) -> None:
    eu_rig.drive(2, {LATITUDE: 48.1, SPEED: 50.0, TEMP: 21.0})
    assert _sent(eu_rig) == {TEMP}  # location and driving behaviour are off in the EU
    assert eu_rig.agent.samples_not_consented > 0
    consent = eu_rig.agent.downlink.consent
    assert consent.version == -1
    assert consent.categories == {"technical", "diagnostics"}


def test_the_first_consent_opens_what_the_driver_agreed_to(eu_rig: Rig) -> None:
    eu_rig.drive(1, {LATITUDE: 48.1, TEMP: 21.0})
    eu_rig.deliver(
        *eu_rig.downlink(
            MessageKind.COMMAND,
            {
                "name": CONSENT_COMMAND,
                "args": {"categories": ["technical", "diagnostics", "location"], "version": 1},
            },
        )
    )
    after = eu_rig.now
    eu_rig.drive(1, {LATITUDE: 48.1, SPEED: 50.0, TEMP: 21.0})
    assert _sent(eu_rig, after) == {LATITUDE, TEMP}
    # kept across a restart: the stored consent, not the region's default, is in force
    eu_rig.agent.stop()
    eu_rig.agent = eu_rig.new_agent()
    restarted = eu_rig.now
    eu_rig.drive(1, {LATITUDE: 48.1, TEMP: 21.0})
    assert _sent(eu_rig, restarted) == {LATITUDE, TEMP}


def test_a_car_of_a_region_the_policy_does_not_name_filters_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)  # provisioned without a region
    try:
        rig.drive(1, {LATITUDE: 48.1, SEAT: 1.0, TEMP: 21.0})
        assert _sent(rig) == {LATITUDE, SEAT, TEMP}
    finally:
        rig.bus.close()


@pytest.mark.parametrize("region", ["EU", "US", "CN", "JP"])
def test_each_shipped_region_keeps_location_off_until_consent(region: str) -> None:
    policy = active_policy().for_region(region)
    consent = region_default(policy.default_off)
    assert not consent.allows(LATITUDE)
    assert consent.allows(TEMP)


def test_an_operator_policy_decides_the_default(tmp_path: Path) -> None:
    doc = {
        "format": "drivetrain.privacy-policy",
        "version": 1,
        "regions": {"US": {"default_off": ["cabin"]}},
    }
    policy = MinimisationPolicy.from_dict(doc)
    consent = region_default(policy.for_region("US").default_off)
    assert consent.allows(LATITUDE) and not consent.allows(SEAT)
    assert region_default(policy.for_region("EU").default_off).categories == set(PRIVACY_CATEGORIES)
    assert CollectionConsent().allows(SEAT)  # the record default: everything
