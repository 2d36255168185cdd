"""HTTP bodies of ``/v1/insights`` (Pydantic v2, at the edge only)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.insights.booking import Centre, StoredAppointment, Unbooked
from drivetrain.cloud.insights.charging_plans import ChargingPlan
from drivetrain.cloud.insights.registry import ModelCard
from drivetrain.cloud.insights.service import Estimate, Prediction, ScoreRun


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCardOut(BaseModel):
    """A model version's card: training data range, held-out metrics, features, code version."""

    name: str
    version: int
    kind: str
    created_at: datetime
    code_version: str
    features: list[str]
    training: dict[str, Any] = Field(description="Data range (start, end), vehicles, rows, failures.")
    metrics: dict[str, Any] = Field(description="Held-out evaluation per component.")
    parameters: dict[str, Any]
    sha256: str = Field(description="SHA-256 of the stored artifact, checked on every load.")

    @classmethod
    def of(cls, card: ModelCard) -> ModelCardOut:
        return cls(**{k: v for k, v in card.to_dict().items() if k != "card_version"})


class ModelOut(BaseModel):
    name: str
    versions: list[int]
    latest: ModelCardOut


class ModelListOut(BaseModel):
    models: list[ModelOut]
    reason: str | None = Field(None, description="Why the list is empty, when it is.")


class ScoreRunOut(BaseModel):
    """One batch scoring pass of the lake."""

    run_id: str
    model_name: str
    model_version: int
    trigger: str
    started_at: datetime
    finished_at: datetime
    data_start: datetime
    data_end: datetime
    vehicles: int
    predictions: int
    alerts: int

    @classmethod
    def of(cls, run: ScoreRun) -> ScoreRunOut:
        return cls(**{k: getattr(run, k) for k in cls.model_fields})


class RunListOut(BaseModel):
    runs: list[ScoreRunOut]


class PredictionOut(BaseModel):
    """A component's failure probability within the model's horizon (the confidence) and
    the predicted failure window (10-90 %)."""

    vin: str | None = Field(description="None when the lake's vehicle is not in the registry.")
    vehicle: str = Field(description="The vehicle's pseudonym in the lake.")
    component: str
    probability: float
    window_start: datetime
    window_end: datetime
    observed_at: datetime
    alert: bool

    @classmethod
    def of(cls, p: Prediction) -> PredictionOut:
        return cls(vin=p.vin, vehicle=p.vehicle, component=p.component, probability=p.probability,
                   window_start=p.window_start, window_end=p.window_end,
                   observed_at=p.observed_at, alert=p.alert)  # fmt: skip


class AlertListOut(BaseModel):
    run: ScoreRunOut | None
    alerts: list[PredictionOut]
    reason: str | None = Field(None, description="Why the list is empty, when it is.")


class VehiclePredictionsOut(BaseModel):
    vin: str
    run: ScoreRunOut | None
    predictions: list[PredictionOut]
    reason: str | None = None


class EstimateOut(BaseModel):
    """One vehicle's estimate of one quantity of the energy or battery model, with its
    interval: ``consumption_wh_per_km`` and ``range_km`` (energy), ``eol_odometer_km`` and
    ``eol_days`` (battery end of life at SoH 70 %; ``date`` and its interval are the days
    added to ``observed_at``)."""

    vin: str | None = Field(description="None when the lake's vehicle is not in the registry.")
    vehicle: str = Field(description="The vehicle's pseudonym in the lake.")
    quantity: str
    unit: str
    value: float
    low: float = Field(description="Lower end of the interval.")
    high: float = Field(description="Upper end of the interval.")
    coverage: float = Field(description="The interval's nominal coverage (0.8: an 80 % interval).")
    observed_at: datetime
    date: datetime | None = Field(None, description="For eol_days: the predicted date of end of life.")
    date_low: datetime | None = None
    date_high: datetime | None = None

    @classmethod
    def of(cls, e: Estimate) -> EstimateOut:
        dates: dict[str, datetime | None] = {}
        if e.unit == "days":
            # capped at a century: further reads as "not in sight" (and stays a valid date)
            dates = {k: e.observed_at + timedelta(days=min(max(v, 0.0), 36_500.0))
                     for k, v in (("date", e.value), ("date_low", e.low), ("date_high", e.high))}  # fmt: skip
        return cls(vin=e.vin, vehicle=e.vehicle, quantity=e.quantity, unit=e.unit, value=e.value, low=e.low,
                   high=e.high, coverage=e.coverage, observed_at=e.observed_at, **dates)  # fmt: skip


class EstimateListOut(BaseModel):
    model: str
    run: ScoreRunOut | None
    estimates: list[EstimateOut]
    reason: str | None = Field(None, description="Why the list is empty, when it is.")


