"""The act types and the scenario registry."""

from __future__ import annotations

import threading
import time

import pytest

from drivetrain.core.settings import Settings
from drivetrain.demo import SCENARIO, Act, ActResult, ActTimeoutError, DemoContext
from drivetrain.demo.harness import ScenarioOptions


def _context(settings: Settings, *, seed: int = 3, budget_s: float = 5.0) -> DemoContext:
    reports: list[tuple[float | None, str, dict[str, object]]] = []
    return DemoContext(
        settings=settings,
        platform=None,  # type: ignore[arg-type]  # these checks never touch the platform
        seed=seed,
        vehicles=2,
        budget_s=budget_s,
        deadline=time.monotonic() + budget_s,
        progress_sink=lambda f, m, figs: reports.append((f, m, dict(figs))),
        cancelled=threading.Event(),
    )


def test_scenario_lists_unique_acts_with_titles_in_play_order() -> None:
    names = [act.name for act in SCENARIO]
    assert len(names) == len(set(names))
    assert names[:2] == ["can-roundtrip", "api-secured"]
    assert all(isinstance(act, Act) and act.title and act.weight > 0 for act in SCENARIO)


def test_act_result_must_say_what_was_checked_and_figures_must_be_plain() -> None:
    with pytest.raises(ValueError, match="check"):
        ActResult(True, "  ")
    with pytest.raises(TypeError, match="'speeds'"):
        ActResult(True, "checked", {"speeds": [1, 2]})  # type: ignore[dict-item]


def test_act_needs_name_title_and_positive_weight() -> None:
    def run(context: DemoContext) -> ActResult:
        return ActResult(True, "ok")

    with pytest.raises(ValueError, match="weight"):
        Act("x", "X", run, weight=0)
    with pytest.raises(ValueError, match="name and a title"):
        Act("", "X", run)


def test_same_seed_gives_the_same_random_stream_per_salt(settings: Settings) -> None:
    a, b = _context(settings, seed=11), _context(settings, seed=11)
    assert (
        a.rng("act").integers(0, 1 << 30, 5).tolist()
        == b.rng("act").integers(0, 1 << 30, 5).tolist()
    )
    assert a.rng("act").random() != a.rng("other act").random()
    assert _context(settings, seed=12).rng("act").random() != a.rng("act").random()


def test_check_time_raises_once_the_budget_is_spent_or_cancelled(settings: Settings) -> None:
    context = _context(settings, budget_s=0.05)
    context.check_time()
    time.sleep(0.06)
    with pytest.raises(ActTimeoutError, match="0.1 s|0.0 s|budget"):
        context.check_time()
    cancelled = _context(settings)
    cancelled.cancelled.set()
    with pytest.raises(ActTimeoutError, match="cancelled"):
        cancelled.check_time()


def test_scenario_options_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="vehicles"):
        ScenarioOptions(vehicles=0)
    with pytest.raises(ValueError, match="duration"):
        ScenarioOptions(duration_s=0)
