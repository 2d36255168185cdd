"""The scenario harness with fake acts: verdicts, exceptions, time budgets, the summary."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from typing import cast

import pytest
from rich.console import Console

from drivetrain.core.settings import Settings
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.harness import ActOutcome, ScenarioOptions, ScenarioReport, run_scenario
from drivetrain.demo.platform import PlatformHandles
from drivetrain.demo.view import HeadlessObserver, act_line, summary_table

# The harness hands the platform to acts untouched; these fake acts never use it.
NO_PLATFORM = cast(PlatformHandles, object())


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter grace periods keep the timeout scenarios fast; the logic is the same."""
    monkeypatch.setattr("drivetrain.demo.harness.MIN_GRACE_S", 0.2)
    monkeypatch.setattr("drivetrain.demo.harness.CANCEL_WAIT_S", 0.5)


class RecordingObserver:
    def __init__(self) -> None:
        self.started: list[tuple[int, str, float]] = []
        self.progress: list[tuple[float | None, str]] = []
        self.finished: list[ActOutcome] = []

    def act_started(self, index: int, total: int, act: Act, budget_s: float) -> None:
        self.started.append((index, act.name, budget_s))

    def act_progress(
        self, fraction: float | None, message: str, figures: Mapping[str, Figure]
    ) -> None:
        self.progress.append((fraction, message))

    def act_finished(self, outcome: ActOutcome, total: int) -> None:
        self.finished.append(outcome)


def _passing(context: DemoContext) -> ActResult:
    context.report("halfway", fraction=0.5, figures={"items": 3})
    return ActResult(True, "3 items verified", {"items": 3, "rate/s": 12.5})


def _failing(context: DemoContext) -> ActResult:
    return ActResult(False, "expected 3 items, found 2", {"items": 2})


def _raising(context: DemoContext) -> ActResult:
    raise RuntimeError("broker exploded")


def _cooperative_sleeper(context: DemoContext) -> ActResult:
    while True:
        context.check_time()
        time.sleep(0.01)


def _play(
    acts: list[Act], settings: Settings, duration_s: float = 5.0
) -> tuple[RecordingObserver, ScenarioReport]:
    observer = RecordingObserver()
    report = run_scenario(
        acts,
        options=ScenarioOptions(seed=1, vehicles=2, duration_s=duration_s),
        settings=settings,
        platform=NO_PLATFORM,
        observer=observer,
    )
    return observer, report


def test_every_act_passing_gives_exit_code_zero(settings: Settings) -> None:
    observer, report = _play([Act("a", "Act A", _passing), Act("b", "Act B", _passing)], settings)
    assert report.exit_code == 0 and report.passed
    assert [o.status for o in observer.finished] == ["passed", "passed"]
    assert observer.finished[0].figures == {"items": 3, "rate/s": 12.5}
    assert (0.5, "halfway") in observer.progress


def test_failed_check_raised_exception_and_timeout_each_fail_the_scenario(
    settings: Settings,
) -> None:
    acts = [
        Act("ok", "Passing", _passing),
        Act("bad", "Failing", _failing),
        Act("boom", "Raising", _raising),
        Act("slow", "Overrunning", _cooperative_sleeper),
    ]
    observer, report = _play(acts, settings, duration_s=1.0)
    statuses = [o.status for o in observer.finished]
    assert statuses == ["passed", "failed", "error", "timeout"]
    assert report.exit_code == 1
    by_name = {o.act.name: o for o in observer.finished}
    assert by_name["bad"].check == "expected 3 items, found 2"
    assert "RuntimeError: broker exploded" in by_name["boom"].check
    assert isinstance(by_name["boom"].error, RuntimeError)
    assert "timed out" in by_name["slow"].check


def test_budget_is_shared_by_weight_and_unused_time_passes_on(settings: Settings) -> None:
    acts = [Act("a", "A", _passing, weight=1.0), Act("b", "B", _passing, weight=3.0)]
    observer, _ = _play(acts, settings, duration_s=8.0)
    (_, _, first), (_, _, second) = observer.started
    assert first == pytest.approx(2.0, abs=0.1)
    assert second == pytest.approx(8.0, abs=0.2)  # 'a' returned at once: 'b' gets the rest


def test_act_that_ignores_cancellation_is_abandoned_and_later_acts_skipped(
    settings: Settings,
) -> None:
    release = threading.Event()

    def stubborn(context: DemoContext) -> ActResult:
        release.wait(30)
        return ActResult(True, "finally done")

    try:
        started = time.monotonic()
        observer, report = _play(
            [Act("stuck", "Stuck", stubborn), Act("next", "Next", _passing)],
            settings,
            duration_s=1.0,
        )
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert [o.status for o in observer.finished] == ["timeout", "skipped"]
    assert "did not stop" in observer.finished[0].check
    assert elapsed < 4.0  # budget + grace + cancel wait, never the act's 30 s
    assert report.exit_code == 1


def test_duplicate_act_names_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="'a'"):
        _play([Act("a", "A", _passing), Act("a", "Again", _passing)], settings)


def test_headless_lines_and_summary_show_status_check_and_figures(settings: Settings) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    report = run_scenario(
        [Act("ok", "Passing act", _passing), Act("bad", "Failing act", _failing)],
        options=ScenarioOptions(duration_s=5.0),
        settings=settings,
        platform=NO_PLATFORM,
        observer=HeadlessObserver(console),
    )
    console.print(summary_table(report))
    text = out.getvalue()
    assert "[act 1/2] Passing act … ok: 3 items verified" in text
    assert "[act 2/2] Failing act … FAILED: expected 3 items, found 2" in text
    assert "items=3  rate/s=12.5" in text
    assert "some acts FAILED" in text
    assert act_line(report.outcomes[0], 2).startswith("[act 1/2] Passing act … ok")



def test_an_act_gets_at_least_its_minimum_budget_however_short_the_demo(
    settings: Settings,
) -> None:
    acts = [Act("a", "A", _passing, weight=1.0),
            Act("needy", "Needy", _passing, weight=0.1, min_budget_s=4.0)]
    observer, report = _play(acts, settings, duration_s=1.0)
    (_, _, first), (_, _, second) = observer.started
    assert first < 1.0 and second == pytest.approx(4.0)
    assert [o.status for o in report.outcomes] == ["passed", "passed"]
    with pytest.raises(ValueError, match="min_budget_s"):
        Act("bad", "Bad", _passing, min_budget_s=-1.0)
