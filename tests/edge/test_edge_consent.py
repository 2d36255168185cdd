"""Collection consent on the vehicle: a signed consent command stops the collection of a
withdrawn category at once (nothing of it is buffered or sent), survives a restart, and
cannot be rolled back by an older or forged command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_edge_agent import SPEED, TEMP, Rig, S

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.wire import MessageKind
from drivetrain.edge import Samples
from drivetrain.edge.consent import CONSENT_COMMAND, SYNC_EVENT, CollectionConsent

LATITUDE = "Vehicle.CurrentLocation.Latitude"
NO_LOCATION = ["cabin", "diagnostics", "driving_behaviour", "technical"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.bus.close()


def _consent(rig: Rig, categories: list[str], version: int, **kw: object) -> None:
    body = {"name": CONSENT_COMMAND, "args": {"categories": categories, "version": version}}
    rig.deliver(*rig.downlink(MessageKind.COMMAND, body, **kw))


def _sent_paths(rig: Rig, since_ns: int) -> set[str]:
    return {p for p, ts, _ in rig.receiver.samples() if ts > since_ns}


def test_a_withdrawn_category_is_no_longer_collected_on_the_vehicle(rig: Rig) -> None:
    values = {SPEED: 50.0, TEMP: 30.0, LATITUDE: 48.1}
    rig.drive(2, values)
    assert LATITUDE in _sent_paths(rig, 0)
    _consent(rig, NO_LOCATION, 1)
    withdrawn_at = rig.now
    rig.drive(3, values)
    rig.agent.flush(rig.now)
    rig.step(0)
    assert _sent_paths(rig, withdrawn_at) == {SPEED, TEMP}
    ack = rig.receiver.acks()[-1]
    assert (ack.ref_kind, ack.status, ack.version) == ("command", "applied", 1)
    assert "stopped: location" in ack.detail
    assert rig.agent.samples_not_consented > 0


def test_samples_collected_but_not_sealed_are_dropped_too(rig: Rig) -> None:
    rig.step(0.1, {LATITUDE: 48.1, SPEED: 10.0})  # collected, not yet sealed
    _consent(rig, NO_LOCATION, 1)
    rig.step(0.1)
    rig.agent.flush(rig.now)
    rig.step(0)
    assert LATITUDE not in _sent_paths(rig, 0)


def test_the_consent_survives_a_restart(rig: Rig) -> None:
    _consent(rig, NO_LOCATION, 5)
    rig.step(0.1)
    rig.agent.stop()
    rig.agent = rig.new_agent()
    start = rig.now
    rig.drive(2, {LATITUDE: 48.1, SPEED: 10.0})
    rig.agent.flush(rig.now)
    rig.step(0)
    assert _sent_paths(rig, start) == {SPEED}


def _sync_reports(rig: Rig) -> list[int]:
    """The consent version of each ``privacy.sync`` report the car sent, in order."""
    rig.agent.flush(rig.now)
    rig.step(0)
    return [int(e.data["consent_version"]) for e in rig.receiver.events()
            if e.type == SYNC_EVENT]


def test_the_car_reports_what_it_holds_again_after_each_reconnection(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections = [1]  # the broker accepted the car's first connection
    monkeypatch.setattr(InProcessTransport, "connections",
                        property(lambda self: connections[0]))
    rig.drive(1, {SPEED: 10.0})
    assert _sync_reports(rig) == [-1]  # once at the start, nothing from the cloud yet
    _consent(rig, NO_LOCATION, 9)
    rig.drive(1, {SPEED: 10.0})
    assert _sync_reports(rig) == [-1]  # connected all along: no report
    connections[0] = 2  # the session to the broker was lost and came back
    rig.drive(1, {SPEED: 10.0})
    assert _sync_reports(rig) == [-1, 9]  # once per reconnection, with what it holds now
    connections[0] = 4
    rig.step(0.1)
    assert _sync_reports(rig) == [-1, 9, 9]


def test_an_older_consent_cannot_roll_a_withdrawal_back(rig: Rig) -> None:
    _consent(rig, NO_LOCATION, 7)
    rig.step(0.1)
    rig.now += S
    _consent(rig, [*NO_LOCATION, "location"], 6)  # older version, e.g. reordered
    rig.step(0.1)
    ack = rig.receiver.acks()[-1]
    assert ack.status == "rejected" and "not newer than version 7" in ack.detail
    start = rig.now
    rig.drive(2, {LATITUDE: 48.1, SPEED: 10.0})
    rig.agent.flush(rig.now)
    rig.step(0)
    assert LATITUDE not in _sent_paths(rig, start)


def test_a_forged_consent_command_is_refused(rig: Rig) -> None:
    _consent(rig, NO_LOCATION, 1)
    rig.step(0.1)
    genuine = rig.cloud.key
    rig.cloud.key = SigningKey.generate()  # an attacker re-enabling location collection
    rig.now += S
    _consent(rig, [*NO_LOCATION, "location"], 2)
    rig.cloud.key = genuine
    rig.step(0.1)
    assert rig.agent.stats().downlink_refused.get("unknown_key", 0) + \
        rig.agent.stats().downlink_refused.get("bad_signature", 0) == 1
    assert not rig.agent.downlink.consent.allows(LATITUDE)


def test_until_the_cloud_sends_a_consent_nothing_is_filtered() -> None:
    samples = Samples.from_values({LATITUDE: 1.0, SPEED: 2.0}, 1)
    kept, dropped = CollectionConsent().filter(samples)
    assert (len(kept), dropped) == (2, 0)


@pytest.mark.parametrize(("args", "error"), [
    ({"categories": ["location", "gossip"], "version": 1}, "gossip not known"),
    ({"categories": "location", "version": 1}, "list of category names"),
    ({"categories": [], "version": True}, "whole number"),
    ({"categories": [], "version": 1, "extra": 1}, "unknown field"),
])
def test_malformed_consent_args_are_refused(args: dict, error: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadInputError, match=error):
        CollectionConsent().updated(args)


@given(st.dictionaries(st.sampled_from(["categories", "version", "x"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                 st.lists(st.text(max_size=12), max_size=6))))
def test_any_args_either_parse_or_are_refused_cleanly(args: dict) -> None:  # type: ignore[type-arg]
    try:
        consent = CollectionConsent.from_dict(args)
    except BadInputError:
        return
    assert consent.version >= -1
