"""The energy/range and traction-battery end-of-life models as stored, scored artifacts.

**Energy** (``energy``): :class:`~drivetrain.cloud.insights.energy.HybridEnergyModel` — the
simulator's physics times a learned correction with CV+ 80 % intervals — trained on the
tenant's trips. A trip is a row of a fleet run's ``trips.parquet`` (its measured net battery
energy, out minus in, is the target); its speed profile, ambient and pack temperature, SoC,
SoH and road grade (from the reported altitude) are read from the lake over the trip's time
span. Trips of a share of the vehicles are held out; the card's metrics are ours against the
physics alone on them. Scoring takes each vehicle's driving (buckets where it moved) over the
last ``lookback_s``, predicts its consumption (Wh/km, 80 % interval) under the latest
conditions and turns the energy left in the pack into a range with the same interval.

**Battery end of life** (``battery``): capacity fade against distance driven, a power law
``fade = exp(a) * km^b`` fitted (least squares in log-log) on the training vehicles' ground-truth
state of health (``component_health.parquet``) at their odometer from the lake. A vehicle's
own curve passes through its latest reported fade, so end of life — 30 % fade (SoH 70 %), the
criterion of the NASA cells — falls at ``km_now * (0.3 / fade_now)^(1 / b)``; the 80 % interval
comes from bootstrapping ``b`` over the training vehicles. The date divides the remaining
distance by the vehicle's daily distance (its odometer's slope when the lake spans at least a
day, else ``daily_km``). Held out: each vehicle's SoH predicted from its odometer alone by the
fleet curve, against the fleet's median fade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.cloud.insights.energy import (
    STEP_S,
    STOPPED_KMH,
    HybridEnergyModel,
    PhysicsEnergy,
    TripInput,
    score,
)
from drivetrain.cloud.insights.maintenance import split_vehicles
from drivetrain.cloud.insights.registry import ModelCard, code_version
from drivetrain.core.errors import BadInputError

F64 = npt.NDArray[np.float64]

ENERGY_MODEL: Final = "energy"
BATTERY_MODEL: Final = "battery"
DEFAULT_PHYSICS_MODEL: Final = "compact-hatch-50"
TB: Final = "Vehicle.Powertrain.TractionBattery"
SPEED: Final = "Vehicle.Speed"
AMBIENT: Final = "Vehicle.Exterior.AirTemperature"
ALTITUDE: Final = "Vehicle.CurrentLocation.Altitude"
ODOMETER: Final = "Vehicle.TraveledDistance"
PACK: Final = f"{TB}.Temperature.Average"
SOC: Final = f"{TB}.StateOfCharge.Displayed"
SOH: Final = f"{TB}.StateOfHealth"
ENERGY_LEFT: Final = f"{TB}.StateOfCharge.CurrentEnergy"
ENERGY_PATHS: Final = (SPEED, AMBIENT, ALTITUDE, PACK, SOC, SOH, ENERGY_LEFT)
BATTERY_PATHS: Final = (SOH, ODOMETER)
END_OF_LIFE_FADE: Final = 0.30  # SoH 70 %: the NASA cells' criterion (1.4 of 2 Ah)
MAX_TRIPS: Final = 2000
MIN_TRIP_KM: Final = 0.5
MAX_GRADE: Final = 0.15
#: Longest trip trained on, and the most recent driving scored (the physics steps every 2 s).
MAX_TRIP_S: Final = 3 * 3600.0
SCORED_DRIVING_S: Final = 15 * 60.0
COVERAGE: Final = 0.8


TRIPS_FILE: Final = "trips.parquet"
HEALTH_FILE: Final = "component_health.parquet"
MAX_GROUND_TRUTH_BYTES: Final = 256 * 1024 * 1024


class FleetModelError(BadInputError):
    """Data that cannot train or score the energy or battery model; says what is missing."""


def read_ground_truth(ground_truth: Path, name: str) -> pa.Table:
    """``<ground_truth>/<name>`` of a fleet run (or ``ground_truth`` itself when a file).

    Raises:
        FleetModelError: missing, too large or not Parquet.
    """
    path = ground_truth / name if ground_truth.is_dir() else ground_truth
    try:
        size = path.stat().st_size
        if size > MAX_GROUND_TRUTH_BYTES:
            raise FleetModelError(f"{path}: {size:,} bytes; at most {MAX_GROUND_TRUTH_BYTES:,}")
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise FleetModelError(
            f"{path}: not a readable {name} ({e}); expected the file a fleet run writes (drivetrain sim fleet --out DIR)"
        ) from e


@dataclass(frozen=True)
class VehicleEstimate:
    """One vehicle's (pseudonym) estimate of one quantity with its 80 % interval."""

    vehicle: str
    quantity: str  # consumption_wh_per_km, range_km, eol_odometer_km, eol_days
    unit: str
    value: float
    low: float
    high: float
    observed_at: datetime


