"""The console's view of the demo: an observer that puts each act's state on the platform's
:class:`~drivetrain.api.demo_routes.DemoBoard` (read at ``/v1/demo``) and passes every event
on to the terminal's observer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drivetrain.api.demo_routes import DemoBoard
from drivetrain.demo.acts import Act, Figure
from drivetrain.demo.harness import ActOutcome, ScenarioObserver


class BoardObserver:
    """Tees the harness's events: onto ``board`` (all acts pending at once) and to ``inner``."""

    def __init__(self, board: DemoBoard, acts: Sequence[Act], inner: ScenarioObserver) -> None:
        self._board = board
        self._inner = inner
        board.plan([(a.name, a.title) for a in acts])

    def act_started(self, index: int, total: int, act: Act, budget_s: float) -> None:
        self._board.start(index, budget_s)
        self._inner.act_started(index, total, act, budget_s)

    def act_progress(
        self, fraction: float | None, message: str, figures: Mapping[str, Figure]
    ) -> None:
        self._board.progress(message, fraction)
        self._inner.act_progress(fraction, message, figures)

    def act_finished(self, outcome: ActOutcome, total: int) -> None:
        self._board.finish(outcome.index, outcome.status, outcome.check, outcome.elapsed_s)
        self._inner.act_finished(outcome, total)
