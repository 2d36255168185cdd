"""Unit conversions a signal map may name."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.can.signal_map_units import canonical_unit, conversion_between
from drivetrain.core.errors import SignalMapError


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (36.0, "km/h", "m/s", 10.0),
        (10.0, "m/s", "km/h", 36.0),
        (60.0, "mph", "km/h", 96.56064),
        (100.0, "celsius", "fahrenheit", 212.0),
        (-40.0, "fahrenheit", "celsius", -40.0),
        (0.0, "celsius", "kelvin", 273.15),
        (32.0, "degF", "Celsius", 0.0),
        (0.5, "ratio", "percent", 50.0),
        (1.0, "bar", "kPa", 100.0),
        (180.0, "deg", "rad", np.pi),
        (2.0, "kWh", "Wh", 2000.0),
    ],
)
def test_unit_conversions_give_textbook_values(value: float, from_unit: str, to_unit: str, expected: float) -> None:
    converted = conversion_between(from_unit, to_unit).apply(np.array([value]))
    assert converted[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_converting_there_and_back_is_the_identity_within_rounding() -> None:
    values = np.linspace(-300, 300, 101)
    there = conversion_between("fahrenheit", "kelvin").apply(values)
    back = conversion_between("kelvin", "fahrenheit").apply(there)
    np.testing.assert_allclose(back, values, rtol=0, atol=1e-9)


def test_same_unit_under_two_spellings_is_the_identity() -> None:
    assert conversion_between("kph", "km/h").is_identity
    assert canonical_unit("Celsius") == canonical_unit("°C") == "celsius"


def test_converting_between_quantities_is_refused() -> None:
    with pytest.raises(SignalMapError, match=r"cannot convert 'km/h' \(speed\) to 'celsius' \(temperature\)"):
        conversion_between("km/h", "celsius")


def test_unknown_unit_is_refused_listing_known_units() -> None:
    with pytest.raises(SignalMapError, match=r"unit 'furlong/fortnight' is not a known unit; expected one of .*km/h"):
        conversion_between("furlong/fortnight", "m/s")
