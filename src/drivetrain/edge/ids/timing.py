"""Per-id timing: flooding and injection between periods, measured from the last *accepted*
frame.

Training learns each periodic id's period (median gap between its frames) and the shortest gap,
as a share of the period, that benign traffic ever showed. At run time a frame's gap is
measured from the last frame of its id the detector *accepted* — not from the previous frame —
so when an attacker slips a frame between two genuine ones, the injected frame is the early one
and the genuine frame after it is not blamed. Frames the payload detectors already flagged are
never accepted. The acceptance chain is sequential by nature; it is resolved with NumPy for
every id whose frames are all on time and walked in Python only for ids with an early frame.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.detectors import Arrays, Cell
from drivetrain.edge.ids.stream import BatchView, IdTable

_MIN_GAPS = 20
_MARGIN = 0.8  # an alert needs a gap under 80 % of the shortest benign one
_MAX_SURPRISE = 20.0


class TimingDetector:
    """Frames that come sooner after the last accepted frame of their id than benign traffic
    ever did; the score is ``log(shortest benign ratio / this ratio)``."""

    name: ClassVar[str] = "timing"
    floor: ClassVar[float] = 0.05

    def __init__(self) -> None:
        self.period = np.zeros(1)
        self.min_gap = np.zeros(1)  # seconds; 0 = not periodic enough to judge
        self.accepted_time = np.full(1, np.nan)

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        k = len(ids)
        gaps: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(k + 1)]
        for v in views:
            for r, rows in v.groups.items():
                if r < k and len(rows) > 1:
                    gaps[r].append(np.diff(v.time[rows]))
        self.period = np.zeros(k + 1)
        self.min_gap = np.zeros(k + 1)
        for r in range(k):
            if not gaps[r]:
                continue
            g = np.concatenate(gaps[r])
            if len(g) < _MIN_GAPS:
                continue
            period = float(np.median(g))
            if period <= 0:
                continue
            self.period[r] = period
            self.min_gap[r] = float(g.min()) * _MARGIN
        self.reset()

    def reset(self) -> None:
        self.accepted_time = np.full(len(self.period), np.nan)

    def score_accepted(
        self, view: BatchView, accepted: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float64]:
        """Raw scores of a batch; ``accepted`` marks frames the payload detectors let through.
        Updates the last accepted time of each id (call once per batch, in order)."""
        raw = np.zeros(len(view))
        for r, rows in view.groups.items():
            limit = self.min_gap[r] if r < len(self.min_gap) else 0.0
            times = view.time[rows]
            last = self.accepted_time[r] if r < len(self.accepted_time) else np.nan
            candidates = times[accepted[rows]]
            if limit <= 0:
                if len(candidates):
                    self.accepted_time[r] = candidates[-1]
                continue
            chain = self._chain(candidates, last, limit)
            if len(chain):
                self.accepted_time[r] = chain[-1]
            anchors = np.concatenate([[last], chain]) if not np.isnan(last) else chain
            if not len(anchors):
                continue
            pos = np.searchsorted(anchors, times, side="left") - 1
            has = pos >= 0
            gap = np.where(has, times - anchors[np.maximum(pos, 0)], np.inf)
            early = has & (gap < limit)
            if early.any():
                ratio = np.maximum(gap[early], 1e-9) / limit
                raw[rows[early]] = np.minimum(np.log(1.0 / ratio), _MAX_SURPRISE)
        return raw

    @staticmethod
    def _chain(
        times: npt.NDArray[np.float64], last: float, limit: float
    ) -> npt.NDArray[np.float64]:
        """The accepted subsequence: each frame at least ``limit`` after the last accepted."""
        if not len(times):
            return times
        gaps = np.diff(times, prepend=last if not np.isnan(last) else -np.inf)
        if (gaps >= limit).all():
            return times
        kept = []
        anchor = last if not np.isnan(last) else -np.inf
        for t in times.tolist():
            if t - anchor >= limit:
                kept.append(t)
                anchor = t
        return np.array(kept)

    def fired(self, view: BatchView, ids: IdTable, accepted: npt.NDArray[np.bool_]) -> set[Cell]:
        raw = self.score_accepted(view, accepted)
        rows = np.unique(view.row[raw > 0])
        return {(int(ids.keys[r]),) for r in rows.tolist() if r < len(ids)}

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for (key,) in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids):
                self.min_gap[row] = 0.0

    def state(self) -> Arrays:
        return {"period": self.period, "min_gap": self.min_gap}

    def load(self, arrays: Arrays) -> None:
        self.period = arrays["period"].astype(np.float64)
        self.min_gap = arrays["min_gap"].astype(np.float64)
        self.reset()
