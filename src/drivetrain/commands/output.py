"""How commands print: tables with every number formatted alike, and one JSON document for
``--json``.

Tables: integers get thousands separators, other numbers six significant digits (and
thousands separators), both right-aligned; times are ISO 8601 UTC with a ``Z``; VSS paths
and other identifiers are never wrapped (a path broken mid-word cannot be copied back).
Every cell is a Rich ``Text``, so text that came from data (a tenant name, a vehicle's
detail) is never read as Rich markup, and its terminal control characters (ESC sequences
that recolour, retitle or clear the terminal, carriage returns, bidirectional overrides) are
shown escaped (``\x1b``) by :func:`printable`, never sent to the terminal.

Arrow tables (lake results) may hold nanosecond timestamps, which pyarrow turns into
``datetime`` only with pandas installed; they are converted here from their integer value
instead, so nothing depends on pandas.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pyarrow as pa

#: ``--json`` of every command that lists or reads.
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")
]

ColumnKind = Literal["text", "number", "id", "time"]

_NS_PER_S = 1_000_000_000
#: Column names of identifiers that must never wrap (VSS paths, VINs, pseudonyms, ids).
_ID_NAMES = frozenset({"path", "vin", "vehicle", "batch_id", "key id", "id", "VIN"})


@dataclass(frozen=True)
class Column:
    """One table column: its header and how its cells are laid out.

    ``number`` cells are right-aligned, ``id`` and ``time`` cells never wrap, ``text`` cells
    wrap at spaces.
    """

    name: str
    kind: ColumnKind = "text"


def stdout_console() -> Console:
    """Standard output, sized when the command runs (not at import)."""
    return Console(highlight=False)


def stderr_console() -> Console:
    """Standard error, for notes and hints beside the result."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


# --- cells ------------------------------------------------------------------------------------
# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# bidirectional overrides and isolates that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\n\t]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {9: "\\t", 10: "\\n"}.get(code) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every terminal control character shown escaped (``\\x1b``), so text from
    data cannot drive the terminal. Newlines and tabs are escaped too unless
    ``keep_newlines`` (a multi-line message of our own)."""
    text = _CONTROL.sub(_escaped, text)
    return text if keep_newlines else _LINE_BREAKS.sub(_escaped, text)


def format_number(value: float) -> str:
    """``value`` as every table shows numbers: integers with thousands separators
    (``12,345``), other numbers to six significant digits (``1,234.57``, ``0.001234``),
    very large or small ones in scientific notation."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= 15 or magnitude < -4:
        return f"{value:.6g}"
    decimals = max(0, 5 - magnitude)
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def iso_from_ns(ns: int) -> str:
    """Nanoseconds since the Unix epoch as ISO 8601 UTC, with the fraction only as long as
    it needs to be (none, milli-, micro- or nanoseconds): ``2024-05-01T08:00:00.250Z``."""
    seconds, fraction = divmod(ns, _NS_PER_S)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if not fraction:
        return f"{base}Z"
    digits = f"{fraction:09d}"
    while digits.endswith("000"):
        digits = digits[:-3]
    return f"{base}.{digits}Z"


def safe(value: object) -> str:
    """``value`` as text to place inside a Rich markup string: its control characters escaped
    (:func:`printable`) and its square brackets kept from being read as markup."""
    from rich.markup import escape

    return escape(format_cell(value))


def cell(value: object) -> Text:
    """``value`` as a Rich table cell of plain text (never markup, control characters
    escaped), for tables built with ``Table.add_row``."""
    return Text(format_cell(value))


def format_cell(value: object) -> str:
    """One table cell's text: numbers as :func:`format_number`, times as ISO 8601 UTC,
    None as empty, text with its control characters escaped (:func:`printable`)."""
    return printable(_cell_text(value))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return format_number(value)
    if isinstance(value, Decimal):
        return format_number(float(value))
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{format_number(value.total_seconds())} s"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


