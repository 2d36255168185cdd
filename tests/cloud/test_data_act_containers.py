"""Data Act containers (pure): the shipped definition resolves to catalog signals, trade
secrets are withheld with their reason, a bad definition is refused naming the field, and
container scopes in tokens parse strictly (fuzzed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.cloud.infra.auth import (
    Role,
    Scope,
    TokenKey,
    issue_token,
    split_container_scopes,
    verify_token,
)
from drivetrain.cloud.privacy.containers import FORMAT, load_containers, parse_containers
from drivetrain.core.errors import AuthenticationError, BadInputError
from drivetrain.core.vss import builtin_catalog

CELLS = "Vehicle.Powertrain.TractionBattery.CellVoltage.CellVoltages"
KEY = TokenKey(b"k" * 32)


def test_the_shipped_containers_resolve_and_withhold_the_trade_secret() -> None:
    shipped, catalog = load_containers(), builtin_catalog()
    assert all(shipped.signals(name, catalog) for name in shipped.containers)
    readable = shipped.readable_paths(["battery"], catalog)
    assert CELLS not in readable and "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current" \
        in readable
    assert "cell chemistry" in shipped.withheld(["battery"], catalog)[CELLS]  # the reason
    assert not any(p.startswith("Vehicle.Powertrain.TractionBattery.Charging.Location")
                   for p in readable)  # excluded from battery: it is location
    assert shipped.withheld(["location"], catalog) == {}


def _definition(**change: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": 1,
            "containers": {"tyres": {"description": "Tyres.",
                                     "signals": ["Vehicle.Chassis.Axle.*.Tire.*"]}},
            **change}


@pytest.mark.parametrize(("change", "detail"), [
    ({"version": 2}, "version 1"),
    ({"containers": {}}, "containers: expected an object of 1-64"),
    ({"containers": {"Bad Name": {"description": "x", "signals": ["Vehicle.*"]}}},
     "a name is 1-32 lowercase"),
    ({"containers": {"x": {"description": "x", "signals": []}}}, "x.signals: expected a non"),
    ({"containers": {"x": {"description": "x", "signals": ["V"], "color": 1}}},
     "unknown field(s) color"),
    ({"trade_secrets": [{"signals": ["Vehicle.Speed"]}]}, "reason: expected 1-500"),
    ({"owner": "me"}, "unknown field(s) owner"),
])
def test_a_bad_definition_names_the_field(change: dict[str, Any], detail: str) -> None:
    with pytest.raises(BadInputError, match=None) as refused:
        parse_containers(_definition(**change))
    assert detail in str(refused.value)


def test_an_unknown_container_names_the_known_ones() -> None:
    with pytest.raises(BadInputError, match="expected one of battery, diagnostics"):
        load_containers().get("secrets")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20))
def test_any_json_is_parsed_or_refused_as_bad_input(data: object) -> None:
    try:
        parse_containers(data)
    except BadInputError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["data_act", "fleet:read", "container:battery"]),
                          st.text(max_size=40).map(lambda s: "container:" + s)), max_size=6))
def test_container_scopes_parse_or_are_refused(names: list[str]) -> None:
    text = " ".join(names)
    try:
        rest, containers = split_container_scopes(text)
    except BadInputError:
        return
    assert all(not n.startswith("container:") for n in rest.split())
    assert all(f"container:{c}" in text.split() for c in containers)


def test_a_token_carries_container_scopes_only_for_a_third_party() -> None:
    now = datetime.now(UTC)
    issued = issue_token(client_id="dtc_repair", tenant="acme", role=Role.THIRD_PARTY_APP,
                         scopes=frozenset({Scope.DATA_ACT}), key=KEY, now=now, ttl_s=60,
                         containers=frozenset({"diagnostics"}))
    principal = verify_token(issued.access_token, KEY, now)
    assert principal.containers == frozenset({"diagnostics"})
    assert principal.scopes == frozenset({Scope.DATA_ACT})
    forged = issue_token(client_id="dtc_owner", tenant="acme", role=Role.OWNER,
                         scopes=frozenset({Scope.DATA_ACT}), key=KEY, now=now, ttl_s=60,
                         containers=frozenset({"diagnostics"}))
    with pytest.raises(AuthenticationError, match="only third-party apps"):
        verify_token(forged.access_token, KEY, now)
