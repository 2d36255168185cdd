"""Trip energy and range: the simulator's physics as a prior, a learned residual on top.

``PhysicsEnergy`` drives each trip's speed profile through the vehicle physics
(``drivetrain.sim.physics``: longitudinal dynamics, motor and battery losses, cabin and pack
thermal, HVAC) with the trip's ambient temperature, start SoC, pack temperature, battery
health and — when the route's elevation is known — its grade. What it cannot know (rain, snow,
wind, the ~2 s speed sampling that hides small accelerations, the real car's calibration)
leaves a bias that moves with the conditions.

``HybridEnergyModel`` learns that bias: ``log(measured / physics)`` regressed on a few trip
features with a Huber loss (robust to the trips whose unlogged grade makes them outliers), and
gives every prediction an 80 % interval by CV+ (jackknife+, Barber et al. 2021): the quantiles
of the training trips' own leave-one-out residuals. Intervals are therefore honest on trips
like the ones seen; a trip unlike all of them (a mountain pass with no elevation data) lands
outside more often.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivetrain.cloud.insights._deps import require
from drivetrain.cloud.insights.trip_logs import AMBIENT, PACK, SOC, SOH, SPEED, TripRecord

F64 = npt.NDArray[np.float64]

STEP_S = 2.0  # the logger sampled speed about every 2 s; a finer step adds nothing
STOPPED_KMH = 1.0


@dataclass(frozen=True)
class TripInput:
    """What is known about a trip before its energy is: the inputs of both models.

    ``speed_kmh``/``ambient_c``/``grade`` are sampled every ``STEP_S``; ``grade`` (rise over
    run) is zero where the route's elevation is unknown.
    """

    name: str
    speed_kmh: F64
    ambient_c: F64
    start_soc: float  # 0..1
    start_pack_c: float
    soh: float  # 0..1
    cabin_setpoint_c: float = 17.0
    hvac: bool = True
    grade: F64 | None = None

    @property
    def distance_km(self) -> float:
        return float(np.sum(self.speed_kmh) * STEP_S / 3600.0)

    @property
    def duration_h(self) -> float:
        return len(self.speed_kmh) * STEP_S / 3600.0

    def features(self) -> dict[str, float]:
        """The residual model's candidate features."""
        moving = self.speed_kmh[self.speed_kmh > STOPPED_KMH]
        return {
            "ambient_c": float(np.mean(self.ambient_c)),
            "moving_speed_kmh": float(np.mean(moving)) if moving.size else 0.0,
            "stopped_share": float(np.mean(self.speed_kmh <= STOPPED_KMH)),
            "start_pack_c": self.start_pack_c,
        }

    @classmethod
    def from_record(cls, record: TripRecord, *, cabin_setpoint_c: float = 17.0) -> TripInput:
        """Resample a logged trip's speed and ambient temperature onto the model's time step."""
        t, kmh = record.samples(SPEED)
        grid = np.arange(t[0], t[-1], STEP_S)
        at, ambient = record.samples(AMBIENT)
        return cls(
            name=record.name,
            speed_kmh=np.interp(grid, t, kmh),
            ambient_c=np.interp(grid, at, ambient),
            start_soc=record.first(SOC) / 100.0,
            start_pack_c=record.first(PACK),
            soh=record.first(SOH) / 100.0,
            cabin_setpoint_c=cabin_setpoint_c,
        )


@dataclass(frozen=True)
class PhysicsEnergy:
    """Battery energy of trips from the vehicle physics alone (the baseline)."""

    model_name: str = "compact-hatch-50"
    # All logged e-208 trips were on winter tyres (~15 % more rolling resistance).
    tire_rolling_factor: float = 1.15

    def predict_kwh(self, trips: Sequence[TripInput], models: Sequence[str] | None = None) -> F64:
        """Net battery energy of each trip, kWh (one vectorised run for all of them); each
        trip on ``models[i]`` when given, else on ``model_name``."""
        from drivetrain.sim.physics import TraceRun, drive_traces, get_vehicle_model

        names = list(models) if models is not None else [self.model_name] * len(trips)
        runs = [
            TraceRun(
                get_vehicle_model(name),
                trip.speed_kmh / 3.6,
                dt_s=STEP_S,
                ambient_c=trip.ambient_c,
                grade=trip.grade if trip.grade is not None else 0.0,
                hvac=trip.hvac,
                cabin_setpoint_c=trip.cabin_setpoint_c,
                start_soc=trip.start_soc,
                start_pack_c=trip.start_pack_c,
                soh=trip.soh,
                tire_rolling_factor=self.tire_rolling_factor,
                label=trip.name,
            )
            for trip, name in zip(trips, names, strict=True)
        ]
        return np.array([r.battery_kwh for r in drive_traces(runs)])


