"""The demo's commerce act: a purchase switches the boost on in the simulated cars within
seconds; a lapsed payment switches it off after the grace period, offline; revenue per
region."""

from __future__ import annotations

import pytest
from act_support import act_context

from drivetrain.demo import PlatformHandles, act_commerce
from drivetrain.demo.act_commerce import COMMERCE_ACT


def test_a_bought_feature_turns_on_and_a_lapsed_one_off_after_its_grace_period(
    platform: PlatformHandles,
) -> None:
    result = COMMERCE_ACT.run(act_context(platform, vehicles=2, budget_s=40.0))
    assert result.passed, result.check
    on_s, off_s = result.figures["on_after_s"], result.figures["off_after_lapse_s"]
    assert isinstance(on_s, float) and on_s < 5.0
    assert isinstance(off_s, float) and off_s >= 3.0  # not before the grace period
    assert "revenue per region" in result.check
    assert str(result.figures["revenue_US"]).endswith("USD")


def test_a_car_that_keeps_the_feature_past_the_act_fails_it_saying_so(
    platform: PlatformHandles, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(act_commerce, "DEMO_GRACE_S", 600)  # longer than the act lasts
    result = COMMERCE_ACT.run(act_context(platform, vehicles=2, budget_s=14.0))
    assert not result.passed
    assert "the EU car kept the boost after its grace period" in result.check
    assert result.figures["off_after_lapse_s"] == "never"
