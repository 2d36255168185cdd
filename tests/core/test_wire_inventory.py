"""The ``vehicle.inventory`` event: a round trip through the events body, unknown fields kept
out of the way, and every malformed shape refused naming the entry and field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire import (
    INVENTORY_EVENT,
    EcuInfo,
    VehicleEvent,
    events_from_dict,
    events_to_dict,
    inventory_event,
    inventory_from_event,
)

_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
_ECUS = st.lists(
    st.builds(EcuInfo, _TEXT, st.none() | _TEXT, st.none() | _TEXT),
    max_size=30,
    unique_by=lambda e: e.name,
)


@given(_ECUS, st.integers(0, 2**62))
def test_inventory_survives_the_events_body_round_trip(ecus: list[EcuInfo], ts_ns: int) -> None:
    event = inventory_event(ecus, ts_ns)
    (parsed,) = events_from_dict(events_to_dict([event]))
    assert parsed.type == INVENTORY_EVENT and parsed.ts_ns == ts_ns
    assert inventory_from_event(parsed) == tuple(sorted(ecus, key=lambda e: e.name))


def test_unknown_fields_of_an_entry_are_ignored() -> None:
    event = VehicleEvent(INVENTORY_EVENT, 1, "info", {"ecus": [
        {"name": "BMS", "software_version": "2.4.0", "supplier": "ACME"},
    ]})  # fmt: skip
    assert inventory_from_event(event) == (EcuInfo("BMS", None, "2.4.0"),)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ecus": {"BMS": "2.4.0"}}, "field 'data.ecus' is {'BMS': '2.4.0'}; expected a list"),
        ({"ecus": [{"name": ""}]}, "ECU 0: field 'name' is ''"),
        ({"ecus": [{"name": "BMS", "hardware_id": 7}]}, "ECU 0: field 'hardware_id' is 7"),
        ({"ecus": [{"name": "BMS", "software_version": "1" * 65}]}, "field 'software_version'"),
        ({"ecus": [{"name": "A"}, {"name": "A"}]}, "ECU 'A' is listed twice"),
        ({"ecus": [{"name": f"E{i}"} for i in range(201)]}, "201 ECUs; expected at most 200"),
    ],
)
def test_malformed_inventory_is_refused_naming_the_field(data: Any, message: str) -> None:
    with pytest.raises(WireFormatError, match=message.replace("(", r"\(").replace("{", r"\{")):
        inventory_from_event(VehicleEvent(INVENTORY_EVENT, 1, "info", data))


def test_an_event_of_another_type_is_not_an_inventory() -> None:
    with pytest.raises(WireFormatError, match="'dtc.set'; expected 'vehicle.inventory'"):
        inventory_from_event(VehicleEvent("dtc.set", 1))


def test_an_ecu_is_checked_when_built() -> None:
    with pytest.raises(WireFormatError, match="field 'name' is 'x{65}'"):
        EcuInfo("x" * 65)
