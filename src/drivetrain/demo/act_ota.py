"""Act "Update rolls out": a signed BMS update over the fleet in health-gated waves, on the
platform's stored rollout path.

The act publishes two BMS builds per hardware variant in the platform's Uptane Image
repository: a bad one that installs cleanly but leaves the pack heater drawing power while the
car drives (``FirmwareBehaviour.extra_load_w``), and a good one. Each build is a stored rollout
(``cloud.ota.service``): created by a release engineer, approved by a release manager (two
people), its waves signed by the Director and carried as ``ota.update`` notices by the
platform's one dispatcher. Every car is simulated (``drivetrain.sim``: the world's drivers,
routes and physics) and runs a real edge agent with an Uptane primary: the agent acts on the
notice by itself — preconditions (parked, charge), both repositories over HTTP, full
verification, A/B install with a health check — and answers with a signed acknowledgement and
a signed version manifest. The build a car's BMS slot boots changes the car's physics, so the
bad build's cars really use more energy; their telemetry reaches the lake through the
platform's ingest worker.

Each wave is a simulated day: the cars are parked overnight (the notices are taken then),
then the fleet drives for the rollout's observation time. The dispatcher's round takes the
answers in and, once the updated cars' telemetry covers the observation time, judges the wave
on the health the platform measures (energy per 100 km from the lake, error DTCs, security
events) against the cars not yet updated. The simulated days run in the past (the fleet's
clock stays behind the wall clock), so the gate sees whole days of telemetry within seconds.

Checks: the bad build is paused by the health gate after its first wave with the energy
evidence; the good build completes every wave (as deltas for the cars already on the bad
build); every targeted twin then reports the good version.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from drivetrain.demo.acts import Act, ActResult, DemoContext

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from drivetrain.cloud.ota import OtaLayout
    from drivetrain.edge import EdgeAgent, UptanePrimary
    from drivetrain.sim.fleet import FleetPlan

NAME = "ota"
TITLE = "Update rolls out: Uptane-signed BMS builds in health-gated waves"
TENANT = "default"
ECU = "BMS"
ENGINEER = "demo:ota:release-engineer"
MANAGER = "demo:ota:release-manager"
MAX_VEHICLES = 12
MIN_VEHICLES = 8
#: Simulated seconds the fleet drives after a wave's installs; the rollouts' observation time
#: is a little shorter, so the gate judges on the day's telemetry once it is all in.
DRIVE_S: Final = 660.0
OBSERVE_S: Final = 600.0
STEP_S: Final = 10.0
#: The agents report the telemetry every this many steps while the fleet drives.
SAMPLE_EVERY: Final = 3
#: Where the first simulated day starts, behind the wall clock, and how far apart days are.
DAYS_BACK_S: Final = 2 * 86_400.0
DAY_S: Final = 6 * 3600.0
#: The bad build keeps the pack heater on while the car drives.
BAD_EXTRA_LOAD_W: Final = 3000.0
#: Longest wait for the platform to answer one step (installs taken in, a wave judged).
WAIT_S: Final = 6.0
#: The telemetry each car's agent reports from its simulated world.
PATHS: Final = ("Vehicle.Speed", "Vehicle.TraveledDistance",
                "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy",
                "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed",
                "Vehicle.Diagnostics.DTCCount")


_DELTA: Final = re.compile(r"(\d+) bytes via delta")


@dataclass
class _Car:
    vin: str
    index: int
    hardware_id: str
    agent: EdgeAgent
    primary: UptanePrimary


class _Fleet:
    """The simulated cars: one world per simulated day (parked overnight, charged), each
    car's physics following the BMS build its A/B slot boots."""

    def __init__(self, context: DemoContext, plan: FleetPlan, seed: int) -> None:
        self.context, self.plan, self.seed = context, plan, seed
        self.day = 0
        self.start_utc = time.time() - DAYS_BACK_S
        self.world = plan.world
        self.morning = copy.deepcopy(plan.world)  # before the first step
        self.base_load_w = self.world.physics.params.aux_load_w.copy()
        self.cars: list[_Car] = []

    def clock_ns(self) -> int:
        return round(self.world.time_utc * 1e9)

    def new_day(self) -> None:
        """The next morning: the same cars as the plan made them, parked and charged, on the
        next simulated day; each car's physics set by the build it runs."""
        self.day += 1
        self.world = copy.deepcopy(self.morning)
        self.world.time_utc = self.start_utc + self.day * DAY_S
        self.world.depart_at[:] = float("inf")  # parked until the drive
        self.world.physics.state.soc[:] = 0.9  # charged overnight
        self.apply_builds()

    def apply_builds(self) -> None:
        from drivetrain.sim.firmware import apply_firmware

        for car in self.cars:
            apply_firmware(self.world, car.index, car.primary.ecus[ECU].image_bytes(),
                           float(self.base_load_w[car.index]))

    def tick(self) -> None:
        """Every agent's round at the world's time: take notices, report telemetry."""
        from drivetrain.edge import Samples

        now_ns = self.clock_ns()
        values = self.world.vss_values()
        for car in self.cars:
            sample = {p: float(values[p][car.index]) for p in PATHS}
            car.agent.tick(now_ns, samples=Samples.from_values(sample, now_ns))

    def drive(self) -> None:
        """Everyone drives for ``DRIVE_S``; the telemetry goes up at the end of the day."""
        self.world.depart_at[:] = self.world.time_utc
        steps = round(DRIVE_S / STEP_S)
        for n in range(1, steps + 1):
            self.context.check_time()
            self.world.step(STEP_S)
            if n % SAMPLE_EVERY == 0 or n == steps:
                self.tick()
        now_ns = self.clock_ns()
        for car in self.cars:
            car.agent.flush(now_ns)
            car.agent.tick(now_ns)  # the uplink sends what was sealed


