"""NASA C-MAPSS turbofan degradation data: the standard train/test/true-RUL triple.

Files (as in ``../shared/data/cmapss``): ``train_FD00x.csv`` and ``test_FD00x.csv`` with
columns ``unit,cycle,setting_1..3,s1..s21``, and ``RUL_FD00x.txt`` with one true remaining
life per test unit (in unit order). Training engines run to failure; test engines stop some
time before it, and the protocol scores the prediction at each test engine's last cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pv

from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SETTING_COLUMNS = ("setting_1", "setting_2", "setting_3")
SENSOR_COLUMNS = tuple(f"s{i}" for i in range(1, 22))
SUBSETS = ("FD001", "FD002", "FD003", "FD004")
MAX_ROWS = 2_000_000  # far above the largest subset (FD004 train: 61,249 rows)


class CmapssFormatError(BadInputError):
    """A C-MAPSS file that is missing or cannot be read; names the file and the problem."""


@dataclass(frozen=True)
class EngineRuns:
    """Rows of many engines, sorted by (unit, cycle). ``unit`` and ``cycle`` are 1-based."""

    unit: I64
    cycle: I64
    settings: F64  # (rows, 3)
    sensors: F64  # (rows, 21)

    @property
    def units(self) -> I64:
        """Distinct unit numbers, ascending."""
        return np.unique(self.unit)

    def last_rows(self) -> I64:
        """Index of each unit's last row, in unit order."""
        ends = np.flatnonzero(np.diff(self.unit)) if len(self.unit) else np.array([], np.int64)
        return np.append(ends, len(self.unit) - 1).astype(np.int64)

    def remaining_life(self) -> F64:
        """Cycles to failure at each row, for engines that ran to failure (the training set)."""
        last = self.cycle[self.last_rows()]
        per_unit_last = np.repeat(last, np.diff(np.append(0, self.last_rows() + 1)))
        return (per_unit_last - self.cycle).astype(np.float64)

    def take_units(self, units: I64) -> EngineRuns:
        """The rows of the given units only."""
        mask = np.isin(self.unit, units)
        return EngineRuns(self.unit[mask], self.cycle[mask], self.settings[mask], self.sensors[mask])

    def truncate(self, last_cycle_by_unit: dict[int, int]) -> EngineRuns:
        """Each listed unit cut after its given cycle (to emulate test engines from training ones)."""
        limit = np.array([last_cycle_by_unit.get(int(u), -1) for u in self.unit])
        mask = self.cycle <= limit
        return EngineRuns(self.unit[mask], self.cycle[mask], self.settings[mask], self.sensors[mask])


@dataclass(frozen=True)
class CmapssSubset:
    """One sub-dataset: run-to-failure training engines, truncated test engines, their true RUL."""

    name: str
    train: EngineRuns
    test: EngineRuns
    test_rul: F64  # true RUL at each test unit's last cycle, in unit order


def read_runs(path: Path) -> EngineRuns:
    """Read one ``train_``/``test_`` CSV.

    Raises:
        CmapssFormatError: missing file, missing column, non-numeric value, or rows that are not
            sorted by unit and cycle.
    """
    if not path.is_file():
        raise CmapssFormatError(f"{path}: no such file")
    try:
        table = pv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise CmapssFormatError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in ("unit", "cycle", *SETTING_COLUMNS, *SENSOR_COLUMNS) if c not in table.column_names]
    if missing:
        raise CmapssFormatError(f"{path}: missing column(s) {', '.join(missing)}")
    if table.num_rows == 0 or table.num_rows > MAX_ROWS:
        raise CmapssFormatError(f"{path}: {table.num_rows} rows; expected 1..{MAX_ROWS}")

    def numbers(name: str) -> F64:
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise CmapssFormatError(f"{path}: column {name} is {column.type}; expected numbers")
        if column.null_count:
            raise CmapssFormatError(f"{path}: column {name} has {column.null_count} empty value(s)")
        return np.asarray(column.to_numpy(), dtype=np.float64)

    unit = numbers("unit").astype(np.int64)
    cycle = numbers("cycle").astype(np.int64)
    order_ok = np.all((np.diff(unit) > 0) | ((np.diff(unit) == 0) & (np.diff(cycle) == 1)))
    if not order_ok:
        raise CmapssFormatError(f"{path}: rows must be sorted by unit, then consecutive cycles")
    settings = np.column_stack([numbers(c) for c in SETTING_COLUMNS])
    sensors = np.column_stack([numbers(c) for c in SENSOR_COLUMNS])
    return EngineRuns(unit, cycle, settings, sensors)


def read_true_rul(path: Path, n_units: int) -> F64:
    """Read ``RUL_FD00x.txt``: one non-negative number per line, one line per test unit.

    Raises:
        CmapssFormatError: missing file, a line that is not a number, or the wrong line count.
    """
    if not path.is_file():
        raise CmapssFormatError(f"{path}: no such file")
    values = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            values.append(float(line.strip()))
        except ValueError as e:
            raise CmapssFormatError(f"{path}:{number}: {line.strip()!r} is not a number") from e
    if len(values) != n_units:
        raise CmapssFormatError(f"{path}: {len(values)} values for {n_units} test units")
    return np.array(values, dtype=np.float64)


def load_subset(data_dir: Path, subset: str) -> CmapssSubset:
    """Load ``train_``, ``test_`` and ``RUL_`` of one subset from ``data_dir``.

    Raises:
        CmapssFormatError: ``subset`` is not FD001..FD004, or a file is missing or malformed.
    """
    if subset not in SUBSETS:
        raise CmapssFormatError(f"subset {subset!r} is not one of {', '.join(SUBSETS)}")
    train = read_runs(data_dir / f"train_{subset}.csv")
    test = read_runs(data_dir / f"test_{subset}.csv")
    rul = read_true_rul(data_dir / f"RUL_{subset}.txt", len(test.units))
    return CmapssSubset(subset, train, test, rul)
