"""The fleet runner: many simulated vehicles, each with a real edge agent, in one process.

Public surface: ``FleetSpec``/``plan_fleet``/``FleetPlan``/``SimVehicle`` (what to run),
``local_identities`` (keys for runs without a cloud), ``FleetRunner``/``RunnerOptions``/
``FleetStatus`` (running it), ``SimActuator`` (the vehicle obeying its agent), ``CanFeeder``
and ``ModelBus`` (the vectorised CAN path). See docs/simulation.md, "Fleet runner".
"""

from drivetrain.sim.fleet.actuator import CHARGE_LIMIT, SimActuator
from drivetrain.sim.fleet.canpath import CompiledSignalMap, FleetSamples, ModelBus
from drivetrain.sim.fleet.feeder import CanFeeder
from drivetrain.sim.fleet.options import RunnerOptions
from drivetrain.sim.fleet.plan import (
    CAN_MODEL,
    FleetPlan,
    FleetSpec,
    SimVehicle,
    local_identities,
    plan_fleet,
)
from drivetrain.sim.fleet.runner import FleetRunner
from drivetrain.sim.fleet.status import FleetStatus, RegionCounts

__all__ = [
    "CAN_MODEL",
    "CHARGE_LIMIT",
    "CanFeeder",
    "CompiledSignalMap",
    "FleetPlan",
    "FleetRunner",
    "FleetSamples",
    "FleetSpec",
    "FleetStatus",
    "ModelBus",
    "RegionCounts",
    "RunnerOptions",
    "SimActuator",
    "SimVehicle",
    "local_identities",
    "plan_fleet",
]