@dataclass(frozen=True)
class EnergyArtifact:
    """What ``model.joblib`` holds for the energy model."""

    model: HybridEnergyModel
    every: str
    lookback_s: float
    default_physics_model: str


@dataclass(frozen=True)
class BatteryArtifact:
    """What ``model.joblib`` holds for the battery end-of-life model (see module doc)."""

    log_scale: float  # a
    exponent: float  # b
    exponent_low: float  # 10th percentile of the bootstrapped b
    exponent_high: float  # 90th
    residual_low: float  # 10th/90th percentile of the training log-fade residuals
    residual_high: float
    every: str
    lookback_s: float
    daily_km: float
    end_of_life_fade: float = END_OF_LIFE_FADE


class _Series:
    """A long lake table (vehicle, path, ts, value) split per vehicle and path, time-sorted."""

    def __init__(self, signals: pa.Table) -> None:
        self.by: dict[tuple[str, str], tuple[F64, F64]] = {}
        self.last: dict[str, float] = {}  # each vehicle's latest sample time
        if signals.num_rows == 0:
            return
        ts = signals.column("ts")
        if pa.types.is_timestamp(ts.type):
            t = ts.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy().astype(np.float64) / 1e9
        else:
            t = np.asarray(ts.to_numpy(), dtype=np.float64)
        vehicles = np.asarray(signals.column("vehicle").to_pylist(), dtype=object)
        paths = np.asarray(signals.column("path").to_pylist(), dtype=object)
        values = np.asarray(signals.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
        keys = np.char.add(np.char.add(vehicles.astype(str), "\x1f"), paths.astype(str))
        order = np.lexsort((t, keys))
        keys, t, values = keys[order], t[order], values[order]
        cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(keys)], strict=True):
            vehicle, path = str(keys[lo]).split("\x1f", 1)
            ok = np.isfinite(values[lo:hi])
            self.by[(vehicle, path)] = (t[lo:hi][ok], values[lo:hi][ok])
            if ok.any():
                self.last[vehicle] = max(self.last.get(vehicle, -math.inf), float(t[lo:hi][ok][-1]))

    def vehicles(self) -> list[str]:
        return sorted({v for v, _ in self.by})

    def get(self, vehicle: str, path: str, start: float = -math.inf, end: float = math.inf) -> tuple[F64, F64]:
        t, v = self.by.get((vehicle, path), (np.zeros(0), np.zeros(0)))
        keep = (t >= start) & (t < end)
        return t[keep], v[keep]


def _at(series: tuple[F64, F64], t: float, default: float) -> float:
    """The series' value at or just before ``t`` (its first value when none is before)."""
    times, values = series
    if times.size == 0:
        return default
    i = int(np.searchsorted(times, t, side="right")) - 1
    return float(values[max(i, 0)])


