"""Vectorised kernels: raw bit fields and physical values for all frames of one message.

Each function takes the payloads of many frames of the same message (a 2-D ``uint8`` array,
one row per frame) and a :class:`~drivetrain.core.can.decode_plan.MessagePlan`, and works on
whole arrays with NumPy: no Python loop runs per frame. Results are signal-major: shape
``(signals, frames)``, so each signal's values are one contiguous row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivetrain.core.can.decode_plan import ExactColumn, MessagePlan

_U64 = np.uint64
_ONE = np.uint64(1)


def _word(payload: npt.NDArray[np.uint8], byte: int, big_endian: bool) -> npt.NDArray[np.uint64]:
    """Bytes ``byte .. byte+7`` of every row read as one 64-bit integer."""
    window = np.ascontiguousarray(payload[:, byte : byte + 8])
    return window.view(">u8" if big_endian else "<u8")[:, 0].astype(_U64, copy=False)


def raw_fields_from_words(
    words: npt.NDArray[np.uint64], plan: MessagePlan
) -> npt.NDArray[np.uint64]:
    """Like :func:`raw_fields` for a plan whose signals all lie in the first 8 bytes.

    ``words`` holds the first 8 payload bytes of each frame read as a little-endian integer.
    """
    shift = plan.word_shift[:, None]
    if not plan.big_endian.any():
        raw = words[None, :] >> shift
    elif plan.big_endian.all():
        raw = words.byteswap()[None, :] >> shift
    else:
        raw = np.empty((plan.width, len(words)), _U64)
        little, big = ~plan.big_endian, plan.big_endian
        raw[little] = words[None, :] >> shift[little]
        raw[big] = words.byteswap()[None, :] >> shift[big]
    raw &= plan.word_mask[:, None]
    return raw


def physical_values_from_words(
    words: npt.NDArray[np.uint64],
    plan: MessagePlan,
    out: npt.NDArray[np.float64],
    scratch: npt.NDArray[np.uint64] | None = None,
) -> None:
    """Physical values of every signal straight from the 64-bit words, into ``out`` (k, n).

    The fast path for plans whose signals lie in the first 8 bytes: the signals of each
    (byte order, signedness) class are extracted together by two shifts into a (k, n) scratch
    block (left until the field's MSB is bit 63, then right, arithmetic for signed fields,
    which sign-extends), converted to float64 in one pass, and the few scaled, IEEE float or
    unsigned 64-bit signals are then redone one row at a time. ``scratch``, if given, is a
    ``uint64`` buffer of at least ``k * n`` elements to use for the block.
    """
    k, n = out.shape
    size = k * n
    block = np.empty((k, n), _U64) if scratch is None else scratch[:size].reshape(k, n)
    with np.errstate(invalid="ignore", over="ignore"):
        swapped: npt.NDArray[np.uint64] | None = None
        for cls in plan.word_classes:
            if cls.big_endian:
                if swapped is None:
                    swapped = words.byteswap()
                source = swapped
            else:
                source = words
            rows = block[cls.start : cls.stop]
            np.left_shift(source, cls.left, out=rows)
            if cls.signed:
                as_signed = rows.view(np.int64)
                np.right_shift(as_signed, cls.right, out=as_signed)
            else:
                np.right_shift(rows, cls.right, out=rows)
        as_int = block.view(np.int64)
        if plan.word_order is None:
            np.copyto(out, as_int, casting="unsafe")
        else:
            out[plan.word_order] = as_int
        for col, row in plan.word_special:
            ints: npt.NDArray[np.int64] | npt.NDArray[np.uint64] = (
                as_int[row] if plan.signed[col] else block[row]
            )
            target = out[col]
            bits = plan.float_bits[col]
            if bits:
                target[...] = _as_float(block[row], bits)
                if not plan.identity[col]:
                    target *= plan.scale[col]
                    target += plan.offset[col]
            elif plan.identity[col]:
                target[...] = ints
            else:
                np.multiply(ints, plan.scale[col], out=target)
                if plan.offset[col] != 0.0:
                    target += plan.offset[col]
        for exact in plan.exact_columns:
            # rare (large integer scaling): recompute those rows exactly on the matrix path
            col = exact.column
            raw = raw_fields_from_words(words, plan)[col]
            signed = bool(plan.signed[col])
            if signed:
                sign = _ONE << _U64(int(plan.bit_length[col]) - 1)
                raw = (raw ^ sign) - sign
            out[col] = _exact_scaled(raw, signed, exact)


def raw_fields(payload: npt.NDArray[np.uint8], plan: MessagePlan) -> npt.NDArray[np.uint64]:
    """The unsigned raw bits of every signal: shape ``(plan.width, rows)``.

    ``payload`` must be at least ``max(8, plan.length) + 9`` bytes wide for messages whose
    signals reach past byte 8 (callers pad with zeros); 8 bytes suffice otherwise.
    """
    rows = payload.shape[0]
    if plan.within_first_8_bytes:
        return raw_fields_from_words(_word(payload, 0, False), plan)
    raw = np.empty((plan.width, rows), _U64)
    cache: dict[tuple[int, bool], npt.NDArray[np.uint64]] = {}
    for col in range(plan.width):
        raw[col] = _field_anywhere(payload, plan, col, cache)
    return raw


def _field_anywhere(
    payload: npt.NDArray[np.uint8],
    plan: MessagePlan,
    col: int,
    cache: dict[tuple[int, bool], npt.NDArray[np.uint64]],
) -> npt.NDArray[np.uint64]:
    """One signal anywhere in a CAN FD payload: an 8-byte window, plus a 9th byte if needed."""
    big = bool(plan.big_endian[col])
    first, length = int(plan.first_bit[col]), int(plan.bit_length[col])
    byte = first // 8
    key = (byte, big)
    if key not in cache:
        cache[key] = _word(payload, byte, big)
    word = cache[key]
    skip = first - 8 * byte  # bits of the window before the signal
    mask = _U64((1 << length) - 1)
    if skip + length <= 64:
        shift = 64 - skip - length if big else skip
        return (word >> _U64(shift)) & mask
    extra = payload[:, byte + 8].astype(_U64)
    spill = skip + length - 64  # bits taken from the 9th byte
    if big:
        head = word & _U64((1 << (64 - skip)) - 1)
        return ((head << _U64(spill)) | (extra >> _U64(8 - spill))) & mask
    return ((word >> _U64(skip)) | (extra << _U64(64 - skip))) & mask


def physical_values(
    raw: npt.NDArray[np.uint64], plan: MessagePlan, out: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """``raw * scale + offset`` per signal as float64, with cantools' int/float semantics.

    Signed fields are sign-extended (two's complement), IEEE float fields reinterpreted, and
    scaling done in float64 where cantools uses floats; where cantools multiplies Python
    integers and the result may exceed 2**53, the product is formed exactly first. Written to
    ``out`` (shape ``raw.shape``) when given.
    """
    # IEEE semantics, as Python floats in cantools: NaN payloads and overflow to inf are values.
    with np.errstate(invalid="ignore", over="ignore"):
        return _physical_values(raw, plan, out)


def _physical_values(
    raw: npt.NDArray[np.uint64], plan: MessagePlan, out: npt.NDArray[np.float64] | None
) -> npt.NDArray[np.float64]:
    if plan.signed.any():
        sign = np.where(plan.signed, _ONE << (plan.bit_length - 1).astype(_U64), _U64(0)).astype(
            _U64
        )[:, None]
        signed = raw ^ sign
        signed -= sign
    else:
        signed = raw
    if out is None:
        values = signed.view(np.int64).astype(np.float64)
    else:
        values = out
        values[...] = signed.view(np.int64)
    if plan.needs_scaling:
        values *= plan.scale[:, None]
        values += plan.offset[:, None]
    for col in plan.unsigned64_columns:
        values[col] = raw[col].astype(np.float64) * plan.scale[col] + plan.offset[col]
    for col, bits in enumerate(plan.float_bits):
        if bits:
            values[col] = _as_float(raw[col], bits) * plan.scale[col] + plan.offset[col]
    for exact in plan.exact_columns:
        column = signed[exact.column] if plan.signed[exact.column] else raw[exact.column]
        values[exact.column] = _exact_scaled(column, bool(plan.signed[exact.column]), exact)
    return values


def _as_float(bits: npt.NDArray[np.uint64], width: int) -> npt.NDArray[np.float64]:
    kind = {16: (np.uint16, np.float16), 32: (np.uint32, np.float32), 64: (np.uint64, np.float64)}[
        width
    ]
    return bits.astype(kind[0]).view(kind[1]).astype(np.float64)


def _exact_scaled(
    column: npt.NDArray[np.uint64], signed: bool, exact: ExactColumn
) -> npt.NDArray[np.float64]:
    ints = column.view(np.int64) if signed else column
    if exact.fits_int64:  # then |raw| < 2**63 too, so the cast below is lossless
        product = ints.astype(np.int64) * np.int64(exact.scale)
        if isinstance(exact.offset, int):
            return (product + np.int64(exact.offset)).astype(np.float64)
        return product.astype(np.float64) + exact.offset
    # Beyond int64: Python integers, as cantools does (rare: 64-bit signals with a scale).
    py = [int(v) * exact.scale for v in ints.tolist()]
    if isinstance(exact.offset, int):
        return np.array([float(v + exact.offset) for v in py], np.float64)
    return np.array([float(v) + exact.offset for v in py], np.float64)
