"""`drivetrain insights`: train and score the maintenance, energy and battery models over the
lake, read their models, alerts, per-vehicle predictions and estimates, book service
appointments and plan charging.

These commands work on the configured data directory (state database, lake and
``models/<tenant>/``) for one tenant (``--tenant``, default ``default``), like ``drivetrain
lake``; the same reads and actions are on the API under ``/v1/insights`` with scopes. JSON
output (``--json``) has the API's shapes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from drivetrain.commands.db import (
    cli_actor,
    fail,
    in_migrated_session,
    load_settings_or_exit,
    open_migrated_database,
)
from drivetrain.commands.output import Column, emit_json, print_table

app = typer.Typer(
    help="Predictive maintenance and charging: models, scoring, alerts, appointments, plans.",
    no_args_is_help=True,
)
_out = Console(highlight=False, soft_wrap=True)

TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant whose lake and models to use.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shapes) instead of tables.")]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration_s(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"7d"`` in seconds.

    Raises:
        typer.BadParameter: anything else.
    """
    match = _DURATION.fullmatch(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration; expected a number and s/m/h/d, e.g. 2h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00Z)", code=2)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _context(tenant: str) -> tuple[Any, Any]:
    from drivetrain.cloud.insights.registry import ModelRegistry
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    try:
        registry = ModelRegistry.for_tenant(settings.data_dir, tenant)
    except DrivetrainError as e:
        fail(e, code=2)
    return settings, registry


ModelOption = Annotated[str, typer.Option("--model", help="maintenance (failure windows), energy (consumption and range) or battery (end of life).")]
_MODELS = ("maintenance", "energy", "battery")


def _check_model(model: str, allowed: tuple[str, ...] = _MODELS) -> str:
    if model not in allowed:
        raise typer.BadParameter(f"{model!r}; expected one of {', '.join(allowed)}", param_hint="--model")
    return model


