"""Act "Fleet drives": simulated vehicles with real edge agents send signed telemetry.

The act plans ``context.vehicles`` vehicles (at least two; mixed models and regions, from the
seed), registers them in the platform's fleet registry with fresh keys — every vehicle
consenting to every data category except one, which withholds ``location`` — and drives them
through the embedded platform's transport with ``FleetRunner``: vectorised physics and wear,
each vehicle's CAN bus synthesized and decoded, one ``EdgeAgent`` per vehicle sealing signed
telemetry batches into its store-and-forward buffer and publishing them. The simulated clock
ends at the act's start, so every sample is dated in the recent past; the fleet drives as fast
as the machine goes for up to ``PLANNED_SIM_S`` simulated seconds or 40 % of the act's
budget.

Its check: every vehicle's telemetry reached the bus (counted by a subscriber, per VIN); every
frame was decoded (no unknown or rejected frame); every agent's buffer was emptied; the
ground truth (manifest, component health, trips, sessions) was written. The ingest worker
behind the bus then stores the data; the next act ("telemetry lands") queries it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

from drivetrain.cloud.fleet import cloud_signing_key
from drivetrain.cloud.privacy.flows import wait_delivered
from drivetrain.commands.sim import provision_fleet, send_consent
from drivetrain.core.transport import TELEMETRY, Message, parse_vehicle_topic, vehicle_filter
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.fleet_ingest import ingest_running
from drivetrain.demo.fleet_session import FLEET_CONSENT, give_fleet_consent
from drivetrain.sim.fleet import (
    FleetRunner,
    FleetSpec,
    FleetStatus,
    RunnerOptions,
    SimVehicle,
    plan_fleet,
)
from drivetrain.sim.fleet.groundtruth import MANIFEST_FILE, read_manifest, write_ground_truth

NAME = "fleet-drives"
TITLE = "Fleet drives: simulated vehicles, real edge agents"
TENANT: Final = "default"
#: Where the run's ground truth and buffers go, under the demo's data directory.
FLEET_DIR: Final = "fleet-run"
#: Simulated seconds the fleet drives at most.
PLANNED_SIM_S: Final = 900
#: Share of the act's budget the drive may use; the rest flushes, waits for ingest, writes.
DRIVE_SHARE: Final = 0.4
#: The manifest key naming the vehicle that withheld location consent.
NO_LOCATION_KEY: Final = "vehicle_without_location_consent"


def fleet_dir(context: DemoContext) -> Path:
    """Where this act leaves its ground truth (the next act reads the manifest there)."""
    return context.data_dir / FLEET_DIR


def run(context: DemoContext) -> ActResult:
    """Plan, provision and drive the fleet; check what it sent (see the module docstring)."""
    platform = context.platform
    vehicles = max(2, context.vehicles)
    out = fleet_dir(context)
    sim_s = PLANNED_SIM_S
    start = math.floor(time.time()) - sim_s
    plan = plan_fleet(FleetSpec(vehicles=vehicles, seed=context.seed, start_utc=float(start)))
    no_location = plan.vehicles[-1].vin
    everything = tuple(PRIVACY_CATEGORIES)
    consent = {
        v.vin: tuple(c for c in everything if v.vin != no_location or c != "location")
        for v in plan.vehicles
    }
    context.report(f"registering {vehicles} vehicles", fraction=0.02)
    identities = provision_fleet(
        platform.database, plan.vehicles, tenant=TENANT,
        cloud_key=cloud_signing_key(context.settings), actor="demo",
    )  # fmt: skip
    # the drivers' consents travel to the cars as signed commands; the cars start once they
    # are on the bus, so each applies its consent before its first sample
    jobs = send_consent(platform.database, consent, tenant=TENANT, actor="demo")
    if not wait_delivered(platform.database, jobs, tenant=TENANT,
                          timeout_s=max(1.0, min(30.0, context.remaining_s() / 4))):
        return ActResult(False, "the consents were not handed to the cars in time", {})
    with platform.database.session() as session:  # the fleet map shows where they drive
        for vehicle in plan.vehicles:
            allowed = tuple(c for c in FLEET_CONSENT if c in consent[vehicle.vin])
            give_fleet_consent(session, tenant=TENANT, vin=vehicle.vin, actor="demo",
                               categories=allowed)
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def count(message: Message) -> None:
        vin = parse_vehicle_topic(message.topic).vin
        with lock:
            received[vin] += 1

    watcher = platform.transport.subscribe(vehicle_filter(TELEMETRY), count)
    options = RunnerOptions(batch_interval_s=10.0, buffer="sqlite", buffer_dir=out)
    stop = threading.Event()
    drive_deadline = time.monotonic() + DRIVE_SHARE * context.budget_s

    def progress(status: FleetStatus) -> None:
        context.report(
            f"t={status.sim_time_s:,.0f}/{sim_s} s simulated, {status.driving} driving, "
            f"{status.km_driven:,.1f} km",
            fraction=0.05 + 0.6 * status.sim_time_s / sim_s,
            figures={"signals": status.signals, "frames": status.frames},
        )
        if time.monotonic() > drive_deadline or context.cancelled.is_set():
            stop.set()

    try:
        with (
            ingest_running(context) as ingest,
            FleetRunner(plan, platform.transport, identities, options) as runner,
        ):
            status = runner.run(sim_s, speedup=0.0, stop=stop, on_progress=progress)
            context.check_time()
            backlog = sum(agent.buffer.stats().messages for agent in runner.agents)
            platform.transport.drain(timeout_s=max(1.0, context.remaining_s()))
            ingest.wait_idle(timeout_s=max(1.0, context.remaining_s()))
        manifest_path = write_ground_truth(
            out, plan, options, status, extra={"tenant": TENANT, NO_LOCATION_KEY: no_location}
        )
    finally:
        watcher.unsubscribe()
    manifest = read_manifest(manifest_path)
    return _verdict(plan.vehicles, status, received, backlog, manifest, sim_s)


def _verdict(
    vehicles: tuple[SimVehicle, ...],
    status: FleetStatus,
    received: Counter[str],
    backlog: int,
    manifest: dict[str, Any],
    sim_s: int,
) -> ActResult:
    problems: list[str] = []
    silent = [v.vin for v in vehicles if received[v.vin] == 0]
    if silent:
        problems.append(f"{len(silent)} vehicles published no telemetry (e.g. {silent[0]})")
    if status.unknown_frames or status.decoded_frames != status.frames:
        problems.append(
            f"{status.frames - status.decoded_frames:,} of {status.frames:,} frames not decoded "
            f"({status.unknown_frames:,} with unknown ids)"
        )
    if backlog:
        problems.append(f"{backlog} messages still in the vehicles' buffers")
    files = manifest.get("files", {})
    if len(manifest.get("vehicles", ())) != len(vehicles) or not files.get(
        "component_health.parquet", {}
    ).get("rows"):
        problems.append(f"ground truth incomplete: {MANIFEST_FILE} lists {sorted(files)}")
    figures: dict[str, Figure] = {
        "vehicles": len(vehicles),
        "km_driven": round(status.km_driven, 1),
        "signals": status.signals,
        "frames": status.frames,
        "simulated_s": round(status.sim_time_s),
    }
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    cut = (
        ""
        if status.sim_time_s >= sim_s
        else f" (stopped at {status.sim_time_s:,.0f} s: time budget)"
    )
    check = (
        f"{len(vehicles)} vehicles drove {status.km_driven:,.1f} km in {status.sim_time_s:,.0f} "
        f"simulated s{cut}; every vehicle published signed telemetry "
        f"({sum(received.values()):,} batches), all {status.frames:,} CAN frames decoded, "
        f"{status.signals:,} signals collected, buffers empty, ground truth written"
    )
    return ActResult(True, check, figures)


FLEET_DRIVES = Act(NAME, TITLE, run, weight=1.0)
