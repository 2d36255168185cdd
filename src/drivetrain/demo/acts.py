"""What an act is, what it is given, and what it returns.

An act is one scene of the demo: it exercises a real capability of the platform against the
embedded platform, checks its own outcome, and reports a few figures. Capabilities add acts by
appending them to ``drivetrain.demo.scenario.SCENARIO``; the harness never changes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drivetrain.core.settings import Settings

if TYPE_CHECKING:
    from drivetrain.demo.platform import PlatformHandles

#: A figure shown in the view and the summary: a count, a rate, or a short text.
Figure = float | int | str

#: The harness's progress sink: (fraction done in [0, 1] or None, message, figures so far).
ProgressSink = Callable[[float | None, str, Mapping[str, Figure]], None]


class ActTimeoutError(TimeoutError):
    """An act ran past its time budget or was cancelled by the harness.

    Control flow between the harness and an act (``DemoContext.check_time`` raises it, the
    harness catches it), never seen by users of the platform — hence a ``TimeoutError`` and not
    part of the ``DrivetrainError`` tree that the API maps to HTTP statuses.
    """


@dataclass(frozen=True)
class ActResult:
    """An act's own verdict.

    Attributes:
        passed: True when the act's check held.
        check: what was verified, in words a reader understands ("12 400 frames decoded,
            values within DBC resolution"), or why it failed.
        figures: key figures (counts, rates with units in the name, short texts).
    """

    passed: bool
    check: str
    figures: Mapping[str, Figure] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.check.strip():
            raise ValueError("ActResult.check must say what was verified")
        for key, value in self.figures.items():
            if not isinstance(value, (int, float, str)):
                raise TypeError(
                    f"figure {key!r} must be int, float or str, got {type(value).__name__}"
                )


@dataclass(frozen=True)
class Act:
    """One scene of the demo.

    Attributes:
        name: short stable id (``can-roundtrip``), also salts the act's random generator.
        title: what the audience sees (``CAN bus to VSS signals``).
        run: does the work and checks it; gets a ``DemoContext``, returns an ``ActResult``.
            It must finish before ``context.deadline`` (poll ``context.check_time()``).
        weight: share of the demo's time budget relative to the other acts (default 1).
        min_budget_s: the least time the act needs to show anything real (a car must drive
            and report, a payment must lapse past its grace); a shorter demo still gives it
            this much, so a short ``--duration`` runs longer rather than failing the act.
    """

    name: str
    title: str
    run: Callable[[DemoContext], ActResult]
    weight: float = 1.0
    min_budget_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name or not self.title:
            raise ValueError(f"an act needs a name and a title, got {self.name!r}/{self.title!r}")
        if self.weight <= 0:
            raise ValueError(f"act {self.name!r}: weight must be > 0, got {self.weight}")
        if self.min_budget_s < 0:
            raise ValueError(f"act {self.name!r}: min_budget_s must be >= 0, got "
                             f"{self.min_budget_s}")


@dataclass(frozen=True)
class DemoContext:
    """Everything an act may use. Built by the harness for each act.

    Attributes:
        settings: the demo's settings (data under the demo's own data dir).
        platform: the embedded platform's handles (database, transport, API URL, admin token).
        seed: the scenario seed; the same seed gives the same data.
        vehicles: how many vehicles acts should simulate (>= 1).
        budget_s: seconds this act may take.
        deadline: ``time.monotonic()`` value by which the act must have returned.
        progress_sink: where ``report`` sends progress (the live view or the log).
        cancelled: set by the harness when the act overran its budget.
    """

    settings: Settings
    platform: PlatformHandles
    seed: int
    vehicles: int
    budget_s: float
    deadline: float
    progress_sink: ProgressSink
    cancelled: threading.Event

    @property
    def data_dir(self) -> Path:
        """The demo's data directory (never a user's real ``./.drivetrain``)."""
        return self.settings.data_dir

    def remaining_s(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self.deadline - time.monotonic()

    def check_time(self) -> None:
        """Raise ``ActTimeoutError`` when the budget is spent or the harness cancelled the act."""
        if self.cancelled.is_set():
            raise ActTimeoutError("cancelled by the harness after its time budget ran out")
        if self.remaining_s() < 0:
            raise ActTimeoutError(f"time budget of {self.budget_s:.1f} s spent")

    def rng(self, salt: str) -> np.random.Generator:
        """A random generator determined by the seed and ``salt`` (e.g. the act's name)."""
        digest = hashlib.sha256(f"{self.seed}:{salt}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def report(
        self,
        message: str,
        *,
        fraction: float | None = None,
        figures: Mapping[str, Figure] | None = None,
    ) -> None:
        """Show progress: a short message, optionally the fraction done and figures so far."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, fraction))
        self.progress_sink(fraction, message, dict(figures or {}))
