"""Trigger expressions: a small, safe condition language over VSS signals.

A collection campaign fires when a condition over the vehicle's current signal values becomes
true, e.g.::

    Vehicle.Speed > 120 and Vehicle.Powertrain.TractionBattery.Temperature.Average > 45

The language, in full (no ``eval``; a hand-written tokenizer and recursive-descent parser):

==============  ==============================================================================
literals        numbers (``120``, ``-3.5``, ``1e3``), strings (``'DRIVE'`` or ``"DRIVE"``,
                backslash escapes ``\\'`` ``\\"`` ``\\\\``), ``true``, ``false``
signals         VSS paths of the catalog (``Vehicle.Speed``); arrays are not supported
arithmetic      ``+ - * /`` and unary ``-`` on numbers; ``abs(x)``
comparisons     ``< <= > >= == !=`` on numbers; ``== !=`` on strings and on booleans
logic           ``and``, ``or``, ``not`` on conditions; parentheses group
==============  ==============================================================================

Precedence, loosest first: ``or``, ``and``, ``not``, comparison (one per operand pair:
``a < b < c`` is refused), ``+ -``, ``* /``, unary ``-``. Keywords are case-insensitive.

Every expression is type-checked against the catalog when parsed, so a campaign that cannot
work is refused before it is installed: unknown signals raise ``UnknownSignalError`` with the
closest known paths; anything else raises ``ExpressionSyntaxError`` naming the offending token
and its 1-based column (``unexpected token '>>' at column 15``).

Evaluation is vectorised: ``Expression.evaluate_columns`` takes one NumPy array per signal
(all of the same length: the signal values in force at a series of instants) and returns a
boolean array. A condition is false at every instant where a signal it names has no value yet
(NaN, or None for strings); division by zero gives ±inf or NaN as IEEE 754 says, so a
comparison with it is false. ``Expression.evaluate`` is the one-instant form.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import ExpressionSyntaxError, UnknownSignalError
from drivetrain.core.vss import Catalog

#: Longest expression text accepted, characters (campaigns come from the cloud; keep them small).
MAX_EXPRESSION_CHARS: Final = 4096
#: Deepest nesting of parentheses/operators accepted (bounds the parser's recursion).
MAX_DEPTH: Final = 64


class ValueType(enum.Enum):
    """The static type of an expression node."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"

    def __str__(self) -> str:
        return {"number": "a number", "boolean": "a condition (true/false)", "string": "a string"}[
            self.value
        ]


# --- tokens -----------------------------------------------------------------------------------

