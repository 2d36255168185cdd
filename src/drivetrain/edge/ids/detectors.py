"""The frame-level detectors: each a small class behind one interface.

Every detector learns from benign frames only. ``fit`` takes the indexed benign segments;
``score`` gives each frame of a batch a raw surprise (0 = nothing unusual, larger = less
likely under benign traffic). ``fired`` names the *cells* (an id's byte, an id's bit, a rule)
that raised a score on a batch; training runs the detectors fitted on some benign segments over
the others and then stops trusting every cell that fired on benign traffic (:meth:`ban`) — the
held-out calibration that keeps false alerts rare on a drive the model has never seen.

Arrays live in ``state()``/``load()`` so a model file holds numbers only (no pickles).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.stream import (
    LENGTH_COLUMN,
    PAYLOAD_COLUMNS,
    BatchView,
    IdTable,
    drive_reference,
    per_drive_bytes,
)

Cell = tuple[int, ...]
#: When a detector runs: on each frame alone, against partner ids, or against the previous
#: accepted frame of the same id (after the others decided which frames are accepted).
Stage = Literal["frame", "partners", "sequence"]
Arrays = dict[str, npt.NDArray[np.generic]]
_Z = np.zeros(0)
#: Units a measured byte (:mod:`drivetrain.edge.ids.ordinal`) moves per change, on nearly all.
MEASURED_STEP = 2


class Detector(Protocol):
    """One detector of the pipeline."""

    name: ClassVar[str]
    stage: ClassVar[Stage]
    #: The raw score above which a frame is anomalous, before held-out calibration.
    floor: ClassVar[float]

    def fit(self, ids: IdTable, views: list[BatchView]) -> None: ...

    def score(self, view: BatchView) -> npt.NDArray[np.float64]: ...

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]: ...

    def ban(self, cells: set[Cell], ids: IdTable) -> None: ...

    def state(self) -> Arrays: ...

    def load(self, arrays: Arrays) -> None: ...


def _stack(
    views: list[BatchView],
) -> tuple[
    npt.NDArray[np.intp], npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]
]:
    rows = np.concatenate([v.row for v in views]) if views else np.zeros(0, np.intp)
    payload = np.concatenate([v.payload for v in views]) if views else np.zeros((0, 9), np.uint8)
    prev = np.concatenate([v.prev_payload for v in views]) if views else np.zeros((0, 9), np.uint8)
    has_prev = (
        np.concatenate([~np.isnan(v.prev_time) for v in views]) if views else np.zeros(0, bool)
    )
    return rows, payload, prev, has_prev


def _mask_or_none(arrays: Arrays, name: str, rows: int) -> npt.NDArray[np.bool_]:
    """A model file's per (id, data byte) mask (all False in files written before it was
    learned)."""
    if name not in arrays:
        return np.zeros((rows, 8), np.bool_)
    out: npt.NDArray[np.bool_] = arrays[name].astype(np.bool_)
    if out.shape != (rows, 8):
        raise ValueError(f"{name} has shape {out.shape}, expected {(rows, 8)}")
    return out


def _per_drive_or_none(arrays: Arrays, rows: int) -> npt.NDArray[np.bool_]:
    """A model file's per-drive bytes (none in files written before they were learned)."""
    return _mask_or_none(arrays, "per_drive", rows)


class UnknownIdDetector:
    """An id the benign traffic never carried (fuzzing, a foreign ECU, a diagnostic tool)."""

    name: ClassVar[str] = "unknown_id"
    stage: ClassVar[Stage] = "frame"
    # An id the vehicle never sent is the strongest evidence there is: it ranks above every
    # payload novelty (normalised score 10).
    floor: ClassVar[float] = 0.1

    def __init__(self) -> None:
        self.known_rows = 0

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        self.known_rows = len(ids)

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        return (view.row >= self.known_rows).astype(np.float64)

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        return set()  # a held-out id is known once the model trains on every segment

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        return None

    def state(self) -> Arrays:
        return {"known_rows": np.array([self.known_rows])}

    def load(self, arrays: Arrays) -> None:
        self.known_rows = int(arrays["known_rows"][0])


