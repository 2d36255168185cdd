"""Twin values as they are stored and compared — pure functions, no I/O.

A value is kept in two typed columns so the database can compare it (see ``models.py``):
``kind`` ``b``/``i``/``f`` put the number in ``num`` (booleans as 0/1), ``s`` puts the string
in ``text``. :func:`encode_value` and :func:`decode_value` convert both ways.

Desired values are checked against the VSS catalog (:func:`validate_desired`): only
**actuators** may be desired — a sensor is measured, not set, and an attribute is a fixed
property of the vehicle — and only scalar datatypes, since the desired-state wire body carries
scalars. The value must satisfy the signal's datatype and range.

ECU software versions are dotted numbers with an optional pre-release (``2.4.0``,
``v10.2``, ``3.0.0-rc.1``); :func:`version_key` turns one into a string whose order is the
version order, so ``software."BMS" < "2.4.0"`` is a plain string comparison in SQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from drivetrain.core.errors import BadInputError, SignalTypeError
from drivetrain.core.vss import Catalog
from drivetrain.core.vss.datatypes import is_array

ValueKind = Literal["b", "i", "f", "s"]
Scalar = bool | int | float | str

#: Relative tolerance within which a reported float equals a desired one (CAN scaling rounds).
FLOAT_TOLERANCE: Final = 1e-6

_VERSION = re.compile(
    r"v?(?P<core>\d{1,9}(?:\.\d{1,9}){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]{1,32}(?:\.[0-9A-Za-z-]{1,32}){0,7}))?"
    r"(?:\+[0-9A-Za-z.-]{1,64})?"
)
_VERSION_PARTS: Final = 4
_ECU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HARDWARE_ID = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,118}[\x21-\x7e])?")


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A scalar as stored: its kind and the column that holds it."""

    kind: ValueKind
    num: float | None
    text: str | None


def encode_value(value: object, *, where: str) -> EncodedValue:
    """Store ``value`` (bool, int, float or str) as kind + column.

    ``where`` names the value in error messages (e.g. ``"vin X path Y"``).

    Raises:
        BadInputError: ``value`` is None, not a scalar, or a non-finite float.
    """
    if isinstance(value, bool):
        return EncodedValue("b", 1.0 if value else 0.0, None)
    if isinstance(value, int):
        return EncodedValue("i", float(value), None)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadInputError(f"{where}: value {value!r} is not finite; expected a number")
        return EncodedValue("f", value, None)
    if isinstance(value, str):
        return EncodedValue("s", None, value)
    raise BadInputError(
        f"{where}: value {value!r} of type {type(value).__name__} is not a scalar; "
        "expected a bool, int, float or str"
    )


def decode_value(kind: str, num: float | None, text: str | None) -> Scalar | None:
    """The Python value of a stored ``(kind, num, text)``; None when the column is empty."""
    if kind == "s":
        return text
    if num is None:
        return None
    if kind == "b":
        return num != 0.0
    if kind == "i":
        return int(num)
    return num


def values_equal(reported: Scalar | None, desired: Scalar) -> bool:
    """True when a reported value satisfies a desired one.

    Numbers (booleans as 0/1) compare with a relative tolerance of :data:`FLOAT_TOLERANCE`,
    strings exactly; a number never equals a string.
    """
    if reported is None:
        return False
    if isinstance(desired, str) or isinstance(reported, str):
        return isinstance(desired, str) and isinstance(reported, str) and desired == reported
    a, b = float(reported), float(desired)
    return abs(a - b) <= FLOAT_TOLERANCE * max(1.0, abs(b))


