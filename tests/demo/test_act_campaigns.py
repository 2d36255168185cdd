"""The demo's campaign act: a conditional campaign on old-BMS cars collects only from them,
and a command job finishes with one offline car timed out."""

from __future__ import annotations

from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_campaigns import CAMPAIGN_COLLECTS


def test_the_campaign_collects_from_exactly_its_cars_and_the_job_finishes_with_counts(
    platform: PlatformHandles,
) -> None:
    result = CAMPAIGN_COLLECTS.run(act_context(platform, vehicles=5, budget_s=75.0))
    assert result.passed, result.check
    assert "campaign" in result.check and "1 timed out" in result.check
    assert result.figures["job_timed_out"] == 1
    assert result.figures["active"] == result.figures["old_bms"]
    assert isinstance(result.figures["campaign_rows"], int) and result.figures["campaign_rows"] > 0


def test_with_a_tiny_budget_the_act_stops_early_and_says_what_it_verified(
    platform: PlatformHandles,
) -> None:
    result = CAMPAIGN_COLLECTS.run(act_context(platform, vehicles=2, budget_s=4.0))
    assert result.passed, result.check
    assert "campaign" in result.check
