"""Plays a scenario: runs each act within its share of the time budget and collects verdicts.

The harness knows nothing about what acts do. It splits the remaining budget among the acts
still to run (by weight), runs each act on a worker thread so that one that overruns can be
cancelled, turns exceptions into failed outcomes, and tells an observer (the live view or the
plain log) what happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from drivetrain.core.settings import Settings
from drivetrain.demo.acts import Act, ActResult, ActTimeoutError, DemoContext, Figure

if TYPE_CHECKING:
    from drivetrain.demo.platform import PlatformHandles

ActStatus = Literal["passed", "failed", "error", "timeout", "skipped"]

#: Extra time an act may take past its deadline before the harness cancels it, seconds.
MIN_GRACE_S = 1.0
#: After cancelling, how long the harness waits for the act to notice, seconds.
CANCEL_WAIT_S = 2.0


@dataclass(frozen=True)
class ScenarioOptions:
    """What the user asked for: seed, vehicle count and the acts' shared time budget."""

    seed: int = 7
    vehicles: int = 3
    duration_s: float = 30.0

    def __post_init__(self) -> None:
        if self.vehicles < 1:
            raise ValueError(f"vehicles must be >= 1, got {self.vehicles}")
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")


@dataclass(frozen=True)
class ActOutcome:
    """How one act ended.

    Attributes:
        index: position in the scenario, from 1.
        act: the act.
        status: ``passed``/``failed`` (its own check), ``error`` (it raised), ``timeout``
            (past its budget), ``skipped`` (not run).
        check: the act's check text, or what went wrong.
        figures: the act's figures (empty unless it returned a result).
        elapsed_s: wall time the act took, seconds.
        budget_s: the time it was given, seconds.
        error: the exception for ``error``/``timeout``, for a traceback.
    """

    index: int
    act: Act
    status: ActStatus
    check: str
    figures: Mapping[str, Figure] = field(default_factory=dict)
    elapsed_s: float = 0.0
    budget_s: float = 0.0
    error: BaseException | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class ScenarioReport:
    """Every act's outcome, in order, and the total time."""

    outcomes: tuple[ActOutcome, ...]
    elapsed_s: float

    @property
    def passed(self) -> bool:
        """True when every act ran and its own check passed."""
        return all(o.passed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when every act passed, 1 otherwise."""
        return 0 if self.passed else 1


class ScenarioObserver(Protocol):
    """Receives the harness's events (called from the harness and act threads)."""

    def act_started(self, index: int, total: int, act: Act, budget_s: float) -> None: ...

    def act_progress(
        self, fraction: float | None, message: str, figures: Mapping[str, Figure]
    ) -> None: ...

    def act_finished(self, outcome: ActOutcome, total: int) -> None: ...


def run_scenario(
    acts: Sequence[Act],
    *,
    options: ScenarioOptions,
    settings: Settings,
    platform: PlatformHandles,
    observer: ScenarioObserver,
) -> ScenarioReport:
    """Run ``acts`` in order within ``options.duration_s`` seconds in total.

    Each act gets the remaining budget times its weight over the weights still to run, and at
    least its ``min_budget_s`` (so a short demo runs longer instead of failing acts). An act
    that raises is an ``error``; one that has not returned ``max(1 s, 10 %)`` past its deadline
    is cancelled and counted as ``timeout``; if it still does not stop, the acts after it are
    ``skipped`` (the platform's state is then unknown). Never raises for an act's failure.
    """
    names = [a.name for a in acts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"act names must be unique; repeated: {duplicates}")
    started = time.monotonic()
    scenario_deadline = started + options.duration_s
    outcomes: list[ActOutcome] = []
    abandoned = False
    total = len(acts)
    for position, act in enumerate(acts, start=1):
        if abandoned:
            outcome = ActOutcome(position, act, "skipped", "not run: an earlier act did not stop")
        else:
            weights_left = sum(a.weight for a in acts[position - 1 :])
            share_s = max(0.0, scenario_deadline - time.monotonic()) * act.weight / weights_left
            budget_s = max(act.min_budget_s, share_s)
            observer.act_started(position, total, act, budget_s)
            outcome, abandoned = _run_act(
                position, act, budget_s, options, settings, platform, observer
            )
        outcomes.append(outcome)
        observer.act_finished(outcome, total)
    return ScenarioReport(tuple(outcomes), time.monotonic() - started)


def _run_act(
    position: int,
    act: Act,
    budget_s: float,
    options: ScenarioOptions,
    settings: Settings,
    platform: PlatformHandles,
    observer: ScenarioObserver,
) -> tuple[ActOutcome, bool]:
    """Run one act on a worker thread; returns its outcome and whether it had to be abandoned."""
    cancelled = threading.Event()
    start = time.monotonic()
    context = DemoContext(
        settings=settings,
        platform=platform,
        seed=options.seed,
        vehicles=options.vehicles,
        budget_s=budget_s,
        deadline=start + budget_s,
        progress_sink=observer.act_progress,
        cancelled=cancelled,
    )
    box: list[ActResult | BaseException] = []

    def work() -> None:
        try:
            box.append(act.run(context))
        except Exception as error:  # noqa: BLE001 - an act's bug must not stop the scenario; reported
            box.append(error)

    worker = threading.Thread(target=work, name=f"demo-act-{act.name}", daemon=True)
    worker.start()
    worker.join(budget_s + max(MIN_GRACE_S, 0.1 * budget_s))
    if worker.is_alive():
        cancelled.set()
        worker.join(CANCEL_WAIT_S)
        elapsed = time.monotonic() - start
        still_running = worker.is_alive()
        note = " and did not stop when cancelled" if still_running else ""
        check = f"timed out: still running after {elapsed:.1f} s of a {budget_s:.1f} s budget{note}"
        return ActOutcome(position, act, "timeout", check, {}, elapsed, budget_s), still_running
    elapsed = time.monotonic() - start
    result = box[0] if box else RuntimeError("the act returned nothing")
    if isinstance(result, ActTimeoutError):
        check = f"timed out after {elapsed:.1f} s: {result}"
        return ActOutcome(position, act, "timeout", check, {}, elapsed, budget_s, result), False
    if isinstance(result, BaseException):
        check = f"raised {type(result).__name__}: {result}"
        return ActOutcome(position, act, "error", check, {}, elapsed, budget_s, result), False
    if not isinstance(result, ActResult):
        check = f"returned {type(result).__name__}, expected an ActResult"
        return ActOutcome(position, act, "error", check, {}, elapsed, budget_s), False
    status: ActStatus = "passed" if result.passed else "failed"
    return ActOutcome(
        position, act, status, result.check, dict(result.figures), elapsed, budget_s
    ), False
