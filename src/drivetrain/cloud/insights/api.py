"""``/v1/insights``: models and their cards, scoring runs, maintenance alerts, per-vehicle
predictions, energy and battery estimates, service centres and appointments, charging plans.

A thin shell over the insights services; every route acts for the caller's own tenant (its
models live under its own folder, another tenant's vehicle, appointment or plan answers 404).
Reads need ``insights:read``; scoring and centres ``insights:write``; what sends commands to
cars (booking, accepting, moving, charging plans) ``insights:write`` and ``fleet:write``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from drivetrain.cloud.infra import Principal, Scope
from drivetrain.cloud.infra.http import Context, request_id_of, require_scopes
from drivetrain.cloud.insights import booking, charging_plans, service
from drivetrain.cloud.insights.api_schemas import (
    AlertListOut,
    AppointmentListOut,
    AppointmentOut,
    BookIn,
    BookingOut,
    CentreIn,
    CentreListOut,
    CentreOut,
    ChargingPlanIn,
    ChargingPlanListOut,
    ChargingPlanOut,
    EstimateListOut,
    EstimateOut,
    ModelCardOut,
    ModelListOut,
    ModelOut,
    MoveIn,
    PredictionOut,
    RunListOut,
    ScoreRunOut,
    UnbookedOut,
    VehiclePredictionsOut,
)
from drivetrain.cloud.insights.charging import ChargingSession
from drivetrain.cloud.insights.registry import ModelRegistry
from drivetrain.cloud.insights.service import MAX_PAGE
from drivetrain.core.errors import BadInputError

router = APIRouter(tags=["insights"])

Reader = Annotated[Principal, require_scopes(Scope.INSIGHTS_READ)]
Writer = Annotated[Principal, require_scopes(Scope.INSIGHTS_WRITE)]
Actor = Annotated[Principal, require_scopes(Scope.INSIGHTS_WRITE, Scope.FLEET_WRITE)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
ModelName = Annotated[str, Path(max_length=48)]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
ScoredModel = Annotated[str, Query(pattern="^(maintenance|energy|battery)$",
                                   description="Which model to score: maintenance, energy or battery.")]
EstimateModel = Annotated[str, Query(pattern="^(energy|battery)$", description="energy or battery.")]
NO_RUN = "no scoring run yet: train a model (drivetrain insights train) and score (drivetrain insights score)"


def _registry(context: Context, principal: Principal) -> ModelRegistry:
    return ModelRegistry.for_tenant(context.settings.data_dir, principal.tenant)


@router.get("/models", response_model=ModelListOut, summary="The caller's trained models and their latest cards")
def get_models(principal: Reader, context: Context) -> ModelListOut:
    """Each model trained on the caller's lake: its versions and its latest model card."""
    registry = _registry(context, principal)
    models = [ModelOut(name=n, versions=registry.versions(n), latest=ModelCardOut.of(registry.card(n)))
              for n in registry.names() if registry.versions(n)]  # fmt: skip
    return ModelListOut(models=models, reason=None if models else "no model trained yet (drivetrain insights train)")


@router.get("/models/{name}", response_model=ModelCardOut, summary="A model's latest card")
def get_model(name: ModelName, principal: Reader, context: Context) -> ModelCardOut:
    """The latest version's card: training data range, held-out metrics, features."""
    return ModelCardOut.of(_registry(context, principal).card(name))


@router.get("/models/{name}/versions/{version}", response_model=ModelCardOut, summary="One version's model card")
def get_model_version(name: ModelName, version: Version, principal: Reader, context: Context) -> ModelCardOut:
    """The card of one stored version."""
    return ModelCardOut.of(_registry(context, principal).card(name, version))


@router.post("/score", response_model=ScoreRunOut, status_code=status.HTTP_201_CREATED,
             summary="Score the caller's lake now with the latest version of a model")  # fmt: skip
def post_score(
    principal: Writer, context: Context, request: Request,
    at: Annotated[datetime | None, Query(description="Score as of this time (a replay); default now.")] = None,
    model: ScoredModel = "maintenance",
) -> ScoreRunOut:
    """Run the batch scoring job now (it also runs on the control plane's schedule): each
    vehicle's latest signals before ``at`` — failure windows (maintenance), consumption and
    range (energy) or end of life (battery)."""
    from drivetrain.cloud.lake.api import lake_of

    if at is not None and at.tzinfo is None:
        raise BadInputError(f"at {at.isoformat()!r} has no timezone")
    run = service.score_tenant(context.database, lake_of(request), _registry(context, principal),
                               principal.tenant, trigger="api", actor=principal.client_id, now=at,
                               model=model)  # fmt: skip
    return ScoreRunOut.of(run)


@router.get("/estimates", response_model=EstimateListOut,
            summary="Per-vehicle estimates of the latest energy or battery run")  # fmt: skip
