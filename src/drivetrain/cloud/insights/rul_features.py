"""Features for remaining-useful-life models on multi-sensor run-to-failure data.

Three ideas, each causal (a row only sees its own engine's past, so training rows and the last
row of a truncated test engine are built the same way):

1. **Operating conditions.** Engines fly at different altitudes, Mach numbers and throttle
   settings, and the raw sensors move more with the condition than with wear. The settings
   are clustered (KMeans; the number of clusters is the smallest whose members all lie within
   a physical tolerance of their centre), and every sensor is z-scored within its condition.
   A single-condition set gets one cluster, a six-condition set six, without being told.
2. **Trailing windows.** Means over the last few cycles (noise falls), least-squares slopes
   (the rate of wear).
3. **Drift from the engine's own start.** Engines start with different manufacturing
   variation; each sensor's recent mean minus that engine's mean over its first cycles
   removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivetrain.cloud.insights._deps import require
from drivetrain.cloud.insights.cmapss import SENSOR_COLUMNS, EngineRuns

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Settings tolerance per axis (altitude kft, Mach, throttle resolver angle): points within it
#: of a centre fly the same condition.
SETTING_TOLERANCE = np.array([1.0, 0.02, 2.0])
MAX_CONDITIONS = 10
MIN_SENSOR_STD = 1e-6  # a sensor this flat within every condition carries nothing


@dataclass(frozen=True)
class WindowSpec:
    """Which trailing windows to compute (cycles)."""

    means: tuple[int, ...] = (5, 15, 30)
    slopes: tuple[int, ...] = (15, 50)
    drift_recent: int = 10
    drift_baseline: int = 20

    def to_dict(self) -> dict[str, object]:
        return {
            "means": list(self.means),
            "slopes": list(self.slopes),
            "drift_recent": self.drift_recent,
            "drift_baseline": self.drift_baseline,
        }


@dataclass
class ConditionNormaliser:
    """Clusters operating settings and z-scores sensors within each cluster (fit on training)."""

    centres: F64 = field(default_factory=lambda: np.zeros((0, 3)))
    mean: F64 = field(default_factory=lambda: np.zeros((0, 0)))
    std: F64 = field(default_factory=lambda: np.zeros((0, 0)))
    kept_sensors: I64 = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_conditions(self) -> int:
        return int(self.centres.shape[0])

    def fit(self, runs: EngineRuns, *, seed: int = 0) -> ConditionNormaliser:
        """Find the conditions in ``runs.settings`` and each sensor's mean/std within each."""
        scaled = runs.settings / SETTING_TOLERANCE
        cluster = require("sklearn.cluster")
        labels = np.zeros(len(scaled), dtype=np.int64)
        centres = scaled.mean(axis=0, keepdims=True)
        for k in range(1, MAX_CONDITIONS + 1):
            if k == 1:
                labels = np.zeros(len(scaled), dtype=np.int64)
                centres = scaled.mean(axis=0, keepdims=True)
            else:
                km = cluster.KMeans(n_clusters=k, n_init=4, random_state=seed).fit(scaled)
                labels = km.labels_.astype(np.int64)
                centres = km.cluster_centers_
            spread = np.linalg.norm(scaled - centres[labels], axis=1)
            if np.quantile(spread, 0.999) < 1.0:
                break
        self.centres = centres * SETTING_TOLERANCE
        n_sensors = runs.sensors.shape[1]
        self.mean = np.zeros((len(centres), n_sensors))
        self.std = np.ones((len(centres), n_sensors))
        for c in range(len(centres)):
            rows = runs.sensors[labels == c]
            self.mean[c] = rows.mean(axis=0)
            self.std[c] = rows.std(axis=0)
        informative = (self.std > MIN_SENSOR_STD * np.maximum(1.0, np.abs(self.mean))).any(axis=0)
        self.std = np.where(self.std > MIN_SENSOR_STD * np.maximum(1.0, np.abs(self.mean)), self.std, np.inf)
        self.kept_sensors = np.flatnonzero(informative).astype(np.int64)
        return self

    def condition_of(self, settings: F64) -> I64:
        """Nearest condition of each row of settings."""
        scaled = settings[:, None, :] / SETTING_TOLERANCE - self.centres[None] / SETTING_TOLERANCE
        nearest: I64 = np.argmin(np.linalg.norm(scaled, axis=2), axis=1).astype(np.int64)
        return nearest

    def transform(self, runs: EngineRuns) -> F64:
        """Sensors z-scored within each row's condition, informative sensors only."""
        cond = self.condition_of(runs.settings)
        z = (runs.sensors - self.mean[cond]) / self.std[cond]
        return z[:, self.kept_sensors]

    def sensor_names(self) -> list[str]:
        return [SENSOR_COLUMNS[i] for i in self.kept_sensors]

    def to_dict(self) -> dict[str, object]:
        return {
            "centres": self.centres.tolist(),
            "mean": self.mean.tolist(),
            "std": [[None if not np.isfinite(v) else float(v) for v in row] for row in self.std],
            "kept_sensors": self.kept_sensors.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ConditionNormaliser:
        std = np.array(
            [[np.inf if v is None else float(v) for v in row] for row in data["std"]],  # type: ignore[attr-defined]
            dtype=np.float64,
        )
        return cls(
            centres=np.array(data["centres"], dtype=np.float64),
            mean=np.array(data["mean"], dtype=np.float64),
            std=std,
            kept_sensors=np.array(data["kept_sensors"], dtype=np.int64),
        )


def _unit_starts(unit: I64) -> I64:
    """Index of the first row of each row's unit."""
    n = len(unit)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = unit[1:] != unit[:-1]
    first = np.flatnonzero(boundary)
    return np.repeat(first, np.diff(np.append(first, n))).astype(np.int64)


def _window_sums(values: F64, start: I64) -> tuple[F64, F64]:
    """Row i's sum over rows [start[i], i] and the row count."""
    cs = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    idx = np.arange(len(values))
    return cs[idx + 1] - cs[start], (idx + 1 - start).astype(np.float64)


def trailing_mean(values: F64, unit_start: I64, window: int) -> F64:
    """Mean of each row's last ``window`` rows of its own unit (fewer at the unit's start)."""
    start = np.maximum(unit_start, np.arange(len(values)) - window + 1)
    total, count = _window_sums(values, start)
    return total / count[:, None]


def trailing_slope(values: F64, x: F64, unit_start: I64, window: int) -> F64:
    """Least-squares slope of values against ``x`` over each row's last ``window`` rows."""
    start = np.maximum(unit_start, np.arange(len(values)) - window + 1)
    sy, n = _window_sums(values, start)
    sx, _ = _window_sums(x[:, None], start)
    sxx, _ = _window_sums((x * x)[:, None], start)
    sxy, _ = _window_sums(values * x[:, None], start)
    denominator = n[:, None] * sxx - sx * sx
    safe = np.where(np.abs(denominator) > 1e-9, denominator, 1.0)
    return np.where(np.abs(denominator) > 1e-9, (n[:, None] * sxy - sx * sy) / safe, 0.0)


def baseline_mean(values: F64, unit_start: I64, first_rows: int) -> F64:
    """Mean of the unit's first ``first_rows`` rows, using only rows up to the current one."""
    idx = np.arange(len(values))
    end: I64 = np.minimum(idx, unit_start + first_rows - 1)
    cs: F64 = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    return (cs[end + 1] - cs[unit_start]) / (end + 1 - unit_start)[:, None]


def window_features(
    z: F64, runs: EngineRuns, sensor_names: list[str], spec: WindowSpec
) -> tuple[F64, list[str]]:
    """The feature matrix (rows of ``runs``) and its column names."""
    start = _unit_starts(runs.unit)
    x = runs.cycle.astype(np.float64)
    blocks: list[F64] = [x[:, None], z]
    names = ["cycle", *[f"{s}_z" for s in sensor_names]]
    for w in spec.means:
        blocks.append(trailing_mean(z, start, w))
        names += [f"{s}_mean{w}" for s in sensor_names]
    for w in spec.slopes:
        blocks.append(trailing_slope(z, x, start, w))
        names += [f"{s}_slope{w}" for s in sensor_names]
    recent = trailing_mean(z, start, spec.drift_recent)
    blocks.append(recent - baseline_mean(z, start, spec.drift_baseline))
    names += [f"{s}_drift" for s in sensor_names]
    return np.hstack(blocks), names
