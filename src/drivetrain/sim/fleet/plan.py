"""What fleet to run: the vehicles (VIN, model, region, ECU inventory), their world, and their
identities.

``plan_fleet(FleetSpec)`` builds the seeded ``VirtualFleet`` (physics, wear, drivers, routes)
and lists its vehicles. Identities — each vehicle's signing key and the cloud key it obeys —
come from outside the simulator: the ``drivetrain sim fleet`` command provisions the planned
vehicles in the fleet registry (``drivetrain.cloud.fleet``, which the simulator does not
import) and hands their credentials over; ``local_identities`` makes throw-away ones for runs
without a cloud (benchmarks, tests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import SimulationConfigError
from drivetrain.core.wire import EcuInfo
from drivetrain.edge import VehicleIdentity
from drivetrain.sim.can.vehicles import VehicleModelName
from drivetrain.sim.fleet.inventory import draw_inventories
from drivetrain.sim.world import FleetConfig, VirtualFleet
from drivetrain.sim.world.places import REGION_CODES

#: The CAN database (``drivetrain.sim.can``) of each physics model.
CAN_MODEL: Final[Mapping[str, VehicleModelName]] = {
    "compact-hatch-50": "compact_bev",
    "midsize-suv-77": "suv_bev",
}
DEFAULT_MODEL_MIX: Final[Mapping[str, float]] = {"compact-hatch-50": 0.5, "midsize-suv-77": 0.5}


@dataclass(frozen=True)
class FleetSpec:
    """The fleet to simulate.

    Attributes:
        vehicles: how many (>= 1).
        seed: the same seed gives the same fleet and the same run.
        regions: data-residency regions, spread round-robin over the vehicles.
        model_mix: physics model name → share of the fleet.
        start_utc: Unix seconds of simulation time 0 (default: now, whole seconds).
        start_driving: every vehicle sets off on its next trip at time 0 (instead of waiting
            for its driver's schedule), so a short run shows traffic.

    Raises:
        SimulationConfigError: a bad count, region or model (the message names it).
    """

    vehicles: int
    seed: int = 0
    regions: tuple[str, ...] = ("EU", "US", "CN")
    model_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MODEL_MIX))
    start_utc: float | None = None
    start_driving: bool = True

    def __post_init__(self) -> None:
        if (
            isinstance(self.vehicles, bool)
            or not isinstance(self.vehicles, int)
            or self.vehicles < 1
        ):
            raise SimulationConfigError(f"vehicles {self.vehicles!r}; expected an integer >= 1")
        for region in self.regions:
            if region not in REGION_CODES:
                raise SimulationConfigError(
                    f"region {region!r} is not simulated; expected one of {', '.join(REGION_CODES)}"
                )
        for name in self.model_mix:
            if name not in CAN_MODEL:
                raise SimulationConfigError(
                    f"model {name!r} is not simulated; expected one of {', '.join(sorted(CAN_MODEL))}"
                )
        if self.start_utc is not None and not (
            math.isfinite(self.start_utc) and self.start_utc > 0
        ):
            raise SimulationConfigError(f"start_utc {self.start_utc!r}; expected Unix seconds > 0")


@dataclass(frozen=True)
class SimVehicle:
    """One planned vehicle: its position in the fleet arrays, VIN, models, region, and its ECU
    inventory (what its edge agent reports; see ``inventory.draw_inventories``)."""

    index: int
    vin: str
    model: str  # physics model name, also the registry's model id
    can_model: VehicleModelName
    region: str
    inventory: tuple[EcuInfo, ...] = ()


@dataclass
class FleetPlan:
    """A built fleet waiting for its identities: the world and the vehicle list."""

    spec: FleetSpec
    world: VirtualFleet
    vehicles: tuple[SimVehicle, ...]
    start_utc: float


def plan_fleet(spec: FleetSpec) -> FleetPlan:
    """Build the seeded world of ``spec`` and list its vehicles.

    Raises:
        SimulationConfigError: a bad spec.
    """
    start = float(spec.start_utc) if spec.start_utc is not None else float(math.floor(time.time()))
    config = FleetConfig(
        vehicles=spec.vehicles,
        seed=spec.seed,
        regions=tuple(spec.regions),  # type: ignore[arg-type]
        model_mix={name: float(share) for name, share in spec.model_mix.items()},
        start_utc=start,
    )
    world = VirtualFleet(config)
    if spec.start_driving:
        world.depart_at[:] = world.time_utc
    can_models = [CAN_MODEL[model.name] for model in world.models]
    inventories = draw_inventories(can_models, spec.seed)
    vehicles = tuple(
        SimVehicle(i, vin, model.name, can_model, region, inventory)
        for i, (vin, model, can_model, region, inventory) in enumerate(
            zip(world.vins, world.models, can_models, world.region_codes, inventories, strict=True)
        )
    )
    return FleetPlan(spec, world, vehicles, start)


def local_identities(
    vehicles: Sequence[SimVehicle], *, tenant: str = "default", cloud_key: VerifyKey | None = None
) -> dict[str, VehicleIdentity]:
    """Fresh identities for vehicles no cloud registered (benchmarks, tests): a new key pair
    each, and ``cloud_key`` (default: the public half of a key nobody keeps, so no downlink
    message verifies)."""
    cloud = cloud_key if cloud_key is not None else SigningKey.generate().verify_key
    return {
        v.vin: VehicleIdentity(
            vin=v.vin,
            signing_key=SigningKey.generate(),
            cloud_key=cloud,
            region=v.region,
            model=v.model,
            tenant=tenant,
        )
        for v in vehicles
    }


def check_identities(
    vehicles: Sequence[SimVehicle], identities: Mapping[str, VehicleIdentity]
) -> None:
    """Every planned vehicle must have an identity with its VIN.

    Raises:
        SimulationConfigError: a vehicle without one (names the first few).
    """
    missing = [v.vin for v in vehicles if v.vin not in identities]
    if missing:
        raise SimulationConfigError(
            f"{len(missing)} planned vehicles have no identity (e.g. {', '.join(missing[:3])}); "
            "provision them first"
        )
