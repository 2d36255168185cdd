"""The fleet query language: a recursive-descent parser into a small AST (pure), over the
tokenizer it shares with the vehicle's trigger expressions (``core.lexer``).

Nothing is evaluated with ``eval``; the AST is compiled to SQL by ``query_sql.py``, so a query
runs inside the database. The grammar::

    query      := [ or_expr ] EOF
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := unary ( "and" unary )*
    unary      := "not" unary | atom
    atom       := "(" or_expr ")" | "exists" "(" field ")" | field comparison
    comparison := OP literal | [ "not" ] "in" "[" literal ( "," literal )* "]"
    field      := "vin" | "model" | "region" | "owner"
                | ( "reported" | "desired" | "software" | "hardware" ) "." STRING
    literal    := STRING | NUMBER | "true" | "false"
    OP         := "==" | "!=" | "<" | "<=" | ">" | ">="

Strings are in double or single quotes with ``\\"``, ``\\'`` and ``\\\\`` escapes. Keywords
are case-insensitive. ``a != v`` is exactly ``not (a == v)`` (so it also holds where ``a`` has
no value); ordering comparisons hold only where there is a value. ``software."ECU"`` compares
as versions (``"2.10.0" > "2.9.1"``). Every error is an :class:`QuerySyntaxError` naming the
bad token and its column (1-based).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, NoReturn, get_args

from drivetrain.cloud.twins.values import version_key
from drivetrain.core.errors import BadInputError, QuerySyntaxError
from drivetrain.core.lexer import IDENTIFIER, Lexicon, Problem, Token, TokenError
from drivetrain.core.lexer import tokenize as tokenize_text
from drivetrain.core.vss import Catalog

MetaName = Literal["vin", "model", "region", "owner"]
META_FIELDS: Final[tuple[MetaName, ...]] = get_args(MetaName)
Scope = Literal["reported", "desired", "software", "hardware"]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
Operator = Literal["==", "!=", "<", "<=", ">", ">="]
OPERATORS: Final[tuple[Operator, ...]] = get_args(Operator)
Literal_ = bool | int | float | str

#: Limits that keep a hostile query from costing much (length, nesting, predicates, list size).
MAX_QUERY_CHARS: Final = 4000
MAX_DEPTH: Final = 32
MAX_PREDICATES: Final = 64
MAX_IN_VALUES: Final = 500

_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "exists", "true", "false"})


def _error(message: str, *, token: str, column: int) -> QuerySyntaxError:
    return QuerySyntaxError(
        f"query: {message} (at column {column}: {token!r})", token=token, column=column
    )


# --- the AST ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """A metadata column (``scope`` None, ``name`` the column) or a scoped path/ECU name."""

    scope: Scope | None
    name: str
    column: int

    def __str__(self) -> str:
        return self.name if self.scope is None else f'{self.scope}."{self.name}"'


@dataclass(frozen=True, slots=True)
class Compare:
    """``field OP value``; for ``software`` fields ``value`` is the version's sort key."""

    field: Field
    op: Operator
    value: Literal_


