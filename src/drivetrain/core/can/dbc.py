"""Loading DBC files into a cantools ``Database``, resolving what cantools alone refuses.

:func:`load_dbc` reads a DBC file, inlines its ``CM_ "IMPORT other.dbc";`` includes
(recursively, relative to the including file, each file once, cycles refused), applies the
meaning-preserving repairs of :mod:`drivetrain.core.can.dbc_text`, and hands the text to
cantools (non-strict, as opendbc's overlapping signals require). Everything it did is listed in
``LoadedDbc.notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cantools.database
from cantools.database.can import Database
from cantools.database.errors import Error as CantoolsError

from drivetrain.core.can.dbc_text import LineMap, repair, split_imports
from drivetrain.core.errors import DbcFormatError

_LINE_RE = re.compile(r"at line (\d+)")
_SYNTAX_RE = re.compile(r"Invalid syntax at line (\d+), column (\d+)")


@dataclass(frozen=True)
class LoadedDbc:
    """A loaded DBC: the cantools database, the file it came from, and what the loader did."""

    database: Database
    path: Path
    notes: tuple[str, ...]


def load_dbc(path: str | Path) -> LoadedDbc:
    """Load the DBC file at ``path`` (with its IMPORTs) into a cantools ``Database``.

    Raises:
        DbcFormatError: the file (or an imported one) is missing, unreadable, imports itself
            through a cycle, or cannot be parsed; the message names the file and, where
            possible, the line.
    """
    path = Path(path)
    notes: list[str] = []
    segments: list[tuple[int, str]] = []
    parts: list[str] = []
    _inline(path.resolve(), (), set(), parts, segments, notes, path.parent.resolve(), path.parent)
    combined = "".join(parts)
    if not _statements(combined):
        raise DbcFormatError(
            f"{path}: the DBC file is empty; expected DBC statements (VERSION, BU_, BO_ with "
            "its SG_ signals, ...)"
        )
    where = LineMap(segments)
    repaired = repair(combined, where)
    notes.extend(repaired.notes)
    try:
        database = cantools.database.load_string(
            combined_text := repaired.text, "dbc", strict=False
        )
    except (CantoolsError, ValueError, KeyError, IndexError) as e:
        raise DbcFormatError(_describe(e, path, where, combined_text)) from e
    assert isinstance(database, Database)
    if repaired.restored_names:
        _restore_names(database, repaired.restored_names)
    return LoadedDbc(database=database, path=path, notes=tuple(notes))


def dump_dbc(database: Database, path: str | Path) -> None:
    """Write ``database`` as one self-contained DBC file (IMPORTs inlined, repairs applied), as
    cantools formats it; :func:`load_dbc` reads it back to the same messages and signals.

    Raises:
        DbcFormatError: the file cannot be written.
    """
    path = Path(path)
    text = database.as_dbc_string()
    # cantools writes a name that starts with a digit with a leading "_"; put the real name
    # back (load_dbc reads such names, as real DBC files use them).
    for name in _digit_leading_names(database):
        text = re.sub(rf"(?<![\w])_{re.escape(name)}(?![\w])", name, text)
    text = _mark_unflagged_multiplexers(database, text)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise DbcFormatError(f"cannot write DBC file {path}: {e.strerror or e}") from e


_BO_RE = re.compile(r"^BO_ (\d+) ")
_SG_RE = re.compile(r"^ SG_ (\S+) :")


def _mark_unflagged_multiplexers(database: Database, text: str) -> str:
    """Write ``M`` on switch signals that a source file marked with a bare lower-case ``m``
    (vw_pq.dbc does): cantools reads the branches but not the switch flag, and would otherwise
    dump the branches without their switch."""
    switches: set[tuple[int, str]] = set()
    for message in database.messages:
        dbc_id = message.frame_id | (0x8000_0000 if message.is_extended_frame else 0)
        for signal in message.signals:
            if signal.multiplexer_signal is not None:
                switch = message.get_signal_by_name(signal.multiplexer_signal)
                if not switch.is_multiplexer:
                    switches.add((dbc_id, switch.name))
    if not switches:
        return text
    lines = text.split("\n")
    frame: int | None = None
    for i, line in enumerate(lines):
        if bo := _BO_RE.match(line):
            frame = int(bo.group(1))
        elif (sg := _SG_RE.match(line)) and (frame, sg.group(1)) in switches:
            lines[i] = line.replace(" :", " M :", 1)
    return "\n".join(lines)


def _digit_leading_names(database: Database) -> set[str]:
    names = {n.name for n in database.nodes}
    for message in database.messages:
        names.add(message.name)
        names.update(message.senders)
        names.update(s.name for s in message.signals)
    return {n for n in names if n[:1].isdigit()}


def _read(path: Path, importer: str | None) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        via = f" (imported by {importer})" if importer else ""
        raise DbcFormatError(f"cannot read DBC file {path}{via}: {e.strerror or e}") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # DBC editors traditionally write Windows-1252; latin-1 accepts any byte.
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _inline(
    path: Path,
    stack: tuple[Path, ...],
    done: set[Path],
    parts: list[str],
    segments: list[tuple[int, str]],
    notes: list[str],
    root: Path,
    shown_root: Path,
) -> None:
    """Append ``path``'s imports (depth first), then ``path`` itself, to ``parts``."""
    text = _read(path, stack[-1].name if stack else None)
    split = split_imports(text)
    for name, line in split.imports:
        target = (path.parent / name).resolve()
        if target in stack or target == path:
            chain = " -> ".join(p.name for p in (*stack, path, target))
            raise DbcFormatError(f"{path}:{line}: IMPORT cycle {chain}")
        if target in done:
            notes.append(f"skipped repeated IMPORT {name} in {_rel(path, root)} (already inlined)")
            continue
        if not target.is_file():
            raise DbcFormatError(
                f"{path}:{line}: IMPORT {name!r} names no file (looked for {target})"
            )
        _inline(target, (*stack, path), done, parts, segments, notes, root, shown_root)
        notes.append(f"inlined IMPORT {name} (from {_rel(path, root)})")
    done.add(path)
    first_line = sum(p.count("\n") for p in parts) + 1
    segments.append((first_line, str(shown_root / _rel(path, root))))
    parts.append(split.text if split.text.endswith("\n") else split.text + "\n")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _statements(text: str) -> bool:
    """True when ``text`` holds anything but blank lines and // comments."""
    return any(line.strip() and not line.strip().startswith("//") for line in text.splitlines())


