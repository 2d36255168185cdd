"""Predictive maintenance: which component of which vehicle fails soon, when, how sure.

Input is what the lake returns for a fleet (``Lake.signals(..., every=...)``): a long table of
``vehicle, path, ts, value`` (down-sampled buckets). ``observation_frame`` pivots it to one row
per (vehicle, bucket) with the health-related VSS signals, and ``health_features`` adds each
vehicle's trailing trends (causal: a row sees only its own vehicle's past). Ground truth comes
from the simulator's ``component_events`` (failure times per vehicle and component).

Per component (``COMPONENTS``) a ``ComponentModel`` holds:

- a LightGBM classifier of "fails within ``horizon_s``" (its probability is the alert's
  confidence), and
- two LightGBM quantile regressors (10 % and 90 %) of the time to failure, trained on rows
  that fail within twice the horizon: the predicted window.

``alerts`` turns the latest row of each vehicle into ``MaintenanceAlert``s when the probability
passes ``threshold``; ``evaluate_alerts`` replays a held-out fleet through time and counts the
failures no alert preceded (missed) and the lead time of those it did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.cloud.insights._deps import require
from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]

Component = Literal["brake_pads", "tires", "lv_battery", "coolant_pump", "hv_cell"]
COMPONENTS: Final[tuple[Component, ...]] = ("brake_pads", "tires", "lv_battery", "coolant_pump", "hv_cell")

_WHEELS = ("Row1.Wheel.Left", "Row1.Wheel.Right", "Row2.Wheel.Left", "Row2.Wheel.Right")
TIRE_PRESSURE = tuple(f"Vehicle.Chassis.Axle.{w}.Tire.Pressure" for w in _WHEELS)
PAD_WEAR = tuple(f"Vehicle.Chassis.Axle.{w}.Brake.PadWear" for w in _WHEELS)
LV_VOLTAGE = "Vehicle.LowVoltageBattery.CurrentVoltage"
MOTOR_TEMP = ("Vehicle.Powertrain.ElectricMotor.Front.Temperature", "Vehicle.Powertrain.ElectricMotor.Rear.Temperature")
COOLANT_TEMP = (
    "Vehicle.Powertrain.ElectricMotor.Front.EngineCoolant.Temperature",
    "Vehicle.Powertrain.ElectricMotor.Rear.EngineCoolant.Temperature",
)
CELL_MAX = "Vehicle.Powertrain.TractionBattery.CellVoltage.Max"
CELL_MIN = "Vehicle.Powertrain.TractionBattery.CellVoltage.Min"
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
SPEED = "Vehicle.Speed"
AMBIENT = "Vehicle.Exterior.AirTemperature"
HEALTH_PATHS: Final[tuple[str, ...]] = (
    *TIRE_PRESSURE, *PAD_WEAR, LV_VOLTAGE, *MOTOR_TEMP, *COOLANT_TEMP, CELL_MAX, CELL_MIN, SOH, SPEED, AMBIENT,
)  # fmt: skip

#: The derived health indicators each row carries (before trends).
INDICATORS: Final[tuple[str, ...]] = (
    "tire_pressure_min_kpa", "tire_pressure_spread_kpa", "pad_wear_max_pct", "lv_voltage_v",
    "motor_temp_c", "coolant_temp_c", "motor_minus_coolant_c", "cell_spread_mv", "soh_pct",
    "speed_kmh", "ambient_c",
)  # fmt: skip
TREND_WINDOWS: Final[tuple[int, ...]] = (6, 24)


class MaintenanceDataError(BadInputError):
    """Telemetry or ground truth that cannot be used for maintenance models; names the column."""


@dataclass(frozen=True)
class ObservationFrame:
    """One row per (vehicle, time bucket), sorted by vehicle then time."""

    vehicle: npt.NDArray[np.str_]
    ts_s: F64
    indicators: F64  # (rows, len(INDICATORS)), NaN where a signal was not reported

    def __len__(self) -> int:
        return len(self.ts_s)

    def take(self, mask: npt.NDArray[np.bool_]) -> ObservationFrame:
        return ObservationFrame(self.vehicle[mask], self.ts_s[mask], self.indicators[mask])


def _nanmax(*arrays: F64) -> F64:
    stacked = np.vstack(arrays)
    out = np.full(stacked.shape[1], np.nan)
    ok = ~np.all(np.isnan(stacked), axis=0)
    out[ok] = np.nanmax(stacked[:, ok], axis=0)
    return out


def observation_frame(signals: pa.Table) -> ObservationFrame:
    """Pivot the lake's long table (``vehicle, path, ts, value``) into health indicators.

    Raises:
        MaintenanceDataError: a needed column is missing or has the wrong type.
    """
    for name in ("vehicle", "path", "ts", "value"):
        if name not in signals.column_names:
            raise MaintenanceDataError(f"telemetry table lacks column {name!r}")
    ts = signals.column("ts")
    if pa.types.is_timestamp(ts.type):
        ts_s = pc.cast(pc.cast(ts, pa.timestamp("ns", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False) / 1e9
    elif pa.types.is_integer(ts.type) or pa.types.is_floating(ts.type):
        ts_s = pc.cast(ts, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        raise MaintenanceDataError(f"column 'ts' is {ts.type}; expected a timestamp or seconds")
    vehicle = np.asarray(pc.cast(signals.column("vehicle"), pa.string()).to_pylist(), dtype=str)
    path = np.asarray(pc.cast(signals.column("path"), pa.string()).to_pylist(), dtype=str)
    value = pc.cast(signals.column("value"), pa.float64()).to_numpy(zero_copy_only=False)
    keys = np.char.add(np.char.add(vehicle, "\x00"), ts_s.astype(np.int64).astype(str))
    unique_keys, row_of = np.unique(keys, return_inverse=True)
    rows = len(unique_keys)
    first = np.zeros(rows, dtype=np.int64)
    first[row_of[::-1]] = np.arange(len(row_of))[::-1]
    wide: dict[str, F64] = {}
    for p in HEALTH_PATHS:
        column = np.full(rows, np.nan)
        mask = path == p
        column[row_of[mask]] = value[mask]
        wide[p] = column
    tires = np.vstack([wide[p] for p in TIRE_PRESSURE])
    motor = _nanmax(*(wide[p] for p in MOTOR_TEMP))
    coolant = _nanmax(*(wide[p] for p in COOLANT_TEMP))
    with np.errstate(all="ignore"):
        indicators = np.column_stack([
            np.nanmin(np.where(np.isnan(tires), np.inf, tires), axis=0),
            np.nanmax(np.where(np.isnan(tires), -np.inf, tires), axis=0) - np.nanmin(np.where(np.isnan(tires), np.inf, tires), axis=0),
            _nanmax(*(wide[p] for p in PAD_WEAR)),
            wide[LV_VOLTAGE],
            motor,
            coolant,
            motor - coolant,
            1000.0 * (wide[CELL_MAX] - wide[CELL_MIN]),
            wide[SOH],
            wide[SPEED],
            wide[AMBIENT],
        ])  # fmt: skip
    indicators[~np.isfinite(indicators)] = np.nan
    order = np.lexsort((ts_s[first], vehicle[first]))
    return ObservationFrame(vehicle[first][order], ts_s[first][order], indicators[order])


def health_features(frame: ObservationFrame) -> tuple[F64, list[str]]:
    """Indicators, their per-vehicle trailing means and slopes (per hour), and vehicle age in
    the data — causal, one row per frame row."""
    from drivetrain.cloud.insights.rul_features import trailing_mean, trailing_slope

    n = len(frame)
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = frame.vehicle[1:] != frame.vehicle[:-1]
    first = np.flatnonzero(boundary)
    start = np.repeat(first, np.diff(np.append(first, n))).astype(np.int64)
    # Carry each indicator forward within its vehicle so a bucket without a sample sees the last.
    filled = frame.indicators.copy()
    for j in range(filled.shape[1]):
        column = filled[:, j]
        valid = ~np.isnan(column)
        index = np.where(valid, np.arange(n), -1)
        np.maximum.accumulate(index, out=index)
        ok = index >= start
        column[ok] = column[index[ok]]
        column[~ok] = np.nan
    zero_filled = np.nan_to_num(filled)
    hours = frame.ts_s / 3600.0
    blocks = [filled]
    names = list(INDICATORS)
    for w in TREND_WINDOWS:
        blocks.append(trailing_mean(zero_filled, start, w))
        names += [f"{i}_mean{w}" for i in INDICATORS]
        blocks.append(trailing_slope(zero_filled, hours, start, w))
        names += [f"{i}_slope{w}" for i in INDICATORS]
    return np.hstack(blocks), names


def time_to_failure(
    frame: ObservationFrame, failures: Mapping[tuple[str, str], float], component: str
) -> F64:
    """Seconds from each row to its vehicle's ``component`` failure (``inf`` when none)."""
    out = np.full(len(frame), np.inf)
    for (vehicle, comp), when in failures.items():
        if comp == component:
            rows = frame.vehicle == vehicle
            out[rows] = when - frame.ts_s[rows]
    return out


