"""How a fleet run shows itself: a Rich live view, or periodic log lines (``--headless``).

Both take ``FleetStatus`` snapshots from the runner's progress callback: what the vehicles
are doing (driving, charging, parked; per region), the rates (signals and frames per wall
second, the speed-up over real time), the edge side (batches sealed and published, buffer
backlog) and the attacks under way.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from drivetrain.sim.fleet.status import FleetStatus


def _n(value: float) -> str:
    return f"{value:,.0f}"


def status_line(status: FleetStatus, duration_s: float | None) -> str:
    """One log line: simulated time, activity, rates, edge counters."""
    total = f"/{duration_s:,.0f}" if duration_s is not None else ""
    regions = " ".join(f"{code}:{r.vehicles}" for code, r in status.regions.items())
    return (
        f"[fleet] t={status.sim_time_s:,.0f}{total} s  x{status.speedup:.1f}  "
        f"vehicles={status.vehicles} driving={status.driving} charging={status.charging} "
        f"parked={status.parked}  signals/s={_n(status.signals_per_s)} "
        f"frames/s={_n(status.frames_per_s)}  batches={status.batches_published:,} "
        f"backlog={status.buffer_backlog:,}  attacks={status.attacks_active}  "
        f"km={status.km_driven:,.1f}  regions {regions}"
    )


def status_panel(status: FleetStatus, duration_s: float | None, title: str) -> RenderableType:
    """The live view's panel for one snapshot."""
    head = Table.grid(padding=(0, 2))
    for _ in range(4):
        head.add_column()
    total = f" of {duration_s:,.0f}" if duration_s is not None else ""
    head.add_row(
        Text(f"simulated {status.sim_time_s:,.0f}{total} s", style="bold"),
        f"x{status.speedup:.2f} real time",
        f"wall {status.wall_s:,.1f} s",
        f"{status.km_driven:,.1f} km driven",
    )
    head.add_row(
        Text(f"driving {status.driving:,}", style="green"),
        Text(f"charging {status.charging:,}", style="cyan"),
        f"parked {status.parked:,}",
        Text(
            f"attacks active {status.attacks_active}", style="red" if status.attacks_active else ""
        ),
    )
    rates = Table(box=None, show_header=True, header_style="bold")
    for name in ("signals/s", "frames/s", "batches published", "buffer backlog", "failures"):
        rates.add_column(name, justify="right")
    rates.add_row(
        _n(status.signals_per_s),
        _n(status.frames_per_s),
        f"{status.batches_published:,}",
        f"{status.buffer_backlog:,}",
        f"{status.failures:,}",
    )
    regions = Table(box=None, show_header=True, header_style="bold")
    for name in ("region", "vehicles", "driving", "charging", "parked"):
        regions.add_column(name, justify="right" if name != "region" else "left")
    for code, counts in status.regions.items():
        regions.add_row(
            code,
            f"{counts.vehicles:,}",
            f"{counts.driving:,}",
            f"{counts.charging:,}",
            f"{counts.parked:,}",
        )
    return Panel(Group(head, Text(""), rates, Text(""), regions), title=title, title_align="left")


class LiveFleetView:
    """A Rich live panel redrawn from each status; use as a context manager around the run."""

    def __init__(
        self, console: Console, duration_s: float | None, title: str = "drivetrain sim fleet"
    ) -> None:
        self._console = console
        self._duration_s = duration_s
        self._title = title
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> Self:
        self._live.__enter__()
        return self

    def __call__(self, status: FleetStatus) -> None:
        self._live.update(status_panel(status, self._duration_s, self._title), refresh=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)


class HeadlessFleetLog:
    """Prints a status line at most every ``every_s`` wall seconds (and the last one)."""

    def __init__(
        self, emit: Callable[[str], None], duration_s: float | None, every_s: float = 5.0
    ) -> None:
        self._emit = emit
        self._duration_s = duration_s
        self._every_s = every_s
        self._last_wall = -float("inf")

    def __call__(self, status: FleetStatus) -> None:
        done = self._duration_s is not None and status.sim_time_s >= self._duration_s
        if done or status.wall_s - self._last_wall >= self._every_s:
            self._last_wall = status.wall_s
            self._emit(status_line(status, self._duration_s))
