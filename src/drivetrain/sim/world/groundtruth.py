"""Ground truth of a simulation run, written as Parquet for scoring models later.

Four tables (one file each):

- ``component_health.parquet`` — per sampled moment and vehicle: each component's health and
  its remaining useful life (units in the column names), fault flags, battery SoH, odometer;
- ``component_events.parquet`` — fault onsets and failures (time, vehicle, component,
  odometer);
- ``trips.parquet`` — every trip: start/end time and place, distance, energy, SoC;
- ``charging_sessions.parquet`` — every plug-in: kind, rating, energy from the grid, SoC.

Times are Unix seconds (UTC) of the simulated clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.core.errors import StorageError

HEALTH_FILE = "component_health.parquet"
EVENTS_FILE = "component_events.parquet"
TRIPS_FILE = "trips.parquet"
SESSIONS_FILE = "charging_sessions.parquet"


class GroundTruthLog:
    """Accumulates ground-truth rows in memory (column chunks), then writes Parquet."""

    def __init__(self, vins: list[str]) -> None:
        self.vins = vins
        self._health: list[dict[str, npt.NDArray[np.generic]]] = []
        self.events: list[dict[str, object]] = []
        self.trips: list[dict[str, object]] = []
        self.sessions: list[dict[str, object]] = []

    def sample(self, time_s: float, columns: Mapping[str, npt.NDArray[np.generic]]) -> None:
        """Record one moment for every vehicle (``columns`` are per-vehicle arrays)."""
        n = len(self.vins)
        chunk: dict[str, npt.NDArray[np.generic]] = {
            "time_s": np.full(n, time_s),
            "vin": np.asarray(self.vins, dtype=object),
        }
        chunk.update({k: np.asarray(v).copy() for k, v in columns.items()})
        self._health.append(chunk)

    @property
    def samples(self) -> int:
        """Number of moments sampled so far."""
        return len(self._health)

    def health_table(self) -> pa.Table:
        """All samples as one table (empty table when nothing was sampled)."""
        if not self._health:
            return pa.table(
                {"time_s": pa.array([], pa.float64()), "vin": pa.array([], pa.string())}
            )
        names = list(self._health[0])
        return pa.table({name: np.concatenate([c[name] for c in self._health]) for name in names})

    def write_parquet(self, directory: str | Path) -> dict[str, Path]:
        """Write the four tables into ``directory`` (created if missing); returns their paths.

        Raises:
            StorageError: the directory or a file cannot be written.
        """
        out = Path(directory)
        tables = {
            HEALTH_FILE: self.health_table(),
            EVENTS_FILE: _rows_table(
                self.events, ("vin", "component", "kind", "time_s", "odometer_m")
            ),
            TRIPS_FILE: _rows_table(self.trips, ("vin", "start_s", "end_s", "distance_km")),
            SESSIONS_FILE: _rows_table(
                self.sessions, ("vin", "kind", "start_s", "end_s", "energy_kwh")
            ),
        }
        paths: dict[str, Path] = {}
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, table in tables.items():
                path = out / name
                pq.write_table(table, path)
                paths[name] = path
        except OSError as e:
            raise StorageError(f"cannot write ground truth to {out}: {e}") from e
        return paths


def _rows_table(rows: list[dict[str, object]], empty_columns: tuple[str, ...]) -> pa.Table:
    if not rows:
        return pa.table(
            {
                c: pa.array([], pa.string() if c in ("vin", "component", "kind") else pa.float64())
                for c in empty_columns
            }
        )
    return pa.Table.from_pylist(rows)
