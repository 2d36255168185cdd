"""Safe aggregates (pure core): groups under k vehicles are never released; the OpenDP
release noises every cell of the box with the documented scale, bounds each vehicle's
contribution, and its noise behaves as the Laplace distribution says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivetrain.cloud.privacy.aggregates import (
    NS_PER_HOUR,
    BoundingBox,
    LocationSamples,
    dp_counts,
    k_anonymous,
)
from drivetrain.core.errors import BadInputError

HOUR = 480_000  # an hour index (2024-10-04)


def _samples(cars: dict[str, tuple[float, float]], hour: int = HOUR, each: int = 3
             ) -> LocationSamples:
    """``each`` samples per car at its position, in ``hour``."""
    rows = [(v, lat, lon, hour * NS_PER_HOUR + i * 60_000_000_000)
            for v, (lat, lon) in cars.items() for i in range(each)]
    return LocationSamples(np.array([r[0] for r in rows], dtype=object),
                           np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                           np.array([r[3] for r in rows], dtype=np.int64))


def test_a_group_under_k_vehicles_is_suppressed_and_a_group_of_k_is_released() -> None:
    crowd = {f"v{i}": (48.1351, 11.5821) for i in range(5)}  # five cars in one cell
    lonely = {"alone": (52.5201, 13.4051), "pair": (52.5202, 13.4052)}  # two in another
    release = k_anonymous(_samples({**crowd, **lonely}), k=5, cell_deg=0.01)
    assert [(g.cell, g.vehicles, g.samples) for g in release.groups] == [("48.13,11.58", 5, 15)]
    assert release.suppressed == 1
    assert "52.52" not in repr(release.groups)


def test_one_vehicle_with_many_samples_never_makes_a_group_of_k() -> None:
    release = k_anonymous(_samples({"busy": (48.1351, 11.5821)}, each=50), k=2, cell_deg=0.01)
    assert release.groups == () and release.suppressed == 1


def test_groups_are_per_hour_or_over_the_whole_window() -> None:
    cars = {f"v{i}": (48.1351, 11.5821) for i in range(3)}
    a, b = _samples(cars, HOUR), _samples(cars, HOUR + 1)
    both = LocationSamples(np.concatenate([a.vehicle, b.vehicle]), np.concatenate([a.lat, b.lat]),
                           np.concatenate([a.lon, b.lon]), np.concatenate([a.ts_ns, b.ts_ns]))
    hourly = k_anonymous(both, k=3, cell_deg=0.01)
    assert [g.vehicles for g in hourly.groups] == [3, 3]
    assert [g.hour.hour for g in hourly.groups if g.hour] == [0, 1]
    whole = k_anonymous(both, k=3, cell_deg=0.01, per_hour=False)
    assert [(g.vehicles, g.samples, g.hour) for g in whole.groups] == [(3, 18, None)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 1}, "k 1 is too small"),
    ({"cell_deg": 0.0}, "cell_deg 0.0 is out of range"),
])
def test_bad_k_or_cell_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        k_anonymous(_samples({}), **{"k": 5, "cell_deg": 0.01, **kwargs})


@pytest.mark.parametrize("text", ["1,2,3", "48.3,11.3,48.0,11.8", "a,b,c,d", "0,0,91,1"])
def test_a_bad_bounding_box_is_refused(text: str) -> None:
    with pytest.raises(BadInputError, match="bbox"):
        BoundingBox.parse(text)


BOX = BoundingBox.parse("48.00,11.00,48.99,11.99")  # 100 x 100 cells of 0.01 degrees


def test_dp_noise_on_empty_cells_follows_the_laplace_scale() -> None:
    """Over 10,000 empty cells: the mean noise is ~0 and the mean |noise| ~ the scale (a
    discrete Laplace of scale b has E|X| ~ b for b >> 1); 95 % of |noise| stay under b ln 20."""
    epsilon, bound = 0.5, 4
    scale = bound / epsilon  # 8
    release = dp_counts(_samples({}), bbox=BOX, hours=[HOUR], epsilon=epsilon, k=2,
                        cell_deg=0.01, max_groups_per_vehicle=bound)
    assert release.noise_scale == scale and release.epsilon == epsilon
    assert release.sensitivity == bound
    released = np.array([g.vehicles for g in release.groups])
    # P(noise >= 2) for a two-sided geometric of scale 8: alpha^2 / (1 + alpha), alpha = e^-1/8
    alpha = math.exp(-1 / scale)
    expected = 10_000 * alpha**2 / (1 + alpha)
    assert abs(len(released) - expected) < 5 * math.sqrt(expected)
    # the released (positive) noise is geometric: its mean above the threshold is ~ 2 + 1/(1-alpha) - 1
    assert abs(released.mean() - (2 + alpha / (1 - alpha))) < 0.6
    assert (released < 2 + scale * math.log(20) * 2).mean() > 0.99


def test_dp_counts_a_crowd_within_the_noise_and_bounds_each_vehicles_contribution() -> None:
    crowd = {f"v{i}": (48.1351, 11.5821) for i in range(60)}
    estimates = []
    for _ in range(40):
        release = dp_counts(_samples(crowd), bbox=BOX, hours=[HOUR], epsilon=2.0, k=2,
                            cell_deg=0.01, max_groups_per_vehicle=1)
        [cell] = [g for g in release.groups if g.cell == "48.13,11.58"]
        estimates.append(cell.vehicles)
    # scale 0.5: the mean of 40 noisy counts is within 0.5 of 60; none is off by more than 8
    assert abs(np.mean(estimates) - 60) < 0.5 and max(abs(e - 60) for e in estimates) <= 8


def test_a_vehicle_counts_in_at_most_its_bound_of_groups() -> None:
    # one car crossing 30 cells within the hour, bound 4: at most 4 cells hold it
    rows = [("roamer", 48.005 + 0.01 * i, 11.005, HOUR * NS_PER_HOUR + i) for i in range(30)]
    samples = LocationSamples(np.array([r[0] for r in rows], dtype=object),
                              np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                              np.array([r[3] for r in rows], dtype=np.int64))
    release = dp_counts(samples, bbox=BOX, hours=[HOUR], epsilon=10.0, k=1_000_000,
                        cell_deg=0.01, max_groups_per_vehicle=4)
    assert release.groups == () and release.suppressed == 10_000  # nothing reaches k
    from drivetrain.cloud.privacy import aggregates

    seen: list[np.ndarray] = []
    real = aggregates._laplace

    def spy(counts: np.ndarray, **kw: object) -> tuple[np.ndarray, float]:
        seen.append(counts.copy())
        return real(counts, **kw)  # type: ignore[arg-type]

    aggregates._laplace = spy  # type: ignore[assignment]
    try:
        dp_counts(samples, bbox=BOX, hours=[HOUR], epsilon=1.0, k=5, cell_deg=0.01,
                  max_groups_per_vehicle=4)
    finally:
        aggregates._laplace = real  # type: ignore[assignment]
    assert int(seen[0].sum()) == 4 and int(seen[0].max()) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epsilon": 0.0}, "epsilon 0.0 is out of range"),
    ({"epsilon": 11.0}, "epsilon 11.0 is out of range"),
    ({"max_groups_per_vehicle": 0}, "max_groups_per_vehicle 0"),
    ({"cell_deg": 0.001, "hours": list(range(HOUR, HOUR + 48))}, "groups"),
])
def test_a_dp_release_outside_its_limits_is_refused(kwargs: dict, message: str) -> None:
    args = {"bbox": BOX, "hours": [HOUR], "epsilon": 1.0, "k": 5, "cell_deg": 0.01, **kwargs}
    with pytest.raises(BadInputError, match=message):
        dp_counts(_samples({}), **args)