_BUILDS: Final = {"bad": ("2.6.0", 6, BAD_EXTRA_LOAD_W), "good": ("2.6.1", 7, 0.0)}


def _publish(layout: OtaLayout, variants: list[str], label: str,
             session: Session | None = None) -> dict[str, str]:
    """Publish build ``label`` for each hardware variant (hardware id → image name) through
    the platform's publishing function; with ``session``, its deltas come from the versions
    the tenant's twins run most (see :func:`drivetrain.cloud.ota.publishing.publish_image`)."""
    from drivetrain.cloud.ota.publishing import ImageUpload, publish_image
    from drivetrain.sim.firmware import FirmwareBehaviour, build_firmware

    images = layout.images()
    known = {i.name for i in images.images()}
    version, counter, load = _BUILDS[label]
    names: dict[str, str] = {}
    for hw in variants:
        name = f"bms/{hw}/bms-{version}.bin"
        if name not in known:
            data = build_firmware(FirmwareBehaviour(ECU, version, True, extra_load_w=load),
                                  16 * 1024)
            publish_image(images, ImageUpload(name, data, hw, counter, version),
                          session=session, tenant=TENANT)
        names[hw] = name
    return names


def _rollout(context: DemoContext, layout: OtaLayout, name: str, images: list[str],
             vins: list[str], fleet: _Fleet) -> str:
    from drivetrain.cloud.ota import RolloutSpec, WavePolicy, service

    fleet_vins = ", ".join(json.dumps(v) for v in vins)
    spec = RolloutSpec(
        name, ECU, tuple(images),
        query=f'software."{ECU}" < "{name.removeprefix("bms-")}" and vin in [{fleet_vins}]',
        policy=WavePolicy(waves=(0.25, 1.0), health_margin=0.15, min_control=3,
                          observe_s=OBSERVE_S))
    with context.platform.database.session() as session:
        rid = service.create_rollout(session, layout, spec, tenant=TENANT,
                                     actor=ENGINEER).rollout_id
    with context.platform.database.session() as session:
        service.approve_rollout(session, layout, rid, tenant=TENANT, actor=MANAGER)
    return rid


def _view(context: DemoContext, rid: str) -> Any:
    from drivetrain.cloud.ota import service

    with context.platform.database.session() as session:
        return service.get_rollout(session, rid, tenant=TENANT)


