"""Hex and number columns of the CSV capture layouts, converted as whole arrays.

Lookup tables turn two hex characters into a byte (or mark them as not hex) and a byte into
two upper-case hex characters, so payloads, ids and data bytes are decoded and encoded per
column with NumPy over pyarrow buffers — no per-row Python. ``numbers`` reads a numeric column
that pyarrow converted natively, or validates and converts one it had to leave as text.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from drivetrain.core.can.frames import CAN_FD_MAX_BYTES, CLASSIC_CAN_MAX_BYTES, FrameBatch

#: Hex character (ASCII code) -> its value, or 255 if not a hex digit.
NIBBLE = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    NIBBLE[_c] = 10 + _i
HEX_UPPER = np.frombuffer(b"0123456789ABCDEF", np.uint8)
# Two hex characters read as one little-endian uint16 -> their byte value, or 256 if not hex.
_PAIRS = np.arange(1 << 16)
HEX_PAIR = np.where(
    (NIBBLE[_PAIRS & 255] < 16) & (NIBBLE[_PAIRS >> 8] < 16),
    NIBBLE[_PAIRS & 255].astype(np.uint16) * 16 + NIBBLE[_PAIRS >> 8],
    256,
).astype(np.uint16)
del _PAIRS
BYTE_TO_HEX = np.stack([HEX_UPPER[np.arange(256) >> 4], HEX_UPPER[np.arange(256) & 15]], 1)


def as_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array (chunks combined when there are several)."""
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def to_numpy(column: pa.ChunkedArray | pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The column as a NumPy array of ``dtype``; nulls become 0."""
    arr = as_array(column) if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def numbers(
    column: pa.ChunkedArray, kind: Literal["float", "uint"], native: bool
) -> tuple[npt.NDArray[np.float64] | npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Values of a numeric column and a mask of rows where it is present and well-formed."""
    arr = as_array(column)
    if native:
        ok = np.ones(len(arr), np.bool_) if not arr.null_count else arr.is_valid().to_numpy(False)
        return to_numpy(arr, np.float64 if kind == "float" else np.uint64), ok
    text = pc.utf8_trim_whitespace(arr)
    pattern = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$" if kind == "float" else r"^\d{1,19}$"
    ok_arr = pc.match_substring_regex(text, pattern)
    cleaned = pc.if_else(ok_arr, text, "0")
    values = pc.cast(cleaned, pa.float64() if kind == "float" else pa.uint64())
    return to_numpy(values, np.float64 if kind == "float" else np.uint64), ok_arr.to_numpy(False)


def fixed_width_chars(
    arr: pa.Array, width: int, align: Literal["left", "right"]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """ASCII strings padded with '0' to ``width`` chars, as an ``(n, width)`` byte matrix.

    Returns the matrix, each string's original byte length, and a mask of strings that fit
    (at most ``width`` bytes, ASCII only); those that do not are replaced by zeros.
    """
    n = len(arr)
    byte_len = to_numpy(pc.binary_length(arr), np.int64)
    fits = byte_len <= width
    if not fits.all():
        arr = pc.if_else(pa.array(fits), arr, "")
    pad = pc.utf8_rpad if align == "left" else pc.utf8_lpad
    padded = pad(arr, width=width, padding="0")
    padded_len = to_numpy(pc.binary_length(padded), np.int64)
    if (padded_len != width).any():  # non-ASCII characters pad by code point, not byte
        fits &= padded_len == width
        padded = pad(pc.if_else(pa.array(fits), arr, ""), width=width, padding="0")
    if n == 0 or width == 0:
        return np.zeros((n, width), np.uint8), byte_len, fits
    offsets = np.frombuffer(padded.buffers()[1], np.int32, count=n + 1, offset=4 * padded.offset)
    data = np.frombuffer(padded.buffers()[2], np.uint8)
    chars = data[offsets[0] : offsets[0] + n * width].reshape(n, width)
    return chars, byte_len, fits


def decode_hex_payload(
    arr: pa.Array,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Payload hex strings (a string or binary array) → ``(data (n, width), length, ok)``;
    width is at least 8 bytes.

    Each row's characters are read straight from the array's buffers: one gather of ``width``
    characters per row (a shorter row picks up its successors' characters, which a mask of its
    own length then drops), then converted 8 characters (one 64-bit word) at a time by
    arithmetic where the width is a multiple of 16 characters (classic CAN: always), by one
    table lookup per character pair otherwise.
    """
    n = len(arr)
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar(b"" if pa.types.is_binary(arr.type) else "", arr.type))
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=n + 1, offset=4 * arr.offset)
    values = arr.buffers()[2]
    end = int(offsets[-1]) if n else 0
    text = (np.frombuffer(values, np.uint8) if values is not None else np.zeros(0, np.uint8))[:end]
    byte_len = np.diff(offsets)
    max_chars = int(byte_len.max()) if n else 0
    width_chars = min(
        max(max_chars + (max_chars & 1), 2 * CLASSIC_CAN_MAX_BYTES), 2 * CAN_FD_MAX_BYTES
    )
    fits = byte_len <= width_chars
    chars = _rows_of_chars(text, offsets[:-1], width_chars)
    if width_chars % 16 == 0:
        data, not_hex = _hex_words(chars, np.where(fits, byte_len & ~1, 0))
    else:
        pairs = HEX_PAIR[chars.view(np.uint16)]
        kept = np.where(fits, byte_len >> 1, 0)
        # Only a row's own pairs count (a non-hex pair reads 256): the whole-matrix maximum
        # is enough when everything is hex.
        not_hex = np.asarray(
            ((pairs > 255) & _leading(width_chars // 2)[kept]).any(axis=1)
            if pairs.max(initial=0) > 255
            else np.zeros(n, np.bool_)
        )
        data = pairs.astype(np.uint8)  # a non-hex pair (256) wraps to 0; its row is refused
        _keep_leading(data, kept)
    ok = fits & ((byte_len & 1) == 0) & ~not_hex
    length = np.where(ok, byte_len >> 1, 0).astype(np.uint8)
    return data, length, ok


_LOW_NIBBLES = np.uint64(0x0F0F_0F0F_0F0F_0F0F)
_ONES = np.uint64(0x0101_0101_0101_0101)
_LOW_BYTES = np.uint64(0x00FF_00FF_00FF_00FF)
_LOW_WORDS = np.uint64(0x0000_FFFF_0000_FFFF)
_LOW_HALF = np.uint64(0x0000_0000_FFFF_FFFF)


def _hex_words(
    chars: npt.NDArray[np.uint8], n_chars: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Rows of hex characters (``(n, w)``, ``w`` a multiple of 16) to bytes, 8 characters (one
    64-bit word) at a time: ``(data (n, w // 2), not_hex)``. Only each row's first
    ``n_chars[i]`` characters (an even count) are read; the bytes past them are zero.

    Arithmetic instead of a table, on whole words: a hex digit ``c`` is worth
    ``(c & 0xF) + 9 * (c >> 6)`` ('0'-'9', 'A'-'F' and 'a'-'f' alike), and it is one when
    ``c - '0'`` is below 10 or ``(c | 0x20) - 'a'`` below 6 (per character, as NumPy runs
    whole SIMD registers).
    """
    n, width_chars = chars.shape
    data = np.empty((n, width_chars // 2), np.uint8)
    not_hex = np.zeros(n, np.bool_)
    # in blocks of rows, so that the temporaries stay in the CPU cache
    step = max(1, _HEX_BLOCK_CHARS // width_chars)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        _hex_word_block(chars[rows], n_chars[rows], data[rows], not_hex[rows])
    return data, not_hex


#: Characters per block of ``_hex_words``.
_HEX_BLOCK_CHARS = 1 << 18


def _hex_word_block(
    chars: npt.NDArray[np.uint8],
    n_chars: npt.NDArray[np.integer],
    data: npt.NDArray[np.uint8],
    not_hex: npt.NDArray[np.bool_],
) -> None:
    valid = np.subtract(chars, np.uint8(48)) < 10
    letter = np.bitwise_or(chars, np.uint8(0x20))
    letter -= np.uint8(97)
    valid |= letter < 6
    words = chars.view(np.uint64)
    valid_words = valid.view(np.uint64)
    out = data.view(np.uint32)
    for j in range(chars.shape[1] // 8):
        # the bytes of word j that lie within each row's characters
        own = np.take(_LEADING_BYTES, np.clip(n_chars - 8 * j, 0, 8))
        not_hex |= ((valid_words[:, j] ^ _ONES) & own) != 0
        w = words[:, j]
        nibbles = (w & _LOW_NIBBLES) + np.uint64(9) * ((w >> np.uint64(6)) & _ONES)
        nibbles &= own
        # little endian: character 2k (the high nibble) is byte 2k; fold each pair into one
        # byte, then the word's four bytes into its low half
        w = ((nibbles << np.uint64(4)) | (nibbles >> np.uint64(8))) & _LOW_BYTES
        w = (w | (w >> np.uint64(8))) & _LOW_WORDS
        w = (w | (w >> np.uint64(16))) & _LOW_HALF
        out[:, j] = w


def _rows_of_chars(
    text: npt.NDArray[np.uint8], starts: npt.NDArray[np.int32], width: int
) -> npt.NDArray[np.uint8]:
    """``(len(starts), width)``: the ``width`` characters of ``text`` from each (ascending)
    start, read as '0' past the end of ``text``.

    Each row is one ``width``-byte item of an overlapping view of ``text`` (one gather of whole
    rows); only the last few rows, which would read past the end, go through a padded copy.
    """
    n = len(starts)
    out = np.empty((n, width), np.uint8)
    whole = int(np.searchsorted(starts, len(text) - width, side="right")) if len(text) >= width else 0
    if whole:
        rows = np.ndarray(
            buffer=text, dtype=np.dtype((np.void, width)), shape=(len(text) - width + 1,),
            offset=0, strides=(1,),
        )
        out[:whole] = rows[starts[:whole]].view(np.uint8).reshape(whole, width)
    if whole < n:
        first = int(starts[whole])
        padded = np.full(len(text) - first + width, ord("0"), np.uint8)
        padded[: len(text) - first] = text[first:]
        out[whole:] = sliding_window_view(padded, width)[starts[whole:] - first]
    return out


@cache
def _leading(width: int) -> npt.NDArray[np.bool_]:
    """Row ``k`` keeps the first ``k`` of ``width`` bytes (``k`` = 0 .. width)."""
    return np.arange(width)[None, :] < np.arange(width + 1)[:, None]


#: Little-endian 64-bit masks keeping the first ``k`` bytes (``k`` = 0 .. 8).
_LEADING_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)


def _keep_leading(data: npt.NDArray[np.uint8], kept: npt.NDArray[np.integer]) -> None:
    """Zero the bytes of each row of ``data`` (C-contiguous) past its first ``kept[i]``."""
    width = data.shape[1]
    if width % 8:
        data *= _leading(width)[kept]
        return
    words = data.view(np.uint64)  # 8 bytes per word, one mask read per row and word
    for j in range(width // 8):
        words[:, j] &= _LEADING_BYTES[np.clip(kept - 8 * j, 0, 8)]


def payload_reason(payload: str | bytes) -> str:
    """Why a payload that ``decode_hex_payload`` refused is not a payload."""
    text = (payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload).strip()
    if len(text) > 2 * CAN_FD_MAX_BYTES:
        return f"payload has {len(text)} hex digits, more than {2 * CAN_FD_MAX_BYTES}"
    if len(text) % 2:
        return f"payload {text!r} has an odd number of hex digits"
    return f"payload {text!r} is not hexadecimal"


def strings_from_chars(
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


def hex_payload(frames: FrameBatch) -> pa.Array:
    """Each frame's payload as upper-case hex (two digits per byte of its length)."""
    chars = BYTE_TO_HEX[frames.data].reshape(len(frames), -1)
    return strings_from_chars(chars, frames.length.astype(np.int64) * 2, "left")
