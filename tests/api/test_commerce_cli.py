"""``drivetrain commerce`` against a live API (the embedded platform, with its commerce
runner): a catalog is put, a feature bought, its entitlement issued, invoices and revenue
read — as tables and as JSON."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.twins import apply_reported, set_ecu, twin_entitlements
from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement_twin import FeatureReport
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


def test_subscription_show_says_whether_the_car_confirmed_it_through_its_twin(
    live: tuple[PlatformHandles, str],
) -> None:
    handles, vin = live
    _run(live, "commerce", "catalog", "put", "--example")
    _run(live, "commerce", "pay-with", "driver:alice", "test_card_ok")
    _, out = _run(live, "commerce", "subscription", "list", "--vin", vin, "--json")
    live_subs = [s for s in json.loads(out) if s["status"] != "expired"]
    if not live_subs:
        _, out = _run(live, "commerce", "buy", vin, "boost-monthly", "--account",
                      "driver:alice", "--json")
        live_subs = [json.loads(out)]
    sub_id = live_subs[0]["subscription_id"]
    _grant(live, vin)
    code, out = _run(live, "commerce", "subscription", "show", sub_id)
    assert code == 0 and "confirmed by the car (twin): none yet" in out, out
    # The demo platform renews grants every 2 s (its lease is 4 s): the car's report of the
    # twin's current token is confirmed until the next renewal, so try a few times.
    for _ in range(5):
        with handles.database.session() as session:  # the car's report, as ingestion stores it
            (twin,) = twin_entitlements(session, vin, tenant="default")
            assert twin.desired_token is not None
            report = FeatureReport("performance_boost", twin.desired_token, 1, 0, "enabled")
            apply_reported(session, {vin: {p: (v, datetime.now(UTC))
                                           for p, v in report.twin_values().items()}})
        code, out = _run(live, "commerce", "subscription", "show", sub_id)
        if "confirmed by the car (twin): performance_boost" in out:
            break
    assert "confirmed by the car (twin): performance_boost" in out, out
    code, out = _run(live, "commerce", "entitlement", "list", vin)
    assert code == 0 and "enabled (seq 1)" in out, out


def _grant(live: tuple[PlatformHandles, str], vin: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        _, out = _run(live, "commerce", "entitlement", "list", vin, "--json")
        rows = [r for r in json.loads(out) if r["status"] == "grant"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (grant,) = rows
    return grant