class CentreIn(_Strict):
    """A service centre: where it is, jobs per day, parts in stock."""

    name: str = Field(min_length=1, max_length=120)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    daily_capacity: int = Field(ge=0, le=1000)
    stock: dict[str, int] = Field(default_factory=dict, max_length=20,
                                  examples=[{"tyre": 4, "12v-battery": 2}])


class CentreOut(BaseModel):
    centre_id: str
    name: str
    lat: float
    lon: float
    daily_capacity: int
    stock: dict[str, int]
    updated_at: datetime

    @classmethod
    def of(cls, c: Centre) -> CentreOut:
        return cls(centre_id=c.centre_id, name=c.name, lat=c.lat, lon=c.lon,
                   daily_capacity=c.daily_capacity, stock=dict(c.stock), updated_at=c.updated_at)


class CentreListOut(BaseModel):
    centres: list[CentreOut]


class BookIn(_Strict):
    days: int = Field(14, ge=1, le=60, description="How many days ahead to book.")
    max_distance_km: float = Field(150.0, gt=0, le=2000)


class AppointmentOut(BaseModel):
    """A booked service appointment; ``command_id`` is the last signed command telling the car."""

    appointment_id: str
    vin: str
    component: str
    part: str
    centre_id: str
    day: date
    status: str
    probability: float
    window_start: datetime
    window_end: datetime
    distance_km: float
    run_id: str
    created_at: datetime
    updated_at: datetime
    command_id: str | None

    @classmethod
    def of(cls, a: StoredAppointment) -> AppointmentOut:
        return cls(**{k: getattr(a, k) for k in cls.model_fields})


class UnbookedOut(BaseModel):
    vin: str
    component: str
    reason: str

    @classmethod
    def of(cls, u: Unbooked) -> UnbookedOut:
        return cls(vin=u.vin, component=u.component, reason=u.reason)


class BookingOut(BaseModel):
    booked: list[AppointmentOut]
    unbooked: list[UnbookedOut]


class AppointmentListOut(BaseModel):
    appointments: list[AppointmentOut]


class MoveIn(_Strict):
    """Where to move: a chosen centre and day, or neither for the next best slot."""

    centre_id: str | None = Field(None, max_length=48)
    day: date | None = None


class ChargingSessionIn(_Strict):
    vin: str = Field(min_length=17, max_length=17)
    capacity_kwh: float = Field(gt=0, le=500)
    soc_now: float = Field(ge=0, le=1)
    soc_target: float = Field(ge=0, le=1)
    plug_in_slot: int = Field(ge=0, le=672)
    departure_slot: int = Field(ge=1, le=672)
    max_kw: float = Field(11.0, gt=0, le=400)
    efficiency: float = Field(0.9, gt=0, le=1)


class ChargingPlanIn(_Strict):
    """A site's cars, the tariff per slot and the shared grid limit."""

    site: str = Field(min_length=1, max_length=120)
    start_at: datetime
    slot_minutes: int = Field(15, ge=15, le=60)
    prices_per_kwh: list[float] = Field(min_length=1, max_length=672,
                                        description="Price per kWh of each slot from start_at.")
    site_limit_kw: float | None = Field(None, gt=0, le=100_000)
    sessions: list[ChargingSessionIn] = Field(min_length=1, max_length=500)


class VehicleScheduleOut(BaseModel):
    vin: str
    power_kw: list[float]
    energy_kwh: float
    cost: float
    baseline_cost: float
    shortfall_kwh: float
    command_id: str | None


class ChargingPlanOut(BaseModel):
    """A solved plan: its cost against charging at once, and each car's schedule."""

    plan_id: str
    site: str
    start_at: datetime
    slot_minutes: int
    site_limit_kw: float | None
    cost: float
    baseline_cost: float
    saving: float
    created_by: str
    created_at: datetime
    schedules: list[VehicleScheduleOut]

    @classmethod
    def of(cls, p: ChargingPlan) -> ChargingPlanOut:
        return cls(
            plan_id=p.plan_id, site=p.site, start_at=p.start_at, slot_minutes=p.slot_minutes,
            site_limit_kw=p.site_limit_kw, cost=p.cost, baseline_cost=p.baseline_cost,
            saving=p.saving, created_by=p.created_by, created_at=p.created_at,
            schedules=[VehicleScheduleOut(vin=s.vin, power_kw=list(s.power_kw), energy_kwh=s.energy_kwh,
                                          cost=s.cost, baseline_cost=s.baseline_cost,
                                          shortfall_kwh=s.shortfall_kwh, command_id=s.command_id)
                       for s in p.schedules],
        )  # fmt: skip


class ChargingPlanListOut(BaseModel):
    plans: list[ChargingPlanOut]
