"""The insights tables: scoring runs and their predictions, service centres, booked service
appointments, and charging plans with one row per vehicle.

A **score run** is one pass of a model over a tenant's lake; its **predictions** are one row
per (vehicle, component) with the probability of failing within the model's horizon and the
predicted window; a prediction past the model's threshold is an alert. The energy and battery
models' runs store **estimates** instead: per vehicle and quantity a value and its interval. Vehicles are stored
by their lake pseudonym and, where the tenant's registry knows it, their VIN (commands need
it). **Appointments** are what the scheduler booked for an alert and what the driver made of
it; **charging plans** hold the schedule sent to each vehicle (power per slot, JSON list).
This module imports only SQLAlchemy: the migrations load it without the insights extra.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from drivetrain.cloud.infra.models import Base, UTCDateTime


class ScoreRunRow(Base):
    """One batch scoring pass of a model over a tenant's lake."""

    __tablename__ = "insight_score_runs"
    __table_args__ = (Index("ix_insight_score_runs_tenant_id_started_at", "tenant_id", "started_at"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    model_name: Mapped[str] = mapped_column(String(48))
    model_version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16))  # "command", "schedule", "api"
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data_start: Mapped[datetime] = mapped_column(UTCDateTime())
    data_end: Mapped[datetime] = mapped_column(UTCDateTime())
    vehicles: Mapped[int] = mapped_column(Integer)
    predictions: Mapped[int] = mapped_column(Integer)
    alerts: Mapped[int] = mapped_column(Integer)


class PredictionRow(Base):
    """One vehicle's prediction for one component in one run."""

    __tablename__ = "insight_predictions"
    __table_args__ = (
        Index("ix_insight_predictions_run_id_alert", "run_id", "alert"),
        Index("ix_insight_predictions_tenant_id_vin", "tenant_id", "vin"),
    )

    prediction_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("insight_score_runs.run_id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    vehicle: Mapped[str] = mapped_column(String(64))  # the lake pseudonym
    vin: Mapped[str | None] = mapped_column(String(17), nullable=True)
    component: Mapped[str] = mapped_column(String(32))
    probability: Mapped[float] = mapped_column(Float)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    alert: Mapped[bool] = mapped_column(Boolean)


class EstimateRow(Base):
    """One vehicle's estimate of one quantity in one run of the energy or battery model
    (consumption, range, odometer or days at end of life) with its interval."""

    __tablename__ = "insight_estimates"
    __table_args__ = (
        Index("ix_insight_estimates_run_id_vin", "run_id", "vin"),
        Index("ix_insight_estimates_tenant_id_vin", "tenant_id", "vin"),
    )

    estimate_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("insight_score_runs.run_id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    vehicle: Mapped[str] = mapped_column(String(64))  # the lake pseudonym
    vin: Mapped[str | None] = mapped_column(String(17), nullable=True)
    quantity: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    coverage: Mapped[float] = mapped_column(Float)  # the interval's nominal coverage
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceCentreRow(Base):
    """A workshop of a tenant's service network: place, daily capacity, parts in stock."""

    __tablename__ = "insight_service_centres"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.tenant_id", ondelete="RESTRICT"), primary_key=True
    )
    centre_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    daily_capacity: Mapped[int] = mapped_column(Integer)
    stock: Mapped[str] = mapped_column(Text)  # JSON object: part -> units
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AppointmentRow(Base):
    """A service appointment booked for a predicted failure, and the driver's answer."""

    __tablename__ = "insight_appointments"
    __table_args__ = (
        Index("ix_insight_appointments_tenant_id_status", "tenant_id", "status"),
        Index("ix_insight_appointments_tenant_id_vin", "tenant_id", "vin"),
    )

    appointment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    vin: Mapped[str] = mapped_column(String(17))
    component: Mapped[str] = mapped_column(String(32))
    part: Mapped[str] = mapped_column(String(48))
    centre_id: Mapped[str] = mapped_column(String(48))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # proposed, accepted, cancelled
    probability: Mapped[float] = mapped_column(Float)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    distance_km: Mapped[float] = mapped_column(Float)
    run_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    command_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # last sent


class ChargingPlanRow(Base):
    """One solved charging plan for a site: its tariff window, cost and baseline."""

    __tablename__ = "insight_charging_plans"
    __table_args__ = (Index("ix_insight_charging_plans_tenant_id_created_at", "tenant_id", "created_at"),)

    plan_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id", ondelete="RESTRICT"))
    site: Mapped[str] = mapped_column(String(120))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    slot_minutes: Mapped[int] = mapped_column(Integer)
    site_limit_kw: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost: Mapped[float] = mapped_column(Float)
    baseline_cost: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChargingScheduleRow(Base):
    """One vehicle's schedule within a plan (power per slot) and the command that carried it."""

    __tablename__ = "insight_charging_schedules"

    plan_id: Mapped[str] = mapped_column(
        ForeignKey("insight_charging_plans.plan_id", ondelete="CASCADE"), primary_key=True
    )
    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    power_kw: Mapped[str] = mapped_column(Text)  # JSON list, one value per slot
    energy_kwh: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    baseline_cost: Mapped[float] = mapped_column(Float)
    shortfall_kwh: Mapped[float] = mapped_column(Float)
    command_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