@dataclass(frozen=True)
class EnergyPrediction:
    """One trip's predicted energy with its interval (kWh), and the range it implies."""

    name: str
    kwh: float
    low_kwh: float
    high_kwh: float
    physics_kwh: float
    distance_km: float

    @property
    def wh_per_km(self) -> float:
        return 1000.0 * self.kwh / self.distance_km if self.distance_km > 0 else math.nan

    def range_km(self, available_kwh: float) -> tuple[float, float, float]:
        """Range on ``available_kwh`` at this trip's consumption: (expected, low, high) km."""
        if self.distance_km <= 0:
            return (math.nan, math.nan, math.nan)
        per_km = (self.kwh, self.high_kwh, self.low_kwh)
        return tuple(available_kwh * self.distance_km / max(e, 1e-9) for e in per_km)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, object]:
        return {
            "trip": self.name,
            "kwh": round(self.kwh, 3),
            "interval_80_kwh": [round(self.low_kwh, 3), round(self.high_kwh, 3)],
            "physics_kwh": round(self.physics_kwh, 3),
            "distance_km": round(self.distance_km, 2),
            "wh_per_km": round(self.wh_per_km, 1),
        }


@dataclass
class HybridEnergyModel:
    """Physics prior times a learned correction, with CV+ 80 % intervals (see module doc)."""

    feature_names: tuple[str, ...] = ("ambient_c",)
    coverage: float = 0.8
    physics: PhysicsEnergy = field(default_factory=PhysicsEnergy)
    _mean: F64 = field(default_factory=lambda: np.zeros(0))
    _std: F64 = field(default_factory=lambda: np.ones(0))
    _coef: F64 = field(default_factory=lambda: np.zeros(0))
    _intercept: float = 0.0
    _loo_residuals: F64 = field(default_factory=lambda: np.zeros(0))

    def _matrix(self, trips: Sequence[TripInput]) -> F64:
        return np.array([[t.features()[f] for f in self.feature_names] for t in trips], dtype=np.float64).reshape(
            len(trips), len(self.feature_names)
        )

    @staticmethod
    def _fit_huber(x: F64, y: F64) -> tuple[F64, F64, F64, float]:
        linear_model = require("sklearn.linear_model")
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
        huber = linear_model.HuberRegressor(epsilon=1.35, alpha=1e-3, max_iter=1000)
        huber.fit((x - mean) / std, y)
        return mean, std, np.asarray(huber.coef_, dtype=np.float64), float(huber.intercept_)

    def fit(self, trips: Sequence[TripInput], measured_kwh: F64, physics_kwh: F64 | None = None) -> HybridEnergyModel:
        """Learn the correction from trips with measured energy; ``physics_kwh`` may be given
        when already computed (the same trips, same order).

        Raises:
            ValueError: fewer than 5 trips, or a measured or physics energy that is not positive.
            MissingExtraError: scikit-learn is not installed.
        """
        if len(trips) < 5:
            raise ValueError(f"the energy model needs at least 5 trips with measured energy; got {len(trips)}")
        physics = self.physics.predict_kwh(trips) if physics_kwh is None else physics_kwh
        if np.any(measured_kwh <= 0) or np.any(physics <= 0):
            raise ValueError("measured and physics energies must be positive (kWh)")
        x, y = self._matrix(trips), np.log(measured_kwh / physics)
        self._mean, self._std, self._coef, self._intercept = self._fit_huber(x, y)
        residuals = []
        for i in range(len(trips)):
            keep = np.arange(len(trips)) != i
            mean, std, coef, intercept = self._fit_huber(x[keep], y[keep])
            residuals.append(y[i] - (intercept + ((x[i] - mean) / std) @ coef))
        self._loo_residuals = np.array(residuals)
        return self

    def predict(self, trips: Sequence[TripInput], physics_kwh: F64 | None = None) -> list[EnergyPrediction]:
        """Energy and 80 % interval of each trip."""
        if self._loo_residuals.size == 0:
            raise ValueError("the energy model is not fitted")
        physics = self.physics.predict_kwh(trips) if physics_kwh is None else physics_kwh
        log_ratio = self._intercept + ((self._matrix(trips) - self._mean) / self._std) @ self._coef
        low_q, high_q = self._interval_quantiles()
        return [
            EnergyPrediction(
                name=t.name,
                kwh=float(p * math.exp(r)),
                low_kwh=float(p * math.exp(r + low_q)),
                high_kwh=float(p * math.exp(r + high_q)),
                physics_kwh=float(p),
                distance_km=t.distance_km,
            )
            for t, p, r in zip(trips, physics, log_ratio, strict=True)
        ]

    def _interval_quantiles(self) -> tuple[float, float]:
        # Conformal ranks: the ceil((1-a/2)(n+1))-th smallest residual of n (finite-sample valid).
        r = np.sort(self._loo_residuals)
        n, alpha = len(r), 1.0 - self.coverage
        lo = max(0, math.floor(alpha / 2 * (n + 1)) - 1)
        hi = min(n - 1, math.ceil((1 - alpha / 2) * (n + 1)) - 1)
        return float(r[lo]), float(r[hi])

    def card(self) -> dict[str, object]:
        """What the model is, for its model card."""
        return {
            "kind": "physics x exp(huber(features))",
            "physics_model": self.physics.model_name,
            "features": list(self.feature_names),
            "coefficients": dict(zip(self.feature_names, (float(c) for c in self._coef / self._std), strict=True)),
            "intercept_log_ratio": self._intercept,
            "interval": f"{int(100 * self.coverage)} % CV+ from {self._loo_residuals.size} leave-one-out residuals",
        }


