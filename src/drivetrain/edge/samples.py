"""``Samples``: VSS signal values as columns, the unit of work inside the edge agent.

The agent decodes CAN frames into ``VssSignals`` (seconds, per decoded value) or is handed
values directly by a simulator; both become ``Samples`` (one row per value, nanosecond
timestamps, a path dictionary), which the collection engine selects from and the uplink
turns into the wire format's telemetry table. Numeric and boolean signals only: booleans are
0.0/1.0; string signals are not collected by this agent version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.core.can import VssSignals
from drivetrain.core.errors import SignalTypeError
from drivetrain.core.wire import samples_table


@dataclass(frozen=True)
class Samples:
    """Signal values, one row per (path, time).

    Attributes:
        paths: the path dictionary; ``path_index`` points into it.
        path_index: per row, the index of its VSS path in ``paths``.
        ts_ns: per row, when the value was measured, nanoseconds since the Unix epoch.
        value: per row, the value in the VSS signal's unit (booleans 0.0/1.0).
    """

    paths: tuple[str, ...]
    path_index: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        if len(self.path_index) != n or len(self.value) != n:
            raise ValueError(
                f"Samples columns differ in length: path_index {len(self.path_index)}, "
                f"ts_ns {n}, value {len(self.value)}"
            )

    def __len__(self) -> int:
        return len(self.ts_ns)

    @classmethod
    def empty(cls) -> Samples:
        return cls((), np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64))

    @classmethod
    def from_vss(cls, signals: VssSignals, time_offset_ns: int = 0) -> Samples:
        """From a signal map's output: seconds become nanoseconds, plus ``time_offset_ns``
        (e.g. the Unix time of a capture's time zero)."""
        ts = np.round(signals.timestamp_s * 1e9).astype(np.int64) + np.int64(time_offset_ns)
        return cls(signals.paths, signals.path_index.astype(np.int32), ts, signals.value)

    @classmethod
    def from_values(cls, values: Mapping[str, float | int | bool], ts_ns: int) -> Samples:
        """One row per entry of ``values``, all measured at ``ts_ns``.

        Raises:
            SignalTypeError: a value that is not a number or a boolean (strings are not
                collected), or not finite.
        """
        paths = tuple(values)
        numbers = np.empty(len(paths), np.float64)
        for i, path in enumerate(paths):
            v = values[path]
            if isinstance(v, str) or not isinstance(v, int | float) or not math.isfinite(v):
                raise SignalTypeError(
                    f"value of {path!r} is {v!r}; expected a finite number or a boolean"
                )
            numbers[i] = float(v)
        return cls(
            paths,
            np.arange(len(paths), dtype=np.int32),
            np.full(len(paths), ts_ns, np.int64),
            numbers,
        )

    @classmethod
    def concat(cls, parts: Sequence[Samples]) -> Samples:
        """Every row of ``parts`` in order, with one merged path dictionary."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        first = parts[0].paths
        if all(p.paths is first or p.paths == first for p in parts):  # one dictionary: no remap
            return cls(
                first,
                np.concatenate([p.path_index for p in parts]),
                np.concatenate([p.ts_ns for p in parts]),
                np.concatenate([p.value for p in parts]),
            )
        names: dict[str, int] = {}
        indices = []
        for part in parts:
            remap = np.array([names.setdefault(p, len(names)) for p in part.paths], np.int32)
            indices.append(remap[part.path_index])
        return cls(
            tuple(names),
            np.concatenate(indices),
            np.concatenate([p.ts_ns for p in parts]),
            np.concatenate([p.value for p in parts]),
        )

    def take(self, rows: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Samples:
        """The rows selected by an index array or a boolean mask (same path dictionary)."""
        return Samples(self.paths, self.path_index[rows], self.ts_ns[rows], self.value[rows])

    def path_of_rows(self) -> npt.NDArray[np.object_]:
        """The path string of each row (for tests and reports; not for hot paths)."""
        return (
            np.array(self.paths, dtype=object)[self.path_index]
            if len(self)
            else np.empty(0, object)
        )

    def to_table(self) -> pa.Table:
        """The wire format's telemetry table (``TELEMETRY_SCHEMA``), rows sorted by time."""
        ts = self.ts_ns
        if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
            order = np.argsort(ts, kind="stable")
            index, ts, value = self.path_index[order], ts[order], self.value[order]
        else:
            index, value = self.path_index, self.value
        # Only the paths present go in the dictionary (a bincount, not a sort).
        used = np.flatnonzero(np.bincount(index, minlength=len(self.paths)))
        lookup = np.zeros(len(self.paths), np.int16)
        lookup[used] = np.arange(len(used), dtype=np.int16)
        return samples_table([self.paths[i] for i in used], lookup[index], ts, value)

    @classmethod
    def from_table(cls, table: pa.Table) -> Samples:
        """Back from a telemetry table (string rows, if any, are left out)."""
        path = table.column("path").combine_chunks()
        keep = table.column("value").is_valid()
        if not isinstance(path, pa.DictionaryArray):
            path = path.dictionary_encode()
        indices = path.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        mask = np.asarray(keep.to_numpy(zero_copy_only=False), np.bool_)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        values = table.column("value").to_numpy(zero_copy_only=False)
        return cls(
            tuple(path.dictionary.to_pylist()),
            indices[mask],
            np.asarray(ts, np.int64)[mask],
            np.asarray(values, np.float64)[mask],
        )
