"""One tokenizer for Drivetrain's small languages: trigger expressions on the vehicle
(``edge.expressions``) and fleet queries in the cloud (``cloud.twins.query``).

Both languages are made of the same pieces — numbers, quoted strings, names, comparison and
arithmetic operators, punctuation — and differ only in details a ``Lexicon`` states: what a
name looks like (a dotted VSS path, or a bare identifier with ``.`` as punctuation), which
operators and punctuation exist, whether ``-`` may start a number, whether an unknown string
escape is an error. ``tokenize`` turns text into ``Token`` objects with their 1-based columns,
ending with an ``eof`` token; the first thing it cannot read raises ``TokenError``, which says
what went wrong (``problem``), the offending text (``token``), where (``column``) and a hint,
so each language words the message in its own voice.

Scanning, at each position (whitespace is skipped):

* a quote (``'`` or ``"``) starts a string; ``\\'``, ``\\"`` and ``\\\\`` are escapes;
* a digit, or ``.`` before a digit, starts a number (``12``, ``-3.5``, ``1e3``, ``.5``);
  a ``-`` directly before one starts it too where the lexicon allows signed numbers and the
  previous token is an operator or punctuation (or there is none);
* a letter or ``_`` starts a name;
* a run of the lexicon's ``operator_chars`` must be exactly one operator (``>>``, ``=`` and
  ``&&`` are refused whole, with the lexicon's hint for them), and other operator characters
  stand alone;
* punctuation is one character; anything else is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from drivetrain.core.errors import ExpressionSyntaxError

TokenKind = Literal["ident", "string", "number", "op", "punct", "eof"]
Problem = Literal[
    "unexpected_character",
    "unknown_operator",
    "malformed_number",
    "incomplete_name",
    "unknown_escape",
    "unterminated_string",
]
#: Identifiers: a letter or ``_``, then letters, digits or ``_``.
IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Dotted paths such as VSS signal names (``Vehicle.Speed``).
DOTTED_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")

_SPACE: Final = re.compile(r"\s+")
_NUMBER: Final = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER: Final = re.compile(r"-?\d+")
_WORD: Final = re.compile(r"[\w.]+")
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\"}
#: Longest text of an unterminated string or an overlong number quoted in its error.
_QUOTED_CHARS: Final = 20
#: Longest number accepted, characters (Python's int() reads at most 4,300 digits).
_MAX_NUMBER_CHARS: Final = 4000


@dataclass(frozen=True, slots=True)
class Token:
    """One token.

    Attributes:
        kind: what it is; ``eof`` ends every token list.
        text: as written; for a string its unescaped content; for ``eof`` the lexicon's
            ``end_text``.
        column: where it starts, 1-based (``eof``: one past the end of the text).
        value: a number's value (``int`` when written without a fraction or exponent, else
            ``float``) or a string's content; None for other kinds.
    """

    kind: TokenKind
    text: str
    column: int
    value: int | float | str | None = None


@dataclass(frozen=True)
class Lexicon:
    """What the tokens of one language look like.

    Attributes:
        name: the pattern of a name (``IDENTIFIER`` or ``DOTTED_PATH``). A dotted name
            directly followed by a ``.`` that is not punctuation is an ``incomplete_name``.
        operators: every operator of the language.
        operator_chars: characters that glue into one operator (``<``, ``=``, ...); other
            operator characters (``+``, ``-``, ...) are operators on their own.
        punctuation: single-character tokens.
        signed_numbers: ``-`` directly before a number is part of it after an operator or
            punctuation or at the start (else ``-`` is an operator, if the language has it).
        strict_escapes: a backslash before anything but a quote or a backslash is an
            ``unknown_escape`` (else the backslash is kept as written).
        numbers_end_at_letters: a number directly followed by a letter, ``_`` or ``.`` ends
            there (``3and`` is ``3`` then ``and``); else that is a ``malformed_number``.
        hints: advice for an unknown operator or character, by its text (``=``: use ``==``).
        end_text: the text of the ``eof`` token.
    """

    name: re.Pattern[str] = IDENTIFIER
    operators: frozenset[str] = frozenset({"==", "!=", "<", "<=", ">", ">="})
    operator_chars: str = "<>=!&|"
    punctuation: str = "()"
    signed_numbers: bool = False
    strict_escapes: bool = True
    numbers_end_at_letters: bool = False
    hints: Mapping[str, str] = field(default_factory=dict)
    end_text: str = ""


class TokenError(ExpressionSyntaxError):
    """Text that is not a token of the language.

    Attributes:
        problem: what went wrong (see ``Problem``).
        token: the offending text as written.
        column: where it starts, 1-based.
        hint: the lexicon's advice for it, or "".
    """

    def __init__(
        self,
        message: str,
        *,
        problem: Problem = "unexpected_character",
        token: str = "",
        column: int = 0,
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.problem: Problem = problem
        self.token = token
        self.column = column
        self.hint = hint

    @classmethod
    def at(cls, problem: Problem, token: str, column: int, hint: str = "") -> TokenError:
        """The error for ``token`` at ``column``, with a plain message."""
        message = f"{problem.replace('_', ' ')} {token!r} at column {column}"
        return cls(
            message + (f" ({hint})" if hint else ""),
            problem=problem,
            token=token,
            column=column,
            hint=hint,
        )


def tokenize(text: str, lexicon: Lexicon) -> list[Token]:
    """The tokens of ``text`` in ``lexicon``, ending with an ``eof`` token.

    Raises:
        TokenError: the first text that is not a token (see the module docstring).
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
            continue
        char = text[i]
        if char in "\"'":
            i = _string(text, i, lexicon, tokens)
        elif (number := _number_at(text, i, lexicon, tokens)) is not None:
            i = _number(text, number, lexicon, tokens)
        elif (name := lexicon.name.match(text, i)) is not None:
            end = name.end()
            if end < n and text[end] == "." and "." not in lexicon.punctuation:
                raise TokenError.at("incomplete_name", text[i : end + 1], i + 1)
            tokens.append(Token("ident", name.group(), i + 1))
            i = end
        elif char in lexicon.operator_chars:
            end = i
            while end < n and text[end] in lexicon.operator_chars:
                end += 1
            op = text[i:end]
            if op not in lexicon.operators:
                raise TokenError.at("unknown_operator", op, i + 1, lexicon.hints.get(op, ""))
            tokens.append(Token("op", op, i + 1))
            i = end
        elif char in lexicon.operators:
            tokens.append(Token("op", char, i + 1))
            i += 1
        elif char in lexicon.punctuation:
            tokens.append(Token("punct", char, i + 1))
            i += 1
        else:
            raise TokenError.at("unexpected_character", char, i + 1, lexicon.hints.get(char, ""))
    tokens.append(Token("eof", lexicon.end_text, n + 1))
    return tokens


