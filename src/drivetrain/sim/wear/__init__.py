"""Component wear and faults with ground-truth remaining useful life.

Public surface: ``FleetWear`` (the vectorised wear state), ``WearConfig`` and ``FaultPlan``
(seeded fault draws), ``FailureEvent``, and the component names ``COMPONENTS``.
"""

from drivetrain.sim.wear.components import (
    CELL_FAIL_DEFICIT,
    LV_FAIL_CAPACITY,
    PAD_MIN_MM,
    PUMP_FAIL_HEALTH,
    TIRE_FAIL_RATIO,
    FailureEvent,
    FleetWear,
)
from drivetrain.sim.wear.faults import COMPONENTS, Component, FaultPlan, WearConfig

__all__ = [
    "CELL_FAIL_DEFICIT",
    "COMPONENTS",
    "LV_FAIL_CAPACITY",
    "PAD_MIN_MM",
    "PUMP_FAIL_HEALTH",
    "TIRE_FAIL_RATIO",
    "Component",
    "FailureEvent",
    "FaultPlan",
    "FleetWear",
    "WearConfig",
]
