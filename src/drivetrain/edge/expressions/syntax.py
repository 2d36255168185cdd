"""The syntax tree of trigger expressions, its canonical text and its static types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, Literal

from drivetrain.edge.expressions.lexer import COMPARISONS


class ValueType(enum.Enum):
    """The static type of an expression node."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"

    def __str__(self) -> str:
        return {"number": "a number", "boolean": "a condition (true/false)", "string": "a string"}[
            self.value
        ]


@dataclass(frozen=True)
class Node:
    """Base of the syntax tree; ``column`` is where the node's token starts (not compared)."""

    column: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class Number(Node):
    value: float


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Boolean(Node):
    value: bool


@dataclass(frozen=True)
class Signal(Node):
    """A VSS signal; ``type`` is None until the checker has looked it up in the catalog."""

    path: str
    type: ValueType | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Unary(Node):
    op: Literal["-", "not", "abs"]
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # one of + - * / < <= > >= == != and or
    left: Node
    right: Node


_PRECEDENCE: Final = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6}


def to_text(node: Node) -> str:
    """The canonical text of ``node``: parsing it gives an equal tree (the round trip)."""
    return _text(node, 0)


def _text(node: Node, parent: int) -> str:
    if isinstance(node, Number):
        return (
            repr(float(node.value)) if not float(node.value).is_integer() else str(int(node.value))
        )
    if isinstance(node, String):
        escaped = node.value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(node, Boolean):
        return "true" if node.value else "false"
    if isinstance(node, Signal):
        return node.path
    if isinstance(node, Unary):
        if node.op == "abs":
            return f"abs({_text(node.operand, 0)})"
        if node.op == "not":
            text = f"not {_text(node.operand, _PRECEDENCE['not'])}"
            return f"({text})" if parent > _PRECEDENCE["not"] else text
        return f"-{_text(node.operand, 7)}"
    if isinstance(node, Binary):
        level = _PRECEDENCE["cmp"] if node.op in COMPARISONS else _PRECEDENCE[node.op]
        # Left-associative: the right operand of an equal-precedence operator needs brackets;
        # comparisons do not chain, so both sides of one do.
        left = _text(node.left, level + 1 if node.op in COMPARISONS else level)
        right = _text(node.right, level + 1)
        text = f"{left} {node.op} {right}"
        return f"({text})" if parent > level else text
    raise TypeError(f"not an expression node: {node!r}")


def type_of(node: Node) -> ValueType:
    """The static type of a node of a checked tree.

    Raises:
        TypeError: not a node, or a signal the checker has not typed.
    """
    if isinstance(node, Number):
        return ValueType.NUMBER
    if isinstance(node, String):
        return ValueType.STRING
    if isinstance(node, Boolean):
        return ValueType.BOOLEAN
    if isinstance(node, Signal):
        if node.type is None:
            raise TypeError(f"signal {node.path!r} has not been checked against a catalog")
        return node.type
    if isinstance(node, Unary):
        return ValueType.BOOLEAN if node.op == "not" else ValueType.NUMBER
    if isinstance(node, Binary):
        if node.op in ("+", "-", "*", "/"):
            return ValueType.NUMBER
        return ValueType.BOOLEAN
    raise TypeError(f"not an expression node: {node!r}")


def tree_depth(root: Node) -> int:
    """The number of nodes on the longest path from ``root`` down."""
    # Iterative: a long chain such as 'a + a + ... + a' is a deep left-nested tree.
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Unary):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, Binary):
            stack.extend(((node.left, depth + 1), (node.right, depth + 1)))
    return deepest


def signals_of(root: Node) -> dict[str, ValueType]:
    """The signals a checked tree reads, with their types, in order of appearance."""
    out: dict[str, ValueType] = {}
    _signals(root, out)
    return out


def _signals(node: Node, out: dict[str, ValueType]) -> None:
    if isinstance(node, Signal):
        out[node.path] = type_of(node)
    elif isinstance(node, Unary):
        _signals(node.operand, out)
    elif isinstance(node, Binary):
        _signals(node.left, out)
        _signals(node.right, out)
