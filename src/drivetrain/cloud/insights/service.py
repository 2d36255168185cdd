"""The insights domain's public functions for predictions: score a tenant's lake with the
latest model and store the result; read runs, alerts and a vehicle's predictions.

Every reader takes the tenant it acts for; another tenant's vehicle answers as one without
predictions. Scoring reads the lake outside the database transaction and stores the run and
its predictions in one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import list_vehicles
from drivetrain.cloud.infra import Database, record_audit
from drivetrain.cloud.insights.fleet_models import (
    BATTERY_MODEL,
    COVERAGE,
    ENERGY_MODEL,
    BatteryArtifact,
    EnergyArtifact,
    VehicleEstimate,
    paths_of,
    score_battery,
    score_energy,
)
from drivetrain.cloud.insights.fleet_models import lake_window as estimate_window
from drivetrain.cloud.insights.models import EstimateRow, PredictionRow, ScoreRunRow
from drivetrain.cloud.insights.registry import ModelArtifactError, ModelCard, ModelRegistry
from drivetrain.cloud.insights.training import (
    MAINTENANCE_MODEL,
    MAX_LAKE_ROWS,
    ComponentPrediction,
    MaintenanceArtifact,
    health_paths,
    lake_window,
    score_latest,
)
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.core.errors import BadInputError

Trigger = Literal["command", "schedule", "api"]
#: The models the batch job scores: maintenance alerts, and the energy and battery estimates.
SCORED_MODELS: Final = (MAINTENANCE_MODEL, ENERGY_MODEL, BATTERY_MODEL)
MAX_PAGE: Final = 1000
#: Score runs kept per tenant; older runs and their predictions are deleted.
KEEP_RUNS: Final = 50


@dataclass(frozen=True)
class ScoreRun:
    """One scoring pass: which model, over what data, how many vehicles and alerts."""

    run_id: str
    tenant: str
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
    def of(cls, row: ScoreRunRow) -> ScoreRun:
        return cls(row.run_id, row.tenant_id, row.model_name, row.model_version, row.trigger,
                   row.started_at, row.finished_at, row.data_start, row.data_end, row.vehicles,
                   row.predictions, row.alerts)  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """A stored prediction: a vehicle's component, its failure probability within the
    model's horizon (the confidence), and the predicted failure window."""

    run_id: str
    vehicle: str
    vin: str | None
    component: str
    probability: float
    window_start: datetime
    window_end: datetime
    observed_at: datetime
    alert: bool

    @classmethod
    def of(cls, row: PredictionRow) -> Prediction:
        return cls(row.run_id, row.vehicle, row.vin, row.component, row.probability,
                   row.window_start, row.window_end, row.observed_at, row.alert)  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """A stored estimate of the energy or battery model: one vehicle, one quantity, its
    value and its interval (``coverage``, e.g. 0.8)."""

    run_id: str
    vehicle: str
    vin: str | None
    quantity: str
    unit: str
    value: float
    low: float
    high: float
    coverage: float
    observed_at: datetime

    @classmethod
    def of(cls, row: EstimateRow) -> Estimate:
        return cls(row.run_id, row.vehicle, row.vin, row.quantity, row.unit, row.value, row.low,
                   row.high, row.coverage, row.observed_at)  # fmt: skip


def _registered(session: Session, tenant: str, field: str) -> dict[str, str]:
    """The tenant's registered vehicles: lake pseudonym → ``field`` of the vehicle."""
    pseudonym = pseudonymiser(session, tenant)
    out: dict[str, str] = {}
    after: str | None = None
    while True:
        page = list_vehicles(session, tenant=tenant, limit=1000, after_vin=after)
        out.update({pseudonym(v.vin): getattr(v, field) for v in page})
        if len(page) < 1000:
            return out
        after = page[-1].vin


def vins_by_pseudonym(session: Session, tenant: str) -> dict[str, str]:
    """The tenant's registered vehicles: lake pseudonym → VIN."""
    return _registered(session, tenant, "vin")


def vehicle_models(session: Session, tenant: str) -> dict[str, str]:
    """The tenant's registered vehicles: lake pseudonym → model."""
    return _registered(session, tenant, "model")