@dataclass(frozen=True, slots=True)
class In:
    """``field in [values]`` (``negated``: ``not in``)."""

    field: Field
    values: tuple[Literal_, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Exists:
    """``exists(field)``: the twin has a value for the field."""

    field: Field


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query: every twin of the tenant."""


Node = Compare | In | Exists | And | Or | Not | MatchAll


# --- tokens ----------------------------------------------------------------------------------
#: The query's tokens (the shared tokenizer of ``core.lexer``): bare identifiers with ``.`` as
#: punctuation (``reported."Vehicle.Speed"``), signed numbers, strict string escapes.
QUERY_LEXICON: Final = Lexicon(
    name=IDENTIFIER,
    operators=frozenset(OPERATORS),
    punctuation="()[],.",
    signed_numbers=True,
    strict_escapes=True,
    numbers_end_at_letters=True,
    hints={"=": "use '==' to compare", "&&": "use 'and'", "||": "use 'or'", "!": "use 'not'"},
    end_text="end of query",
)
_PROBLEMS: Final[Mapping[Problem, str]] = {
    "unexpected_character": "unexpected character",
    "unknown_operator": "unknown operator",
    "malformed_number": "not a number",
    "incomplete_name": "incomplete name",
    "unknown_escape": "unknown escape in string; only \\\", \\' and \\\\ are allowed",
    "unterminated_string": "unterminated string",
}


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token.

    Raises:
        QuerySyntaxError: an unterminated string, a bad escape, an unknown operator, or a
            character that starts no token.
    """
    try:
        return tokenize_text(text, QUERY_LEXICON)
    except TokenError as e:
        detail = f" ({e.hint})" if e.hint else ""
        if e.problem == "unknown_operator" and not e.hint:
            detail = f"; expected one of {' '.join(OPERATORS)}"
        raise _error(_PROBLEMS[e.problem] + detail, token=e.token, column=e.column) from e


# --- the parser ------------------------------------------------------------------------------
class _Parser:
    def __init__(self, tokens: list[Token], catalog: Catalog | None) -> None:
        self.tokens = tokens
        self.pos = 0
        self.catalog = catalog
        self.depth = 0
        self.predicates = 0

    # helpers
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text.lower() == word

    def is_punct(self, char: str) -> bool:
        token = self.peek()
        return token.kind == "punct" and token.text == char

    def expect_punct(self, char: str, what: str) -> Token:
        if not self.is_punct(char):
            self.fail(f"expected {what}")
        return self.advance()

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        token = token or self.peek()
        raise _error(message, token=token.text, column=token.column)

    # grammar
    def query(self) -> Node:
        if self.peek().kind == "eof":
            return MatchAll()
        node = self.or_expr()
        if self.peek().kind != "eof":
            self.fail("expected 'and', 'or' or the end of the query")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_keyword("or"):
            self.advance()
            node = Or(node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.is_keyword("and"):
            self.advance()
            node = And(node, self.unary())
        return node

    def unary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH} levels")
        try:
            if self.is_keyword("not"):
                self.advance()
                return Not(self.unary())
            return self.atom()
        finally:
            self.depth -= 1

    def atom(self) -> Node:
        if self.is_punct("("):
            self.advance()
            node = self.or_expr()
            self.expect_punct(")", "')' to close the parenthesis")
            return node
        if self.is_keyword("exists"):
            self.advance()
            self.expect_punct("(", "'(' after exists")
            field = self.field()
            self.expect_punct(")", "')' after the field of exists(...)")
            self.count_predicate(field)
            return Exists(field)
        field = self.field()
        self.count_predicate(field)
        token = self.peek()
        if token.kind == "op":
            self.advance()
            op: Operator = token.text  # type: ignore[assignment]  # _OPS are the operators
            literal_token = self.peek()
            value = self.literal()
            return Compare(field, op, self.check_value(field, op, value, literal_token))
        negated = False
        if self.is_keyword("not"):
            self.advance()
            negated = True
            if not self.is_keyword("in"):
                self.fail("expected 'in' after 'not'")
        if self.is_keyword("in"):
            self.advance()
            return In(field, self.literal_list(field), negated)
        self.fail("expected a comparison operator (== != < <= > >=) or 'in'")

    def count_predicate(self, field: Field) -> None:
        self.predicates += 1
        if self.predicates > MAX_PREDICATES:
            raise _error(
                f"more than {MAX_PREDICATES} comparisons", token=str(field), column=field.column
            )

    def field(self) -> Field:
        token = self.peek()
        if token.kind != "ident" or token.text.lower() in _KEYWORDS:
            self.fail(
                "expected a field: vin, model, region, owner, or reported/desired/software/"
                'hardware followed by ."name"'
            )
        self.advance()
        name = token.text
        if name in META_FIELDS:
            return Field(None, name, token.column)
        if name not in SCOPES:
            hint = " (the tenant is implied by the caller)" if name == "tenant" else ""
            self.fail(
                f"unknown field{hint}; expected one of {', '.join(META_FIELDS + SCOPES)}", token
            )
        self.expect_punct(".", f"'.' after {name}, as in {name}.\"...\"")
        quoted = self.peek()
        if quoted.kind != "string":
            self.fail(f'expected a quoted name after {name}., as in {name}."Vehicle.Speed"')
        self.advance()
        scope: Scope = name  # checked against SCOPES above
        if scope in ("reported", "desired"):
            self.check_path(quoted)
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", quoted.text):
            self.fail("not an ECU name (letters, digits, '_', '.', '-')", quoted)
        return Field(scope, quoted.text, token.column)

    def check_path(self, token: Token) -> None:
        if self.catalog is None:
            if not re.fullmatch(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*", token.text):
                self.fail("not a VSS path", token)
            return
        if token.text not in self.catalog:
            try:
                self.catalog.get(token.text)
            except BadInputError as e:
                self.fail(str(e), token)

    def literal(self) -> Literal_:
        token = self.peek()
        if token.kind in ("string", "number"):
            self.advance()
            assert token.value is not None
            return token.value
        if self.is_keyword("true") or self.is_keyword("false"):
            self.advance()
            return token.text.lower() == "true"
        if token.kind == "ident" and token.text.lower() == "null":
            self.fail("null is not a value; use exists(...) or not exists(...)")
        self.fail("expected a value: a quoted string, a number, true or false")

    def literal_list(self, field: Field) -> tuple[Literal_, ...]:
        self.expect_punct("[", "'[' to start the list")
        values: list[Literal_] = []
        while True:
            token = self.peek()
            values.append(self.check_value(field, "==", self.literal(), token))
            if len(values) > MAX_IN_VALUES:
                self.fail(f"more than {MAX_IN_VALUES} values in a list", token)
            if self.is_punct(","):
                self.advance()
                continue
            self.expect_punct("]", "',' or ']' in the list")
            return tuple(values)

    def check_value(self, field: Field, op: Operator, value: Literal_, token: Token) -> Literal_:
        if field.scope is None or field.scope == "hardware":
            if not isinstance(value, str):
                self.fail(f"{field} is text; compare it with a quoted string", token)
            return value
        if field.scope == "software":
            if not isinstance(value, str):
                self.fail(f'{field} is a version; compare it with a quoted version like "2.4.0"', token)
            try:
                return version_key(value)
            except BadInputError as e:
                self.fail(str(e), token)
        if isinstance(value, bool) and op not in ("==", "!="):
            self.fail(f"true/false can only be compared with == or !=, not {op}", token)
        return value


def parse_query(text: str, catalog: Catalog | None = None) -> Node:
    """Parse a fleet query into its AST; an empty or blank query matches every twin.

    With ``catalog``, ``reported."..."`` and ``desired."..."`` must name its signals.

    Raises:
        QuerySyntaxError: the query is too long or too deep, does not follow the grammar,
            names an unknown field or path, or compares a field with the wrong kind of value;
            the message names the token and its column.
    """
    if not isinstance(text, str):
        raise TypeError(f"query must be a str, got {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise _error(
            f"query is {len(text)} characters; at most {MAX_QUERY_CHARS} are allowed",
            token=text[MAX_QUERY_CHARS : MAX_QUERY_CHARS + 10], column=MAX_QUERY_CHARS + 1,
        )
    return _Parser(tokenize(text), catalog).query()


def reported_paths(node: Node) -> frozenset[str]:
    """The VSS paths whose *reported* values the query filters on (what it reads of the
    vehicles' data; ``desired`` values are the operator's own)."""
    if isinstance(node, And | Or):
        return reported_paths(node.left) | reported_paths(node.right)
    if isinstance(node, Not):
        return reported_paths(node.operand)
    if isinstance(node, Compare | In | Exists):
        return frozenset({node.field.name}) if node.field.scope == "reported" else frozenset()
    return frozenset()


def render_query(node: Node) -> str:
    """The query text of an AST (canonical form: fully parenthesised, double quotes).

    ``software`` comparisons render their version sort keys, so this is for logs, not for
    round-tripping those."""
    if isinstance(node, MatchAll):
        return ""
    if isinstance(node, And):
        return f"({render_query(node.left)} and {render_query(node.right)})"
    if isinstance(node, Or):
        return f"({render_query(node.left)} or {render_query(node.right)})"
    if isinstance(node, Not):
        return f"not {render_query(node.operand)}"
    if isinstance(node, Exists):
        return f"exists({node.field})"
    if isinstance(node, In):
        values = ", ".join(_render_literal(v) for v in node.values)
        return f"{node.field} {'not in' if node.negated else 'in'} [{values}]"
    return f"{node.field} {node.op} {_render_literal(node.value)}"


def _render_literal(value: Literal_) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
