"""The batch decoder against cantools on every message of every real opendbc DBC.

Run with ``-rP`` to see the counts (files, messages, payloads) the tests print.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cantools
import numpy as np
import numpy.typing as npt
import pytest
from cantools.database.can import Message, Signal
from cantools.database.errors import DecodeError

from drivetrain.core.can import BatchDecoder, DecodedSignals, FrameBatch, load_dbc
from drivetrain.core.can.decode_plan import cantools_layout_problem, network_first_bit
from drivetrain.core.errors import DbcFormatError

PAYLOADS_PER_MESSAGE = 64
#: opendbc generator sources that import a file produced by opendbc's Python generator, which
#: the data set does not contain: they cannot be resolved, so the loader refuses them.
UNRESOLVABLE = {
    "dbc/generator/chrysler/chrysler_ram_dt.dbc": "_stellantis_common_ram_dt_generated.dbc",
    "dbc/generator/chrysler/chrysler_ram_hd.dbc": "_stellantis_common_ram_hd_generated.dbc",
}


def _dbc_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "opendbc").rglob("*.dbc"))


@pytest.mark.shared_data
def test_loader_reads_every_opendbc_file_cantools_can_and_more(
    shared_data: Path, report_figure: Callable[[str], None]
) -> None:
    root = shared_data / "opendbc"
    rows: list[tuple[str, str, str]] = []
    cantools_ok = ours_ok = 0
    for path in _dbc_files(shared_data):
        name = str(path.relative_to(root))
        try:
            cantools.database.load_file(path, strict=False)
            theirs = "ok"
            cantools_ok += 1
        except Exception as e:  # noqa: BLE001 - tabulating the reference's refusals
            theirs = str(e).splitlines()[0][:70]
        try:
            loaded = load_dbc(path)
            ours = f"ok ({len(loaded.database.messages)} messages, {len(loaded.notes)} notes)"
            ours_ok += 1
        except DbcFormatError as e:
            ours = str(e)[:90]
            assert name in UNRESOLVABLE and UNRESOLVABLE[name] in str(e), name
        if theirs != "ok" or not ours.startswith("ok"):
            rows.append((name, theirs, ours))
    print(f"\n{'file':58} {'cantools':72} ours")
    for row in rows:
        print(f"{row[0]:58} {row[1]:72} {row[2]}")
    total = len(_dbc_files(shared_data))
    print(f"cantools {cantools_ok}/{total}; ours {ours_ok}/{total}")
    report_figure(f"opendbc files loaded: cantools {cantools_ok}/{total}, ours {ours_ok}/{total}")
    assert (total, cantools_ok, ours_ok) == (119, 97, 117)


@pytest.mark.shared_data
def test_inlined_generator_source_equals_the_generated_dbc(shared_data: Path) -> None:
    ours = load_dbc(shared_data / "opendbc/dbc/generator/toyota/toyota_new_mc_pt.dbc").database
    generated = load_dbc(shared_data / "comma2k19/toyota_new_mc_pt_generated.dbc").database

    def layout(db: cantools.database.can.Database) -> dict[str, object]:
        return {
            m.name: (
                m.frame_id,
                m.length,
                [
                    (
                        s.name,
                        s.start,
                        s.length,
                        s.byte_order,
                        s.is_signed,
                        s.conversion.scale,
                        s.conversion.offset,
                    )
                    for s in m.signals
                ],
            )
            for m in db.messages
        }

    assert layout(ours) == layout(generated)


@dataclass
class _Tally:
    files: int = 0
    messages: int = 0
    payloads: int = 0
    read_per_signal: int = 0


def _batch(message: Message, payloads: npt.NDArray[np.uint8]) -> FrameBatch:
    n = len(payloads)
    return FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64),
        frame_id=np.full(n, message.frame_id, np.uint32),
        is_extended=np.full(n, message.is_extended_frame),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, message.length, np.uint8),
        data=payloads,
    )


def _per_frame(decoded: DecodedSignals, n: int) -> list[dict[str, float]]:
    """The values of each frame (the timestamp is the frame's index), as name -> value."""
    frames: list[dict[str, float]] = [{} for _ in range(n)]
    names = decoded.signal_names
    for t, i, v in zip(
        decoded.timestamp_s.tolist(),
        decoded.signal_index.tolist(),
        decoded.value.tolist(),
        strict=True,
    ):
        frames[int(t)][names[i]] = v
    return frames


def _same(expected: object, actual: float) -> bool:
    value = float(expected)  # type: ignore[arg-type]
    return value == actual or (math.isnan(value) and math.isnan(actual))


def _alone(signal: Signal, length: int) -> Message:
    """A one-signal cantools message: the reference for a signal cantools cannot decode in place."""
    single = copy.copy(signal)
    single.multiplexer_signal, single.multiplexer_ids, single.is_multiplexer = None, None, False
    return Message(frame_id=1, name="alone", length=length, signals=[single], strict=False)


def _check_message(
    message: Message, decoder: BatchDecoder, db: object, rng: np.random.Generator, tally: _Tally
) -> None:
    width = max(8, message.length)
    payloads = rng.integers(0, 256, (PAYLOADS_PER_MESSAGE, width), dtype=np.uint8)
    payloads[0], payloads[1] = 0, 255
    payloads[:, message.length :] = 0
    ours = _per_frame(decoder.decode(_batch(message, payloads)), len(payloads))
    problem = cantools_layout_problem(message)
    via_database = db.get_message_by_frame_id(message.frame_id) is message  # type: ignore[attr-defined]
    alone: dict[str, Message] = {}
    if problem is not None:
        alone = {
            s.name: _alone(s, message.length)
            for s in message.signals
            if network_first_bit(s) + s.length <= 8 * message.length
        }
    for row, got in enumerate(ours):
        data = bytes(payloads[row, : message.length])
        where = f"{message.name} payload {data.hex()}"
        if problem is None:
            try:
                if via_database:
                    expected = db.decode_message(message.frame_id, data, decode_choices=False)  # type: ignore[attr-defined]
                else:
                    expected = message.decode(data, decode_choices=False)
            except DecodeError:
                assert got == {}, f"{where}: cantools refuses the frame, we decoded {got}"
                continue
            assert set(got) == set(expected), (
                f"{where}: signals {sorted(got)} != {sorted(expected)}"
            )
            for name, value in expected.items():
                assert _same(value, got[name]), (
                    f"{where}: {name} = {got[name]!r}, cantools {value!r}"
                )
        else:
            # cantools cannot decode this message as a whole: check each signal we emit against
            # cantools decoding that signal alone, and that root signals inside it are emitted.
            for signal in message.signals:
                if signal.name not in alone:
                    assert signal.name not in got, (
                        f"{where}: {signal.name} lies past the message end"
                    )
                    continue
                if signal.multiplexer_signal is None and got:  # (got is empty for refused frames)
                    assert signal.name in got, f"{where}: {signal.name} missing"
                if signal.name in got:
                    expected_value = alone[signal.name].decode(data, decode_choices=False)[
                        signal.name
                    ]
                    assert _same(expected_value, got[signal.name]), f"{where}: {signal.name}"
                    tally.read_per_signal += 1
        tally.payloads += 1
    tally.messages += 1


SHARDS = 4


@pytest.mark.shared_data
@pytest.mark.parametrize("shard", range(SHARDS))
def test_batch_decoder_agrees_with_cantools_on_every_opendbc_message(
    shared_data: Path, shard: int, report_figure: Callable[[str], None]
) -> None:
    """Files are dealt round-robin into shards so parallel workers share the work."""
    rng = np.random.default_rng(20240601 + shard)
    tally = _Tally()
    for path in _dbc_files(shared_data)[shard::SHARDS]:
        try:
            db = load_dbc(path).database
        except DbcFormatError:
            continue  # the two unresolvable generator sources, asserted above
        decoder = BatchDecoder(db)
        for message in db.messages:
            _check_message(message, decoder, db, rng, tally)
        tally.files += 1
    print(
        f"\nshard {shard + 1}/{SHARDS}: batch decoder == cantools: {tally.messages} messages of {tally.files} DBC files, "
        f"{tally.payloads} random payloads; {tally.read_per_signal} values of messages cantools "
        "cannot decode whole checked against cantools decoding each signal alone"
    )
    report_figure(
        f"batch decoder == cantools on {tally.messages} messages of {tally.files} opendbc files "
        f"({tally.payloads} random payloads)"
    )
    expected_files = len(
        [
            p
            for p in _dbc_files(shared_data)[shard::SHARDS]
            if str(p.relative_to(shared_data / "opendbc")) not in UNRESOLVABLE
        ]
    )
    assert tally.files == expected_files
    assert tally.messages > 1000
