"""The demo's lake act against the embedded platform."""

from __future__ import annotations

import pytest
from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_lake import DRIVE_S, LAKE, SIGNALS


def test_lake_act_passes_and_reports_values_per_region(platform: PlatformHandles) -> None:
    result = LAKE.run(act_context(platform, vehicles=3, budget_s=60.0))
    assert result.passed, result.check
    assert result.figures["values"] == 3 * DRIVE_S * len(SIGNALS)
    assert result.figures["redelivered_skipped"] == 2 * DRIVE_S * len(SIGNALS)
    assert str(result.figures["per_region"]).startswith("EU ")
    assert "re-delivered values skipped" in result.check


def test_lake_act_passes_again_on_the_same_data_dir(platform: PlatformHandles) -> None:
    result = LAKE.run(act_context(platform, vehicles=1, budget_s=60.0))
    assert result.passed, result.check


def test_lake_act_fails_naming_the_query_that_disagrees_with_numpy(
    platform: PlatformHandles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivetrain.cloud.lake import query

    real = query._aggregate_sql
    monkeypatch.setattr(query, "_aggregate_sql",
                        lambda agg: "max(value)" if agg == "mean" else real(agg))
    result = LAKE.run(act_context(platform, vehicles=2, budget_s=60.0))
    assert not result.passed
    assert "differ from NumPy" in result.check or "vs NumPy" in result.check