def _describe(error: Exception, path: Path, where: LineMap, text: str) -> str:
    message = str(error).strip().removeprefix("DBC:").strip().strip('"')
    syntax = _SYNTAX_RE.search(message)
    if syntax:
        # textparser marks the spot with ">>!<<" inside its own quoting: say it in words.
        line_no, column = int(syntax.group(1)), int(syntax.group(2))
        lines = text.splitlines()
        source = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
        rest = source[column - 1:].strip()
        at = f" at {rest[:40]!r}" if rest else " at the end of the line"
        return (f"{where(line_no)}:{column}: not valid DBC syntax in {source.strip()[:80]!r}{at}; "
                "expected a well-formed DBC statement (VERSION, BU_, BO_, SG_, CM_, BA_, "
                "VAL_, ...)")
    mo = _LINE_RE.search(message)
    if mo:
        return f"{where(int(mo.group(1)))}: cannot parse DBC: {message}"
    return f"{path}: cannot load DBC: {message}"


def _restore_names(database: Database, restored: dict[str, str]) -> None:
    """Put back names that start with a digit, swapped for placeholders before parsing."""
    for message in database.messages:
        message.name = restored.get(message.name, message.name)
        message.senders[:] = [restored.get(s, s) for s in message.senders]
        for signal in message.signals:
            signal.name = restored.get(signal.name, signal.name)
            if signal.multiplexer_signal is not None:
                signal.multiplexer_signal = restored.get(
                    signal.multiplexer_signal, signal.multiplexer_signal
                )
            signal.receivers[:] = [restored.get(r, r) for r in signal.receivers]
    for node in database.nodes:
        node.name = restored.get(node.name, node.name)
    database.refresh()
