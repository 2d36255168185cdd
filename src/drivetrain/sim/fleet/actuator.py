"""``SimActuator``: the simulated vehicle obeying its edge agent (``VehicleActuator``).

A desired charge limit from the cloud reaches the agent as a signed desired-state delta; the
agent calls ``apply_desired`` and this actuator sets the limit in the fleet's world, where the
physics stops charging at it and the vehicle's bus reports it
(``OBC_Status.ChargeLimit`` → ``Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit``).
Like a real charger controller it accepts limits from 50 to 100 % only; anything else is
refused (``BadInputError``) and nothing changes. The one command a simulated vehicle runs is
``flash_lights`` (``times``: 1-10), which it counts (``lights_flashed``).

Paid features are switched by the agent's entitlement gate (``set_features``): the simulated
car honours ``performance_boost`` in its physics — its driver may accelerate
``BOOST_FACTOR`` times harder — and keeps any other feature it is given in ``features`` (a
cabin feature such as heated seats has no physics here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import Catalog
from drivetrain.edge import Scalar
from drivetrain.sim.world import VirtualFleet

CHARGE_LIMIT: Final = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
#: The charge limits (percent) a simulated vehicle accepts, as real EV charge controllers do.
MIN_CHARGE_LIMIT_PCT: Final = 50
MAX_CHARGE_LIMIT_PCT: Final = 100
#: The paid feature the simulated physics honours, and how much harder the car may accelerate.
PERFORMANCE_BOOST: Final = "performance_boost"
BOOST_FACTOR: Final = 1.3


class SimActuator:
    """Applies desired state to vehicle ``index`` of ``world`` (see the module docstring)."""

    def __init__(self, world: VirtualFleet, index: int, catalog: Catalog) -> None:
        if not 0 <= index < world.n:
            raise IndexError(f"vehicle index {index} is outside 0..{world.n - 1}")
        self._world = world
        self._index = index
        self._catalog = catalog
        #: How many times the hazard lights flashed on command.
        self.lights_flashed = 0
        #: The paid features switched on.
        self.features: frozenset[str] = frozenset()
        self._base_accel_limit = float(world.accel_limit[index])

    def set_features(self, enabled: frozenset[str]) -> None:
        """Switch the paid features to ``enabled`` (``FeatureSwitch``): with
        ``performance_boost`` the car's acceleration limit is ``BOOST_FACTOR`` times its own."""
        self.features = frozenset(enabled)
        boost = BOOST_FACTOR if PERFORMANCE_BOOST in self.features else 1.0
        self._world.accel_limit[self._index] = self._base_accel_limit * boost

    @property
    def accel_limit_mps2(self) -> float:
        """The acceleration limit in force, m/s²."""
        return float(self._world.accel_limit[self._index])

    @property
    def charge_limit_pct(self) -> float:
        """The charge limit in force, percent."""
        return float(self._world.charge_limit[self._index]) * 100.0

    def apply_desired(self, values: Mapping[str, Scalar]) -> Mapping[str, Scalar]:
        """Set the charge limit (the only value a simulated vehicle can set).

        Raises:
            BadInputError: another path, a value the catalog refuses, or a limit outside
                50–100 % (nothing changed).
        """
        unknown = sorted(set(values) - {CHARGE_LIMIT})
        if unknown:
            raise BadInputError(
                f"the simulated vehicle cannot set {', '.join(unknown)}; it can set {CHARGE_LIMIT}"
            )
        if CHARGE_LIMIT not in values:
            return {}
        value = self._catalog.validate(CHARGE_LIMIT, values[CHARGE_LIMIT])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInputError(f"{CHARGE_LIMIT} = {value!r}; expected a number of percent")
        if not MIN_CHARGE_LIMIT_PCT <= value <= MAX_CHARGE_LIMIT_PCT:
            raise BadInputError(
                f"{CHARGE_LIMIT} = {value!r} %; the vehicle accepts "
                f"{MIN_CHARGE_LIMIT_PCT} to {MAX_CHARGE_LIMIT_PCT} %"
            )
        self._world.charge_limit[self._index] = float(value) / 100.0
        return {CHARGE_LIMIT: value}

    def execute(self, name: str, args: Mapping[str, Any]) -> str:
        """Run ``flash_lights`` (``times``: 1-10, default 1); refuse anything else.

        Raises:
            BadInputError: another command, an unknown argument or a bad ``times``.
        """
        if name != "flash_lights":
            raise BadInputError(
                f"unknown command {name!r}; the simulated vehicle runs 'flash_lights'"
            )
        unknown = sorted(set(args) - {"times"})
        if unknown:
            raise BadInputError(f"flash_lights: unknown arguments {unknown}; expected 'times'")
        times = args.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 10:
            raise BadInputError(f"flash_lights: times is {times!r}; expected 1 to 10")
        self.lights_flashed += times
        return f"hazard lights flashed {times} time(s)"