# --- tables -----------------------------------------------------------------------------------
def build_table(
    title: str | None, columns: Sequence[Column], rows: Iterable[Sequence[object]]
) -> Table:
    """A Rich table of ``rows`` (raw values, formatted by :func:`format_cell`)."""
    materialised = [[format_cell(v) for v in row] for row in rows]
    view = Table(title=Text(printable(title)) if title is not None else None,
                 title_justify="left")
    for i, column in enumerate(columns):
        longest = max((len(row[i]) for row in materialised), default=0)
        keep_whole = column.kind in ("id", "time", "number")
        view.add_column(
            column.name,
            justify="right" if column.kind == "number" else "left",
            no_wrap=keep_whole,
            # Identifiers keep their full width; the text columns give way instead.
            min_width=max(longest, len(column.name)) if keep_whole else None,
            overflow="fold",
        )
    for row in materialised:
        view.add_row(*(Text(cell) for cell in row))
    return view


def print_table(
    title: str | None,
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    console: Console | None = None,
) -> None:
    """Print ``rows`` as a table on ``console`` (stdout by default).

    On a terminal the table fits its width; into a pipe or file it takes the width it needs,
    so nothing is cut.
    """
    console = console or stdout_console()
    print_renderable(build_table(title, columns, rows), console)


def print_renderable(renderable: Table, console: Console) -> None:
    """Print a table, at its natural width when the output is not a terminal."""
    if console.is_terminal:
        console.print(renderable)
        return
    wide = Console(file=console.file, width=100_000, highlight=False, color_system=None)
    title = renderable.title if isinstance(renderable.title, str) else (
        renderable.title.plain if isinstance(renderable.title, Text) else "")
    # A title is laid out within the table's width: widen the table so a long one (a file
    # path) stays on one line.
    renderable.min_width = max(renderable.min_width or 0, len(title))
    width = max(wide.measure(renderable).maximum, len(title), 20)
    Console(file=console.file, width=width, highlight=False, color_system=None).print(renderable)


# --- Arrow tables -----------------------------------------------------------------------------
def arrow_records(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts of Python values; timestamps become ISO 8601 UTC text
    and durations seconds (read from their integer value, so no pandas is needed)."""
    columns = {name: _python_values(table.column(name)) for name in table.column_names}
    return [dict(zip(columns, values)) for values in zip(*columns.values())] \
        if columns else []


def _python_values(column: pa.ChunkedArray) -> list[Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        scale = {"s": _NS_PER_S, "ms": 1_000_000, "us": 1_000, "ns": 1}[kind.unit]
        raw = pc.cast(column, pa.int64()).to_pylist()
        if pa.types.is_timestamp(kind):
            return [None if v is None else iso_from_ns(v * scale) for v in raw]
        return [None if v is None else v * scale / _NS_PER_S for v in raw]
    return column.to_pylist()  # type: ignore[no-any-return]


def arrow_columns(table: pa.Table) -> list[Column]:
    """Columns for a table of ``table``: identifiers by name, numbers and times by type."""
    import pyarrow as pa

    out = []
    for schema_field in table.schema:
        kind = schema_field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if schema_field.name in _ID_NAMES:
            out.append(Column(schema_field.name, "id"))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or \
                pa.types.is_decimal(kind):
            out.append(Column(schema_field.name, "number"))
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            out.append(Column(schema_field.name, "time"))
        else:
            out.append(Column(schema_field.name))
    return out


# --- JSON -------------------------------------------------------------------------------------
def to_json_value(value: object) -> Any:
    """``value`` made JSON-safe: times as ISO 8601, non-finite floats as null, Decimals as
    floats, bytes as hex, dataclass-like objects through their ``to_dict``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return to_json_value(float(value))
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime | date | bytes):
        return format_cell(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_json_value(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return to_json_value(value.value)
    return str(value)


def emit_json(document: object) -> None:
    """Write ``document`` as one JSON document on stdout (never wrapped, never coloured)."""
    sys.stdout.write(json.dumps(to_json_value(document), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
