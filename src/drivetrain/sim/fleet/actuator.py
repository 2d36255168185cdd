"""``SimActuator``: the simulated vehicle obeying its edge agent (``VehicleActuator``).

A desired charge limit from the cloud reaches the agent as a signed desired-state delta; the
agent calls ``apply_desired`` and this actuator sets the limit in the fleet's world, where the
physics stops charging at it and the vehicle's bus reports it
(``OBC_Status.ChargeLimit`` → ``Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit``).
Like a real charger controller it accepts limits from 50 to 100 % only; anything else is
refused (``BadInputError``) and nothing changes. The simulated vehicles run no commands.
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


class SimActuator:
    """Applies desired state to vehicle ``index`` of ``world`` (see the module docstring)."""

    def __init__(self, world: VirtualFleet, index: int, catalog: Catalog) -> None:
        if not 0 <= index < world.n:
            raise IndexError(f"vehicle index {index} is outside 0..{world.n - 1}")
        self._world = world
        self._index = index
        self._catalog = catalog

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
        """Refuse: simulated vehicles run no commands.

        Raises:
            BadInputError: always, naming the command.
        """
        raise BadInputError(f"unknown command {name!r}; the simulated vehicle runs no commands")
