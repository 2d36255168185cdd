"""``GET /v1/demo``: the acts of ``drivetrain demo`` as they happen, for the console.

The demo plays its acts in the process that serves the API (the embedded platform); it keeps
their progress on a :class:`DemoBoard` that the platform hangs on the app
(``app.state.demo_board``). The board belongs to the tenant of the bootstrap admin who runs
the demo: only that tenant's clients read it, any other tenant (and a deployment that runs no
demo) sees no demo. Nothing is stored: the board lives as long as the process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import require_scopes

router = APIRouter(tags=["demo"])

ActState = Literal["pending", "running", "passed", "failed", "skipped"]
DemoState = Literal["none", "running", "finished", "serving"]
#: The harness's verdicts and the state each shows as.
_STATE_OF_OUTCOME: dict[str, ActState] = {
    "passed": "passed", "failed": "failed", "error": "failed", "timeout": "failed",
    "skipped": "skipped",
}
#: Longest progress or result line kept, characters.
MAX_LINE = 500


@dataclass(frozen=True)
class DemoAct:
    """One act as the board shows it."""

    index: int
    name: str
    title: str
    state: ActState = "pending"
    outcome: str | None = None  # the harness's verdict: passed, failed, error, timeout, skipped
    line: str = ""  # its latest progress message while running, its one-line result after
    fraction: float | None = None
    budget_s: float | None = None
    elapsed_s: float | None = None


@dataclass(frozen=True)
class DemoSnapshot:
    """The board at one moment; ``version`` grows with every change."""

    tenant: str
    state: DemoState
    version: int
    started_at: datetime | None
    finished_at: datetime | None
    acts: tuple[DemoAct, ...]


class DemoBoard:
    """The demo's acts and their states, written by the demo's threads, read by the API."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._lock = threading.Lock()
        self._acts: list[DemoAct] = []
        self._state: DemoState = "none"
        self._version = 0
        self._started_at: datetime | None = None
        self._finished_at: datetime | None = None
        self._current: int | None = None

    def _change(self) -> None:
        self._version += 1

    def plan(self, acts: Sequence[tuple[str, str]]) -> None:
        """The acts about to play, as ``(name, title)`` in order; all pending."""
        with self._lock:
            self._acts = [DemoAct(i, name, title) for i, (name, title) in enumerate(acts, start=1)]
            self._state, self._started_at, self._finished_at = "running", datetime.now(UTC), None
            self._current = None
            self._change()

    def _set(self, index: int, **changes: object) -> None:
        if not 1 <= index <= len(self._acts):
            raise ValueError(f"act {index} is not on the board of {len(self._acts)} acts")
        self._acts[index - 1] = replace(self._acts[index - 1], **changes)  # type: ignore[arg-type]
        self._change()

    def start(self, index: int, budget_s: float) -> None:
        """Act ``index`` (from 1) starts with ``budget_s`` seconds."""
        with self._lock:
            self._set(index, state="running", budget_s=budget_s, line="starting")
            self._current = index

    def progress(self, message: str, fraction: float | None = None) -> None:
        """The running act's latest progress."""
        with self._lock:
            if self._current is not None:
                self._set(self._current, line=message[:MAX_LINE], fraction=fraction)

    def finish(self, index: int, outcome: str, result: str, elapsed_s: float) -> None:
        """Act ``index`` ended with the harness's ``outcome`` and its one-line ``result``."""
        state = _STATE_OF_OUTCOME.get(outcome)
        if state is None:
            raise ValueError(f"outcome {outcome!r} is not a harness verdict")
        with self._lock:
            self._set(index, state=state, outcome=outcome, line=result[:MAX_LINE],
                      elapsed_s=elapsed_s, fraction=1.0 if state == "passed" else None)
            if index == self._current:
                self._current = None
            if all(a.state not in ("pending", "running") for a in self._acts):
                self._state, self._finished_at = "finished", datetime.now(UTC)

    def serving(self) -> None:
        """The acts are over and the platform keeps running (``--serve``)."""
        with self._lock:
            self._state = "serving"
            self._change()

    def snapshot(self) -> DemoSnapshot:
        with self._lock:
            return DemoSnapshot(self.tenant, self._state, self._version, self._started_at,
                                self._finished_at, tuple(self._acts))


class DemoActOut(BaseModel):
    index: int = Field(description="Position in the scenario, from 1.")
    name: str
    title: str
    state: ActState
    outcome: str | None = Field(description="The harness's verdict once ended: passed, failed, "
                                "error, timeout or skipped.")
    line: str = Field(description="The latest progress while running; the one-line result after.")
    fraction: float | None = Field(description="Share of the act done, 0..1, when it says.")
    budget_s: float | None
    elapsed_s: float | None


class DemoOut(BaseModel):
    """The demo this platform plays: ``none`` where it plays none (for the caller's tenant)."""

    state: DemoState
    version: int = Field(description="Grows with every change; poll and compare.")
    started_at: datetime | None
    finished_at: datetime | None
    acts: list[DemoActOut]


def _board(request: Request) -> DemoBoard | None:
    board = getattr(request.app.state, "demo_board", None)
    return board if isinstance(board, DemoBoard) else None


@router.get("", response_model=DemoOut, summary="The demo's acts and their states, as they happen")
def read_demo(
    request: Request, principal: Annotated[Principal, require_scopes(Scope.FLEET_READ)]
) -> DemoOut:
    """Each act of ``drivetrain demo`` with its state (pending, running, passed, failed,
    skipped) and its latest line; only the tenant running the demo sees it."""
    board = _board(request)
    if board is None or board.tenant != principal.tenant:
        return DemoOut(state="none", version=0, started_at=None, finished_at=None, acts=[])
    snap = board.snapshot()
    return DemoOut(
        state=snap.state, version=snap.version, started_at=snap.started_at,
        finished_at=snap.finished_at,
        acts=[DemoActOut(index=a.index, name=a.name, title=a.title, state=a.state,
                         outcome=a.outcome, line=a.line, fraction=a.fraction,
                         budget_s=a.budget_s, elapsed_s=a.elapsed_s) for a in snap.acts],
    )  # fmt: skip
