"""Reading a CSV capture in blocks: whole lines parsed by pyarrow, rows mapped back to lines.

The file is cut into blocks at line boundaries; each block is parsed by pyarrow (numbers
converted natively, payloads as strings). A row with the wrong number of fields is skipped by
pyarrow and recorded; when a block holds one, the physical line numbers of its rows are
recovered from the raw bytes, so every report names the right line. ``finish_chunk`` turns a
block's findings into a ``CaptureChunk`` (or, when strict, the error of the first bad line).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from drivetrain.core.can.captures import CaptureChunk, FrameLabels, MalformedLine
from drivetrain.core.can.frames import FrameBatch
from drivetrain.core.errors import CaptureFormatError

#: Bytes of CSV text per frame, roughly (comma2k19 averages 35); sizes a block from frames.
BYTES_PER_FRAME = 36


@dataclass(frozen=True)
class Block:
    """Whole lines of the file: ``text`` starts at physical line ``first_line``."""

    text: bytes | memoryview
    first_line: int
    end_pos: int


class BlockIssues:
    """Malformed rows of one block: row index (into the parsed table) → reason."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}

    def flag(self, bad: npt.NDArray[np.bool_], reason: str | Callable[[int], str]) -> None:
        """Record ``reason`` (or ``reason(row)``) for each ``bad`` row not flagged before."""
        for row in np.flatnonzero(bad).tolist():
            if row not in self.rows:
                self.rows[row] = reason if isinstance(reason, str) else reason(row)


def iter_blocks(f: BinaryIO, block_bytes: int) -> Iterator[tuple[memoryview, int]]:
    """Runs of whole lines of ``f`` (about ``block_bytes`` each) and the file offset after each.

    Each block is valid until the next one is asked for: where ``f`` can seek, every block is
    read into the same buffer (no fresh memory, so no page faults, per block) and the partial
    line at its end is read again with the next block (a seek back) rather than copied.
    """
    if not f.seekable() or not isinstance(f, io.BufferedIOBase | io.RawIOBase):
        yield from _iter_unseekable_blocks(f, block_bytes)
        return
    buffer = bytearray(block_bytes)
    while True:
        size = f.readinto(buffer) or 0
        if not size:
            return
        cut = buffer.rfind(b"\n", 0, size)
        if cut < 0 and size == len(buffer):  # one line longer than the buffer: grow it
            f.seek(-size, os.SEEK_CUR)
            buffer = bytearray(2 * len(buffer))
            continue
        end = size if cut < 0 else cut + 1  # the last line of the file may lack its newline
        if end < size:
            f.seek(end - size, os.SEEK_CUR)
        yield memoryview(buffer)[:end], f.tell()


def _iter_unseekable_blocks(f: BinaryIO, block_bytes: int) -> Iterator[tuple[memoryview, int]]:
    """``iter_blocks`` for a stream that cannot seek: the partial line at the end of a read is
    copied in front of the next one."""
    carry = b""
    while True:
        buf = f.read(block_bytes)
        if not buf:
            if carry:
                yield memoryview(carry), f.tell()
            return
        if carry:
            buf = carry + buf
            carry = b""
        cut = buf.rfind(b"\n")
        if cut < 0:  # one line longer than a block so far
            carry = buf
            continue
        carry = buf[cut + 1 :]
        yield memoryview(buf)[: cut + 1], f.tell() - len(carry)


def iter_parsed(
    f: BinaryIO, names: list[str], numeric: dict[str, pa.DataType], chunk_frames: int
) -> Iterator[tuple[pa.Table, BlockLines, bool]]:
    """Parsed blocks with their line mapping; every physical line is either a table row or a
    skipped row, which keeps the line count without scanning for newlines."""
    line = 2
    for text, end_pos in iter_blocks(f, chunk_frames * BYTES_PER_FRAME):
        block = Block(text, line, end_pos)
        table, wrong_count, native = parse_block(block, names, numeric)
        yield table, BlockLines(block, len(names), table.num_rows, bool(wrong_count)), native
        line += table.num_rows + len(wrong_count)


def read_header(f: BinaryIO, path: Path, expected: tuple[tuple[str, ...], ...]) -> list[str]:
    """The header line's columns.

    Raises:
        CaptureFormatError: the header is none of ``expected`` (names the file, line 1).
    """
    raw = f.readline()
    columns = [c.strip() for c in raw.decode("utf-8", "replace").strip().split(",")]
    if tuple(columns) not in expected:
        wanted = " or ".join(repr(",".join(e)) for e in expected)
        raise CaptureFormatError(f"{path}:1: CSV header {raw[:80]!r} is not {wanted}")
    return columns


def parse_block(
    block: Block, names: list[str], numeric: dict[str, pa.DataType]
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
            read_options=pacsv.ReadOptions(column_names=names, block_size=parse_block_size),
            parse_options=pacsv.ParseOptions(
                quote_char=False, ignore_empty_lines=False, invalid_row_handler=skip_row
            ),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )

    # With several threads, pyarrow parses 4 MiB parts of the block in parallel (and the columns
    # are then concatenated); with one, a single part spares the concatenation.
    parse_block_size = 4 << 20 if pa.cpu_count() > 1 else len(block.text) + 1
    strings = {n: pa.string() for n in names}
    try:
        return read({**strings, **numeric}), wrong_count, True
    except pa.ArrowInvalid:
        # A value that is not a number somewhere in the block: reread as text, and find it.
        return read(strings), wrong_count, False


def line_spans(text: bytes | memoryview) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
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


class BlockLines:
    """Maps parsed rows of a block to physical lines and their text."""

    def __init__(self, block: Block, n_fields: int, n_rows: int, any_skipped: bool) -> None:
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
            self._spans = line_spans(self.block.text)
        return self._spans

    def text(self, line: int) -> str:
        starts, ends = self.spans
        i = line - self.block.first_line
        return bytes(self.block.text[starts[i] : ends[i]]).decode("utf-8", "replace")


def finish_chunk(
    path: Path,
    lines: BlockLines,
    issues: BlockIssues,
    blank: npt.NDArray[np.bool_],
    build: Callable[[npt.NDArray[np.bool_] | None], tuple[FrameBatch, FrameLabels | None]],
    strict: bool,
) -> CaptureChunk:
    """The chunk of a parsed block: the frames ``build`` keeps (blank and malformed rows
    dropped) and every malformed line, in line order.

    Raises:
        CaptureFormatError: ``strict`` and a line is malformed (the first one, with its file,
            line number, reason and text).
    """
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


def open_capture(path: Path) -> BinaryIO:
    """Open ``path`` for reading; raises ``CaptureFormatError`` naming it if it cannot be."""
    try:
        return path.open("rb")
    except OSError as e:
        raise CaptureFormatError(f"capture file '{path}' cannot be opened: {e}") from e
