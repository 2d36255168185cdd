"""The trigger expressions' recursive-descent parser: tokens to an unchecked syntax tree.

It knows the grammar only; what the names mean and whether the types fit is the checker's
(``checker.py``). Nesting is bounded while parsing (``MAX_DEPTH``), so hostile input cannot
exhaust the stack. Precedence, loosest first: ``or``, ``and``, ``not``, comparison (one per
operand pair), ``+ -``, ``* /``, unary ``-``; keywords are case-insensitive.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from drivetrain.core.lexer import Token
from drivetrain.edge.expressions.lexer import COMPARISONS, syntax_error, tokenize
from drivetrain.edge.expressions.syntax import (
    Binary,
    Boolean,
    Node,
    Number,
    Signal,
    String,
    Unary,
)

#: Deepest nesting of parentheses/operators accepted (bounds the parser's recursion).
MAX_DEPTH: Final = 64
FUNCTIONS: Final = frozenset({"abs"})


def parse_tree(text: str) -> Node:
    """The syntax tree of ``text`` (signals untyped; see ``checker.check``).

    Raises:
        ExpressionSyntaxError: the text does not follow the grammar or nests too deep; the
            message names the token and its column.
    """
    return _Parser(tokenize(text)).parse()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        return self.token.kind == "ident" and self.token.text.lower() == word

    def punct(self, char: str) -> bool:
        return self.token.kind == "punct" and self.token.text == char

    def operator(self, *ops: str) -> bool:
        return self.token.kind == "op" and self.token.text in ops

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise syntax_error(f"expression nests deeper than {MAX_DEPTH} levels", self.token)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "eof":
            raise syntax_error(f"unexpected token {self.token.text!r}", self.token)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.keyword("or"):
            op = self.advance()
            node = Binary("or", node, self.and_expr(), column=op.column)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.keyword("and"):
            op = self.advance()
            node = Binary("and", node, self.not_expr(), column=op.column)
        return node

    def not_expr(self) -> Node:
        if self.keyword("not"):
            op = self.advance()
            self.enter()
            operand = self.not_expr()
            self.depth -= 1
            return Unary("not", operand, column=op.column)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        if self.operator(*COMPARISONS):
            op = self.advance()
            right = self.additive()
            if self.operator(*COMPARISONS):
                raise syntax_error(
                    f"unexpected token {self.token.text!r}",
                    self.token,
                    ": comparisons do not chain (write 'a < b and b < c')",
                )
            return Binary(op.text, left, right, column=op.column)
        return left

    def additive(self) -> Node:
        node = self.term()
        while self.operator("+", "-"):
            op = self.advance()
            node = Binary(op.text, node, self.term(), column=op.column)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.operator("*", "/"):
            op = self.advance()
            node = Binary(op.text, node, self.unary(), column=op.column)
        return node

    def unary(self) -> Node:
        if self.operator("-"):
            op = self.advance()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Number):  # a negative literal
                return Number(-operand.value, column=op.column)
            return Unary("-", operand, column=op.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            value = float(token.text)
            if not np.isfinite(value):
                raise syntax_error(f"number {token.text!r} is out of range", token)
            return Number(value, column=token.column)
        if token.kind == "string":
            self.advance()
            return String(token.text, column=token.column)
        if self.punct("("):
            self.advance()
            self.enter()
            node = self.or_expr()
            self.depth -= 1
            self.expect_closing(token)
            return node
        if token.kind == "ident":
            return self.name()
        if token.kind == "eof":
            raise syntax_error("a value is missing", token)
        raise syntax_error(f"unexpected token {token.text!r}", token)

    def expect_closing(self, opened: Token) -> None:
        if self.token.kind == "eof":
            raise syntax_error(
                "missing ')'", self.token, f" (to close the '(' at column {opened.column})"
            )
        if not self.punct(")"):
            raise syntax_error(
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
            raise syntax_error(
                f"unexpected token {token.text!r}: a value is missing before it", token
            )
        if word in FUNCTIONS and "." not in token.text:
            if not self.punct("("):
                raise syntax_error(f"expected '(' after {token.text!r}", self.token)
            opened = self.advance()
            self.enter()
            operand = self.or_expr()
            self.depth -= 1
            self.expect_closing(opened)
            return Unary("abs", operand, column=token.column)
        if self.punct("("):
            raise syntax_error(
                f"unknown function {token.text!r}", token, "; the only function is abs()"
            )
        return Signal(token.text, column=token.column)
