"""DBC text as tokens and statements: what the repairs of ``dbc_text`` work on.

The token classes are cantools' (its DBC tokenizer), plus a number written with a leading dot
and a name that starts with a digit, so a file cantools would refuse still tokenizes. A
statement opens with a keyword at the start of a line and, for the statements that end with
``;``, closes there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

#: Largest 11-bit (standard) and 29-bit (extended) CAN identifiers.
MAX_STANDARD_ID = 0x7FF
MAX_EXTENDED_ID = 0x1FFF_FFFF
#: DBC files mark extended frame ids by setting bit 31 of the ``BO_`` id.
DBC_EXTENDED_FLAG = 0x8000_0000

KEYWORDS = frozenset(
    [
        "BA_",
        "BA_DEF_",
        "BA_DEF_DEF_",
        "BA_DEF_DEF_REL_",
        "BA_DEF_REL_",
        "BA_DEF_SGTYPE_",
        "BA_REL_",
        "BA_SGTYPE_",
        "BO_",
        "BO_TX_BU_",
        "BS_",
        "BU_",
        "BU_BO_REL_",
        "BU_EV_REL_",
        "BU_SG_REL_",
        "CAT_",
        "CAT_DEF_",
        "CM_",
        "ENVVAR_DATA_",
        "EV_",
        "EV_DATA_",
        "FILTER",
        "NS_",
        "NS_DESC_",
        "SG_",
        "SG_MUL_VAL_",
        "SGTYPE_",
        "SGTYPE_VAL_",
        "SIG_GROUP_",
        "SIG_TYPE_REF_",
        "SIG_VALTYPE_",
        "SIGTYPE_VALTYPE_",
        "VAL_",
        "VAL_TABLE_",
        "VERSION",
    ]
)
#: Keywords whose next token, when it is a number, is a message's frame id.
FRAME_ID_KEYWORDS = frozenset(
    {"BO_", "SG_", "VAL_", "SIG_VALTYPE_", "SG_MUL_VAL_", "BO_TX_BU_", "SIG_GROUP_"}
)
#: Statements that end with ``;`` (the others end where the next statement starts).
TERMINATED = frozenset(
    [
        "CM_",
        "BA_",
        "BA_DEF_",
        "BA_DEF_DEF_",
        "BA_REL_",
        "BA_DEF_REL_",
        "BA_DEF_DEF_REL_",
        "VAL_",
        "VAL_TABLE_",
        "SIG_VALTYPE_",
        "SG_MUL_VAL_",
        "BO_TX_BU_",
        "SIG_GROUP_",
        "EV_",
        "ENVVAR_DATA_",
    ]
)
#: Vector tools' pseudo-message for signals that belong to no message; cantools skips it.
VECTOR_INDEPENDENT_SIGNALS = "VECTOR__INDEPENDENT_SIG_MSG"

# The same token classes as cantools' DBC tokenizer, plus a number with a leading dot, and a
# run of word characters starting with a digit that is not a number as a whole (a name).
_NUMBER = r"[-+]?\d+\.?\d*(?:[eE][+-]?\d+)?"
_TOKEN_RE = re.compile(
    rf"""(?P<SKIP>[ \r\n\t]+|//[^\n]*\n)
      | (?P<STRING>"(?:\\"|[^"])*?")
      | (?P<DIGITWORD>(?!{_NUMBER}(?![A-Za-z0-9_]))\d[A-Za-z0-9_]*)
      | (?P<NUMBER>{_NUMBER}|[-+]?\.\d+(?:[eE][+-]?\d+)?)
      | (?P<WORD>[A-Za-z0-9_]+)
      | (?P<PUNCT>[()\[\],|@;:+-])
      | (?P<MISMATCH>.)""",
    re.VERBOSE | re.DOTALL,
)


class Token(NamedTuple):
    """One DBC token: its kind, its text and where it starts (character offset)."""

    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def tokenize(text: str) -> list[Token]:
    """DBC tokens of ``text`` (whitespace and ``//`` comments left out).

    A run of letters, digits and underscores that starts with a digit but is not a number as a
    whole (``64_BIT_LE``) is one ``WORD``, where cantools would split it into two tokens.
    Characters that cannot start any token come back as ``MISMATCH`` tokens.
    """
    tokens: list[Token] = []
    for mo in _TOKEN_RE.finditer(text):
        kind = mo.lastgroup or "MISMATCH"
        if kind == "SKIP":
            continue
        value = mo.group()
        if kind == "DIGITWORD":
            kind = "WORD"
        elif kind == "WORD" and value in KEYWORDS or kind == "PUNCT":
            kind = value
        tokens.append(Token(kind, value, mo.start()))
    return tokens


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of character ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def starts_line(text: str, tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i]`` is the first token on its line."""
    before = tokens[i - 1].end if i else 0
    return i == 0 or "\n" in text[before : tokens[i].start]


@dataclass(frozen=True)
class Statement:
    """Tokens ``first..last`` (inclusive) of one statement; ``last`` is its ``;`` if it has one."""

    keyword: str
    first: int
    last: int


def without_symbol_list(tokens: list[Token]) -> list[Token]:
    """``tokens`` less the keyword list of ``NS_ :`` sections (keywords that start no statement)."""
    kept: list[Token] = []
    in_list = False
    for i, tok in enumerate(tokens):
        if tok.kind == "NS_":
            in_list = True
        elif (
            in_list
            and tok.kind == "BS_"
            and i + 1 < len(tokens)
            and tokens[i + 1].kind == ":"
            or in_list
            and tok.kind != ":"
            and tok.kind not in KEYWORDS
            and tok.kind != "WORD"
        ):
            in_list = False
        if not in_list:
            kept.append(tok)
    return kept


def statements(text: str, tokens: list[Token]) -> list[Statement]:
    """Split ``tokens`` into statements: each opens with a keyword at the start of a line."""
    starts = [
        i for i, t in enumerate(tokens) if t.kind in KEYWORDS and starts_line(text, tokens, i)
    ]
    out: list[Statement] = []
    for n, first in enumerate(starts):
        limit = starts[n + 1] - 1 if n + 1 < len(starts) else len(tokens) - 1
        last = limit
        if tokens[first].kind in TERMINATED:
            last = next((i for i in range(first, limit + 1) if tokens[i].kind == ";"), limit)
        out.append(Statement(tokens[first].kind, first, last))
    return out
