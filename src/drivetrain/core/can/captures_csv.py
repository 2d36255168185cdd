"""The two CSV capture layouts, parsed with pyarrow and decoded with NumPy.

``comma-csv``: ``t_s,bus,address,data_hex`` — seconds, bus number, decimal frame id, payload
as one hex string (comma2k19 ``raw_can.csv``). The layout has no extended-id flag: ids above
0x7FF are read as extended.

``road-csv``: ``Time,Id,Byte1..Byte8[,Label]`` — seconds, hex frame id, one hex byte per
column (empty past the frame's length), optional label (ORNL ROAD). Ids written with more than
three hex digits, or above 0x7FF, are read as extended. Every frame is on bus 0.

The file is read in blocks of whole lines parsed by pyarrow (``csv_blocks``), and the hex is
decoded with lookup tables over whole columns (``hex_columns``) — no per-row Python; this
module holds what each layout means: its columns, checks, error messages and writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

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
)
from drivetrain.core.can.csv_blocks import (
    BlockIssues,
    BlockLines,
    finish_chunk,
    iter_parsed,
    open_capture,
    read_header,
)
from drivetrain.core.can.frames import CLASSIC_CAN_MAX_BYTES, FrameBatch
from drivetrain.core.can.hex_columns import (
    BYTE_TO_HEX,
    HEX_UPPER,
    NIBBLE,
    as_array,
    decode_hex_payload,
    fixed_width_chars,
    hex_payload,
    numbers,
    payload_reason,
    strings_from_chars,
    to_numpy,
)

_MAX_FRAME_ID = 0x1FFFFFFF
_MAX_STANDARD_ID = 0x7FF


# --- reading -------------------------------------------------------------------------------------
def iter_comma_csv(path: str | Path, *, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    """Stream a ``t_s,bus,address,data_hex`` capture (see ``captures.iter_capture``)."""
    path = Path(path)
    with open_capture(path) as f:
        names = read_header(f, path, (COMMA_CSV_HEADER,))
        # The payload as bytes: hex needs no UTF-8 validation (a quarter of the parse).
        numeric = {
            "t_s": pa.float64(), "bus": pa.uint16(), "address": pa.uint32(), "data_hex": pa.binary()
        }
        empty = True
        for table, lines, native in iter_parsed(f, names, numeric, chunk_frames):
            yield _comma_chunk(path, table, lines, native, strict)
            empty = False
        if empty:
            yield CaptureChunk(FrameBatch.empty(), (), f.tell())


def _comma_chunk(
    path: Path, table: pa.Table, lines: BlockLines, native: bool, strict: bool
) -> CaptureChunk:
    issues = BlockIssues()
    t_s, t_ok = numbers(table.column("t_s"), "float", native)
    bus, bus_ok = numbers(table.column("bus"), "uint", native)
    address, addr_ok = numbers(table.column("address"), "uint", native)
    payload = as_array(table.column("data_hex"))
    data, length, data_ok = decode_hex_payload(payload)
    blank = ~t_ok & ~bus_ok & ~addr_ok & (length == 0) & data_ok
    if not native:
        blank &= to_numpy(pc.binary_length(as_array(table.column("t_s"))), np.int64) == 0
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
    issues.flag(~blank & ~data_ok, lambda r: payload_reason(payload[r].as_py()))

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

    return finish_chunk(path, lines, issues, blank, build, strict)


def _col(name: str) -> int:
    return COMMA_CSV_HEADER.index(name)


def iter_road_csv(path: str | Path, *, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    """Stream a ``Time,Id,Byte1..Byte8[,Label]`` capture (see ``captures.iter_capture``)."""
    path = Path(path)
    with open_capture(path) as f:
        names = read_header(f, path, (ROAD_CSV_HEADER, (*ROAD_CSV_HEADER, "Label")))
        empty = True
        for table, lines, native in iter_parsed(f, names, {"Time": pa.float64()}, chunk_frames):
            yield _road_chunk(path, table, lines, native, strict)
            empty = False
        if empty:
            labels = FrameLabels(np.empty(0, np.int32), ()) if "Label" in names else None
            yield CaptureChunk(FrameBatch.empty(), (), f.tell(), labels)


def _road_chunk(
    path: Path, table: pa.Table, lines: BlockLines, native: bool, strict: bool
) -> CaptureChunk:
    issues = BlockIssues()
    n = table.num_rows
    t_s, t_ok = numbers(table.column("Time"), "float", native)
    id_text = as_array(table.column("Id"))
    id_chars, id_len, id_fits = fixed_width_chars(pc.utf8_trim_whitespace(id_text), 8, "right")
    id_nibbles = NIBBLE[id_chars]
    id_ok = id_fits & (id_len > 0) & (id_nibbles != 255).all(axis=1)
    id_nibbles[id_nibbles == 255] = 0
    frame_id = (id_nibbles.astype(np.uint64) << (4 * np.arange(7, -1, -1, dtype=np.uint64))).sum(1)

    data = np.zeros((n, CLASSIC_CAN_MAX_BYTES), np.uint8)
    present = np.zeros((n, CLASSIC_CAN_MAX_BYTES), np.bool_)
    bytes_ok = np.ones(n, np.bool_)
    for i in range(CLASSIC_CAN_MAX_BYTES):
        column = pc.utf8_trim_whitespace(as_array(table.column(f"Byte{i + 1}")))
        chars, byte_len, fits = fixed_width_chars(column, 2, "right")
        nib = NIBBLE[chars]
        present[:, i] = byte_len > 0
        bytes_ok &= fits & (nib != 255).all(axis=1)
        nib[nib == 255] = 0
        data[:, i] = (nib[:, 0] << 4) | nib[:, 1]
    length = present.sum(axis=1).astype(np.uint8)
    contiguous = (present == (np.arange(CLASSIC_CAN_MAX_BYTES) < length[:, None])).all(axis=1)

    blank = ~t_ok & (id_len == 0) & (length == 0)
    if not native:
        blank &= to_numpy(pc.binary_length(as_array(table.column("Time"))), np.int64) == 0

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
        encoded = pc.dictionary_encode(as_array(table.column("Label")))
        labels = FrameLabels(
            to_numpy(encoded.indices, np.int32), tuple(encoded.dictionary.to_pylist())
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

    return finish_chunk(path, lines, issues, blank, build, strict)


# --- writing -------------------------------------------------------------------------------------
_WRITE_SLICE = 1 << 20


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
                    "data_hex": hex_payload(part),
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
            id_chars = HEX_UPPER[(part.frame_id[:, None] >> shifts) & 15]
            id_len = np.where(part.is_extended, 8, 3)
            columns: dict[str, pa.Array] = {
                "Time": pa.array(part.timestamp_s, pa.float64()),
                "Id": strings_from_chars(id_chars, id_len, "right"),
            }
            width = part.data.shape[1]
            for i in range(CLASSIC_CAN_MAX_BYTES):
                byte = part.data[:, i] if i < width else np.zeros(len(part), np.uint8)
                present = (part.length > i).astype(np.int64) * 2
                columns[f"Byte{i + 1}"] = strings_from_chars(BYTE_TO_HEX[byte], present, "left")
            if labels is not None:
                names = pa.array(labels.names, pa.string())
                columns["Label"] = pc.take(names, pa.array(labels.codes[rows]))
            yield pa.table(columns)

    _write_csv(path, header, tables())
