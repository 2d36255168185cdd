"""The latest values of a micro-batch (or of several, pending) on their way to the twins.

:class:`LatestValues` is what the pipeline hands to :meth:`ReportedStateSink.apply_reported`:
a mapping VIN → path → ``(value, measured at)``, built only if a sink reads it as one (the
in-memory twins do), and the same values as the twins' stored rows straight from the NumPy
columns (:meth:`LatestValues.stored_rows`, which the real twins take): no datetime, dict or
value object per row on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from drivetrain.cloud.ingest import assembly
from drivetrain.cloud.ingest.sinks import ReportedValue
from drivetrain.cloud.ingest.validation import PathTable, SampleColumns
from drivetrain.core.errors import BadInputError

#: One stored reported row: vin, path, kind, num, text, measured (ns), stored (ns) — the
#: twins' ``upsert.Row``.
StoredRow = tuple[str, str, str, float | None, str | None, int, int]
#: The twins' value kind per report mode (:func:`assembly.report_modes`).
_KIND_LETTER: Final = {assembly.TEXT: "s", assembly.BOOL: "b", assembly.FLOAT: "f",
                       assembly.INT: "i"}  # fmt: skip


class LatestValues(Mapping[str, Mapping[str, ReportedValue]]):
    """The samples at ``picked`` of ``columns`` (one per vehicle and path) as twin reports.

    ``columns.vehicle`` indexes ``vins``; array signals and custom signals are left out (the
    twin holds scalars of the catalog), as :func:`assembly.reports_of` leaves them out.
    """

    def __init__(
        self,
        columns: SampleColumns,
        picked: npt.NDArray[np.intp],
        vins: Sequence[str],
        paths: PathTable,
    ) -> None:
        modes = assembly.report_modes(paths)
        kept = modes[columns.path_id[picked]] != assembly.SKIP
        self._columns = columns
        self._picked = picked[kept]
        self._vins = vins
        self._paths = paths
        self._modes = modes
        self._mapping: dict[str, dict[str, ReportedValue]] | None = None

    def _reports(self) -> dict[str, dict[str, ReportedValue]]:
        if self._mapping is None:
            self._mapping = assembly.reports_of(self._columns, self._picked, self._vins,
                                                self._paths)  # fmt: skip
        return self._mapping

    def __getitem__(self, vin: str) -> Mapping[str, ReportedValue]:
        return self._reports()[vin]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reports())

    def __len__(self) -> int:
        return len(self._reports())

    @property
    def vehicles(self) -> int:
        """How many vehicles have a value."""
        return len(np.unique(self._columns.vehicle[self._picked]))

    @property
    def values_count(self) -> int:
        """How many (vehicle, path) values there are."""
        return len(self._picked)

    def stored_rows(self, now_ns: int, *, path_major: bool = False) -> list[StoredRow]:
        """The values as the twins store them (``twins.values.encode_value``'s kinds, the
        measured time to the microsecond as a reported datetime holds it), stored at
        ``now_ns``, in (VIN, path) order — (path, VIN) with ``path_major``, the key order of
        the twins' table on SQLite (``twins.path_major``).

        Raises:
            BadInputError: a number that is not finite, or a string signal without text
                (naming the vehicle and path), as the twins refuse such a value.
        """
        picked, columns = self._picked, self._columns
        if not len(picked):
            return []
        # In the order of the twins' primary key: the upsert then walks its b-tree leaf
        # after leaf (and PostgreSQL locks the rows in (VIN, path) order).
        names = assembly.path_names(self._paths)
        vin_rank = np.argsort(np.argsort(np.array(self._vins, dtype=object)))
        path_rank = np.argsort(np.argsort(np.array(names, dtype=object)))
        by_vin = vin_rank[columns.vehicle[picked]]
        by_path = path_rank[columns.path_id[picked]]
        picked = picked[np.lexsort((by_vin, by_path) if path_major else (by_path, by_vin))]
        path_id = columns.path_id[picked]
        mode = self._modes[path_id]
        number = columns.value[picked].astype(np.float64)
        is_text = mode == assembly.TEXT
        integral = mode == assembly.INT
        boolean = mode == assembly.BOOL
        number = np.where(integral, np.trunc(number), number)
        number = np.where(boolean, (number != 0).astype(np.float64), number)
        bad = ~is_text & ~np.isfinite(number)
        texts: list[Any] = [None] * len(picked)
        if is_text.any():
            at = np.flatnonzero(is_text)
            taken = columns.text.take(picked[at]).to_pylist()
            bad[at[np.array([t is None for t in taken], np.bool_)]] = True
            for position, text in zip(at.tolist(), taken, strict=True):
                texts[position] = text
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            vin = self._vins[int(columns.vehicle[picked[first]])]
            spec = self._paths.spec(int(path_id[first]))
            path = spec.path if spec is not None else "?"
            raise BadInputError(
                f"reported {vin} {path!r}: no finite number or text to store (value "
                f"{number[first]!r})"
            )
        nums = number.astype(object)
        nums[is_text] = None
        name_of = np.array(names, dtype=object)
        letters = np.array([_KIND_LETTER.get(m, "") for m in range(max(_KIND_LETTER) + 1)],
                           dtype=object)  # fmt: skip
        vins = np.array(self._vins, dtype=object)
        measured = columns.ts_ns[picked] // 1000 * 1000  # a datetime's microseconds
        return list(zip(
            vins[columns.vehicle[picked]].tolist(), name_of[path_id].tolist(),
            letters[mode].tolist(), nums.tolist(), texts, measured.tolist(), repeat(now_ns),
        ))  # fmt: skip