def _near_range(
    views: list[BatchView], k: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per (id, data byte, value): inside the benign range, widened by its margin, of a byte
    that moves like a measurement — judged by ``byte_range``, not as a novelty; and per (id,
    data byte) whether it moves like one."""
    from drivetrain.edge.ids.ordinal import base_margin, ordinal_ranges

    ordinal, lo, hi = ordinal_ranges(views, k)
    margin = base_margin(lo, hi)
    values = np.arange(256)
    near = (values >= (lo - margin)[..., None]) & (values <= (hi + margin)[..., None])
    out: npt.NDArray[np.bool_] = near & ordinal[..., None]
    return out, ordinal


class ByteValueDetector:
    """A payload byte value (or frame length) an id never sent. Weight per (id, byte): the
    Good-Turing odds against a new value, ``log((n + 1) / (singletons + 1))``; a byte that
    showed new values on held-out benign traffic is not trusted. A byte each drive sets once
    (:func:`per_drive_bytes`) may also hold the value the id's first accepted frame of the
    stream set. A measured byte (``byte_range``) at a value at most :data:`MEASURED_STEP` units
    from the id's previous frame on the bus is a measurement drifting on, not a novelty; a jump
    to a new value still is, and ``byte_range`` still judges how far out the drift went.
    Held-out calibration (``fired``) judges without either exception, so it distrusts no fewer
    cells than before."""

    name: ClassVar[str] = "byte_value"
    stage: ClassVar[Stage] = "frame"
    floor: ClassVar[float] = 3.0

    def __init__(self) -> None:
        self.seen = np.zeros((1, PAYLOAD_COLUMNS, 256), np.bool_)
        self.weight = np.zeros((1, PAYLOAD_COLUMNS))
        self.per_drive = np.zeros((1, 8), np.bool_)
        self.measured = np.zeros((1, 8), np.bool_)

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        rows, payload, _, _ = _stack(views)
        k = len(ids)
        counts = np.zeros((k + 1, PAYLOAD_COLUMNS, 256), np.int64)
        for c in range(PAYLOAD_COLUMNS):
            np.add.at(counts[:, c, :], (rows, payload[:, c]), 1)
        counts[k] = 0
        n = counts[:, 0, :].sum(axis=1)
        singletons = (counts == 1).sum(axis=2)
        self.seen = counts > 0
        near, self.measured = _near_range(views, k)
        self.seen[:, :LENGTH_COLUMN] |= near
        self.weight = np.log((n[:, None] + 1.0) / (singletons + 1.0))
        self.weight[k] = 0.0
        self.per_drive = per_drive_bytes(views, k)

    def _novel(self, view: BatchView) -> npt.NDArray[np.bool_]:
        cols = np.arange(PAYLOAD_COLUMNS)
        novel: npt.NDArray[np.bool_] = ~self.seen[view.row[:, None], cols[None, :], view.payload]
        return novel

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        novel = self._novel(view)
        own = self.per_drive[view.row]
        if own.any():
            # the value this drive set for a per-drive byte is no novelty
            novel[:, :8] &= ~(own & (view.payload[:, :8] == drive_reference(view)[:, :8]))
        measured = self.measured[view.row] & view.has_last_any[:, None]
        if measured.any():
            # a measured byte a small step from the id's previous frame drifts, it does not jump
            step = np.abs(view.payload[:, :8].astype(np.int16) - view.last_any[:, :8])
            novel[:, :8] &= ~(measured & (step <= MEASURED_STEP))
        weighted = novel * self.weight[view.row]
        out: npt.NDArray[np.float64] = weighted.max(axis=1) if len(view) else np.zeros(0)
        return out

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        hit = self._novel(view) & (self.weight[view.row] > 0)
        r, c = np.nonzero(hit)
        return {
            (int(ids.keys[row]), int(col))
            for row, col in set(zip(view.row[r].tolist(), c.tolist(), strict=True))
            if row < len(ids)
        }

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for key, col in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids):
                self.weight[row, col] = 0.0

    def state(self) -> Arrays:
        return {
            "seen": np.packbits(self.seen, axis=2),
            "weight": self.weight,
            "per_drive": self.per_drive,
            "measured": self.measured,
        }

    def load(self, arrays: Arrays) -> None:
        self.seen = np.unpackbits(arrays["seen"].astype(np.uint8), axis=2).astype(np.bool_)
        self.weight = arrays["weight"].astype(np.float64)
        self.per_drive = _per_drive_or_none(arrays, len(self.weight))
        self.measured = _mask_or_none(arrays, "measured", len(self.weight))


class ConstantBitDetector:
    """A payload bit at a value it never had in benign traffic — a constant bit set, or a bit
    of a field pushed past anything the vehicle ever sent (weight ``log(n + 1)``). In a byte
    each drive sets once (:func:`per_drive_bytes`), the value the id's first accepted frame of the
    stream set is no novelty (calibration's ``fired`` judges without it)."""

    name: ClassVar[str] = "constant_bit"
    stage: ClassVar[Stage] = "frame"
    floor: ClassVar[float] = 3.0

    def __init__(self) -> None:
        self.allowed_one = np.zeros((1, 64), np.bool_)
        self.allowed_zero = np.zeros((1, 64), np.bool_)
        self.weight = np.zeros((1, 64))
        self.per_drive = np.zeros((1, 8), np.bool_)

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        rows, payload, _, _ = _stack(views)
        k = len(ids)
        bits = np.unpackbits(payload[:, :8], axis=1).astype(np.int64)
        ones = np.zeros((k + 1, 64), np.int64)
        np.add.at(ones, rows, bits)
        n = np.bincount(rows, minlength=k + 1)
        self.allowed_one = ones > 0
        self.allowed_zero = ones < n[:, None]
        self.weight = np.repeat(np.log(n + 1.0)[:, None], 64, axis=1)
        self.allowed_one[k] = self.allowed_zero[k] = True
        self.weight[k] = 0.0
        self.per_drive = per_drive_bytes(views, k)

    def _hits(
        self, view: BatchView, bits: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.bool_]:
        if bits is None:
            bits = np.unpackbits(view.payload[:, :8], axis=1).astype(np.bool_)
        r = view.row
        hits: npt.NDArray[np.bool_] = np.where(bits, ~self.allowed_one[r], ~self.allowed_zero[r])
        return hits

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        if not len(view):
            return np.zeros(0)
        bits = np.unpackbits(view.payload[:, :8], axis=1).astype(np.bool_)
        hits = self._hits(view, bits)
        own = self.per_drive[view.row]
        if own.any():
            # a per-drive byte at the value this drive set is no novelty (another value is
            # judged bit by bit as before)
            same = own & (view.payload[:, :8] == drive_reference(view)[:, :8])
            hits &= ~np.repeat(same, 8, axis=1)
        # a bit at a new value is one event: scored on the frame that set it, not on every
        # frame after it that keeps it (the id's previous frame, accepted or not, had it too)
        last = np.unpackbits(view.last_any[:, :8], axis=1).astype(np.bool_)
        kept = last == bits
        hits &= ~(kept & view.has_last_any[:, None])
        out: npt.NDArray[np.float64] = (hits * self.weight[view.row]).max(axis=1)
        return out

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        hit = self._hits(view) & (self.weight[view.row] > 0)
        r, c = np.nonzero(hit)
        return {
            (int(ids.keys[row]), int(b))
            for row, b in set(zip(view.row[r].tolist(), c.tolist(), strict=True))
            if row < len(ids)
        }

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for key, bit in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids):
                self.weight[row, bit] = 0.0

    def state(self) -> Arrays:
        return {
            "one": self.allowed_one,
            "zero": self.allowed_zero,
            "weight": self.weight,
            "per_drive": self.per_drive,
        }

    def load(self, arrays: Arrays) -> None:
        self.allowed_one = arrays["one"].astype(np.bool_)
        self.allowed_zero = arrays["zero"].astype(np.bool_)
        self.weight = arrays["weight"].astype(np.float64)
        self.per_drive = _per_drive_or_none(arrays, len(self.weight))


class BitFlipDetector:
    """A bit that flips between consecutive frames of an id far more rarely in benign traffic:
    surprise ``log((transitions + 1) / (flips + 0.5))``, the largest over the flipped bits."""

    name: ClassVar[str] = "bit_flip"
    stage: ClassVar[Stage] = "sequence"
    floor: ClassVar[float] = 6.0

    def __init__(self) -> None:
        self.surprise = np.zeros((1, 64))

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        rows, payload, prev, has_prev = _stack(views)
        k = len(ids)
        flips = np.unpackbits((payload[:, :8] ^ prev[:, :8])[has_prev], axis=1).astype(np.int64)
        counts = np.zeros((k + 1, 64), np.int64)
        np.add.at(counts, rows[has_prev], flips)
        transitions = np.bincount(rows[has_prev], minlength=k + 1)
        self.surprise = np.log((transitions[:, None] + 1.0) / (counts + 0.5))
        self.surprise[k] = 0.0

    def _flips(self, view: BatchView) -> npt.NDArray[np.bool_]:
        flips = np.unpackbits(view.payload[:, :8] ^ view.prev_payload[:, :8], axis=1).astype(
            np.bool_
        )
        flips[np.isnan(view.prev_time)] = False
        return flips

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        if not len(view):
            return np.zeros(0)
        out: npt.NDArray[np.float64] = (self._flips(view) * self.surprise[view.row]).max(axis=1)
        return out

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        hit = self._flips(view) & (self.surprise[view.row] > self.floor)
        r, c = np.nonzero(hit)
        return {
            (int(ids.keys[row]), int(b))
            for row, b in set(zip(view.row[r].tolist(), c.tolist(), strict=True))
            if row < len(ids)
        }

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for key, bit in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids):
                self.surprise[row, bit] = 0.0

    def state(self) -> Arrays:
        return {"surprise": self.surprise}

    def load(self, arrays: Arrays) -> None:
        self.surprise = arrays["surprise"].astype(np.float64)