@dataclass
class ComponentModel:
    """Failure-within-horizon classifier plus 10 %/90 % time-to-failure regressors."""

    component: str
    horizon_s: float
    classifier: object = None
    low: object = None
    high: object = None
    positives: int = 0

    def fit(self, features: F64, ttf_s: F64, *, seed: int = 0) -> ComponentModel:
        lightgbm = require("lightgbm")
        alive = ttf_s >= 0
        x, ttf = features[alive], ttf_s[alive]
        label = (ttf <= self.horizon_s).astype(int)
        self.positives = int(label.sum())
        params = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20,
                  "n_jobs": 1, "verbose": -1, "random_state": seed}  # fmt: skip
        if 0 < self.positives < len(label):
            self.classifier = lightgbm.LGBMClassifier(**params).fit(x, label)
        near = ttf <= 2 * self.horizon_s
        if near.sum() >= 20:
            self.low = lightgbm.LGBMRegressor(objective="quantile", alpha=0.1, **params).fit(x[near], ttf[near])
            self.high = lightgbm.LGBMRegressor(objective="quantile", alpha=0.9, **params).fit(x[near], ttf[near])
        return self

    def probability(self, features: F64) -> F64:
        if self.classifier is None:
            return np.zeros(len(features))
        return np.asarray(self.classifier.predict_proba(features)[:, 1], dtype=np.float64)  # type: ignore[attr-defined]

    def window_s(self, features: F64) -> tuple[F64, F64]:
        """(earliest, latest) time to failure, seconds (10 %/90 % quantiles)."""
        if self.low is None or self.high is None:
            return np.zeros(len(features)), np.full(len(features), self.horizon_s)
        lo = np.maximum(0.0, self.low.predict(features))  # type: ignore[attr-defined]
        hi = np.maximum(lo, self.high.predict(features))  # type: ignore[attr-defined]
        return lo, hi


