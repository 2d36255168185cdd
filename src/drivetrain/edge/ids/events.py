"""Security events, as the vehicle reports them: flagged frames grouped into events with the
fields AUTOSAR's intrusion-detection reporting uses (IdsM/IdsR: event id, sensor, count, first
and last timestamp, context data), plus the score and the evidence (which frames, which rule).

Frames of one id flagged by one detector less than ``merge_s`` apart are one event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from drivetrain.core.can import FrameBatch
from drivetrain.edge.ids.model import IdsModel, ScoredFrames

#: Event ids per detector (the security event type of the AUTOSAR event).
EVENT_IDS = {
    "unknown_id": 0x1001,
    "byte_value": 0x1002,
    "constant_bit": 0x1003,
    "bit_flip": 0x1004,
    "counter": 0x1005,
    "cross_signal": 0x1006,
    "timing": 0x1007,
    "cross_value": 0x1008,
    "signal_range": 0x1009,
    "byte_range": 0x100A,
}
MAX_EVIDENCE_FRAMES = 4


@dataclass(frozen=True)
class SecurityEvent:
    """One security event of the in-vehicle detector."""

    event_id: int
    sensor: str  # the detector that raised it
    can_id: str
    count: int
    first_s: float
    last_s: float
    score: float
    evidence: tuple[str, ...]  # "t id#payload" of the first flagged frames

    @property
    def signature(self) -> str:
        """What the fleet correlates on: the rule and the id it fired on."""
        return f"{self.sensor}:{self.can_id}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = list(self.evidence)
        out["signature"] = self.signature
        return out


def events_from(
    model: IdsModel, frames: FrameBatch, scored: ScoredFrames, *, merge_s: float = 1.0
) -> list[SecurityEvent]:
    """The events of one scored batch (frames in time order)."""
    flagged = np.flatnonzero(scored.alert)
    events: list[SecurityEvent] = []
    names = model.detector_names
    keys = scored.row[flagged] * 64 + scored.detector[flagged]
    for key in np.unique(keys).tolist():
        rows = flagged[keys == key]
        times = frames.timestamp_s[rows]
        cuts = np.flatnonzero(np.diff(times) >= merge_s) + 1
        for part in np.split(rows, cuts):
            det = names[int(scored.detector[part[0]])]
            ident = int(frames.frame_id[part[0]])
            extended = bool(frames.is_extended[part[0]])
            evidence = tuple(
                f"{frames.timestamp_s[i]:.6f} {ident:X}#{bytes(frames.data[i, : frames.length[i]]).hex().upper()}"
                for i in part[:MAX_EVIDENCE_FRAMES]
            )
            events.append(
                SecurityEvent(
                    event_id=EVENT_IDS.get(det, 0x1000),
                    sensor=det,
                    can_id=f"0x{ident:08X}x" if extended else f"0x{ident:03X}",
                    count=len(part),
                    first_s=float(frames.timestamp_s[part[0]]),
                    last_s=float(frames.timestamp_s[part[-1]]),
                    score=float(scored.score[part].max()),
                    evidence=evidence,
                )
            )
    events.sort(key=lambda e: e.first_s)
    return events
