"""``drivetrain ota image publish --url``: an image published through a running API (the
token's tenant and scopes apply), signed by the platform with the same checks as
``drivetrain ota image add``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.ota import OtaLayout
from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformHandles]:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("ota-publish")))
    handles = embedded.start()
    try:
        OtaLayout.under(handles.settings.data_dir).init({"root": (1, 1)})
        yield handles
    finally:
        embedded.stop()


def _publish(live: PlatformHandles, file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["ota", "image", "publish", str(file), "--hardware-id", "BMS-CH50-HW3",
              "--url", live.api_url, *args],
        env={"DRIVETRAIN_TOKEN": live.admin_token, "COLUMNS": "200"})
    return result.exit_code, result.output


def test_an_image_is_published_through_the_api_from_the_command_line(
    live: PlatformHandles, tmp_path: Path,
) -> None:
    old, new = tmp_path / "bms-2.6.0.bin", tmp_path / "bms-2.6.1.bin"
    old.write_bytes(b"BMS firmware block " * 800 + b"2.6.0")
    new.write_bytes(b"BMS firmware block " * 800 + b"2.6.1")
    code, out = _publish(live, old, "--name", "default/bms/bms-2.6.0.bin",
                         "--release-counter", "6", "--version", "2.6.0")
    assert code == 0, out
    assert "published default/bms/bms-2.6.0.bin (15,205 bytes" in out
    code, out = _publish(live, new, "--name", "default/bms/bms-2.6.1.bin",
                         "--release-counter", "7", "--version", "2.6.1",
                         "--delta-from", "default/bms/bms-2.6.0.bin", "--json")
    assert code == 0, out
    done = json.loads(out)
    assert done["image"]["release_counter"] == 7
    [delta] = done["deltas"]
    assert delta["source"] == "default/bms/bms-2.6.0.bin" and delta["bytes_saved"] > 0
    code, out = _publish(live, old, "--name", "default/bms/bms-2.5.9.bin",
                         "--release-counter", "5", "--version", "2.5.9")
    assert code != 0 and "answered 409" in out and "release_counter 5 is below 7" in out, out
    names = [i.name for i in OtaLayout.under(live.settings.data_dir).images().images()]
    assert "default/bms/bms-2.5.9.bin" not in names and "default/bms/bms-2.6.1.bin" in names
