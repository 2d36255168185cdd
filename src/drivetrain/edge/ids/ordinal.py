"""Payload bytes that carry a measured quantity, and how far their values may wander.

A byte that moves like a measurement (a temperature, a level) steps by a few units at most on
nearly every change. Its benign values are a range, not a set: one unit past the warmest drive
seen is no intrusion, a value far outside is (a coolant temperature forged to its maximum).
:func:`ordinal_ranges` finds such bytes per id and their benign range; :class:`ByteRangeDetector`
flags a value further outside than a margin, and held-out calibration *widens* that margin to
twice the furthest a held-out benign drive went, instead of giving the byte up.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.detectors import MEASURED_STEP, Arrays, Cell, Stage
from drivetrain.edge.ids.stream import BatchView, IdTable

_STEP = MEASURED_STEP  # units a measured byte moves per change ...
_SHARE = 0.99  # ... on this share of its changes
_MIN_CHANGES = 5
_WIDEN = 2.0  # calibrated margin: this many times the furthest held-out benign excess


def ordinal_ranges(
    views: list[BatchView], k: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per (id row, data byte): whether the byte moves like a measurement, and its benign
    lowest and highest value (``(k + 1, 8)`` each; row ``k``, unknown ids, is never ordinal)."""
    ordinal = np.zeros((k + 1, 8), np.bool_)
    lo = np.zeros((k + 1, 8), np.int64)
    hi = np.zeros((k + 1, 8), np.int64)
    if not views:
        return ordinal, lo, hi
    rows = np.concatenate([v.row for v in views])
    payload = np.concatenate([v.payload[:, :8] for v in views])
    prev = np.concatenate([v.prev_payload[:, :8] for v in views])
    has_prev = np.concatenate([~np.isnan(v.prev_time) for v in views])
    lo[:] = 255
    np.minimum.at(lo, rows, payload)
    np.maximum.at(hi, rows, payload)
    step = np.abs(payload[has_prev].astype(np.int16) - prev[has_prev].astype(np.int16))
    changed = step > 0
    n_changed = np.zeros((k + 1, 8), np.int64)
    n_small = np.zeros((k + 1, 8), np.int64)
    np.add.at(n_changed, rows[has_prev], changed)
    np.add.at(n_small, rows[has_prev], changed & (step <= _STEP))
    ordinal = (n_changed >= _MIN_CHANGES) & (n_small >= _SHARE * n_changed)
    ordinal[k] = False
    return ordinal, lo, hi


def base_margin(lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """One unit plus 5 % of the benign span, as for decoded signals."""
    out: npt.NDArray[np.float64] = 1.0 + np.floor(0.05 * np.maximum(hi - lo, 0))
    return out


class ByteRangeDetector:
    """A measured byte (see :func:`ordinal_ranges`) further outside its benign range than its
    margin; score ``excess / margin``. Calibration widens the margin of a byte that a held-out
    benign drive took outside the range (to twice that excess) rather than dropping it."""

    name: ClassVar[str] = "byte_range"
    stage: ClassVar[Stage] = "frame"
    floor: ClassVar[float] = 1.0

    def __init__(self) -> None:
        self.lo = np.zeros((1, 8), np.int64)
        self.hi = np.zeros((1, 8), np.int64)
        self.margin = np.zeros((1, 8))  # 0: not a measured byte

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        ordinal, self.lo, self.hi = ordinal_ranges(views, len(ids))
        self.margin = np.where(ordinal, base_margin(self.lo, self.hi), 0.0)

    def _excess(self, view: BatchView) -> npt.NDArray[np.float64]:
        """Per frame and byte, units beyond the range (0 inside, and for other bytes)."""
        v = view.payload[:, :8].astype(np.int64)
        r = view.row
        beyond = np.maximum(self.lo[r] - v, v - self.hi[r])
        out: npt.NDArray[np.float64] = np.where(self.margin[r] > 0, np.maximum(beyond, 0), 0.0)
        return out

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        if not len(view):
            return np.zeros(0)
        margin = np.maximum(self.margin[view.row], 1.0)
        out: npt.NDArray[np.float64] = (self._excess(view) / margin).max(axis=1)
        return out

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        """Cells ``(id, byte, excess)``: every byte a benign frame took beyond the range."""
        excess = self._excess(view)
        r, c = np.nonzero(excess > 0)
        return {
            (int(ids.keys[row]), int(col), int(e))
            for row, col, e in set(
                zip(view.row[r].tolist(), c.tolist(), excess[r, c].tolist(), strict=True)
            )
            if row < len(ids)
        }

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for key, col, excess in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids) and self.margin[row, col] > 0:
                self.margin[row, col] = max(self.margin[row, col], _WIDEN * excess)

    def state(self) -> Arrays:
        return {"lo": self.lo, "hi": self.hi, "margin": self.margin}

    def load(self, arrays: Arrays) -> None:
        self.lo = arrays["lo"].astype(np.int64).reshape(-1, 8)
        self.hi = arrays["hi"].astype(np.int64).reshape(-1, 8)
        self.margin = arrays["margin"].astype(np.float64).reshape(-1, 8)
        if not (self.lo.shape == self.hi.shape == self.margin.shape):
            raise ValueError("byte_range arrays disagree in shape")
