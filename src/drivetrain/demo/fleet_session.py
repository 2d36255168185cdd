"""What the fleet acts share: the planned cars' identities in the registry, and the fleet
driving in real time on the platform's bus with its telemetry and acks ingested."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import (
    VehicleCredentials,
    cloud_signing_key,
    get_vehicle,
    provision_vehicle,
    rotate_vehicle_key,
)
from drivetrain.cloud.privacy import give_consent
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.demo.acts import DemoContext
from drivetrain.demo.fleet_ingest import ingest_running
from drivetrain.edge import VehicleIdentity
from drivetrain.sim.fleet import FleetPlan, FleetRunner, RunnerOptions


def fleet_identities(
    context: DemoContext, plan: FleetPlan, *, tenant: str, owner: str, actor: str, folder: Path
) -> dict[str, VehicleIdentity]:
    """The planned cars' identities: registered on first use with their credential files
    (0600) in ``folder``, which later runs on a kept data dir read back — the registry holds
    only public keys. A car registered without a usable file is re-keyed."""
    cloud = cloud_signing_key(context.settings)
    folder.mkdir(parents=True, exist_ok=True)
    identities: dict[str, VehicleIdentity] = {}
    with context.platform.database.session() as session:
        for vehicle in plan.vehicles:
            path = folder / f"{vehicle.vin}.json"
            try:
                known = get_vehicle(session, vehicle.vin, tenant=tenant)
            except NotFoundError:
                known = None
            if known is not None and path.is_file():
                try:
                    kept = VehicleCredentials.read(path)
                except BadInputError:
                    kept = None
                if kept is not None and kept.signing_key.verify_key == known.verify_key:
                    identities[vehicle.vin] = VehicleIdentity.from_dict(kept.to_dict())
                    continue
            key = SigningKey.generate()
            if known is None:
                provision_vehicle(
                    session, tenant=tenant, model=vehicle.model, region=vehicle.region,
                    cloud_key=cloud.verify_key, actor=actor, vin=vehicle.vin,
                    owner=owner, signing_key=key,
                )
                give_fleet_consent(session, tenant=tenant, vin=vehicle.vin, actor=actor)
            else:
                rotate_vehicle_key(session, vehicle.vin, key.verify_key, actor=actor)
            credentials = VehicleCredentials(
                vin=vehicle.vin, model=vehicle.model, region=vehicle.region, tenant=tenant,
                signing_key=key, cloud_key=cloud.verify_key,
            )
            credentials.write(path)
            identities[vehicle.vin] = VehicleIdentity.from_dict(credentials.to_dict())
    return identities


#: What the demo's fleet account consents to for fleet operations: the console's fleet map
#: reads twins for ``fleet_operations`` and shows positions and speeds only under this grant.
FLEET_CONSENT: tuple[str, ...] = ("location", "driving_behaviour")


def give_fleet_consent(
    session: Session, *, tenant: str, vin: str, actor: str,
    categories: tuple[str, ...] = FLEET_CONSENT,
) -> None:
    """The fleet account's grant of ``categories`` of ``vin`` for ``fleet_operations``."""
    give_consent(session, tenant=tenant, vin=vin, purpose="fleet_operations",
                 categories=categories, person="fleet", source="fleet-contract", actor=actor)


@contextmanager
def running_fleet(
    context: DemoContext, plan: FleetPlan, identities: Mapping[str, VehicleIdentity]
) -> Iterator[FleetRunner]:
    """The fleet driving in real time, its telemetry and acks ingested, until exit."""
    platform = context.platform
    with ExitStack() as stack:
        ingest = stack.enter_context(ingest_running(context))
        # Run in reverse order at exit: stop the cars (their last batches are sent), deliver
        # what is on the bus, and let the worker store it before it goes.
        stack.callback(lambda: ingest.wait_idle(timeout_s=10.0))
        stack.callback(platform.transport.drain, 10.0)
        runner = FleetRunner(
            plan, platform.transport, identities,
            RunnerOptions(buffer="memory", step_s=0.5, agent_tick_s=0.5, batch_interval_s=1.0),
        )
        stack.callback(runner.close)
        stop = threading.Event()
        thread = threading.Thread(
            target=runner.run, args=(None,), kwargs={"speedup": 1.0, "stop": stop},
            name="drivetrain-demo-fleet", daemon=True,
        )
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(stop.set)
        yield runner
