"""The demo's OTA act on the stored rollout path: a bad BMS build is paused by the platform's
health gate after its first wave (its cars' simulated physics really use more energy), a good
one completes, and the twins then report the good version on every targeted car."""

from __future__ import annotations

from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_ota import UPDATE_ROLLS_OUT


def test_update_rolls_out_bad_build_is_gated_and_good_build_completes(
    platform: PlatformHandles,
) -> None:
    result = UPDATE_ROLLS_OUT.run(act_context(platform, vehicles=12, budget_s=120.0))
    assert result.passed, result.check
    assert "update rolls out" in result.check
    assert result.figures["bad_build_status"] == "paused"
    assert result.figures["good_build_status"] == "completed"
    assert result.figures["good_build_installed"] == result.figures["vehicles"]
    assert 0 < int(result.figures["bad_build_installed"]) < int(result.figures["vehicles"])
    assert int(result.figures["delta_bytes_saved"]) > 0
    # paused by the platform's gate on the energy its cars' telemetry shows, with evidence
    assert "health gate: energy_kwh_per_100km" in str(result.figures["bad_build_reason"])
    assert int(result.figures["update_records"]) == (
        int(result.figures["bad_build_installed"]) + int(result.figures["vehicles"]))
