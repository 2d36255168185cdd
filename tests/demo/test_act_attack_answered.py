"""The demo's "attack answered" act against the embedded platform."""

from __future__ import annotations

from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_attack_answered import ATTACK_ANSWERED


def test_attack_answered_act_detects_correlates_and_dispatches_the_response(platform: PlatformHandles) -> None:
    result = ATTACK_ANSWERED.run(act_context(platform, budget_s=120.0))
    assert result.passed, result.check
    assert result.figures["detect_latency_s"] <= 1.0
    assert result.figures["commands"] == 2 and result.figures["incidents"] >= 2
    assert "attack answered" in result.check
