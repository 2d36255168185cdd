"""Learned consistency between related signals across ids, at the bit level, without a DBC.

A masquerade replaces an ECU's frames at their exact period with payloads the ECU also sends
legitimately — the reverse-light bit "off" — so no timing or novelty check sees it; what gives it
away is its relation to the rest of the vehicle (the gear selected, on other ids, says reverse).

Training finds *state bits* (bits that change rarely and spend a real share of the time at each
value) and pairs a state bit of one id with state bits of other ids that, in benign traffic,
always equal it (or always its inverse) — although independence would predict thousands of
disagreements (``_MIN_EXPECTED``) — and where both sides of the relation occur inside one benign
segment (a bit constant per drive pairs with nothing) — in ``min_drives`` different drives
(training asks for two: a relation one drive shows is no vehicle-wide invariant). At run time
a frame's state bit is compared with the latest value of each partner; to tolerate two ECUs
changing state at slightly different moments, the partner's latest *and* previous frames must
both disagree. A frame scores, for its worst bit,
the number of partners that disagree — when they are the majority: a forged bit contradicts all
its partners, while a genuine frame merely contradicting the one forged id does not.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.detectors import Arrays, Cell, Stage
from drivetrain.edge.ids.stream import BatchView, IdTable

_MIN_SHARE = 0.01
_MIN_COUNT = 20
_MAX_FLIP_RATE = 0.005
_MAX_STATE_BITS = 8  # per id, the steadiest
_MIN_EXPECTED = 25.0
_MAX_PARTNERS = 6
_SAMPLE = 1500
_SLACK = 0.002
_MIN_WITHIN = 5  # sampled frames of each side of a relation inside one segment


Details = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.bool_]]]


def majority(
    against: npt.NDArray[np.bool_], spoke: npt.NDArray[np.bool_], onehot: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per frame (rows of ``against``/``spoke``, one column per rule; ``onehot`` maps rules to
    the id's state bits): the number of disagreeing partners of its worst bit when they are the
    majority of those that spoke, and which rules' disagreements counted."""
    disagree = against @ onehot
    total = spoke @ onehot
    votes = np.where(2 * disagree > total, disagree, 0.0)
    counted: npt.NDArray[np.bool_] = against & (votes @ onehot.T > 0)
    return votes.max(axis=1), counted


