"""Batch decoder behaviour: grouping, unknown ids, short frames, multiplexing, CAN FD, labels."""

from __future__ import annotations

import numpy as np
import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion

from drivetrain.core.can import BatchDecoder, DecodedSignals, FrameBatch, FrameKey
from drivetrain.core.errors import DbcFormatError, NotFoundError


def _signal(name: str, start: int, length: int, **kw: object) -> Signal:
    conversion = BaseConversion.factory(
        scale=kw.pop("scale", 1),
        offset=kw.pop("offset", 0),
        choices=kw.pop("choices", None),  # type: ignore[arg-type]
        is_float=bool(kw.pop("is_float", False)),
    )
    return Signal(name, start, length, conversion=conversion, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def database() -> Database:
    speed = Message(
        0x100,
        "SPEED",
        8,
        [
            _signal("WHEEL_SPEED", 7, 16, byte_order="big_endian", scale=0.01),
            _signal("GEAR", 16, 3, choices={0: "P", 1: "R", 2: "N", 3: "D"}),
        ],
    )
    muxed = Message(
        0x200,
        "MUXED",
        8,
        [
            _signal("PAGE", 0, 8, is_multiplexer=True),
            _signal("TEMP", 8, 8, multiplexer_ids=[1], multiplexer_signal="PAGE", offset=-40),
            _signal("VOLTAGE", 8, 16, multiplexer_ids=[2, 3], multiplexer_signal="PAGE", scale=0.1),
            _signal("ALWAYS", 56, 8),
        ],
    )
    same_id_extended = Message(
        0x100, "J1939", 8, [_signal("TORQUE", 0, 16, is_signed=True)], is_extended_frame=True
    )
    fd = Message(
        0x300,
        "FD",
        64,
        [
            _signal("TAIL", 500, 12),
            _signal("ACROSS_9_BYTES", 4, 64, is_signed=True),
            _signal("BE_TAIL", 479, 16, byte_order="big_endian"),
        ],
        is_fd=True,
    )
    return Database([speed, muxed, same_id_extended, fd])


def _batch(frames: list[tuple[int, bool, bytes]], width: int = 8) -> FrameBatch:
    n = len(frames)
    data = np.zeros((n, width), np.uint8)
    for i, (_, _, payload) in enumerate(frames):
        data[i, : len(payload)] = np.frombuffer(payload, np.uint8)
    return FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64) / 10,
        frame_id=np.array([f[0] for f in frames], np.uint32),
        is_extended=np.array([f[1] for f in frames], np.bool_),
        bus=np.ones(n, np.uint16),
        length=np.array([len(f[2]) for f in frames], np.uint8),
        data=data,
    )


def _rows(decoded: DecodedSignals) -> list[tuple[float, str, str, float]]:
    rows = [
        (t, decoded.message_names[m], decoded.signal_names[s], v)
        for t, m, s, v in zip(
            decoded.timestamp_s.tolist(),
            decoded.message_index.tolist(),
            decoded.signal_index.tolist(),
            decoded.value.tolist(),
        )
    ]
    return sorted(rows)


def test_standard_and_extended_frames_with_the_same_id_decode_as_different_messages(
    database: Database,
) -> None:
    decoder = BatchDecoder(database)
    decoded = decoder.decode(
        _batch(
            [
                (0x100, False, bytes([0x27, 0x10, 3, 0, 0, 0, 0, 0])),
                (0x100, True, bytes([0xFE, 0xFF, 0, 0, 0, 0, 0, 0])),
            ]
        )
    )
    assert _rows(decoded) == [
        (0.0, "SPEED", "GEAR", 3.0),
        (0.0, "SPEED", "WHEEL_SPEED", 100.0),
        (0.1, "J1939", "TORQUE", -2.0),
    ]
    assert decoder.message_for(0x100, is_extended=True).name == "J1939"
    assert FrameKey(0x100, True) in decoder.known_frame_ids


def test_unknown_ids_are_counted_per_id_and_produce_no_values(database: Database) -> None:
    decoder = BatchDecoder(database)
    frames = [
        (0x7FF, False, bytes(8)),
        (0x100, False, bytes(8)),
        (0x7FF, False, bytes(8)),
        (0x18FEF100, True, bytes(8)),
        (0x200, True, bytes(8)),
        (0x900, False, bytes(8)),
    ]
    decoded, report = decoder.decode_with_report(_batch(frames))
    assert report.unknown_frames == {
        FrameKey(0x7FF, False): 2,
        FrameKey(0x18FEF100, True): 1,
        FrameKey(0x200, True): 1,
        FrameKey(0x900, False): 1,
    }
    assert report.unknown_frame_count == 5 and report.decoded_frames == 1 and report.frames == 6
    assert set(decoded.frame_id.tolist()) == {0x100}


