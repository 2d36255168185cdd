"""The ECU inventory a vehicle reports: a ``vehicle.inventory`` event (wire format v1).

A vehicle says which ECUs it has, with each one's hardware id and software version, as one
event in an EVENTS message::

    {"type": "vehicle.inventory", "ts_ns": ..., "severity": "info",
     "data": {"ecus": [{"name": "BMS", "hardware_id": "BMS-CH50-HW3",
                        "software_version": "2.3.1"}, ...]}}

``hardware_id`` or ``software_version`` may be null (not known to the vehicle; the cloud keeps
what it had). This module checks the shape only — types, lengths, count, unique names; what a
valid ECU name, hardware id or version is stays the receiver's rule (the twins domain).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from drivetrain.core.errors import WireFormatError
from drivetrain.core.wire.messages import VehicleEvent

#: The event type of an inventory report.
INVENTORY_EVENT: Final = "vehicle.inventory"
#: Most ECUs one inventory may list.
MAX_INVENTORY_ECUS: Final = 200
#: Longest ECU name, hardware id and software version (characters).
MAX_ECU_NAME: Final = 64
MAX_HARDWARE_ID: Final = 120
MAX_SOFTWARE_VERSION: Final = 64


@dataclass(frozen=True)
class EcuInfo:
    """One ECU of a vehicle: its name (``BMS``), hardware id and software version (either may
    be None when unknown)."""

    name: str
    hardware_id: str | None = None
    software_version: str | None = None

    def __post_init__(self) -> None:
        _check_ecu(self.name, self.hardware_id, self.software_version, f"ECU {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hardware_id": self.hardware_id,
            "software_version": self.software_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "ECU") -> EcuInfo:
        """Parse one ``ecus`` entry; unknown fields are ignored.

        Raises:
            WireFormatError: a missing or mistyped field, or a value too long.
        """
        if not isinstance(data, Mapping):
            raise WireFormatError(f"{where}: {data!r} is not an object")
        if "name" not in data:
            raise WireFormatError(f"{where}: field 'name' is missing")
        name: Any = data["name"]
        hardware_id: Any = data.get("hardware_id")
        version: Any = data.get("software_version")
        _check_ecu(name, hardware_id, version, where)
        return cls(name, hardware_id, version)


def _check_ecu(name: object, hardware_id: object, version: object, where: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_ECU_NAME:
        raise WireFormatError(
            f"{where}: field 'name' is {name!r}; expected a string of 1-{MAX_ECU_NAME} characters"
        )
    for field_name, value, longest in (
        ("hardware_id", hardware_id, MAX_HARDWARE_ID),
        ("software_version", version, MAX_SOFTWARE_VERSION),
    ):
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= longest):
            raise WireFormatError(
                f"{where}: field {field_name!r} is {value!r}; expected null or a string of "
                f"1-{longest} characters"
            )


def check_inventory(ecus: Iterable[EcuInfo]) -> tuple[EcuInfo, ...]:
    """``ecus`` as a tuple, sorted by name, if it is a valid inventory.

    Raises:
        WireFormatError: more than :data:`MAX_INVENTORY_ECUS` ECUs or a name listed twice.
        TypeError: an entry is not an ``EcuInfo``.
    """
    items = tuple(ecus)
    for item in items:
        if not isinstance(item, EcuInfo):
            raise TypeError(f"inventory entry {item!r} is not an EcuInfo")
    if len(items) > MAX_INVENTORY_ECUS:
        raise WireFormatError(
            f"inventory: {len(items)} ECUs; expected at most {MAX_INVENTORY_ECUS}"
        )
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise WireFormatError(f"inventory: ECU {item.name!r} is listed twice")
        seen.add(item.name)
    return tuple(sorted(items, key=lambda e: e.name))


def inventory_event(ecus: Iterable[EcuInfo], ts_ns: int) -> VehicleEvent:
    """The ``vehicle.inventory`` event listing ``ecus`` at ``ts_ns`` (Unix ns).

    Raises:
        WireFormatError: an invalid inventory (see :func:`check_inventory`).
    """
    items = check_inventory(ecus)
    return VehicleEvent(INVENTORY_EVENT, ts_ns, "info", {"ecus": [e.to_dict() for e in items]})


def inventory_from_event(event: VehicleEvent) -> tuple[EcuInfo, ...]:
    """The ECUs a ``vehicle.inventory`` event lists.

    Raises:
        WireFormatError: not an inventory event, ``data.ecus`` missing or not a list, an entry
            malformed, too many ECUs, or a name listed twice (the message names which).
    """
    if event.type != INVENTORY_EVENT:
        raise WireFormatError(f"event type {event.type!r}; expected {INVENTORY_EVENT!r}")
    entries = event.data.get("ecus")
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise WireFormatError(
            f"inventory: field 'data.ecus' is {entries!r}; expected a list of ECUs"
        )
    if len(entries) > MAX_INVENTORY_ECUS:
        raise WireFormatError(
            f"inventory: {len(entries)} ECUs; expected at most {MAX_INVENTORY_ECUS}"
        )
    return check_inventory(
        EcuInfo.from_dict(entry, where=f"inventory: ECU {i}") for i, entry in enumerate(entries)
    )
