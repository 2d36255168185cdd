"""Checking values against a ``SignalSpec``: one value at a time, or a whole NumPy column.

The scalar check (``normalise_value``) is the reference; the vectorised check (``valid_mask``)
must agree with it on every value and is what ingestion uses on batches.

Rules (VSS "Datatypes" chapter, applied strictly):

* ``boolean`` accepts only ``bool``/``numpy.bool_`` — never ``0``/``1``.
* Integer datatypes accept ``int``/``numpy.integer`` (never ``bool``), and a float whose value
  is integral (``42.0`` from a scaled CAN signal is normalised to ``42``). The value must fit
  the datatype's bit width (``uint8`` is 0…255), else ``SignalTypeError``.
* ``float``/``double`` accept any real number except ``bool``, must be finite, and must fit the
  datatype (``float`` is IEEE 754 binary32, so magnitudes above ~3.4e38 do not fit).
* ``string`` accepts only ``str``.
* Arrays (``float[]``…) accept a list, tuple or 1-D ``numpy`` array; each element follows
  the rules above, and min/max/allowed apply to every element.
* Then ``min``/``max`` (inclusive, ``SignalRangeError``) and ``allowed`` (``SignalRangeError``).
  For VSS ``enum`` signals the value may also be given by name and is normalised to its integer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import BadInputError, SignalRangeError, SignalTypeError
from drivetrain.core.vss.datatypes import (
    FLOAT_LIMITS,
    INTEGER_BOUNDS,
    VssScalarType,
    element_type,
    is_array,
    is_integer,
)
from drivetrain.core.vss.spec import SignalSpec

_ARRAY_TYPES = (list, tuple, np.ndarray)


def normalise_value(spec: SignalSpec, value: object) -> Any:
    """``value`` checked against ``spec`` and converted to its plain Python form.

    Returns ``bool``, ``int``, ``float`` or ``str`` for scalars and a ``list`` of those for
    array datatypes.

    Raises:
        SignalTypeError: the value's type does not match the VSS datatype, or an integer does
            not fit the datatype's width.
        SignalRangeError: the value is outside ``[min, max]`` or not one of the allowed values.
    """
    if not is_array(spec.datatype):
        return _normalise_scalar(spec, value, where="")
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise SignalTypeError(
            f"{spec.path}: array of shape {value.shape} is not a valid VSS {spec.datatype}: "
            "expected a 1-D sequence"
        )
    if not isinstance(value, _ARRAY_TYPES):
        raise SignalTypeError(
            f"{spec.path}: value {value!r} of Python type {type(value).__name__} is not a valid "
            f"VSS {spec.datatype}: expected a list, tuple or 1-D numpy array"
        )
    return [_normalise_scalar(spec, item, where=f" element {i}") for i, item in enumerate(value)]


def is_valid(spec: SignalSpec, value: object) -> bool:
    """True if ``normalise_value(spec, value)`` would succeed."""
    try:
        normalise_value(spec, value)
    except BadInputError:
        return False
    return True


def _type_error(spec: SignalSpec, value: object, where: str, expected: str) -> SignalTypeError:
    return SignalTypeError(
        f"{spec.path}{where}: value {value!r} of Python type {type(value).__name__} is not a "
        f"valid VSS {element_type(spec.datatype)}: expected {expected}"
    )


def _normalise_scalar(spec: SignalSpec, value: object, where: str) -> Any:
    scalar = element_type(spec.datatype)
    result: bool | int | float | str
    if scalar == "boolean":
        if not isinstance(value, bool | np.bool_):
            raise _type_error(spec, value, where, "True or False")
        result = bool(value)
    elif scalar == "string":
        if not isinstance(value, str):
            raise _type_error(spec, value, where, "a str")
        result = value
    elif scalar in INTEGER_BOUNDS:
        result = _normalise_integer(spec, scalar, value, where)
    else:
        result = _normalise_float(spec, scalar, value, where)
    _check_domain(spec, result, value, where)
    return result


def _normalise_integer(spec: SignalSpec, scalar: VssScalarType, value: object, where: str) -> int:
    if isinstance(value, str) and spec.enum is not None and value in spec.enum:
        return spec.enum[value]
    if isinstance(value, bool | np.bool_):
        raise _type_error(spec, value, where, f"an integer (a bool is not an integer for {scalar})")
    if (
        isinstance(value, int | np.integer)
        or isinstance(value, float | np.floating)
        and math.isfinite(value)
        and float(value).is_integer()
    ):
        number = int(value)
    else:
        expected = "an integer or an integral float"
        if spec.enum is not None:
            expected += f", or one of the names {sorted(spec.enum)}"
        raise _type_error(spec, value, where, expected)
    low, high = INTEGER_BOUNDS[scalar]
    if not low <= number <= high:
        raise _type_error(spec, value, where, f"an integer that fits {scalar}, in [{low}, {high}]")
    return number


def _normalise_float(spec: SignalSpec, scalar: VssScalarType, value: object, where: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise _type_error(
            spec, value, where, "a real number (int or float; a bool is not a number)"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    limit = FLOAT_LIMITS[scalar]
    if not math.isfinite(number) or abs(number) > limit:
        raise _type_error(
            spec, value, where, f"a finite number that fits {scalar}, |x| <= {limit:.7g}"
        )
    return number


def _check_domain(spec: SignalSpec, value: bool | float | str, given: object, where: str) -> None:
    if not isinstance(value, bool | str):
        below = spec.minimum is not None and value < spec.minimum
        above = spec.maximum is not None and value > spec.maximum
        if below or above:
            unit = f" {spec.unit}" if spec.unit else ""
            raise SignalRangeError(
                f"{spec.path}{where}: value {given!r} is outside "
                f"[{_bound(spec.minimum)}, {_bound(spec.maximum)}]{unit}"
            )
    if spec.allowed is not None and value not in spec.allowed:
        raise SignalRangeError(
            f"{spec.path}{where}: value {given!r} is not one of the allowed values "
            f"{list(spec.allowed)}"
        )


def _bound(bound: float | None) -> str:
    return "unbounded" if bound is None else repr(bound)


def valid_mask(spec: SignalSpec, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """One boolean per value: True where ``normalise_value`` would accept it.

    Vectorised over NumPy arrays for the scalar datatypes (boolean, integer and floating
    columns are checked without a Python loop); object columns and array datatypes fall back
    to the scalar check per value. ``values`` must be one-dimensional.

    Raises:
        ValueError: ``values`` is not one-dimensional (programmer error).
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"valid_mask expects a 1-D array of values, got shape {array.shape}")
    if is_array(spec.datatype) or array.dtype.kind == "O":
        return np.fromiter((is_valid(spec, v) for v in array), dtype=np.bool_, count=len(array))
    scalar = element_type(spec.datatype)
    kind = array.dtype.kind
    if scalar == "boolean":
        return np.full(len(array), kind == "b", dtype=np.bool_)
    if scalar == "string":
        if kind != "U":
            return np.zeros(len(array), dtype=np.bool_)
        if spec.allowed is None:
            return np.ones(len(array), dtype=np.bool_)
        return np.isin(array, np.array(spec.allowed, dtype=str))
    if kind in "iu":
        mask = _integer_source_mask(scalar, array)
    elif kind == "f":
        mask = _float_source_mask(spec, scalar, array)
    else:  # bool, str, bytes, datetime … are never numbers
        return np.zeros(len(array), dtype=np.bool_)
    if spec.minimum is not None:
        mask &= array >= spec.minimum
    if spec.maximum is not None:
        mask &= array <= spec.maximum
    if spec.allowed is not None:
        mask &= np.isin(array, np.array(spec.allowed))
    return mask


