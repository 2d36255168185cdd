"""Learned consistency between a state bit and the *value* of a state field of another id.

:mod:`.crossbit` pairs state bits that are always equal; many relations are not bit to bit.
The reverse light is on exactly when the selected gear — an enumerated byte of another ECU,
one of several codes — says reverse: no single bit of the gear byte equals the light. This
detector learns, from benign traffic only, a lookup per (state bit, partner byte): for each
value the partner byte showed often enough, the state bit it always came with. A rule is kept
when the byte determines the bit (no benign disagreement beyond a slack) and independence
would have predicted many disagreements (``_MIN_EXPECTED``), so a constant or unrelated byte
never makes a rule — and when both sides of the relation occur inside one benign segment, so a
byte that is merely constant per drive (a coolant temperature) cannot pair with a bit that is
also constant per drive. With ``min_drives`` above one, a rule is kept only when that many
different drives (``drive_of`` names each segment's drive; copies of one recording are one
drive) show both sides of it: a relation one drive shows is not evidence of a vehicle-wide
invariant, and a state only that drive reached would otherwise be judged by it.

At run time a frame's state bit is compared with what the latest *and* previous accepted values
of each partner byte imply, and a frame whose bit just changed is not judged (two ECUs change
state at slightly different moments, either may lead); a value the table does not know implies
nothing. As in :mod:`.crossbit`, a frame scores the number of
disagreeing partners for its worst bit when they are the majority of the partners that spoke.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.crossbit import CrossBitDetector, Details, PartnerRules, majority
from drivetrain.edge.ids.detectors import Arrays, Cell, Stage
from drivetrain.edge.ids.stream import BatchView, IdTable

_MAX_VALUES = 16  # a state byte takes few values ...
_MAX_CHANGE_RATE = 0.01  # ... and changes rarely
_MIN_SUPPORT = 10  # sampled frames of a value before it implies anything
_MIN_WITHIN = 5  # sampled frames of each side of the relation inside one segment
_SLACK = 0.002
_MIN_EXPECTED = 25.0
_MAX_PARTNERS = 6
_SAMPLE = 1500
_UNKNOWN = 2  # table entry: the value implies nothing


class CrossValueDetector(PartnerRules):
    """State bits that contradict what the values of their learned partner bytes imply."""

    name: ClassVar[str] = "cross_value"
    stage: ClassVar[Stage] = "partners"
    # three disagreeing partner bytes at least: two coincide on benign traffic of another drive
    floor: ClassVar[float] = 2.5

    def __init__(self, min_drives: int = 1) -> None:
        if min_drives < 1:
            raise ValueError(f"min_drives must be at least 1, got {min_drives}")
        self.min_drives = min_drives
        # the drive of each segment :meth:`fit` is given (None: each segment its own drive)
        self.drive_of: list[int] | None = None
        # rules: x row, x bit, y row, y byte column; tables: per rule, 256 implied bits
        self.rules = np.zeros((0, 4), np.int64)
        self.tables = np.zeros((0, 256), np.uint8)
        self._prepare()

    def _prepare(self) -> None:
        self._by_x: dict[
            int, tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.float64]]
        ] = {}
        for x in np.unique(self.rules[:, 0]).tolist() if len(self.rules) else []:
            rows = np.flatnonzero(self.rules[:, 0] == x)
            bits, local = np.unique(self.rules[rows, 1], return_inverse=True)
            onehot = np.zeros((len(rows), len(bits)))
            onehot[np.arange(len(rows)), local] = 1.0
            self._by_x[int(x)] = (rows, self.rules[rows, 1], onehot)
        self._partner_keys = sorted({(int(y), int(c)) for _, _, y, c in self.rules.tolist()})
        where = {key: j for j, key in enumerate(self._partner_keys)}
        self._column = np.array(
            [where[(int(y), int(c))] for _, _, y, c in self.rules.tolist()], np.intp
        )

    # --- training -------------------------------------------------------------------------

    def fit(self, ids: IdTable, views: list[BatchView]) -> None:
        k = len(ids)
        state_bits = CrossBitDetector._state_bits(k, views)
        fields = self._state_bytes(k, views)
        found: list[tuple[float, int, int, int, int, npt.NDArray[np.uint8]]] = []
        for x, xbits in state_bits.items():
            found.extend(self._mine(views, fields, x, xbits))
        found.sort(key=lambda f: -f[0])
        count: dict[tuple[int, int], int] = {}
        rules, tables = [], []
        for _, x, xb, y, c, table in found:
            if count.get((x, xb), 0) < _MAX_PARTNERS:
                count[(x, xb)] = count.get((x, xb), 0) + 1
                rules.append((x, xb, y, c))
                tables.append(table)
        self.rules = np.array(rules, np.int64).reshape(-1, 4)
        self.tables = np.array(tables, np.uint8).reshape(-1, 256)
        self._prepare()

    @staticmethod
    def _state_bytes(k: int, views: list[BatchView]) -> list[tuple[int, int]]:
        out = []
        for r in range(k):
            parts = [v.payload[g, :8] for v in views if (g := v.groups.get(r)) is not None]
            if not parts:
                continue
            payload = np.concatenate(parts)
            if len(payload) < 2:
                continue
            for c in range(8):
                col = payload[:, c]
                distinct = np.unique(col)
                changes = (col[1:] != col[:-1]).mean()
                if 2 <= len(distinct) <= _MAX_VALUES and changes <= _MAX_CHANGE_RATE:
                    out.append((r, c))
        return out

    def _mine(
        self,
        views: list[BatchView],
        fields: list[tuple[int, int]],
        x: int,
        xbits: npt.NDArray[np.intp],
    ) -> list[tuple[float, int, int, int, int, npt.NDArray[np.uint8]]]:
        fields = [(y, c) for y, c in fields if y != x]
        if not fields:
            return []
        total = sum(len(g) for v in views if (g := v.groups.get(x)) is not None)
        stride = max(1, total // _SAMPLE)
        own_parts, own_prev_parts, lat_parts, prev_parts, segment_parts = [], [], [], [], []
        for segment, v in enumerate(views):
            group = v.groups.get(x)
            if group is None:
                continue
            sampled = np.arange(0, len(group), stride)
            xs = group[sampled]
            segment_parts.append(np.full(len(xs), segment, np.intp))
            own_prev_parts.append(
                np.unpackbits(v.payload[group[np.maximum(sampled - 1, 0)], :8], axis=1)[:, xbits]
            )
            xt = v.time[xs]
            lat = np.full((len(xs), len(fields)), -1, np.int64)
            prv = np.full((len(xs), len(fields)), -2, np.int64)
            for j, (y, c) in enumerate(fields):
                ys = v.groups.get(y)
                if ys is None:
                    continue
                pos = np.searchsorted(v.time[ys], xt, side="left") - 1
                ok = pos >= 1
                values = v.payload[ys, c].astype(np.int64)
                lat[ok, j] = values[pos[ok]]
                prv[ok, j] = values[pos[ok] - 1]
            own_parts.append(np.unpackbits(v.payload[xs, :8], axis=1)[:, xbits])
            lat_parts.append(lat)
            prev_parts.append(prv)
        if not own_parts:
            return []
        own = np.concatenate(own_parts).astype(np.int64)  # (frames, bits)
        # frames where x's bit just changed are transitions (either ECU may lead): not counted
        settled = own == np.concatenate(own_prev_parts)
        lat = np.concatenate(lat_parts)
        prv = np.concatenate(prev_parts)
        segments = np.concatenate(segment_parts)
        drives = np.asarray(
            self.drive_of if self.drive_of is not None else range(len(views)), np.intp
        )
        if len(drives) != len(views):
            raise ValueError(f"drive_of names {len(drives)} segments; fit got {len(views)}")
        out = []
        for j, (y, c) in enumerate(fields):
            partner_steady = lat[:, j] == prv[:, j]
            for i, xb in enumerate(xbits.tolist()):
                steady = partner_steady & settled[:, i]
                if steady.sum() < 2 * _MIN_SUPPORT:
                    continue
                values = lat[steady, j]
                bit = own[steady, i]
                ones = np.bincount(values, weights=bit, minlength=256)
                n = np.bincount(values, minlength=256).astype(np.float64)
                zeros = n - ones
                decided = n >= _MIN_SUPPORT
                implies_one = decided & (zeros <= _SLACK * n)
                implies_zero = decided & (ones <= _SLACK * n)
                if not implies_one.any() or not implies_zero.any():
                    continue
                # disagreements independence would have predicted on the decided values
                p1 = bit.mean()
                expected = min(n[implies_one].sum() * (1 - p1), n[implies_zero].sum() * p1)
                if expected < _MIN_EXPECTED:
                    continue
                # the partner must explain the bit on (almost) every steady frame
                undecided = n[~(implies_one | implies_zero)].sum()
                if undecided > 0.05 * len(values):
                    continue
                table = np.full(256, _UNKNOWN, np.uint8)
                table[implies_one] = 1
                table[implies_zero] = 0
                # both sides of the relation inside one segment: a byte that is merely constant
                # per drive (a temperature) tells drives apart, not the state of the bit
                implied = table[values]
                seg = segments[steady]
                ones_within = np.bincount(
                    seg, weights=(implied == 1) & (bit == 1), minlength=len(views)
                )
                zeros_within = np.bincount(
                    seg, weights=(implied == 0) & (bit == 0), minlength=len(views)
                )
                exercised = np.minimum(ones_within, zeros_within) >= _MIN_WITHIN
                if len(np.unique(drives[exercised])) < self.min_drives:
                    continue
                out.append((float(expected), x, int(xb), int(y), int(c), table))
        return out

    # --- scoring --------------------------------------------------------------------------

    def _partners(
        self, view: BatchView
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        """Per partner byte (a row): its latest and previous accepted value before each frame,
        and whether both are known. Shape ``(partners, n)``."""
        n = len(view)
        before = view.before
        keys = self._partner_keys
        latest = np.zeros((len(keys), n), np.uint8)
        previous = np.zeros((len(keys), n), np.uint8)
        valid = np.zeros((len(keys), n), np.bool_)
        for j, (y, c) in enumerate(keys):
            carried = np.array([before.prev_payload[y, c], before.last_payload[y, c]], np.uint8)
            ys = view.accepted_rows(y)
            if ys is None:
                values = carried
                pos = np.ones(n, np.intp)
            else:
                values = np.concatenate([carried, view.payload[ys, c]])
                pos = np.searchsorted(view.time[ys], view.time, side="left") + 1
            latest[j] = values[pos]
            previous[j] = values[pos - 1]
            valid[j] = pos - 1 >= 2 - int(before.seen[y])
        return latest, previous, valid

    def _disagreements(
        self, view: BatchView, only: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.float64], Details]:
        raw = np.zeros(len(view))
        details: Details = []
        if not self._by_x or not len(view):
            return raw, details
        latest, previous, valid = self._partners(view)
        for x, (rule_rows, xbits, onehot) in self._by_x.items():
            xs = view.groups.get(x)
            if xs is not None and only is not None:
                xs = xs[only[xs]]
            if xs is None or not len(xs):
                continue
            own = np.unpackbits(view.payload[xs, :8], axis=1)[:, xbits].T  # (rules, frames)
            cols = self._column[rule_rows][:, None]
            tables = rule_rows[:, None]
            implied_lat = self.tables[tables, latest[cols, xs[None, :]]]
            implied_prev = self.tables[tables, previous[cols, xs[None, :]]]
            spoke = valid[cols, xs[None, :]] & (implied_lat != _UNKNOWN)
            against = spoke & (implied_lat != own) & (implied_prev != own)
            if only is None:
                # the ECU of x may change state a frame before its partners: a frame whose bit
                # differs from its id's previous frame is a transition, not yet a contradiction
                before = np.unpackbits(view.prev_payload[xs, :8], axis=1)[:, xbits].T
                against &= (own == before) | np.isnan(view.prev_time[xs])[None, :]
            raw[xs], counted = majority(against.T, spoke.T, onehot)
            details.append((xs, rule_rows, counted))
        return raw, details

    def _cell(self, rule: npt.NDArray[np.int64], ids: IdTable) -> Cell:
        x, xb, y, c = (int(a) for a in rule)
        return (int(ids.keys[x]), xb, int(ids.keys[y]), c)

    def ban(self, cells: set[Cell], ids: IdTable) -> None:
        if len(self.rules):
            keep = np.array([self._cell(r, ids) not in cells for r in self.rules], np.bool_)
            self.rules, self.tables = self.rules[keep], self.tables[keep]
            self._prepare()

    def state(self) -> Arrays:
        return {"rules": self.rules, "tables": self.tables}

    def load(self, arrays: Arrays) -> None:
        self.rules = arrays["rules"].astype(np.int64).reshape(-1, 4)
        self.tables = arrays["tables"].astype(np.uint8).reshape(-1, 256)
        if len(self.rules) != len(self.tables) or (
            len(self.rules) and (self.rules[:, 1].max() > 63 or self.rules[:, 3].max() > 7)
        ):
            raise ValueError("cross_value rules and tables disagree or name bits past byte 8")
        self._prepare()