@app.command("train")
def train(
    ground_truth: Annotated[Path, typer.Option("--ground-truth", help="A fleet run's folder (drivetrain sim fleet --out DIR): its component_events.parquet (maintenance), trips.parquet (energy) or component_health.parquet (battery).")],
    model: ModelOption = "maintenance",
    tenant: TenantOption = "default",
    since: Annotated[str | None, typer.Option("--since", help="Start of the training data (ISO 8601); default: 30 days before --until.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the training data (ISO 8601); default: now.")] = None,
    every: Annotated[str | None, typer.Option("--every", help="Lake down-sampling (default: 5m maintenance, 10s energy, 1h battery).")] = None,
    horizon: Annotated[str, typer.Option("--horizon", help="Alert when a failure is predicted within this (e.g. 7d, 2h).")] = "7d",
    threshold: Annotated[float, typer.Option("--threshold", min=0.01, max=0.99, help="Probability that makes an alert.")] = 0.5,
    held_out: Annotated[float, typer.Option("--held-out", min=0.05, max=0.9, help="Share of vehicles held out for the card's metrics.")] = 0.3,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the held-out split and the models.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Train a model on the tenant's lake and a fleet run's ground truth (failures, trips or
    battery health); store it as the next version under <data_dir>/models/<tenant>/<model>/
    with its model card."""
    from drivetrain.cloud.insights import fleet_models as fm
    from drivetrain.cloud.insights.api_schemas import ModelCardOut
    from drivetrain.cloud.insights.service import vehicle_models, vins_by_pseudonym
    from drivetrain.cloud.insights.training import (
        MAX_LAKE_ROWS,
        health_paths,
        load_component_events,
        train_maintenance,
    )
    from drivetrain.cloud.lake import Lake
    from drivetrain.core.errors import DrivetrainError

    _check_model(model)
    horizon_s = parse_duration_s(horizon)
    end = _time(until, "--until") or datetime.now(UTC)
    start = _time(since, "--since") or end - timedelta(days=30)
    every = every or {"maintenance": "5m", "energy": "10s", "battery": "1h"}[model]
    paths = {"maintenance": health_paths(), "energy": list(fm.ENERGY_PATHS), "battery": list(fm.BATTERY_PATHS)}[model]
    settings, registry = _context(tenant)
    database = open_migrated_database(settings)
    try:
        if model == "maintenance":
            truth = load_component_events(ground_truth)
        else:
            truth = fm.read_ground_truth(ground_truth, fm.TRIPS_FILE if model == "energy" else fm.HEALTH_FILE)
        with database.session() as session:
            vehicle_of = {vin: p for p, vin in vins_by_pseudonym(session, tenant).items()}
            models_of = vehicle_models(session, tenant)
        with Lake.open(settings) as lake:
            signals = lake.signals(tenant, None, paths, start, end, every=every, max_rows=MAX_LAKE_ROWS)
        if signals.num_rows == 0:
            fail(f"no signals of tenant {tenant!r} the {model} model reads in the lake between {start.isoformat()} "
                 f"and {end.isoformat()}: run a fleet first (drivetrain sim fleet) or widen --since/--until")
        artifact: object
        if model == "maintenance":
            card, artifact = train_maintenance(signals, truth, vehicle_of, every=every, horizon_s=horizon_s,
                                               threshold=threshold, held_out_share=held_out, seed=seed)  # fmt: skip
        elif model == "energy":
            card, artifact = fm.train_energy(signals, truth, vehicle_of, model_of=models_of, every=every,
                                             held_out_share=held_out, seed=seed)  # fmt: skip
        else:
            card, artifact = fm.train_battery(signals, truth, vehicle_of, every=every, held_out_share=held_out, seed=seed)
        stored = registry.save(card, artifact)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(ModelCardOut.of(stored).model_dump(mode="json"))
        return
    _out.print(f"stored {stored.name} v{stored.version} under {registry.root / stored.name / str(stored.version)}")
    _out.print(f"trained on {stored.training['training_vehicles']} vehicles ({stored.training['start']} .. "
               f"{stored.training['end']}); held out {stored.training['held_out_vehicles']}: {fm.card_summary(stored)}")


@app.command("score")
def score(
    tenant: TenantOption = "default",
    version: Annotated[int | None, typer.Option("--version", min=1, help="Model version (default: the latest).")] = None,
    model: ModelOption = "maintenance",
    as_json: JsonOption = False,
) -> None:
    """Score the tenant's lake now with a model and store the predictions or estimates
    (the control plane also runs this on a schedule: insights_score_every_s)."""
    from drivetrain.cloud.insights.api_schemas import ScoreRunOut
    from drivetrain.cloud.insights.service import score_tenant
    from drivetrain.cloud.lake import Lake
    from drivetrain.core.errors import DrivetrainError

    settings, registry = _context(tenant)
    database = open_migrated_database(settings)
    try:
        with Lake.open(settings) as lake:
            run = score_tenant(database, lake, registry, tenant, trigger="command", actor=cli_actor(), version=version,
                               model=_check_model(model))  # fmt: skip
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(ScoreRunOut.of(run).model_dump(mode="json"))
        return
    outcome = f"{run.alerts} alert(s)" if run.model_name == "maintenance" else f"{run.predictions} estimate(s)"
    _out.print(f"{run.run_id}: {run.model_name} v{run.model_version} scored {run.vehicles} vehicle(s) "
               f"({run.data_start.isoformat()} .. {run.data_end.isoformat()}): {outcome}")


@app.command("models")
def models(tenant: TenantOption = "default", as_json: JsonOption = False) -> None:
    """The tenant's trained models: versions and the latest card's figures."""
    from drivetrain.cloud.insights.api_schemas import ModelCardOut, ModelListOut, ModelOut
    from drivetrain.cloud.insights.fleet_models import card_summary
    from drivetrain.core.errors import DrivetrainError

    _, registry = _context(tenant)
    try:
        found = [ModelOut(name=n, versions=registry.versions(n), latest=ModelCardOut.of(registry.card(n)))
                 for n in registry.names() if registry.versions(n)]  # fmt: skip
    except DrivetrainError as e:
        fail(e)
    reason = None if found else f"no model trained yet for tenant {tenant!r} (drivetrain insights train)"
    if as_json:
        emit_json(ModelListOut(models=found, reason=reason).model_dump(mode="json"))
        return
    if not found:
        _out.print(reason)
        return
    rows = []
    for m in found:
        card = m.latest
        rows.append([m.name, card.version, len(m.versions), card.created_at, card.training.get("vehicles"),
                     card_summary(registry.card(m.name)), card.code_version])
    print_table(None, [Column("model", "id"), Column("latest", "number"), Column("versions", "number"),
                       Column("created", "time"), Column("vehicles", "number"),
                       Column("held out"), Column("code")], rows)  # fmt: skip


@app.command("card")
def card(
    name: Annotated[str, typer.Argument(help="The model, e.g. maintenance.")] = "maintenance",
    tenant: TenantOption = "default",
    version: Annotated[int | None, typer.Option("--version", min=1, help="Default: the latest.")] = None,
    as_json: JsonOption = False,
) -> None:
    """A model's card: training data range, held-out metrics, features, code version."""
    from drivetrain.cloud.insights.api_schemas import ModelCardOut
    from drivetrain.core.errors import DrivetrainError

    _, registry = _context(tenant)
    try:
        found = ModelCardOut.of(registry.card(name, version))
    except DrivetrainError as e:
        fail(e)
    if as_json:
        emit_json(found.model_dump(mode="json"))
        return
    _out.print(f"{found.name} v{found.version} ({found.kind}), created {found.created_at.isoformat()}, code {found.code_version}")
    _out.print(f"training: {json.dumps(found.training)}")
    _out.print(f"parameters: {json.dumps(found.parameters)}")
    _out.print(f"{len(found.features)} features; sha256 {found.sha256}")
    if found.name != "maintenance":
        _out.print(f"held out: {json.dumps(found.metrics.get('held_out', {}))}")
        return
    rows = [[r["component"], r["failures"], r["caught"], r["missed"], r["mean_lead_time_s"], r["false_alarm_vehicles"]]
            for r in found.metrics.get("held_out", [])]  # fmt: skip
    print_table("held-out vehicles", [Column("component", "id"), Column("failures", "number"),
                                      Column("caught", "number"), Column("missed", "number"),
                                      Column("mean lead s", "number"), Column("false alarms", "number")], rows)  # fmt: skip


def _with_session(tenant: str, action: Any) -> Any:
    return in_migrated_session(action)


def _prediction_rows(predictions: list[Any]) -> list[list[object]]:
    return [[p.vin or p.vehicle, p.component, f"{p.probability:.2f}", p.window_start, p.window_end] for p in predictions]


_PREDICTION_COLUMNS = [Column("vehicle", "id"), Column("component", "id"), Column("confidence", "number"),
                       Column("window from", "time"), Column("window to", "time")]  # fmt: skip


@app.command("alerts")
def alerts(
    tenant: TenantOption = "default",
    component: Annotated[str | None, typer.Option("--component", help="Only this component (tires, brake_pads, lv_battery, coolant_pump, hv_cell).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Maintenance alerts of the latest scoring run: predicted window and confidence."""
    from drivetrain.cloud.insights.api import NO_RUN
    from drivetrain.cloud.insights.api_schemas import AlertListOut, PredictionOut, ScoreRunOut
    from drivetrain.cloud.insights.service import list_alerts

    run, found = _with_session(tenant, lambda s: list_alerts(s, tenant, component=component, limit=limit))
    reason = NO_RUN if run is None else (None if found else "no component is predicted to fail within the horizon")
    if as_json:
        emit_json(AlertListOut(run=ScoreRunOut.of(run) if run else None, alerts=[PredictionOut.of(a) for a in found],
                               reason=reason).model_dump(mode="json"))  # fmt: skip
        return
    if reason:
        _out.print(reason)
        return
    print_table(f"alerts of {run.run_id} ({run.model_name} v{run.model_version})", _PREDICTION_COLUMNS, _prediction_rows(found))


@app.command("show")
def show(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    tenant: TenantOption = "default",
    as_json: JsonOption = False,
) -> None:
    """A vehicle's latest prediction per component."""
    from drivetrain.cloud.insights.api import NO_RUN
    from drivetrain.cloud.insights.api_schemas import (
        PredictionOut,
        ScoreRunOut,
        VehiclePredictionsOut,
    )
    from drivetrain.cloud.insights.service import vehicle_predictions

    run, found = _with_session(tenant, lambda s: vehicle_predictions(s, tenant, vin))
    reason = NO_RUN if run is None else (None if found else "the vehicle reported no health signals in the scored window")
    if as_json:
        emit_json(VehiclePredictionsOut(vin=vin, run=ScoreRunOut.of(run) if run else None,
                                        predictions=[PredictionOut.of(p) for p in found], reason=reason).model_dump(mode="json"))  # fmt: skip
        return
    if reason:
        _out.print(reason)
        return
    print_table(f"{vin} in {run.run_id}", _PREDICTION_COLUMNS, _prediction_rows(found))


@app.command("estimates")
def estimates(
    model: Annotated[str, typer.Option("--model", help="energy (consumption and range) or battery (end of life).")] = "energy",
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle.")] = None,
    tenant: TenantOption = "default",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Per-vehicle estimates of the latest energy or battery run, with their 80 % interval."""
    from drivetrain.cloud.insights.api_schemas import EstimateListOut, EstimateOut, ScoreRunOut
    from drivetrain.cloud.insights.service import list_estimates

    _check_model(model, ("energy", "battery"))
    run, found = _with_session(tenant, lambda s: list_estimates(s, tenant, model, vin=vin, limit=limit))
    reason = (f"no {model} scoring run yet: drivetrain insights train --model {model}, then score --model {model}"
              if run is None else (None if found else "no vehicle had the signals the model reads in the scored window"))
    out = EstimateListOut(model=model, run=ScoreRunOut.of(run) if run else None,
                          estimates=[EstimateOut.of(e) for e in found], reason=reason)  # fmt: skip
    if as_json:
        emit_json(out.model_dump(mode="json"))
        return
    if reason:
        _out.print(reason)
        return
    print_table(f"{model} estimates of {run.run_id} ({run.model_name} v{run.model_version}, {int(100 * found[0].coverage)} % intervals)",
                [Column("vehicle", "id"), Column("quantity", "id"), Column("value", "number"), Column("low", "number"),
                 Column("high", "number"), Column("unit"), Column("date")],
                [[e.vin or e.vehicle, e.quantity, round(e.value, 1), round(e.low, 1), round(e.high, 1), e.unit,
                  e.date.date().isoformat() if e.date else None] for e in out.estimates])  # fmt: skip


@app.command("centre")
def centre(
    centre_id: Annotated[str, typer.Argument(help="The centre's id.")],
    name: Annotated[str, typer.Option("--name", help="Its name.")],
    lat: Annotated[float, typer.Option("--lat", min=-90, max=90)],
    lon: Annotated[float, typer.Option("--lon", min=-180, max=180)],
    capacity: Annotated[int, typer.Option("--capacity", min=0, max=1000, help="Jobs per day.")],
    stock: Annotated[list[str] | None, typer.Option("--stock", help="PART=UNITS (tyre, brake-pads, 12v-battery, coolant-pump, hv-module); repeat.")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Create or replace a service centre."""
    from drivetrain.cloud.insights.booking import put_centre

    parts: dict[str, int] = {}
    for item in stock or []:
        part, sep, units = item.partition("=")
        if not sep or not units.strip().isdigit():
            raise typer.BadParameter(f"{item!r} is not PART=UNITS (e.g. tyre=4)", param_hint="--stock")
        parts[part.strip()] = int(units)
    saved = _with_session(tenant, lambda s: put_centre(s, tenant, centre_id, name=name, lat=lat, lon=lon,
                                                       daily_capacity=capacity, stock=parts, actor=cli_actor()))  # fmt: skip
    _out.print(f"centre {saved.centre_id}: {saved.name}, {saved.daily_capacity}/day, stock {dict(saved.stock)}")


@app.command("centres")
def centres(tenant: TenantOption = "default", as_json: JsonOption = False) -> None:
    """The tenant's service centres."""
    from drivetrain.cloud.insights.api_schemas import CentreListOut, CentreOut
    from drivetrain.cloud.insights.booking import list_centres

    found = _with_session(tenant, lambda s: list_centres(s, tenant))
    if as_json:
        emit_json(CentreListOut(centres=[CentreOut.of(c) for c in found]).model_dump(mode="json"))
        return
    if not found:
        _out.print("no service centres yet (drivetrain insights centre ID --name ... --lat ... --lon ... --capacity N)")
        return
    print_table(None, [Column("centre", "id"), Column("name"), Column("lat", "number"), Column("lon", "number"),
                       Column("per day", "number"), Column("stock")],
                [[c.centre_id, c.name, c.lat, c.lon, c.daily_capacity, json.dumps(dict(c.stock))] for c in found])  # fmt: skip


def _print_appointments(items: list[Any]) -> None:
    print_table(None, [Column("appointment", "id"), Column("vin", "id"), Column("component", "id"),
                       Column("centre", "id"), Column("day", "time"), Column("status", "id"),
                       Column("confidence", "number"), Column("command", "id")],
                [[a.appointment_id, a.vin, a.component, a.centre_id, a.day, a.status, f"{a.probability:.2f}",
                  a.command_id] for a in items])  # fmt: skip


@app.command("book")
def book(
    tenant: TenantOption = "default",
    days: Annotated[int, typer.Option("--days", min=1, max=60, help="How many days ahead to book.")] = 14,
    as_json: JsonOption = False,
) -> None:
    """Book the latest alerts into service centres (CP-SAT) and send each car its appointment."""
    from drivetrain.cloud.insights.api_schemas import AppointmentOut, BookingOut, UnbookedOut
    from drivetrain.cloud.insights.booking import book_appointments

    result = _with_session(tenant, lambda s: book_appointments(s, tenant, actor=cli_actor(), days=days))
    if as_json:
        emit_json(BookingOut(booked=[AppointmentOut.of(a) for a in result.booked],
                             unbooked=[UnbookedOut.of(u) for u in result.unbooked]).model_dump(mode="json"))  # fmt: skip
        return
    if result.booked:
        _print_appointments(list(result.booked))
    for u in result.unbooked:
        _out.print(f"not booked: {u.vin} ({u.component}): {u.reason}")
    if not result.booked and not result.unbooked:
        _out.print("nothing to book: every alerted vehicle has an appointment, or there is no alert")


@app.command("appointments")
def appointments(
    tenant: TenantOption = "default",
    status: Annotated[str | None, typer.Option("--status", help="proposed, accepted or cancelled.")] = None,
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's service appointments, by day."""
    from drivetrain.cloud.insights.api_schemas import AppointmentListOut, AppointmentOut
    from drivetrain.cloud.insights.booking import list_appointments

    found = _with_session(tenant, lambda s: list_appointments(s, tenant, status=status, vin=vin))
    if as_json:
        emit_json(AppointmentListOut(appointments=[AppointmentOut.of(a) for a in found]).model_dump(mode="json"))
        return
    if not found:
        _out.print("no appointments (drivetrain insights book books the latest alerts)")
        return
    _print_appointments(found)


@app.command("accept")
def accept(
    appointment_id: Annotated[str, typer.Argument(help="The appointment.")],
    tenant: TenantOption = "default",
) -> None:
    """The driver accepts a proposed appointment; the car is told it is confirmed."""
    from drivetrain.cloud.insights.booking import accept_appointment

    a = _with_session(tenant, lambda s: accept_appointment(s, tenant, appointment_id, actor=cli_actor()))
    _out.print(f"{a.appointment_id} accepted: {a.centre_id} on {a.day.isoformat()} (command {a.command_id})")


@app.command("cancel")
def cancel(
    appointment_id: Annotated[str, typer.Argument(help="The appointment.")],
    tenant: TenantOption = "default",
) -> None:
    """Cancel an appointment; the car is told and the slot is free again."""
    from drivetrain.cloud.insights.booking import cancel_appointment

    a = _with_session(tenant, lambda s: cancel_appointment(s, tenant, appointment_id, actor=cli_actor()))
    _out.print(f"{a.appointment_id} cancelled (command {a.command_id})")


@app.command("move")
def move(
    appointment_id: Annotated[str, typer.Argument(help="The appointment.")],
    centre_id: Annotated[str | None, typer.Option("--centre", help="Move to this centre (with --day).")] = None,
    day: Annotated[str | None, typer.Option("--day", help="Move to this day, YYYY-MM-DD (with --centre).")] = None,
    tenant: TenantOption = "default",
) -> None:
    """Move an appointment to a chosen slot, or (no options) to the best other slot; the car
    is told the new one."""
    from drivetrain.cloud.insights.booking import move_appointment

    try:
        chosen = date.fromisoformat(day) if day is not None else None
    except ValueError:
        fail(f"--day {day!r} is not a date (YYYY-MM-DD)", code=2)
    a = _with_session(tenant, lambda s: move_appointment(s, tenant, appointment_id, actor=cli_actor(),
                                                         centre_id=centre_id, day=chosen))  # fmt: skip
    _out.print(f"{a.appointment_id} moved: {a.centre_id} on {a.day.isoformat()} (command {a.command_id})")


@app.command("charge")
def charge(
    plan_file: Annotated[Path, typer.Argument(help="A JSON plan request: site, start_at, slot_minutes, prices_per_kwh, site_limit_kw, sessions (the API's body).")],
    tenant: TenantOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Plan a site's charging (LP) and send each car its schedule as a signed command."""
    from drivetrain.cloud.insights.api_schemas import ChargingPlanIn, ChargingPlanOut
    from drivetrain.cloud.insights.charging import ChargingSession
    from drivetrain.cloud.insights.charging_plans import create_plan

    try:
        body = ChargingPlanIn.model_validate_json(plan_file.read_bytes()[:1_048_577])
    except OSError as e:
        fail(f"cannot read {plan_file}: {e}", code=2)
    except ValidationError as e:
        first = e.errors()[0]
        fail(f"{plan_file}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}", code=2)
    sessions = [ChargingSession(s.vin, s.capacity_kwh, s.soc_now, s.soc_target, s.plug_in_slot,
                                s.departure_slot, s.max_kw, s.efficiency) for s in body.sessions]  # fmt: skip
    plan = _with_session(tenant, lambda s: create_plan(
        s, tenant, actor=cli_actor(), site=body.site, start_at=body.start_at, slot_minutes=body.slot_minutes,
        prices_per_kwh=body.prices_per_kwh, sessions=sessions, site_limit_kw=body.site_limit_kw))  # fmt: skip
    if as_json:
        emit_json(ChargingPlanOut.of(plan).model_dump(mode="json"))
        return
    _out.print(f"{plan.plan_id}: {len(plan.schedules)} vehicle(s) at {plan.site}, cost {plan.cost:.2f} against "
               f"{plan.baseline_cost:.2f} charging at once (saving {plan.saving:.2f})")
    print_table(None, [Column("vin", "id"), Column("kWh", "number"), Column("cost", "number"),
                       Column("at once", "number"), Column("short kWh", "number"), Column("command", "id")],
                [[s.vin, round(s.energy_kwh, 2), round(s.cost, 3), round(s.baseline_cost, 3),
                  round(s.shortfall_kwh, 2), s.command_id] for s in plan.schedules])  # fmt: skip
