"""The virtual fleet's world: regions and cities, drivers and their schedules, routes, chargers,
and ``VirtualFleet``, which drives the physics and wear with them.

Public surface: ``VirtualFleet``/``FleetConfig`` (the fleet runner's entry point), ``REGIONS``,
``plan_route``/``Route``, ``STYLES``, ``GroundTruthLog``, ``Navigation``.
"""

from drivetrain.sim.world.drivers import STYLES, DriverStyle
from drivetrain.sim.world.fleet import DEFAULT_START_UTC, FleetConfig, VirtualFleet
from drivetrain.sim.world.groundtruth import GroundTruthLog
from drivetrain.sim.world.places import REGION_CODES, REGIONS, City, Region, get_region
from drivetrain.sim.world.routes import Route, plan_route
from drivetrain.sim.world.signals import Navigation

__all__ = [
    "DEFAULT_START_UTC",
    "REGIONS",
    "REGION_CODES",
    "STYLES",
    "City",
    "DriverStyle",
    "FleetConfig",
    "GroundTruthLog",
    "Navigation",
    "Region",
    "Route",
    "VirtualFleet",
    "get_region",
    "plan_route",
]
