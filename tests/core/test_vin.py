"""VIN form (ISO 3779); the check digit is tested with VIN generation in the fleet registry."""

from __future__ import annotations

import pytest

from drivetrain.core.vin import VIN_CHARACTERS, is_vin


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
