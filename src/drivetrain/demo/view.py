"""How the demo shows itself: plain log lines (``--headless``), a Rich live view, the summary.

Both observers receive the harness's events; the live one redraws a panel several times a
second from a snapshot taken under a lock (events arrive on act threads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from drivetrain.demo.acts import Act, Figure
from drivetrain.demo.harness import ActOutcome, ActStatus, ScenarioReport

#: How each status reads in the log line and the table.
STATUS_WORD: dict[ActStatus, str] = {
    "passed": "ok",
    "failed": "FAILED",
    "error": "FAILED (error)",
    "timeout": "FAILED (timeout)",
    "skipped": "SKIPPED",
}
_STATUS_STYLE: dict[ActStatus, str] = {
    "passed": "green",
    "failed": "bold red",
    "error": "bold red",
    "timeout": "bold red",
    "skipped": "yellow",
}
#: Headless progress lines are printed at most this often, seconds.
HEADLESS_PROGRESS_EVERY_S = 1.0


def format_figure(value: Figure) -> str:
    """A figure as shown to people: thousands separated, floats to 3 significant digits+."""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_figures(figures: Mapping[str, Figure]) -> str:
    """``frames=12,400 frames/s=1.2e+06`` — key figures on one line."""
    return "  ".join(f"{k}={format_figure(v)}" for k, v in figures.items())


def act_line(outcome: ActOutcome, total: int) -> str:
    """The headless line for a finished act: ``[act 1/3] <title> … ok: <check> (1.2 s)``."""
    return (
        f"[act {outcome.index}/{total}] {outcome.act.title} … {STATUS_WORD[outcome.status]}: "
        f"{outcome.check} ({outcome.elapsed_s:.1f} s)"
    )


def summary_table(report: ScenarioReport) -> Table:
    """The final table: act, status, key figures, time."""
    verdict = "every act passed" if report.passed else "some acts FAILED"
    table = Table(
        title=f"Drivetrain demo — {verdict} in {report.elapsed_s:.1f} s", title_justify="left"
    )
    table.add_column("#", justify="right")
    table.add_column("act")
    table.add_column("status")
    table.add_column("key figures")
    table.add_column("time", justify="right")
    for o in report.outcomes:
        table.add_row(
            str(o.index),
            o.act.title,
            Text(STATUS_WORD[o.status], style=_STATUS_STYLE[o.status]),
            format_figures(o.figures) if o.figures else o.check,
            f"{o.elapsed_s:.1f} s",
        )
    return table


class HeadlessObserver:
    """Plain log lines, one per finished act, plus occasional progress lines."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._last_message = ""
        self._last_print = 0.0

    def act_started(self, index: int, total: int, act: Act, budget_s: float) -> None:
        line = f"[act {index}/{total}] {act.title} … started ({budget_s:.1f} s budget)"
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)

    def act_progress(
        self, fraction: float | None, message: str, figures: Mapping[str, Figure]
    ) -> None:
        now = time.monotonic()
        with self._lock:
            if message == self._last_message or now - self._last_print < HEADLESS_PROGRESS_EVERY_S:
                return
            self._last_message, self._last_print = message, now
        self._console.print(f"    {message}", markup=False, highlight=False, soft_wrap=True)

    def act_finished(self, outcome: ActOutcome, total: int) -> None:
        self._console.print(act_line(outcome, total), markup=False, highlight=False, soft_wrap=True)


@dataclass
class _LiveState:
    total: int = 0
    current: int = 0
    title: str = ""
    budget_s: float = 0.0
    started: float = 0.0
    fraction: float | None = None
    message: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    finished: list[ActOutcome] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)


class LiveObserver:
    """A Rich ``Live`` panel: every act with its status, the current act's progress and figures.

    Use as a context manager around ``run_scenario``; the refresh thread stops on exit.
    """

    def __init__(self, console: Console, acts: list[Act], header: str) -> None:
        self._console = console
        self._header = header
        self._lock = threading.Lock()
        self._state = _LiveState(total=len(acts), titles=[a.title for a in acts])
        self._live = Live(
            console=console, get_renderable=self._render, refresh_per_second=8, transient=False
        )

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    def act_started(self, index: int, total: int, act: Act, budget_s: float) -> None:
        with self._lock:
            s = self._state
            s.current, s.title, s.budget_s, s.started = index, act.title, budget_s, time.monotonic()
            s.fraction, s.message, s.figures = None, "starting", {}

    def act_progress(
        self, fraction: float | None, message: str, figures: Mapping[str, Figure]
    ) -> None:
        with self._lock:
            if fraction is not None:
                self._state.fraction = fraction
            self._state.message = message
            self._state.figures.update(figures)

    def act_finished(self, outcome: ActOutcome, total: int) -> None:
        with self._lock:
            self._state.finished.append(outcome)
            self._state.current = 0

    def _render(self) -> RenderableType:
        with self._lock:
            s = self._state
            finished = list(s.finished)
            current, title, budget, started = s.current, s.title, s.budget_s, s.started
            fraction, message, figures = s.fraction, s.message, dict(s.figures)
        acts = Table.grid(padding=(0, 2))
        for i, act_title in enumerate(s.titles, start=1):
            if i <= len(finished):
                o = finished[i - 1]
                mark = Text(STATUS_WORD[o.status], style=_STATUS_STYLE[o.status])
                acts.add_row(f"{i}.", act_title, mark, f"{o.elapsed_s:.1f} s")
            elif i == current:
                acts.add_row(
                    f"{i}.",
                    Text(act_title, style="bold"),
                    Text("running", style="cyan"),
                    f"{time.monotonic() - started:.1f} s",
                )
            else:
                acts.add_row(
                    f"{i}.", Text(act_title, style="dim"), Text("waiting", style="dim"), ""
                )
        parts: list[RenderableType] = [Text(self._header, style="dim"), acts]
        if current:
            elapsed = time.monotonic() - started
            shown = (
                fraction if fraction is not None else min(1.0, elapsed / budget if budget else 1.0)
            )
            parts.append(Text(f"\n{title} — {message}", style="bold"))
            parts.append(ProgressBar(total=1.0, completed=shown, width=50))
            if figures:
                parts.append(Text(format_figures(figures)))
        return Panel(Group(*parts), title="drivetrain demo", border_style="blue")
