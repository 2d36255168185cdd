"""VIN form (ISO 3779) and the check digit of position 9 (49 CFR 565.15)."""

from __future__ import annotations

import random

import pytest

from drivetrain.cloud.fleet import generate_vin
from drivetrain.core.vin import VIN_CHARACTERS, is_vin, vin_check_digit


def test_every_vin_character_is_accepted_in_every_position() -> None:
    assert len(VIN_CHARACTERS) == 33
    for char in VIN_CHARACTERS:
        assert is_vin(char * 17)


@pytest.mark.parametrize(
    "text",
    [
        "1M8GDM9AXKP04278",  # 16 characters
        "1M8GDM9AXKP0427888",  # 18 characters
        "1M8GDM9AXKP04278I",
        "1M8GDM9AXKP04278O",
        "1M8GDM9AXKP04278Q",
        "1m8gdm9axkp042788",  # lower case
        "1M8GDM9AXKP04278 ",
        None,
        12345678901234567,
    ],
)
def test_a_malformed_vin_is_refused(text: object) -> None:
    assert not is_vin(text)


def test_check_digit_of_the_regulation_example_is_x() -> None:
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert vin_check_digit("1M8GDM9A0KP042788") == "X"  # its own position 9 is ignored


def test_generated_vins_are_well_formed_with_a_valid_check_digit() -> None:
    rng = random.Random(7)
    for _ in range(200):
        vin = generate_vin(rng)
        assert is_vin(vin)
        assert vin[8] == vin_check_digit(vin)
