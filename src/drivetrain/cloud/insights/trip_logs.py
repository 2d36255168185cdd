"""Recorded EV trips (OBD logs) read into one neutral model, ``TripRecord``.

The e-208 logs (``../shared/data/ev-trips``) are sparse CSV rows, one signal per row, a clock
time (``HH:MM:SS.fff``) per row that wraps at midnight. Each signal keeps its own samples; the
measured energy is the HV power held until its next sample, integrated over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]

SPEED = "Vehicle speed (km/h)"
POWER = "HV EV Battery Power (kW)"
AMBIENT = "Ambient temperature (℃)"
PACK = "DC Battery Temperature (℃)"
SOC = "State of charge (%)"
SOH = "State of health (%)"
REQUIRED = (SPEED, POWER, AMBIENT, PACK, SOC, SOH)
MAX_LOG_BYTES = 256 * 1024 * 1024


class TripLogError(BadInputError):
    """A trip log that cannot be read; names the file and the missing or bad column."""


@dataclass(frozen=True)
class TripRecord:
    """One trip: its signals as (time s, value) samples, plus what was measured."""

    name: str
    signals: dict[str, tuple[F64, F64]]

    def samples(self, signal: str) -> tuple[F64, F64]:
        try:
            return self.signals[signal]
        except KeyError as e:
            raise TripLogError(f"trip {self.name}: no samples of {signal!r}") from e

    def measured_energy_kwh(self) -> float:
        """HV power (kW) held until its next sample, integrated: net battery energy, kWh."""
        t, p = self.samples(POWER)
        return float(np.sum(p[:-1] * np.diff(t)) / 3600.0)

    def first(self, signal: str) -> float:
        return float(self.samples(signal)[1][0])


def read_obd_trip(path: Path) -> TripRecord:
    """Read one sparse OBD trip log.

    Raises:
        TripLogError: missing or oversized file, no ``time`` column, a clock value that is not
            ``HH:MM:SS[.fff]``, or one of the signals the energy model needs is absent.
    """
    if not path.is_file():
        raise TripLogError(f"{path}: no such file")
    if path.stat().st_size > MAX_LOG_BYTES:
        raise TripLogError(f"{path}: larger than {MAX_LOG_BYTES} bytes")
    try:
        table = pv.read_csv(
            path, convert_options=pv.ConvertOptions(column_types={"time": pa.string()})
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        raise TripLogError(f"{path}: not a readable CSV ({e})") from e
    if "time" not in table.column_names:
        raise TripLogError(f"{path}: no 'time' column")
    clock = table.column("time")
    try:
        seconds = (
            pc.cast(pc.utf8_slice_codeunits(clock, 0, 2), pa.float64()).to_numpy(zero_copy_only=False) * 3600.0
            + pc.cast(pc.utf8_slice_codeunits(clock, 3, 5), pa.float64()).to_numpy(zero_copy_only=False) * 60.0
            + pc.cast(pc.utf8_slice_codeunits(clock, 6, 12), pa.float64()).to_numpy(zero_copy_only=False)
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TripLogError(f"{path}: 'time' must be HH:MM:SS.fff ({e})") from e
    if np.isnan(seconds).any():
        raise TripLogError(f"{path}: a 'time' value is empty")
    # The clock wraps at midnight: a jump back of more than 12 h is the next day.
    wraps = np.flatnonzero(np.diff(seconds) < -43200)
    if wraps.size:
        seconds[wraps[0] + 1 :] += 86400.0
    signals: dict[str, tuple[F64, F64]] = {}
    for name in table.column_names[1:]:
        column = table.column(name)
        numeric = pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
        if not name or not numeric or column.null_count == len(column):
            continue
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        present = ~np.isnan(values)
        signals[name] = (seconds[present], values[present])
    missing = [s for s in REQUIRED if s not in signals or len(signals[s][0]) < 2]
    if missing:
        raise TripLogError(f"{path}: no samples of {', '.join(repr(m) for m in missing)}")
    return TripRecord(path.stem, signals)


def e208_trip_files(folder: Path) -> list[Path]:
    """The drives of the e-208 folder: every log except charging sessions and the whole-day
    file of 2024-03-02, whose two drives are also logged apart."""
    files = sorted(p for p in folder.rglob("*.csv") if "charging" not in p.name)
    return [p for p in files if p.name != "2024-03-02_06-47-09.csv"]