@dataclass(frozen=True)
class MaintenanceAlert:
    """A predicted failure: the window (UTC seconds) and the model's confidence."""

    vehicle: str
    component: str
    probability: float
    window_start_s: float
    window_end_s: float
    issued_s: float

    def to_dict(self) -> dict[str, object]:
        return {
            "vehicle": self.vehicle,
            "component": self.component,
            "probability": round(self.probability, 3),
            "window_start_s": round(self.window_start_s, 1),
            "window_end_s": round(self.window_end_s, 1),
            "issued_s": round(self.issued_s, 1),
        }


@dataclass
class MaintenanceModels:
    """One ``ComponentModel`` per component, over the same features."""

    horizon_s: float
    threshold: float = 0.5
    feature_names: list[str] = field(default_factory=list)
    models: dict[str, ComponentModel] = field(default_factory=dict)

    def fit(self, frame: ObservationFrame, failures: Mapping[tuple[str, str], float]) -> MaintenanceModels:
        features, self.feature_names = health_features(frame)
        for component in COMPONENTS:
            ttf = time_to_failure(frame, failures, component)
            self.models[component] = ComponentModel(component, self.horizon_s).fit(features, ttf)
        return self

    def score_rows(self, frame: ObservationFrame) -> dict[str, tuple[F64, F64, F64]]:
        """Per component: (probability, window start, window end) at every row (seconds from the row)."""
        features, _ = health_features(frame)
        out = {}
        for component, model in self.models.items():
            lo, hi = model.window_s(features)
            out[component] = (model.probability(features), lo, hi)
        return out

    def alerts(self, frame: ObservationFrame) -> list[MaintenanceAlert]:
        """Alerts at each vehicle's latest row (the batch job's view of "now")."""
        scored = self.score_rows(frame)
        last = np.flatnonzero(np.append(frame.vehicle[1:] != frame.vehicle[:-1], True))
        out = []
        for component, (p, lo, hi) in scored.items():
            for row in last:
                if p[row] >= self.threshold:
                    t = float(frame.ts_s[row])
                    out.append(MaintenanceAlert(str(frame.vehicle[row]), component, float(p[row]),
                                                t + float(lo[row]), t + float(hi[row]), t))  # fmt: skip
        return sorted(out, key=lambda a: (a.window_start_s, a.vehicle))


