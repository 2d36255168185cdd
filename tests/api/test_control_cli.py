"""``drivetrain campaign``, ``drivetrain job`` and ``drivetrain command`` against a live API
(the embedded platform, with its dispatcher and campaign runner)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.core.crypto import SigningKey
from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformHandles, list[str]]]:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("control-cli")))
    handles = embedded.start()
    rng = random.Random(9)
    try:
        with handles.database.session() as session:
            vins = [
                provision_vehicle(session, tenant="default", model="compact-bev", region=region,
                                  cloud_key=SigningKey.generate().verify_key, actor="test",
                                  rng=rng)[0].vin
                for region in ("EU", "EU", "US")
            ]
        yield handles, vins
    finally:
        embedded.stop()


def _run(live: tuple[PlatformHandles, list[str]], *args: str) -> tuple[int, str]:
    handles, _ = live
    result = CliRunner().invoke(
        app, [*args, "--url", handles.api_url],
        env={"DRIVETRAIN_TOKEN": handles.admin_token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


def test_a_campaign_from_the_vehicle_document_is_created_approved_and_followed(
    live: tuple[PlatformHandles, list[str]], tmp_path: Path
) -> None:
    file = tmp_path / "brake.json"
    file.write_text(json.dumps({
        "id": "brake-cli", "version": 1, "signals": ["Vehicle.Speed"], "period_ms": None,
        "triggers": [{"name": "brake", "expression": "Vehicle.Acceleration.Longitudinal < -4",
                      "pre_s": 10, "post_s": 10}],
    }))
    code, out = _run(live, "campaign", "create", str(file), "--query", 'region == "EU"')
    assert code == 0, out
    assert "brake-cli  [draft]" in out and "query 'region == \"EU\"'" in out
    code, out = _run(live, "campaign", "approve", "brake-cli")
    assert code == 0 and "[approved]" in out
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        code, out = _run(live, "campaign", "status", "brake-cli")
        if "[running]" in out and "2 " in out.split("vehicles:")[1].split("\n")[0]:
            break
        time.sleep(0.3)
    assert "[running]" in out and live[1][0] in out and live[1][2] not in out
    code, out = _run(live, "campaign", "list", "--json")
    assert code == 0 and json.loads(out)[0]["campaign_id"] == "brake-cli"
    code, out = _run(live, "campaign", "suspend", "brake-cli", "--reason", "pause")
    assert code == 0 and "[suspended]" in out and "reason: pause" in out


def test_a_bad_campaign_file_exits_naming_the_field(
    live: tuple[PlatformHandles, list[str]], tmp_path: Path
) -> None:
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"id": "bad", "signals": ["Vehicle.Sped"]}))
    code, out = _run(live, "campaign", "create", str(file), "--query", "")
    assert code == 1 and "'signals'" in out and "Vehicle.Speed" in out
    code, out = _run(live, "campaign", "create", str(file))
    assert code == 2 and "no targeting" in out


def test_a_job_is_created_followed_and_cancelled(live: tuple[PlatformHandles, list[str]]) -> None:
    code, out = _run(live, "job", "create", "flash_lights", "--query", 'region == "EU"',
                     "--arg", "times=2", "--rate", "1")
    assert code == 0, out
    job_id = out.split()[0]
    assert job_id.startswith("job-") and "2 vehicle(s)" in out
    code, out = _run(live, "job", "status", job_id, "--vehicles")
    assert code == 0 and live[1][0] in out
    code, out = _run(live, "job", "cancel", job_id, "--reason", "test")
    assert code == 0 and "[cancelled]" in out and "cancelled by" in out
    code, out = _run(live, "job", "list")
    assert code == 0 and job_id in out


def test_a_command_to_one_vehicle(live: tuple[PlatformHandles, list[str]]) -> None:
    code, out = _run(live, "command", "send", live[1][2], "flash_lights", "--json")
    assert code == 0, out
    command = json.loads(out)
    assert command["origin"] == "command" and command["delivery"]["vin"] == live[1][2]
    code, out = _run(live, "command", "send", "NOTAVIN", "flash_lights")
    assert code == 1 and "answered" in out