def _number_at(text: str, i: int, lexicon: Lexicon, tokens: list[Token]) -> re.Match[str] | None:
    char = text[i]
    if char == "-":
        if not lexicon.signed_numbers or (tokens and tokens[-1].kind not in ("op", "punct")):
            return None
    elif not (char.isdigit() or (char == "." and text[i + 1 : i + 2].isdigit())):
        return None
    return _NUMBER.match(text, i)


def _number(text: str, match: re.Match[str], lexicon: Lexicon, tokens: list[Token]) -> int:
    end = match.end()
    if not lexicon.numbers_end_at_letters and end < len(text):
        after = text[end]
        if after.isalpha() or after == "_" or (after == "." and "." not in lexicon.punctuation):
            bad = _WORD.match(text, match.start())
            assert bad is not None  # the number itself matches
            raise TokenError.at("malformed_number", bad.group(), match.start() + 1)
    literal = match.group()
    if len(literal) > _MAX_NUMBER_CHARS:  # int() refuses more digits; no real value has them
        raise TokenError.at("malformed_number", literal[:_QUOTED_CHARS], match.start() + 1)
    value = int(literal) if _INTEGER.fullmatch(literal) else float(literal)
    tokens.append(Token("number", literal, match.start() + 1, value))
    return end


def _string(text: str, start: int, lexicon: Lexicon, tokens: list[Token]) -> int:
    quote, i = text[start], start + 1
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == quote:
            content = "".join(out)
            tokens.append(Token("string", content, start + 1, content))
            return i + 1
        if char == "\\":
            escaped = text[i + 1 : i + 2]
            if escaped in _ESCAPES:
                out.append(_ESCAPES[escaped])
                i += 2
                continue
            if lexicon.strict_escapes:
                raise TokenError.at("unknown_escape", "\\" + escaped, i + 1)
        out.append(char)
        i += 1
    raise TokenError.at("unterminated_string", text[start : start + _QUOTED_CHARS], start + 1)
