"""Act "Update rolls out": a signed BMS update over the fleet in health-gated waves.

The act publishes two BMS builds per hardware variant in the Uptane Image repository: a bad
one that installs cleanly but raises energy use, and a good one. Each rollout targets the
vehicles a twin query selects, takes each BMS's hardware id from the twin's ECU inventory,
signs Director metadata per vehicle, queues the update notices as a job of the dispatcher,
and has every targeted vehicle's primary run a real Uptane update cycle (both repositories
over HTTP, full verification, A/B install with health check); cars already running the
bad build get the good one as a bsdiff4 delta. The KPIs of updated vehicles
come from the simulator: the running build's behaviour applied to each car's baseline.

Checks: the bad build is paused by the health gate after its first wave with the energy
evidence; the good build completes every wave; every targeted twin then reports the good
version.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drivetrain.demo.acts import Act, ActResult, DemoContext

NAME = "ota"
TITLE = "Update rolls out: Uptane-signed BMS builds in health-gated waves"
TENANT = "default"
ECU = "BMS"
ACTOR = "ota demo"
MAX_VEHICLES = 16
MIN_VEHICLES = 8


@dataclass
class _Car:
    vin: str
    hardware_id: str
    baseline_kwh_100km: float
    before: str


def run(context: DemoContext) -> ActResult:
    from drivetrain.cloud.ota import Kpis, OtaLayout, Rollout, UpdateRecord, WavePolicy, flows
    from drivetrain.cloud.ota.rollout import VehicleState
    from drivetrain.cloud.ota.serve import BackgroundServer
    from drivetrain.cloud.twins import list_ecus, record_ecu_inventory
    from drivetrain.demo.fleet_session import fleet_identities
    from drivetrain.edge import AbEcu, RepositoryUrls, UptanePrimary, VehicleConditions
    from drivetrain.sim.firmware import (
        FirmwareBehaviour,
        build_firmware,
        read_firmware,
        simulated_health_check,
    )
    from drivetrain.sim.fleet import FleetSpec, plan_fleet

    rng = context.rng(NAME)
    database = context.platform.database
    plan = plan_fleet(FleetSpec(vehicles=max(MIN_VEHICLES, min(MAX_VEHICLES, context.vehicles)),
                                seed=context.seed + 21_001, regions=("EU", "US")))
    fleet_identities(context, plan, tenant=TENANT, owner=ACTOR, actor=f"demo:{NAME}",
                     folder=context.data_dir / "ota-demo-credentials")
    with database.session() as session:
        for vehicle in plan.vehicles:  # what each car's agent reports about its ECUs
            record_ecu_inventory(session, vehicle.vin, {
                e.name: (e.hardware_id, e.software_version) for e in vehicle.inventory})
        fleet_vins = ", ".join(json.dumps(v.vin) for v in plan.vehicles)
        vins = flows.select_targets(
            session, TENANT, f'software."{ECU}" < "2.6.0" and vin in [{fleet_vins}]')
        cars: list[_Car] = []
        for vin in vins:
            bms = [e for e in list_ecus(session, vin, tenant=TENANT) if e.name == ECU]
            if bms and bms[0].hardware_id:
                cars.append(_Car(vin, bms[0].hardware_id, float(rng.normal(16.5, 0.8)),
                                 bms[0].software_version or "unknown"))
    if len(cars) < MIN_VEHICLES:
        return ActResult(False, f"FAILED: the twin query found {len(cars)} vehicles with a "
                                f"{ECU} in their ECU inventory; at least {MIN_VEHICLES} needed")
    root = Path(tempfile.mkdtemp(prefix="ota-", dir=context.data_dir))
    layout = OtaLayout.under(root)
    layout.init({"root": (2, 3)})
    images = layout.images()
    variants = sorted({c.hardware_id for c in cars})
    builds = {"bad": ("2.6.0", 6, 1.14), "good": ("2.6.1", 7, 1.0)}
    by_hw: dict[str, dict[str, str]] = {"bad": {}, "good": {}}
    for label, (version, counter, energy_factor) in builds.items():
        for hw in variants:
            name = f"bms/{hw}/bms-{version}.bin"
            data = build_firmware(FirmwareBehaviour(ECU, version, True, energy_factor), 16 * 1024)
            images.add_image(name, data, hardware_id=hw, release_counter=counter,
                             version=version)
            by_hw[label][hw] = name
    context.report(f"{len(variants)} BMS variants, {2 * len(variants)} signed images",
                   fraction=0.1)
    director = layout.director()
    parked = VehicleConditions(parked=True, soc_pct=75)
    records: list[UpdateRecord] = []
    results: dict[str, Rollout] = {}
    with BackgroundServer(layout) as server:
        primaries = {}
        for car in cars:
            director.enrol(car.vin)
            ecu = AbEcu(ECU, car.hardware_id, root / "vehicles" / car.vin / "ecu",
                        simulated_health_check)
            primary = UptanePrimary(car.vin, root / "vehicles" / car.vin / "ota",
                                    RepositoryUrls.under(server.url, car.vin), [ecu])
            primary.provision(director.root_bytes(), images.repo.root_bytes(1))
            primaries[car.vin] = primary

        def kpis(car: _Car) -> Kpis:
            image = primaries[car.vin].ecus[ECU].image_bytes()
            factor = read_firmware(image).energy_factor if image else 1.0
            return Kpis(car.baseline_kwh_100km * factor, float(rng.uniform(0.0, 0.4)), 0.0)

        saved = 0
        for step, label in enumerate(("bad", "good")):
            version = builds[label][0]
            if label == "good":  # deltas from the build the first wave now runs
                for hw in variants:
                    images.add_delta(by_hw["bad"][hw], by_hw["good"][hw])
            rollout = Rollout(f"bms-{version}", tuple(c.vin for c in cars),
                              WavePolicy(waves=(0.25, 0.6, 1.0), health_margin=0.05),
                              created_by=f"demo:{NAME}:release-engineer")
            rollout.approve(f"demo:{NAME}:release-manager")
            with database.session() as session:
                job_id = flows.open_rollout_job(session, tenant=TENANT, actor=ACTOR,
                                                campaign=rollout.campaign, image=version)
            updated: set[str] = set()
            while rollout.status == "running":
                context.check_time()
                wave = rollout.start_next_wave()
                with database.session() as session:
                    flows.dispatch_wave(session, tenant=TENANT, job_id=job_id,
                                        director=director, images=images, ecu=ECU,
                                        images_by_hardware=by_hw[label], vins=wave,
                                        wave=rollout.wave)
                for vin in wave:
                    context.check_time()
                    started = datetime.now(UTC)
                    rollout.advance(vin, "downloading")
                    rollout.advance(vin, "installing")
                    [outcome] = primaries[vin].update(parked)
                    if outcome.via_delta and outcome.after is not None:
                        saved += outcome.after.length - outcome.downloaded_bytes
                    state: VehicleState = (
                        "installed" if outcome.result in ("installed", "unchanged")
                        else "rolled_back")
                    rollout.advance(vin, state)
                    car = next(c for c in cars if c.vin == vin)
                    records.append(UpdateRecord(
                        vin, rollout.campaign, outcome.before.version if outcome.before
                        else car.before, outcome.after.version if outcome.after else "",
                        f"RXSWIN-BMS-{version}", "parked, charge 75 % >= 30 %", state,
                        outcome.detail, started, datetime.now(UTC)))
                    if state == "installed":
                        updated.add(vin)
                        with database.session() as session:
                            flows.record_installed(session, vin, ECU, version)
                rollout.judge_wave([kpis(c) for c in cars if c.vin in updated],
                                   [kpis(c) for c in cars if c.vin not in updated])
                context.report(f"{label} build {version}: wave {rollout.wave} → "
                               f"{rollout.status}", fraction=0.2 + 0.4 * step
                               + 0.4 * rollout.wave / 3)
            with database.session() as session:
                flows.close_rollout_job(session, tenant=TENANT, actor=ACTOR, job_id=job_id,
                                        reason=f"rollout {rollout.status}: {rollout.reason}")
            results[label] = rollout
    with database.session() as session:
        running = Counter(e.software_version for c in cars
                          for e in list_ecus(session, c.vin, tenant=TENANT) if e.name == ECU)
    bad, good = results["bad"], results["good"]
    energy = bad.evidence.get("energy_kwh_per_100km", {})
    passed = (bad.status == "paused" and bad.wave == 1 and "energy" in bad.reason
              and good.status == "completed" and running.get("2.6.1", 0) == len(cars))
    check = (
        f"update rolls out: bad build {bad.status} after wave {bad.wave} "
        f"({bad.counts()['installed']} of {len(cars)} installed; energy "
        f"{energy.get('updated', 0):.1f} vs control {energy.get('control', 0):.1f} kWh/100 km), "
        f"good build {good.status} in {good.wave} waves ({good.counts()['installed']} installed),"
        f" twins report BMS 2.6.1 on {running.get('2.6.1', 0)} of {len(cars)} vehicles;"
        f" deltas saved {saved:,} bytes"
    )
    figures = {
        "vehicles": len(cars),
        "bms_variants": len(variants),
        "bad_build_installed": bad.counts()["installed"],
        "bad_build_status": bad.status,
        "good_build_installed": good.counts()["installed"],
        "good_build_status": good.status,
        "update_records": len(records),
        "delta_bytes_saved": saved,
    }
    return ActResult(passed, check if passed else f"FAILED: {check}", figures)


UPDATE_ROLLS_OUT = Act(name=NAME, title=TITLE, run=run, weight=0.4, min_budget_s=8.0)
