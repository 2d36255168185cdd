"""The demo's desired-state act: real edge agents, ingest and reconciler close the loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from act_support import act_context

from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings
from drivetrain.demo.act_twins import TWINS_CONVERGE

#: The tests share one platform and build on each other's state: one worker, in file order.
pytestmark = pytest.mark.xdist_group("act-twins")


def test_charge_limit_set_by_query_converges_on_every_selected_car(
    platform: PlatformHandles,
) -> None:
    result = TWINS_CONVERGE.run(act_context(platform, vehicles=4, budget_s=60.0))
    assert result.passed, result.check
    assert result.figures["selected"] == result.figures["converged"] == 2
    assert result.figures["events"] == 2 and result.figures["failed"] == 0
    assert "converge" in result.check and "p50" in result.check
    assert isinstance(result.figures["converge_max_s"], float)


def test_the_act_passes_again_on_the_same_data_dir(platform: PlatformHandles) -> None:
    result = TWINS_CONVERGE.run(act_context(platform, vehicles=4, budget_s=60.0))
    assert result.passed, result.check


def test_cars_that_refuse_the_limit_make_the_act_fail_with_their_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivetrain.core.errors import BadInputError
    from drivetrain.sim.fleet import SimActuator

    def refuse(self: SimActuator, values: object) -> object:
        raise BadInputError("charge limit locked by the owner")

    monkeypatch.setattr(SimActuator, "apply_desired", refuse)
    # A platform of its own: on the module's, the same seeded cars may already report the
    # limit from an earlier test, and converge without being asked.
    embedded = EmbeddedPlatform(demo_settings(tmp_path))
    try:
        result = TWINS_CONVERGE.run(act_context(embedded.start(), vehicles=2))
    finally:
        embedded.stop()
    assert not result.passed
    assert "charge limit locked by the owner" in result.check