def _integer_source_mask(scalar: VssScalarType, array: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    mask = np.ones(len(array), dtype=np.bool_)
    if scalar not in INTEGER_BOUNDS:  # integers always fit float/double closely enough
        return mask
    info = np.iinfo(array.dtype)
    low, high = INTEGER_BOUNDS[scalar]
    if low > int(info.max) or high < int(info.min):
        return np.zeros(len(array), dtype=np.bool_)
    # Compare only with bounds the source dtype can represent, so NumPy never casts them.
    if low > int(info.min):
        mask &= array >= array.dtype.type(low)
    if high < int(info.max):
        mask &= array <= array.dtype.type(high)
    return mask


def _float_source_mask(
    spec: SignalSpec, scalar: VssScalarType, array: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore", over="ignore"):
        mask: npt.NDArray[np.bool_] = np.isfinite(array)
        if is_integer(spec.datatype):
            low, high = INTEGER_BOUNDS[scalar]
            # ``high + 1`` is a power of two, exact in binary64: x < 2**n holds exactly where
            # an integral x <= 2**n - 1, with no rounding of the bound.
            mask &= (array == np.floor(array)) & (array >= float(low)) & (array < float(high + 1))
        else:
            mask &= np.abs(array) <= FLOAT_LIMITS[scalar]
    return mask
