"""Service scheduling: book each predicted failure into a service centre before its window.

An assignment problem solved with OR-Tools CP-SAT (not a greedy loop, which books the first
vehicles into the best slots and strands the later ones): each alert gets at most one
(centre, day) slot such that

- the centre has the part in stock for every booking that uses it (stock per part),
- the centre's daily capacity is respected,
- the day is before the alert's window starts (a margin of ``lead_days``) and not in the past,

minimising ``distance from the vehicle's usual location (km) + day_cost * day`` plus a large
cost for each alert left unbooked (reported, never silently dropped). The driver can accept the
proposal or move it: ``reschedule`` solves again with that alert pinned to the driver's choice
(or with the refused slot forbidden).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drivetrain.cloud.insights._deps import require
from drivetrain.core.errors import BadInputError

if TYPE_CHECKING:  # the optional "insights" extra; imported lazily through ``require``
    from ortools.sat.python.cp_model import IntVar

UNBOOKED_COST = 1_000_000
MAX_DAYS = 60


class SchedulingError(BadInputError):
    """A scheduling request that cannot be solved as given; names the field."""


@dataclass(frozen=True)
class ServiceCentre:
    """A workshop: where it is, how many jobs a day it takes, which parts it has."""

    centre_id: str
    lat: float
    lon: float
    daily_capacity: int
    stock: Mapping[str, int] = field(default_factory=dict)  # part -> units


@dataclass(frozen=True)
class ServiceRequest:
    """A vehicle that needs a part before ``latest_day`` (days from today, exclusive)."""

    vehicle: str
    component: str
    part: str
    lat: float  # the vehicle's usual location
    lon: float
    latest_day: int


@dataclass(frozen=True)
class Appointment:
    """A booking proposal (or, ``centre_id`` None, the reason none was possible)."""

    vehicle: str
    component: str
    centre_id: str | None
    day: int | None
    distance_km: float | None
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "vehicle": self.vehicle, "component": self.component, "centre": self.centre_id,
            "day": self.day, "distance_km": None if self.distance_km is None else round(self.distance_km, 1),
            "reason": self.reason,
        }  # fmt: skip


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance, km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))


def schedule(
    requests: Sequence[ServiceRequest],
    centres: Sequence[ServiceCentre],
    *,
    days: int = 14,
    lead_days: int = 1,
    day_cost_km: float = 5.0,
    max_distance_km: float = 150.0,
    pinned: Mapping[str, tuple[str, int]] | None = None,
    forbidden: Mapping[str, set[tuple[str, int]]] | None = None,
    time_limit_s: float = 10.0,
) -> list[Appointment]:
    """One appointment (or an explained non-booking) per request, in request order.

    ``pinned[vehicle] = (centre, day)`` forces a driver's choice; ``forbidden[vehicle]`` holds
    slots the driver refused.

    Raises:
        SchedulingError: bad days, a duplicate vehicle, or a negative capacity/stock.
        MissingExtraError: OR-Tools is not installed.
    """
    if not 1 <= days <= MAX_DAYS:
        raise SchedulingError(f"days {days}; expected 1..{MAX_DAYS}")
    if len({r.vehicle for r in requests}) != len(requests):
        raise SchedulingError("one request per vehicle: a vehicle appears twice")
    for c in centres:
        if c.daily_capacity < 0 or any(v < 0 for v in c.stock.values()):
            raise SchedulingError(f"centre {c.centre_id}: capacity and stock must be >= 0")
    pinned, forbidden = pinned or {}, forbidden or {}
    cp_model = require("ortools.sat.python.cp_model")
    model = cp_model.CpModel()
    choice: dict[tuple[int, int, int], IntVar] = {}
    distance: dict[tuple[int, int], float] = {}
    for r_i, r in enumerate(requests):
        for c_i, c in enumerate(centres):
            d = haversine_km(r.lat, r.lon, c.lat, c.lon)
            distance[(r_i, c_i)] = d
            if d > max_distance_km or c.stock.get(r.part, 0) <= 0:
                continue
            last = min(days, r.latest_day - lead_days)
            for day in range(max(0, last)):
                if (c.centre_id, day) in forbidden.get(r.vehicle, set()):
                    continue
                if r.vehicle in pinned and pinned[r.vehicle] != (c.centre_id, day):
                    continue
                choice[(r_i, c_i, day)] = model.NewBoolVar(f"r{r_i}c{c_i}d{day}")
    booked = []
    for r_i, r in enumerate(requests):
        mine = [v for (ri, _, _), v in choice.items() if ri == r_i]
        b = model.NewBoolVar(f"booked{r_i}")
        model.Add(sum(mine) == b)
        if r.vehicle in pinned and mine:
            model.Add(b == 1)
        booked.append(b)
    for c_i, c in enumerate(centres):
        for day in range(days):
            model.Add(sum(v for (_, ci, d), v in choice.items() if ci == c_i and d == day) <= c.daily_capacity)
        for part in {r.part for r in requests}:
            uses = [v for (ri, ci, _), v in choice.items() if ci == c_i and requests[ri].part == part]
            if uses:
                model.Add(sum(uses) <= c.stock.get(part, 0))
    objective = [round(distance[(ri, ci)] + day_cost_km * d) * v for (ri, ci, d), v in choice.items()]
    objective += [UNBOOKED_COST * (1 - b) for b in booked]
    model.Minimize(sum(objective))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 1
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise SchedulingError(f"no schedule found (solver status {solver.StatusName(status)})")
    out = []
    for r_i, r in enumerate(requests):
        pick = next(((ci, d) for (ri, ci, d), v in choice.items() if ri == r_i and solver.Value(v)), None)
        if pick is None:
            needed = sum(1 for q in requests if q.part == r.part)
            reason = _why_unbooked(r, centres, distance, r_i, max_distance_km, lead_days, needed)
            out.append(Appointment(r.vehicle, r.component, None, None, None, reason))
        else:
            ci, d = pick
            out.append(Appointment(r.vehicle, r.component, centres[ci].centre_id, d, distance[(r_i, ci)]))
    return out


def _why_unbooked(
    r: ServiceRequest, centres: Sequence[ServiceCentre], distance: Mapping[tuple[int, int], float],
    r_i: int, max_distance_km: float, lead_days: int, needed: int,
) -> str:  # fmt: skip
    if r.latest_day - lead_days <= 0:
        return "predicted window starts too soon to book ahead: call the driver now"
    near = [c for c_i, c in enumerate(centres) if distance[(r_i, c_i)] <= max_distance_km]
    if not near:
        return f"no service centre within {max_distance_km:.0f} km"
    in_stock = sum(c.stock.get(r.part, 0) for c in near)
    if in_stock < needed:
        return f"part {r.part!r} out of stock within reach ({in_stock} in stock, {needed} needed)"
    return "every nearby slot before the window is taken"


def reschedule(
    requests: Sequence[ServiceRequest],
    centres: Sequence[ServiceCentre],
    current: Sequence[Appointment],
    vehicle: str,
    *,
    move_to: tuple[str, int] | None = None,
    **options: object,
) -> list[Appointment]:
    """The driver moves their appointment: to ``move_to`` (centre, day) when given, else to the
    best other slot (the current one is forbidden). Other accepted bookings stay pinned."""
    pinned = {a.vehicle: (a.centre_id, a.day) for a in current if a.centre_id is not None and a.day is not None and a.vehicle != vehicle}
    forbidden: dict[str, set[tuple[str, int]]] = {}
    if move_to is not None:
        pinned[vehicle] = move_to
    else:
        mine = next((a for a in current if a.vehicle == vehicle), None)
        if mine is not None and mine.centre_id is not None and mine.day is not None:
            forbidden[vehicle] = {(mine.centre_id, mine.day)}
    return schedule(requests, centres, pinned=pinned, forbidden=forbidden, **options)  # type: ignore[arg-type]