def validate_desired(catalog: Catalog, path: str, value: object) -> Scalar:
    """``value`` normalised for the actuator at ``path``.

    Raises:
        UnknownSignalError: ``path`` is not in the catalog (with suggestions).
        BadInputError: the signal is a sensor or attribute, or has an array datatype.
        SignalTypeError, SignalRangeError: the value does not fit the signal.
    """
    spec = catalog.get(path)
    if spec.node_type != "actuator":
        raise BadInputError(
            f"desired path {path!r} is a VSS {spec.node_type}; only actuators can be desired "
            "(a sensor is measured and an attribute is fixed)"
        )
    if is_array(spec.datatype):
        raise BadInputError(
            f"desired path {path!r} has the array datatype {spec.datatype}; desired values "
            "must be scalars"
        )
    if value is None:
        raise SignalTypeError(
            f"{path}: value None is not a valid VSS {spec.datatype}; to stop desiring a value, "
            "remove it from the desired document"
        )
    normalised = catalog.validate(path, value)
    if not isinstance(normalised, bool | int | float | str):  # pragma: no cover - scalar spec
        raise SignalTypeError(f"{path}: value {value!r} is not a scalar")
    return normalised


def render_reported(catalog: Catalog, path: str, kind: str, num: float | None,
                    text: str | None) -> Scalar | None:
    """A stored reported value in the Python type of its VSS datatype where the catalog knows
    the path (ingestion may send booleans and integers as floats), else by its stored kind."""
    if path in catalog and kind != "s" and num is not None:
        datatype = catalog.get(path).datatype
        if datatype == "boolean":
            return num != 0.0
        if datatype.startswith(("int", "uint")) and float(num).is_integer():
            return int(num)
    return decode_value(kind, num, text)


def version_key(version: str, *, where: str = "software version") -> str:
    """A string whose lexical order is the version order of ``version``.

    The numeric core is padded to four parts of ten digits (``2.4`` equals ``2.4.0``); a
    pre-release sorts before its release (``2.4.0-rc.1`` < ``2.4.0``), its numeric identifiers
    compare as numbers and below alphanumeric ones (Semantic Versioning 2.0.0 §11). Build
    metadata (``+...``) is ignored.

    Raises:
        BadInputError: ``version`` is not a dotted version of one to four numbers with an
            optional ``-pre-release`` and ``+build``.
    """
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise BadInputError(
            f"{where} {version!r} is not a version; expected dotted numbers such as '2.4.0' "
            "(optionally 'v' first, '-rc.1' and '+build' after)"
        )
    parts = [int(p) for p in match["core"].split(".")]
    parts += [0] * (_VERSION_PARTS - len(parts))
    key = ".".join(f"{p:010d}" for p in parts)
    pre = match["pre"]
    if pre is None:
        return key + "~"  # '~' sorts after every pre-release marker
    identifiers = [f"0{int(i):010d}" if i.isdigit() else f"1{i}" for i in pre.split(".")]
    return key + "!" + ".".join(identifiers)


def validate_ecu_name(ecu: str) -> str:
    """Return ``ecu`` if it is an ECU name (letters, digits, ``_ . -``, at most 64).

    Raises:
        BadInputError: it is not.
    """
    if not isinstance(ecu, str) or not _ECU_NAME.fullmatch(ecu):
        raise BadInputError(
            f"ECU name {ecu!r} is not valid; expected 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return ecu


def validate_hardware_id(hardware_id: str) -> str:
    """Return ``hardware_id`` if it is 1-120 printable ASCII characters without edge spaces.

    Raises:
        BadInputError: it is not.
    """
    if not isinstance(hardware_id, str) or not _HARDWARE_ID.fullmatch(hardware_id):
        raise BadInputError(
            f"hardware id {hardware_id!r} is not valid; expected 1-120 printable ASCII "
            "characters, not starting or ending with a space"
        )
    return hardware_id


def to_ns(ts: datetime, *, where: str) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime.

    Raises:
        BadInputError: ``ts`` is not a timezone-aware datetime.
    """
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        raise BadInputError(f"{where}: timestamp {ts!r} is not a timezone-aware datetime")
    delta = ts.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of ``ns`` nanoseconds since the Unix epoch (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def as_mapping(values: object, *, where: str) -> Mapping[str, object]:
    """``values`` if it is a mapping with string keys.

    Raises:
        BadInputError: it is not.
    """
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise BadInputError(f"{where} must be an object mapping VSS paths to values")
    return values