def _wait(context: DemoContext, fleet: _Fleet, rid: str, done: Any, what: str, *,
          tick: bool) -> Any:
    """Until ``done(view)``; with ``tick`` the parked cars' agents run (they take their
    notices)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        context.check_time()
        if tick:
            fleet.tick()
        view = _view(context, rid)
        if done(view):
            return view
        if time.monotonic() > deadline:
            raise TimeoutError(f"rollout {view.name}: {what} not seen within {WAIT_S:.0f} s "
                               f"(status {view.status}, wave {view.wave}, {view.reason})")
        time.sleep(0.05)


def _play(context: DemoContext, layout: OtaLayout, fleet: _Fleet, name: str,
          images: list[str], step: int) -> Any:
    """One build's rollout, a simulated day per wave, until the gate stops it or it ends."""
    vins = [c.vin for c in fleet.cars]
    rid = _rollout(context, layout, name, images, vins, fleet)
    view = _view(context, rid)
    while view.status == "running":
        wave = view.wave
        view = _wait(context, fleet, rid,
                     lambda v: v.counts["pending"] + v.counts["downloading"]
                     + v.counts["installing"] == 0, f"wave {wave}'s installs", tick=True)
        fleet.apply_builds()
        fleet.drive()
        context.platform.ingest.wait_idle(timeout_s=WAIT_S)
        view = _wait(context, fleet, rid,
                     lambda v, w=wave: v.status != "running" or v.wave > w
                     or "holding" in v.reason, f"wave {wave}'s verdict", tick=False)
        context.report(f"{name}: wave {wave} → {view.status}: {view.reason[:90]}",
                       fraction=0.2 + 0.4 * step + 0.2 * min(wave, 2))
        if view.status == "running" and view.wave > wave:
            fleet.new_day()
        elif view.status == "running":
            raise TimeoutError(f"rollout {name}: {view.reason}")
    return view


