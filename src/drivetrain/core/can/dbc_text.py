"""Pure text repairs that let cantools read real-world DBC files.

Production DBC files (opendbc in particular) use a few constructs that cantools' parser refuses.
Each repair here keeps the meaning of the file, keeps its line structure (so parse errors still
point at the right line) and reports what it did as a human-readable note:

* ``CM_ "IMPORT other.dbc";`` includes (an opendbc generator convention) are resolved by
  :func:`split_imports`; the caller inlines the named files ahead of the including file, as
  opendbc's own generator does.
* Frame ids above 0x7FF written without the extended flag (bit 31) are marked extended, in the
  ``BO_`` line and in every statement that refers to the message.
* Names that start with a digit (``0_COUNTER``) are swapped for placeholders that cantools'
  tokenizer accepts; :class:`RepairedText` carries the map so the loader can restore them.
* Numbers written with a leading dot (``.25``) get their zero.
* Comment statements without a target cantools understands (``CM_ 145 "..."``) are dropped,
  and a comment missing its closing ``;`` is closed.
* ``VAL_``/``SIG_VALTYPE_`` entries for signals that their message does not have are dropped.

No function here touches the disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from drivetrain.core.errors import DbcFormatError

#: Largest 11-bit (standard) and 29-bit (extended) CAN identifiers.
MAX_STANDARD_ID = 0x7FF
MAX_EXTENDED_ID = 0x1FFF_FFFF
#: DBC files mark extended frame ids by setting bit 31 of the ``BO_`` id.
DBC_EXTENDED_FLAG = 0x8000_0000

_KEYWORDS = frozenset(
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
_FRAME_ID_KEYWORDS = frozenset(
    {"BO_", "SG_", "VAL_", "SIG_VALTYPE_", "SG_MUL_VAL_", "BO_TX_BU_", "SIG_GROUP_"}
)
#: Statements that end with ``;`` (the others end where the next statement starts).
_TERMINATED = frozenset(
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
_IMPORT_RE = re.compile(r'^[ \t]*CM_[ \t]+"IMPORT[ \t]+([^"\s]+)[ \t]*"[ \t]*;?', re.MULTILINE)


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
        elif kind == "WORD" and value in _KEYWORDS or kind == "PUNCT":
            kind = value
        tokens.append(Token(kind, value, mo.start()))
    return tokens


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of character ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1


def _blank(text: str) -> str:
    """Whitespace that keeps the line count of ``text``."""
    return "\n" * text.count("\n") or " "


def starts_line(text: str, tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i]`` is the first token on its line."""
    before = tokens[i - 1].end if i else 0
    return i == 0 or "\n" in text[before : tokens[i].start]


@dataclass(frozen=True)
class ImportSplit:
    """A DBC file's text with its IMPORT comments blanked out, and the files they named."""

    text: str
    imports: tuple[tuple[str, int], ...]  # (file name as written, line)


def split_imports(text: str) -> ImportSplit:
    """Find ``CM_ "IMPORT name";`` statements, blank them (keeping lines), list the names."""
    imports: list[tuple[str, int]] = []
    edits: list[tuple[int, int, str]] = []
    for mo in _IMPORT_RE.finditer(text):
        imports.append((mo.group(1), line_of(text, mo.start())))
        edits.append((mo.start(), mo.end(), " "))
    return ImportSplit(_apply(text, edits), tuple(imports))


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits):
        if start < pos:  # inside a range already replaced (a dropped statement)
            continue
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class RepairedText:
    """DBC text cantools can parse, what was changed, and the names to restore after loading."""

    text: str
    notes: tuple[str, ...]
    restored_names: dict[str, str] = field(default_factory=dict)  # placeholder -> original


class LineMap:
    """Maps a line of the combined text back to ``file:line`` of the file it came from."""

    def __init__(self, segments: list[tuple[int, str]]) -> None:
        # segments: (first combined line, file name), in order of the combined text.
        self._segments = segments

    def __call__(self, line: int) -> str:
        name, first = "<text>", 1
        for seg_first, seg_name in self._segments:
            if seg_first > line:
                break
            name, first = seg_name, seg_first
        return f"{name}:{line - first + 1}"


@dataclass(frozen=True)
class _Statement:
    """Tokens ``first..last`` (inclusive) of one statement; ``last`` is its ``;`` if it has one."""

    keyword: str
    first: int
    last: int


@dataclass(frozen=True)
class _Message:
    frame_id: int
    name: str
    statements: tuple[int, ...]  # indices of its BO_ and SG_ statements
    signals: frozenset[str]


