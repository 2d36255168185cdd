"""The rollout's health gate on health the platform measures: telemetry in the lake (energy
per 100 km, error DTCs raised) and the security domain's events, updated cars against the
targets not yet updated, over the window since the wave's last install. A build whose
updated cars use more energy, raise DTCs or raise security events pauses the rollout with the
evidence; a good build advances; too little data holds the wave; reading a rollout over the
API changes nothing."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ota_fleet_health import drive, security_events
from sqlalchemy import text

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest.records import add_events
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import OtaLayout, RolloutDriver, RolloutSpec, WavePolicy, service
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.core.crypto import SigningKey
from drivetrain.core.ota_report import MANIFEST_EVENT
from drivetrain.core.settings import Settings
from drivetrain.core.wire import VehicleEvent

HW = "BMS-CH50-HW3"
IMAGE = f"bms/{HW}/bms-2.6.1.bin"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
CLOUD = SigningKey.generate()


def _fleet(database: Database, tenant: str, count: int) -> list[str]:
    with database.session() as session:
        vins = []
        for n in range(count):
            vin = provision_vehicle(session, tenant=tenant, model="compact-bev", region="EU",
                                    cloud_key=CLOUD.verify_key, actor="test",
                                    rng=random.Random(500 + n))[0].vin
            record_ecu_inventory(session, vin, {"BMS": (HW, "2.5.0")})
            vins.append(vin)
    return vins


def _layout(root: Path) -> OtaLayout:
    layout = OtaLayout.under(root)
    layout.init({"root": (1, 1)})
    layout.images().add_image(IMAGE, b"firmware 2.6.1", hardware_id=HW, release_counter=7,
                              version="2.6.1")
    return layout


def _first_wave_installed(database: Database, layout: OtaLayout, tenant: str) -> tuple[
        str, list[str], list[str]]:
    """A rollout to 8 cars in waves of 25 % and 100 %, approved at T0; its first wave
    installed a minute later. Returns the id, the updated and the control VINs."""
    spec = RolloutSpec("bms-2.6.1", "BMS", (IMAGE,),
                       policy=WavePolicy(waves=(0.25, 1.0), min_control=3, observe_s=1800))
    with database.session() as session:
        rid = service.create_rollout(session, layout, spec, tenant=tenant, actor="engineer",
                                     now=T0).rollout_id
        service.approve_rollout(session, layout, rid, tenant=tenant, actor="manager", now=T0)
        vehicles = service.list_vehicles(session, rid, tenant=tenant)
        updated = [v.vin for v in vehicles if v.wave == 1]
        for vin in updated:
            service.report_vehicle(session, rid, vin, "installed", tenant=tenant,
                                   now=T0 + timedelta(minutes=1))
    return rid, updated, [v.vin for v in vehicles if v.wave == 0]


@pytest.fixture
def acme(database: Database, tmp_path: Path) -> tuple[OtaLayout, Lake, list[str]]:
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
    lake = Lake(tmp_path / "lake")
    return _layout(tmp_path / "ota"), lake, _fleet(database, "acme", 8)


@pytest.mark.parametrize(("build", "failing"), [
    ({"kwh": 19.0}, "energy_kwh_per_100km"),
    ({"dtcs": 4}, "dtc_per_vehicle_hour"),
    ({"events": 5}, "security_events_per_vehicle_hour"),
])
def test_a_bad_build_pauses_the_rollout_with_the_evidence(
    database: Database, acme: tuple[OtaLayout, Lake, list[str]], build: dict[str, Any],
    failing: str,
) -> None:
    layout, lake, _ = acme
    rid, updated, control = _first_wave_installed(database, layout, "acme")
    start = T0 + timedelta(minutes=2)
    for vin in updated:
        drive(database, lake, tenant="acme", vin=vin, start=start, minutes=50,
              kwh_per_100km=build.get("kwh", 16.0), dtcs=build.get("dtcs", 0))
        security_events(database, tenant="acme", vin=vin, at=start,
                        count=build.get("events", 0))
    for vin in control:
        drive(database, lake, tenant="acme", vin=vin, start=start, minutes=50,
              kwh_per_100km=16.0)
    with database.session() as session:  # under observe_s of telemetry: no verdict yet
        assert service.step_rollout(session, layout, lake, rid, tenant="acme",
                                    now=T0 + timedelta(minutes=30)) == "running"
        waiting = service.get_rollout(session, rid, tenant="acme")
        assert waiting.evidence == {} and "observing the updated vehicles" in waiting.reason
    with database.session() as session:
        status = service.step_rollout(session, layout, lake, rid, tenant="acme",
                                      now=T0 + timedelta(minutes=62))
        view = service.get_rollout(session, rid, tenant="acme")
    assert status == "paused" and view.wave == 1 and failing in view.reason
    assert view.evidence[failing]["failed"] == 1.0
    assert view.evidence[failing]["updated"] > view.evidence[failing]["limit"]
    assert view.evidence[failing]["updated_vehicles"] == len(updated)
    assert view.evidence[failing]["control_vehicles"] == len(control)
    assert view.evidence[failing]["margin"] == 0.05
    assert view.counts["waiting"] == len(control)  # no further wave started


def test_a_good_build_advances_and_the_last_wave_completes(
    database: Database, acme: tuple[OtaLayout, Lake, list[str]],
) -> None:
    layout, lake, _ = acme
    rid, updated, control = _first_wave_installed(database, layout, "acme")
    start = T0 + timedelta(minutes=2)
    for n, vin in enumerate(updated + control):
        drive(database, lake, tenant="acme", vin=vin, start=start, minutes=50,
              kwh_per_100km=16.0 + 0.1 * (n % 3))  # within the 5 % margin
    security_events(database, tenant="acme", vin=control[0], at=start, count=2)
    with database.session() as session:
        status = service.step_rollout(session, layout, lake, rid, tenant="acme",
                                      now=T0 + timedelta(minutes=62))
        view = service.get_rollout(session, rid, tenant="acme")
    assert status == "running" and view.wave == 2, view.reason
    assert "health gate passed" in view.reason and view.counts["pending"] == len(control)
    energy = view.evidence["energy_kwh_per_100km"]
    assert 15.9 < energy["updated"] < 16.3 and 15.9 < energy["control"] < 16.3
    with database.session() as session:
        for vin in control:
            service.report_vehicle(session, rid, vin, "installed", tenant="acme",
                                   now=T0 + timedelta(minutes=70))
    for vin in updated + control:  # every car on the build now: no control group is left
        drive(database, lake, tenant="acme", vin=vin, start=T0 + timedelta(minutes=72),
              minutes=40, kwh_per_100km=16.0)
    with database.session() as session:
        status = service.step_rollout(session, layout, lake, rid, tenant="acme",
                                      now=T0 + timedelta(minutes=131))
        view = service.get_rollout(session, rid, tenant="acme")
    assert status == "completed" and "health gate not applied" in view.reason


def test_too_little_data_holds_the_wave_saying_why(
    database: Database, acme: tuple[OtaLayout, Lake, list[str]],
) -> None:
    layout, lake, _ = acme
    rid, updated, control = _first_wave_installed(database, layout, "acme")
    start = T0 + timedelta(minutes=2)
    for vin in updated + control[:2]:  # only two control cars report telemetry
        drive(database, lake, tenant="acme", vin=vin, start=start, minutes=50,
              kwh_per_100km=30.0 if vin in updated else 16.0)
    with database.session() as session:
        status = service.step_rollout(session, layout, lake, rid, tenant="acme",
                                      now=T0 + timedelta(minutes=62))
        view = service.get_rollout(session, rid, tenant="acme")
    assert status == "running" and view.wave == 1
    assert "holding" in view.reason and "2 control vehicle(s) with telemetry" in view.reason
    assert view.counts["waiting"] == len(control)
    drive(database, lake, tenant="acme", vin=control[2], start=start, minutes=50,
          kwh_per_100km=16.0)  # the third control car's data arrives
    with database.session() as session:
        status = service.step_rollout(session, layout, lake, rid, tenant="acme",
                                      now=T0 + timedelta(minutes=63))
    assert status == "paused"


def _tables(database: Database) -> dict[str, Any]:
    with database.session() as session:
        return {t: session.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")).all()
                for t in ("ota_rollouts", "ota_rollout_vehicles", "ota_update_records",
                          "audit_log", "dispatch_deliveries")}


def test_reading_a_rollout_over_the_api_changes_nothing(
    client: TestClient, settings: Settings, database: Database,
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> None:
    tenant = new_tenant("acme")
    reader = {"Authorization": f"Bearer {get_token(new_client(tenant, 'read_only'))}"}
    layout = _layout(settings.data_dir)
    _fleet(database, "acme", 8)
    rid, _, control = _first_wave_installed(database, layout, "acme")
    with database.session() as session:  # a wave-2 car's answer waiting to be taken in
        service.change_rollout(session, rid, "pause", tenant="acme", actor="engineer")
    with database.session() as session:
        add_events(session, tenant="acme", vin=control[0], batch_id=uuid.uuid4().hex,
                   events=[(0, VehicleEvent(MANIFEST_EVENT, time.time_ns(), "info",
                                            {"manifest": {"signed": "forged"}}))],
                   now=datetime.now(UTC))
    before = _tables(database)
    for path in (f"/v1/ota/rollouts/{rid}", f"/v1/ota/rollouts/{rid}/vehicles",
                 "/v1/ota/rollouts", f"/v1/ota/records?rollout_id={rid}"):
        assert client.get(path, headers=reader).status_code == 200
    assert _tables(database) == before
    # the dispatcher's round is where answers are taken in
    RolloutDriver(database, layout, Lake(settings.data_dir / "lake"))(datetime.now(UTC))
    with database.session() as session:
        detail = {v.vin: v.detail for v in service.list_vehicles(session, rid, tenant="acme")}
    assert "version manifest refused" in detail[control[0]]
    assert _tables(database) != before


def test_a_vehicle_time_far_off_the_platform_clock_does_not_move_the_window() -> None:
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    def at(offset: timedelta) -> int:
        return int((now + offset).timestamp()) * 10**9

    assert service._vehicle_time(at(-timedelta(hours=2)), now) == now - timedelta(hours=2)
    assert service._vehicle_time(at(timedelta(minutes=4)), now) == now + timedelta(minutes=4)
    for claimed in (at(timedelta(hours=1)), at(-timedelta(days=8)), 0):  # the platform's time
        assert service._vehicle_time(claimed, now) is None