class PartnerRules:
    """Scoring shared by the cross-id consistency detectors: a frame's score is its majority
    of disagreeing partners; ``rescore`` judges suspects against accepted partners only."""

    rules: npt.NDArray[np.int64]

    def _disagreements(
        self, view: BatchView, only: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.float64], Details]:
        raise NotImplementedError

    def _cell(self, rule: npt.NDArray[np.int64], ids: IdTable) -> Cell:
        raise NotImplementedError

    def score(self, view: BatchView) -> npt.NDArray[np.float64]:
        return self._disagreements(view)[0]

    def rescore(self, view: BatchView, only: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Scores of the frames in ``only`` (others 0), partners taken from accepted frames."""
        return self._disagreements(view, only)[0]

    def cells(self, ids: IdTable) -> set[Cell]:
        """Every rule held, as the cells :meth:`fired` and ``ban`` name."""
        return {self._cell(r, ids) for r in self.rules}

    def fired(self, view: BatchView, ids: IdTable) -> set[Cell]:
        cells: set[Cell] = set()
        for _, rule_rows, against in self._disagreements(view)[1]:
            for i in np.flatnonzero(against.any(axis=0)).tolist():
                cells.add(self._cell(self.rules[rule_rows[i]], ids))
        return cells


class CrossBitDetector(PartnerRules):
    """State bits that contradict the majority of their learned partners on other ids."""

    name: ClassVar[str] = "cross_signal"
    stage: ClassVar[Stage] = "partners"
    floor: ClassVar[float] = 1.5  # two disagreeing partners at least

    def __init__(self, min_drives: int = 1) -> None:
        if min_drives < 1:
            raise ValueError(f"min_drives must be at least 1, got {min_drives}")
        self.min_drives = min_drives
        # the drive of each segment :meth:`fit` is given (None: each segment its own drive)
        self.drive_of: list[int] | None = None
        # state-bit catalogue: (id row, bit); rules: x row, x bit, partner column, inverted
        self.columns = np.zeros((0, 2), np.int64)
        self.rules = np.zeros((0, 4), np.int64)
        self._prepare()

    def _prepare(self) -> None:
        self._by_y: dict[int, tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]] = {}
        used = np.zeros(len(self.columns), np.bool_)
        used[self.rules[:, 2]] = True
        # each used column: its partner's slot and its position in that slot's packed byte
        self._slot = np.zeros(len(self.columns), np.intp)
        self._shift = np.zeros(len(self.columns), np.uint8)
        for slot, y in enumerate(np.unique(self.columns[used, 0]).tolist() if used.any() else []):
            cols = np.flatnonzero((self.columns[:, 0] == y) & used)
            self._by_y[int(y)] = (cols, self.columns[cols, 1])
            self._slot[cols] = slot
            self._shift[cols] = np.arange(len(cols), dtype=np.uint8)
        self._by_x: dict[
            int,
            tuple[
                npt.NDArray[np.int64],
                npt.NDArray[np.int64],
                npt.NDArray[np.uint8],
                npt.NDArray[np.float64],
                npt.NDArray[np.intp],
            ],
        ] = {}
        for x in np.unique(self.rules[:, 0]).tolist() if len(self.rules) else []:
            rows = np.flatnonzero(self.rules[:, 0] == x)
            r = self.rules[rows]
            bits, local = np.unique(r[:, 1], return_inverse=True)
            onehot = np.zeros((len(rows), len(bits)))
            onehot[np.arange(len(rows)), local] = 1.0
            self._by_x[int(x)] = (r[:, 1], r[:, 2], r[:, 3].astype(np.uint8), onehot, rows)

    # --- training -------------------------------------------------------------------------

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        k = len(ids)
        state_bits = self._state_bits(k, views)
        self.columns = np.array(
            [(r, b) for r, bits in state_bits.items() for b in bits.tolist()], np.int64
        ).reshape(-1, 2)
        found: list[tuple[float, int, int, int, int]] = []
        for x, xbits in state_bits.items():
            found.extend(self._mine(views, state_bits, x, xbits))
        found.sort(reverse=True)
        count: dict[tuple[int, int], int] = {}
        kept = []
        for _, x, xb, col, inv in found:
            if count.get((x, xb), 0) < _MAX_PARTNERS:
                count[(x, xb)] = count.get((x, xb), 0) + 1
                kept.append((x, xb, col, inv))
        self.rules = np.array(kept, np.int64).reshape(-1, 4)
        self._prepare()

    @staticmethod
    def _state_bits(k: int, views: list[BatchView]) -> dict[int, npt.NDArray[np.intp]]:
        out = {}
        for r in range(k):
            parts = [v.payload[g] for v in views if (g := v.groups.get(r)) is not None]
            if not parts:
                continue
            payload = np.concatenate(parts)
            n = len(payload)
            bits = np.unpackbits(payload[:, :8], axis=1)
            ones = bits.sum(axis=0)
            need = max(_MIN_COUNT, _MIN_SHARE * n)
            flips = (bits[1:] != bits[:-1]).sum(axis=0) / max(n - 1, 1)
            ok = (ones >= need) & (n - ones >= need) & (flips <= _MAX_FLIP_RATE) & (flips > 0)
            candidates = np.flatnonzero(ok)
            if len(candidates):
                out[r] = candidates[np.argsort(flips[candidates], kind="stable")][:_MAX_STATE_BITS]
        return out

    def _mine(
        self,
        views: list[BatchView],
        state_bits: dict[int, npt.NDArray[np.intp]],
        x: int,
        xbits: npt.NDArray[np.intp],
    ) -> list[tuple[float, int, int, int, int]]:
        """Partners of the state bits of id ``x``: every state column of another id, its
        latest and previous value before each (sampled) frame of ``x``, one matrix product."""
        n_cols = len(self.columns)
        total = sum(len(g) for v in views if (g := v.groups.get(x)) is not None)
        stride = max(1, total // _SAMPLE)
        own_parts, lat_parts, prev_parts, valid_parts, segment_parts = [], [], [], [], []
        for segment, v in enumerate(views):
            xs = v.groups.get(x)
            if xs is None:
                continue
            xs = xs[::stride]
            segment_parts.append(np.full(len(xs), segment, np.intp))
            xt = v.time[xs]
            # unknown partner values read as latest 1, previous 0: in neither "both" class
            lat = np.ones((len(xs), n_cols), np.float32)
            prv = np.zeros((len(xs), n_cols), np.float32)
            valid = np.zeros((len(xs), n_cols), np.float32)
            col = 0
            for y, ybits in state_bits.items():
                width = len(ybits)
                ys = v.groups.get(y)
                if y != x and ys is not None:
                    pos = np.searchsorted(v.time[ys], xt, side="left") - 1
                    ok = pos >= 1
                    bits = np.unpackbits(v.payload[ys, :8], axis=1)[:, ybits]
                    lat[ok, col : col + width] = bits[pos[ok]]
                    prv[ok, col : col + width] = bits[pos[ok] - 1]
                    valid[ok, col : col + width] = 1.0
                col += width
            own_parts.append(np.unpackbits(v.payload[xs, :8], axis=1)[:, xbits])
            lat_parts.append(lat)
            prev_parts.append(prv)
            valid_parts.append(valid)
        if not own_parts:
            return []
        xb = np.concatenate(own_parts).astype(np.float32)
        lat = np.concatenate(lat_parts)
        prv = np.concatenate(prev_parts)
        validf = np.concatenate(valid_parts)
        both1 = lat * prv
        both0 = (1.0 - lat) * (1.0 - prv)
        xn = 1.0 - xb
        n = validf.sum(axis=0)  # (S,)
        ones_x = xb.T @ validf  # (bx, S): frames with x=1 where the column is known
        zeros_x = xn.T @ validf
        ones_y = (lat * validf).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            py = np.where(n > 0, ones_y / np.maximum(n, 1), 0.0)
        c10, c01 = xb.T @ both0, xn.T @ both1
        c11, c00 = xb.T @ both1, xn.T @ both0
        e10, e01 = ones_x * (1 - py), zeros_x * py
        e11, e00 = ones_x * py, zeros_x * (1 - py)
        slack = _SLACK * n  # a slow partner lags a change by up to its period
        equal = (c10 + c01 <= slack) & (np.minimum(e10, e01) >= _MIN_EXPECTED)
        inverse = (c11 + c00 <= slack) & (np.minimum(e11, e00) >= _MIN_EXPECTED)
        # both sides of the relation inside one segment: two bits that are merely constant per
        # drive (a gear code and a bit of a temperature) tell drives apart, not one another
        # ... and, with ``min_drives`` above one, inside that many different drives (copies of
        # one recording are one drive): what one drive shows is no vehicle-wide invariant
        segments = np.concatenate(segment_parts)
        drive_of = np.asarray(
            self.drive_of if self.drive_of is not None else range(len(views)), np.intp
        )
        if len(drive_of) != len(views):
            raise ValueError(f"drive_of names {len(drive_of)} segments; fit got {len(views)}")
        drives_equal = {d: np.zeros_like(c11, np.bool_) for d in np.unique(drive_of).tolist()}
        drives_inverse = {d: np.zeros_like(c11, np.bool_) for d in drives_equal}
        for s in np.unique(segments).tolist():
            m = segments == s
            s11, s00 = xb[m].T @ both1[m], xn[m].T @ both0[m]
            s10, s01 = xb[m].T @ both0[m], xn[m].T @ both1[m]
            drive = int(drive_of[s])
            drives_equal[drive] |= np.minimum(s11, s00) >= _MIN_WITHIN
            drives_inverse[drive] |= np.minimum(s10, s01) >= _MIN_WITHIN
        equal &= sum(m.astype(np.int64) for m in drives_equal.values()) >= self.min_drives
        inverse &= sum(m.astype(np.int64) for m in drives_inverse.values()) >= self.min_drives
        out = []
        for i, j in zip(*np.nonzero(equal), strict=True):
            out.append((float(min(e10[i, j], e01[i, j])), x, int(xbits[i]), int(j), 0))
        for i, j in zip(*np.nonzero(inverse), strict=True):
            out.append((float(min(e11[i, j], e00[i, j])), x, int(xbits[i]), int(j), 1))
        return out

    # --- scoring --------------------------------------------------------------------------

    def _partners(
        self, view: BatchView
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        """Per partner id (a slot), its used state bits packed in one byte: the latest and the
        previous accepted value before each frame, and whether both are known. Shape
        ``(slots, n)``: one contiguous row per partner."""
        n = len(view)
        slots = len(self._by_y)
        latest = np.zeros((slots, n), np.uint8)
        previous = np.zeros((slots, n), np.uint8)
        valid = np.zeros((slots, n), np.bool_)
        before = view.before
        for slot, (y, (_, bits)) in enumerate(self._by_y.items()):
            weights = (np.uint8(1) << np.arange(len(bits), dtype=np.uint8))[None, :]
            carried = np.stack([before.prev_payload[y, :8], before.last_payload[y, :8]])
            ys = view.accepted_rows(y)
            if ys is None:
                rows = carried
                pos = np.ones(n, np.intp)
            else:
                rows = np.concatenate([carried, view.payload[ys, :8]])
                pos = np.searchsorted(view.time[ys], view.time, side="left") + 1
            packed = (np.unpackbits(rows, axis=1)[:, bits] * weights).sum(axis=1, dtype=np.uint8)
            latest[slot] = packed[pos]
            previous[slot] = packed[pos - 1]
            valid[slot] = pos - 1 >= 2 - int(before.seen[y])
        return latest, previous, valid

    def _disagreements(
        self, view: BatchView, only: npt.NDArray[np.bool_] | None = None
    ) -> tuple[
        npt.NDArray[np.float64],
        list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.bool_]]],
    ]:
        raw = np.zeros(len(view))
        details: Details = []
        if not self._by_x or not len(view):
            return raw, details
        latest, previous, valid = self._partners(view)
        for x, (xbits, cols, inverted, onehot, rule_rows) in self._by_x.items():
            xs = view.groups.get(x)
            if xs is not None and only is not None:
                xs = xs[only[xs]]
            if xs is None or not len(xs):
                continue
            slot, shift = self._slot[cols], self._shift[cols][:, None]
            own = np.unpackbits(view.payload[xs, :8], axis=1)[:, xbits].T  # (rules, frames)
            expected = own ^ inverted[:, None]
            ok = valid[slot][:, xs]
            lat = (latest[slot][:, xs] >> shift) & np.uint8(1)
            prev = (previous[slot][:, xs] >> shift) & np.uint8(1)
            against = ((lat != expected) & (prev != expected) & ok).T  # (frames, rules)
            raw[xs], counted = majority(against, ok.T, onehot)
            details.append((xs, rule_rows, counted))
        return raw, details

    def _cell(self, rule: npt.NDArray[np.int64], ids: IdTable) -> Cell:
        x, xb, col, inv = (int(a) for a in rule)
        y, yb = (int(a) for a in self.columns[col])
        return (int(ids.keys[x]), xb, int(ids.keys[y]), yb, inv)

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        if len(self.rules):
            keep = np.array([self._cell(r, ids) not in cells for r in self.rules], np.bool_)
            self.rules = self.rules[keep]
            self._prepare()

    def state(self) -> Arrays:
        return {"columns": self.columns, "rules": self.rules}

    def load(self, arrays: Arrays) -> None:
        self.columns = arrays["columns"].astype(np.int64).reshape(-1, 2)
        self.rules = arrays["rules"].astype(np.int64).reshape(-1, 4)
        if len(self.rules) and (
            self.rules[:, 2].max() >= len(self.columns) or self.rules[:, 1].max() > 63
        ):
            raise ValueError("cross_signal rules name state bits the catalogue lacks")
        self._prepare()