def _trip_input(name: str, series: _Series, vehicle: str, start: float, end: float,
                moving_only: bool = False) -> TripInput | None:
    """The model's input for ``vehicle`` over [start, end): its speed profile on the model's
    time step, ambient, grade from altitude, and the pack's state at the start."""
    t, kmh = series.get(vehicle, SPEED, start, end)
    if moving_only:
        keep = kmh > STOPPED_KMH
        t, kmh = t[keep], kmh[keep]
        if t.size:  # the latest moving buckets, laid end to end
            step = float(np.median(np.diff(t))) if t.size > 1 else STEP_S
            count = max(2, int(SCORED_DRIVING_S / max(step, 1e-3)))
            t, kmh = t[-count:], kmh[-count:]
            t = np.arange(t.size, dtype=np.float64) * step + t[0]
    if t.size < 2:
        return None
    grid = np.arange(t[0], t[-1] + 1e-9, STEP_S)
    speed = np.interp(grid, t, np.clip(kmh, 0.0, 250.0))
    at, ambient = series.get(vehicle, AMBIENT, start - 3600.0, end)
    amb = np.interp(grid, at, ambient) if at.size else np.full(grid.size, 15.0)
    grade = None
    if not moving_only:
        ht, alt = series.get(vehicle, ALTITUDE, start - 60.0, end)
        if ht.size >= 2:
            step_m = np.maximum(speed / 3.6 * STEP_S, 0.5)
            grade = np.clip(np.gradient(np.interp(grid, ht, alt)) / step_m, -MAX_GRADE, MAX_GRADE)
            grade = np.where(speed > STOPPED_KMH, grade, 0.0)
    soc = _at(series.get(vehicle, SOC, start - 3600.0, end), start, 70.0)
    soh = _at(series.get(vehicle, SOH, -math.inf, end), start, 100.0)
    pack = _at(series.get(vehicle, PACK, start - 3600.0, end), start, float(amb[0]))
    trip = TripInput(name=name, speed_kmh=speed, ambient_c=amb, start_soc=min(max(soc / 100.0, 0.05), 1.0),
                     start_pack_c=pack, soh=min(max(soh / 100.0, 0.3), 1.0), grade=grade)  # fmt: skip
    return trip if trip.distance_km >= MIN_TRIP_KM else None


def physics_kwh(trips: Sequence[TripInput], models: Sequence[str]) -> F64:
    """The physics prior of each trip, each on its vehicle's model (one vectorised run)."""
    return PhysicsEnergy(tire_rolling_factor=1.0).predict_kwh(trips, models)


def _physics_model_of(vehicle: str, model_of: Mapping[str, str], default: str) -> str:
    from drivetrain.sim.physics.vehicle_models import VEHICLE_MODELS

    name = model_of.get(vehicle, default)
    return name if name in VEHICLE_MODELS else default


def _span(series: _Series) -> tuple[datetime, datetime]:
    times = [t for t, _ in series.by.values() if t.size]
    if not times:
        raise FleetModelError("the lake holds no samples in the training range")
    lo, hi = min(float(t[0]) for t in times), max(float(t[-1]) for t in times)
    return datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)