@dataclass
class _Repair:
    text: str
    where: LineMap
    tokens: list[Token]
    statements: list[_Statement]
    edits: list[tuple[int, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)  # statement indices

    def at(self, tok: Token) -> str:
        return self.where(line_of(self.text, tok.start))

    def drop(self, index: int) -> None:
        if index in self.dropped:
            return
        self.dropped.add(index)
        st = self.statements[index]
        start, end = self.tokens[st.first].start, self.tokens[st.last].end
        self.edits.append((start, end, _blank(self.text[start:end])))

    def frame_id_ref(self, index: int) -> Token | None:
        """The number token naming a frame id in statement ``index``, if it has one."""
        st = self.statements[index]
        for i in range(st.first + 1, st.last + 1):
            if self.tokens[i].kind == "NUMBER" and self.tokens[i - 1].kind in _FRAME_ID_KEYWORDS:
                return self.tokens[i]
        return None


def repair(text: str, where: LineMap | None = None) -> RepairedText:
    """Repair a complete (imports already inlined) DBC text for cantools; see module docstring.

    The result has the same number of lines as ``text``.

    Raises:
        DbcFormatError: a frame id that is not an integer, or a character no DBC token starts.
    """
    tokens = _without_symbol_list(tokenize(text))
    rep = _Repair(text, where or LineMap([(1, "<text>")]), tokens, _statements(text, tokens))
    for tok in tokens:
        if tok.kind == "MISMATCH":
            raise DbcFormatError(f"{rep.at(tok)}: unexpected character {tok.text!r} in DBC text")
    messages = _messages(rep)
    _drop_impossible_ids(rep, messages)
    _drop_malformed_comments(rep)
    _drop_unknown_signal_entries(rep, messages)
    _mark_extended_ids(rep, messages)
    _close_statements(rep)
    _fix_leading_dot_numbers(rep)
    restored = _replace_digit_names(rep)
    return RepairedText(_apply(text, rep.edits), tuple(rep.notes), restored)


def _without_symbol_list(tokens: list[Token]) -> list[Token]:
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
            and tok.kind not in _KEYWORDS
            and tok.kind != "WORD"
        ):
            in_list = False
        if not in_list:
            kept.append(tok)
    return kept


def _statements(text: str, tokens: list[Token]) -> list[_Statement]:
    """Split ``tokens`` into statements: each opens with a keyword at the start of a line."""
    starts = [
        i for i, t in enumerate(tokens) if t.kind in _KEYWORDS and starts_line(text, tokens, i)
    ]
    out: list[_Statement] = []
    for n, first in enumerate(starts):
        limit = starts[n + 1] - 1 if n + 1 < len(starts) else len(tokens) - 1
        last = limit
        if tokens[first].kind in _TERMINATED:
            last = next((i for i in range(first, limit + 1) if tokens[i].kind == ";"), limit)
        out.append(_Statement(tokens[first].kind, first, last))
    return out


def _messages(rep: _Repair) -> list[_Message]:
    """The ``BO_`` blocks of the text, with the names of their signals."""
    tokens = rep.tokens
    out: list[_Message] = []
    current: tuple[int, str, list[int], set[str]] | None = None
    for index, st in enumerate(rep.statements):
        kinds = [t.kind for t in tokens[st.first + 1 : st.first + 4]]
        if st.keyword == "SG_" and current is not None and kinds[:1] == ["WORD"]:
            current[2].append(index)
            current[3].add(tokens[st.first + 1].text)
            continue
        if current is not None:
            out.append(_Message(current[0], current[1], tuple(current[2]), frozenset(current[3])))
            current = None
        if st.keyword == "BO_" and kinds == ["NUMBER", "WORD", ":"]:
            frame_id = _frame_id(rep, tokens[st.first + 1])
            current = (frame_id, tokens[st.first + 2].text, [index], set())
    if current is not None:
        out.append(_Message(current[0], current[1], tuple(current[2]), frozenset(current[3])))
    return out


def _frame_id(rep: _Repair, tok: Token) -> int:
    try:
        value = int(tok.text)
    except ValueError:
        raise DbcFormatError(f"{rep.at(tok)}: frame id {tok.text!r} is not an integer") from None
    if value < 0:
        raise DbcFormatError(f"{rep.at(tok)}: frame id {tok.text} is negative")
    return value


def _referring(rep: _Repair, frame_ids: set[int]) -> list[int]:
    out = []
    for index in range(len(rep.statements)):
        ref = rep.frame_id_ref(index)
        if ref is not None and ref.text.isdigit() and int(ref.text) in frame_ids:
            out.append(index)
    return out


def _drop_impossible_ids(rep: _Repair, messages: list[_Message]) -> None:
    """Drop messages whose id needs more than 29 bits: no CAN frame can carry them."""
    impossible = [
        m
        for m in messages
        if m.frame_id & ~DBC_EXTENDED_FLAG > MAX_EXTENDED_ID
        and m.name != VECTOR_INDEPENDENT_SIGNALS
    ]
    if not impossible:
        return
    for m in impossible:
        for index in m.statements:
            rep.drop(index)
    for index in _referring(rep, {m.frame_id for m in impossible}):
        rep.drop(index)
    rep.notes.append(
        f"dropped {len(impossible)} message(s) whose frame id needs more than 29 bits, which no CAN "
        "frame can carry: " + ", ".join(f"{m.name} ({m.frame_id:#x})" for m in impossible)
    )


