"""The demo's privacy act: a withdrawal that stops collection on the car, a repairer's grant,
an erasure checked on the raw Parquet files."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from act_support import act_context

from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_privacy import PRIVACY, STOP_WITHIN_S


def test_withdrawal_grant_and_erasure_play_and_pass(
    platform: PlatformHandles, report_figure: Callable[[str], None]
) -> None:
    result = PRIVACY.run(act_context(platform, vehicles=1, budget_s=60.0))
    assert result.passed, result.check
    report_figure(f"privacy act: {result.check}")
    assert 0 < result.figures["stop_collecting_s"] <= STOP_WITHIN_S
    assert result.figures["dropped_on_car"] > 0
    assert 0 < result.figures["hmi_stop_s"] <= STOP_WITHIN_S  # withdrawn on the car's screen
    assert result.figures["hmi_ledger_s"] >= result.figures["hmi_stop_s"]
    assert result.figures["repairer_rows"] > 0
    assert result.figures["rows_before_erasure"] > 0 and result.figures["rows_after_erasure"] == 0


def test_a_car_that_ignores_the_withdrawal_fails_the_act(
    platform: PlatformHandles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivetrain.core.errors import BadInputError
    from drivetrain.edge.consent import CollectionConsent

    original = CollectionConsent.updated

    def refuse(self: CollectionConsent, args: dict[str, list[str]]) -> CollectionConsent:
        if "location" not in args["categories"]:  # the first consent, not its withdrawal
            raise BadInputError("consent locked")
        return original(self, args)

    monkeypatch.setattr(CollectionConsent, "updated", refuse)
    result = PRIVACY.run(act_context(platform, vehicles=1, budget_s=12.0))
    assert not result.passed
    assert "never applied the withdrawal" in result.check