TokenKind = Literal["number", "string", "name", "op", "lparen", "rparen", "end"]
_COMPARISONS: Final = ("<", "<=", ">", ">=", "==", "!=")
_OPERATOR_CHARS: Final = frozenset("<>=!&|")
_ARITHMETIC: Final = frozenset("+-*/")
_KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false"})
_FUNCTIONS: Final = frozenset({"abs"})
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_HINTS: Final = {"=": "use '==' to compare", "&&": "use 'and'", "||": "use 'or'", "!": "use 'not'"}


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token; ``column`` is 1-based."""

    kind: TokenKind
    text: str
    column: int


def _error(message: str, token: Token, detail: str = "") -> ExpressionSyntaxError:
    where = "the end of the expression" if token.kind == "end" else f"column {token.column}"
    return ExpressionSyntaxError(f"{message} at {where}{detail}")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Raises:
        ExpressionSyntaxError: a character or operator that is not part of the language, or an
            unterminated string; names it and its column.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        column = i + 1
        if ch.isspace():
            i += 1
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            match = _NUMBER.match(text, i)
            assert match is not None  # a digit or '.digit' always matches
            end = match.end()
            if end < n and (text[end].isalpha() or text[end] in "_."):
                bad = re.match(r"[\w.]+", text[i:])
                assert bad is not None
                raise ExpressionSyntaxError(
                    f"unexpected token {bad.group()!r} at column {column}: not a number "
                    "(a signal path starts with a letter)"
                )
            tokens.append(Token("number", text[i:end], column))
            i = end
        elif ch.isalpha() or ch == "_":
            match = _NAME.match(text, i)
            assert match is not None
            end = match.end()
            if end < n and text[end] == ".":
                raise ExpressionSyntaxError(
                    f"unexpected token {text[i : end + 1]!r} at column {column}: a path level "
                    "is missing after '.'"
                )
            tokens.append(Token("name", match.group(), column))
            i = end
        elif ch in "'\"":
            i = _read_string(text, i, tokens)
        elif ch in _OPERATOR_CHARS:
            end = i
            while end < n and text[end] in _OPERATOR_CHARS:
                end += 1
            op = text[i:end]
            if op not in _COMPARISONS:
                hint = _HINTS.get(op)
                raise ExpressionSyntaxError(
                    f"unexpected token {op!r} at column {column}"
                    + (f" ({hint})" if hint else "; expected one of < <= > >= == !=")
                )
            tokens.append(Token("op", op, column))
            i = end
        elif ch in _ARITHMETIC:
            tokens.append(Token("op", ch, column))
            i += 1
        elif ch == "(":
            tokens.append(Token("lparen", ch, column))
            i += 1
        elif ch == ")":
            tokens.append(Token("rparen", ch, column))
            i += 1
        else:
            raise ExpressionSyntaxError(f"unexpected character {ch!r} at column {column}")
    tokens.append(Token("end", "", n + 1))
    return tokens


def _read_string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ("\\", "'", '"'):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            tokens.append(Token("string", "".join(out), start + 1))
            return i + 1
        else:
            out.append(ch)
            i += 1
    raise ExpressionSyntaxError(f"unterminated string starting at column {start + 1}")


# --- the syntax tree --------------------------------------------------------------------------


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
    path: str
    type: ValueType = field(compare=False)


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
        level = _PRECEDENCE["cmp"] if node.op in _COMPARISONS else _PRECEDENCE[node.op]
        # Left-associative: the right operand of an equal-precedence operator needs brackets;
        # comparisons do not chain, so both sides of one do.
        left = _text(node.left, level + 1 if node.op in _COMPARISONS else level)
        right = _text(node.right, level + 1)
        text = f"{left} {node.op} {right}"
        return f"({text})" if parent > level else text
    raise TypeError(f"not an expression node: {node!r}")


# --- parser -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, catalog: Catalog) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.catalog = catalog
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        return self.token.kind == "name" and self.token.text.lower() == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(f"expression nests deeper than {MAX_DEPTH} levels", self.token)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "end":
            raise _error(f"unexpected token {self.token.text!r}", self.token)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.keyword("or"):
            op = self.advance()
            node = self._logic(op, node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.keyword("and"):
            op = self.advance()
            node = self._logic(op, node, self.not_expr())
        return node

    def _logic(self, op: Token, left: Node, right: Node) -> Node:
        for side in (left, right):
            if type_of(side) is not ValueType.BOOLEAN:
                raise ExpressionSyntaxError(
                    f"operator {op.text!r} at column {op.column} joins conditions, but "
                    f"{to_text(side)!r} is {type_of(side)}"
                )
        return Binary(op.text.lower(), left, right, column=op.column)

    def not_expr(self) -> Node:
        if self.keyword("not"):
            op = self.advance()
            self.enter()
            operand = self.not_expr()
            self.depth -= 1
            if type_of(operand) is not ValueType.BOOLEAN:
                raise ExpressionSyntaxError(
                    f"operator 'not' at column {op.column} negates a condition, but "
                    f"{to_text(operand)!r} is {type_of(operand)}"
                )
            return Unary("not", operand, column=op.column)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        if self.token.kind == "op" and self.token.text in _COMPARISONS:
            op = self.advance()
            right = self.additive()
            if self.token.kind == "op" and self.token.text in _COMPARISONS:
                raise _error(
                    f"unexpected token {self.token.text!r}",
                    self.token,
                    ": comparisons do not chain (write 'a < b and b < c')",
                )
            lt, rt = type_of(left), type_of(right)
            if lt is not rt:
                raise ExpressionSyntaxError(
                    f"operator {op.text!r} at column {op.column} compares {lt} "
                    f"({to_text(left)!r}) with {rt} ({to_text(right)!r})"
                )
            if lt is not ValueType.NUMBER and op.text not in ("==", "!="):
                raise ExpressionSyntaxError(
                    f"operator {op.text!r} at column {op.column} orders numbers only; "
                    f"{to_text(left)!r} is {lt} (use == or !=)"
                )
            return Binary(op.text, left, right, column=op.column)
        return left

    def additive(self) -> Node:
        node = self.term()
        while self.token.kind == "op" and self.token.text in ("+", "-"):
            op = self.advance()
            node = self._arith(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.token.kind == "op" and self.token.text in ("*", "/"):
            op = self.advance()
            node = self._arith(op, node, self.unary())
        return node

    def _arith(self, op: Token, left: Node, right: Node) -> Node:
        for side in (left, right):
            if type_of(side) is not ValueType.NUMBER:
                raise ExpressionSyntaxError(
                    f"operator {op.text!r} at column {op.column} works on numbers, but "
                    f"{to_text(side)!r} is {type_of(side)}"
                )
        return Binary(op.text, left, right, column=op.column)

    def unary(self) -> Node:
        if self.token.kind == "op" and self.token.text == "-":
            op = self.advance()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if type_of(operand) is not ValueType.NUMBER:
                raise ExpressionSyntaxError(
                    f"operator '-' at column {op.column} negates numbers, but "
                    f"{to_text(operand)!r} is {type_of(operand)}"
                )
            if isinstance(operand, Number):
                return Number(-operand.value, column=op.column)
            return Unary("-", operand, column=op.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            value = float(token.text)
            if not np.isfinite(value):
                raise _error(f"number {token.text!r} is out of range", token)
            return Number(value, column=token.column)
        if token.kind == "string":
            self.advance()
            return String(token.text, column=token.column)
        if token.kind == "lparen":
            self.advance()
            self.enter()
            node = self.or_expr()
            self.depth -= 1
            self.expect_rparen(token)
            return node
        if token.kind == "name":
            return self.name()
        if token.kind == "end":
            raise _error("a value is missing", token)
        raise _error(f"unexpected token {token.text!r}", token)

    def expect_rparen(self, opened: Token) -> None:
        if self.token.kind == "end":
            raise _error(
                "missing ')'", self.token, f" (to close the '(' at column {opened.column})"
            )
        if self.token.kind != "rparen":
            raise _error(
                f"unexpected token {self.token.text!r}",
                self.token,
                f"; expected ')' for the '(' at column {opened.column}",
            )
        self.advance()

    def name(self) -> Node:
        token = self.advance()
        word = token.text.lower()
        if word in ("true", "false"):
            return Boolean(word == "true", column=token.column)
        if word in ("and", "or", "not"):
            raise _error(f"unexpected token {token.text!r}: a value is missing before it", token)
        if word in _FUNCTIONS and "." not in token.text:
            if self.token.kind != "lparen":
                raise _error(f"expected '(' after {token.text!r}", self.token)
            opened = self.advance()
            self.enter()
            operand = self.or_expr()
            self.depth -= 1
            self.expect_rparen(opened)
            if type_of(operand) is not ValueType.NUMBER:
                raise ExpressionSyntaxError(
                    f"function 'abs' at column {token.column} takes a number, but "
                    f"{to_text(operand)!r} is {type_of(operand)}"
                )
            return Unary("abs", operand, column=token.column)
        if self.token.kind == "lparen":
            raise _error(f"unknown function {token.text!r}", token, "; the only function is abs()")
        return self.signal(token)

    def signal(self, token: Token) -> Signal:
        try:
            spec = self.catalog.get(token.text)
        except UnknownSignalError as e:
            raise UnknownSignalError(f"{e} (expression column {token.column})") from None
        if spec.datatype.endswith("[]"):
            raise _error(
                f"signal {token.text!r} is an array ({spec.datatype}); expressions use scalar "
                "signals only",
                token,
            )
        if spec.datatype == "boolean":
            kind = ValueType.BOOLEAN
        elif spec.datatype == "string":
            kind = ValueType.STRING
        else:
            kind = ValueType.NUMBER
        return Signal(token.text, kind, column=token.column)


def type_of(node: Node) -> ValueType:
    """The static type of a node of a checked tree."""
    if isinstance(node, Number):
        return ValueType.NUMBER
    if isinstance(node, String):
        return ValueType.STRING
    if isinstance(node, Boolean):
        return ValueType.BOOLEAN
    if isinstance(node, Signal):
        return node.type
    if isinstance(node, Unary):
        return ValueType.BOOLEAN if node.op == "not" else ValueType.NUMBER
    if isinstance(node, Binary):
        if node.op in ("+", "-", "*", "/"):
            return ValueType.NUMBER
        return ValueType.BOOLEAN
    raise TypeError(f"not an expression node: {node!r}")


def _tree_depth(root: Node) -> int:
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


def _signals(node: Node, out: dict[str, ValueType]) -> None:
    if isinstance(node, Signal):
        out[node.path] = node.type
    elif isinstance(node, Unary):
        _signals(node.operand, out)
    elif isinstance(node, Binary):
        _signals(node.left, out)
        _signals(node.right, out)


# --- the public object ------------------------------------------------------------------------

Column = npt.NDArray[np.float64] | npt.NDArray[np.object_]


@dataclass(frozen=True)
class Expression:
    """A parsed, type-checked condition.

    Attributes:
        text: the source text, as given.
        root: the syntax tree.
        signals: the VSS paths it reads, with their value types, in order of appearance.
    """

    text: str
    root: Node
    signals: Mapping[str, ValueType]

    def __str__(self) -> str:
        return to_text(self.root)

    def evaluate_columns(
        self, columns: Mapping[str, npt.ArrayLike], size: int
    ) -> npt.NDArray[np.bool_]:
        """The condition at ``size`` instants.

        Args:
            columns: for every path in ``signals``, an array of ``size`` values: float64 for
                numbers (NaN = no value), float64 0/1 for booleans (NaN = no value), an object
                array of ``str`` or None for strings.
            size: the number of instants.

        Raises:
            KeyError: a signal the expression reads has no column (a programming error).
        """
        known = np.ones(size, np.bool_)
        arrays: dict[str, Column] = {}
        for path, kind in self.signals.items():
            column = np.asarray(
                columns[path], dtype=object if kind is ValueType.STRING else np.float64
            )
            if column.shape != (size,):
                raise ValueError(f"column {path!r} has shape {column.shape}; expected ({size},)")
            known &= _present(column, kind)
            arrays[path] = column
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            result = _evaluate(self.root, arrays, size)
        return np.asarray(result, np.bool_) & known

    def evaluate(self, values: Mapping[str, object]) -> bool:
        """The condition for one set of current values (missing or None = no value).

        Raises:
            TypeError: a value of the wrong kind for its signal (e.g. a string for a number).
        """
        columns: dict[str, npt.ArrayLike] = {}
        for path, kind in self.signals.items():
            value = values.get(path)
            if kind is ValueType.STRING:
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"value of {path!r} is {value!r}; expected a string")
                columns[path] = np.array([value], dtype=object)
            else:
                if value is not None and (
                    isinstance(value, str) or not isinstance(value, int | float)
                ):
                    raise TypeError(f"value of {path!r} is {value!r}; expected {kind}")
                columns[path] = np.array([np.nan if value is None else float(value)])
        return bool(self.evaluate_columns(columns, 1)[0])


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


def parse_expression(text: str, catalog: Catalog) -> Expression:
    """Parse and type-check a trigger condition against ``catalog``.

    Raises:
        ExpressionSyntaxError: the text does not parse, is too long or too deep, or combines
            values of the wrong types; the message names the token and its column.
        UnknownSignalError: a signal path that is not in the catalog (with suggestions).
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(
            f"expression is {len(text)} characters long; "
            f"at most {MAX_EXPRESSION_CHARS} are accepted"
        )
    if not text.strip():
        raise ExpressionSyntaxError(
            "expression is empty; expected a condition such as 'Vehicle.Speed > 120'"
        )
    root = _Parser(text, catalog).parse()
    if (depth := _tree_depth(root)) > MAX_DEPTH:
        raise ExpressionSyntaxError(
            f"expression nests {depth} operators deep; at most {MAX_DEPTH} are accepted"
        )
    if type_of(root) is not ValueType.BOOLEAN:
        raise ExpressionSyntaxError(
            f"expression {text!r} is {type_of(root)}; a trigger needs a condition "
            "(a comparison, a boolean signal, or and/or/not of those)"
        )
    signals: dict[str, ValueType] = {}
    _signals(root, signals)
    return Expression(text, root, signals)