def _number(table: pa.Table, name: str, default: float | None = None) -> F64:
    if name not in table.column_names:
        if default is None:
            raise FleetModelError(f"the ground truth lacks the column {name!r}")
        return np.full(table.num_rows, default)
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def train_energy(
    signals: pa.Table,
    trips: pa.Table,
    vehicle_of: Mapping[str, str],
    *,
    model_of: Mapping[str, str] | None = None,
    every: str = "10s",
    lookback_s: float = 86_400.0,
    held_out_share: float = 0.3,
    seed: int = 0,
    default_physics_model: str = DEFAULT_PHYSICS_MODEL,
    source: str = "lake",
) -> tuple[ModelCard, EnergyArtifact]:
    """Train on the trips of ``1 - held_out_share`` of the vehicles, evaluate on the rest.

    ``signals`` are the lake's ``ENERGY_PATHS`` (pseudonyms), ``trips`` a fleet run's
    ``trips.parquet`` (VINs, Unix seconds), ``vehicle_of`` VIN → pseudonym, ``model_of``
    pseudonym → the vehicle's model (its physics; others use ``default_physics_model``).

    Raises:
        FleetModelError: too few usable trips on either side of the split.
    """
    for column in ("vin", "start_s", "end_s", "battery_out_kwh"):
        if column not in trips.column_names:
            raise FleetModelError(f"the trips table lacks the column {column!r} (a fleet run's trips.parquet)")
    series = _Series(signals)
    vins = trips.column("vin").to_pylist()
    start_s, end_s = _number(trips, "start_s"), _number(trips, "end_s")
    measured_all = _number(trips, "battery_out_kwh") - _number(trips, "battery_in_kwh", 0.0)
    stops = _number(trips, "charge_stops", 0.0)
    in_progress = (np.asarray(trips.column("in_progress").to_pylist(), dtype=bool)
                   if "in_progress" in trips.column_names else np.zeros(trips.num_rows, dtype=bool))  # fmt: skip
    inputs: list[TripInput] = []
    owners: list[str] = []
    measured: list[float] = []
    for i, vin in enumerate(vins):
        vehicle = vehicle_of.get(str(vin))
        if (vehicle is None or in_progress[i] or stops[i] > 0 or not measured_all[i] > 0
                or not 0 < end_s[i] - start_s[i] <= MAX_TRIP_S):
            continue
        trip = _trip_input(f"{vehicle}@{int(start_s[i])}", series, vehicle, start_s[i], end_s[i])
        if trip is not None:
            inputs.append(trip)
            owners.append(vehicle)
            measured.append(float(measured_all[i]))
        if len(inputs) >= MAX_TRIPS:
            break
    train_set, held_set = split_vehicles(owners, held_out_share, seed)
    train = [i for i, o in enumerate(owners) if o in train_set]
    held = [i for i, o in enumerate(owners) if o in held_set]
    if len(train) < 5 or not held:
        raise FleetModelError(
            f"{len(inputs)} trips of {len(set(owners))} vehicles have telemetry in the lake ({len(train)} for "
            "training, at least 5 needed, and some held out): run the fleet longer or widen the time range"
        )
    kinds = [_physics_model_of(o, model_of or {}, default_physics_model) for o in owners]
    prior = physics_kwh(inputs, kinds)
    y = np.array(measured)
    model = HybridEnergyModel(physics=PhysicsEnergy(default_physics_model, tire_rolling_factor=1.0))
    model.fit([inputs[i] for i in train], y[train], prior[train])
    predicted = model.predict([inputs[i] for i in held], prior[held])
    ours = score(np.array([p.kwh for p in predicted]), y[held],
                 np.array([p.low_kwh for p in predicted]), np.array([p.high_kwh for p in predicted]))  # fmt: skip
    baseline = score(prior[held], y[held])
    start, end = _span(series)
    card = ModelCard(
        name=ENERGY_MODEL, version=0, kind="energy.trip-consumption",
        created_at=datetime.now(UTC), code_version=code_version(),
        features=("speed_profile", "ambient_c", "grade_from_altitude", "start_soc", "start_pack_c", "soh",
                  "vehicle_model", *(f"residual:{f}" for f in model.feature_names)),
        training={
            "source": source, "start": start.isoformat(), "end": end.isoformat(),
            "vehicles": len(set(owners)), "training_vehicles": len(train_set), "held_out_vehicles": len(held_set),
            "trips": len(inputs), "training_trips": len(train), "held_out_trips": len(held),
            "km": round(sum(t.distance_km for t in inputs), 2),
        },
        metrics={"held_out": {"trips": len(held), "ours": ours.to_dict(), "physics": baseline.to_dict()},
                 "model": model.card()},
        parameters={"every": every, "lookback_s": lookback_s, "held_out_share": held_out_share, "seed": seed,
                    "default_physics_model": default_physics_model, "interval": COVERAGE},
    )  # fmt: skip
    return card, EnergyArtifact(model, every, lookback_s, default_physics_model)


def score_energy(
    artifact: EnergyArtifact, signals: pa.Table, model_of: Mapping[str, str] | None = None
) -> list[VehicleEstimate]:
    """Each vehicle's consumption (Wh/km) on its recent driving and range on the energy left,
    both with the 80 % interval; vehicles that did not move in ``signals`` are left out."""
    series = _Series(signals)
    trips, owners, at = [], [], []
    for vehicle in series.vehicles():
        trip = _trip_input(vehicle, series, vehicle, -math.inf, math.inf, moving_only=True)
        if trip is None:
            continue
        trips.append(trip)
        owners.append(vehicle)
        at.append(series.last[vehicle])
    if not trips:
        return []
    kinds = [_physics_model_of(o, model_of or {}, artifact.default_physics_model) for o in owners]
    predicted = artifact.model.predict(trips, physics_kwh(trips, kinds))
    out = []
    for vehicle, p, t in zip(owners, predicted, at, strict=True):
        observed = datetime.fromtimestamp(t, UTC)
        per_km = 1000.0 / p.distance_km
        wh, lo, hi = p.kwh * per_km, p.low_kwh * per_km, p.high_kwh * per_km
        out.append(VehicleEstimate(vehicle, "consumption_wh_per_km", "Wh/km", wh, lo, hi, observed))
        left = _at(series.get(vehicle, ENERGY_LEFT), math.inf, math.nan)
        if math.isfinite(left) and left >= 0 and wh > 0:
            out.append(VehicleEstimate(vehicle, "range_km", "km", 1000 * left / wh, 1000 * left / hi,
                                       1000 * left / max(lo, 1e-6), observed))  # fmt: skip
    return out


