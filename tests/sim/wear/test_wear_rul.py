"""Each component's ground-truth remaining useful life agrees with when it actually fails."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.errors import SimulationConfigError
from drivetrain.sim.physics.fleet import StepOutput
from drivetrain.sim.wear import COMPONENTS, FleetWear, WearConfig
from drivetrain.sim.wear.faults import DAY_S

ALL_FAULTS = {c: 1.0 for c in COMPONENTS}


def _output(
    n: int, dt: float, friction_j: np.ndarray | None = None, pump: np.ndarray | None = None
) -> StepOutput:
    return StepOutput(
        dt_s=dt,
        distance_m=np.full(n, 10.0 * dt),
        friction_wheel_j=np.zeros((n, 4)) if friction_j is None else friction_j,
        pump_running=np.ones(n, dtype=bool) if pump is None else pump,
        active=np.ones(n, dtype=bool),
    )


def test_time_driven_components_fail_when_their_earlier_rul_said() -> None:
    n, dt = 120, 3600.0
    wear = FleetWear(
        n,
        np.random.default_rng(11),
        WearConfig(horizon_s=20 * DAY_S, fault_probability=ALL_FAULTS),
        cells_series=108,
    )
    checkpoints = {0: wear.rul(), 240: None}
    odometer = np.zeros(n)
    step = 0
    while wear.time_s < 120 * DAY_S:
        wear.step(_output(n, dt, pump=np.zeros(n, dtype=bool)), odometer)
        step += 1
        if step == 240:
            checkpoints[240] = wear.rul()
    failures = {(e.vehicle, e.component): e.time_s for e in wear.events if e.kind == "failure"}
    checked = 0
    for at_step, rul in checkpoints.items():
        assert rul is not None
        t0 = at_step * dt
        for component, key in (
            ("tires", "tires_rul_s"),
            ("lv_battery", "lv_battery_rul_s"),
            ("hv_cell", "hv_cell_rul_s"),
        ):
            for i in range(n):
                predicted = t0 + rul[key][i]
                if failures.get((i, component), np.inf) <= t0:
                    assert rul[key][i] == 0.0  # already failed: nothing left
                    continue
                if predicted <= wear.time_s - dt:
                    assert (i, component) in failures, (component, i, predicted)
                    actual = failures[(i, component)]
                    assert actual - dt <= predicted <= actual + 1e-6, (
                        component,
                        i,
                        predicted,
                        actual,
                    )
                    checked += 1
    assert checked > 400  # most vehicles' faults ran to failure within the window


def test_rul_before_a_fault_starts_already_counts_the_coming_fault() -> None:
    n = 50
    wear = FleetWear(
        n,
        np.random.default_rng(3),
        WearConfig(horizon_s=30 * DAY_S, fault_probability=ALL_FAULTS),
        cells_series=96,
    )
    rul = wear.rul()
    onset = wear.plan.cell_onset_s
    assert (rul["hv_cell_rul_s"] > onset).all()  # fails after its onset
    assert (rul["hv_cell_rul_s"] < onset + 91 * DAY_S).all()  # and within its drawn drift time
    healthy = FleetWear(
        n,
        np.random.default_rng(3),
        WearConfig(fault_probability={c: 0.0 for c in COMPONENTS}),
        cells_series=96,
    )
    assert np.isinf(healthy.rul()["hv_cell_rul_s"]).all()  # a balanced cell never fails
    assert (healthy.rul()["tires_rul_s"] > rul["tires_rul_s"]).all()


def test_coolant_pump_fails_after_the_predicted_operating_time() -> None:
    n, dt = 40, 600.0
    wear = FleetWear(
        n,
        np.random.default_rng(5),
        WearConfig(horizon_s=100 * 3600.0, fault_probability={"coolant_pump": 1.0}),
        cells_series=108,
    )
    pattern = np.random.default_rng(9).random((6000, n)) < 0.3  # pump runs ~30 % of the time
    rul0 = wear.rul()["coolant_pump_rul_op_s"].copy()
    op_at_failure: dict[int, float] = {}
    for k in range(6000):
        events = wear.step(_output(n, dt, pump=pattern[k]), np.zeros(n))
        for e in events:
            if e.kind == "failure" and e.component == "coolant_pump":
                op_at_failure[e.vehicle] = float(wear.pump_op_s[e.vehicle])
        if k == 300:
            op_300 = wear.pump_op_s.copy()
            rul_300 = wear.rul()["coolant_pump_rul_op_s"].copy()
    assert len(op_at_failure) >= n // 2
    for i, op in op_at_failure.items():
        assert op - dt <= rul0[i] <= op + 1e-6
        if op > op_300[i]:
            assert op - dt <= op_300[i] + rul_300[i] <= op + 1e-6
    # reduced coolant flow reaches the physics before failure
    assert wear.condition().coolant_flow.min() < 0.5


def test_brake_pads_fail_after_the_predicted_friction_energy() -> None:
    n, dt = 30, 10.0
    config = WearConfig(acceleration=400.0, fault_probability={"brake_pads": 0.0})
    wear = FleetWear(n, np.random.default_rng(8), config, cells_series=108)
    per_pad_rul = (wear.pad_mm - 2.0) / wear.pad_wear_mm_per_mj
    assert wear.rul()["brake_pads_rul_mj"] == pytest.approx(per_pad_rul.min(axis=1))
    rng = np.random.default_rng(2)
    pad_energy = np.zeros((n, 4))
    failed_energy = np.full((n, 4), np.nan)
    share = np.array([0.35, 0.35, 0.15, 0.15])  # front pads take most of the friction braking
    for _ in range(3000):
        friction = rng.uniform(0.0, 40000.0, (n, 4)) * share
        wear.step(_output(n, dt, friction_j=friction), np.zeros(n))
        pad_energy += friction / 1e6
        newly = (wear.pad_mm < 2.0) & np.isnan(failed_energy)
        failed_energy[newly] = pad_energy[newly]
    assert wear.failed["brake_pads"].all()
    failed = ~np.isnan(failed_energy)
    assert failed.sum() >= n  # at least the first pad of every vehicle
    step_mj = 40000.0 * share.max() / 1e6
    # every pad wore out exactly when it had absorbed the energy its RUL gave at the start
    assert np.all(failed_energy[failed] - step_mj <= per_pad_rul[failed] + 1e-9)
    assert np.all(per_pad_rul[failed] <= failed_energy[failed] + 1e-9)


def test_a_dragging_caliper_appears_as_a_brake_force_after_its_onset() -> None:
    n = 20
    wear = FleetWear(
        n,
        np.random.default_rng(4),
        WearConfig(horizon_s=DAY_S, fault_probability={"brake_pads": 1.0}),
        cells_series=96,
    )
    assert wear.condition().brake_drag_n.sum() == 0.0
    while wear.time_s < DAY_S + 1:
        wear.step(_output(n, 600.0), np.zeros(n))
    drag = wear.condition().brake_drag_n
    assert (drag.sum(axis=1) >= 80.0).all()
    assert ((drag > 0).sum(axis=1) == 1).all()  # one wheel each
    onsets = [e for e in wear.events if e.kind == "fault_onset" and e.component == "brake_pads"]
    assert len(onsets) == n


def test_repair_restores_health_and_clears_the_failure() -> None:
    n = 10
    wear = FleetWear(
        n,
        np.random.default_rng(6),
        WearConfig(horizon_s=DAY_S, fault_probability={"tires": 1.0}),
        cells_series=96,
    )
    while not wear.failed["tires"].all():
        wear.step(_output(n, 3600.0), np.zeros(n))
    assert (wear.rul()["tires_rul_s"] == 0.0).all()
    wear.repair(np.arange(n), "tires")
    assert not wear.failed["tires"].any()
    assert (wear.tire_ratio() == 1.0).all()
    assert (wear.rul()["tires_rul_s"] > 250 * DAY_S).all()  # only natural permeation remains


def test_same_seed_draws_the_same_faults_and_another_seed_different_ones() -> None:
    cfg = WearConfig(fault_probability=ALL_FAULTS)
    a = FleetWear(100, np.random.default_rng(1), cfg, cells_series=108)
    b = FleetWear(100, np.random.default_rng(1), cfg, cells_series=108)
    c = FleetWear(100, np.random.default_rng(2), cfg, cells_series=108)
    assert np.array_equal(a.plan.leak_onset_s, b.plan.leak_onset_s)
    assert np.array_equal(a.plan.weak_cell_index, b.plan.weak_cell_index)
    assert not np.array_equal(a.plan.leak_onset_s, c.plan.leak_onset_s)
    assert (a.plan.weak_cell_index < 108).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"acceleration": 0.0}, "acceleration 0.0; expected a finite number > 0"),
        ({"acceleration": float("inf")}, "acceleration inf"),
        ({"horizon_s": -1.0}, "horizon_s -1.0"),
        ({"fault_probability": {"tires": 1.5}}, r"fault_probability\['tires'\] = 1.5"),
        ({"fault_probability": {"wipers": 0.1}}, "'wipers'; expected one of"),
    ],
)
def test_wear_settings_out_of_range_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationConfigError, match=message):
        WearConfig(**kwargs)  # type: ignore[arg-type]
