"""`drivetrain sim fleet`: many simulated vehicles with real edge agents, in one process.

Also holds ``provision_fleet``, which registers a planned fleet in the state database (the
simulator itself never imports the cloud) — the demo acts use it too.
"""

from __future__ import annotations

import getpass
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from drivetrain.commands.data_dir import data_dir_line

if TYPE_CHECKING:
    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.ingest import WorkerStats
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.settings import Settings
    from drivetrain.edge import VehicleIdentity
    from drivetrain.sim.fleet import SimVehicle

app = typer.Typer(
    help="Simulation: run a fleet of virtual vehicles, each with its own edge agent.",
    no_args_is_help=True,
)

#: Longest wait for the in-process ingest worker to store what the fleet sent, seconds.
INGEST_WAIT_S = 120.0
#: Longest wait for the consents to be handed to the cars before they start, seconds.
CONSENT_WAIT_S = 30.0
#: Largest fleet one command runs (the runner's model groups carry 65,536 vehicles at most).
MAX_VEHICLES = 50_000


def _actor() -> str:
    try:
        return f"sim:{getpass.getuser()}"
    except (KeyError, OSError):
        return "sim"


def provision_fleet(
    database: Database,
    vehicles: Sequence[SimVehicle],
    *,
    tenant: str,
    cloud_key: SigningKey,
    actor: str,
) -> dict[str, VehicleIdentity]:
    """Register the planned vehicles (a new key pair each) and return their identities.

    A VIN already registered to ``tenant`` (a fleet run again with the same plan) is re-keyed
    (``rotate_vehicle_key``, audited), so messages signed by its previous run's key are
    refused from now on. Give them consent with :func:`send_consent`.

    Raises:
        ConflictError: a VIN registered to another tenant.
        NotFoundError: the tenant does not exist.
        BadInputError: a bad model or region.
    """
    from drivetrain.cloud.fleet import get_vehicle, provision_vehicle, rotate_vehicle_key
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.errors import ConflictError, NotFoundError
    from drivetrain.edge import VehicleIdentity

    identities: dict[str, VehicleIdentity] = {}
    with database.session() as session:
        for vehicle in vehicles:
            key = SigningKey.generate()
            try:
                existing = get_vehicle(session, vehicle.vin)
            except NotFoundError:
                existing = None
            if existing is None:
                provision_vehicle(
                    session, tenant=tenant, model=vehicle.model, region=vehicle.region,
                    cloud_key=cloud_key.verify_key, actor=actor, vin=vehicle.vin, signing_key=key,
                )  # fmt: skip
            elif existing.tenant != tenant:
                raise ConflictError(
                    f"vehicle {vehicle.vin} is registered to another tenant; pick another --seed "
                    "or fleet size, or another state database"
                )
            else:
                rotate_vehicle_key(session, vehicle.vin, key.verify_key, actor=actor)
            identities[vehicle.vin] = VehicleIdentity(
                vin=vehicle.vin, signing_key=key, cloud_key=cloud_key.verify_key,
                region=vehicle.region, model=vehicle.model, tenant=tenant,
            )  # fmt: skip
    return identities


def send_consent(
    database: Database, consent: Mapping[str, Iterable[str]], *, tenant: str, actor: str
) -> list[str]:
    """Record the privacy categories each VIN's data may be collected and stored for, and
    send each car its signed ``privacy.collection`` command (vehicles not named keep their
    region's default, on the car and at ingestion). Returns the jobs carrying them: a
    dispatcher delivers them, the cars apply them on receipt.

    Raises:
        BadInputError: an unknown category.
        NotFoundError: a VIN not registered to ``tenant``.
    """
    from drivetrain.cloud.privacy.flows import change_consents

    with database.session() as session:
        return change_consents(session, consent, tenant=tenant, source="simulation",
                               actor=actor)