class CounterDetector:
    """A rolling counter found in benign traffic (a bit field of one byte that steps by the same
    amount modulo its range on every frame of an id) that skips, repeats or jumps back —
    replays, and injections that do not continue the sequence. Needs no DBC."""

    name: ClassVar[str] = "counter"
    stage: ClassVar[Stage] = "sequence"
    floor: ClassVar[float] = 0.5
    _MIN_TRANSITIONS = 50

    def __init__(self) -> None:
        # per id row: byte column, shift, width, step; width 0 = no counter
        self.fields = np.zeros((1, 4), np.int64)

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        rows, payload, prev, has_prev = _stack(views)
        k = len(ids)
        self.fields = np.zeros((k + 1, 4), np.int64)
        rows, payload, prev = rows[has_prev], payload[has_prev], prev[has_prev]
        order = np.argsort(rows, kind="stable")
        rows, payload, prev = rows[order], payload[order], prev[order]
        bounds = np.searchsorted(rows, np.arange(k + 2))
        for r in range(k):
            a, b = bounds[r], bounds[r + 1]
            if b - a < self._MIN_TRANSITIONS:
                continue
            best = self._find(payload[a:b], prev[a:b])
            if best is not None:
                self.fields[r] = best

    @staticmethod
    def _find(
        cur: npt.NDArray[np.uint8], prev: npt.NDArray[np.uint8]
    ) -> tuple[int, int, int, int] | None:
        best: tuple[int, int, int, int] | None = None
        for col in range(8):
            c, p = cur[:, col].astype(np.int64), prev[:, col].astype(np.int64)
            for width in range(8, 1, -1):
                for shift in range(9 - width):
                    mask = (1 << width) - 1
                    step = (((c >> shift) & mask) - ((p >> shift) & mask)) % (mask + 1)
                    if step[0] == 0 or not (step == step[0]).all():
                        continue
                    if best is None or width > best[2]:
                        best = (col, shift, width, int(step[0]))
                    break
        return best

    def _broken(self, view: BatchView) -> npt.NDArray[np.bool_]:
        f = self.fields[view.row]
        width = f[:, 2]
        mask = (np.int64(1) << width) - 1
        col = f[:, 0]
        idx = np.arange(len(view))
        c = (view.payload[idx, col].astype(np.int64) >> f[:, 1]) & mask
        p = (view.prev_payload[idx, col].astype(np.int64) >> f[:, 1]) & mask
        step = (c - p) % (mask + 1)
        # the previous *accepted* frame may lie a few frames back when some were rejected
        expected = f[:, 3]
        on_time = (step == expected % (mask + 1)) | (step == (2 * expected) % (mask + 1))
        on_time |= step == (3 * expected) % (mask + 1)
        broken: npt.NDArray[np.bool_] = (width > 0) & ~np.isnan(view.prev_time) & ~on_time
        return broken

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        return self._broken(view).astype(np.float64)

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        rows = np.unique(view.row[self._broken(view)])
        return {(int(ids.keys[r]),) for r in rows.tolist() if r < len(ids)}

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        for (key,) in cells:
            row = int(ids.rows(np.array([key]))[0])
            if row < len(ids):
                self.fields[row] = 0

    def state(self) -> Arrays:
        return {"fields": self.fields}

    def load(self, arrays: Arrays) -> None:
        self.fields = arrays["fields"].astype(np.int64)


def payload_detectors() -> list[Detector]:
    """The payload-level detectors every model runs (no DBC needed)."""
    return [
        UnknownIdDetector(),
        ByteValueDetector(),
        ConstantBitDetector(),
        BitFlipDetector(),
        CounterDetector(),
    ]


__all__ = [
    "LENGTH_COLUMN",
    "Arrays",
    "BitFlipDetector",
    "ByteValueDetector",
    "Cell",
    "ConstantBitDetector",
    "CounterDetector",
    "Detector",
    "UnknownIdDetector",
    "payload_detectors",
]
