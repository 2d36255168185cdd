"""Vehicle physics for the virtual fleet: models, drive cycles, and the vectorised fleet step.

Public surface: ``VehicleModel`` and the built-in models, ``DriveCycle``/``load_cycle``,
``FleetPhysics`` with its ``Controls``/``Condition`` inputs, and ``drive_traces`` to run speed
traces (standard cycles, recorded trips) through it.
"""

from drivetrain.sim.physics.cycles import CYCLE_NAMES, DriveCycle, load_cycle, read_cycle_csv
from drivetrain.sim.physics.fleet import FleetPhysics, StepOutput
from drivetrain.sim.physics.simulate import TraceResult, TraceRun, drive_cycle, drive_traces
from drivetrain.sim.physics.state import Condition, Controls, EnergyLedger, PhysicsState
from drivetrain.sim.physics.vehicle_models import (
    COMPACT_HATCH,
    MIDSIZE_SUV,
    VEHICLE_MODELS,
    VehicleModel,
    get_vehicle_model,
)

__all__ = [
    "COMPACT_HATCH",
    "CYCLE_NAMES",
    "MIDSIZE_SUV",
    "VEHICLE_MODELS",
    "Condition",
    "Controls",
    "DriveCycle",
    "EnergyLedger",
    "FleetPhysics",
    "PhysicsState",
    "StepOutput",
    "TraceResult",
    "TraceRun",
    "VehicleModel",
    "drive_cycle",
    "drive_traces",
    "get_vehicle_model",
    "load_cycle",
    "read_cycle_csv",
]
