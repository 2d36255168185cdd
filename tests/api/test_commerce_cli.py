"""``drivetrain commerce`` against a live API (the embedded platform, with its commerce
runner): a catalog is put, a feature bought, its entitlement issued, invoices and revenue
read — as tables and as JSON."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.twins import set_ecu
from drivetrain.core.crypto import SigningKey
from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformHandles, str]]:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("commerce-cli")))
    handles = embedded.start()
    try:
        with handles.database.session() as session:
            vin = provision_vehicle(session, tenant="default", model="compact-bev", region="EU",
                                    cloud_key=SigningKey.generate().verify_key, actor="test",
                                    rng=random.Random(4))[0].vin
            set_ecu(session, vin, "VCU", tenant="default", hardware_id=None,
                    software_version="5.2.1", actor="test")
        yield handles, vin
    finally:
        embedded.stop()


def _run(live: tuple[PlatformHandles, str], *args: str) -> tuple[int, str]:
    handles, _ = live
    result = CliRunner().invoke(app, [*args, "--url", handles.api_url],
                                env={"DRIVETRAIN_TOKEN": handles.admin_token, "COLUMNS": "200"})
    return result.exit_code, result.output


def test_a_feature_is_sold_and_its_entitlement_issued_from_the_command_line(
    live: tuple[PlatformHandles, str],
) -> None:
    _, vin = live
    code, out = _run(live, "commerce", "revenue")
    assert code == 0 and "no revenue yet" in out
    code, out = _run(live, "commerce", "catalog", "put", "--example")
    assert code == 0 and "catalog version 1" in out, out
    code, out = _run(live, "commerce", "catalog", "show")
    assert "boost-monthly" in out and "EU 9.99 EUR" in out
    assert _run(live, "commerce", "pay-with", "driver:alice", "test_card_ok")[0] == 0
    code, out = _run(live, "commerce", "buy", vin, "boost-monthly", "--account", "driver:alice")
    assert code == 0 and "active" in out, out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code, out = _run(live, "commerce", "entitlement", "list", vin, "--json")
        rows = json.loads(out)
        if rows:
            break
        time.sleep(0.2)
    assert [(r["feature"], r["status"]) for r in rows] == [("performance_boost", "grant")]
    code, out = _run(live, "commerce", "invoice", "list", "--json")
    invoices = json.loads(out)
    assert [(i["total"], i["status"]) for i in invoices] == [("11.89", "paid")]
    code, out = _run(live, "commerce", "revenue", "--json")
    assert json.loads(out)["regions"][0]["revenue"] == "9.99"
    code, out = _run(live, "commerce", "buy", vin, "no-such-offer", "--account", "driver:alice")
    assert code != 0 and "offer 'no-such-offer' is not in the catalog" in out
