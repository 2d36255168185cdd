"""The demo's insights acts: maintenance predicted, charging planned."""

from __future__ import annotations

from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_charging import CHARGING_PLANNED
from drivetrain.demo.act_maintenance import MAINTENANCE_PREDICTED
from drivetrain.demo.scenario import SCENARIO


def test_insights_acts_are_in_the_scenario() -> None:
    names = [act.name for act in SCENARIO]
    assert "maintenance" in names and "charging" in names


def test_maintenance_act_catches_held_out_failures_and_books_them(platform: PlatformHandles) -> None:
    result = MAINTENANCE_PREDICTED.run(act_context(platform, vehicles=8, budget_s=120.0))
    assert result.passed, result.check
    assert "maintenance predicted" in result.check
    assert result.figures["held_out_failures"] >= result.figures["caught_ahead"] > 0


def test_charging_act_saves_against_charging_at_once(platform: PlatformHandles) -> None:
    result = CHARGING_PLANNED.run(act_context(platform, vehicles=3, budget_s=60.0))
    assert result.passed, result.check
    assert "charging planned" in result.check
    assert float(result.figures["saving_pct"]) > 0 and result.figures["targets_missed"] == 0
