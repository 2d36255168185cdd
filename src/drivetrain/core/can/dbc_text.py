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

The text is tokenized and split into statements by ``dbc_tokens``; each repair is a function
of ``dbc_repairs``. No function here touches the disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drivetrain.core.can.dbc_repairs import (
    RepairPass,
    close_statements,
    drop_impossible_ids,
    drop_malformed_comments,
    drop_unknown_signal_entries,
    find_messages,
    fix_leading_dot_numbers,
    mark_extended_ids,
    replace_digit_names,
)
from drivetrain.core.can.dbc_tokens import (
    line_of,
    statements,
    tokenize,
    without_symbol_list,
)
from drivetrain.core.errors import DbcFormatError

__all__ = ["ImportSplit", "LineMap", "RepairedText", "repair", "split_imports", "tokenize"]

_IMPORT_RE = re.compile(r'^[ \t]*CM_[ \t]+"IMPORT[ \t]+([^"\s]+)[ \t]*"[ \t]*;?', re.MULTILINE)


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
    return ImportSplit(apply_edits(text, edits), tuple(imports))


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
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


def repair(text: str, where: LineMap | None = None) -> RepairedText:
    """Repair a complete (imports already inlined) DBC text for cantools; see module docstring.

    The result has the same number of lines as ``text``.

    Raises:
        DbcFormatError: a frame id that is not an integer, or a character no DBC token starts.
    """
    tokens = without_symbol_list(tokenize(text))
    rep = RepairPass(text, where or LineMap([(1, "<text>")]), tokens, statements(text, tokens))
    for tok in tokens:
        if tok.kind == "MISMATCH":
            raise DbcFormatError(f"{rep.at(tok)}: unexpected character {tok.text!r} in DBC text")
    messages = find_messages(rep)
    drop_impossible_ids(rep, messages)
    drop_malformed_comments(rep)
    drop_unknown_signal_entries(rep, messages)
    mark_extended_ids(rep, messages)
    close_statements(rep)
    fix_leading_dot_numbers(rep)
    restored = replace_digit_names(rep)
    return RepairedText(apply_edits(text, rep.edits), tuple(rep.notes), restored)
