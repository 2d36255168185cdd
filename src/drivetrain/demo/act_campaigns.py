"""Act "Campaign collects": a conditional collection campaign on the cars with an old BMS
release, then a command job to the group — through the live HTTP API, as an operator would.

Every piece is real: simulated cars (``drivetrain.sim.fleet``) each run the edge agent and
report their ECU inventory, so their twins know each car's BMS release; the platform's
campaign runner and dispatcher deliver what the API is given, signed, to the cars; the cars'
acks and telemetry come back through ingestion. The act:

1. waits until every car's twin knows its BMS release;
2. writes the campaign ``harsh-brake-…``: 10 s before and after each hard brake
   (longitudinal acceleration below -0.8 m/s²: the simulated drivers brake gently, their
   hardest stops reach about -1.6 m/s²), only on this act's cars whose BMS is older than
   2.4.0 — checked against the catalog — and approves it;
3. waits until the campaign is active on every targeted car;
4. sends a command job (``flash_lights``) to all the act's cars, one of which has lost its
   link, with a 10 s freshness window;
5. waits until the job finishes and a targeted car has braked hard, then asks the lake which
   cars' rows carry the campaign's id.

Its check: the campaign went exactly to the old-BMS cars and is active there; every row of the
campaign in the lake comes from a targeted car, and at least one hard brake was captured; the
job finished with every online car succeeded and the offline one timed out, saying so. The
campaign is retired at the end. Its fleet is chosen among a few seeded fleets (the world is
deterministic per seed, so a copy stepped ahead shows when its cars brake) as the one whose
targeted cars brake hard most often soon after the campaign is installed, so the act shows a
capture within its budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx
import numpy as np

from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym
from drivetrain.cloud.privacy.flows import change_consents
from drivetrain.core.vss import PRIVACY_CATEGORIES
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.fleet_session import fleet_identities, running_fleet
from drivetrain.sim.fleet import FleetPlan, FleetSpec, plan_fleet

NAME = "campaign-collects"
TITLE = "Campaign collects: 10 s around hard brakes on cars with an old BMS, then a command job"
TENANT = "default"
OWNER = "campaign demo"
CREDENTIALS_DIR = "campaign-demo-cars"
BRAKE: Final = "Vehicle.Acceleration.Longitudinal"
#: Why the campaign's rows are read (the drivers consent to it).
PURPOSE: Final = "product_improvement"
THRESHOLD_MS2: Final = -0.8
OLD_BMS: Final = 'software."BMS" < "2.4.0"'
#: Cars the act drives (at least), and how many seeded fleets it considers.
MIN_CARS: Final = 8
FLEETS_CONSIDERED: Final = 24
#: When a targeted car should brake hard, seconds after the fleet starts: once the campaign
#: is installed (about 4 s: the twins learn the BMS releases, the campaign is written,
#: approved and delivered), and early enough for the demo's share of time.
BRAKE_WINDOW_S: Final = (6.0, 14.0)
SIM_STEP_S: Final = 0.5
#: Share of the act's budget (at least MIN_SEARCH_S) spent looking for such a fleet.
SEARCH_SHARE: Final = 0.12
MIN_SEARCH_S: Final = 1.5
COMMAND_FRESHNESS_S: Final = 5.0
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.3


@dataclass(frozen=True)
class _Fleet:
    plan: FleetPlan
    targeted: tuple[str, ...]
    others: tuple[str, ...]


def _old_bms(plan: FleetPlan) -> tuple[str, ...]:
    return tuple(v.vin for v in plan.vehicles if any(
        e.name == "BMS" and (e.software_version or "") < "2.4.0" for e in v.inventory))


def _brakes_in_window(plan: FleetPlan, targeted: set[int], deadline: float) -> int:
    """How many times a targeted car of ``plan``'s world starts braking past the threshold in
    the brake window (steps ``plan``'s own world ahead: re-plan before driving it); 0 also
    when ``deadline`` (monotonic) passes first."""
    world = plan.world
    low, high = BRAKE_WINDOW_S
    previous = np.zeros(world.n, np.bool_)
    hits = 0
    for step in range(int(high / SIM_STEP_S)):
        if time.monotonic() > deadline:
            return 0
        world.step(SIM_STEP_S)
        # The physics' own acceleration: what the cars report as BRAKE, without computing
        # every other signal.
        below = np.asarray(world.physics.state.accel_mps2, float) < THRESHOLD_MS2
        edges = below & ~previous
        previous = below
        if (step + 1) * SIM_STEP_S >= low:
            hits += sum(1 for i in targeted if edges[i])
    return hits


def _pick_fleet(context: DemoContext) -> _Fleet:
    """The act's fleet: of the seeded fleets with both old- and new-BMS cars, the one whose
    targeted cars brake hard most often in the brake window (the first with two such brakes
    ends the search), among those the search has time for (``SEARCH_SHARE`` of the budget)."""
    cars = max(MIN_CARS, context.vehicles)
    deadline = time.monotonic() + max(MIN_SEARCH_S, SEARCH_SHARE * context.budget_s)
    best: tuple[int, FleetSpec] | None = None
    for k in range(FLEETS_CONSIDERED):
        spec = FleetSpec(vehicles=cars, seed=context.seed + 11_001 + k, regions=("EU", "US"))
        plan = plan_fleet(spec)
        old_vins = set(_old_bms(plan))
        if not old_vins or len(old_vins) == cars:
            continue
        indices = {v.index for v in plan.vehicles if v.vin in old_vins}
        hits = _brakes_in_window(plan, indices, deadline)
        if best is None or hits > best[0]:
            best = (hits, spec)
        if hits >= 2 or time.monotonic() > deadline:
            break
    chosen = plan_fleet(best[1] if best is not None else FleetSpec(
        vehicles=cars, seed=context.seed + 11_001, regions=("EU", "US")))
    old = _old_bms(chosen)
    return _Fleet(chosen, old, tuple(v.vin for v in chosen.vehicles if v.vin not in old))


def _consent(context: DemoContext, vins: list[str]) -> None:
    """The act's drivers agree to every data category (the campaign collects driving data;
    the consent travels to each car as a signed command, which it applies when it starts),
    and to its use for product improvement (the purpose the campaign's rows are read for)."""
    with context.platform.database.session() as session:
        change_consents(session, dict.fromkeys(vins, PRIVACY_CATEGORIES), tenant=TENANT,
                        source="contract", actor=f"demo:{NAME}")
        for vin in vins:
            give_consent(session, tenant=TENANT, vin=vin, purpose=PURPOSE,
                         categories=PRIVACY_CATEGORIES, person="driver", source="driver-app",
                         actor=f"demo:{NAME}")


def _definition(campaign_id: str, vins: list[str]) -> dict[str, Any]:
    return {
        "campaign": {
            "id": campaign_id, "priority": 6, "period_ms": None,
            "signals": [BRAKE, "Vehicle.Speed", "Vehicle.Chassis.Brake.PedalPosition"],
            "triggers": [{"name": "hard-brake", "expression": f"{BRAKE} < {THRESHOLD_MS2}",
                          "pre_s": 10, "post_s": 10}],
        },
        "targeting": {"query": f"{OLD_BMS} and vin in [{', '.join(json.dumps(v) for v in vins)}]"},
        "description": "10 s before and after each hard brake, on cars with an old BMS release",
    }


def _wait(context: DemoContext, http: httpx.Client, path: str, done: Any, what: str,
          fraction: float) -> Any:
    """The resource at ``path`` once ``done`` holds for it, or when the act's time is up."""
    while True:
        body = http.get(path).json()
        if done(body) or _out_of_time(context):
            return body
        context.report(what, fraction=fraction)
        time.sleep(POLL_S)


def _out_of_time(context: DemoContext) -> bool:
    """Time to stop and report: what is left is needed to stop the fleet and check."""
    return context.remaining_s() < max(2.0, 0.15 * context.budget_s)


def _campaign_rows(http: httpx.Client, campaign_id: str) -> dict[str, int]:
    query = (f"SELECT vehicle, count(*) AS n FROM telemetry WHERE campaign = "
             f"'{campaign_id}' GROUP BY vehicle")
    answer = http.post("/v1/telemetry/sql", json={"query": query}, params={"purpose": PURPOSE})
    answer.raise_for_status()
    return {row["vehicle"]: int(row["n"]) for row in answer.json()["data"]}


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    fleet = _pick_fleet(context)
    vins = [v.vin for v in fleet.plan.vehicles]
    identities = fleet_identities(context, fleet.plan, tenant=TENANT, owner=OWNER,
                                  actor=f"demo:{NAME}",
                                  folder=context.data_dir / CREDENTIALS_DIR)
    _consent(context, vins)
    with platform.database.session() as session:
        pseudonyms = {vehicle_pseudonym(session, TENANT, v): v for v in vins}
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    figures: dict[str, Figure] = {"cars": len(vins), "old_bms": len(fleet.targeted)}
    context.report(f"{len(vins)} cars start; {len(fleet.targeted)} run a BMS older than 2.4.0",
                   fraction=0.05)
    with running_fleet(context, fleet.plan, identities) as runner, httpx.Client(
        base_url=platform.api_url, headers=headers, timeout=HTTP_TIMEOUT_S
    ) as http:
        for vin in vins:  # the inventory each agent reported on starting
            _wait(context, http, f"/v1/twins/{vin}",
                  lambda t: any(e["name"] == "BMS" for e in t["ecus"]),
                  "twins learn each car's BMS release", 0.1)
            if _out_of_time(context):
                break
        campaign_id = f"harsh-brake-{len(http.get('/v1/campaigns').json()) + 1}"
        made = http.post("/v1/campaigns", json=_definition(campaign_id, vins))
        made.raise_for_status()
        http.post(f"/v1/campaigns/{campaign_id}/approve").raise_for_status()
        context.report(f"campaign {campaign_id} written, checked and approved", fraction=0.2)
        shown = _wait(context, http, f"/v1/campaigns/{campaign_id}",
                      lambda c: c["vehicles"].get("active", 0) == len(fleet.targeted),
                      f"campaign {campaign_id} on its way to the old-BMS cars", 0.3)
        offline = fleet.others[-1] if fleet.others else vins[-1]
        runner.agents[vins.index(offline)].stop()  # this car's link is down from now on
        job = http.post("/v1/jobs", json={
            "command": {"name": "flash_lights", "args": {"times": 2}},
            "vins": vins, "name": "flash lights on the campaign demo cars",
            "policy": {"freshness_s": COMMAND_FRESHNESS_S,
                       "timeout_s": COMMAND_FRESHNESS_S + 2}}).json()
        context.report(f"job {job['job_id']}: flash_lights to {len(vins)} cars (one offline)",
                       fraction=0.45)
        rows: dict[str, int] = {}
        while True:
            job = http.get(f"/v1/jobs/{job['job_id']}").json()
            rows = _campaign_rows(http, campaign_id)
            captured = any(pseudonyms.get(p) in fleet.targeted for p in rows)
            context.report(f"job {job['status']} ({job['counts']['succeeded']} succeeded); "
                           f"campaign rows from {len(rows)} car(s)", fraction=0.6,
                           figures={"campaign_rows": sum(rows.values())})
            if (job["status"] == "finished" and captured) or _out_of_time(context):
                break
            time.sleep(4 * POLL_S)
        timed_out = http.get(f"/v1/jobs/{job['job_id']}/vehicles",
                             params={"state": "timed_out"}).json()["deliveries"]
        states = {v["vin"]: v["state"] for v in
                  http.get(f"/v1/campaigns/{campaign_id}/vehicles").json()}
        http.post(f"/v1/campaigns/{campaign_id}/retire", json={"reason": "demo over"})
    counts = job["counts"]
    from_cars = {pseudonyms.get(p, p) for p in rows}
    early = _out_of_time(context)
    figures.update({
        "campaign": campaign_id, "active": shown["vehicles"].get("active", 0),
        "campaign_rows": sum(rows.values()), "cars_captured": len(from_cars),
        "job_succeeded": counts["succeeded"], "job_timed_out": counts["timed_out"],
    })
    problems = []
    if not set(states) <= set(fleet.targeted) or (
        not early and (set(states) != set(fleet.targeted) or set(states.values()) != {"active"})
    ):
        problems.append(f"campaign states {states}; expected active on exactly "
                        f"{sorted(fleet.targeted)}")
    strays = sorted(from_cars - set(fleet.targeted))
    if strays:
        problems.append(f"campaign rows from cars it does not target: {strays}")
    if counts["failed"] or counts["timed_out"] > 1:
        problems.append(f"job counts {counts}; expected no failure and one car timed out")
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    if early and not (from_cars and job["status"] == "finished"):
        return ActResult(True, (
            f"stopped early (time budget): campaign {campaign_id} written, checked against the "
            f"catalog and approved; on {len(states)} of the {len(fleet.targeted)} old-BMS cars "
            f"so far, none other; {sum(rows.values())} rows captured, all from targeted cars; "
            f"job flash_lights {job['status']}: {counts['succeeded']} succeeded so far"
        ), figures)
    if [d["vin"] for d in timed_out] != [offline] or "offline" not in timed_out[0]["reason"]:
        return ActResult(False, f"the timed-out car is {timed_out}, expected {offline} "
                         "(offline)", figures)
    check = (
        f"campaign {campaign_id} went to exactly the {len(fleet.targeted)} old-BMS cars of "
        f"{len(vins)}; {sum(rows.values())} rows captured around hard brakes, all from "
        f"targeted cars ({len(from_cars)}); job flash_lights finished: {counts['succeeded']} "
        f"succeeded, 1 timed out (the offline car)"
    )
    return ActResult(True, check, figures)


CAMPAIGN_COLLECTS = Act(name=NAME, title=TITLE, run=run, weight=1.0, min_budget_s=12.0)
