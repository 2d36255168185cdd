"""How the fleet runner runs: ``RunnerOptions``, and the ``FrameTamper`` plug-in point through
which attacks reach the buses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import SimulationConfigError

#: The fleet's store-and-forward database under ``RunnerOptions.buffer_dir``.
BUFFER_FILE: Final = "fleet-buffer.sqlite"
BufferKind = Literal["sqlite", "memory"]


@dataclass(frozen=True)
class RunnerOptions:
    """How the runner drives the fleet.

    Attributes:
        step_s: simulated seconds per step (the physics step and the CAN window).
        feeder_interval_s: the CAN feeder's heartbeat (0 forwards every decoded value).
        agent_tick_s: how often each agent ticks, simulated seconds (a multiple of ``step_s``):
            it then gets every sample decoded since its last tick, so campaign sampling and
            triggers see the same samples whatever the tick; only downlink handling and
            sealing wait up to one tick.
        batch_interval_s: how often each agent seals its telemetry batch, simulated seconds.
        ground_truth_every_s: how often component health and RUL are sampled.
        buffer: ``memory`` (the default) or ``sqlite`` (every vehicle's store-and-forward buffer in one SQLite file under
            ``buffer_dir``, see ``buffer.FleetBufferStore``).
        buffer_dir: where the SQLite buffer goes (required for ``sqlite``).
        buffer_max_bytes: each vehicle's buffer bound.

    Raises:
        SimulationConfigError: a value out of range (named).
    """

    step_s: float = 1.0
    feeder_interval_s: float = 1.0
    agent_tick_s: float = 5.0
    batch_interval_s: float = 10.0
    ground_truth_every_s: float = 60.0
    buffer: BufferKind = "memory"
    buffer_dir: Path | None = None
    buffer_max_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.step_s <= 10:
            raise SimulationConfigError(f"step_s {self.step_s!r}; expected (0, 10] seconds")
        for name in ("feeder_interval_s", "batch_interval_s", "ground_truth_every_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SimulationConfigError(f"{name} {value!r}; expected seconds >= 0")
        ratio = self.agent_tick_s / self.step_s
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-9):
            raise SimulationConfigError(
                f"agent_tick_s {self.agent_tick_s!r}; expected a whole multiple of step_s {self.step_s!r}"
            )
        if self.buffer not in ("sqlite", "memory"):
            raise SimulationConfigError(f"buffer {self.buffer!r}; expected 'sqlite' or 'memory'")
        if self.buffer == "sqlite" and self.buffer_dir is None:
            raise SimulationConfigError("buffer 'sqlite' needs buffer_dir (where the files go)")


class FrameTamper(Protocol):
    """Alters the frames of vehicles on their buses (attack injection, see ``attacks``)."""

    def vehicles_in(self, start_s: float, end_s: float) -> frozenset[int]:
        """Fleet indices of the vehicles whose frames change in ``[start_s, end_s)``."""
        ...

    def apply(self, vehicle: int, frames: FrameBatch, start_s: float, end_s: float) -> FrameBatch:
        """Vehicle ``vehicle``'s frames of the window, altered."""
        ...

    def active(self, start_s: float, end_s: float) -> int:
        """How many attacks are under way in ``[start_s, end_s)``."""
        ...
