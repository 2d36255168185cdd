"""Attack scenarios during a run, and the ground truth a run writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from drivetrain.core.errors import BadInputError, StorageError
from drivetrain.core.transport import InProcessTransport
from drivetrain.sim.can import ATTACK_KINDS, read_records
from drivetrain.sim.can.vehicles import load_vehicle_can
from drivetrain.sim.fleet import (
    FleetRunner,
    FleetSpec,
    ModelBus,
    RunnerOptions,
    local_identities,
    plan_fleet,
)
from drivetrain.sim.fleet.attacks import AttackInjector, AttackScenario, PlannedAttack
from drivetrain.sim.fleet.groundtruth import (
    ATTACKS_FILE,
    MANIFEST_FILE,
    read_manifest,
    write_ground_truth,
)

START = 1_790_000_000.0
SECONDS = 24


@pytest.fixture(scope="module")
def attacked_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    plan = plan_fleet(FleetSpec(vehicles=7, seed=4, start_utc=START))
    scenario = AttackScenario.preset("mixed", plan.vehicles, SECONDS, 4)
    injector = AttackInjector(scenario, plan.vehicles, 4)
    options = RunnerOptions(ground_truth_every_s=10.0)
    out = tmp_path_factory.mktemp("gt")
    with (
        InProcessTransport() as bus,
        FleetRunner(plan, bus, local_identities(plan.vehicles), options, tamper=injector) as runner,
    ):
        status = runner.run(SECONDS, speedup=0)
    manifest = write_ground_truth(out, plan, options, status, injector.records, extra={"note": "t"})
    return plan, scenario, injector, status, manifest


def test_mixed_preset_puts_each_attack_kind_on_a_different_vehicle_within_the_run(
    attacked_run,
) -> None:  # type: ignore[no-untyped-def]
    plan, scenario, _, _, _ = attacked_run
    assert [a.kind for a in scenario.attacks] == list(ATTACK_KINDS)
    assert len({a.vehicle for a in scenario.attacks}) == len(ATTACK_KINDS)
    for attack in scenario.attacks:
        assert 0 < attack.start_s and attack.end_s <= SECONDS
    again = AttackScenario.preset("mixed", plan.vehicles, SECONDS, 4)
    assert again == scenario


def test_every_attack_is_recorded_with_its_vehicle_ids_and_window(attacked_run) -> None:  # type: ignore[no-untyped-def]
    plan, scenario, injector, status, _ = attacked_run
    records = {r.kind: r for r in injector.records}
    assert set(records) == set(ATTACK_KINDS)
    for attack in scenario.attacks:
        record = records[attack.kind]
        assert record.vehicle == plan.vehicles[attack.vehicle].vin
        assert attack.start_s <= record.start_s <= record.end_s <= attack.end_s + 0.01
        assert record.can_ids
    assert records["flooding"].can_ids == (0,) and records["flooding"].injected > 1000
    assert records["suspension"].removed > 0 and records["suspension"].injected == 0
    assert records["masquerade"].removed > 0 and records["masquerade"].injected > 0
    # fuzzing with random ids puts frames on the bus that no DBC knows
    assert status.unknown_frames > 0 and status.decoded_frames < status.frames


def test_ground_truth_files_and_manifest_describe_the_run(attacked_run) -> None:  # type: ignore[no-untyped-def]
    plan, _, injector, status, manifest_path = attacked_run
    manifest = read_manifest(manifest_path)
    out = manifest_path.parent
    assert manifest["seed"] == 4 and manifest["note"] == "t"
    assert [v["vin"] for v in manifest["vehicles"]] == [v.vin for v in plan.vehicles]
    assert {v["region"] for v in manifest["vehicles"]} == {"EU", "US", "CN"}
    assert (
        manifest["sim_time"]["seconds"] == SECONDS and manifest["sim_time"]["start_unix_s"] == START
    )
    assert set(manifest["files"]) == {
        "component_health.parquet",
        "component_events.parquet",
        "trips.parquet",
        "charging_sessions.parquet",
        ATTACKS_FILE,
    }
    for name, described in manifest["files"].items():
        data = (out / name).read_bytes()
        assert described["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert described["rows"] == pq.read_metadata(out / name).num_rows
    health = pq.read_table(out / "component_health.parquet")
    assert health.num_rows == 7 * 3  # every vehicle at 0, 10 and 20 s
    assert any(name.endswith("_rul_s") for name in health.column_names)
    trips = pq.read_table(out / "trips.parquet").to_pylist()
    assert len(trips) >= 7 and all(t["in_progress"] for t in trips if t["end_s"] == START + SECONDS)
    assert read_records(out / ATTACKS_FILE) == injector.records
    assert manifest["counts"]["frames"] == status.frames


def test_scenario_file_entries_are_checked_naming_the_attack_and_field(tmp_path: Path) -> None:
    plan = plan_fleet(FleetSpec(vehicles=2, seed=1, start_utc=START))
    good = {
        "attacks": [
            {
                "kind": "spoofing",
                "vehicle": plan.vehicles[1].vin,
                "start_s": 2,
                "duration_s": 3,
                "message": "ESP_Speed",
                "values": {"VehicleSpeed": 200},
            }
        ]
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(good))
    scenario = AttackScenario.from_file(path, plan.vehicles)
    assert scenario.attacks == (
        PlannedAttack("spoofing", 1, 2.0, 3.0, "ESP_Speed", {"VehicleSpeed": 200.0}),
    )
    for entry, message in [
        ({"kind": "teleport"}, "attack 1: kind 'teleport'"),
        ({"kind": "flooding", "vehicle": 9, "start_s": 1, "duration_s": 1}, "vehicle 9"),
        ({"kind": "flooding", "vehicle": 0, "start_s": "soon", "duration_s": 1}, "start_s 'soon'"),
        ({"kind": "flooding", "vehicle": 0, "start_s": 1, "duration_s": 0}, "duration_s > 0"),
        (
            {
                "kind": "spoofing",
                "vehicle": 0,
                "start_s": 1,
                "duration_s": 1,
                "message": "ESP_Speed",
            },
            "both",
        ),
    ]:
        path.write_text(json.dumps({"attacks": [entry]}))
        with pytest.raises(BadInputError, match=message):
            AttackScenario.from_file(path, plan.vehicles)
    path.write_text("not json")
    with pytest.raises(BadInputError, match="cannot read the attack scenario"):
        AttackScenario.from_file(path, plan.vehicles)
    with pytest.raises(BadInputError, match="'chaos' is not a preset"):
        AttackScenario.preset("chaos", plan.vehicles, 10, 1)


def test_suspension_takes_the_attacked_message_off_the_bus_for_its_window() -> None:
    plan = plan_fleet(FleetSpec(vehicles=2, seed=2, start_utc=START))
    scenario = AttackScenario((PlannedAttack("suspension", 0, 1.0, 2.0),))
    injector = AttackInjector(scenario, plan.vehicles, 2)
    can = load_vehicle_can(plan.vehicles[0].can_model)
    own = ModelBus(can, np.array([0]), 2, can.signal_map.paths).frames(
        1.0, 2.0, {"Vehicle.Speed": [50.0]}
    )
    altered = injector.apply(0, own, 1.0, 2.0)
    (record,) = injector.records
    (can_id,) = record.can_ids
    assert np.count_nonzero(own.frame_id == can_id) > 0
    assert np.count_nonzero(altered.frame_id == can_id) == 0
    assert len(own) - len(altered) == record.removed


def test_manifest_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_FILE
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StorageError, match="not a fleet manifest"):
        read_manifest(path)
