"""The fleet's CAN path: compiled map against the foundation's ``SignalMap.apply``, the feeder
against a straightforward reference, and campaign sampling unchanged by the feeder."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.can import BatchDecoder
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.vss.datatypes import is_integer
from drivetrain.edge import CollectionEngine, Samples
from drivetrain.sim.can.vehicles import load_vehicle_can
from drivetrain.sim.fleet import CanFeeder, CompiledSignalMap, ModelBus
from drivetrain.sim.fleet.canpath import mapped_signals_only

N = 6


@pytest.fixture(scope="module", params=["compact_bev", "suv_bev"])
def bus(request: pytest.FixtureRequest) -> ModelBus:
    can = load_vehicle_can(request.param)
    return ModelBus(can, np.arange(10, 10 + N), 3, can.signal_map.paths, builtin_catalog())


def _values(bus: ModelBus, second: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(second)
    return {p: rng.uniform(0.0, 50.0, N) for p in bus.mapped_paths}


def test_compiled_map_gives_the_rows_and_values_of_signal_map_apply(bus: ModelBus) -> None:
    frames = bus.frames(0.0, 1.0, _values(bus, 0))
    decoded = BatchDecoder(bus.can.database).decode(frames)
    reference = bus.can.signal_map.apply(decoded)
    rows, path, value = CompiledSignalMap(bus.can.signal_map, reference.paths).map(decoded)
    order = np.lexsort((path, rows))
    ref_order = np.lexsort((reference.path_index, reference.source_row))
    assert np.array_equal(rows[order], reference.source_row[ref_order])
    assert np.array_equal(path[order], reference.path_index[ref_order])
    assert np.array_equal(value[order], reference.value[ref_order])


def test_integer_vss_signals_arrive_as_whole_numbers(bus: ModelBus) -> None:
    catalog = builtin_catalog()
    frames = bus.frames(0.0, 1.0, _values(bus, 1))
    samples, _ = bus.decode(frames, CanFeeder(0.0), (0.0, 1.0))
    integers = 0
    for index, path in enumerate(samples.paths):
        values = samples.value[samples.path_index == index]
        datatype = catalog.get(path).datatype
        if datatype == "boolean":
            assert np.isin(values, (0.0, 1.0)).all(), path
        elif is_integer(datatype):
            integers += 1
            assert np.array_equal(values, np.rint(values)), path
            assert catalog.validate_array(path, values.astype(np.int64)).all(), path
    assert integers >= 5


def test_decoder_of_mapped_signals_decodes_every_frame_and_each_mapped_value_alike(
    bus: ModelBus,
) -> None:
    frames = bus.frames(0.0, 1.0, _values(bus, 2))
    full, full_report = BatchDecoder(bus.can.database).decode_with_report(frames)
    reduced_db = mapped_signals_only(bus.can.database, bus.can.signal_map)
    reduced, report = BatchDecoder(reduced_db).decode_with_report(frames)
    assert report.decoded_frames == full_report.decoded_frames == len(frames)
    a = bus.can.signal_map.apply(full)
    b = bus.can.signal_map.apply(reduced)
    key_a = sorted(
        zip(a.path_index.tolist(), a.timestamp_s.tolist(), a.value.tolist(), strict=True)
    )
    key_b = sorted(
        zip(b.path_index.tolist(), b.timestamp_s.tolist(), b.value.tolist(), strict=True)
    )
    assert key_a == key_b


def _reference_forwarded(decoded, interval_s: float) -> list[int]:  # type: ignore[no-untyped-def]
    """Per (bus, message, signal) in time order: first, changed, or first in a new slot."""
    last: dict[tuple[int, int, int], tuple[float, float]] = {}
    keep = []
    order = sorted(
        range(len(decoded)),
        key=lambda i: (
            int(decoded.bus[i]),
            int(decoded.message_index[i]),
            int(decoded.signal_index[i]),
            float(decoded.timestamp_s[i]),
            i,
        ),
    )
    for i in order:
        key = (int(decoded.bus[i]), int(decoded.message_index[i]), int(decoded.signal_index[i]))
        value, slot = float(decoded.value[i]), float(np.floor(decoded.timestamp_s[i] / interval_s))
        seen = last.get(key)
        if seen is None or seen[0] != value or seen[1] != slot:
            keep.append(i)
        last[key] = (value, slot)
    return sorted(keep)


def test_feeder_forwards_first_changed_and_new_slot_values_like_a_per_signal_loop(
    bus: ModelBus,
) -> None:
    values = _values(bus, 3)
    parts = [
        bus.frames(float(t), float(t + 1), {k: v + (t // 2) for k, v in values.items()})
        for t in range(4)
    ]
    from drivetrain.core.can import FrameBatch

    frames = FrameBatch.concat(parts)
    frames = frames.take(np.lexsort((frames.timestamp_s, frames.bus)))  # by vehicle, then time
    decoded = BatchDecoder(bus.can.database).decode(frames)
    forwarded = CanFeeder(1.0).forwarded(decoded).tolist()
    assert forwarded == _reference_forwarded(decoded, 1.0)
    assert CanFeeder(0.0).forwarded(decoded).tolist() == list(range(len(decoded)))


def test_feeder_keeps_what_the_default_campaign_collects(bus: ModelBus) -> None:
    """The 1 Hz default campaign collects the same samples from the feeder's output as from
    every decoded value."""
    everything, forwarded = CollectionEngine(), CollectionEngine()
    values = _values(bus, 4)
    got_all, got_fed = [], []
    for t in range(5):
        frames = bus.frames(float(t), float(t + 1), {k: v + t % 3 for k, v in values.items()})
        window = (float(t), float(t + 1))
        for feeder, engine, out in (
            (CanFeeder(0.0), everything, got_all),
            (CanFeeder(1.0), forwarded, got_fed),
        ):
            samples, _ = bus.decode(frames, feeder, window)
            rows = samples.rows_of(0)
            ts = np.rint(samples.ts_s[rows] * 1e9).astype(np.int64)
            result = engine.process(
                Samples(samples.paths, samples.path_index[rows], ts, samples.value[rows]),
                (t + 1) * 1_000_000_000,
            )
            for c in result.collected:
                out.extend(
                    zip(
                        c.samples.path_of_rows().tolist(),
                        c.samples.ts_ns.tolist(),
                        c.samples.value.tolist(),
                        strict=True,
                    )
                )
    assert sorted(got_fed) == sorted(got_all)
    assert len(got_all) >= 5 * len(bus.mapped_paths)


def test_feeder_refuses_a_negative_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        CanFeeder(-1.0)


def test_model_bus_refuses_more_vehicles_than_the_bus_column_can_number() -> None:
    can = load_vehicle_can("compact_bev")
    with pytest.raises(ValueError, match="at most 65536"):
        ModelBus(can, np.arange(70_000), 0, can.signal_map.paths)
