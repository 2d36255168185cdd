"""Standard drive cycles: 1 Hz speed tables shipped with the package.

``wltc_class3`` (UN GTR No. 15, class 3b), ``udds`` (EPA Urban Dynamometer Driving Schedule,
40 CFR 86 App. I) and ``hwfet`` (EPA Highway Fuel Economy Test). Each file under
``drivetrain/sim/data/cycles`` keeps the standard's own unit (km/h for WLTC, mph for the EPA
schedules) so it can be compared line by line with the published table; loading converts to
m/s. Lines starting with ``#`` are provenance comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import DriveCycleFormatError, SimulationConfigError

CYCLES_DIR: Final = Path(__file__).resolve().parent.parent / "data" / "cycles"

#: Multiply a speed in this unit by the factor to get m/s.
_UNIT_TO_MPS: Final[dict[str, float]] = {
    "speed_mps": 1.0,
    "speed_kmh": 1.0 / 3.6,
    "speed_mph": 0.44704,  # exact: 1 mile = 1609.344 m
}

#: The WLTC class 3b phases (GTR 15 Annex 1, Table A1/12 and §3.3): name and end second.
WLTC_PHASES: Final[tuple[tuple[str, int], ...]] = (
    ("low", 589),
    ("medium", 1022),
    ("high", 1477),
    ("extra_high", 1800),
)


@dataclass(frozen=True)
class DriveCycle:
    """A speed-versus-time schedule sampled at 1 Hz: ``speed_mps[i]`` at ``time_s[i]``."""

    name: str
    time_s: npt.NDArray[np.float64]
    speed_mps: npt.NDArray[np.float64]

    @property
    def duration_s(self) -> float:
        """Last time stamp minus the first, s."""
        return float(self.time_s[-1] - self.time_s[0])

    @property
    def distance_m(self) -> float:
        """Distance driven when the speed is followed exactly (trapezoidal rule), m."""
        return float(np.sum(np.diff(self.time_s) * (self.speed_mps[1:] + self.speed_mps[:-1]) / 2))

    @property
    def max_speed_kmh(self) -> float:
        """Highest speed of the schedule, km/h."""
        return float(self.speed_mps.max() * 3.6)

    def segment(self, start_s: int, end_s: int, name: str | None = None) -> DriveCycle:
        """The part of the cycle from ``start_s`` to ``end_s`` inclusive, time rebased to 0.

        Raises:
            ValueError: the window is empty or outside the cycle.
        """
        mask = (self.time_s >= start_s) & (self.time_s <= end_s)
        if mask.sum() < 2:
            raise ValueError(
                f"cycle {self.name!r} has fewer than two samples in [{start_s}, {end_s}] s"
            )
        t = self.time_s[mask]
        return DriveCycle(name or f"{self.name}[{start_s}:{end_s}]", t - t[0], self.speed_mps[mask])


def read_cycle_csv(path: str | Path, name: str | None = None) -> DriveCycle:
    """Read a 1 Hz speed table: a header ``time_s,speed_<unit>`` (unit ``mps``, ``kmh`` or
    ``mph``), then one ``time,speed`` row per second; ``#`` lines are comments.

    Raises:
        DriveCycleFormatError: the file cannot be read, the header names no known speed column,
            a row is not two numbers, time does not advance by exactly 1 s from 0, or a speed
            is negative or not finite. The message names the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DriveCycleFormatError(f"{path}: cannot read drive cycle ({e})") from e
    rows = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    rows = [(n, line) for n, line in rows if not line.startswith("#")]
    if not rows:
        raise DriveCycleFormatError(f"{path}: no header line; expected 'time_s,speed_<unit>'")
    header_line, header = rows[0]
    columns = [c.strip() for c in header.split(",")]
    if len(columns) != 2 or columns[0] != "time_s" or columns[1] not in _UNIT_TO_MPS:
        raise DriveCycleFormatError(
            f"{path}:{header_line}: header {header!r}; expected 'time_s,' followed by one of "
            f"{sorted(_UNIT_TO_MPS)}"
        )
    factor = _UNIT_TO_MPS[columns[1]]
    times: list[float] = []
    speeds: list[float] = []
    for n, line in rows[1:]:
        parts = line.split(",")
        if len(parts) != 2:
            raise DriveCycleFormatError(
                f"{path}:{n}: {len(parts)} fields in {line!r}; expected 'time,speed'"
            )
        try:
            t, v = float(parts[0]), float(parts[1])
        except ValueError:
            raise DriveCycleFormatError(
                f"{path}:{n}: {line!r} is not two numbers (time, speed)"
            ) from None
        if t != len(times):
            raise DriveCycleFormatError(
                f"{path}:{n}: time {parts[0]!r}; expected {len(times)} (1 Hz from 0 s)"
            )
        if not np.isfinite(v) or v < 0:
            raise DriveCycleFormatError(
                f"{path}:{n}: speed {parts[1]!r}; expected a finite number >= 0"
            )
        times.append(t)
        speeds.append(v * factor)
    if len(times) < 2:
        raise DriveCycleFormatError(f"{path}: {len(times)} rows; expected at least 2")
    return DriveCycle(name or path.stem, np.asarray(times), np.asarray(speeds))


#: The cycles shipped with the package, by name.
CYCLE_NAMES: Final[tuple[str, ...]] = ("wltc_class3", "udds", "hwfet")


def load_cycle(name: str) -> DriveCycle:
    """A built-in drive cycle by name (see ``CYCLE_NAMES``).

    Raises:
        SimulationConfigError: ``name`` is not a built-in cycle.
        DriveCycleFormatError: the packaged file is damaged (a broken installation).
    """
    if name not in CYCLE_NAMES:
        raise SimulationConfigError(
            f"drive cycle {name!r} is not built in; expected one of {list(CYCLE_NAMES)}"
        )
    return read_cycle_csv(CYCLES_DIR / f"{name}.csv", name)
