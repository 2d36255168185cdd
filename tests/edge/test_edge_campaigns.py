"""Collection campaign documents: parsing, checks naming the field, round trip."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from drivetrain.core.errors import CampaignFormatError, WireFormatError
from drivetrain.core.vss import builtin_catalog
from drivetrain.edge.campaigns import Campaign, default_campaign, selector_matches

CATALOG = builtin_catalog()
SPEED = "Vehicle.Speed"
BATTERY_TEMP = "Vehicle.Powertrain.TractionBattery.Temperature.Average"

EXAMPLE: dict[str, Any] = {
    "format": 1,
    "id": "battery-heat-study",
    "version": 3,
    "priority": 5,
    "status": "active",
    "expires_ns": 1_900_000_000_000_000_000,
    "signals": [SPEED, "Vehicle.Powertrain.TractionBattery.Temperature.*"],
    "period_ms": 1000,
    "signal_period_ms": {SPEED: 200},
    "min_interval_ms": {SPEED: 100},
    "triggers": [
        {
            "name": "hot-at-speed",
            "expression": f"{SPEED} > 120 and {BATTERY_TEMP} > 45",
            "pre_s": 10,
            "post_s": 30,
            "signals": [SPEED, BATTERY_TEMP, "Vehicle.Powertrain.TractionBattery.CurrentCurrent"],
        }
    ],
    "owner_note": "kept by round trips",
}


def test_campaign_round_trips_through_json_keeping_unknown_fields() -> None:
    campaign = Campaign.from_dict(EXAMPLE, CATALOG)
    again = Campaign.from_dict(json.loads(json.dumps(campaign.to_dict())), CATALOG)
    assert again == campaign
    assert again.to_dict()["owner_note"] == "kept by round trips"
    assert campaign.period_ns(SPEED) == 200_000_000
    assert campaign.period_ns(BATTERY_TEMP) == 1_000_000_000
    assert campaign.period_ns("Vehicle.Cabin.HVAC.AmbientAirTemperature") == 0
    assert campaign.min_interval_ns(SPEED) == 100_000_000
    trigger = campaign.triggers[0]
    assert campaign.captures(trigger, "Vehicle.Powertrain.TractionBattery.CurrentCurrent")
    assert not campaign.captures(trigger, "Vehicle.Powertrain.TractionBattery.Temperature.Max")


def test_selectors_match_paths_and_branches() -> None:
    assert selector_matches("*", SPEED)
    assert selector_matches("Vehicle.Powertrain.*", BATTERY_TEMP)
    assert not selector_matches("Vehicle.Power.*", BATTERY_TEMP)
    assert selector_matches(SPEED, SPEED) and not selector_matches(SPEED, "Vehicle.SpeedX")


def test_defaults_period_priority_and_the_default_campaign() -> None:
    campaign = Campaign.from_dict({"id": "c1", "version": 1, "signals": [SPEED]}, CATALOG)
    assert campaign.period_ms == 1000 and campaign.priority == 1 and campaign.triggers == ()
    default = default_campaign()
    assert default.signals == ("*",) and default.period_ns("Anything.At.All") == 1_000_000_000


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    return data


def _trigger(**changes: Any) -> dict[str, Any]:
    trigger = dict(EXAMPLE["triggers"][0], **changes)
    return _with(triggers=[trigger])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(id="Bad Id"), "field 'id' is 'Bad Id'"),
        (_with(version=...), "field 'version' is missing"),
        (_with(version=-1), "field 'version' is -1"),
        (_with(version=True), "field 'version' is True"),
        (_with(priority=10), "field 'priority' is 10; expected an integer from 0 to 9"),
        (_with(status="paused"), "field 'status' is 'paused'"),
        (_with(format=2), "field 'format' is 2"),
        (_with(signals=[]), "field 'signals' is []"),
        (_with(signals=["Vehicle.Sped"]), "did you mean 'Vehicle.Speed'"),
        (_with(signals=["Vehicle.Nothing.*"]), "'Vehicle.Nothing.*' selects no signal"),
        (_with(period_ms=1), "field 'period_ms' is 1; expected an integer from 10"),
        (_with(period_ms=None, triggers=[], signal_period_ms={}), "collects nothing"),
        (
            _with(signal_period_ms={"Vehicle.Cabin.HVAC.AmbientAirTemperature": 100}),
            "'signals' does not collect",
        ),
        (_with(min_interval_ms={SPEED: "fast"}), "'Vehicle.Speed' is 'fast'"),
        (_with(triggers={"a": 1}), "field 'triggers' is {'a': 1}; expected a list"),
        (_trigger(expression=f"{SPEED} >> 120"), "unexpected token '>>' at column 15"),
        (_trigger(expression="Vehicle.Sped > 1"), "did you mean 'Vehicle.Speed'"),
        (_trigger(pre_s=-1), "field 'pre_s' is -1"),
        (_trigger(post_s=1e9), "field 'post_s' is 1000000000.0"),
        (_trigger(colour="red"), "unknown fields ['colour']"),
        (_with(triggers=[EXAMPLE["triggers"][0]] * 2), "trigger names repeat"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_malformed_campaigns_are_refused_naming_the_field(data: Any, message: str) -> None:
    with pytest.raises(CampaignFormatError) as info:
        Campaign.from_dict(data, CATALOG)
    assert message in str(info.value)
    assert isinstance(info.value, WireFormatError)