def get_estimates(
    principal: Reader, context: Context, model: EstimateModel, limit: Limit = 100,
    vin: Annotated[str | None, Query(max_length=17)] = None,
) -> EstimateListOut:
    """Energy: each vehicle's consumption (Wh/km) and range with their 80 % interval; battery:
    its odometer and date at end of life (SoH 70 %) with their 80 % interval."""
    with context.database.session() as session:
        run, found = service.list_estimates(session, principal.tenant, model, vin=vin, limit=limit)
    reason = (f"no {model} scoring run yet: drivetrain insights train --model {model}, then score --model {model}"
              if run is None else (None if found else "no vehicle had the signals the model reads in the scored window"))
    return EstimateListOut(model=model, run=ScoreRunOut.of(run) if run else None,
                           estimates=[EstimateOut.of(e) for e in found], reason=reason)  # fmt: skip


@router.get("/runs", response_model=RunListOut, summary="The caller's scoring runs, newest first")
def get_runs(principal: Reader, context: Context, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> RunListOut:
    """Scoring runs: model version, data window, vehicles, predictions and alerts."""
    with context.database.session() as session:
        return RunListOut(runs=[ScoreRunOut.of(r) for r in service.list_runs(session, principal.tenant, limit=limit)])


@router.get("/alerts", response_model=AlertListOut, summary="Maintenance alerts of the latest run, soonest window first")
def get_alerts(
    principal: Reader, context: Context, limit: Limit = 100,
    component: Annotated[str | None, Query(max_length=32)] = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> AlertListOut:
    """Vehicles whose component is predicted to fail within the model's horizon: the
    predicted window and the confidence."""
    with context.database.session() as session:
        run, alerts = service.list_alerts(session, principal.tenant, component=component,
                                          min_probability=min_probability, limit=limit)  # fmt: skip
    reason = NO_RUN if run is None else (None if alerts else "no component is predicted to fail within the horizon")
    return AlertListOut(run=ScoreRunOut.of(run) if run else None,
                        alerts=[PredictionOut.of(a) for a in alerts], reason=reason)  # fmt: skip


@router.get("/vehicles/{vin}/predictions", response_model=VehiclePredictionsOut,
            summary="A vehicle's latest prediction per component")  # fmt: skip
def get_vehicle_predictions(
    vin: Annotated[str, Path(max_length=17)], principal: Reader, context: Context
) -> VehiclePredictionsOut:
    """One vehicle's failure probability and window per component, from the latest run."""
    with context.database.session() as session:
        run, predictions = service.vehicle_predictions(session, principal.tenant, vin)
    reason = NO_RUN if run is None else (None if predictions else "the vehicle reported no health signals in the scored window")
    return VehiclePredictionsOut(vin=vin, run=ScoreRunOut.of(run) if run else None,
                                 predictions=[PredictionOut.of(p) for p in predictions], reason=reason)  # fmt: skip


@router.put("/service-centres/{centre_id}", response_model=CentreOut, summary="Create or replace a service centre")
def put_centre(
    centre_id: Annotated[str, Path(max_length=48)], body: CentreIn, principal: Writer, context: Context
) -> CentreOut:
    """A workshop of the caller's service network: place, daily capacity, parts in stock."""
    with context.database.session() as session:
        return CentreOut.of(booking.put_centre(
            session, principal.tenant, centre_id, name=body.name, lat=body.lat, lon=body.lon,
            daily_capacity=body.daily_capacity, stock=body.stock, actor=principal.client_id,
        ))  # fmt: skip


@router.get("/service-centres", response_model=CentreListOut, summary="The caller's service centres")
def get_centres(principal: Reader, context: Context) -> CentreListOut:
    """Every service centre of the caller's network."""
    with context.database.session() as session:
        return CentreListOut(centres=[CentreOut.of(c) for c in booking.list_centres(session, principal.tenant)])


@router.post("/appointments/book", response_model=BookingOut, status_code=status.HTTP_201_CREATED,
             summary="Book the latest alerts into service centres (CP-SAT) and tell the cars")  # fmt: skip
def post_book(principal: Actor, context: Context, request: Request, body: BookIn | None = None) -> BookingOut:
    """Each alerted vehicle without an appointment gets one before its predicted window, at a
    centre with capacity and the part; each is sent to the car as a signed command."""
    body = body or BookIn.model_validate({})
    with context.database.session() as session:
        result = booking.book_appointments(
            session, principal.tenant, actor=principal.client_id, days=body.days,
            max_distance_km=body.max_distance_km, request_id=request_id_of(request),
        )  # fmt: skip
    return BookingOut(booked=[AppointmentOut.of(a) for a in result.booked],
                      unbooked=[UnbookedOut.of(u) for u in result.unbooked])  # fmt: skip


@router.get("/appointments", response_model=AppointmentListOut, summary="The caller's service appointments")
def get_appointments(
    principal: Reader, context: Context, limit: Limit = 100,
    status_: Annotated[str | None, Query(alias="status", pattern="^(proposed|accepted|cancelled)$")] = None,
    vin: Annotated[str | None, Query(max_length=17)] = None,
) -> AppointmentListOut:
    """Appointments by day: proposed (waiting for the driver), accepted, cancelled."""
    with context.database.session() as session:
        items = booking.list_appointments(session, principal.tenant, status=status_, vin=vin, limit=limit)
    return AppointmentListOut(appointments=[AppointmentOut.of(a) for a in items])


AppointmentId = Annotated[str, Path(max_length=40)]


@router.get("/appointments/{appointment_id}", response_model=AppointmentOut, summary="One service appointment")
def get_appointment(appointment_id: AppointmentId, principal: Reader, context: Context) -> AppointmentOut:
    """An appointment and the last command that told the car."""
    with context.database.session() as session:
        return AppointmentOut.of(booking.get_appointment(session, principal.tenant, appointment_id))


@router.post("/appointments/{appointment_id}/accept", response_model=AppointmentOut,
             summary="The driver accepts the proposed appointment")  # fmt: skip
def post_accept(appointment_id: AppointmentId, principal: Actor, context: Context, request: Request) -> AppointmentOut:
    """Accept the proposed slot; the car is told it is confirmed."""
    with context.database.session() as session:
        return AppointmentOut.of(booking.accept_appointment(
            session, principal.tenant, appointment_id, actor=principal.client_id,
            request_id=request_id_of(request)))  # fmt: skip


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentOut,
             summary="Cancel an appointment; the car is told")  # fmt: skip
def post_cancel(appointment_id: AppointmentId, principal: Actor, context: Context, request: Request) -> AppointmentOut:
    """Cancel a proposed or accepted appointment: its slot and part are free again."""
    with context.database.session() as session:
        return AppointmentOut.of(booking.cancel_appointment(
            session, principal.tenant, appointment_id, actor=principal.client_id,
            request_id=request_id_of(request)))  # fmt: skip


@router.post("/appointments/{appointment_id}/move", response_model=AppointmentOut,
             summary="The driver moves the appointment to a chosen or the next best slot")  # fmt: skip
def post_move(
    appointment_id: AppointmentId, principal: Actor, context: Context, request: Request,
    body: MoveIn | None = None,
) -> AppointmentOut:
    """Move to ``centre_id`` on ``day`` (checked against capacity, stock and the predicted
    window), or, with neither, to the best other slot; the car is told the new slot."""
    body = body or MoveIn.model_validate({})
    with context.database.session() as session:
        return AppointmentOut.of(booking.move_appointment(
            session, principal.tenant, appointment_id, actor=principal.client_id,
            centre_id=body.centre_id, day=body.day, request_id=request_id_of(request)))  # fmt: skip


@router.post("/charging-plans", response_model=ChargingPlanOut, status_code=status.HTTP_201_CREATED,
             summary="Plan a site's charging (LP) and send each car its schedule")  # fmt: skip
def post_charging_plan(body: ChargingPlanIn, principal: Actor, context: Context, request: Request) -> ChargingPlanOut:
    """The cheapest schedule meeting each car's departure and target under the tariff and the
    site's limit; each car's schedule is sent to it as a signed command."""
    sessions = [ChargingSession(s.vin, s.capacity_kwh, s.soc_now, s.soc_target, s.plug_in_slot,
                                s.departure_slot, s.max_kw, s.efficiency) for s in body.sessions]  # fmt: skip
    with context.database.session() as session:
        plan = charging_plans.create_plan(
            session, principal.tenant, actor=principal.client_id, site=body.site,
            start_at=body.start_at, slot_minutes=body.slot_minutes,
            prices_per_kwh=body.prices_per_kwh, sessions=sessions,
            site_limit_kw=body.site_limit_kw, request_id=request_id_of(request),
        )  # fmt: skip
    return ChargingPlanOut.of(plan)


@router.get("/charging-plans", response_model=ChargingPlanListOut, summary="The caller's charging plans, newest first")
def get_charging_plans(principal: Reader, context: Context, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> ChargingPlanListOut:
    """Charging plans with each car's schedule."""
    with context.database.session() as session:
        return ChargingPlanListOut(plans=[ChargingPlanOut.of(p) for p in
                                          charging_plans.list_plans(session, principal.tenant, limit=limit)])  # fmt: skip


@router.get("/charging-plans/{plan_id}", response_model=ChargingPlanOut, summary="One charging plan")
def get_charging_plan(plan_id: Annotated[str, Path(max_length=40)], principal: Reader, context: Context) -> ChargingPlanOut:
    """A plan: cost against charging at once, and each car's schedule and command."""
    with context.database.session() as session:
        return ChargingPlanOut.of(charging_plans.get_plan(session, principal.tenant, plan_id))
