"""Samples that share one path dictionary tick after tick (a fleet runner's buses) and samples
whose dictionaries differ must be collected alike."""

from __future__ import annotations

import numpy as np

from drivetrain.edge import CollectionEngine, Samples

S = 1_000_000_000


def _samples(paths: tuple[str, ...], index: list[int], second: int) -> Samples:
    return Samples(
        paths, np.array(index, np.int32), np.full(len(index), second * S, np.int64),
        np.arange(len(index), dtype=np.float64) + second,
    )


def test_engine_collects_the_same_rows_whether_the_dictionary_is_shared_or_reordered() -> None:
    shared = ("Vehicle.Speed", "Vehicle.TraveledDistance")
    reordered = ("Vehicle.TraveledDistance", "Vehicle.Speed", "Vehicle.Exterior.AirTemperature")
    engine = CollectionEngine()
    collected = []
    for second, (paths, index) in enumerate(
        [(shared, [0, 1]), (shared, [1, 0]), (reordered, [2, 1, 0]), (shared, [0])]
    ):
        result = engine.process(_samples(paths, index, second), (second + 1) * S)
        for c in result.collected:
            rows = c.samples
            collected.extend(
                (str(p), int(t), float(v))
                for p, t, v in zip(rows.path_of_rows(), rows.ts_ns, rows.value, strict=True)
            )
    assert sorted(collected) == sorted([
        ("Vehicle.Speed", 0, 0.0), ("Vehicle.TraveledDistance", 0, 1.0),
        ("Vehicle.TraveledDistance", S, 1.0), ("Vehicle.Speed", S, 2.0),
        ("Vehicle.Exterior.AirTemperature", 2 * S, 2.0), ("Vehicle.Speed", 2 * S, 3.0),
        ("Vehicle.TraveledDistance", 2 * S, 4.0),
        ("Vehicle.Speed", 3 * S, 3.0),
    ])


def test_concat_of_parts_with_equal_dictionaries_keeps_every_row_and_path() -> None:
    paths = ("Vehicle.Speed", "Vehicle.TraveledDistance")
    a = _samples(paths, [0, 1], 0)
    b = _samples(tuple(paths), [1], 1)  # an equal tuple, not the same object
    c = _samples(("Vehicle.TraveledDistance",), [0], 2)
    merged = Samples.concat([a, b, c])
    assert merged.path_of_rows().tolist() == [
        "Vehicle.Speed", "Vehicle.TraveledDistance", "Vehicle.TraveledDistance",
        "Vehicle.TraveledDistance",
    ]
    assert merged.ts_ns.tolist() == [0, 0, S, 2 * S]
    same = Samples.concat([a, b])
    assert same.paths == paths and same.path_index.tolist() == [0, 1, 1]
