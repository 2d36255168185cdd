"""Campaign extras the agent acts on: upload conditions per data partition (a partition waits
for its condition or an unmetered link, the rest goes at once) and active DTCs on trigger."""

from __future__ import annotations

import re
from typing import Any

import pytest
from edge_testkit import CloudReceiver, make_identity

from drivetrain.core.errors import CampaignFormatError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge import EdgeAgent, MemoryBuffer, Samples
from drivetrain.edge.campaigns import Campaign

CATALOG = builtin_catalog()
T0 = 1_800_000_000_000_000_000
S = 1_000_000_000
SPEED = "Vehicle.Speed"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
BRAKE = "Vehicle.Acceleration.Longitudinal"
DTC_COUNT = "Vehicle.Diagnostics.DTCCount"


def _campaign(**extra: Any) -> Campaign:
    return Campaign.from_dict({"id": "split", "version": 1, "period_ms": 100,
                               "signals": [SPEED, SOC], **extra}, CATALOG)


class _Car:
    def __init__(self, campaign: Campaign, **kwargs: Any) -> None:
        self.bus = InProcessTransport()
        identity = make_identity()
        self.receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
        self.bus.subscribe("dt/v1/+/#", self.receiver.handle)
        self.agent = EdgeAgent(identity, self.bus, MemoryBuffer(), catalog=CATALOG, **kwargs)
        self.agent.start()
        self.agent.install_local([campaign])
        self.now = T0

    def drive(self, seconds: float, values: dict[str, float]) -> None:
        for _ in range(round(seconds / 0.1)):
            self.now += S // 10
            self.agent.tick(self.now, samples=Samples.from_values(values, self.now))
        self.agent.flush(self.now)
        self.agent.uplink.pump(self.now / S)
        self.bus.drain()

    def sent(self, path: str) -> int:
        return sum(1 for p, _, _ in self.receiver.samples() if p == path)


def test_a_partition_waits_until_its_condition_holds_and_the_rest_goes_at_once() -> None:
    car = _Car(_campaign(upload=[{"name": "battery", "signals": [SOC],
                                  "when": f"{CHARGING} == true"}]))
    car.drive(2.0, {SPEED: 50.0, SOC: 80.0, CHARGING: 0.0})
    assert car.sent(SPEED) == 20 and car.sent(SOC) == 0
    assert car.agent.held.held("split", "battery") == 20
    car.drive(1.0, {SPEED: 0.0, SOC: 81.0, CHARGING: 1.0})  # plugged in: all of it goes
    assert car.sent(SOC) == 30 and car.agent.held.rows == 0
    assert car.sent(SPEED) == 30


def test_an_unmetered_partition_waits_for_an_unmetered_link() -> None:
    car = _Car(_campaign(upload=[{"name": "bulk", "signals": [SOC], "link": "unmetered"}]))
    car.drive(1.0, {SPEED: 50.0, SOC: 80.0})
    assert car.sent(SOC) == 0 and car.sent(SPEED) == 10
    car.agent.unmetered_link = True  # e.g. the depot's Wi-Fi
    car.drive(0.5, {SPEED: 50.0, SOC: 80.0})
    assert car.sent(SOC) == 15


def test_held_samples_are_capped_dropping_the_oldest() -> None:
    car = _Car(_campaign(upload=[{"name": "bulk", "signals": [SOC], "link": "unmetered"}]))
    car.agent.held.max_samples = 5
    car.drive(1.0, {SPEED: 50.0, SOC: 80.0})
    assert car.agent.held.held("split", "bulk") == 5 and car.agent.held.dropped["split"] == 5
    car.agent.unmetered_link = True
    car.drive(0.1, {SPEED: 50.0, SOC: 80.0})
    times = sorted(t for p, t, _ in car.receiver.samples() if p == SOC)
    # The newest sample joined the held ones before they went: still the five newest.
    assert times == [T0 + k * S // 10 for k in range(7, 12)]
    assert car.agent.held.dropped["split"] == 6


def test_a_trigger_event_carries_the_active_dtcs_when_the_campaign_asks() -> None:
    trigger = [{"name": "hard-brake", "expression": f"{BRAKE} < -0.8", "pre_s": 1,
                "post_s": 1}]
    car = _Car(_campaign(triggers=trigger, dtcs_on_trigger=True),
               active_dtcs=lambda: ["P0A80", "U0100"])
    car.drive(0.5, {SPEED: 50.0, BRAKE: 0.0, DTC_COUNT: 2})
    car.drive(0.2, {SPEED: 45.0, BRAKE: -2.0, DTC_COUNT: 2})
    (fired,) = [e for e in car.receiver.events() if e.type == "campaign.triggered"]
    assert fired.data == {"campaign": "split", "trigger": "hard-brake",
                          "dtcs": ["P0A80", "U0100"], "dtc_count": 2}
    plain = _Car(_campaign(triggers=trigger))
    plain.drive(0.5, {SPEED: 50.0, BRAKE: 0.0})
    plain.drive(0.2, {SPEED: 45.0, BRAKE: -2.0})
    (event,) = [e for e in plain.receiver.events() if e.type == "campaign.triggered"]
    assert event.data == {"campaign": "split", "trigger": "hard-brake"}


@pytest.mark.parametrize(("extra", "named"), [
    ({"upload": [{"name": "b", "signals": [SOC], "when": "Vehicle.Nope == 1"}]},
     "partition 1 (b): field 'when'"),
    ({"upload": [{"name": "b", "signals": [SOC]}]}, "no 'when' and link 'any'"),
    ({"upload": [{"name": "b", "signals": [SOC], "link": "wifi"}]}, "field 'link'"),
    ({"upload": "bulk"}, "field 'upload'"),
    ({"dtcs_on_trigger": "yes"}, "field 'dtcs_on_trigger'"),
])
def test_a_malformed_extra_is_refused_by_the_vehicle_naming_the_field(
    extra: dict[str, Any], named: str
) -> None:
    with pytest.raises(CampaignFormatError, match=re.escape(named)):
        _campaign(**extra)


def test_the_extras_survive_a_round_trip() -> None:
    campaign = _campaign(upload=[{"name": "battery", "signals": [SOC],
                                  "when": f"{CHARGING} == true"}], dtcs_on_trigger=True)
    again = Campaign.from_dict(campaign.to_dict(), CATALOG)
    assert again.partitions == campaign.partitions and again.dtcs_on_trigger