def _drop_malformed_comments(rep: _Repair) -> None:
    tokens = rep.tokens
    dropped: list[str] = []
    for index, st in enumerate(rep.statements):
        if st.keyword != "CM_" or index in rep.dropped:
            continue
        kinds = [t.kind for t in tokens[st.first + 1 : st.first + 5]]
        if (
            kinds[:1] == ["STRING"]
            or kinds[:3]
            in (["BU_", "WORD", "STRING"], ["EV_", "WORD", "STRING"], ["BO_", "NUMBER", "STRING"])
            or kinds[:4] == ["SG_", "NUMBER", "WORD", "STRING"]
        ):
            continue
        rep.drop(index)
        dropped.append(rep.at(tokens[st.first]))
    if dropped:
        rep.notes.append(
            f"dropped {len(dropped)} comment(s) without a valid target (BU_/BO_/SG_/EV_): "
            + ", ".join(dropped)
        )


def _drop_unknown_signal_entries(rep: _Repair, messages: list[_Message]) -> None:
    tokens = rep.tokens
    signals: dict[int, frozenset[str]] = {}
    for m in messages:
        signals[m.frame_id] = signals.get(m.frame_id, frozenset()) | m.signals
    dropped: list[str] = []
    for index, st in enumerate(rep.statements):
        if st.keyword not in ("VAL_", "SIG_VALTYPE_") or index in rep.dropped:
            continue
        ref = tokens[st.first + 1] if st.first + 2 <= st.last else None
        if ref is None or ref.kind != "NUMBER":
            continue  # VAL_ of an environment variable
        name = tokens[st.first + 2].text
        if name not in signals.get(_frame_id(rep, ref), frozenset()):
            rep.drop(index)
            dropped.append(f"{st.keyword} {ref.text} {name} ({rep.at(tokens[st.first])})")
    if dropped:
        rep.notes.append(
            f"dropped {len(dropped)} value table/type entries for signals their message lacks: "
            + "; ".join(dropped)
        )


def _mark_extended_ids(rep: _Repair, messages: list[_Message]) -> None:
    unflagged = sorted(
        {m.frame_id for m in messages if MAX_STANDARD_ID < m.frame_id <= MAX_EXTENDED_ID}
    )
    if not unflagged:
        return
    for index in _referring(rep, set(unflagged)):
        if index not in rep.dropped:
            ref = rep.frame_id_ref(index)
            assert ref is not None
            rep.edits.append((ref.start, ref.end, str(int(ref.text) | DBC_EXTENDED_FLAG)))
    shown = ", ".join(f"0x{fid:X}" for fid in unflagged[:12])
    more = f" and {len(unflagged) - 12} more" if len(unflagged) > 12 else ""
    rep.notes.append(
        f"marked {len(unflagged)} frame id(s) > 0x7FF written without the extended flag "
        f"(bit 31) as extended: {shown}{more}"
    )


def _close_statements(rep: _Repair) -> None:
    closed: list[str] = []
    for index, st in enumerate(rep.statements):
        if (
            st.keyword in _TERMINATED
            and index not in rep.dropped
            and rep.tokens[st.last].kind != ";"
        ):
            end = rep.tokens[st.last].end
            rep.edits.append((end, end, ";"))
            closed.append(rep.at(rep.tokens[st.first]))
    if closed:
        rep.notes.append(
            f"closed {len(closed)} statement(s) missing their ';': " + ", ".join(closed)
        )


def _fix_leading_dot_numbers(rep: _Repair) -> None:
    fixed: list[str] = []
    for tok in rep.tokens:
        if tok.kind == "NUMBER" and tok.text.lstrip("+-").startswith("."):
            sign = tok.text[0] if tok.text[0] in "+-" else ""
            rep.edits.append((tok.start, tok.end, f"{sign}0{tok.text[len(sign) :]}"))
            fixed.append(f"{tok.text} ({rep.at(tok)})")
    if fixed:
        rep.notes.append(
            f"read {len(fixed)} number(s) written with a leading dot: " + ", ".join(fixed)
        )


def _replace_digit_names(rep: _Repair) -> dict[str, str]:
    words = {t.text for t in rep.tokens if t.kind == "WORD"}
    restored: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    for tok in rep.tokens:
        if tok.kind != "WORD" or not tok.text[0].isdigit():
            continue
        if tok.text not in placeholders:
            candidate = f"dtdigit_{tok.text}"
            while candidate in words:
                candidate = "_" + candidate
            placeholders[tok.text] = candidate
            restored[candidate] = tok.text
        rep.edits.append((tok.start, tok.end, placeholders[tok.text]))
    if placeholders:
        rep.notes.append(
            f"kept {len(placeholders)} name(s) that start with a digit: "
            + ", ".join(sorted(placeholders))
        )
    return restored
