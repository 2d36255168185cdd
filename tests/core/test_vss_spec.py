"""SignalSpec as a value: its dict form, its invariants, and the privacy rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain.core.vss import (
    PRIVACY_CATEGORIES,
    SignalSpec,
    builtin_catalog,
    privacy_category_for,
)


def _fields(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "path": "Vehicle.Test.Signal",
        "node_type": "sensor",
        "datatype": "float",
        "description": "d",
        "privacy_category": "technical",
    }
    base.update(kw)
    return base


def test_every_builtin_spec_round_trips_through_its_dict_form() -> None:
    for spec in builtin_catalog():
        assert SignalSpec.from_dict(spec.to_dict()) == spec


@given(
    st.builds(
        SignalSpec,
        path=st.from_regex(r"Vehicle(\.[A-Z][A-Za-z0-9]{0,8}){1,4}", fullmatch=True),
        node_type=st.sampled_from(["sensor", "actuator", "attribute"]),
        datatype=st.just("int16"),
        description=st.text(max_size=20),
        privacy_category=st.sampled_from(PRIVACY_CATEGORIES),
        unit=st.none() | st.sampled_from(["km/h", "percent", "Celsius"]),
        minimum=st.none() | st.integers(-100, 0),
        maximum=st.none() | st.integers(1, 100),
        allowed=st.none() | st.lists(st.integers(-5, 5), min_size=1, unique=True).map(tuple),
        comment=st.none() | st.text(max_size=10),
        deprecation=st.none() | st.text(min_size=1, max_size=10),
        bounds_source=st.sampled_from(["vss", "drivetrain"]),
    )
)
def test_any_spec_round_trips_through_its_dict_form(spec: SignalSpec) -> None:
    assert SignalSpec.from_dict(spec.to_dict()) == spec


def test_specs_are_immutable_and_hashable() -> None:
    spec = builtin_catalog().get("Vehicle.Speed")
    with pytest.raises(AttributeError):
        spec.unit = "mph"  # type: ignore[misc]
    assert len({spec, builtin_catalog().get("Vehicle.Speed")}) == 1
    assert spec.name == "Speed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "Vehicle..Speed"}, "not a dotted VSS path"),
        ({"node_type": "branch"}, "node_type 'branch'"),
        ({"datatype": "float64"}, "datatype 'float64'"),
        ({"privacy_category": "secret"}, "privacy_category 'secret'"),
        ({"datatype": "string", "minimum": 0}, "min/max given for non-numeric datatype"),
        ({"minimum": 2, "maximum": 1}, "min 2 > max 1"),
    ],
)
def test_inconsistent_spec_is_a_value_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SignalSpec(**_fields(**change))


def test_from_dict_names_missing_keys_and_bad_numbers() -> None:
    with pytest.raises(ValueError, match=r"missing \['privacy_category'\]"):
        SignalSpec.from_dict(
            {"path": "Vehicle.X", "type": "sensor", "datatype": "float", "description": ""}
        )
    data = SignalSpec(**_fields()).to_dict() | {"min": "low"}
    with pytest.raises(ValueError, match="min 'low' is not a number"):
        SignalSpec.from_dict(data)
    with pytest.raises(ValueError, match="bounds_source 'guess'"):
        SignalSpec.from_dict(SignalSpec(**_fields()).to_dict() | {"bounds_source": "guess"})


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("Vehicle.CurrentLocation.Latitude", "location"),
        ("Vehicle.Powertrain.TractionBattery.Charging.Location.Longitude", "location"),
        ("Vehicle.Cabin.Infotainment.Navigation.DestinationSet.Latitude", "location"),
        ("Vehicle.Cabin.Infotainment.Navigation.Volume", "cabin"),
        ("Vehicle.Diagnostics.DTCList", "diagnostics"),
        ("Vehicle.OBD.EngineLoad", "diagnostics"),
        ("Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear", "diagnostics"),
        ("Vehicle.ADAS.ABS.IsError", "diagnostics"),
        ("Vehicle.Powertrain.TractionBattery.StateOfHealth", "diagnostics"),
        ("Vehicle.Cabin.HVAC.AmbientAirTemperature", "cabin"),
        ("Vehicle.Driver.FatigueLevel", "cabin"),
        ("Vehicle.Speed", "driving_behaviour"),
        ("Vehicle.Chassis.Accelerator.PedalPosition", "driving_behaviour"),
        ("Vehicle.Chassis.SteeringWheel.Angle", "driving_behaviour"),
        ("Vehicle.ADAS.CruiseControl.IsActive", "driving_behaviour"),
        ("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "technical"),
        ("Vehicle.Body.Hood.IsOpen", "technical"),
        ("Vehicle.SpeedLimit", "technical"),
    ],
)
def test_privacy_rule_assigns_the_documented_category(path: str, category: str) -> None:
    assert privacy_category_for(path) == category
