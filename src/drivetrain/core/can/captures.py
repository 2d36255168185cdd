"""CAN captures: read log files into ``FrameBatch`` chunks, and write them back.

Five formats, chosen from the file extension and, for CSV, the header line:

====================  =========================================================================
``candump``           ``.log``: ``(1436509052.249713) vcan0 044#2A366C2BBA`` (``candump -L``)
``asc``               ``.asc``: Vector ASCII log
``blf``               ``.blf``: Vector binary log
``comma-csv``         ``.csv`` with header ``t_s,bus,address,data_hex`` (comma2k19 ``raw_can.csv``:
                      decimal address, hex payload)
``road-csv``          ``.csv`` with header ``Time,Id,Byte1..Byte8[,Label]`` (ORNL ROAD: hex id,
                      one hex byte per column, optional attack label)
====================  =========================================================================

The CSV layouts are parsed with pyarrow and decoded with NumPy (they are on the hot path of
``drivetrain can decode``); the others go through python-can's readers. A line that cannot be
read never aborts the file silently: in lenient mode (the default) it is skipped and reported
as a ``MalformedLine`` (``file:line: reason``), in strict mode it raises
``CaptureFormatError`` naming the file and line.

This module is the public surface; the format codecs live in ``captures_csv`` and
``captures_pycan``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from drivetrain.core.can.frames import FrameBatch
from drivetrain.core.errors import CaptureFormatError

CaptureFormat = Literal["candump", "asc", "blf", "comma-csv", "road-csv"]
CAPTURE_FORMATS: tuple[CaptureFormat, ...] = get_args(CaptureFormat)

#: Frames per chunk when streaming a capture (about 60 MB of arrays per chunk).
DEFAULT_CHUNK_FRAMES = 1_000_000

COMMA_CSV_HEADER = ("t_s", "bus", "address", "data_hex")
ROAD_CSV_HEADER = ("Time", "Id", *(f"Byte{i}" for i in range(1, 9)))
_EXCERPT_CHARS = 80
_EXTENSIONS: dict[str, CaptureFormat] = {".log": "candump", ".asc": "asc", ".blf": "blf"}


@dataclass(frozen=True)
class MalformedLine:
    """One line of a capture that could not be read as a frame.

    ``line`` is the 1-based physical line number (for ``.blf``, the 1-based object index).
    """

    path: str
    line: int
    excerpt: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.excerpt!r}"

    @classmethod
    def of(cls, path: str | Path, line: int, text: str, reason: str) -> MalformedLine:
        """A report for ``text`` (shortened to an excerpt) at ``line`` of ``path``."""
        text = text.rstrip("\r\n")
        excerpt = text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"
        return cls(str(path), line, excerpt, reason)


@dataclass(frozen=True)
class FrameLabels:
    """Per-frame labels (ROAD's ``Label`` column), dictionary-encoded.

    ``codes[i]`` indexes ``names`` for frame ``i``.
    """

    codes: npt.NDArray[np.int32]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.codes)

    def as_strings(self) -> list[str]:
        """The label of every frame, in order."""
        names = self.names
        return [names[c] for c in self.codes.tolist()]

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> FrameLabels:
        """The labels of the selected frames."""
        return FrameLabels(self.codes[rows], self.names)

    @classmethod
    def concat(cls, parts: list[FrameLabels]) -> FrameLabels:
        """One label set for frames concatenated in order (name tables are merged)."""
        names: dict[str, int] = {}
        codes = []
        for part in parts:
            remap = np.array([names.setdefault(n, len(names)) for n in part.names], np.int32)
            codes.append(remap[part.codes] if len(part.names) else part.codes)
        joined = np.concatenate(codes) if codes else np.empty(0, np.int32)
        return cls(joined.astype(np.int32, copy=False), tuple(names))


@dataclass(frozen=True)
class CaptureChunk:
    """A run of consecutive frames of a capture, with the lines skipped among them.

    ``bytes_read`` is how far into the file reading has got (for progress bars).
    """

    frames: FrameBatch
    malformed: tuple[MalformedLine, ...]
    bytes_read: int
    labels: FrameLabels | None = None


@dataclass(frozen=True)
class Capture:
    """A whole capture held in memory."""

    frames: FrameBatch
    malformed: tuple[MalformedLine, ...]
    labels: FrameLabels | None = None


def detect_format(path: str | Path) -> CaptureFormat:
    """The capture format of ``path``, from its extension and (for ``.csv``) its header.

    Raises:
        CaptureFormatError: the file is missing or unreadable, its extension is not one we
            read, or a ``.csv`` header matches neither CSV layout.
    """
    path = Path(path)
    if not path.is_file():
        raise CaptureFormatError(f"capture file '{path}' does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix != ".csv":
        raise CaptureFormatError(
            f"capture file '{path}' has extension {suffix!r}; expected one of "
            ".log (candump), .asc, .blf, .csv"
        )
    try:
        with path.open("r", encoding="utf-8", newline="") as f:
            header = f.readline().strip()
    except UnicodeDecodeError as e:
        raise CaptureFormatError(
            f"{path}:1: not a text CSV file (byte {e.object[e.start]:#04x} at offset {e.start} "
            "is not UTF-8); expected a CSV capture with a header line"
        ) from e
    except OSError as e:
        raise CaptureFormatError(f"capture file '{path}' cannot be read: {e.strerror or e}") from e
    columns = tuple(c.strip() for c in header.split(","))
    if columns == COMMA_CSV_HEADER:
        return "comma-csv"
    if columns in (ROAD_CSV_HEADER, (*ROAD_CSV_HEADER, "Label")):
        return "road-csv"
    raise CaptureFormatError(
        f"{path}:1: CSV header {header[:_EXCERPT_CHARS]!r} matches no capture layout; expected "
        f"{','.join(COMMA_CSV_HEADER)!r} or {','.join(ROAD_CSV_HEADER)}[,Label]'"
    )


def iter_capture(
    path: str | Path,
    *,
    capture_format: CaptureFormat | None = None,
    strict: bool = False,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
) -> Iterator[CaptureChunk]:
    """Stream the frames of a capture in chunks of about ``chunk_frames`` frames.

    Args:
        path: the capture file.
        capture_format: the format; detected with ``detect_format`` when omitted.
        strict: raise on the first malformed line instead of skipping and reporting it.
        chunk_frames: the approximate number of frames per chunk (CSV chunks are cut by size).

    Raises:
        CaptureFormatError: the file cannot be opened or its format is unknown; in strict mode,
            also the first malformed line (the message names the file and line).
    """
    from drivetrain.core.can import captures_csv, captures_pycan

    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    fmt = capture_format or detect_format(path)
    if not Path(path).is_file():
        raise CaptureFormatError(f"capture file '{path}' does not exist or is not a file")
    if fmt == "comma-csv":
        return captures_csv.iter_comma_csv(path, strict=strict, chunk_frames=chunk_frames)
    if fmt == "road-csv":
        return captures_csv.iter_road_csv(path, strict=strict, chunk_frames=chunk_frames)
    if fmt in ("candump", "asc", "blf"):
        return captures_pycan.iter_pycan(path, fmt, strict=strict, chunk_frames=chunk_frames)
    raise ValueError(f"unknown capture format {fmt!r}; expected one of {CAPTURE_FORMATS}")


def read_capture(
    path: str | Path, *, capture_format: CaptureFormat | None = None, strict: bool = False
) -> Capture:
    """Read a whole capture into memory (see ``iter_capture`` for the arguments and errors)."""
    chunks = list(iter_capture(path, capture_format=capture_format, strict=strict))
    frames = FrameBatch.concat([c.frames for c in chunks])
    malformed = tuple(m for c in chunks for m in c.malformed)
    label_parts = [c.labels for c in chunks if c.labels is not None]
    labels = FrameLabels.concat(label_parts) if label_parts else None
    return Capture(frames, malformed, labels)


def write_capture(
    path: str | Path,
    frames: FrameBatch,
    *,
    capture_format: CaptureFormat | None = None,
    labels: FrameLabels | None = None,
) -> None:
    """Write ``frames`` to ``path`` in ``capture_format`` (from the extension when omitted;
    ``.csv`` means ``comma-csv``).

    ``labels`` are written only by ``road-csv`` (its ``Label`` column).

    Raises:
        ValueError: the format cannot be inferred, or the frames cannot be represented in it
            (for example a standard frame id above 0x7FF, or labels of the wrong length).
    """
    from drivetrain.core.can import captures_csv, captures_pycan

    path = Path(path)
    fmt = capture_format
    if fmt is None:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            fmt = "comma-csv"
        elif suffix in _EXTENSIONS:
            fmt = _EXTENSIONS[suffix]
        else:
            raise ValueError(f"cannot infer a capture format from extension {suffix!r}")
    _check_frames_writable(frames)
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    if fmt == "comma-csv":
        captures_csv.write_comma_csv(path, frames)
    elif fmt == "road-csv":
        captures_csv.write_road_csv(path, frames, labels)
    elif fmt in ("candump", "asc", "blf"):
        captures_pycan.write_pycan(path, frames, fmt)
    else:
        raise ValueError(f"unknown capture format {fmt!r}; expected one of {CAPTURE_FORMATS}")


def _check_frames_writable(frames: FrameBatch) -> None:
    bad_standard = ~frames.is_extended & (frames.frame_id > 0x7FF)
    if bad_standard.any():
        frame_id = int(frames.frame_id[np.argmax(bad_standard)])
        raise ValueError(f"standard (11-bit) frame id {frame_id:#x} is above 0x7FF")
    if (frames.frame_id > 0x1FFFFFFF).any():
        frame_id = int(frames.frame_id.max())
        raise ValueError(f"frame id {frame_id:#x} is above 0x1FFFFFFF (29 bits)")
    if (frames.length.astype(np.int64) > frames.data.shape[1]).any():
        raise ValueError(f"a frame length exceeds the data width {frames.data.shape[1]}")
