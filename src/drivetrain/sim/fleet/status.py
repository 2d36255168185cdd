"""What a fleet run reports: ``FleetStatus`` snapshots (per region too) and stage timings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class StageTimes:
    """Wall seconds spent per stage since the runner started."""

    world_s: float = 0.0
    synthesis_s: float = 0.0
    decode_s: float = 0.0
    agents_s: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "world_s": self.world_s,
            "synthesis_s": self.synthesis_s,
            "decode_s": self.decode_s,
            "agents_s": self.agents_s,
        }


@dataclass(frozen=True)
class RegionCounts:
    """Vehicles of one region and what they are doing."""

    vehicles: int
    driving: int
    charging: int
    parked: int


@dataclass(frozen=True)
class FleetStatus:
    """A snapshot of the run (see ``FleetRunner.status``)."""

    sim_time_s: float
    wall_s: float
    vehicles: int
    driving: int
    charging: int
    parked: int
    regions: Mapping[str, RegionCounts]
    frames: int
    decoded_frames: int
    unknown_frames: int
    decoded_values: int
    vss_samples: int
    signals: int
    batches_sealed: int
    batches_published: int
    buffer_backlog: int
    attacks_active: int
    failures: int
    km_driven: float

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall second so far."""
        return self.sim_time_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def signals_per_s(self) -> float:
        """Signals collected by the agents per wall second."""
        return self.signals / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        """CAN frames synthesized and decoded per wall second."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0