def store_run(
    session: Session,
    *,
    tenant: str,
    card: ModelCard,
    predictions: Sequence[ComponentPrediction],
    threshold: float,
    trigger: Trigger,
    estimates: Sequence[VehicleEstimate] = (),
    data_window: tuple[datetime, datetime],
    started_at: datetime,
    actor: str,
    now: datetime | None = None,
) -> ScoreRun:
    """Store one scoring pass and its predictions (maintenance) or estimates (energy,
    battery); keeps the newest ``KEEP_RUNS`` runs of the model."""
    now = now or datetime.now(UTC)
    vins = vins_by_pseudonym(session, tenant)
    run = ScoreRunRow(
        run_id=f"run-{uuid.uuid4().hex[:20]}", tenant_id=tenant, model_name=card.name,
        model_version=card.version, trigger=trigger, started_at=started_at, finished_at=now,
        data_start=data_window[0], data_end=data_window[1],
        vehicles=len({p.vehicle for p in predictions} | {e.vehicle for e in estimates}),
        predictions=len(predictions) + len(estimates),
        alerts=sum(1 for p in predictions if p.probability >= threshold),
    )  # fmt: skip
    session.add(run)
    session.flush()
    session.add_all(
        PredictionRow(run_id=run.run_id, tenant_id=tenant, vehicle=p.vehicle, vin=vins.get(p.vehicle),
                      component=p.component, probability=p.probability, window_start=p.window_start,
                      window_end=p.window_end, observed_at=p.observed_at,
                      alert=p.probability >= threshold)
        for p in predictions
    )
    session.add_all(
        EstimateRow(run_id=run.run_id, tenant_id=tenant, vehicle=e.vehicle, vin=vins.get(e.vehicle),
                    quantity=e.quantity, unit=e.unit, value=e.value, low=e.low, high=e.high,
                    coverage=COVERAGE, observed_at=e.observed_at)
        for e in estimates
    )
    old = session.scalars(
        select(ScoreRunRow.run_id).where(ScoreRunRow.tenant_id == tenant, ScoreRunRow.model_name == card.name)
        .order_by(ScoreRunRow.started_at.desc(), ScoreRunRow.finished_at.desc(), ScoreRunRow.run_id.desc()).offset(KEEP_RUNS)
    ).all()  # fmt: skip
    if old:
        session.execute(delete(PredictionRow).where(PredictionRow.run_id.in_(old)))
        session.execute(delete(EstimateRow).where(EstimateRow.run_id.in_(old)))
        session.execute(delete(ScoreRunRow).where(ScoreRunRow.run_id.in_(old)))
    record_audit(session, tenant=tenant, actor=actor, action="insights.score",
                 target=f"run:{run.run_id}",
                 details={"model": card.name, "version": card.version, "trigger": trigger,
                          "vehicles": run.vehicles, "alerts": run.alerts}, now=now)  # fmt: skip
    return ScoreRun.of(run)


def score_tenant(
    database: Database,
    lake: object,
    registry: ModelRegistry,
    tenant: str,
    *,
    trigger: Trigger,
    actor: str,
    now: datetime | None = None,
    version: int | None = None,
    model: str = MAINTENANCE_MODEL,
) -> ScoreRun:
    """Score ``tenant``'s lake with ``model`` (latest version unless ``version``) and store
    the run.

    Raises:
        BadInputError: a model the batch job does not score.
        NotFoundError: no model trained.
        ModelArtifactError: the stored model is altered or unreadable.
        QueryError, StorageError: the lake cannot be read.
    """
    if model not in SCORED_MODELS:
        raise BadInputError(f"model {model!r}; expected one of {', '.join(SCORED_MODELS)}")
    if model != MAINTENANCE_MODEL:
        return _score_estimates(database, lake, registry, tenant, model, trigger=trigger, actor=actor,
                                now=now, version=version)  # fmt: skip
    started = datetime.now(UTC)
    now = now or started
    card, artifact = registry.load(MAINTENANCE_MODEL, version)
    if not isinstance(artifact, MaintenanceArtifact):
        raise ModelArtifactError(f"model {card.name} v{card.version} is not a maintenance model")
    start, end = lake_window(artifact, now)
    signals = lake.signals(  # type: ignore[attr-defined]
        tenant, None, health_paths(), start, end, every=artifact.every, max_rows=MAX_LAKE_ROWS
    )
    predictions = score_latest(artifact, signals)
    with database.session() as session:
        return store_run(session, tenant=tenant, card=card, predictions=predictions,
                         threshold=artifact.models.threshold, trigger=trigger,
                         data_window=(start, end), started_at=started, actor=actor)  # fmt: skip