def test_frames_shorter_than_the_dbc_length_decode_the_signals_that_fit(database: Database) -> None:
    decoder = BatchDecoder(database)
    decoded, report = decoder.decode_with_report(
        _batch([(0x100, False, bytes([0, 50])), (0x100, False, bytes([0, 50, 2]))])
    )
    assert _rows(decoded) == [
        (0.0, "SPEED", "WHEEL_SPEED", 0.5),
        (0.1, "SPEED", "GEAR", 2.0),
        (0.1, "SPEED", "WHEEL_SPEED", 0.5),
    ]
    assert report.truncated_frames == {FrameKey(0x100, False): 2}
    # cantools with allow_truncated=True agrees
    message = database.get_message_by_name("SPEED")
    assert message.decode(bytes([0, 50]), decode_choices=False, allow_truncated=True) == {
        "WHEEL_SPEED": 0.5
    }


def test_multiplexer_selects_branch_signals_and_unknown_values_refuse_the_frame(
    database: Database,
) -> None:
    decoder = BatchDecoder(database)
    frames = [
        (0x200, False, bytes([1, 100, 0, 0, 0, 0, 0, 9])),
        (0x200, False, bytes([3, 0x10, 0x27, 0, 0, 0, 0, 9])),
        (0x200, False, bytes([7, 1, 2, 3, 4, 5, 6, 9])),
    ]
    decoded, report = decoder.decode_with_report(_batch(frames))
    assert _rows(decoded) == [
        (0.0, "MUXED", "ALWAYS", 9.0),
        (0.0, "MUXED", "PAGE", 1.0),
        (0.0, "MUXED", "TEMP", 60.0),
        (0.1, "MUXED", "ALWAYS", 9.0),
        (0.1, "MUXED", "PAGE", 3.0),
        (0.1, "MUXED", "VOLTAGE", 1000.0),
    ]
    assert report.rejected_frames == {FrameKey(0x200, False): 1}
    assert report.decoded_frames == 2


def test_can_fd_signals_past_byte_8_and_across_nine_bytes_match_cantools(
    database: Database,
) -> None:
    rng = np.random.default_rng(7)
    payloads = [bytes(rng.integers(0, 256, 64, dtype=np.uint8)) for _ in range(20)] + [
        bytes(64),
        b"\xff" * 64,
    ]
    decoder = BatchDecoder(database)
    decoded = decoder.decode(_batch([(0x300, False, p) for p in payloads], width=64))
    message = database.get_message_by_name("FD")
    expected = sorted(
        (i / 10, "FD", k, float(v))
        for i, p in enumerate(payloads)
        for k, v in message.decode(p, decode_choices=False).items()
    )
    assert _rows(decoded) == expected


def test_rows_are_grouped_by_message_and_signal_in_capture_order(database: Database) -> None:
    decoder = BatchDecoder(database)
    frames = [(0x100, False, bytes([0, i, 1, 0, 0, 0, 0, 0])) for i in range(3)]
    decoded = decoder.decode(_batch(frames))
    names = [decoded.signal_names[i] for i in decoded.signal_index.tolist()]
    assert names == ["WHEEL_SPEED"] * 3 + ["GEAR"] * 3
    assert decoded.timestamp_s.tolist() == [0.0, 0.1, 0.2] * 2
    assert decoded.bus.tolist() == [1] * 6


def test_value_table_labels_are_available_beside_numeric_values(database: Database) -> None:
    decoder = BatchDecoder(database)
    decoded = decoder.decode(_batch([(0x100, False, bytes([0, 0, 3, 0, 0, 0, 0, 0]))]))
    labels = dict(
        zip(
            (decoded.signal_names[i] for i in decoded.signal_index.tolist()),
            decoder.labels(decoded),
        )
    )
    assert labels == {"WHEEL_SPEED": None, "GEAR": "D"}
    assert decoder.choices("SPEED", "GEAR")[1] == "R"
    with pytest.raises(NotFoundError, match="SPEED.NOPE"):
        decoder.choices("SPEED", "NOPE")


def test_message_for_an_unknown_id_names_the_id(database: Database) -> None:
    with pytest.raises(NotFoundError, match="standard frame id 0x7ff"):
        BatchDecoder(database).message_for(0x7FF)


def test_empty_batch_decodes_to_no_rows(database: Database) -> None:
    decoded, report = BatchDecoder(database).decode_with_report(FrameBatch.empty())
    assert len(decoded) == 0 and report.frames == 0 and report.unknown_frames == {}


def test_float_signal_of_unsupported_width_is_refused() -> None:
    odd = Message(1, "ODD", 8, [_signal("HALF", 0, 24, is_float=True)], strict=False)
    with pytest.raises(DbcFormatError, match="'HALF': float signal of 24 bits"):
        BatchDecoder(Database([odd], strict=False))
