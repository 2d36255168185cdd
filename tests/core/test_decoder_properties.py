"""Hypothesis: on generated signal layouts the batch decoder equals cantools bit for bit."""

from __future__ import annotations

import math

import numpy as np
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.can import BatchDecoder, FrameBatch

# (start as written in the DBC, length, byte order, signed, float, scale, offset, message length)
Layout = tuple[int, int, str, bool, bool, float, float, int]

_SCALES = st.one_of(
    st.sampled_from([1, 2, -3, 10, 1000]),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False).filter(
        lambda x: x != 0
    ),
)
_OFFSETS = st.one_of(st.sampled_from([0, -40, 7, 2**40]), st.floats(min_value=-1e6, max_value=1e6))


def _sawtooth(network_bit: int) -> int:
    """DBC start bit of a big-endian signal whose MSB is at ``network_bit`` (MSB-first order)."""
    return 8 * (network_bit // 8) + 7 - network_bit % 8


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    length_bytes = draw(st.sampled_from([8, 8, 8, 12, 16, 32, 64]))
    is_float = draw(st.booleans()) and draw(st.booleans())
    bits = draw(st.sampled_from([32, 64])) if is_float else draw(st.integers(1, 64))
    first = draw(st.integers(0, 8 * length_bytes - bits))
    big = draw(st.booleans())
    start = _sawtooth(first) if big else first
    return (
        start,
        bits,
        "big_endian" if big else "little_endian",
        draw(st.booleans()) and not is_float,
        is_float,
        draw(_SCALES),
        draw(_OFFSETS),
        length_bytes,
    )


def _check(layout: Layout, payloads: list[bytes]) -> None:
    start, bits, order, signed, is_float, scale, offset, length_bytes = layout
    conversion = BaseConversion.factory(scale=scale, offset=offset, is_float=is_float)
    signal = Signal("S", start, bits, byte_order=order, is_signed=signed, conversion=conversion)  # type: ignore[arg-type]
    message = Message(0x123, "M", length_bytes, [signal], is_fd=length_bytes > 8)
    data = np.array([list(p[:length_bytes].ljust(length_bytes, b"\0")) for p in payloads], np.uint8)
    n = len(payloads)
    batch = FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64),
        frame_id=np.full(n, 0x123, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, length_bytes, np.uint8),
        data=data,
    )
    decoded = BatchDecoder(Database([message])).decode(batch)
    assert len(decoded) == n
    for row in range(n):
        expected = float(message.decode(bytes(data[row]), decode_choices=False)["S"])
        got = float(decoded.value[row])
        assert got == expected or (math.isnan(got) and math.isnan(expected)), (
            layout,
            bytes(data[row]).hex(),
        )


_PAYLOADS = st.lists(st.binary(min_size=64, max_size=64), min_size=1, max_size=6)
_EDGE_PAYLOADS = [bytes(64), b"\xff" * 64, bytes(range(64)), b"\x80" + bytes(63)]


@settings(max_examples=300, deadline=None)
@given(layouts(), _PAYLOADS)
@example((0, 64, "little_endian", False, False, 1, 0, 8), _EDGE_PAYLOADS)  # whole payload, unsigned
@example((0, 64, "little_endian", True, False, 1, 0, 8), _EDGE_PAYLOADS)  # whole payload, signed
@example((7, 64, "big_endian", True, False, 3, -7, 8), _EDGE_PAYLOADS)  # 64 bits, integer scale
@example((7, 64, "big_endian", False, False, 2, 1, 8), _EDGE_PAYLOADS)  # beyond int64: exact ints
@example((63, 1, "little_endian", False, False, 1, 0, 8), _EDGE_PAYLOADS)  # bit 63 alone
@example((56, 1, "big_endian", True, False, 1, 0, 8), _EDGE_PAYLOADS)  # 1-bit signed, last byte
@example((3, 12, "big_endian", False, False, 0.1, -5.0, 8), _EDGE_PAYLOADS)  # crosses a byte border
@example((3, 64, "little_endian", True, False, 1, 0, 16), _EDGE_PAYLOADS)  # spans nine bytes (FD)
@example((_sawtooth(4), 64, "big_endian", False, False, 1, 0, 16), _EDGE_PAYLOADS)  # nine bytes, BE
@example((0, 32, "little_endian", False, True, 1, 0, 8), [b"\x00\x00\xc0\x7f" + bytes(60)])  # NaN
@example((7, 64, "big_endian", False, True, 2.5, 1, 8), _EDGE_PAYLOADS)  # double, scaled
@example((480, 32, "little_endian", True, False, 2**20, 2**40, 64), _EDGE_PAYLOADS)  # exact int64
def test_single_signal_layouts_decode_exactly_as_cantools(
    layout: Layout, payloads: list[bytes]
) -> None:
    _check(layout, payloads)


@settings(max_examples=60, deadline=None)
@given(st.lists(layouts().filter(lambda x: x[7] == 8), min_size=2, max_size=6), _PAYLOADS)
def test_several_signals_of_one_message_decode_together_as_cantools_does_each(
    signals: list[Layout], payloads: list[bytes]
) -> None:
    """Signals of one message may overlap (as in opendbc): each must read its own bits."""
    built = []
    for i, (start, bits, order, signed, is_float, scale, offset, _) in enumerate(signals):
        conversion = BaseConversion.factory(scale=scale, offset=offset, is_float=is_float)
        built.append(
            Signal(f"S{i}", start, bits, byte_order=order, is_signed=signed, conversion=conversion)
        )  # type: ignore[arg-type]
    message = Message(0x321, "MANY", 8, built, strict=False)
    data = np.array([list(p[:8]) for p in payloads], np.uint8)
    n = len(payloads)
    batch = FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64),
        frame_id=np.full(n, 0x321, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=data,
    )
    decoded = BatchDecoder(Database([message], strict=False)).decode(batch)
    got = {
        (int(t), decoded.signal_names[s]): v
        for t, s, v in zip(
            decoded.timestamp_s.tolist(), decoded.signal_index.tolist(), decoded.value.tolist()
        )
    }
    for i, signal in enumerate(built):
        alone = Message(1, "ALONE", 8, [signal])
        for row in range(n):
            expected = float(alone.decode(bytes(data[row]), decode_choices=False)[signal.name])
            value = got[(row, f"S{i}")]
            assert value == expected or (math.isnan(value) and math.isnan(expected))