def _latest_per_vehicle(health: pa.Table, vehicle_of: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """Ground truth: pseudonym → (fade, km) at each vehicle's latest sample."""
    for column in ("vin", "time_s", "battery_soh_pct"):
        if column not in health.column_names:
            raise FleetModelError(f"the ground truth lacks the column {column!r} (a fleet run's component_health.parquet)")
    vins = health.column("vin").to_pylist()
    t, soh = _number(health, "time_s"), _number(health, "battery_soh_pct")
    km = _number(health, "odometer_m", math.nan) / 1000.0
    latest: dict[str, tuple[float, float, float]] = {}
    for vin, ti, s, k in zip(vins, t, soh, km, strict=True):
        vehicle = vehicle_of.get(str(vin))
        if vehicle is not None and math.isfinite(s) and (vehicle not in latest or ti >= latest[vehicle][0]):
            latest[vehicle] = (float(ti), 1.0 - float(s) / 100.0, float(k))
    return {v: (f, k) for v, (_, f, k) in latest.items()}


def _fit_loglog(km: F64, fade: F64) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(km), np.log(fade), 1)
    return float(intercept), float(slope)


def train_battery(
    signals: pa.Table,
    health: pa.Table,
    vehicle_of: Mapping[str, str],
    *,
    every: str = "1h",
    lookback_s: float = 30 * 86_400.0,
    daily_km: float = 41.0,
    held_out_share: float = 0.3,
    seed: int = 0,
    source: str = "lake",
) -> tuple[ModelCard, BatteryArtifact]:
    """Fit the fleet's fade-against-distance curve on the training vehicles (ground-truth SoH
    at their odometer in the lake), evaluate on the held-out ones (see module doc).

    Raises:
        FleetModelError: fewer than 4 training vehicles or no held-out one with both figures.
    """
    series = _Series(signals)
    truth = _latest_per_vehicle(health, vehicle_of)
    rows = {}
    for vehicle, (fade, truth_km) in truth.items():
        km = _at(series.get(vehicle, ODOMETER), math.inf, math.nan) / 1000.0  # the lake's odometer (m)
        km = km if math.isfinite(km) else truth_km
        if math.isfinite(km) and km > 1.0 and fade > 0:
            rows[vehicle] = (km, fade)
    train_set, held_set = split_vehicles(list(rows), held_out_share, seed)
    train, held = sorted(train_set), sorted(held_set)
    if len(train) < 4 or not held:
        raise FleetModelError(
            f"{len(rows)} vehicles have both a ground-truth state of health and an odometer in the lake; "
            "the battery model needs at least 4 for training and some held out"
        )
    km_t, fade_t = (np.array([rows[v][i] for v in train]) for i in (0, 1))
    a, b = _fit_loglog(km_t, fade_t)
    rng = np.random.default_rng(seed)
    boot = [_fit_loglog(km_t[s], fade_t[s])[1] for s in (rng.integers(0, len(train), len(train)) for _ in range(300))
            if np.ptp(km_t[s]) > 0]  # fmt: skip
    residuals = np.sort(np.log(fade_t) - (a + b * np.log(km_t)))
    n = len(residuals)
    r_lo = float(residuals[max(0, math.floor(0.1 * (n + 1)) - 1)])
    r_hi = float(residuals[min(n - 1, math.ceil(0.9 * (n + 1)) - 1)])
    km_h, fade_h = (np.array([rows[v][i] for v in held]) for i in (0, 1))
    fit_h = a + b * np.log(km_h)
    soh_h, pred = 100 * (1 - fade_h), 100 * (1 - np.exp(fit_h))
    inside = (100 * (1 - np.exp(fit_h + r_hi)) <= soh_h) & (soh_h <= 100 * (1 - np.exp(fit_h + r_lo)))
    median_fade = float(np.median(fade_t))
    start, end = _span(series)
    b_lo, b_hi = (float(np.percentile(boot, q)) for q in (10, 90)) if boot else (b, b)
    card = ModelCard(
        name=BATTERY_MODEL, version=0, kind="battery.end-of-life",
        created_at=datetime.now(UTC), code_version=code_version(),
        features=("odometer_km", "state_of_health_pct"),
        training={"source": source, "start": start.isoformat(), "end": end.isoformat(),
                  "vehicles": len(rows), "training_vehicles": len(train), "held_out_vehicles": len(held),
                  "km": [round(float(min(km_t)), 1), round(float(max(km_t)), 1)],
                  "soh_pct": [round(100 * (1 - float(max(fade_t))), 2), round(100 * (1 - float(min(fade_t))), 2)]},
        metrics={"held_out": {"vehicles": len(held),
                              "soh_mae_pct_points": round(float(np.mean(np.abs(pred - soh_h))), 3),
                              "soh_coverage_80": round(float(np.mean(inside)), 3),
                              "baseline_soh_mae_pct_points": round(float(np.mean(np.abs(100 * (1 - median_fade) - soh_h))), 3)},
                 "curve": {"log_scale": a, "exponent": b, "exponent_80": [b_lo, b_hi]}},
        parameters={"every": every, "lookback_s": lookback_s, "daily_km": daily_km, "end_of_life_soh_pct": 70.0,
                    "held_out_share": held_out_share, "seed": seed, "interval": COVERAGE},
    )  # fmt: skip
    return card, BatteryArtifact(a, b, b_lo, b_hi, r_lo, r_hi, every, lookback_s, daily_km)


