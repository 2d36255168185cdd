"""Rollout waves, per-vehicle states, thresholds and the fleet health gate."""

from __future__ import annotations

import pytest

from drivetrain.cloud.ota.rollout import Rollout, VehicleHealth, WavePolicy, health_gate
from drivetrain.core.errors import BadInputError, StateTransitionError

VINS = tuple(f"VIN{i:014d}" for i in range(20))


def Kpis(kwh_100km: float, dtcs: int, events: int, *, km: float = 100.0,
         hours: float = 10.0) -> VehicleHealth:
    """A vehicle that drove ``km`` in ``hours`` using ``kwh_100km`` and raised ``dtcs`` error
    DTCs and ``events`` security events."""
    return VehicleHealth("V", km, kwh_100km * km / 100.0, hours, dtcs, events)


OK = Kpis(16.0, 0, 0)


def _finish(rollout: Rollout, vins: tuple[str, ...], outcome: str = "installed") -> None:
    for vin in vins:
        rollout.advance(vin, "downloading")
        rollout.advance(vin, "installing")
        rollout.advance(vin, outcome)  # type: ignore[arg-type]


def test_waves_cover_the_target_set_once_in_order() -> None:
    rollout = Rollout("c1", VINS, WavePolicy(waves=(0.1, 0.5, 1.0)), created_by="ann")
    rollout.approve("bob")
    seen: list[str] = []
    while rollout.status == "running":
        wave = rollout.start_next_wave()
        _finish(rollout, wave)
        seen += wave
        rollout.judge_wave([OK] * len(seen), [OK] * max(3, 20 - len(seen)))
    assert rollout.status == "completed" and tuple(seen) == VINS
    assert [end - start for start, end in rollout.wave_spans] == [2, 8, 10]
    assert rollout.counts()["installed"] == 20


def test_a_healthy_looking_install_that_worsens_energy_use_pauses_with_evidence() -> None:
    rollout = Rollout("c1", VINS, WavePolicy(waves=(0.25, 1.0), health_margin=0.05))
    rollout.approve("bob")
    wave = rollout.start_next_wave()
    _finish(rollout, wave)
    status = rollout.judge_wave([Kpis(18.4, 0, 0)] * 5, [OK] * 15)
    assert status == "paused"
    assert "energy_kwh_per_100km 18.4 > limit 16.8" in rollout.reason
    assert rollout.evidence["energy_kwh_per_100km"] == {
        "updated": 18.4, "control": 16.0, "limit": 16.8, "margin": 0.05,
        "updated_vehicles": 5.0, "control_vehicles": 15.0, "failed": 1.0}
    assert rollout.evidence["dtc_per_vehicle_hour"]["failed"] == 0.0
    with pytest.raises(StateTransitionError, match="paused"):
        rollout.start_next_wave()


def test_error_threshold_stops_the_rollout() -> None:
    rollout = Rollout("c1", VINS, WavePolicy(waves=(0.25, 1.0), error_threshold=0.2))
    rollout.approve("bob")
    wave = rollout.start_next_wave()
    _finish(rollout, wave[:3])
    _finish(rollout, wave[3:], "rolled_back")
    assert rollout.judge_wave([OK] * 3, [OK] * 15) == "stopped"
    assert "2 of 5 failed or rolled back" in rollout.reason
    with pytest.raises(StateTransitionError):
        rollout.resume()


def test_success_threshold_pauses_until_an_operator_resumes() -> None:
    rollout = Rollout("c1", VINS, WavePolicy(waves=(0.5, 1.0), success_threshold=0.95,
                                             error_threshold=0.5))
    rollout.approve("bob")
    wave = rollout.start_next_wave()
    _finish(rollout, wave[:-1])
    _finish(rollout, wave[-1:], "failed")
    assert rollout.judge_wave([OK] * 9, [OK] * 10) == "paused"
    rollout.resume()
    assert rollout.start_next_wave() == VINS[10:]


def test_per_vehicle_states_only_move_forward() -> None:
    rollout = Rollout("c1", VINS)
    rollout.approve("bob")
    [vin] = rollout.start_next_wave()[:1]
    with pytest.raises(StateTransitionError, match="pending → installed"):
        rollout.advance(vin, "installed")
    with pytest.raises(StateTransitionError, match="not in a started wave"):
        rollout.advance(VINS[-1], "downloading")
    with pytest.raises(StateTransitionError, match="without an outcome"):
        rollout.judge_wave([], [])


