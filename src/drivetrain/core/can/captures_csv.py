"""The two CSV capture layouts, parsed with pyarrow and decoded with NumPy.

``comma-csv``: ``t_s,bus,address,data_hex`` — seconds, bus number, decimal frame id, payload
as one hex string (comma2k19 ``raw_can.csv``). The layout has no extended-id flag: ids above
0x7FF are read as extended.

``road-csv``: ``Time,Id,Byte1..Byte8[,Label]`` — seconds, hex frame id, one hex byte per
column (empty past the frame's length), optional label (ORNL ROAD). Ids written with more than
three hex digits, or above 0x7FF, are read as extended. Every frame is on bus 0.

The file is cut into blocks at line boundaries; each block is parsed by pyarrow (numbers
converted natively, payloads as strings) and the hex is decoded with lookup tables over whole
columns — no per-row Python. When a block holds a bad line, the physical line numbers of its
rows are recovered from the raw bytes so every report names the right line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from drivetrain.core.can.captures import (
    COMMA_CSV_HEADER,
    ROAD_CSV_HEADER,
    CaptureChunk,
    FrameLabels,
    MalformedLine,
)
from drivetrain.core.can.frames import CAN_FD_MAX_BYTES, CLASSIC_CAN_MAX_BYTES, FrameBatch
from drivetrain.core.errors import CaptureFormatError

#: Bytes of CSV text per frame, roughly (comma2k19 averages 35); sizes a block from frames.
_BYTES_PER_FRAME = 36
_MAX_FRAME_ID = 0x1FFFFFFF
_MAX_STANDARD_ID = 0x7FF

_NIBBLE = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i
_HEX_UPPER = np.frombuffer(b"0123456789ABCDEF", np.uint8)
# Two hex characters read as one little-endian uint16 -> their byte value, or 256 if not hex.
_PAIRS = np.arange(1 << 16)
_HEX_PAIR = np.where(
    (_NIBBLE[_PAIRS & 255] < 16) & (_NIBBLE[_PAIRS >> 8] < 16),
    _NIBBLE[_PAIRS & 255].astype(np.uint16) * 16 + _NIBBLE[_PAIRS >> 8],
    256,
).astype(np.uint16)
del _PAIRS
_BYTE_TO_HEX = np.stack([_HEX_UPPER[np.arange(256) >> 4], _HEX_UPPER[np.arange(256) & 15]], 1)


# --- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Block:
    """Whole lines of the file: ``text`` starts at physical line ``first_line``."""

    text: bytes | memoryview
    first_line: int
    end_pos: int


class _BlockIssues:
    """Malformed rows of one block: row index (into the parsed table) → reason."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}

    def flag(self, bad: npt.NDArray[np.bool_], reason: str | Callable[[int], str]) -> None:
        for row in np.flatnonzero(bad).tolist():
            if row not in self.rows:
                self.rows[row] = reason if isinstance(reason, str) else reason(row)


def _iter_blocks(f: BinaryIO, block_bytes: int) -> Iterator[tuple[memoryview, int]]:
    """Runs of whole lines of ``f`` (about ``block_bytes`` each) and the file offset after each."""
    carry = b""
    while True:
        buf = f.read(block_bytes)
        if not buf:
            if carry:
                yield memoryview(carry), f.tell()
            return
        if carry:
            buf = carry + buf
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        carry = buf[cut + 1 :]
        yield memoryview(buf)[: cut + 1], f.tell() - len(carry)


def _iter_parsed(
    f: BinaryIO, names: list[str], numeric: dict[str, pa.DataType], chunk_frames: int
) -> Iterator[tuple[pa.Table, _BlockLines, bool]]:
    """Parsed blocks with their line mapping; every physical line is either a table row or a
    skipped row, which keeps the line count without scanning for newlines."""
    line = 2
    for text, end_pos in _iter_blocks(f, chunk_frames * _BYTES_PER_FRAME):
        block = _Block(text, line, end_pos)
        table, wrong_count, native = _parse_block(block, names, numeric)
        yield table, _BlockLines(block, len(names), table.num_rows, bool(wrong_count)), native
        line += table.num_rows + len(wrong_count)


