"""Smart charging: the LP meets departures and targets at the lowest cost, under a site limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivetrain.cloud.insights.charging import (
    ChargingComparison,
    ChargingRequestError,
    ChargingSession,
    Tariff,
    charge_immediately,
    plan_site,
)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TARIFF = Tariff.time_of_use(16.0, 64, 0.25, [(0, 6, 0.1), (6, 17, 0.25), (17, 21, 0.4), (21, 24, 0.25)])


def car(name: str = "car", soc: float = 0.3, plug: int = 0, leave: int = 60, kw: float = 11.0) -> ChargingSession:
    return ChargingSession(name, 50.0, soc, 0.9, plug, leave, kw)


def test_a_single_car_charges_in_the_cheapest_hours_and_reaches_its_target() -> None:
    plan = plan_site([car()], TARIFF).plans[0]
    assert plan.soc_at_departure == pytest.approx(0.9, abs=1e-6)
    assert plan.shortfall_kwh == pytest.approx(0.0, abs=1e-6)
    charging = np.flatnonzero(plan.power_kw > 0.01)
    assert np.all(TARIFF.price_per_kwh[charging] == 0.1)  # 33.3 kWh fits in the 00-06 band


def test_smart_plan_is_never_dearer_than_charging_immediately() -> None:
    rng = np.random.default_rng(1)
    sessions = [car(f"c{i}", float(rng.uniform(0.1, 0.6)), int(rng.integers(0, 20)), int(rng.integers(50, 64)))
                for i in range(8)]  # fmt: skip
    comparison = ChargingComparison(
        plan_site(sessions, TARIFF, site_limit_kw=40), charge_immediately(sessions, TARIFF, site_limit_kw=40)
    )
    assert comparison.saving > 0
    assert np.all(comparison.per_vehicle_saving().sum() == pytest.approx(comparison.saving))
    assert comparison.smart.peak_kw <= 40 + 1e-6


def test_the_site_limit_is_shared_and_every_target_still_met_when_possible() -> None:
    sessions = [car(f"c{i}") for i in range(4)]
    plan = plan_site(sessions, TARIFF, site_limit_kw=15.0)
    assert plan.peak_kw <= 15.0 + 1e-6
    assert all(p.shortfall_kwh < 1e-6 for p in plan.plans)


def test_an_impossible_target_is_reported_as_shortfall_not_an_error() -> None:
    plan = plan_site([car(soc=0.0, plug=0, leave=4, kw=7.0)], TARIFF).plans[0]
    assert plan.shortfall_kwh == pytest.approx(45.0 - 7.0 * 0.9, abs=1e-3)


def test_time_at_high_charge_is_kept_short() -> None:
    flat = Tariff(np.full(64, 0.2), 0.25)
    smart = plan_site([car()], flat).plans[0]
    immediate = charge_immediately([car()], flat).plans[0]
    assert smart.cost == pytest.approx(immediate.cost)
    assert smart.hours_above_high_soc < immediate.hours_above_high_soc


@pytest.mark.parametrize(
    ("session", "field"),
    [(car(soc=1.5), "soc_now"), (car(plug=10, leave=5), "plug_in_slot"), (car(leave=99), "departure_slot")],
)
def test_bad_requests_name_their_field(session: ChargingSession, field: str) -> None:
    with pytest.raises(ChargingRequestError, match=field):
        plan_site([session], TARIFF)


def test_charging_benchmark_quick_mode_ends_with_its_json_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "charging.py"), "--quick"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["saving_fraction"] > 0 and figures["cost_ratio"] > 1
    assert figures["smart_targets_missed"] == 0
    assert figures["smart_hours_above_80_per_car"] < figures["immediate_hours_above_80_per_car"]
