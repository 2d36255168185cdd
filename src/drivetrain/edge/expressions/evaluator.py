"""The trigger expressions' vectorised evaluator: a checked tree over NumPy columns.

Each signal is one array of values at a series of instants; the result is a boolean array.
A condition is false at every instant where a signal it names has no value yet (NaN, or None
for strings); division by zero gives ±inf or NaN as IEEE 754 says, so a comparison with it is
false.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from drivetrain.edge.expressions.syntax import (
    Binary,
    Boolean,
    Node,
    Number,
    Signal,
    String,
    Unary,
    ValueType,
)

Column = npt.NDArray[np.float64] | npt.NDArray[np.object_]


def evaluate_columns(
    root: Node,
    signals: Mapping[str, ValueType],
    columns: Mapping[str, npt.ArrayLike],
    size: int,
) -> npt.NDArray[np.bool_]:
    """The checked tree ``root`` at ``size`` instants.

    Args:
        root: a checked tree reading ``signals``.
        signals: the paths ``root`` reads, with their types.
        columns: for every path in ``signals``, an array of ``size`` values: float64 for
            numbers (NaN = no value), float64 0/1 for booleans (NaN = no value), an object
            array of ``str`` or None for strings.
        size: the number of instants.

    Raises:
        KeyError: a signal the expression reads has no column (a programming error).
        ValueError: a column whose shape is not ``(size,)``.
    """
    known = np.ones(size, np.bool_)
    arrays: dict[str, Column] = {}
    for path, kind in signals.items():
        column = np.asarray(columns[path], dtype=object if kind is ValueType.STRING else np.float64)
        if column.shape != (size,):
            raise ValueError(f"column {path!r} has shape {column.shape}; expected ({size},)")
        known &= _present(column, kind)
        arrays[path] = column
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = _evaluate(root, arrays, size)
    return np.asarray(result, np.bool_) & known


def _present(column: Column, kind: ValueType) -> npt.NDArray[np.bool_]:
    if kind is ValueType.STRING:
        return np.array([isinstance(v, str) for v in column], np.bool_)
    return ~np.isnan(column.astype(np.float64))


def _evaluate(node: Node, columns: Mapping[str, Column], size: int) -> npt.NDArray[np.generic]:
    if isinstance(node, Number):
        return np.full(size, node.value, np.float64)
    if isinstance(node, Boolean):
        return np.full(size, node.value, np.bool_)
    if isinstance(node, String):
        return np.full(size, node.value, dtype=object)
    if isinstance(node, Signal):
        column = columns[node.path]
        return column == 1.0 if node.type is ValueType.BOOLEAN else column
    if isinstance(node, Unary):
        operand = _evaluate(node.operand, columns, size)
        if node.op == "not":
            return ~operand.astype(np.bool_)
        if node.op == "abs":
            return np.abs(operand.astype(np.float64))
        return -operand.astype(np.float64)
    if isinstance(node, Binary):
        left = _evaluate(node.left, columns, size)
        right = _evaluate(node.right, columns, size)
        op = node.op
        if op == "and":
            return left.astype(np.bool_) & right.astype(np.bool_)
        if op == "or":
            return left.astype(np.bool_) | right.astype(np.bool_)
        if op in ("+", "-", "*", "/"):
            a, b = left.astype(np.float64), right.astype(np.float64)
            return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[op](a, b)
        if left.dtype == object or right.dtype == object:
            equal = np.array([x == y for x, y in zip(left, right, strict=True)], np.bool_)
            return equal if op == "==" else ~equal
        compare = {
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
            "==": np.equal,
            "!=": np.not_equal,
        }[op]
        return np.asarray(compare(left, right), np.bool_)
    raise TypeError(f"not an expression node: {node!r}")
