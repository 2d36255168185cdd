"""The region's minimisation policy over the air: a signed ``privacy.policy`` command changes
the precision and the categories off until consent on the car at once, survives a restart and
is acknowledged; an unsigned, older, other-region or malformed one changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_edge_agent import TEMP, Rig, S, regional_rig

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError
from drivetrain.core.wire import MessageKind
from drivetrain.edge.consent import CONSENT_COMMAND
from drivetrain.edge.policy import POLICY_COMMAND, PolicyInForce

LATITUDE = "Vehicle.CurrentLocation.Latitude"
SEAT = "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"
RAW = 48.137154
#: An operator's EU rules: location kept to one decimal, only cabin off until consent.
COARSER = {
    "law": "operator",
    "default_off": ["cabin"],
    "precision": [{"signals": ["Vehicle.CurrentLocation.*"], "decimals": 1}],
}


@pytest.fixture
def eu_rig(tmp_path: Path) -> Iterator[Rig]:
    rig = regional_rig(tmp_path, "EU")
    yield rig
    rig.bus.close()


def _push(rig: Rig, version: int, rules: dict[str, Any] = COARSER, region: str = "EU") -> None:
    body = {"name": POLICY_COMMAND, "args": {"region": region, "version": version, "rules": rules}}
    rig.deliver(*rig.downlink(MessageKind.COMMAND, body))
    rig.step(0.1)


def _sent(rig: Rig, since_ns: int) -> dict[str, set[float]]:
    rig.agent.flush(rig.now)
    rig.step(0)
    out: dict[str, set[float]] = {}
    for path, ts, value in rig.receiver.samples():
        if ts > since_ns:
            out.setdefault(path, set()).add(value)
    return out


def test_a_pushed_policy_is_applied_at_once_and_acknowledged(eu_rig: Rig) -> None:
    _push(eu_rig, 5)
    ack = eu_rig.receiver.acks()[-1]
    assert (ack.status, ack.version) == ("applied", 5)
    assert "policy EU version 5 in force: off until consent: cabin" in ack.detail
    start = eu_rig.now
    eu_rig.drive(2, {LATITUDE: RAW, SEAT: 1.0, TEMP: 21.37})
    sent = _sent(eu_rig, start)
    # before any consent the car now collects the new default: location (coarser), no cabin
    assert sent[LATITUDE] == {48.1} and SEAT not in sent and sent[TEMP] == {21.37}


def test_the_pushed_policy_survives_a_restart(eu_rig: Rig) -> None:
    _push(eu_rig, 5)
    eu_rig.agent.stop()
    eu_rig.agent = eu_rig.new_agent()
    assert eu_rig.agent.minimisation.rule_for(LATITUDE).decimals == 1  # type: ignore[union-attr]
    start = eu_rig.now
    eu_rig.drive(1, {LATITUDE: RAW, SEAT: 1.0})
    assert _sent(eu_rig, start) == {LATITUDE: {48.1}}


def test_a_policy_does_not_override_the_drivers_consent(eu_rig: Rig) -> None:
    body = {
        "name": CONSENT_COMMAND,
        "args": {"categories": ["technical", "diagnostics"], "version": 1},
    }
    eu_rig.deliver(*eu_rig.downlink(MessageKind.COMMAND, body))
    eu_rig.step(0.1)
    eu_rig.now += S
    _push(eu_rig, 5)  # location is no longer off by default, but this driver said no
    start = eu_rig.now
    eu_rig.drive(1, {LATITUDE: RAW, TEMP: 21.0})
    assert set(_sent(eu_rig, start)) == {TEMP}


def _rules_in_force(rig: Rig) -> int | None:
    rule = rig.agent.minimisation.rule_for(LATITUDE)
    return None if rule is None else rule.decimals


def test_an_older_policy_is_refused(eu_rig: Rig) -> None:
    _push(eu_rig, 5)
    eu_rig.now += S
    lax = {"default_off": [], "precision": []}  # a replayed or reordered older, laxer push
    _push(eu_rig, 4, lax)
    ack = eu_rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "not newer than version 5" in ack.detail
    assert _rules_in_force(eu_rig) == 1
    assert not eu_rig.agent.downlink.consent.allows(SEAT)


def test_an_unsigned_policy_is_refused_by_the_downlink_guard(eu_rig: Rig) -> None:
    genuine = eu_rig.cloud.key
    eu_rig.cloud.key = SigningKey.generate()  # an attacker lifting every restriction
    _push(eu_rig, 9, {"default_off": [], "precision": []})
    eu_rig.cloud.key = genuine
    refused = eu_rig.agent.stats().downlink_refused
    assert refused.get("unknown_key", 0) + refused.get("bad_signature", 0) == 1
    assert _rules_in_force(eu_rig) == 2  # the shipped EU rule
    assert not eu_rig.agent.downlink.consent.allows(LATITUDE)


def test_another_regions_policy_is_refused(eu_rig: Rig) -> None:
    _push(eu_rig, 5, region="US")
    ack = eu_rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "this vehicle is in region 'EU'" in ack.detail
    assert _rules_in_force(eu_rig) == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"region": "EU", "version": 1, "rules": {"default_off": ["gps"]}}, "not a privacy categ"),
        (
            {
                "region": "EU",
                "version": 1,
                "rules": {"precision": [{"signals": ["Vehicle.Speed"], "decimals": 12}]},
            },
            "0 to 9",
        ),
        ({"region": "EU", "version": -3, "rules": {}}, "whole number"),
        (
            {
                "region": "EU",
                "version": 1,
                "rules": [],
            },
            "region's entry",
        ),
        ({"region": "EU", "version": 1, "rules": {}, "vin": "X"}, "unknown field"),
        (
            {
                "region": "EU",
                "version": 1,
                "rules": {"precision": [{"signals": ["Vehicle.Speed"], "decimals": 1}] * 300},
            },
            "more than 256",
        ),
    ],
)
def test_malformed_policies_are_refused_naming_the_field(args: dict[str, Any], error: str) -> None:
    with pytest.raises(BadInputError, match=error):
        PolicyInForce("EU").updated(args, "EU")


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["region", "version", "rules", "x"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=6),
            st.dictionaries(
                st.sampled_from(["law", "default_off", "precision", "y"]),
                st.one_of(st.text(max_size=6), st.lists(st.text(max_size=8), max_size=3)),
            ),
        ),
    )
)
def test_any_policy_args_either_apply_or_are_refused_cleanly(args: dict[str, Any]) -> None:
    try:
        record, policy = PolicyInForce("EU").updated(args, "EU")
    except BadInputError:
        return
    assert record.version >= 0 and policy.region == "EU"
    assert PolicyInForce.from_dict(record.to_dict()).policy() == policy
