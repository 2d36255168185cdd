"""``drivetrain twin``: the commands against a live API (the embedded platform's server)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.privacy import give_consent
from drivetrain.cloud.twins import Reconciler, apply_reported, get_twin, hub_for
from drivetrain.core.crypto import SigningKey
from drivetrain.demo import EmbeddedPlatform, PlatformHandles, demo_settings

#: The tests share one platform and build on each other's state: one worker, in file order.
pytestmark = pytest.mark.xdist_group("twins-cli")

LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformHandles, list[str]]]:
    embedded = EmbeddedPlatform(demo_settings(tmp_path_factory.mktemp("twin-cli")))
    handles = embedded.start()
    rng = random.Random(3)
    try:
        with handles.database.session() as session:
            vins = [
                provision_vehicle(session, tenant="default", model="compact-bev", region=region,
                                  cloud_key=SigningKey.generate().verify_key, actor="test",
                                  rng=rng)[0].vin
                for region in ("EU", "US")
            ]
        yield handles, vins
    finally:
        embedded.stop()


def _twin(live: tuple[PlatformHandles, list[str]], *args: str) -> tuple[int, str]:
    handles, _ = live
    result = CliRunner().invoke(
        app, ["twin", *args, "--url", handles.api_url],
        env={"DRIVETRAIN_TOKEN": handles.admin_token, "COLUMNS": "200"},
    )
    return result.exit_code, result.output


def test_set_by_vin_then_get_shows_the_pending_value_and_its_version(live: tuple) -> None:
    vin = live[1][0]
    code, out = _twin(live, "set", "--vin", vin, f"{LIMIT}=80")
    assert code == 0, out
    assert "desired version 1" in out and '"' + LIMIT + '": 80' in out
    code, out = _twin(live, "get", vin, "--json")
    twin = json.loads(out)
    assert code == 0 and twin["desired"] == {LIMIT: 80} and twin["items"][0]["status"] == "pending"


def test_stale_if_match_fails_with_both_versions(live: tuple) -> None:
    vin = live[1][0]
    code, out = _twin(live, "set", "--vin", vin, f"{LIMIT}=75")  # the version is past 0 now,
    assert code == 0, out  # whichever tests of this module ran before on this worker
    code, out = _twin(live, "set", "--vin", vin, f"{LIMIT}=70", "--if-match", "0")
    assert code == 1 and "409" in out and "not 0" in out


def test_query_lists_the_selected_twins_and_bad_syntax_points_at_the_token(live: tuple) -> None:
    code, out = _twin(live, "query", 'region == "US"')
    assert code == 0 and live[1][1] in out and live[1][0] not in out and "1 shown of 1" in out
    code, out = _twin(live, "query", 'region = "US"')
    assert code == 1 and "column 8" in out


def test_set_by_query_and_status_report_the_group(live: tuple) -> None:
    handles, vins = live
    code, out = _twin(live, "set", "--query", 'region == "US"', f"{LIMIT}=60")
    assert code == 0 and "on 1 twin(s)" in out
    with handles.database.session() as session:
        from datetime import UTC, datetime

        apply_reported(session, {vins[1]: {LIMIT: (60.0, datetime.now(UTC))}})
    code, out = _twin(live, "status", 'region == "US"', "--path", LIMIT)
    assert code == 0 and "1 converged" in out and "time to converge" in out


def test_watch_prints_changes_as_they_happen(live: tuple) -> None:
    handles, vins = live
    hub = hub_for(handles.database.engine)
    before = hub.subscriber_count
    outcome: list[tuple[int, str]] = []
    watcher = threading.Thread(target=lambda: outcome.append(
        _twin(live, "watch", "--query", 'region == "EU"', "--count", "1", "--timeout", "20")))
    watcher.start()
    deadline = time.monotonic() + 10
    while hub.subscriber_count == before and time.monotonic() < deadline:
        time.sleep(0.02)
    # The change comes from another client (the CLI runner is busy with the watcher).
    response = httpx.patch(
        f"{handles.api_url}/v1/twins/{vins[0]}/desired",
        json={"values": {"Vehicle.Cabin.Light.IsDomeOn": True}},
        headers={"Authorization": f"Bearer {handles.admin_token}", "If-Match": "*"},
    )
    assert response.status_code == 200, response.text
    watcher.join(30)
    code, out = outcome[0]
    assert code == 0 and vins[0] in out and "desired" in out and "1 event(s)" in out


def test_malformed_assignments_are_refused_before_any_call(live: tuple) -> None:
    code, out = _twin(live, "set", "--vin", live[1][0], "no-equals-sign")
    assert code == 2 and "PATH=VALUE" in out


def test_every_twin_command_has_help() -> None:
    for command in ("get", "set", "query", "status", "watch"):
        result = CliRunner().invoke(app, ["twin", command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_status_says_why_pending_items_wait_where_no_vehicle_link_delivers_them(
    live: tuple,
) -> None:
    handles, vins = live
    code, out = _twin(live, "set", "--vin", vins[0], f"{LIMIT}=75")
    assert code == 0, out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the platform's reconciler (a link) delivers it first
        with handles.database.session() as session:
            twin = get_twin(session, vins[0], tenant="default")
        if twin.sent_version == twin.version:
            break
        time.sleep(0.05)
    # A process without a link reconciles: the item, still pending, says why.
    Reconciler(handles.database, None, SigningKey.generate()).run_once()
    code, out = _twin(live, "status", 'region == "EU"', "--path", LIMIT)
    assert code == 0 and "1 pending" in out, out
    assert "pending 1x: not delivered: no vehicle link" in out


def test_get_withholds_location_without_a_covering_purpose_and_shows_it_with_one(
    live: tuple,
) -> None:
    handles, vins = live
    vin, lat = vins[1], "Vehicle.CurrentLocation.Latitude"
    with handles.database.session() as session:
        apply_reported(session, {vin: {lat: (37.77, datetime.now(UTC))}})
    code, out = _twin(live, "get", vin)
    assert code == 0, out
    assert "withheld location" in out and "37.77" not in out
    code, out = _twin(live, "get", vin, "--purpose", "maintenance", "--json")
    assert json.loads(out)["withheld"]["location"].endswith("may not use location")
    with handles.database.session() as session:
        give_consent(session, tenant="default", vin=vin, purpose="fleet_operations",
                     categories=["location"], person="fleet", source="fleet-contract",
                     actor="test")
    code, out = _twin(live, "get", vin, "--purpose", "fleet_operations", "--json")
    twin = json.loads(out)
    assert twin["reported"][lat]["value"] == 37.77 and "location" not in twin["withheld"]
    code, out = _twin(live, "query", f'reported."{lat}" > 30', "--json")
    assert code != 0 and "must name its purpose" in out
    code, out = _twin(live, "query", f'reported."{lat}" > 30', "--purpose", "fleet_operations",
                      "--json")
    assert [t["vin"] for t in json.loads(out)["twins"]] == [vin]
