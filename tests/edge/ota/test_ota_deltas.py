"""Delta images: a vehicle running the source build downloads the bsdiff4 delta, rebuilds the
new image and checks its hash; a delta that does not rebuild the ordered image falls back to
the full image."""

from __future__ import annotations

from pathlib import Path

import pytest
from ota_world import OtaWorld, ota_world

from drivetrain.core.errors import BadInputError
from drivetrain.core.ota_names import delta_name
from drivetrain.edge import VehicleConditions

PARKED = VehicleConditions(parked=True, soc_pct=80)


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ota_world(tmp_path) as w:
        old = w.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
        w.assign(("BMS-001", old))
        w.primary.update(PARKED)
        yield w


def test_update_from_a_common_source_downloads_the_delta_and_saves_bytes(world: OtaWorld) -> None:
    new = world.publish("bms", "2.6.0", 6, hardware_id="bms-v2")
    delta = world.layout.images().add_delta("bms/bms-2.5.0.bin", new)
    assert delta.bytes_saved > 0.8 * delta.full_bytes  # builds share most of their bytes
    world.assign(("BMS-001", new))
    [outcome] = world.primary.update(PARKED)
    assert outcome.result == "installed" and outcome.via_delta
    assert outcome.downloaded_bytes == delta.delta_bytes < delta.full_bytes
    assert world.ecu("BMS-001").image_bytes() == world.layout.images().repo.image_bytes(
        world.layout.images().image(new))


def test_a_delta_that_does_not_rebuild_the_image_falls_back_to_the_full_image(
    world: OtaWorld,
) -> None:
    new = world.publish("bms", "2.6.0", 6, hardware_id="bms-v2")
    images = world.layout.images()
    source_sha = images.image("bms/bms-2.5.0.bin").hashes["sha256"]
    # a signed delta built from other bytes: it applies to nothing the ECU runs
    import bsdiff4

    bogus = bsdiff4.diff(b"other source" * 10, b"other target" * 10)
    entry = images.repo.store_image(delta_name(new, source_sha), bogus, {
        "hardware_id": "bms-v2", "release_counter": 6, "version": "2.6.0", "kind": "delta",
        "delta_of": new, "source_sha256": source_sha})
    images.repo.publish({entry.path: entry})
    world.assign(("BMS-001", new))
    [outcome] = world.primary.update(PARKED)
    assert outcome.result == "installed" and not outcome.via_delta
    assert outcome.downloaded_bytes == images.image(new).length


def test_a_delta_across_hardware_is_refused(world: OtaWorld) -> None:
    world.publish("adas", "1.0", 1, hardware_id="adas-v1")
    with pytest.raises(BadInputError, match="hardware"):
        world.layout.images().add_delta("bms/bms-2.5.0.bin", "adas/adas-1.0.bin")
