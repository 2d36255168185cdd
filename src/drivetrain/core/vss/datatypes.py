"""VSS datatypes: the closed set of names, their value domains, and their NumPy counterparts.

VSS (COVESA Vehicle Signal Specification, "Datatypes" chapter) defines integer types by bit
width (``uint8`` … ``int64``), ``float`` (IEEE 754 binary32), ``double`` (binary64),
``boolean``, ``string``, and an array form of each written with a ``[]`` suffix
(``string[]``, ``float[]``). This module is pure: it only answers questions about those names.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

import numpy as np

VssScalarType = Literal[
    "boolean",
    "string",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float",
    "double",
]

VssDatatype = Literal[
    "boolean",
    "string",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float",
    "double",
    "boolean[]",
    "string[]",
    "uint8[]",
    "uint16[]",
    "uint32[]",
    "uint64[]",
    "int8[]",
    "int16[]",
    "int32[]",
    "int64[]",
    "float[]",
    "double[]",
]

VSS_DATATYPES: Final[frozenset[str]] = frozenset(get_args(VssDatatype))

#: Inclusive value domain of each integer datatype, from its bit width.
INTEGER_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

#: Largest finite magnitude of each floating datatype (binary32 for ``float``).
FLOAT_LIMITS: Final[dict[str, float]] = {
    "float": float(np.finfo(np.float32).max),
    "double": float(np.finfo(np.float64).max),
}

#: The NumPy dtype that holds each scalar datatype without loss.
NUMPY_DTYPES: Final[dict[str, np.dtype[np.generic]]] = {
    "boolean": np.dtype(np.bool_),
    "string": np.dtype(object),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}


def is_vss_datatype(name: object) -> TypeGuard[VssDatatype]:
    """True if ``name`` is one of the VSS datatype names (scalar or ``[]`` array form)."""
    return isinstance(name, str) and name in VSS_DATATYPES


def is_array(datatype: VssDatatype) -> bool:
    """True for the array forms (``string[]``, ``float[]``, …)."""
    return datatype.endswith("[]")


def element_type(datatype: VssDatatype) -> VssScalarType:
    """The scalar datatype of one element: ``float[]`` → ``float``; scalars map to themselves."""
    scalar = datatype.removesuffix("[]")
    return scalar  # type: ignore[return-value]  # every VssDatatype minus "[]" is a VssScalarType


def is_integer(datatype: VssDatatype) -> bool:
    """True for ``uint8`` … ``int64`` (scalar or array element)."""
    return element_type(datatype) in INTEGER_BOUNDS


def is_floating(datatype: VssDatatype) -> bool:
    """True for ``float`` and ``double`` (scalar or array element)."""
    return element_type(datatype) in FLOAT_LIMITS


def is_numeric(datatype: VssDatatype) -> bool:
    """True for the integer and floating datatypes (scalar or array element)."""
    return is_integer(datatype) or is_floating(datatype)
