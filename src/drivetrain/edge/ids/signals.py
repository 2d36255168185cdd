"""Range and rate checks on DBC-decoded signal values (active only when the model has a DBC).

When the vehicle's DBC is known, each frame's signals are decoded with the project's vectorised
decoder (:class:`drivetrain.core.can.BatchDecoder`) and checked, per signal, against what benign
traffic showed:

- **range**: the benign minimum and maximum, widened by a small margin (``_MARGIN`` of the span
  plus one step of the signal's scale), and the DBC's own declared ``[min|max]`` where it
  declares one that the benign traffic respects (opendbc files often declare ``[0|0]``);
- **rate**: the change per second from the previous *accepted* frame of the same id, against a
  robust maximum learned from benign traffic (the ``_RATE_QUANTILE`` quantile of the benign
  rates, times ``_RATE_HEADROOM``). A signal that never changed on benign traffic has no rate
  limit: the range check already covers it.

A frame scores its worst signal: ``1 + excess / span`` outside the range (at least 2 outside the
DBC's declared range), ``rate / limit`` for a rate. The floor is 1, so the operating threshold
is the learned limit itself; held-out calibration (see :mod:`.model`) then stops trusting every
(signal, check) cell that fired on a benign segment left out of training.

The model file holds the DBC (as the text :func:`drivetrain.core.can.dump_dbc` writes) and the
learned limits per (message, signal), so it scores without the original DBC file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from cantools.database import Database

from drivetrain.core.can import BatchDecoder, FrameBatch, dump_dbc, load_dbc
from drivetrain.edge.ids.detectors import Arrays, Cell, Stage
from drivetrain.edge.ids.stream import LENGTH_COLUMN, BatchView, IdTable, relink

_MARGIN = 0.05  # of the benign span, on each side of the learned range
_RATE_QUANTILE = 0.999
_RATE_HEADROOM = 2.0
_MIN_DT_S = 1e-3
_MAX_PASSES = 32  # re-linking passes per batch after forged frames  # two frames of one id closer than this are compared as 1 ms apart
_RANGE, _RATE, _DECLARED = 0, 1, 2
_Positions = npt.NDArray[np.intp]
_Floats = npt.NDArray[np.float64]
#: per decoded value: frame position, slot, value, rate of change per second
_PerValue = tuple[_Positions, _Positions, _Floats, _Floats]


class SignalRangeRateDetector:
    """Decoded signal values outside their learned (or declared) range, or changing faster
    than benign traffic ever did."""

    name: ClassVar[str] = "signal_range"
    # runs after the frame-level detectors so the rate compares with the previous *accepted*
    # frame of the id
    stage: ClassVar[Stage] = "sequence"
    floor: ClassVar[float] = 1.0

    def __init__(self, database: Database | None = None) -> None:
        self._decoder: BatchDecoder | None = None
        self._dbc_text = b""
        self.keys = np.zeros(0, np.int64)  # ids of the model's id table (row -> key)
        if database is not None:
            self._use(database)

    # --- the DBC ----------------------------------------------------------------------------

    def _use(self, database: Database, text: bytes | None = None) -> None:
        decoder = BatchDecoder(database)
        self._decoder = decoder
        if text is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.dbc"
                dump_dbc(database, path)
                text = path.read_bytes()
        self._dbc_text = text
        # slots: every (message, signal) of the DBC, in decoder order
        slots: list[tuple[str, str]] = []
        self._slot_table = np.full(
            (len(decoder.message_names), max(1, len(decoder.signal_names))), -1, np.intp
        )
        signal_ids = {s: i for i, s in enumerate(decoder.signal_names)}
        declared: list[tuple[float, float]] = []
        scale: list[float] = []
        for m, message in enumerate(database.messages):
            for signal in message.signals:
                self._slot_table[m, signal_ids[signal.name]] = len(slots)
                slots.append((message.name, signal.name))
                lo, hi = signal.minimum, signal.maximum
                ok = lo is not None and hi is not None and float(hi) > float(lo)
                declared.append((float(lo), float(hi)) if ok else (-np.inf, np.inf))  # type: ignore[arg-type]
                scale.append(abs(float(signal.conversion.scale)) or 1.0)
        self.slots = slots
        self.declared = np.array(declared, np.float64).reshape(-1, 2)
        self.scale = np.array(scale, np.float64)
        n = len(slots)
        self.low = np.full(n, np.inf)
        self.high = np.full(n, -np.inf)
        self.rate_limit = np.full(n, np.inf)
        self.use_declared = np.zeros(n, np.bool_)
        self.range_on = np.zeros(n, np.bool_)
        self.rate_on = np.zeros(n, np.bool_)
        known = np.array(
            sorted(int(k.frame_id) | (int(k.is_extended) << 32) for k in decoder.known_frame_ids),
            np.int64,
        )
        self._known = known

    @property
    def active(self) -> bool:
        return self._decoder is not None

    # --- decoding ---------------------------------------------------------------------------

    def _frames(self, view: BatchView, pick: npt.NDArray[np.intp], previous: bool) -> FrameBatch:
        """The picked frames of the batch (or their previous accepted frames) as a batch whose
        timestamps are the positions in ``pick``, so decoded rows map back to frames."""
        key = self.keys[view.row[pick]]
        payload = view.prev_payload[pick] if previous else view.payload[pick]
        return FrameBatch(
            timestamp_s=np.arange(len(pick), dtype=np.float64),
            frame_id=(key & 0x1FFFFFFF).astype(np.uint32),
            is_extended=(key >> 32).astype(np.bool_),
            bus=np.zeros(len(pick), np.uint16),
            length=payload[:, LENGTH_COLUMN].astype(np.uint8),
            data=np.ascontiguousarray(payload[:, :LENGTH_COLUMN]),
        )

    def _decode(
        self, view: BatchView, pick: npt.NDArray[np.intp], previous: bool
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """Per decoded signal value: the frame position (into the batch), the slot, the value."""
        assert self._decoder is not None
        decoded = self._decoder.decode(self._frames(view, pick, previous))
        where = pick[decoded.timestamp_s.astype(np.intp)]
        slot = self._slot_table[decoded.message_index, decoded.signal_index]
        return where, slot, decoded.value

    def _checked(self, view: BatchView) -> npt.NDArray[np.intp]:
        """Positions of the frames whose id the model knows and the DBC defines."""
        known_row = view.row < len(self.keys)
        pos = np.flatnonzero(known_row)
        if not len(pos) or not len(self._known):
            return pos[:0]
        key = self.keys[view.row[pos]]
        at = np.minimum(np.searchsorted(self._known, key), len(self._known) - 1)
        out: npt.NDArray[np.intp] = pos[self._known[at] == key]
        return out

    def _values(self, view: BatchView, only: _Positions | None = None) -> _PerValue:
        """Per decoded value: frame position, slot, value, and rate of change per second from
        the previous frame of its id (NaN where there is none or it decodes differently)."""
        pick = self._checked(view) if only is None else only
        where, slot, value = self._decode(view, pick, previous=False)
        rate = np.full(len(value), np.nan)
        linked = pick[~np.isnan(view.prev_time[pick])]
        if len(linked):
            p_where, p_slot, p_value = self._decode(view, linked, previous=True)
            # rows of one (frame, slot) pair up: sort both sides by that key
            n = len(view)
            cur_key = slot.astype(np.int64) * (n + 1) + where
            prev_key = p_slot.astype(np.int64) * (n + 1) + p_where
            order = np.argsort(prev_key, kind="stable")
            sorted_prev = prev_key[order]
            at = np.minimum(np.searchsorted(sorted_prev, cur_key), max(len(sorted_prev) - 1, 0))
            if len(sorted_prev):
                match = sorted_prev[at] == cur_key
                dt = np.maximum(view.time[where] - view.prev_time[where], _MIN_DT_S)
                delta = np.abs(value - p_value[order[at]])
                rate = np.where(match, delta / dt, np.nan)
        return where, slot, value, rate

    # --- training ---------------------------------------------------------------------------

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        self.keys = ids.keys.copy()
        if not self.active:
            return
        n = len(self.slots)
        values: list[npt.NDArray[np.float64]] = []
        slots: list[npt.NDArray[np.intp]] = []
        rates: list[npt.NDArray[np.float64]] = []
        for v in views:
            _, slot, value, rate = self._values(v)
            ok = (slot >= 0) & np.isfinite(value)
            slots.append(slot[ok])
            values.append(value[ok])
            rates.append(rate[ok])
        slot = np.concatenate(slots) if slots else np.zeros(0, np.intp)
        value = np.concatenate(values) if values else np.zeros(0)
        rate = np.concatenate(rates) if rates else np.zeros(0)
        self.low = np.full(n, np.inf)
        self.high = np.full(n, -np.inf)
        np.minimum.at(self.low, slot, value)
        np.maximum.at(self.high, slot, value)
        seen = np.isfinite(self.low)
        self.range_on = seen.copy()
        self.use_declared = (
            seen & (self.low >= self.declared[:, 0]) & (self.high <= self.declared[:, 1])
        )
        self.rate_limit = np.full(n, np.inf)
        has_rate = np.isfinite(rate)
        order = np.argsort(slot[has_rate], kind="stable")
        r_slot, r_value = slot[has_rate][order], rate[has_rate][order]
        bounds = np.searchsorted(r_slot, np.arange(n + 1))
        for s in np.flatnonzero(np.diff(bounds) >= 2).tolist():
            q = float(np.quantile(r_value[bounds[s] : bounds[s + 1]], _RATE_QUANTILE))
            if q > 0:
                self.rate_limit[s] = q * _RATE_HEADROOM
        self.rate_on = np.isfinite(self.rate_limit)

    # --- scoring ----------------------------------------------------------------------------

    def _raw(
        self, view: BatchView, only: _Positions | None = None
    ) -> tuple[_Positions, _Positions, _Floats, _Floats, _Floats]:
        """Per decoded value: frame position, slot, and the scores of the learned range, the
        rate and the declared range."""
        where, slot, value, rate = self._values(view, only)
        ok = slot >= 0
        where, slot, value, rate = where[ok], slot[ok], value[ok], rate[ok]
        span = np.maximum(self.high[slot] - self.low[slot], self.scale[slot])
        margin = _MARGIN * span + self.scale[slot]
        below = self.low[slot] - margin - value
        above = value - self.high[slot] - margin
        excess = np.maximum(np.maximum(below, above), 0.0)
        in_range = np.where(self.range_on[slot] & (excess > 0), 1.0 + excess / span, 0.0)
        lo, hi = self.declared[slot, 0], self.declared[slot, 1]
        outside = self.use_declared[slot] & ((value < lo) | (value > hi))
        declared = np.where(outside, np.maximum(in_range, 2.0), 0.0)
        in_range[~np.isfinite(value)] = 0.0
        with np.errstate(invalid="ignore"):
            by_rate = np.where(self.rate_on[slot], rate / self.rate_limit[slot], 0.0)
        by_rate = np.nan_to_num(by_rate, nan=0.0, posinf=0.0)
        return where, slot, in_range, by_rate, declared

    def _per_frame(self, view: BatchView, only: _Positions | None = None) -> _Floats:
        """Each frame's worst check (0 for frames not decoded)."""
        out = np.zeros(len(view))
        where, _, in_range, by_rate, declared = self._raw(view, only)
        np.maximum.at(out, where, np.maximum(np.maximum(in_range, by_rate), declared))
        return out

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        out = np.zeros(len(view))
        if not self.active or not len(view):
            return out
        out = self._per_frame(view)
        # a forged frame must not become the reference of the next one (a forged value held
        # for several frames changes fast only once): compare the frames that followed a
        # flagged frame with the last frame not flagged, until nothing new is flagged
        checked = self._checked(view)
        flagged = out > self.floor
        for _ in range(_MAX_PASSES):
            if not flagged.any():
                break
            relinked = relink(view, view.accepted & ~flagged)
            moved = checked[
                np.nan_to_num(relinked.prev_time[checked], nan=-1.0)
                != np.nan_to_num(view.prev_time[checked], nan=-1.0)
            ]
            if not len(moved):
                break
            again = self._per_frame(relinked, moved)
            out[moved] = again[moved]
            view = relinked
            flagged = out > self.floor
        return out

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        if not self.active or not len(view):
            return set()
        _, slot, in_range, by_rate, declared = self._raw(view)
        cells: set[Cell] = set()
        for kind, raw in ((_RANGE, in_range), (_RATE, by_rate), (_DECLARED, declared)):
            cells |= {(int(s), kind) for s in np.unique(slot[raw > self.floor]).tolist()}
        return cells

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        if not self.active:
            return
        for s, kind in cells:
            if kind == _RANGE:
                self.range_on[s] = False
            elif kind == _DECLARED:
                self.use_declared[s] = False
            else:
                self.rate_on[s] = False

    def explain(self, slot: int) -> str:
        message, signal = self.slots[slot]
        return f"{message}.{signal}"

    # --- the model file ---------------------------------------------------------------------

    def state(self) -> Arrays:
        if not self.active:
            return {"dbc": np.zeros(0, np.uint8), "keys": self.keys}
        return {
            "dbc": np.frombuffer(self._dbc_text, np.uint8),
            "slots": np.frombuffer(json.dumps(self.slots).encode(), np.uint8),
            "keys": self.keys,
            "low": self.low,
            "high": self.high,
            "rate_limit": self.rate_limit,
            "use_declared": self.use_declared,
            "range_on": self.range_on,
            "rate_on": self.rate_on,
        }

    def load(self, arrays: Arrays) -> None:
        self.keys = arrays["keys"].astype(np.int64).reshape(-1)
        text = bytes(arrays["dbc"].astype(np.uint8))
        if not text:
            self._decoder = None
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.dbc"
            path.write_bytes(text)
            database = load_dbc(path).database
        self._use(database, text)
        stored = [tuple(s) for s in json.loads(bytes(arrays["slots"].astype(np.uint8)).decode())]
        if stored != self.slots:
            raise ValueError("signal_range slots do not match the DBC the model carries")
        n = len(self.slots)
        for name in ("low", "high", "rate_limit"):
            a = arrays[name].astype(np.float64).reshape(-1)
            if len(a) != n:
                raise ValueError(f"signal_range {name} has {len(a)} entries, expected {n}")
            setattr(self, name, a)
        for name in ("use_declared", "range_on", "rate_on"):
            b = arrays[name].astype(np.bool_).reshape(-1)
            if len(b) != n:
                raise ValueError(f"signal_range {name} has {len(b)} entries, expected {n}")
            setattr(self, name, b)
