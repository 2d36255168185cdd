"""candump ``.log``, Vector ``.asc`` and ``.blf`` captures through python-can's readers.

python-can parses each format; this module turns its ``Message`` stream into ``FrameBatch``
chunks, maps channels to bus numbers, and reports unreadable lines with their line number:

* candump: a line python-can cannot parse (or whose payload has an odd number of hex digits,
  which python-can would silently misread) is reported and reading resumes on the next line.
* ``.asc``: python-can skips lines that are not events by design (comments, statistics); a
  message line it fails on is reported, and the rest of the file is not read (the reader
  cannot resume mid-file) — the report says so.
* ``.blf``: binary; a corrupt object is reported by its index and ends the read likewise.

Remote and error frames carry no signal data and are not part of the ``FrameBatch``.

Bus numbers: an integer channel is the bus (python-can numbers ASC/BLF channels from 0); a
named channel such as ``vcan1`` or ``can0`` uses its trailing digits; other names are numbered
in order of first appearance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TextIO

import can
import numpy as np
from can.io.blf import BLFParseError

from drivetrain.core.can.captures import CaptureChunk, MalformedLine
from drivetrain.core.can.frames import CLASSIC_CAN_MAX_BYTES, FrameBatch
from drivetrain.core.errors import CaptureFormatError

PyCanFormat = Literal["candump", "asc", "blf"]
_TRAILING_DIGITS = re.compile(r"(\d+)$")
_READ_ERRORS = (ValueError, IndexError, TypeError, KeyError, can.CanError)
#: What a candump line looks like, quoted when one does not.
CANDUMP_LINE = "expected '(TIME) INTERFACE ID#DATA', e.g. '(1700000000.000000) can0 123#DEADBEEF'"
#: What an ASC event line looks like, quoted when one does not.
ASC_LINE = "expected 'TIME CHANNEL ID Rx d LENGTH BYTES...', e.g. '0.001 1 123 Rx d 2 DE AD'"


class _CountingLines:
    """A text file's lines, counted as they are handed to a python-can reader.

    python-can closes the file when a reader finishes; closing is left to us instead, so a
    fresh reader can resume on the next line after a bad one.
    """

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self.line = 0
        self.current = ""

    def __iter__(self) -> _CountingLines:
        return self

    def __next__(self) -> str:
        self.current = next(self._f)
        self.line += 1
        return self.current

    def close(self) -> None:
        """Keep the underlying file open (see the class docstring)."""

    def tell(self) -> int:
        return self._f.buffer.tell() if hasattr(self._f, "buffer") else 0


class _ChunkBuilder:
    """Accumulates python-can messages and emits ``FrameBatch`` chunks."""

    def __init__(self, path: Path, strict: bool) -> None:
        self.path = path
        self.strict = strict
        self._buses: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        self.timestamps: list[float] = []
        self.ids: list[int] = []
        self.extended: list[bool] = []
        self.buses: list[int] = []
        self.payloads: list[bytes] = []
        self.malformed: list[MalformedLine] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        self.timestamps.append(float(msg.timestamp))
        self.ids.append(int(msg.arbitration_id))
        self.extended.append(bool(msg.is_extended_id))
        self.buses.append(self._bus(msg.channel))
        self.payloads.append(bytes(msg.data or b""))

    def bad(self, line: int, text: str, reason: str) -> None:
        report = MalformedLine.of(self.path, line, text, reason)
        if self.strict:
            raise CaptureFormatError(str(report))
        self.malformed.append(report)

    def _bus(self, channel: object) -> int:
        if channel is None:
            return 0
        if isinstance(channel, int):
            return channel
        name = str(channel)
        if (digits := _TRAILING_DIGITS.search(name)) is not None:
            return int(digits.group(1))
        return self._buses.setdefault(name, len(self._buses))

    def emit(self, bytes_read: int) -> CaptureChunk:
        n = len(self.ids)
        width = max([CLASSIC_CAN_MAX_BYTES, *map(len, self.payloads)])
        flat = b"".join(p.ljust(width, b"\0") for p in self.payloads)
        frames = FrameBatch(
            timestamp_s=np.array(self.timestamps, np.float64),
            frame_id=np.array(self.ids, np.uint32),
            is_extended=np.array(self.extended, np.bool_),
            bus=np.array(self.buses, np.uint16),
            length=np.array([len(p) for p in self.payloads], np.uint8),
            data=np.frombuffer(flat, np.uint8).reshape(n, width).copy(),
        )
        chunk = CaptureChunk(frames, tuple(self.malformed), bytes_read)
        self._reset()
        return chunk


def _candump_payload_problem(line: str) -> str | None:
    """What python-can would misread in a candump line it accepts, if anything."""
    fields = line.split()
    frame = fields[2] if len(fields) >= 3 else ""
    _, _, data = frame.partition("#")
    if data.startswith("#"):
        data = data[2:]
    if data[:1].lower() == "r":
        return None
    if len(data) % 2:
        return f"payload {data!r} has an odd number of hex digits"
    return None


def _open_text(path: Path) -> TextIO:
    try:
        return path.open("r", encoding="utf-8", errors="replace", newline=None)
    except OSError as e:
        raise CaptureFormatError(f"capture file '{path}' cannot be opened: {e}") from e


def _iter_candump(path: Path, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    builder = _ChunkBuilder(path, strict)
    with _open_text(path) as f:
        feed = _CountingLines(f)
        while True:
            try:
                for msg in can.CanutilsLogReader(feed):  # type: ignore[arg-type]
                    problem = _candump_payload_problem(feed.current)
                    if problem is not None:
                        builder.bad(feed.line, feed.current, problem)
                        continue
                    builder.add(msg)
                    if len(builder) >= chunk_frames:
                        yield builder.emit(feed.tell())
                break
            except _READ_ERRORS:
                # python-can's own message (an unpacking error) says nothing to the user
                builder.bad(feed.line, feed.current, f"not a candump frame line; {CANDUMP_LINE}")
        end = feed.tell()
    yield builder.emit(end)


def _iter_asc(path: Path, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    builder = _ChunkBuilder(path, strict)
    with _open_text(path) as f:
        feed = _CountingLines(f)
        try:
            for msg in can.ASCReader(feed, relative_timestamp=False):  # type: ignore[arg-type]
                builder.add(msg)
                if len(builder) >= chunk_frames:
                    yield builder.emit(feed.tell())
        except _READ_ERRORS:
            builder.bad(feed.line, feed.current,
                        f"not an ASC event line; {ASC_LINE}; the rest of the file was not read")
        end = feed.tell()
    yield builder.emit(end)


def _iter_blf(path: Path, strict: bool, chunk_frames: int) -> Iterator[CaptureChunk]:
    builder = _ChunkBuilder(path, strict)
    index = 0
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise CaptureFormatError(f"capture file '{path}' cannot be opened: {e.strerror or e}") \
            from e
    if magic != b"LOGG":  # python-can would leave the file open when refusing it
        raise CaptureFormatError(
            f"capture file '{path}' is not a BLF log: it starts with {magic!r}; expected a "
            "Vector BLF file starting with 'LOGG'"
        )
    try:
        reader = can.BLFReader(str(path))
    except (OSError, BLFParseError, *_READ_ERRORS) as e:
        raise CaptureFormatError(
            f"capture file '{path}' is not a readable BLF log ({e}); expected a Vector BLF "
            "file starting with 'LOGG'"
        ) from e
    size = path.stat().st_size
    try:
        for msg in reader:
            index += 1
            builder.add(msg)
            if len(builder) >= chunk_frames:
                yield builder.emit(int(size * index / max(reader.object_count, 1)))
    except _READ_ERRORS as e:
        builder.bad(index + 1, "", f"BLF object is corrupt ({e}); the rest of the file was not read")
    finally:
        reader.stop()
    yield builder.emit(size)


def iter_pycan(
    path: str | Path, capture_format: PyCanFormat, *, strict: bool, chunk_frames: int
) -> Iterator[CaptureChunk]:
    """Stream a candump/ASC/BLF capture (see ``captures.iter_capture``)."""
    path = Path(path)
    if capture_format == "candump":
        return _iter_candump(path, strict, chunk_frames)
    if capture_format == "asc":
        return _iter_asc(path, strict, chunk_frames)
    return _iter_blf(path, strict, chunk_frames)


def _messages(frames: FrameBatch) -> Iterator[can.Message]:
    for t, frame_id, ext, bus, length, data in zip(
        frames.timestamp_s.tolist(),
        frames.frame_id.tolist(),
        frames.is_extended.tolist(),
        frames.bus.tolist(),
        frames.length.tolist(),
        frames.data,
        strict=True,
    ):
        yield can.Message(
            timestamp=t,
            arbitration_id=frame_id,
            is_extended_id=ext,
            channel=bus,
            dlc=length,
            data=data[:length].tobytes(),
            is_fd=length > CLASSIC_CAN_MAX_BYTES,
        )


def _candump_lines(frames: FrameBatch) -> Iterator[str]:
    for t, frame_id, ext, bus, length, data in zip(
        frames.timestamp_s.tolist(),
        frames.frame_id.tolist(),
        frames.is_extended.tolist(),
        frames.bus.tolist(),
        frames.length.tolist(),
        frames.data,
        strict=True,
    ):
        ident = f"{frame_id:08X}" if ext else f"{frame_id:03X}"
        sep = "##0" if length > CLASSIC_CAN_MAX_BYTES else "#"
        yield f"({t:.6f}) can{bus} {ident}{sep}{data[:length].tobytes().hex().upper()}\n"


def write_pycan(path: Path, frames: FrameBatch, capture_format: PyCanFormat) -> None:
    """Write candump (timestamps to the microsecond, channel ``can<bus>``), ASC or BLF.

    candump lines are formatted here (python-can's writer clamps timestamps that go
    backwards); ASC and BLF go through python-can's writers.
    """
    if capture_format == "candump":
        with path.open("w", encoding="ascii") as f:
            f.writelines(_candump_lines(frames))
        return
    writer: can.ASCWriter | can.BLFWriter
    writer = can.ASCWriter(str(path)) if capture_format == "asc" else can.BLFWriter(str(path))
    try:
        for msg in _messages(frames):
            writer.on_message_received(msg)
    finally:
        writer.stop()
