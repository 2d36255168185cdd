"""The repairs of DBC text, one function each, applied by ``dbc_text.repair``.

Each repair reads the tokens and statements of the text (``dbc_tokens``), records its edits
(character ranges and their replacements) and a human-readable note on a ``RepairPass``; the
edits keep the meaning of the file and its line structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from drivetrain.core.can.dbc_tokens import (
    DBC_EXTENDED_FLAG,
    FRAME_ID_KEYWORDS,
    MAX_EXTENDED_ID,
    MAX_STANDARD_ID,
    TERMINATED,
    VECTOR_INDEPENDENT_SIGNALS,
    Statement,
    Token,
    line_of,
)
from drivetrain.core.errors import DbcFormatError


class Where(Protocol):
    """Names ``file:line`` for a line of the combined text (``dbc_text.LineMap``)."""

    def __call__(self, line: int) -> str: ...


def blank_keeping_lines(text: str) -> str:
    """Whitespace that keeps the line count of ``text``."""
    return "\n" * text.count("\n") or " "


@dataclass(frozen=True)
class Message:
    """A ``BO_`` block: its frame id as written, name, statements and signal names."""

    frame_id: int
    name: str
    statements: tuple[int, ...]  # indices of its BO_ and SG_ statements
    signals: frozenset[str]


@dataclass
class RepairPass:
    """One repair of a text: its tokens and statements, and the edits and notes so far."""

    text: str
    where: Where
    tokens: list[Token]
    statements: list[Statement]
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
        self.edits.append((start, end, blank_keeping_lines(self.text[start:end])))

    def frame_id_ref(self, index: int) -> Token | None:
        """The number token naming a frame id in statement ``index``, if it has one."""
        st = self.statements[index]
        for i in range(st.first + 1, st.last + 1):
            if self.tokens[i].kind == "NUMBER" and self.tokens[i - 1].kind in FRAME_ID_KEYWORDS:
                return self.tokens[i]
        return None


def find_messages(rep: RepairPass) -> list[Message]:
    """The ``BO_`` blocks of the text, with the names of their signals."""
    tokens = rep.tokens
    out: list[Message] = []
    current: tuple[int, str, list[int], set[str]] | None = None
    for index, st in enumerate(rep.statements):
        kinds = [t.kind for t in tokens[st.first + 1 : st.first + 4]]
        if st.keyword == "SG_" and current is not None and kinds[:1] == ["WORD"]:
            current[2].append(index)
            current[3].add(tokens[st.first + 1].text)
            continue
        if current is not None:
            out.append(Message(current[0], current[1], tuple(current[2]), frozenset(current[3])))
            current = None
        if st.keyword == "BO_" and kinds == ["NUMBER", "WORD", ":"]:
            frame_id = _frame_id(rep, tokens[st.first + 1])
            current = (frame_id, tokens[st.first + 2].text, [index], set())
    if current is not None:
        out.append(Message(current[0], current[1], tuple(current[2]), frozenset(current[3])))
    return out


def _frame_id(rep: RepairPass, tok: Token) -> int:
    try:
        value = int(tok.text)
    except ValueError:
        raise DbcFormatError(f"{rep.at(tok)}: frame id {tok.text!r} is not an integer") from None
    if value < 0:
        raise DbcFormatError(f"{rep.at(tok)}: frame id {tok.text} is negative")
    return value


def _referring(rep: RepairPass, frame_ids: set[int]) -> list[int]:
    out = []
    for index in range(len(rep.statements)):
        ref = rep.frame_id_ref(index)
        if ref is not None and ref.text.isdigit() and int(ref.text) in frame_ids:
            out.append(index)
    return out


def drop_impossible_ids(rep: RepairPass, messages: list[Message]) -> None:
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


def drop_malformed_comments(rep: RepairPass) -> None:
    """Drop ``CM_`` statements without a target cantools understands (``CM_ 145 "..."``)."""
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


def drop_unknown_signal_entries(rep: RepairPass, messages: list[Message]) -> None:
    """Drop ``VAL_``/``SIG_VALTYPE_`` entries for signals their message does not have."""
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


def mark_extended_ids(rep: RepairPass, messages: list[Message]) -> None:
    """Set the extended flag on frame ids above 0x7FF written without it, in the ``BO_``
    line and in every statement that refers to the message."""
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


def close_statements(rep: RepairPass) -> None:
    """Close statements that must end with ``;`` and do not."""
    closed: list[str] = []
    for index, st in enumerate(rep.statements):
        if (
            st.keyword in TERMINATED
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


def fix_leading_dot_numbers(rep: RepairPass) -> None:
    """Give numbers written with a leading dot (``.25``) their zero."""
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


def replace_digit_names(rep: RepairPass) -> dict[str, str]:
    """Swap names that start with a digit for placeholders cantools accepts; returns
    placeholder -> original name."""
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
