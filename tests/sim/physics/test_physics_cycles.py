"""The packaged drive cycles are the published standards, and bad cycle files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivetrain.core.errors import DriveCycleFormatError, SimulationConfigError
from drivetrain.sim.physics import CYCLE_NAMES, load_cycle, read_cycle_csv
from drivetrain.sim.physics.cycles import WLTC_PHASES

MILE_M = 1609.344


def test_wltc_class3_has_the_gtr15_duration_distance_and_top_speed() -> None:
    cycle = load_cycle("wltc_class3")
    assert cycle.duration_s == 1800
    assert cycle.distance_m / 1000 == pytest.approx(23.27, abs=0.01)
    assert cycle.max_speed_kmh == pytest.approx(131.3, abs=1e-9)


def test_wltc_class3_phases_have_the_gtr15_distances() -> None:
    # UN GTR 15 Annex 1, class 3b: low 3.095, medium 4.756, high 7.162, extra high 8.254 km.
    cycle = load_cycle("wltc_class3")
    expected = {"low": 3.095, "medium": 4.756, "high": 7.162, "extra_high": 8.254}
    start = 0
    for name, end in WLTC_PHASES:
        phase = cycle.segment(start, end, name)
        assert phase.distance_m / 1000 == pytest.approx(expected[name], abs=0.002), name
        start = end


def test_udds_has_the_epa_duration_distance_and_top_speed() -> None:
    cycle = load_cycle("udds")
    assert cycle.duration_s == 1369
    assert cycle.distance_m / MILE_M == pytest.approx(7.45, abs=0.005)
    assert cycle.max_speed_kmh / 1.609344 == pytest.approx(56.7, abs=1e-6)


def test_hwfet_has_the_epa_duration_distance_and_top_speed() -> None:
    cycle = load_cycle("hwfet")
    assert cycle.duration_s == 765
    assert cycle.distance_m / MILE_M == pytest.approx(10.26, abs=0.005)
    assert cycle.max_speed_kmh / 1.609344 == pytest.approx(59.9, abs=1e-6)


def test_every_cycle_is_sampled_at_1_hz_from_zero_with_finite_nonnegative_speeds() -> None:
    for name in CYCLE_NAMES:
        cycle = load_cycle(name)
        assert np.array_equal(cycle.time_s, np.arange(len(cycle.time_s)))
        assert np.isfinite(cycle.speed_mps).all() and (cycle.speed_mps >= 0).all()
        assert cycle.speed_mps[0] == 0 and cycle.speed_mps[-1] == 0


def test_unknown_cycle_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(SimulationConfigError, match="'nedc'.*wltc_class3"):
        load_cycle("nedc")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header"),
        ("time,speed\n0,0\n1,1\n", "header"),
        ("time_s,speed_furlongs\n0,0\n1,1\n", "header"),
        ("time_s,speed_kmh\n0,0\n1,abc\n", ":3: '1,abc' is not two numbers"),
        ("time_s,speed_kmh\n0,0\n2,5\n", ":3: time '2'; expected 1"),
        ("time_s,speed_kmh\n0,0\n1,-3\n", ":3: speed '-3'; expected a finite number >= 0"),
        ("time_s,speed_kmh\n0,0\n1,nan\n", "speed 'nan'"),
        ("time_s,speed_kmh\n0,0\n1,2,3\n", "3 fields"),
        ("time_s,speed_kmh\n0,0\n", "1 rows; expected at least 2"),
    ],
)
def test_malformed_cycle_file_is_refused_naming_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "cycle.csv"
    path.write_text(text)
    with pytest.raises(DriveCycleFormatError, match=message) as info:
        read_cycle_csv(path)
    assert str(path) in str(info.value)


def test_missing_cycle_file_is_a_format_error_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(DriveCycleFormatError, match="cannot read"):
        read_cycle_csv(tmp_path / "absent.csv")


def test_cycle_file_in_mph_is_converted_to_metres_per_second(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("# comment\ntime_s,speed_mph\n0,0.0\n1,10.0\n")
    cycle = read_cycle_csv(path)
    assert cycle.speed_mps[1] == pytest.approx(4.4704)