@dataclass(frozen=True)
class AlertEvaluation:
    """Replay of a held-out fleet: failures caught in time, missed, lead time, false alarms."""

    component: str
    failures: int
    caught: int
    missed: int
    mean_lead_time_s: float
    false_alarm_vehicles: int
    window_hit_rate: float  # share of caught failures inside the first alert's window

    def to_dict(self) -> dict[str, object]:
        return {
            "component": self.component, "failures": self.failures, "caught": self.caught,
            "missed": self.missed, "mean_lead_time_s": None if math.isnan(self.mean_lead_time_s) else round(self.mean_lead_time_s, 1),
            "false_alarm_vehicles": self.false_alarm_vehicles,
            "window_hit_rate": None if math.isnan(self.window_hit_rate) else round(self.window_hit_rate, 3),
        }  # fmt: skip


def evaluate_alerts(
    models: MaintenanceModels, frame: ObservationFrame, failures: Mapping[tuple[str, str], float]
) -> list[AlertEvaluation]:
    """Replay held-out vehicles row by row: the first row whose probability passes the threshold
    is the alert. A failure is caught if alerted before it happened; the lead time is failure
    time minus alert time. An alert on a vehicle whose component did not fail within the
    horizon of the alert is a false alarm."""
    scored = models.score_rows(frame)
    vehicles = np.unique(frame.vehicle)
    out = []
    for component, (p, lo, hi) in scored.items():
        caught = missed = false_alarms = in_window = 0
        leads: list[float] = []
        n_failures = 0
        for vehicle in vehicles:
            rows = np.flatnonzero(frame.vehicle == vehicle)
            fail_at = failures.get((str(vehicle), component))
            before = rows if fail_at is None else rows[frame.ts_s[rows] < fail_at]
            fired = before[p[before] >= models.threshold]
            if fail_at is not None and fail_at <= frame.ts_s[rows[-1]] + models.horizon_s:
                if fail_at < frame.ts_s[rows[0]]:
                    continue  # failed before the data starts: nothing to predict
                n_failures += 1
                if fired.size:
                    caught += 1
                    t = frame.ts_s[fired[0]]
                    leads.append(fail_at - t)
                    in_window += int(t + lo[fired[0]] <= fail_at <= t + hi[fired[0]])
                else:
                    missed += 1
            elif fired.size and (fail_at is None or fail_at - frame.ts_s[fired[0]] > models.horizon_s):
                false_alarms += 1
        out.append(AlertEvaluation(
            component, n_failures, caught, missed, float(np.mean(leads)) if leads else math.nan,
            false_alarms, in_window / caught if caught else math.nan,
        ))  # fmt: skip
    return out


def failures_from_events(events: pa.Table, vehicle_of: Mapping[str, str] | None = None) -> dict[tuple[str, str], float]:
    """``{(vehicle, component): failure time s}`` from the simulator's ``component_events``
    (``vin, component, kind, time_s``); ``vehicle_of`` maps VINs to the lake's vehicle ids
    (pseudonyms) when they differ.

    Raises:
        MaintenanceDataError: a needed column is missing.
    """
    for name in ("vin", "component", "kind", "time_s"):
        if name not in events.column_names:
            raise MaintenanceDataError(f"component events lack column {name!r}")
    out: dict[tuple[str, str], float] = {}
    for row in events.to_pylist():
        if row["kind"] != "failure":
            continue
        vehicle = vehicle_of.get(row["vin"], row["vin"]) if vehicle_of else row["vin"]
        key = (vehicle, row["component"])
        out[key] = min(out.get(key, math.inf), float(row["time_s"]))
    return out


def split_vehicles(vehicles: Sequence[str], held_out_share: float, seed: int = 0) -> tuple[set[str], set[str]]:
    """(training, held-out) vehicle sets."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(sorted(set(vehicles)))
    cut = round(len(order) * (1 - held_out_share))
    return set(order[:cut].tolist()), set(order[cut:].tolist())
