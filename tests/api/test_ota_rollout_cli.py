"""``drivetrain ota rollout`` against a live API (the embedded platform with its dispatcher):
a draft created by one client, approved by another, followed, judged by the platform's health
gate (holding without telemetry, stopped by a rollback), and its UN R156 records exported."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.ota import OtaLayout
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.core.crypto import SigningKey
from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings

HW = "BMS-CH50-HW3"
IMAGE = "bms/bms-2.6.1.bin"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformHandles, str]]:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("ota-cli")))
    handles = embedded.start()
    try:
        with handles.database.session() as session:
            for seed in range(3):
                vin = provision_vehicle(session, tenant="default", model="compact-bev",
                                        region="EU", cloud_key=SigningKey.generate().verify_key,
                                        actor="test", rng=random.Random(seed))[0].vin
                record_ecu_inventory(session, vin, {"BMS": (HW, "2.5.0")})
        layout = OtaLayout.under(handles.settings.data_dir)
        layout.init({"root": (1, 1)})
        layout.images().add_image(IMAGE, b"BMS firmware 2.6.1", hardware_id=HW,
                                  release_counter=7, version="2.6.1")
        admin = {"Authorization": f"Bearer {handles.admin_token}"}
        made = httpx.post(f"{handles.api_url}/v1/tenants/default/clients", headers=admin,
                          json={"role": "fleet_operator"}).json()
        token = httpx.post(f"{handles.api_url}/v1/auth/token", data={
            "grant_type": "client_credentials", "client_id": made["client_id"],
            "client_secret": made["client_secret"]}).json()["access_token"]
        yield handles, token
    finally:
        embedded.stop()


def _run(live: tuple[PlatformHandles, str], *args: str, token: str | None = None
         ) -> tuple[int, str]:
    handles, _ = live
    result = CliRunner().invoke(
        app, ["ota", "rollout", *args, "--url", handles.api_url],
        env={"DRIVETRAIN_TOKEN": token or handles.admin_token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


def test_a_rollout_is_created_approved_advanced_and_its_records_exported(
    live: tuple[PlatformHandles, str], tmp_path: Path,
) -> None:
    code, out = _run(live, "create", "bms-2.6.1", "--ecu", "BMS", "--image", IMAGE,
                     "--query", 'software."BMS" < "2.6.1"', "--waves", "0.33,1",
                     "--window", "sat,sun/01:00-05:00", "--min-control", "1", "--observe",
                     "600", "--json")
    assert code == 0, out
    draft = json.loads(out)
    rid = draft["rollout_id"]
    assert draft["status"] == "draft" and draft["counts"]["waiting"] == 3
    assert draft["observe_s"] == 600 and draft["min_control"] == 1
    code, out = _run(live, "approve", rid)
    assert code == 1 and "another person must approve" in out
    code, out = _run(live, "approve", rid, token=live[1])
    assert code == 0 and "[running]" in out and "1 pending" in out, out
    code, out = _run(live, "vehicles", rid, "--json")
    [first] = [v["vin"] for v in json.loads(out) if v["wave"] == 1]
    code, out = _run(live, "report", rid, first, "installed", "--preconditions", "parked")
    assert code == 0 and "installed (wave 1)" in out, out
    # no telemetry since the install: the platform's gate holds the wave, saying why
    code, out = _run(live, "advance", rid)
    assert code == 0 and "wave 1 of 2" in out and "holding" in out, out
    assert "no updated vehicle has telemetry" in out and "health gate evidence" in out, out
    code, out = _run(live, "cancel", rid, "--reason", "no data yet")
    assert code == 0 and "[cancelled]" in out
    # the two cars still on 2.5.0 in one wave: one installs, one rolls back
    code, out = _run(live, "create", "bms-2.6.1b", "--ecu", "BMS", "--image", IMAGE,
                     "--query", 'software."BMS" < "2.6.1"', "--waves", "1", "--json")
    second = json.loads(out)["rollout_id"]
    assert _run(live, "approve", second, token=live[1])[0] == 0
    vins = [v["vin"] for v in json.loads(_run(live, "vehicles", second, "--json")[1])]
    assert len(vins) == 2 and first not in vins
    assert _run(live, "report", second, vins[0], "installed")[0] == 0
    assert _run(live, "report", second, vins[1], "rolled_back", "--detail", "health check")[
        0] == 0
    # the dispatcher's round judges the wave by itself: a rollback at once stops it
    deadline = time.monotonic() + 10
    while "[stopped]" not in (out := _run(live, "show", second)[1]):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert "1 of 2 failed or rolled back" in out, out
    code, out = _run(live, "advance", second)
    assert code == 1 and "is stopped" in out, out
    code, out = _run(live, "records", "--rollout", second)
    assert code == 0 and "RXSWIN-BMS-2.6.1" in out and "rolled_back" in out
    code, out = _run(live, "records", "--rollout", second, "--json")
    assert sorted(r["result"] for r in json.loads(out)) == ["installed", "rolled_back"]
    code, out = _run(live, "list")
    assert code == 0 and second in out and "stopped" in out and "cancelled" in out
    code, out = _run(live, "show", "ota-nosuch")
    assert code == 1 and "does not exist" in out
