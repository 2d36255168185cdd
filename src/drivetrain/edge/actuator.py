"""``VehicleActuator``: how the agent changes the vehicle, and an in-memory one for tests.

The agent applies desired-state deltas and executes commands only through this protocol; the
simulator implements it on its vehicle model (e.g. the charge limit), a real car on its ECUs.
Both calls are all-or-nothing: they either apply everything or raise ``BadInputError`` and
change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import Catalog

Scalar = bool | int | float | str | None


class VehicleActuator(Protocol):
    """What the agent needs to act on the vehicle."""

    def apply_desired(self, values: Mapping[str, Scalar]) -> Mapping[str, Scalar]:
        """Set the given VSS actuator values; return the values now in force (the vehicle may
        round or clamp).

        Raises:
            BadInputError: a path the vehicle cannot set, or a value it refuses (nothing changed).
        """
        ...

    def execute(self, name: str, args: Mapping[str, Any]) -> str:
        """Run a one-off command; return a short description of what was done.

        Raises:
            BadInputError: an unknown command or bad arguments (nothing done).
        """
        ...


@runtime_checkable
class FeatureSwitch(Protocol):
    """An actuator that can also switch paid features on and off (the entitlement gate
    decides which; the vehicle enforces it)."""

    def set_features(self, enabled: frozenset[str]) -> None:
        """Make exactly ``enabled`` the features in use (others off)."""
        ...


class InMemoryActuator:
    """An actuator over a dict of values (tests; vehicles without actuators).

    Args:
        catalog: checks paths and values (``Catalog.validate``); only ``actuator`` nodes, or
            the paths in ``settable`` when given, may be set.
        values: the initial values.
        settable: the paths that may be set; default: every actuator of the catalog.
        commands: command name → handler(args) returning a description; may raise
            ``BadInputError``.
    """

    def __init__(
        self,
        catalog: Catalog,
        values: Mapping[str, Scalar] | None = None,
        *,
        settable: frozenset[str] | None = None,
        commands: Mapping[str, Callable[[Mapping[str, Any]], str]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._settable = settable
        self.values: dict[str, Scalar] = dict(values or {})
        self._commands = dict(commands or {})
        self.executed: list[tuple[str, dict[str, Any]]] = []
        #: The paid features switched on (``FeatureSwitch``).
        self.features: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def set_features(self, enabled: frozenset[str]) -> None:
        """See ``FeatureSwitch.set_features``."""
        self.features = frozenset(enabled)

    def apply_desired(self, values: Mapping[str, Scalar]) -> Mapping[str, Scalar]:
        """See ``VehicleActuator.apply_desired``; checks every value before setting any."""
        checked: dict[str, Scalar] = {}
        for path, value in values.items():
            spec = self._catalog.get(path)  # UnknownSignalError is a BadInputError
            allowed = (
                spec.node_type == "actuator" if self._settable is None else path in self._settable
            )
            if not allowed:
                raise BadInputError(f"{path} is a {spec.node_type}; the vehicle cannot set it")
            checked[path] = self._catalog.validate(path, value)
        with self._lock:
            self.values.update(checked)
        return checked

    def execute(self, name: str, args: Mapping[str, Any]) -> str:
        """See ``VehicleActuator.execute``."""
        handler = self._commands.get(name)
        if handler is None:
            known = ", ".join(sorted(self._commands)) or "none"
            raise BadInputError(f"unknown command {name!r}; this vehicle knows: {known}")
        detail = handler(args)
        self.executed.append((name, dict(args)))
        return detail
