"""One vectorised step for the whole fleet gives each vehicle exactly what it gets alone, and
the same inputs give the same outputs."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from drivetrain.core.errors import SimulationConfigError
from drivetrain.sim.physics import (
    COMPACT_HATCH,
    MIDSIZE_SUV,
    VEHICLE_MODELS,
    Condition,
    Controls,
    FleetPhysics,
    get_vehicle_model,
    load_cycle,
)


def _inputs(n: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    wltc = load_cycle("wltc_class3").speed_mps
    offsets = rng.integers(0, 1500, n)
    speeds = np.stack(
        [wltc[o : o + steps] * f for o, f in zip(offsets, rng.uniform(0.8, 1.1, n))], axis=1
    )
    ambient = rng.uniform(-10.0, 35.0, n)
    grade = rng.uniform(-0.05, 0.05, n)
    charger = np.where(rng.random(n) < 0.3, 11000.0, 0.0)
    return speeds, ambient, grade, charger


def _run(
    models: list,
    speeds: np.ndarray,
    ambient: np.ndarray,
    grade: np.ndarray,
    charger: np.ndarray,
    soc: np.ndarray,
    tire: np.ndarray,
    drag: np.ndarray,
) -> FleetPhysics:
    n = len(models)
    fleet = FleetPhysics(models, ambient_c=ambient, soc=soc)
    controls = Controls.idle(n)
    controls.ambient_c = ambient
    controls.grade = grade
    driving = charger == 0
    controls.drive_active = driving
    controls.hvac_on = driving
    controls.charger_w = charger
    condition = Condition.healthy(n)
    condition.tire_pressure_ratio[:, 0] = tire
    condition.brake_drag_n[:, 2] = drag
    for k in range(speeds.shape[0]):
        controls.target_speed_mps = np.where(driving, speeds[k], 0.0)
        fleet.step(1.0, controls, condition)
    return fleet


def test_vectorised_fleet_step_equals_a_loop_over_single_vehicles() -> None:
    n, steps = 6, 150
    models = [COMPACT_HATCH, MIDSIZE_SUV] * 3
    speeds, ambient, grade, charger = _inputs(n, steps)
    soc = np.linspace(0.2, 0.9, n)
    tire, drag = np.linspace(0.7, 1.0, n), np.linspace(0.0, 150.0, n)
    fleet = _run(models, speeds, ambient, grade, charger, soc, tire, drag)
    for i in range(n):
        one = i + np.arange(1)
        alone_fleet = _run(
            [models[i]],
            speeds[:, one],
            ambient[one],
            grade[one],
            charger[one],
            soc[one],
            tire[one],
            drag[one],
        )
        for f in fields(fleet.state):
            together = getattr(fleet.state, f.name)[i]
            alone = getattr(alone_fleet.state, f.name)[0]
            np.testing.assert_allclose(
                together, alone, rtol=1e-12, atol=1e-12, err_msg=f"{f.name} of vehicle {i}"
            )
        for f in fields(fleet.ledger):
            np.testing.assert_allclose(
                getattr(fleet.ledger, f.name)[i],
                getattr(alone_fleet.ledger, f.name)[0],
                rtol=1e-12,
                atol=1e-9,
            )


def test_same_inputs_give_identical_states() -> None:
    speeds, ambient, grade, charger = _inputs(4, 120)
    models = [COMPACT_HATCH, MIDSIZE_SUV, MIDSIZE_SUV, COMPACT_HATCH]
    tire, drag = np.ones(4), np.zeros(4)
    a = _run(models, speeds, ambient, grade, charger, np.full(4, 0.6), tire, drag)
    b = _run(models, speeds, ambient, grade, charger, np.full(4, 0.6), tire, drag)
    for f in fields(a.state):
        assert np.array_equal(getattr(a.state, f.name), getattr(b.state, f.name)), f.name


def test_the_two_models_differ_in_mass_pack_motor_and_drag() -> None:
    a, b = COMPACT_HATCH, MIDSIZE_SUV
    assert b.curb_mass_kg > 1.3 * a.curb_mass_kg
    assert b.battery.usable_kwh > 1.5 * a.battery.usable_kwh
    assert (a.battery.cells_series, a.battery.cells_parallel) != (
        b.battery.cells_series,
        b.battery.cells_parallel,
    )
    assert b.motor.max_power_kw > 1.4 * a.motor.max_power_kw
    assert a.motor.axle != b.motor.axle
    assert b.drag_coefficient * b.frontal_area_m2 > a.drag_coefficient * a.frontal_area_m2
    assert a.battery.usable_kwh == pytest.approx(46.4, abs=0.5)  # published 46 kWh usable
    assert b.battery.usable_kwh == pytest.approx(77.0, abs=0.5)  # published 77 kWh usable


def test_unknown_model_name_is_refused_with_the_built_in_names() -> None:
    assert get_vehicle_model("compact-hatch-50") is COMPACT_HATCH
    with pytest.raises(SimulationConfigError, match="'roadster'.*compact-hatch-50"):
        get_vehicle_model("roadster")
    assert set(VEHICLE_MODELS) == {"compact-hatch-50", "midsize-suv-77"}