def _score_estimates(
    database: Database, lake: object, registry: ModelRegistry, tenant: str, model: str, *,
    trigger: Trigger, actor: str, now: datetime | None, version: int | None,
) -> ScoreRun:
    started = datetime.now(UTC)
    now = now or started
    card, artifact = registry.load(model, version)
    expected = EnergyArtifact if model == ENERGY_MODEL else BatteryArtifact
    if not isinstance(artifact, expected):
        raise ModelArtifactError(f"model {card.name} v{card.version} is not an {model} model")
    start, end = estimate_window(artifact, now)
    signals = lake.signals(  # type: ignore[attr-defined]
        tenant, None, paths_of(artifact), start, end, every=artifact.every, max_rows=MAX_LAKE_ROWS
    )
    if isinstance(artifact, EnergyArtifact):
        with database.session() as session:
            models = vehicle_models(session, tenant)
        estimates = score_energy(artifact, signals, models)
    else:
        estimates = score_battery(artifact, signals)
    with database.session() as session:
        return store_run(session, tenant=tenant, card=card, predictions=(), estimates=estimates, threshold=1.0,
                         trigger=trigger, data_window=(start, end), started_at=started, actor=actor)  # fmt: skip


def latest_run(session: Session, tenant: str, model: str = MAINTENANCE_MODEL) -> ScoreRun | None:
    """The newest run of ``model`` for ``tenant``."""
    row = session.scalars(
        select(ScoreRunRow).where(ScoreRunRow.tenant_id == tenant, ScoreRunRow.model_name == model)
        .order_by(ScoreRunRow.started_at.desc(), ScoreRunRow.finished_at.desc(), ScoreRunRow.run_id.desc()).limit(1)
    ).first()  # fmt: skip
    return ScoreRun.of(row) if row is not None else None


def list_runs(session: Session, tenant: str, *, limit: int = 20) -> list[ScoreRun]:
    """The tenant's score runs, newest first."""
    _check_limit(limit)
    rows = session.scalars(
        select(ScoreRunRow).where(ScoreRunRow.tenant_id == tenant)
        .order_by(ScoreRunRow.started_at.desc(), ScoreRunRow.finished_at.desc(), ScoreRunRow.run_id.desc()).limit(limit)
    )  # fmt: skip
    return [ScoreRun.of(r) for r in rows]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit}; expected 1..{MAX_PAGE}")


def list_alerts(
    session: Session,
    tenant: str,
    *,
    component: str | None = None,
    min_probability: float | None = None,
    limit: int = 100,
) -> tuple[ScoreRun | None, list[Prediction]]:
    """The latest run and its alerts (predictions past the model's threshold), soonest
    predicted window first."""
    _check_limit(limit)
    run = latest_run(session, tenant)
    if run is None:
        return None, []
    query = select(PredictionRow).where(PredictionRow.run_id == run.run_id, PredictionRow.alert)
    if component is not None:
        query = query.where(PredictionRow.component == component)
    if min_probability is not None:
        query = query.where(PredictionRow.probability >= min_probability)
    rows = session.scalars(query.order_by(PredictionRow.window_start, PredictionRow.vehicle).limit(limit))
    return run, [Prediction.of(r) for r in rows]


def vehicle_predictions(session: Session, tenant: str, vin: str) -> tuple[ScoreRun | None, list[Prediction]]:
    """The latest run's predictions for ``vin`` (one per component).

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
    """
    from drivetrain.cloud.fleet import get_vehicle

    get_vehicle(session, vin, tenant=tenant)
    run = latest_run(session, tenant)
    if run is None:
        return None, []
    rows = session.scalars(
        select(PredictionRow).where(PredictionRow.run_id == run.run_id, PredictionRow.vin == vin)
        .order_by(PredictionRow.component)
    )  # fmt: skip
    return run, [Prediction.of(r) for r in rows]


def list_estimates(
    session: Session, tenant: str, model: str, *, vin: str | None = None, limit: int = 100
) -> tuple[ScoreRun | None, list[Estimate]]:
    """The latest run of ``model`` (energy or battery) and its estimates, by vehicle and
    quantity; with ``vin`` only that vehicle's.

    Raises:
        BadInputError: a model without estimates, or a bad limit.
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
    """
    if model not in (ENERGY_MODEL, BATTERY_MODEL):
        raise BadInputError(f"model {model!r} has no estimates; expected {ENERGY_MODEL} or {BATTERY_MODEL}")
    _check_limit(limit)
    if vin is not None:
        from drivetrain.cloud.fleet import get_vehicle

        get_vehicle(session, vin, tenant=tenant)
    run = latest_run(session, tenant, model)
    if run is None:
        return None, []
    query = select(EstimateRow).where(EstimateRow.run_id == run.run_id)
    if vin is not None:
        query = query.where(EstimateRow.vin == vin)
    rows = session.scalars(query.order_by(EstimateRow.vin, EstimateRow.vehicle, EstimateRow.quantity).limit(limit))
    return run, [Estimate.of(r) for r in rows]