def run(context: DemoContext) -> ActResult:
    from securesystemslib.signer import CryptoSigner

    from drivetrain.cloud.ota import OtaLayout, service
    from drivetrain.cloud.ota.manifests import register_vehicle_keys
    from drivetrain.cloud.ota.serve import BackgroundServer
    from drivetrain.cloud.privacy.flows import change_consents
    from drivetrain.cloud.twins import list_ecus, record_ecu_inventory
    from drivetrain.core.vss import PRIVACY_CATEGORIES
    from drivetrain.demo.fleet_session import fleet_identities
    from drivetrain.edge import (
        AbEcu,
        AgentConfig,
        EdgeAgent,
        ManifestSigning,
        MemoryBuffer,
        OtaUpdater,
        RepositoryUrls,
        UptanePrimary,
        VehicleConditions,
    )
    from drivetrain.sim.firmware import simulated_health_check
    from drivetrain.sim.fleet import FleetSpec, plan_fleet
    from drivetrain.sim.world.fleet import PARKED

    seed = context.seed + 21_001
    count = max(MIN_VEHICLES, min(MAX_VEHICLES, context.vehicles))
    fleet_start = time.time() - DAYS_BACK_S
    plan = plan_fleet(FleetSpec(vehicles=count, seed=seed, regions=("EU", "US"),
                                start_utc=fleet_start))
    identities = fleet_identities(context, plan, tenant=TENANT, owner=ENGINEER,
                                  actor=f"demo:{NAME}",
                                  folder=context.data_dir / "ota-demo-credentials")
    layout = OtaLayout.under(context.settings.data_dir)  # the repositories the platform signs
    if not layout.initialised:
        layout.init({"root": (2, 3)})
    variants = sorted({e.hardware_id for v in plan.vehicles for e in v.inventory
                       if e.name == ECU and e.hardware_id})
    builds = {"bad": _publish(layout, variants, "bad")}
    context.report(f"{len(variants)} BMS variants, {len(variants)} signed images of the "
                   "first build", fraction=0.1)
    fleet = _Fleet(context, plan, seed)
    fleet.start_utc = fleet_start
    root = context.data_dir / "ota-demo-cars"
    director = layout.director()
    with BackgroundServer(layout) as server:
        try:
            for vehicle in plan.vehicles:
                bms = next(e for e in vehicle.inventory if e.name == ECU)
                assert bms.hardware_id is not None
                keys = {"primary": CryptoSigner.generate_ed25519(),
                        ECU: CryptoSigner.generate_ed25519()}
                with context.platform.database.session() as session:
                    record_ecu_inventory(session, vehicle.vin, {
                        e.name: (e.hardware_id, e.software_version) for e in vehicle.inventory})
                    # the drivers' contracts let the fleet's telemetry be collected (sent
                    # to each car as a signed command; it applies it on receipt)
                    change_consents(session, {vehicle.vin: PRIVACY_CATEGORIES},
                                    tenant=TENANT, source="contract", actor=f"demo:{NAME}")
                    register_vehicle_keys(session, tenant=TENANT, vin=vehicle.vin,
                                          primary_serial="TCU",
                                          primary_key=keys["primary"].public_key,
                                          ecu_keys={ECU: keys[ECU].public_key})
                director.enrol(vehicle.vin)
                folder = root / f"{vehicle.vin}-{time.time_ns()}"
                primary = UptanePrimary(
                    vehicle.vin, folder / "ota", RepositoryUrls.under(server.url, vehicle.vin),
                    [AbEcu(ECU, bms.hardware_id, folder / "bms", simulated_health_check)])
                primary.provision(director.root_bytes(), layout.images().repo.root_bytes(1))
                index = vehicle.index

                def conditions(i: int = index) -> VehicleConditions:
                    world = fleet.world
                    return VehicleConditions(bool(world.mode[i] == PARKED),
                                             100.0 * float(world.physics.state.soc[i]))

                agent = EdgeAgent(
                    identities[vehicle.vin], context.platform.transport, MemoryBuffer(),
                    # the simulated days run behind the wall clock: notices are dated ahead
                    config=AgentConfig(batch_interval_s=86_400.0,
                                       max_skew_s=DAYS_BACK_S + 3600.0),
                    clock_ns=fleet.clock_ns,
                    ota=OtaUpdater(primary, conditions,
                                   signing=ManifestSigning("TCU", keys["primary"],
                                                           {ECU: keys[ECU]})))
                agent.start()
                fleet.cars.append(_Car(vehicle.vin, index, bms.hardware_id, agent, primary))
            fleet.new_day()
            bad = _play(context, layout, fleet, "bms-2.6.0", sorted(builds["bad"].values()), 0)
            with context.platform.database.session() as session:  # superseded by the fix
                if bad.status in ("running", "paused"):
                    service.change_rollout(session, bad.rollout_id, "cancel", tenant=TENANT,
                                           actor=MANAGER, reason="superseded by bms-2.6.1")
            with context.platform.database.session() as session:
                # the fix, with deltas from the versions the fleet's BMSs run most: the bad
                # build the first wave now runs among them
                builds["good"] = _publish(layout, variants, "good", session)
            fleet.new_day()
            good = _play(context, layout, fleet, "bms-2.6.1", sorted(builds["good"].values()),
                         1)
        finally:
            for car in fleet.cars:
                car.agent.stop()
    with context.platform.database.session() as session:
        running = Counter(e.software_version for c in fleet.cars
                          for e in list_ecus(session, c.vin, tenant=TENANT) if e.name == ECU)
        records = service.update_records(session, tenant=TENANT, rollout_id=good.rollout_id)
        bad_records = service.update_records(session, tenant=TENANT, rollout_id=bad.rollout_id)
    # bytes the cars on the bad build did not download thanks to the deltas
    full = {i.name: i.length for i in layout.images().images()}
    saved = sum(full[builds["good"][car.hardware_id]] - int(m.group(1))
                for car in fleet.cars for _, r in records if r.vin == car.vin
                for m in [_DELTA.search(r.detail)] if m is not None)
    energy = bad.evidence.get("energy_kwh_per_100km", {})
    cars = len(fleet.cars)
    passed = (bad.wave == 1 and bad.counts["installed"] > 0
              and "energy_kwh_per_100km" in bad.reason and energy.get("failed") == 1.0
              and good.status == "completed" and running.get("2.6.1", 0) == cars)
    check = (
        f"update rolls out: bad build paused by the health gate after wave {bad.wave} "
        f"({bad.counts['installed']} of {cars} installed; energy "
        f"{energy.get('updated', 0):.1f} vs control {energy.get('control', 0):.1f} kWh/100 km, "
        f"limit {energy.get('limit', 0):.1f}), good build {good.status} in {good.wave} waves "
        f"({good.counts['installed']} installed), twins report BMS 2.6.1 on "
        f"{running.get('2.6.1', 0)} of {cars} vehicles; {len(bad_records) + len(records)} "
        f"UN R156 records; deltas saved {saved:,} bytes"
    )
    figures = {
        "vehicles": cars,
        "bms_variants": len(variants),
        "bad_build_installed": bad.counts["installed"],
        "bad_build_status": bad.status,
        "bad_build_reason": bad.reason,
        "good_build_installed": good.counts["installed"],
        "good_build_status": good.status,
        "update_records": len(bad_records) + len(records),
        "delta_bytes_saved": saved,
    }
    return ActResult(passed, check if passed else f"FAILED: {check}", figures)


UPDATE_ROLLS_OUT = Act(name=NAME, title=TITLE, run=run, weight=0.4, min_budget_s=20.0)