def test_gate_allows_noise_within_the_margin_and_holds_on_too_little_data() -> None:
    # one stray DTC in 10 vehicle-hours is within the one-event allowance
    assert health_gate([Kpis(16.5, 1, 0)], [OK] * 5, 0.05).passed
    decision = health_gate([Kpis(30.0, 9, 9)], [OK] * 2, 0.05)
    assert not decision.passed and decision.held
    assert "2 control vehicle(s) with telemetry" in decision.reason
    no_data = health_gate([Kpis(30.0, 9, 9, hours=0.0)], [OK] * 5, 0.05)
    assert no_data.held and "no updated vehicle has telemetry" in no_data.reason
    parked = health_gate([Kpis(16.0, 0, 0, km=0.2)], [OK] * 5, 0.05)
    assert parked.held and "updated group drove 0.20 km" in parked.reason
    dtcs = health_gate([Kpis(16.0, 3, 0)], [OK] * 5, 0.05)  # fault codes
    assert not dtcs.passed and not dtcs.held and "dtc_per_vehicle_hour" in dtcs.reason
    events = health_gate([Kpis(16.0, 0, 4)], [OK] * 5, 0.05)  # security events
    assert not events.passed and "security_events_per_vehicle_hour" in events.reason


def test_a_wave_with_too_little_data_holds_and_the_last_wave_is_not_held() -> None:
    rollout = Rollout("c1", VINS[:10], WavePolicy(waves=(0.5, 1.0)))
    rollout.approve("bob")
    first = rollout.start_next_wave()
    _finish(rollout, first)
    assert rollout.judge_wave([OK] * 5, [OK] * 2) == "running" and rollout.holding
    assert "holding" in rollout.reason
    with pytest.raises(StateTransitionError, match="holding"):
        rollout.start_next_wave()
    assert rollout.judge_wave([OK] * 5, [OK] * 5) == "running" and not rollout.holding
    _finish(rollout, rollout.start_next_wave())
    assert rollout.judge_wave([OK] * 10, []) == "completed"
    assert "health gate not applied" in rollout.reason


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"waves": ()}, "waves"), ({"waves": (0.5, 0.4, 1.0)}, "waves"),
    ({"waves": (0.5,)}, "last wave"), ({"waves": (float("nan"), 1.0)}, "waves"),
    ({"success_threshold": 0.0}, "success_threshold"), ({"error_threshold": 2}, "error_threshold"),
    ({"health_margin": -0.1}, "health_margin"), ({"observe_s": -1.0}, "observe_s"),
    ({"min_control": 0}, "min_control"),
])
def test_bad_policies_are_refused_naming_the_field(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadInputError, match=field):
        WavePolicy(**kwargs)


def test_a_draft_needs_another_persons_approval() -> None:
    rollout = Rollout("c1", VINS, created_by="ann")
    with pytest.raises(StateTransitionError, match="approved"):
        rollout.start_next_wave()
    with pytest.raises(StateTransitionError, match="another person"):
        rollout.approve("ann")
    rollout.approve("bob")
    assert rollout.status == "running" and rollout.approved_by == "bob"


def test_vehicles_that_join_later_are_picked_up_by_the_next_waves() -> None:
    rollout = Rollout("c1", VINS[:10], WavePolicy(waves=(0.5, 1.0)))
    rollout.approve("bob")
    first = rollout.start_next_wave()
    assert rollout.add_targets([*VINS[:3], *VINS[10:14]]) == 4  # known ones are ignored
    _finish(rollout, first)
    rollout.judge_wave([OK] * 5, [OK] * 9)
    second = rollout.start_next_wave()  # the last planned wave: up to VINS[13]
    assert rollout.add_targets(VINS[14:16]) == 2  # they join while it runs
    _finish(rollout, second)
    assert rollout.judge_wave([OK] * 14, [OK] * 3) == "running"  # not done: two are left
    third = rollout.start_next_wave()
    assert set(first) | set(second) | set(third) == set(VINS[:16])
    assert not set(first) & set(second) and not set(second) & set(third)
    _finish(rollout, third)
    assert rollout.judge_wave([OK] * 16, [OK] * 3) == "completed"
    with pytest.raises(StateTransitionError, match="completed"):
        rollout.add_targets(VINS[16:])


def test_a_report_skips_forward_through_the_states_between_but_never_back() -> None:
    rollout = Rollout("c1", ("A", "B"), WavePolicy(waves=(1.0,)), created_by="ann")
    rollout.approve("bob")
    rollout.start_next_wave()
    assert rollout.advance_to("A", "installed") == ["downloading", "installing", "installed"]
    assert rollout.advance_to("A", "installed") == []
    assert rollout.advance_to("B", "failed") == ["failed"]
    with pytest.raises(StateTransitionError):
        rollout.advance_to("A", "downloading")


def test_pause_stops_new_waves_and_cancel_ends_the_rollout_for_good() -> None:
    rollout = Rollout("c1", VINS, WavePolicy(waves=(0.5, 1.0)), created_by="ann")
    with pytest.raises(StateTransitionError, match="only a running"):
        rollout.pause("freeze")
    rollout.approve("bob")
    rollout.pause("freeze")
    assert rollout.status == "paused" and rollout.reason == "freeze"
    with pytest.raises(StateTransitionError, match="approved"):
        rollout.start_next_wave()
    rollout.cancel("withdrawn")
    assert rollout.status == "cancelled"
    for act in (rollout.resume, lambda: rollout.cancel("again"), lambda: rollout.add_targets(["X"])):
        with pytest.raises(StateTransitionError):
            act()