def _read_header(f: BinaryIO, path: Path, expected: tuple[tuple[str, ...], ...]) -> list[str]:
    raw = f.readline()
    columns = [c.strip() for c in raw.decode("utf-8", "replace").strip().split(",")]
    if tuple(columns) not in expected:
        wanted = " or ".join(repr(",".join(e)) for e in expected)
        raise CaptureFormatError(f"{path}:1: CSV header {raw[:80]!r} is not {wanted}")
    return columns


def _parse_block(
    block: _Block, names: list[str], numeric: dict[str, pa.DataType]
) -> tuple[pa.Table, list[str], bool]:
    """Parse a block; returns the table, the texts of rows with a wrong field count, and
    whether the numeric columns were converted natively (False: every column is a string)."""
    wrong_count: list[str] = []

    def skip_row(row: pacsv.InvalidRow) -> Literal["skip"]:
        wrong_count.append(row.text or "")
        return "skip"

    def read(types: dict[str, pa.DataType]) -> pa.Table:
        wrong_count.clear()
        return pacsv.read_csv(
            pa.py_buffer(block.text),
            read_options=pacsv.ReadOptions(column_names=names, block_size=4 << 20),
            parse_options=pacsv.ParseOptions(
                quote_char=False, ignore_empty_lines=False, invalid_row_handler=skip_row
            ),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )

    strings = {n: pa.string() for n in names}
    try:
        return read({**strings, **numeric}), wrong_count, True
    except pa.ArrowInvalid:
        # A value that is not a number somewhere in the block: reread as text, and find it.
        return read(strings), wrong_count, False


def _line_spans(text: bytes | memoryview) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end (exclusive, before the newline) byte offsets of every line of ``text``."""
    arr = np.frombuffer(text, np.uint8)
    newlines = np.flatnonzero(arr == 10)
    if len(arr) and arr[-1] == 10:
        starts = np.concatenate([[0], newlines[:-1] + 1])
        ends = newlines
    else:
        starts = np.concatenate([[0], newlines + 1])
        ends = np.concatenate([newlines, [len(arr)]])
    return starts.astype(np.int64), ends.astype(np.int64)


class _BlockLines:
    """Maps parsed rows of a block to physical lines and their text."""

    def __init__(self, block: _Block, n_fields: int, n_rows: int, any_skipped: bool) -> None:
        self.block = block
        self._spans: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        self.skipped: list[tuple[int, str]] = []  # (line, reason) of rows pyarrow skipped
        if not any_skipped:
            self.row_line = np.arange(n_rows, dtype=np.int64) + block.first_line
            return
        starts, ends = self.spans
        arr = np.frombuffer(block.text, np.uint8)
        commas = np.concatenate([[0], np.cumsum(arr == 44)])
        n_commas = commas[ends] - commas[starts]
        content = ends - starts - (arr[np.maximum(ends - 1, 0)] == 13)
        parsed = (n_commas == n_fields - 1) | (content <= 0)
        self.row_line = np.flatnonzero(parsed) + block.first_line
        if len(self.row_line) != n_rows:
            raise CaptureFormatError(
                f"lines {block.first_line}-{block.first_line + len(starts) - 1}: cannot align "
                f"{n_rows} parsed rows with {len(self.row_line)} well-formed lines "
                "(stray carriage return or quote?)"
            )
        for i in np.flatnonzero(~parsed).tolist():
            reason = f"expected {n_fields} comma-separated fields, found {n_commas[i] + 1}"
            self.skipped.append((block.first_line + i, reason))

    @property
    def spans(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        if self._spans is None:
            self._spans = _line_spans(self.block.text)
        return self._spans

    def text(self, line: int) -> str:
        starts, ends = self.spans
        i = line - self.block.first_line
        return bytes(self.block.text[starts[i] : ends[i]]).decode("utf-8", "replace")


def _as_array(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _to_numpy(
    column: pa.ChunkedArray | pa.Array, dtype: type[np.generic]
) -> npt.NDArray[Any]:
    arr = _as_array(column) if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _numbers(
    column: pa.ChunkedArray, kind: Literal["float", "uint"], native: bool
) -> tuple[npt.NDArray[np.float64] | npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Values of a numeric column and a mask of rows where it is present and well-formed."""
    arr = _as_array(column)
    if native:
        ok = np.ones(len(arr), np.bool_) if not arr.null_count else arr.is_valid().to_numpy(False)
        return _to_numpy(arr, np.float64 if kind == "float" else np.uint64), ok
    text = pc.utf8_trim_whitespace(arr)
    pattern = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$" if kind == "float" else r"^\d{1,19}$"
    ok_arr = pc.match_substring_regex(text, pattern)
    cleaned = pc.if_else(ok_arr, text, "0")
    values = pc.cast(cleaned, pa.float64() if kind == "float" else pa.uint64())
    return _to_numpy(values, np.float64 if kind == "float" else np.uint64), ok_arr.to_numpy(False)