def _plain(console: Console) -> Callable[[str], None]:
    def emit(line: str) -> None:
        console.print(line, markup=False)

    return emit


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@app.command("fleet")
def fleet(
    vehicles: int = typer.Option(
        50, "--vehicles", "-n", min=1, max=MAX_VEHICLES, help="Vehicles to simulate."
    ),
    duration: float | None = typer.Option(
        60.0,
        "--duration",
        min=0.0,
        help="Simulated seconds to run (0: until Ctrl-C, only with --speedup 1).",
    ),
    speedup: float = typer.Option(
        1.0,
        "--speedup",
        min=0.0,
        help="Simulated seconds per wall second: 1 real time, 10 ten times faster, 0 as fast as possible.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Same seed, same fleet and same drives."),
    regions: str = typer.Option("EU,US,CN", "--regions", help="Regions, spread over the vehicles."),
    models: str = typer.Option(
        "compact-hatch-50,midsize-suv-77", "--models", help="Vehicle models, in equal shares."
    ),
    out: Path = typer.Option(  # noqa: B008 - Typer reads options from defaults
        "fleet-run", "--out", help="Where the ground truth and the buffers go."
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        help="mqtt://host:port of a real broker (default: the broker_url setting; without "
        "one, the in-process bus).",
    ),
    attacks: str | None = typer.Option(
        None, "--attacks", help="Inject bus attacks: the preset 'mixed' or a scenario .json file."
    ),
    tenant: str = typer.Option("default", "--tenant", help="Tenant that owns the vehicles."),
    ingest: bool = typer.Option(
        True,
        "--ingest/--no-ingest",
        help="With the in-process bus, run an ingest worker here so the telemetry lands in the "
        "configured lake and twins (a real broker has its own workers).",
    ),
    start_parked: bool = typer.Option(
        False,
        "--start-parked",
        help="Vehicles wait for their drivers' schedules instead of setting off at once.",
    ),
    batch_interval: float = typer.Option(
        10.0,
        "--batch-interval",
        min=0.1,
        help="Simulated seconds between an agent's telemetry batches.",
    ),
    headless: bool = typer.Option(
        False, "--headless", help="Periodic log lines instead of the live view."
    ),
    consent: str | None = typer.Option(
        None,
        "--consent",
        help="Privacy categories every vehicle consents to, comma-separated, or 'all'; sent "
        "to each car as a signed command before it starts (default: its region's default, "
        "technical and diagnostics; the rest is not collected on the car and is counted in "
        "the summary).",
    ),
) -> None:
    """Run N virtual vehicles — physics, wear, CAN buses, real edge agents — in this process.

    Each vehicle is registered in the state database (re-keyed when its VIN exists), drives
    its routes, and its agent publishes signed telemetry through the in-process bus (with an
    ingest worker, so the data lands in the lake) or a real MQTT broker. The ground truth —
    component RUL over time, faults, trips, charging sessions, attacks — and a manifest.json
    are written under --out.
    """
    from drivetrain.cloud.commands import Dispatcher
    from drivetrain.cloud.fleet import cloud_signing_key
    from drivetrain.cloud.infra import ensure_embedded_bootstrap, open_database
    from drivetrain.cloud.privacy.flows import wait_delivered
    from drivetrain.commands.db import fail, load_settings_or_exit
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.transport import InProcessTransport
    from drivetrain.core.transport.factory import open_transport
    from drivetrain.sim.fleet import FleetRunner, FleetSpec, RunnerOptions, plan_fleet
    from drivetrain.sim.fleet.attacks import AttackInjector, AttackScenario
    from drivetrain.sim.fleet.groundtruth import write_ground_truth
    from drivetrain.sim.fleet.options import BUFFER_FILE
    from drivetrain.sim.fleet.view import HeadlessFleetLog, LiveFleetView

    console = Console(highlight=False, soft_wrap=True)
    run_forever = duration == 0
    if run_forever and speedup != 1:
        fail(
            "--duration 0 (until Ctrl-C) needs --speedup 1: a faster clock would run into the future",
            2,
        )
    sim_s = None if run_forever else duration
    settings = load_settings_or_exit()
    consented = _consent_option(consent)
    console.print(data_dir_line(settings), markup=False)
    now = math.floor(time.time())
    # The simulated clock ends by now, so no sample is dated in the future.
    start = now if speedup == 1 or sim_s is None else now - math.ceil(sim_s)
    try:
        spec = FleetSpec(
            vehicles=vehicles, seed=seed, regions=_split(regions),
            model_mix=dict.fromkeys(_split(models), 1.0), start_utc=float(start),
            start_driving=not start_parked,
        )  # fmt: skip
        options = RunnerOptions(batch_interval_s=batch_interval, buffer="sqlite", buffer_dir=out)
        out.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):  # every run starts with empty buffers
            (out / f"{BUFFER_FILE}{suffix}").unlink(missing_ok=True)
        plan = plan_fleet(spec)
        scenario = None
        if attacks:
            path = Path(attacks)
            scenario = (
                AttackScenario.from_file(path, plan.vehicles)
                if path.suffix == ".json"
                else AttackScenario.preset(attacks, plan.vehicles, sim_s or 600.0, seed)
            )
    except (DrivetrainError, OSError) as e:
        fail(e, 2)
    database = open_database(settings)
    lake = transport = worker = runner = ingested = dispatcher = None
    dropped_on_cars: Counter[str] = Counter()
    try:
        if settings.deployment == "embedded":
            database.upgrade()
            if tenant == "default":
                ensure_embedded_bootstrap(settings, database)
        cloud_key = cloud_signing_key(settings)
        console.print(f"provisioning {vehicles:,} vehicles for tenant {tenant!r} …")
        identities = provision_fleet(
            database, plan.vehicles, tenant=tenant, cloud_key=cloud_key, actor=_actor(),
        )
        consent_jobs = [] if consented is None else send_consent(
            database, {v.vin: consented for v in plan.vehicles}, tenant=tenant, actor=_actor())
        broker = broker or settings.broker_url
        transport = open_transport(broker, client_id=f"drivetrain-sim-{seed}")
        if consent_jobs and broker is None:
            # the in-process bus has no dispatcher of its own: the consents go out from here,
            # before the cars start, so each applies its consent before its first sample
            dispatcher = Dispatcher(database, transport, cloud_key).start()
            if not wait_delivered(database, consent_jobs, tenant=tenant, timeout_s=CONSENT_WAIT_S):
                console.print("the consents were not all handed to the cars", markup=False)
        if ingest and broker is None:
            from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, TwinsReportedState
            from drivetrain.cloud.lake import Lake

            lake = Lake.open(settings)
            pipeline = IngestPipeline.from_settings(settings, database, lake, TwinsReportedState())
            worker = IngestWorker(transport, pipeline).start()
        tamper = AttackInjector(scenario, plan.vehicles, seed) if scenario is not None else None
        runner = FleetRunner(plan, transport, identities, options, tamper=tamper)
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
        try:
            if headless:
                status = runner.run(
                    sim_s,
                    speedup=speedup,
                    stop=stop,
                    on_progress=HeadlessFleetLog(_plain(console), sim_s),
                )
            else:
                with LiveFleetView(console, sim_s) as view:
                    status = runner.run(sim_s, speedup=speedup, stop=stop, on_progress=view)
                console.line()
        finally:
            signal.signal(signal.SIGINT, previous)
        if worker is not None:
            if isinstance(transport, InProcessTransport):
                transport.drain(timeout_s=INGEST_WAIT_S)  # every batch handed to the worker
            if not worker.wait_idle(timeout_s=INGEST_WAIT_S):
                console.print(
                    f"ingest still busy after {INGEST_WAIT_S:.0f} s; stopping it", markup=False
                )
            worker.stop()  # finishes the micro-batch in hand
            if dispatcher is not None:
                dispatcher.run_once()  # the cars' acknowledgements settle their deliveries
            ingested = worker.stats()
            worker = None
        for agent in runner.agents:
            dropped_on_cars.update(agent.not_consented_by_category)
        manifest = write_ground_truth(
            out,
            plan,
            options,
            status,
            tamper.records if tamper is not None else (),
            extra={"tenant": tenant, "transport": broker or "inprocess://"},
        )
    except DrivetrainError as e:
        fail(e)
    finally:
        if runner is not None:
            runner.close()
        if dispatcher is not None:
            dispatcher.stop()
        if worker is not None:
            worker.stop()
        if transport is not None:
            transport.close()
        if lake is not None:
            lake.close()
        database.dispose()
    console.print(
        f"{status.vehicles:,} vehicles drove {status.km_driven:,.1f} km in {status.sim_time_s:,.0f} "
        f"simulated s ({status.wall_s:,.1f} s wall, x{status.speedup:.1f}): "
        f"{status.signals:,} signals collected, {status.frames:,} CAN frames, "
        f"{status.batches_published:,} messages published; ground truth in {manifest}"
    )
    if ingested is not None:
        console.print(_ingest_summary(ingested, settings, consented, dropped_on_cars),
                      markup=False)
    else:
        console.print(
            "ingestion runs in the broker's ingest workers: `drivetrain ingest stats` shows "
            "what they stored and what consent dropped at ingestion"
            + _dropped_on_cars(dropped_on_cars, consented), markup=False,
        )


