"""Act "Privacy": consent withdrawn reaches the car, a repairer's grant, an erasure that leaves
no readable trace.

One simulated car runs the edge agent; its telemetry is ingested into the lake. Through the
live HTTP API, as a driver app, an owner and a repairer would:

1. the car's data (location included) lands in the lake; the driver withdraws location
   consent (``PUT /v1/privacy/vehicles/{vin}/consent``), which is sent to the car as a signed
   command: the act measures how long until the car's agent applies it, then checks that no
   location sample measured after that moment reaches the lake while the rest still does;
   then the driver withdraws cabin data on the car's own screen: the act measures how long
   until the car stops collecting it and until its signed report is in the consent ledger;
2. the owner grants a repairer (a third-party client) access to diagnostics for 7 days
   (``POST /v1/privacy/vehicles/{vin}/grants``); the repairer reads them with purpose
   ``repair``, is refused location, and the ledger shows the grant covers nothing 7 days
   and 1 second later; the owner revokes it and the repairer's next read is refused;
3. the car stops and the owner asks for erasure (``POST /v1/privacy/requests``): the act
   reads the raw Parquet files of every region with DuckDB and finds none of its rows.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import httpx

from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import purpose_permit, vehicle_pseudonym
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.fleet_session import fleet_identities, running_fleet
from drivetrain.sim.fleet import FleetSpec, plan_fleet

NAME = "privacy"
TITLE = "Privacy: consent withdrawn in the car, a repairer's 7-day grant, erasure"
TENANT = "default"  # the bootstrap admin's tenant, so the demo's token may act on it
OWNER = "privacy demo"
CREDENTIALS_DIR = "privacy-demo-cars"
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.1
#: The issue's promise: collection stops on the vehicle within this many seconds.
STOP_WITHIN_S: Final = 5.0
LOCATION = "location"
CABIN = "cabin"
SEAT_BELT = "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"
ALL_BUT_LOCATION: Final = ["cabin", "diagnostics", "driving_behaviour", "technical"]


def _lake_rows(context: DemoContext, pseudonym: str, category: str | None,
               after: datetime | None = None) -> int:
    """Rows of the car in the lake (of one category, measured after a moment)."""
    where = [f"vehicle = '{pseudonym}'"]
    if category is not None:
        where.append(f"category = '{category}'")
    if after is not None:
        where.append(f"ts > '{after.isoformat()}'::TIMESTAMPTZ")
    with Lake.open(context.settings) as lake:
        table = lake.sql(TENANT, f"SELECT count(*) AS n FROM telemetry WHERE {' AND '.join(where)}")
    return int(table.column("n")[0].as_py())


def _raw_parquet_rows(roots: list[Path], pseudonym: str) -> tuple[int, int]:
    """(files, rows of the car) read straight from the Parquet files, without the lake."""
    files = [str(p) for root in roots for p in root.rglob("*.parquet")]
    if not files:
        return 0, 0
    with duckdb.connect() as con:
        found = con.execute("SELECT count(*) FROM read_parquet(?) WHERE vehicle = ?",
                            [files, pseudonym]).fetchall()
    return len(files), int(found[0][0])


def _wait(context: DemoContext, what: str, fraction: float, done: Any) -> bool:
    while not done():
        if context.remaining_s() < 2.0:
            return False
        context.report(what, fraction=fraction)
        time.sleep(POLL_S)
    return True


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    # a new car each run: a kept data dir holds the erased cars of earlier runs
    plan = plan_fleet(FleetSpec(vehicles=1, seed=uuid.uuid4().int % 2**31, regions=("EU",)))
    vin = plan.vehicles[0].vin
    identities = fleet_identities(context, plan, tenant=TENANT, owner=OWNER,
                                  actor=f"demo:{NAME}", folder=context.data_dir / CREDENTIALS_DIR)
    with platform.database.session() as session:
        pseudonym = vehicle_pseudonym(session, TENANT, vin)
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    figures: dict[str, Figure] = {}
    problems: list[str] = []
    with httpx.Client(base_url=platform.api_url, headers=admin, timeout=HTTP_TIMEOUT_S) as http:
        http.put(f"/v1/privacy/vehicles/{vin}/consent", json={
            "categories": [*ALL_BUT_LOCATION, LOCATION], "source": "driver-app"}
        ).raise_for_status()
        with running_fleet(context, plan, identities) as runner:
            agent = runner.agents[0]
            if not _wait(context, "the car's location reaches the lake", 0.15,
                         lambda: _lake_rows(context, pseudonym, LOCATION) > 0):
                return ActResult(False, "no location sample of the car reached the lake", figures)
            context.report("the driver withdraws location consent", fraction=0.3)
            asked = time.monotonic()
            answer = http.put(f"/v1/privacy/vehicles/{vin}/consent", json={
                "categories": ALL_BUT_LOCATION, "source": "driver-app"})
            answer.raise_for_status()
            version = answer.json()["vehicle_version"]
            applied = _wait(context, "the withdrawal travels to the car", 0.35,
                            lambda: agent.downlink.consent.version == version)
            stop_s = time.monotonic() - asked
            stopped_at = datetime.now(UTC)
            figures["stop_collecting_s"] = round(stop_s, 2)
            if not applied or stop_s > STOP_WITHIN_S:
                problems.append(f"the car applied the withdrawal after {stop_s:.1f} s "
                                f"(promised within {STOP_WITHIN_S:g} s)" if applied else
                                "the car never applied the withdrawal")
            # later samples of the other categories arrive: the car still reports
            _wait(context, "the car keeps sending what consent covers", 0.45,
                  lambda: _lake_rows(context, pseudonym, "technical", stopped_at) > 0)
            figures["dropped_on_car"] = agent.samples_not_consented
            problems += _withdraw_in_the_car(context, http, agent, vin, figures)
        late_location = _lake_rows(context, pseudonym, LOCATION, stopped_at)
        if late_location:
            problems.append(f"{late_location} location samples measured after the withdrawal "
                            "reached the lake")
        problems += _repairer(context, http, vin, figures)
        context.report("the owner asks for erasure", fraction=0.85)
        roots = [p for p in (context.settings.data_dir / "lake",
                             *map(Path, context.settings.lake_roots.values())) if p.exists()]
        files, before = _raw_parquet_rows(roots, pseudonym)
        erased = http.post("/v1/privacy/requests", json={"kind": "erasure", "vins": [vin]})
        erased.raise_for_status()
        files_after, after = _raw_parquet_rows(roots, pseudonym)
        figures.update({"rows_before_erasure": before, "rows_after_erasure": after,
                        "parquet_files_before": files, "parquet_files_after": files_after})
        if before == 0 or after != 0:
            problems.append(f"raw Parquet files hold {after} rows of the car after erasure "
                            f"({before} before)")
        if http.get(f"/v1/twins/{vin}").status_code != 404:
            problems.append("the car's twin is still there after erasure")
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    return ActResult(True, (
        f"location withdrawn: the car stopped collecting it {figures['stop_collecting_s']} s "
        f"later ({figures['dropped_on_car']} samples dropped on the car, none reached the "
        f"lake); cabin withdrawn on the car's screen: stopped in {figures['hmi_stop_s']} s, "
        f"in the ledger {figures['hmi_ledger_s']} s later; the repairer read {figures['repairer_rows']} diagnostics rows under a 7-day "
        f"grant, was refused location and, after the owner revoked it, everything; erasure: "
        f"{before} rows of the car in {figures['parquet_files_before']} raw Parquet files "
        f"before, 0 in the {figures['parquet_files_after']} left (read with DuckDB)"), figures)


def _withdraw_in_the_car(context: DemoContext, http: httpx.Client, agent: Any, vin: str,
                         figures: dict[str, Figure]) -> list[str]:
    """The driver withdraws cabin data on the car's own screen: the car stops collecting it
    at its next tick and reports it; the ledger shows the change (source ``vehicle-hmi``)."""
    context.report("the driver withdraws cabin data on the car's screen", fraction=0.5)
    asked = time.monotonic()
    agent.request_withdrawal([CABIN])
    stopped = _wait(context, "the car stops collecting cabin data", 0.52,
                    lambda: not agent.downlink.consent.allows(SEAT_BELT))
    stop_s = round(time.monotonic() - asked, 2)
    figures["hmi_stop_s"] = stop_s

    def recorded() -> bool:
        body = http.get(f"/v1/privacy/vehicles/{vin}/consent").json()
        return body.get("source") == "vehicle-hmi" and CABIN not in body.get("categories", [])

    in_ledger = _wait(context, "the car's report reaches the consent ledger", 0.55, recorded)
    figures["hmi_ledger_s"] = round(time.monotonic() - asked, 2)
    if not stopped or stop_s > STOP_WITHIN_S:
        return [f"the car stopped collecting cabin data after {stop_s} s"]
    if not in_ledger:
        return ["the withdrawal made in the car never reached the consent ledger"]
    return []


def _repairer(context: DemoContext, http: httpx.Client, vin: str,
              figures: dict[str, Figure]) -> list[str]:
    """A repairer gets diagnostics for 7 days, reads them, is refused the rest, loses them."""
    problems = []
    context.report("the owner grants a repairer diagnostics for 7 days", fraction=0.6)
    made = http.post(f"/v1/tenants/{TENANT}/clients", json={"role": "third_party_app",
                                                               "name": "repairer"})
    made.raise_for_status()
    repairer = made.json()
    token = http.post("/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": repairer["client_id"],
        "client_secret": repairer["client_secret"]}).json()["access_token"]
    grant = http.post(f"/v1/privacy/vehicles/{vin}/grants", json={
        "purpose": "repair", "categories": ["diagnostics"], "person": "owner",
        "source": "owner-app", "recipient": repairer["client_id"], "valid_days": 7}).json()
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).isoformat(),
              "end": (now + timedelta(minutes=5)).isoformat(), "vin": vin, "purpose": "repair"}
    as_repairer = {"Authorization": f"Bearer {token}"}
    read = http.get("/v1/telemetry/signals", params=window, headers=as_repairer)
    rows = read.json().get("rows", 0) if read.status_code == 200 else 0
    figures["repairer_rows"] = rows
    if rows == 0:
        problems.append(f"the repairer read no diagnostics ({read.status_code}: "
                        f"{read.text[:120]})")
    location = http.get("/v1/telemetry/signals", headers=as_repairer,
                        params={**window, "path": "Vehicle.CurrentLocation.Latitude"})
    if location.status_code != 403:
        problems.append(f"the repairer's location read answered {location.status_code}")
    # the twin's current state: the repairer sees the diagnostics granted, the rest withheld
    state = http.get(f"/v1/twins/{vin}", params={"purpose": "repair"}, headers=as_repairer)
    withheld = state.json().get("withheld", {}) if state.status_code == 200 else {}
    if "location" not in withheld or "diagnostics" in withheld:
        problems.append(f"the repairer's twin read answered {state.status_code} withholding "
                        f"{sorted(withheld) or 'nothing'}")
    after_seven_days = datetime.fromisoformat(grant["expires_at"]) + timedelta(seconds=1)
    with context.platform.database.session() as session:
        later = purpose_permit(session, TENANT, "repair", third_party=repairer["client_id"],
                               now=after_seven_days)
    if later.categories:
        problems.append("the grant still covers data after its 7 days")
    http.post(f"/v1/privacy/grants/{grant['grant_id']}/withdraw").raise_for_status()
    revoked = http.get("/v1/telemetry/signals", params=window, headers=as_repairer)
    if revoked.status_code != 403:
        problems.append(f"after revocation the repairer's read answered {revoked.status_code}")
    revoked_state = http.get(f"/v1/twins/{vin}", params={"purpose": "repair"},
                             headers=as_repairer)
    if revoked_state.status_code != 403:
        problems.append("after revocation the repairer's twin read answered "
                        f"{revoked_state.status_code}")
    return problems


PRIVACY = Act(name=NAME, title=TITLE, run=run, weight=0.1, min_budget_s=12.0)
