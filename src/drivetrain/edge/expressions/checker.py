"""The trigger expressions' type checker: names resolved against the VSS catalog, operand
types checked, so a campaign that cannot work is refused before it is installed.

``check`` walks a parsed tree operands first (the order they were written), gives every
signal its type from the catalog and returns the typed tree; the first problem raises.
"""

from __future__ import annotations

from dataclasses import replace

from drivetrain.core.errors import ExpressionSyntaxError, UnknownSignalError
from drivetrain.core.vss import Catalog
from drivetrain.edge.expressions.lexer import COMPARISONS
from drivetrain.edge.expressions.syntax import (
    Binary,
    Node,
    Signal,
    Unary,
    ValueType,
    to_text,
    type_of,
)


def check(root: Node, catalog: Catalog) -> Node:
    """``root`` with every signal typed from ``catalog``, its operand types checked.

    Raises:
        UnknownSignalError: a signal path that is not in the catalog (with suggestions and
            the column).
        ExpressionSyntaxError: an array signal, or values of the wrong type for an operator;
            the message names the operator and its column.
    """
    if isinstance(root, Signal):
        return _signal(root, catalog)
    if isinstance(root, Unary):
        return _unary(replace(root, operand=check(root.operand, catalog)))
    if isinstance(root, Binary):
        left, right = check(root.left, catalog), check(root.right, catalog)
        return _binary(replace(root, left=left, right=right))
    return root


def _signal(node: Signal, catalog: Catalog) -> Signal:
    try:
        spec = catalog.get(node.path)
    except UnknownSignalError as e:
        raise UnknownSignalError(f"{e} (expression column {node.column})") from None
    if spec.datatype.endswith("[]"):
        raise ExpressionSyntaxError(
            f"signal {node.path!r} is an array ({spec.datatype}); expressions use scalar "
            f"signals only at column {node.column}"
        )
    if spec.datatype == "boolean":
        kind = ValueType.BOOLEAN
    elif spec.datatype == "string":
        kind = ValueType.STRING
    else:
        kind = ValueType.NUMBER
    return replace(node, type=kind)


def _unary(node: Unary) -> Unary:
    operand, kind = node.operand, type_of(node.operand)
    if node.op == "not" and kind is not ValueType.BOOLEAN:
        raise ExpressionSyntaxError(
            f"operator 'not' at column {node.column} negates a condition, but "
            f"{to_text(operand)!r} is {kind}"
        )
    if node.op == "-" and kind is not ValueType.NUMBER:
        raise ExpressionSyntaxError(
            f"operator '-' at column {node.column} negates numbers, but "
            f"{to_text(operand)!r} is {kind}"
        )
    if node.op == "abs" and kind is not ValueType.NUMBER:
        raise ExpressionSyntaxError(
            f"function 'abs' at column {node.column} takes a number, but "
            f"{to_text(operand)!r} is {kind}"
        )
    return node


def _binary(node: Binary) -> Binary:
    op, where = node.op, f"at column {node.column}"
    if op in ("and", "or"):
        _require(node, ValueType.BOOLEAN, "joins conditions")
    elif op in COMPARISONS:
        lt, rt = type_of(node.left), type_of(node.right)
        if lt is not rt:
            raise ExpressionSyntaxError(
                f"operator {op!r} {where} compares {lt} ({to_text(node.left)!r}) with {rt} "
                f"({to_text(node.right)!r})"
            )
        if lt is not ValueType.NUMBER and op not in ("==", "!="):
            raise ExpressionSyntaxError(
                f"operator {op!r} {where} orders numbers only; {to_text(node.left)!r} is {lt} "
                "(use == or !=)"
            )
    else:
        _require(node, ValueType.NUMBER, "works on numbers")
    return node


def _require(node: Binary, kind: ValueType, what: str) -> None:
    for side in (node.left, node.right):
        if type_of(side) is not kind:
            raise ExpressionSyntaxError(
                f"operator {node.op!r} at column {node.column} {what}, but "
                f"{to_text(side)!r} is {type_of(side)}"
            )