@dataclass(frozen=True)
class EnergyScores:
    """Per-trip accuracy of a set of predictions against measured energy."""

    median_ape: float  # median |predicted/measured - 1|, fraction
    mape: float  # mean of the same
    total_error: float  # sum predicted / sum measured - 1
    coverage_80: float | None  # share of trips inside their 80 % interval (None: no interval)

    def to_dict(self) -> dict[str, float | None]:
        return {
            "median_ape": round(self.median_ape, 4),
            "mape": round(self.mape, 4),
            "total_error": round(self.total_error, 4),
            "coverage_80": None if self.coverage_80 is None else round(self.coverage_80, 4),
        }


def score(predicted: F64, measured: F64, low: F64 | None = None, high: F64 | None = None) -> EnergyScores:
    errors = predicted / measured - 1.0
    coverage = None if low is None or high is None else float(np.mean((low <= measured) & (measured <= high)))
    return EnergyScores(
        median_ape=float(np.median(np.abs(errors))),
        mape=float(np.mean(np.abs(errors))),
        total_error=float(predicted.sum() / measured.sum() - 1.0),
        coverage_80=coverage,
    )


def leave_one_trip_out(
    trips: Sequence[TripInput], measured_kwh: F64, feature_names: tuple[str, ...] = ("ambient_c",)
) -> tuple[list[EnergyPrediction], F64]:
    """Each trip predicted by a hybrid model fitted on all the others; also the physics alone.

    Returns (hybrid predictions, physics kWh), in trip order.
    """
    physics = PhysicsEnergy().predict_kwh(trips)
    out = []
    for i in range(len(trips)):
        keep = [j for j in range(len(trips)) if j != i]
        model = HybridEnergyModel(feature_names=feature_names).fit(
            [trips[j] for j in keep], measured_kwh[keep], physics[keep]
        )
        out.extend(model.predict([trips[i]], physics[i : i + 1]))
    return out, physics
