"""`drivetrain privacy aggregate` and `drivetrain privacy budget`: safe fleet statistics over
location, on the configured state database and lake directly (as an operator with access to
them; reads are audited as ``cli:<user>``), exactly as ``GET /v1/privacy/aggregates/locations``
releases them: only vehicles the purpose covers, groups under k suppressed, or OpenDP noise
charged to the tenant's privacy budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import typer

from drivetrain.commands.db import cli_actor, fail, load_settings_or_exit, open_migrated_database
from drivetrain.commands.output import Column, emit_json, print_table

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Tenant = Annotated[str, typer.Option("--tenant", help="The tenant whose fleet is counted.")]


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r} is not an ISO 8601 time "
                                 "(e.g. 2026-03-02T09:00:00+00:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def aggregate_command(
    purpose: Annotated[str, typer.Option("--purpose", help="Why location is read (e.g. "
                                         "fleet_operations): only vehicles it covers count.")],
    tenant: Tenant = "default",
    start: Annotated[str | None, typer.Option("--start", help="ISO time; default: 24 h "
                                              "before --end.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO time; default: now.")] = None,
    cell_deg: Annotated[float, typer.Option("--cell", help="Cell size, degrees.")] = 0.01,
    per: Annotated[str, typer.Option("--per", help="hour or window.")] = "hour",
    k: Annotated[int | None, typer.Option("--k", help="Smallest group released (default and "
                                          "floor: the setting privacy_min_group_vehicles).")
                 ] = None,
    dp: Annotated[bool, typer.Option("--dp", help="Differentially private (OpenDP): needs "
                                     "--epsilon and --bbox; spends the tenant's budget.")
                  ] = False,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="The epsilon this "
                                                  "release spends.")] = None,
    bbox: Annotated[str | None, typer.Option("--bbox", help="south,west,north,east: the "
                                             "cells noised.")] = None,
    max_groups: Annotated[int, typer.Option("--max-groups-per-vehicle", min=1, max=64,
                                            help="Most groups one vehicle counts in.")] = 8,
    as_json: JsonOption = False,
) -> None:
    """Vehicles per map cell (and hour), released only for groups of at least k vehicles, or
    with differential privacy."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.privacy.aggregates import BoundingBox
    from drivetrain.cloud.privacy.binding import bind_read_as
    from drivetrain.cloud.privacy.release import LocationQuery, check_query, release_locations
    from drivetrain.core.errors import DrivetrainError

    if per not in ("hour", "window"):
        raise typer.BadParameter(f"--per {per!r} is not hour or window")
    method: Literal["k_anonymity", "differential_privacy"] = (
        "differential_privacy" if dp else "k_anonymity")
    settings = load_settings_or_exit()
    until = _instant(end, "--end") or datetime.now(UTC)
    since = _instant(start, "--start") or until - timedelta(days=1)
    database = open_migrated_database(settings)
    actor = cli_actor()
    try:
        query = LocationQuery(
            start=since, end=until, cell_deg=cell_deg, per_hour=per == "hour", method=method,
            k=k or settings.privacy_min_group_vehicles, epsilon=epsilon,
            bbox=BoundingBox.parse(bbox) if bbox is not None else None,
            max_groups_per_vehicle=max_groups)
        check_query(query, min_k=settings.privacy_min_group_vehicles)
        permit = bind_read_as(database, tenant=tenant, actor=actor, third_party=None,
                              purpose=purpose, target="privacy:aggregate", request_id=None,
                              categories={"location"})
        with Lake.open(settings) as lake:
            release, budget = release_locations(
                database, lake, tenant=tenant, actor=actor, query=query, permit=permit,
                budget_total=settings.privacy_epsilon_budget, request_id=None)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json({"method": release.method, "purpose": purpose, "k": release.k,
                   "start": since.isoformat(), "end": until.isoformat(), "cell_deg": cell_deg,
                   "per": per, "groups": [g.to_dict() for g in release.groups],
                   "suppressed": release.suppressed, "epsilon": release.epsilon,
                   "noise_scale": release.noise_scale, "sensitivity": release.sensitivity,
                   "budget": None if budget is None else budget.to_dict()})
        return
    print_table(f"vehicles per {cell_deg:g}° cell ({release.method.replace('_', ' ')}, "
                f"k={release.k})",
                [Column("cell", "id"), Column("hour", "time"), Column("vehicles", "number"),
                 Column("samples", "number")],
                ((g.cell, g.hour.strftime("%Y-%m-%d %H:00") if g.hour else "window",
                  g.vehicles, "-" if g.samples is None else g.samples)
                 for g in release.groups))
    print(f"{len(release.groups)} group(s) released, {release.suppressed} suppressed")
    if budget is not None:
        print(f"epsilon {release.epsilon:g} spent (noise scale {release.noise_scale:g}); "
              f"budget left {budget.left:g} of {budget.total:g}")


def budget_command(tenant: Tenant = "default", as_json: JsonOption = False) -> None:
    """The tenant's differential-privacy budget: total, spent, left."""
    from drivetrain.cloud.privacy.budget import budget_of
    from drivetrain.core.errors import DrivetrainError

    settings = load_settings_or_exit()
    database = open_migrated_database(settings)
    try:
        with database.session() as session:
            budget = budget_of(session, tenant, settings.privacy_epsilon_budget)
    except DrivetrainError as e:
        fail(e)
    finally:
        database.dispose()
    if as_json:
        emit_json(budget.to_dict())
        return
    print(f"tenant {budget.tenant}: epsilon {budget.spent:g} of {budget.total:g} spent in "
          f"{budget.releases} release(s); {budget.left:g} left")
