"""Latest values waiting for the twins: coalescing reported state across micro-batches.

A car on 1 Hz batches reports each of its ~100 signals every second; writing every one to
the twins' reported state costs more than everything else ingestion does with the message.
The twin only holds the latest value per (vehicle, signal), so :class:`PendingReports` keeps,
in NumPy columns, the newest accepted sample per (vehicle, path) since the last flush —
merging each micro-batch with a sort, no Python per sample — and the worker writes them at
most every ``ingest_twin_flush_s`` and whenever it goes idle.

What this trades: the twin lags the lake by up to that interval under load; a worker killed
before a flush loses the pending latest values of the twin only (every sample is in the lake;
the next sample of each signal brings the twin up to date).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.cloud.ingest.latest_values import LatestValues
from drivetrain.cloud.ingest.validation import PathTable, SampleColumns


def _empty() -> SampleColumns:
    return SampleColumns(
        vehicle=np.zeros(0, np.int32),
        path_id=np.zeros(0, np.int32),
        ts_ns=np.zeros(0, np.int64),
        value=np.zeros(0, np.float64),
        value_valid=np.zeros(0, np.bool_),
        text=pa.array([], pa.utf8()),
        text_valid=np.zeros(0, np.bool_),
    )


class PendingReports:
    """The newest accepted sample per (vehicle, path) not yet written to the twins."""

    def __init__(self) -> None:
        self._vins: list[str] = []
        self._index: dict[str, int] = {}
        self._columns = _empty()

    def __len__(self) -> int:
        return len(self._columns)

    def add(self, columns: SampleColumns, rows: npt.NDArray[np.intp], vins: Sequence[str]) -> None:
        """Merge the samples at ``rows`` (``columns.vehicle`` indexes ``vins``); a newer
        measurement wins, and of equal ones the one added later."""
        if not len(rows):
            return
        to_global = np.array([self._vin(v) for v in vins], np.int32)
        new = columns.subset(rows)
        new = SampleColumns(
            to_global[new.vehicle], new.path_id, new.ts_ns, new.value, new.value_valid,
            new.text, new.text_valid,
        )  # fmt: skip
        held = self._columns
        both = SampleColumns(
            vehicle=np.concatenate([held.vehicle, new.vehicle]),
            path_id=np.concatenate([held.path_id, new.path_id]),
            ts_ns=np.concatenate([held.ts_ns, new.ts_ns]),
            value=np.concatenate([held.value, new.value]),
            value_valid=np.concatenate([held.value_valid, new.value_valid]),
            text=pa.concat_arrays([held.text, new.text.cast(pa.utf8())]),
            text_valid=np.concatenate([held.text_valid, new.text_valid]),
        )
        key = both.vehicle.astype(np.int64) << 32 | both.path_id.astype(np.int64)
        order = np.lexsort((np.arange(len(key)), both.ts_ns, key))
        ends = np.flatnonzero(np.diff(key[order], append=np.int64(-1)) != 0)
        self._columns = both.subset(order[ends])

    def reports(self, paths: PathTable) -> LatestValues:
        """The pending values as twin reports (VIN → path → (value, measured at)); they stay
        pending until :meth:`clear` (after the twins took them)."""
        columns = self._columns
        return LatestValues(columns, np.arange(len(columns)), self._vins, paths)

    def clear(self) -> None:
        self._vins, self._index, self._columns = [], {}, _empty()

    def _vin(self, vin: str) -> int:
        found = self._index.get(vin)
        if found is None:
            found = self._index[vin] = len(self._vins)
            self._vins.append(vin)
        return found