def _fixed_width_chars(
    arr: pa.Array, width: int, align: Literal["left", "right"]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """ASCII strings padded with '0' to ``width`` chars, as an ``(n, width)`` byte matrix.

    Returns the matrix, each string's original byte length, and a mask of strings that fit
    (at most ``width`` bytes, ASCII only); those that do not are replaced by zeros.
    """
    n = len(arr)
    byte_len = _to_numpy(pc.binary_length(arr), np.int64)
    fits = byte_len <= width
    if not fits.all():
        arr = pc.if_else(pa.array(fits), arr, "")
    pad = pc.utf8_rpad if align == "left" else pc.utf8_lpad
    padded = pad(arr, width=width, padding="0")
    padded_len = _to_numpy(pc.binary_length(padded), np.int64)
    if (padded_len != width).any():  # non-ASCII characters pad by code point, not byte
        fits &= padded_len == width
        padded = pad(pc.if_else(pa.array(fits), arr, ""), width=width, padding="0")
    if n == 0 or width == 0:
        return np.zeros((n, width), np.uint8), byte_len, fits
    offsets = np.frombuffer(padded.buffers()[1], np.int32, count=n + 1, offset=4 * padded.offset)
    data = np.frombuffer(padded.buffers()[2], np.uint8)
    chars = data[offsets[0] : offsets[0] + n * width].reshape(n, width)
    return chars, byte_len, fits


def _decode_hex_payload(
    arr: pa.Array,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Payload hex strings → ``(data (n, width), length, ok)``; width is at least 8 bytes."""
    byte_len = _to_numpy(pc.binary_length(arr), np.int64)
    max_chars = int(byte_len.max()) if len(byte_len) else 0
    width_chars = min(max(max_chars + (max_chars & 1), 2 * CLASSIC_CAN_MAX_BYTES), 2 * CAN_FD_MAX_BYTES)
    chars, byte_len, fits = _fixed_width_chars(arr, width_chars, "left")
    pairs = _HEX_PAIR[np.ascontiguousarray(chars).view(np.uint16)]
    not_hex = pairs.max(axis=1) > 255
    ok = fits & ((byte_len & 1) == 0) & ~not_hex
    data = pairs.astype(np.uint8)  # a non-hex pair (256) wraps to 0; its row is refused
    length = np.where(ok, byte_len // 2, 0).astype(np.uint8)
    return data, length, ok


def _payload_reason(text: str) -> str:
    text = text.strip()
    if len(text) > 2 * CAN_FD_MAX_BYTES:
        return f"payload has {len(text)} hex digits, more than {2 * CAN_FD_MAX_BYTES}"
    if len(text) % 2:
        return f"payload {text!r} has an odd number of hex digits"
    return f"payload {text!r} is not hexadecimal"


def _finish_chunk(
    path: Path,
    lines: _BlockLines,
    issues: _BlockIssues,
    blank: npt.NDArray[np.bool_],
    build: Callable[[npt.NDArray[np.bool_] | None], tuple[FrameBatch, FrameLabels | None]],
    strict: bool,
) -> CaptureChunk:
    malformed = [MalformedLine.of(path, ln, lines.text(ln), why) for ln, why in lines.skipped]
    for row, why in issues.rows.items():
        line = int(lines.row_line[row])
        malformed.append(MalformedLine.of(path, line, lines.text(line), why))
    malformed.sort(key=lambda m: m.line)
    if strict and malformed:
        first = malformed[0]
        raise CaptureFormatError(f"{first.path}:{first.line}: {first.reason}: {first.excerpt!r}")
    keep: npt.NDArray[np.bool_] | None = None
    if issues.rows or blank.any():
        keep = ~blank
        keep[list(issues.rows)] = False
    frames, labels = build(keep)
    return CaptureChunk(frames, tuple(malformed), lines.block.end_pos, labels)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as e:
        raise CaptureFormatError(f"capture file '{path}' cannot be opened: {e}") from e


def iter_comma_csv(path: str | Path, *, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    """Stream a ``t_s,bus,address,data_hex`` capture (see ``captures.iter_capture``)."""
    path = Path(path)
    with _open(path) as f:
        names = _read_header(f, path, (COMMA_CSV_HEADER,))
        numeric = {"t_s": pa.float64(), "bus": pa.uint16(), "address": pa.uint32()}
        empty = True
        for table, lines, native in _iter_parsed(f, names, numeric, chunk_frames):
            yield _comma_chunk(path, table, lines, native, strict)
            empty = False
        if empty:
            yield CaptureChunk(FrameBatch.empty(), (), f.tell())


def _comma_chunk(
    path: Path, table: pa.Table, lines: _BlockLines, native: bool, strict: bool
) -> CaptureChunk:
    issues = _BlockIssues()
    t_s, t_ok = _numbers(table.column("t_s"), "float", native)
    bus, bus_ok = _numbers(table.column("bus"), "uint", native)
    address, addr_ok = _numbers(table.column("address"), "uint", native)
    payload = _as_array(table.column("data_hex"))
    data, length, data_ok = _decode_hex_payload(payload)
    blank = ~t_ok & ~bus_ok & ~addr_ok & (length == 0) & data_ok
    if not native:
        blank &= _to_numpy(pc.binary_length(_as_array(table.column("t_s"))), np.int64) == 0
    text = lines.text

    def quoted(column: str) -> Callable[[int], str]:
        return lambda row: f"{column} {text(int(lines.row_line[row])).split(',')[_col(column)]!r}"

    issues.flag(~blank & ~t_ok, lambda r: f"{quoted('t_s')(r)} is not a number of seconds")
    issues.flag(~blank & t_ok & ~np.isfinite(t_s), lambda r: f"t_s {t_s[r]} is not finite")
    issues.flag(~blank & (~bus_ok | (bus > 0xFFFF)), lambda r: f"{quoted('bus')(r)} is not a bus number 0..65535")
    issues.flag(
        ~blank & (~addr_ok | (address > _MAX_FRAME_ID)),
        lambda r: f"{quoted('address')(r)} is not a decimal frame id 0..{_MAX_FRAME_ID}",
    )
    issues.flag(~blank & ~data_ok, lambda r: _payload_reason(payload[r].as_py()))

    def build(keep: npt.NDArray[np.bool_] | None) -> tuple[FrameBatch, None]:
        frame_id = address.astype(np.uint32)
        batch = FrameBatch(
            timestamp_s=t_s.astype(np.float64, copy=False),
            frame_id=frame_id,
            is_extended=frame_id > _MAX_STANDARD_ID,
            bus=bus.astype(np.uint16),
            length=length,
            data=data,
        )
        return (batch if keep is None else batch.take(keep)), None

    return _finish_chunk(path, lines, issues, blank, build, strict)


def _col(name: str) -> int:
    return COMMA_CSV_HEADER.index(name)


def iter_road_csv(path: str | Path, *, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    """Stream a ``Time,Id,Byte1..Byte8[,Label]`` capture (see ``captures.iter_capture``)."""
    path = Path(path)
    with _open(path) as f:
        names = _read_header(f, path, (ROAD_CSV_HEADER, (*ROAD_CSV_HEADER, "Label")))
        empty = True
        for table, lines, native in _iter_parsed(f, names, {"Time": pa.float64()}, chunk_frames):
            yield _road_chunk(path, table, lines, native, strict)
            empty = False
        if empty:
            labels = FrameLabels(np.empty(0, np.int32), ()) if "Label" in names else None
            yield CaptureChunk(FrameBatch.empty(), (), f.tell(), labels)


def _road_chunk(
    path: Path, table: pa.Table, lines: _BlockLines, native: bool, strict: bool
) -> CaptureChunk:
    issues = _BlockIssues()
    n = table.num_rows
    t_s, t_ok = _numbers(table.column("Time"), "float", native)
    id_text = _as_array(table.column("Id"))
    id_chars, id_len, id_fits = _fixed_width_chars(pc.utf8_trim_whitespace(id_text), 8, "right")
    id_nibbles = _NIBBLE[id_chars]
    id_ok = id_fits & (id_len > 0) & (id_nibbles != 255).all(axis=1)
    id_nibbles[id_nibbles == 255] = 0
    frame_id = (id_nibbles.astype(np.uint64) << (4 * np.arange(7, -1, -1, dtype=np.uint64))).sum(1)

    data = np.zeros((n, CLASSIC_CAN_MAX_BYTES), np.uint8)
    present = np.zeros((n, CLASSIC_CAN_MAX_BYTES), np.bool_)
    bytes_ok = np.ones(n, np.bool_)
    for i in range(CLASSIC_CAN_MAX_BYTES):
        column = pc.utf8_trim_whitespace(_as_array(table.column(f"Byte{i + 1}")))
        chars, byte_len, fits = _fixed_width_chars(column, 2, "right")
        nib = _NIBBLE[chars]
        present[:, i] = byte_len > 0
        bytes_ok &= fits & (nib != 255).all(axis=1)
        nib[nib == 255] = 0
        data[:, i] = (nib[:, 0] << 4) | nib[:, 1]
    length = present.sum(axis=1).astype(np.uint8)
    contiguous = (present == (np.arange(CLASSIC_CAN_MAX_BYTES) < length[:, None])).all(axis=1)

    blank = ~t_ok & (id_len == 0) & (length == 0)
    if not native:
        blank &= _to_numpy(pc.binary_length(_as_array(table.column("Time"))), np.int64) == 0

    def fields(r: int) -> list[str]:
        return lines.text(int(lines.row_line[r])).split(",")

    issues.flag(~blank & ~t_ok, lambda r: f"Time {fields(r)[0]!r} is not a number of seconds")
    issues.flag(~blank & t_ok & ~np.isfinite(t_s), lambda r: f"Time {t_s[r]} is not finite")
    issues.flag(
        ~blank & (~id_ok | (frame_id > _MAX_FRAME_ID)),
        lambda r: f"Id {fields(r)[1]!r} is not a hex frame id 0..{_MAX_FRAME_ID:X}",
    )
    issues.flag(~blank & ~bytes_ok, lambda r: f"a data byte in {fields(r)[2:10]} is not 2 hex digits")
    issues.flag(~blank & ~contiguous, lambda r: f"data bytes {fields(r)[2:10]} have a gap")

    labels: FrameLabels | None = None
    if "Label" in table.column_names:
        encoded = pc.dictionary_encode(_as_array(table.column("Label")))
        labels = FrameLabels(
            _to_numpy(encoded.indices, np.int32), tuple(encoded.dictionary.to_pylist())
        )

    def build(keep: npt.NDArray[np.bool_] | None) -> tuple[FrameBatch, FrameLabels | None]:
        ids = frame_id.astype(np.uint32)
        batch = FrameBatch(
            timestamp_s=t_s.astype(np.float64, copy=False),
            frame_id=ids,
            is_extended=(id_len > 3) | (ids > _MAX_STANDARD_ID),
            bus=np.zeros(n, np.uint16),
            length=length,
            data=data,
        )
        if keep is None:
            return batch, labels
        return batch.take(keep), (labels.take(keep) if labels is not None else None)

    return _finish_chunk(path, lines, issues, blank, build, strict)


# --- writing -------------------------------------------------------------------------------------
_WRITE_SLICE = 1 << 20


def _strings(
    chars: npt.NDArray[np.uint8], lengths: npt.NDArray[np.integer], align: Literal["left", "right"]
) -> pa.Array:
    """A string array from the first (``left``) or last (``right``) ``lengths[i]`` characters
    of each row of ``chars`` — built straight from buffers."""
    n, width = chars.shape
    columns = np.arange(width)
    lengths = lengths.astype(np.int64)
    mask = columns < lengths[:, None] if align == "left" else columns >= (width - lengths)[:, None]
    flat = np.ascontiguousarray(chars[mask])
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(flat))


def _hex_payload(frames: FrameBatch) -> pa.Array:
    chars = _BYTE_TO_HEX[frames.data].reshape(len(frames), -1)
    return _strings(chars, frames.length.astype(np.int64) * 2, "left")


def _write_csv(path: Path, header: tuple[str, ...], tables: Iterator[pa.Table]) -> None:
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as f:
        f.write((",".join(header) + "\n").encode())
        writer: pacsv.CSVWriter | None = None
        for table in tables:
            if writer is None:
                writer = pacsv.CSVWriter(f, table.schema, write_options=options)
            writer.write_table(table)
        if writer is not None:
            writer.close()


def write_comma_csv(path: Path, frames: FrameBatch) -> None:
    """Write ``t_s,bus,address,data_hex`` (timestamps in shortest round-trip form)."""

    def tables() -> Iterator[pa.Table]:
        for start in range(0, len(frames), _WRITE_SLICE):
            part = frames.take(np.arange(start, min(start + _WRITE_SLICE, len(frames))))
            yield pa.table(
                {
                    "t_s": pa.array(part.timestamp_s, pa.float64()),
                    "bus": pa.array(part.bus, pa.uint16()),
                    "address": pa.array(part.frame_id, pa.uint32()),
                    "data_hex": _hex_payload(part),
                }
            )

    _write_csv(path, COMMA_CSV_HEADER, tables())


def write_road_csv(path: Path, frames: FrameBatch, labels: FrameLabels | None) -> None:
    """Write ``Time,Id,Byte1..Byte8[,Label]``: ids as 3 upper-case hex digits (standard) or 8
    (extended), bytes as 2 upper-case hex digits, empty past the frame's length.

    Raises:
        ValueError: a frame longer than 8 bytes (the layout has eight byte columns).
    """
    if (frames.length > CLASSIC_CAN_MAX_BYTES).any():
        raise ValueError("the ROAD CSV layout holds at most 8 data bytes per frame")
    header = (*ROAD_CSV_HEADER, "Label") if labels is not None else ROAD_CSV_HEADER
    shifts = 4 * np.arange(7, -1, -1, dtype=np.uint32)

    def tables() -> Iterator[pa.Table]:
        for start in range(0, len(frames), _WRITE_SLICE):
            rows = np.arange(start, min(start + _WRITE_SLICE, len(frames)))
            part = frames.take(rows)
            id_chars = _HEX_UPPER[(part.frame_id[:, None] >> shifts) & 15]
            id_len = np.where(part.is_extended, 8, 3)
            columns: dict[str, pa.Array] = {
                "Time": pa.array(part.timestamp_s, pa.float64()),
                "Id": _strings(id_chars, id_len, "right"),
            }
            width = part.data.shape[1]
            for i in range(CLASSIC_CAN_MAX_BYTES):
                byte = part.data[:, i] if i < width else np.zeros(len(part), np.uint8)
                present = (part.length > i).astype(np.int64) * 2
                columns[f"Byte{i + 1}"] = _strings(_BYTE_TO_HEX[byte], present, "left")
            if labels is not None:
                names = pa.array(labels.names, pa.string())
                columns["Label"] = pc.take(names, pa.array(labels.codes[rows]))
            yield pa.table(columns)

    _write_csv(path, header, tables())