def score_battery(artifact: BatteryArtifact, signals: pa.Table) -> list[VehicleEstimate]:
    """Each vehicle's odometer and days at end of life (SoH 70 %), with the 80 % interval."""
    series = _Series(signals)
    out = []
    end_fade = artifact.end_of_life_fade
    for vehicle in series.vehicles():
        st, soh = series.get(vehicle, SOH)
        ot, odo = series.get(vehicle, ODOMETER)
        if not st.size or not ot.size or odo[-1] <= 1000.0:
            continue
        km, fade = float(odo[-1]) / 1000.0, 1.0 - float(soh[-1]) / 100.0
        observed = datetime.fromtimestamp(float(max(st[-1], ot[-1])), UTC)
        exponents = (artifact.exponent, artifact.exponent_high, artifact.exponent_low)
        if fade >= end_fade:
            eol = [km, km, km]
        else:
            if fade <= 0:  # reads as new: the fleet curve's own fade at this distance
                fade = math.exp(artifact.log_scale + artifact.exponent * math.log(km))
            # A steeper curve (larger exponent) reaches the end sooner.
            eol = [km * (end_fade / fade) ** (1.0 / max(b, 1e-3)) for b in exponents]
        span_days = float(ot[-1] - ot[0]) / 86_400.0
        daily = float(odo[-1] - odo[0]) / 1000.0 / span_days if span_days >= 1.0 else artifact.daily_km
        daily = max(daily, 1.0)
        out.append(VehicleEstimate(vehicle, "eol_odometer_km", "km", eol[0], eol[1], eol[2], observed))
        days = [(e - km) / daily for e in eol]
        out.append(VehicleEstimate(vehicle, "eol_days", "days", days[0], days[1], days[2], observed))
    return out


def lake_window(artifact: EnergyArtifact | BatteryArtifact, now: datetime) -> tuple[datetime, datetime]:
    """The time range scoring reads: ``lookback_s`` before ``now`` up to ``now``."""
    return now - timedelta(seconds=artifact.lookback_s), now + timedelta(microseconds=1)


def paths_of(artifact: EnergyArtifact | BatteryArtifact) -> list[str]:
    return list(ENERGY_PATHS if isinstance(artifact, EnergyArtifact) else BATTERY_PATHS)


def card_summary(card: ModelCard) -> str:
    """The card's held-out figures in a few words (for tables)."""
    held: Any = card.metrics.get("held_out", {})
    if card.name == ENERGY_MODEL:
        ours, physics = held.get("ours", {}), held.get("physics", {})
        return (f"median {100 * ours.get('median_ape', math.nan):.1f} % (physics {100 * physics.get('median_ape', math.nan):.1f} %), "
                f"in 80 % interval {100 * (ours.get('coverage_80') or 0):.0f} % of {held.get('trips')} trips")
    if card.name == BATTERY_MODEL:
        return (f"SoH MAE {held.get('soh_mae_pct_points')} pts (fleet median {held.get('baseline_soh_mae_pct_points')}), "
                f"{held.get('vehicles')} vehicles")
    rows = held if isinstance(held, list) else []
    failures, caught = sum(int(r["failures"]) for r in rows), sum(int(r["caught"]) for r in rows)
    return f"{caught} of {failures} failures alerted ahead, {failures - caught} missed"