def _consent_option(text: str | None) -> frozenset[str] | None:
    """``--consent``: None (the privacy default), every category for 'all', else the names."""
    from drivetrain.cloud.privacy import parse_categories
    from drivetrain.commands.db import fail
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

    if text is None:
        return None
    if text.strip().lower() == "all":
        return frozenset(PRIVACY_CATEGORIES)
    try:
        return frozenset(parse_categories(_split(text)))
    except DrivetrainError as e:
        fail(f"--consent: {e}", 2)


def _consent_drops(dropped: Counter[str], consented: frozenset[str] | None) -> str:
    """``N dropped for consent (category n, ...)`` and what the vehicles consent to."""
    per_category = ", ".join(f"{category} {n:,}" for category, n in sorted(dropped.items()))
    allowed = "their region's default" if consented is None else ", ".join(sorted(consented))
    return (f"{sum(dropped.values()):,} dropped for consent ({per_category}); the vehicles "
            f"consent to {allowed or 'nothing'} only")


def _dropped_on_cars(on_cars: Counter[str], consented: frozenset[str] | None) -> str:
    """With a broker, what the cars (in this process) did not collect for lack of consent;
    "" when nothing."""
    return f"; on the cars, {_consent_drops(on_cars, consented)}" if on_cars else ""


def _ingest_summary(
    stats: WorkerStats, settings: Settings, consented: frozenset[str] | None,
    on_cars: Counter[str],
) -> str:
    """What the in-process ingest worker did, with the samples consent dropped per category,
    on the cars (before collection) and at ingestion (they are not in the lake, and a
    newcomer should not have to guess why)."""
    text = (f"ingested: {stats.samples_accepted:,} samples stored in the lake under "
            f"{(settings.data_dir / 'lake').resolve()}")
    if stats.samples_refused:
        text += (f", {stats.samples_refused:,} refused (`drivetrain ingest dead-letters list` "
                 "says why)")
    dropped = Counter(on_cars) + Counter(stats.not_consented_by_category)
    if dropped:
        text += (f"; {_consent_drops(dropped, consented)} ({sum(on_cars.values()):,} of them "
                 "dropped on the cars); run with --consent all, or grant a vehicle more with "
                 "`drivetrain privacy consent set VIN --allow ...`")
    return text
